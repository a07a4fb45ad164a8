#!/usr/bin/env bash
# Benchmarks warren's mirrored queues against RabbitMQ 3.10's (Debian's
# rabbitmq-server), a 3-node cluster of each on this machine, in one run:
# each queue is declared on node 1, which leads it, one producer publishes
# 1 KiB persistent messages with confirms (window 100) through node 2 and
# one consumer takes them with manual acks (prefetch 100) through node 3,
# for the runbooks' policies ha-mode exactly 2 (automatic sync) and
# ha-mode all; and the same load against a RabbitMQ quorum queue, as the
# queue type RabbitMQ now recommends instead. Rounds alternate which
# broker goes first. The table shows medians of the receive rate and of
# the CPU time per message summed over the three nodes, with ratios.
# Not part of CI.
#
#   ./scripts/bench-ha.sh                  3 rounds of 10 s
#   ./scripts/bench-ha.sh -d 30 -r 5 -o out
#
# Environment: BENCH_PORT_BASE (default 27000) is the first of the
# loopback ports used (base to base+53). Needs root to install
# rabbitmq-server when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10
rounds=3
outdir=
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
while getopts "d:r:o:h" opt; do
	case $opt in
	d) seconds=$OPTARG ;;
	r) rounds=$OPTARG ;;
	o) outdir=$OPTARG ;;
	h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
case $seconds in '' | *[!0-9]*) echo "bench-ha: -d wants whole seconds, got '$seconds'" >&2; exit 2 ;; esac
case $rounds in '' | 0 | *[!0-9]*) echo "bench-ha: -r wants a whole number of rounds, got '$rounds'" >&2; exit 2 ;; esac

base=${BENCH_PORT_BASE:-27000}
log() { printf '%s bench-ha: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
. scripts/lib/rabbitmq.sh
. scripts/lib/clusters.sh
ports=()
for i in 1 2 3; do
	ports+=($((base + i)) $((base + 10 + i)) $((base + 30 + i)) $((base + 40 + i)) $((base + 50 + i)))
done
ports+=($((base + 20)))
check_ports bench-ha "${ports[@]}"

work=$(mktemp -d /tmp/warren-bench-ha.XXXXXX)
[ -n "$outdir" ] || outdir=$work
mkdir -p "$outdir"
results=$outdir/results.txt
: >"$results"

log "building warren, warrenctl and warren-perf"
mkdir -p bin
nice -n 10 go build -o bin/ ./cmd/warren ./cmd/warrenctl ./cmd/warren-perf

cleanup() {
	for i in 3 2 1; do wctl "$(wname "$i")" stop >/dev/null 2>&1 || true; done
	stop_rabbit_cluster
	if [ "$outdir" = "$work" ]; then
		rm -rf "$work"/rabbit* "$work"/w[123]
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The policies, as the runbooks set them.
two='{"ha-mode":"exactly","ha-params":2,"ha-sync-mode":"automatic"}'
all='{"ha-mode":"all","ha-sync-mode":"automatic"}'

start_rabbit_cluster
rabbitctl 1 set_policy ha-two '^two\.' "$two" --apply-to queues >/dev/null
rabbitctl 1 set_policy ha-all '^all\.' "$all" --apply-to queues >/dev/null
start_warren_nodes
wctl "$(wname 1)" set_policy ha-two '^two\.' "$two" --apply-to queues >/dev/null
wctl "$(wname 1)" set_policy ha-all '^all\.' "$all" --apply-to queues >/dev/null
wpids=()
for i in 1 2 3; do wpids+=("$(cat "$work/w$i.pid")"); done

# scenario BROKER S ROUND PORT1 PORT2 PORT3 PGID...: S is two, all or
# quorum; the queue is declared through node 1 and used through 2 and 3.
scenario() {
	local broker=$1 s=$2 round=$3 p1=$4 p2=$5 p3=$6 before after
	shift 6
	pair_flags=(-f persistent)
	[ "$s" = quorum ] && pair_flags+=(-qa x-queue-type=quorum)
	perf_jobs=()
	declare_queue "$p1" "$s.r$round"
	before=$(group_cpu "$@")
	perf_pair "$broker-$s-r$round" "$s.r$round" "$p2" "$p3"
	wait "${perf_jobs[@]}" || log "$broker: $s round $round: a warren-perf failed (see $work/$broker-$s-r$round.*.log)"
	after=$(group_cpu "$@")
	record "$broker" "$s" "$round" $((after - before)) "$broker-$s-r$round"
	log "$broker: $s round $round: $(tail -1 "$results")"
	sleep 2
}

for round in $(seq "$rounds"); do
	order=(rabbitmq warren)
	((round % 2 == 0)) && order=(warren rabbitmq)
	for s in two all; do
		for broker in "${order[@]}"; do
			case $broker in
			rabbitmq) scenario rabbitmq "$s" "$round" $((base + 1)) $((base + 2)) $((base + 3)) "${rmq_pids[1]}" "${rmq_pids[2]}" "${rmq_pids[3]}" ;;
			warren) scenario warren "$s" "$round" $((base + 31)) $((base + 32)) $((base + 33)) "${wpids[@]}" ;;
			esac
		done
	done
	scenario rabbitmq quorum "$round" $((base + 1)) $((base + 2)) $((base + 3)) "${rmq_pids[1]}" "${rmq_pids[2]}" "${rmq_pids[3]}"
done

echo
echo "bench-ha: $rounds rounds of $seconds s, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ), load $(cut -d' ' -f1-3 /proc/loadavg); results in $results"
python3 - "$results" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(broker, s, key):
    v = [r[key] for r in rows if r["broker"] == broker and r["scenario"] == s]
    return statistics.median(v) if v else float("nan")
def spread(s):
    # The ratio warren/RabbitMQ mirrored of each round, lowest to highest.
    by = {}
    for r in rows:
        if r["scenario"] == s:
            by.setdefault(r["round"], {})[r["broker"]] = r["rate"]
    v = sorted(b["warren"] / b["rabbitmq"] for b in by.values() if "warren" in b and "rabbitmq" in b and b["rabbitmq"])
    return f"{v[0]:.2f}–{v[-1]:.2f}" if v else "n/a"
qr, qc = med("rabbitmq", "quorum", "rate"), med("rabbitmq", "quorum", "cpu_us_per_msg")
print()
print("| policy | RabbitMQ mirrored msg/s | RabbitMQ quorum msg/s | warren msg/s | warren/mirrored | warren/quorum | RabbitMQ mirrored CPU/msg | RabbitMQ quorum CPU/msg | warren CPU/msg | warren/mirrored |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
names = {"two": "ha-mode exactly 2", "all": "ha-mode all"}
for s in ("two", "all"):
    rr, wr = med("rabbitmq", s, "rate"), med("warren", s, "rate")
    rc, wc = med("rabbitmq", s, "cpu_us_per_msg"), med("warren", s, "cpu_us_per_msg")
    print(f"| {names[s]} | {rr:,.0f} | {qr:,.0f} | {wr:,.0f} | {wr/rr:.2f}× ({spread(s)}) | {wr/qr:.2f}× | {rc:.1f} µs | {qc:.1f} µs | {wc:.1f} µs | {wc/rc:.2f}× |")
EOF
