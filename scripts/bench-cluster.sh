#!/usr/bin/env bash
# Benchmarks a 3-node warren cluster against a 3-node RabbitMQ 3.10 cluster
# (Debian's rabbitmq-server) on this machine, in one run, with queues used
# through nodes other than their own:
#   a  the queue on node 1, one producer on node 2 (1 KiB, confirms, window
#      100), one consumer on node 3 (manual acks, prefetch 100); the same
#      scenario on a single warren node is run too, for the cluster's cost;
#   b  three queues, one on each node, a producer and a consumer for each,
#      each connected to a node other than its queue's.
# Then, on warren: the time a fourth node takes to join the cluster once
# it holds 10,000 queues and 50,000 bindings, and the time from SIGKILL of
# that node to the others removing its non-durable queue.
# Rounds alternate which broker goes first. The table shows medians of the
# receive rate and of the CPU time per message summed over every node of
# the cluster, with warren/RabbitMQ ratios. Not part of CI.
#
#   ./scripts/bench-cluster.sh                 3 rounds of 10 s
#   ./scripts/bench-cluster.sh -d 30 -r 5 -o out
#
# Environment: BENCH_PORT_BASE (default 26900) is the first of the
# loopback ports used (base to base+63). Needs root to install
# rabbitmq-server when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10
rounds=3
outdir=
usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }
while getopts "d:r:o:h" opt; do
	case $opt in
	d) seconds=$OPTARG ;;
	r) rounds=$OPTARG ;;
	o) outdir=$OPTARG ;;
	h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
case $seconds in '' | *[!0-9]*) echo "bench-cluster: -d wants whole seconds, got '$seconds'" >&2; exit 2 ;; esac
case $rounds in '' | 0 | *[!0-9]*) echo "bench-cluster: -r wants a whole number of rounds, got '$rounds'" >&2; exit 2 ;; esac

base=${BENCH_PORT_BASE:-26900}
log() { printf '%s bench-cluster: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
. scripts/lib/rabbitmq.sh
. scripts/lib/clusters.sh
ports=()
for i in 1 2 3; do
	ports+=($((base + i)) $((base + 10 + i)) $((base + 30 + i)) $((base + 40 + i)) $((base + 50 + i)))
done
ports+=($((base + 20)) $((base + 34)) $((base + 44)) $((base + 54)) $((base + 61)) $((base + 62)) $((base + 63)))
check_ports bench-cluster "${ports[@]}"

work=$(mktemp -d /tmp/warren-bench-cluster.XXXXXX)
[ -n "$outdir" ] || outdir=$work
mkdir -p "$outdir"
results=$outdir/results.txt
: >"$results"

log "building warren, warrenctl and warren-perf"
mkdir -p bin
nice -n 10 go build -o bin/ ./cmd/warren ./cmd/warrenctl ./cmd/warren-perf

# ---- warren: three nodes, and one on its own ----------------------------------
start_warren_cluster() {
	start_warren_nodes
	wnode "single@localhost:$((base + 63))" $((base + 61)) $((base + 62)) "$work/single"
}
stop_warren_all() {
	for n in "w4@localhost:$((base + 54))" "w3@localhost:$((base + 53))" "w2@localhost:$((base + 52))" "w1@localhost:$((base + 51))" "single@localhost:$((base + 63))"; do
		wctl "$n" stop >/dev/null 2>&1 || true
	done
}

cleanup() {
	stop_warren_all
	stop_rabbit_cluster
	if [ "$outdir" = "$work" ]; then
		rm -rf "$work"/rabbit* "$work"/w[1234] "$work"/single
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- measuring ------------------------------------------------------------------
# scenario BROKER S ROUND PORT1 PORT2 PORT3 PGID...
scenario() {
	local broker=$1 s=$2 round=$3 p1=$4 p2=$5 p3=$6
	shift 6
	local ports=("" "$p1" "$p2" "$p3") before after labels=()
	perf_jobs=()
	case $s in
	a)
		declare_queue "$p1" "qa-r$round"
		before=$(group_cpu "$@")
		perf_pair "$broker-a-r$round" "qa-r$round" "$p2" "$p3"
		labels=("$broker-a-r$round")
		;;
	b)
		for j in 1 2 3; do declare_queue "${ports[j]}" "qb$j-r$round"; done
		before=$(group_cpu "$@")
		for j in 1 2 3; do
			perf_pair "$broker-b$j-r$round" "qb$j-r$round" "${ports[j % 3 + 1]}" "${ports[(j + 1) % 3 + 1]}"
			labels+=("$broker-b$j-r$round")
		done
		;;
	esac
	wait "${perf_jobs[@]}" || log "$broker: scenario $s round $round: a warren-perf failed (see $work/$broker-*.log)"
	after=$(group_cpu "$@")
	record "$broker" "$s" "$round" $((after - before)) "${labels[@]}"
	log "$broker: scenario $s round $round: $(tail -1 "$results")"
	sleep 2
}

