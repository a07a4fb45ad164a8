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
# Then, on warren: a queue mirrored on nodes 1 and 2 is filled with a
# backlog of 1 KiB persistent messages, a producer and a consumer run on
# it, and a policy change adds a mirror on node 3, which copies the
# backlog while they go on: their rates before and during the copy.
# Not part of CI.
#
#   ./scripts/bench-ha.sh                  3 rounds of 10 s, 1 GiB backlog
#   ./scripts/bench-ha.sh -d 30 -r 5 -o out -S 256   a 256 MiB backlog
#   ./scripts/bench-ha.sh -S 0             no synchronisation
#
# Environment: BENCH_PORT_BASE (default 27000) is the first of the
# loopback ports used (base to base+53). Needs root to install
# rabbitmq-server when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10
rounds=3
outdir=
sync_mib=1024
usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
while getopts "d:r:o:S:h" opt; do
	case $opt in
	S) sync_mib=$OPTARG ;;
	d) seconds=$OPTARG ;;
	r) rounds=$OPTARG ;;
	o) outdir=$OPTARG ;;
	h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
case $seconds in '' | *[!0-9]*) echo "bench-ha: -d wants whole seconds, got '$seconds'" >&2; exit 2 ;; esac
case $rounds in '' | 0 | *[!0-9]*) echo "bench-ha: -r wants a whole number of rounds, got '$rounds'" >&2; exit 2 ;; esac
case $sync_mib in '' | *[!0-9]*) echo "bench-ha: -S wants MiB, got '$sync_mib'" >&2; exit 2 ;; esac

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

# seconds_since T0: wall-clock seconds from $EPOCHREALTIME T0 to now.
seconds_since() { python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$1"; }

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

# ---- warren: a backlog synchronised to a new mirror under load -----------------
[ "$sync_mib" -gt 0 ] || exit 0
stop_rabbit_cluster # its CPU is not to be shared from here on
mirrors() { # mirrors I...: the ha-mode nodes policy on warren nodes I...
	local i list=
	for i in "$@"; do list+="${list:+,}\"$(wname "$i")\""; done
	wctl "$(wname 1)" set_policy ha-sync '^sync\.' "{\"ha-mode\":\"nodes\",\"ha-params\":[$list],\"ha-sync-mode\":\"automatic\"}" --apply-to queues >/dev/null
}
synced_on_3() { # whether node 3 holds an in-sync mirror of sync.q
	wctl "$(wname 1)" -q list_queues name synchronised_slave_pids --formatter json |
		python3 -c 'import json,sys; q=[r for r in json.load(sys.stdin) if r["name"]=="sync.q"]; sys.exit(0 if q and any("w3@" in str(p) for p in (q[0]["synchronised_slave_pids"] or [])) else 1)'
}
mirrors 1 2
n=$((sync_mib * 1024))
log "warren: filling sync.q (mirrored on nodes 1 and 2) with $n messages of 1 KiB"
t0=$EPOCHREALTIME
bin/warren-perf -h "$(uri $((base + 31)))" -u sync.q -x 1 -y 0 -C "$n" -c 100 -s 1024 -f persistent -ad=false >/dev/null 2>"$work/sync-fill.log"
log "warren: filled in $(seconds_since "$t0") s"
# A producer through node 2 and a consumer through node 3, on and on.
bin/warren-perf --json -h "$(uri $((base + 32)))" -u sync.q -x 1 -y 0 -c 100 -s 1024 -f persistent -ad=false -z 3600 >/dev/null 2>"$work/sync-prod.log" &
prod=$!
bin/warren-perf --json -h "$(uri $((base + 33)))" -u sync.q -x 0 -y 1 -q 100 -s 1024 -ad=false -z 3600 >/dev/null 2>"$work/sync-cons.log" &
cons=$!
pair_start=$EPOCHREALTIME
sleep 15
sync_start=$EPOCHREALTIME
mirrors 1 2 3
log "warren: a mirror on node 3 added; waiting for it to be in sync"
until synced_on_3; do
	sleep 0.5
	if [ "$(seconds_since "$sync_start" | cut -d. -f1)" -gt 1800 ]; then
		log "warren: node 3's mirror not in sync after 30 minutes"
		break
	fi
done
sync_end=$EPOCHREALTIME
sleep 5
kill -TERM "$prod" "$cons" 2>/dev/null || true
wait "$prod" "$cons" 2>/dev/null || true
python3 - "$work/sync-prod.log" "$work/sync-cons.log" "$pair_start" "$sync_start" "$sync_end" "$sync_mib" <<'EOF'
import re, statistics, sys
prod, cons, t0, ts, te, mib = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
def rates(path, what):
    out = []
    for line in open(path):
        m = re.match(r"time ([0-9.]+) s,.*" + what + r" ([0-9]+) msg/s", line)
        if m:
            out.append((float(m.group(1)), int(m.group(2))))
    return out
def mean(rs, lo, hi):
    v = [r for t, r in rs if lo < t <= hi]
    return statistics.mean(v) if v else float("nan")
b0, s0, s1 = 3, ts - t0, te - t0  # the first seconds of the pair are left out
sent, recv = rates(prod, "sent"), rates(cons, "received")
bs, br, ds, dr = mean(sent, b0, s0), mean(recv, b0, s0), mean(sent, s0, s1), mean(recv, s0, s1)
print()
print(f"warren: a {mib} MiB backlog synchronised to a new mirror in {te - ts:.1f} s while a producer and a consumer ran:")
print()
print("| | before the copy | during the copy | ratio |")
print("|---|---:|---:|---:|")
print(f"| published msg/s | {bs:,.0f} | {ds:,.0f} | {ds/bs:.2f}× |")
print(f"| consumed msg/s | {br:,.0f} | {dr:,.0f} | {dr/br:.2f}× |")
EOF