start_rabbit_cluster
start_warren_cluster
wpids=()
for d in w1 w2 w3; do wpids+=("$(cat "$work/$d.pid")"); done
single_pid=$(cat "$work/single.pid")

for round in $(seq "$rounds"); do
	order=(rabbitmq warren)
	((round % 2 == 0)) && order=(warren rabbitmq)
	for s in a b; do
		for broker in "${order[@]}"; do
			case $broker in
			rabbitmq) scenario rabbitmq "$s" "$round" $((base + 1)) $((base + 2)) $((base + 3)) "${rmq_pids[1]}" "${rmq_pids[2]}" "${rmq_pids[3]}" ;;
			warren) scenario warren "$s" "$round" $((base + 31)) $((base + 32)) $((base + 33)) "${wpids[@]}" ;;
			esac
		done
	done
	scenario warren-single a "$round" $((base + 61)) $((base + 61)) $((base + 61)) "$single_pid"
done

# ---- joining a loaded cluster, and losing a node ------------------------------
# seconds_since T0: wall-clock seconds from $EPOCHREALTIME T0 to now.
seconds_since() { python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$1"; }
python3 - "$work/defs.json" <<'EOF'
import json, sys
queues = [{"name": f"join-q{i}", "vhost": "/", "durable": True, "auto_delete": False, "arguments": {}} for i in range(10000)]
exchanges = [{"name": f"join-x{j}", "vhost": "/", "type": "topic", "durable": True, "auto_delete": False, "internal": False, "arguments": {}} for j in range(10)]
bindings = [{"source": f"join-x{(i + k) % 10}", "vhost": "/", "destination": f"join-q{i}", "destination_type": "queue",
             "routing_key": f"k.{i}.{k}", "arguments": {}} for i in range(10000) for k in range(5)]
json.dump({"exchanges": exchanges, "queues": queues, "bindings": bindings}, open(sys.argv[1], "w"))
EOF
w1="w1@localhost:$((base + 51))" w4="w4@localhost:$((base + 54))"
t0=$EPOCHREALTIME
wctl "$w1" -q import_definitions "$work/defs.json" >/dev/null
import_s=$(seconds_since "$t0")
log "warren: imported 10,000 queues and 50,000 bindings in $import_s s"
wnode "$w4" $((base + 34)) $((base + 44)) "$work/w4"
until wctl "$w4" -q status >/dev/null 2>&1; do sleep 0.2; done
t0=$EPOCHREALTIME
wctl "$w4" stop_app >/dev/null
wctl "$w4" join_cluster "$w1" >/dev/null
wctl "$w4" start_app >/dev/null
join_s=$(seconds_since "$t0")
joined=$(wctl "$w4" -q list_queues name | grep -c '^join-q' || true)
log "warren: a fourth node joined in $join_s s (stop_app, join_cluster, start_app) and lists $joined of the 10,000 queues"
curl -sf -u guest:guest -X PUT -H 'content-type: application/json' -d '{"durable":false}' \
	"http://127.0.0.1:$((base + 44))/api/queues/%2F/on-w4" >/dev/null
until wctl "$w1" -q list_queues name | grep -qx on-w4; do sleep 0.1; done
kill -9 "$(cat "$work/w4.pid")"
t0=$EPOCHREALTIME
while wctl "$w1" -q list_queues name | grep -qx on-w4; do sleep 0.1; done
gone_s=$(seconds_since "$t0")
log "warren: the other nodes removed the killed node's non-durable queue $gone_s s after SIGKILL"

echo
echo "bench-cluster: $rounds rounds of $seconds s, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ), load $(cut -d' ' -f1-3 /proc/loadavg); results in $results"
python3 - "$results" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(broker, s, key):
    v = [r[key] for r in rows if r["broker"] == broker and r["scenario"] == s]
    return statistics.median(v) if v else float("nan")
print()
print("| scenario | RabbitMQ msg/s | warren msg/s | ratio | RabbitMQ CPU/msg | warren CPU/msg | ratio |")
print("|---|---:|---:|---:|---:|---:|---:|")
names = {"a": "(a) queue on node 1, producer on node 2, consumer on node 3", "b": "(b) three queues, clients on the other nodes"}
for s in ("a", "b"):
    rr, wr = med("rabbitmq", s, "rate"), med("warren", s, "rate")
    rc, wc = med("rabbitmq", s, "cpu_us_per_msg"), med("warren", s, "cpu_us_per_msg")
    print(f"| {names[s]} | {rr:,.0f} | {wr:,.0f} | {wr/rr:.2f}× | {rc:.1f} µs | {wc:.1f} µs | {wc/rc:.2f}× |")
sr = med("warren-single", "a", "rate")
print()
print(f"warren, scenario (a) on one node: {sr:,.0f} msg/s; the cluster's (a) is {med('warren', 'a', 'rate')/sr:.2f}× of it")
EOF
echo "warren: importing 10,000 queues and 50,000 bindings took $import_s s; a fourth node then joined in $join_s s; its non-durable queue was gone from the others $gone_s s after it was killed with SIGKILL"
