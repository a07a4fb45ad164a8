#!/usr/bin/env bash
# Benchmarks warren against RabbitMQ 3.10 (Debian's rabbitmq-server) in one
# run: the same warren-perf scenarios against each broker, then a table of
# receive rates, latencies and broker CPU time per message, with
# warren/RabbitMQ ratios. Both brokers run side by side, and the scenarios
# run in rounds: each round runs every scenario against one broker and
# then the other, in alternating order, so both see the machine in the same
# state; the tables show medians over the rounds and the spread of the
# ratios. Not part of CI: it takes about 7 minutes.
#
#   ./scripts/bench-broker.sh                 every scenario, 3 rounds of 10 s
#   ./scripts/bench-broker.sh -d 30 -r 5 -o out  5 rounds of 30 s, results in out/
#   ./scripts/bench-broker.sh -s s1,s5        only some scenarios (s5: s5a, s5b)
#   ./scripts/bench-broker.sh -b rabbitmq     only one broker
#   ./scripts/bench-broker.sh -b warren -w HEAD~3 -B warren-HEAD~3 -s s5
#                 warren against itself as built from a git revision (-w
#                 REV adds the broker warren-REV), ratios to it (-B)
#
# Environment: BENCH_PORT_BASE (default 26700, below the kernel's
# ephemeral port range) is the first of the loopback ports used: RabbitMQ
# AMQP, distribution and epmd on base..base+2, warren AMQP, HTTP and cluster
# on base+10..base+12, warren-REV's on base+20..base+22. Needs root to
# install rabbitmq-server when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10
rounds=3
outdir=
only=
brokers="rabbitmq,warren"
rev=
baseline=rabbitmq
usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }
while getopts "d:r:o:s:b:w:B:h" opt; do
	case $opt in
	d) seconds=$OPTARG ;;
	r) rounds=$OPTARG ;;
	o) outdir=$OPTARG ;;
	s) only=$OPTARG ;;
	b) brokers=$OPTARG ;;
	w) rev=$OPTARG ;;
	B) baseline=$OPTARG ;;
	h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
case $seconds in '' | *[!0-9]*) echo "bench-broker: -d wants whole seconds, got '$seconds'" >&2; exit 2 ;; esac
case $rounds in '' | 0 | *[!0-9]*) echo "bench-broker: -r wants a whole number of rounds, got '$rounds'" >&2; exit 2 ;; esac

base=${BENCH_PORT_BASE:-26700}
rmq_port=$base rmq_dist=$((base + 1)) rmq_epmd=$((base + 2))
w_amqp=$((base + 10)) w_mgmt=$((base + 11)) w_cluster=$((base + 12))
r_amqp=$((base + 20)) r_mgmt=$((base + 21)) r_cluster=$((base + 22))
. scripts/lib/rabbitmq.sh
check_ports bench-broker $rmq_port $rmq_dist $rmq_epmd $w_amqp $w_mgmt $w_cluster
if [ -n "$rev" ]; then
	git rev-parse --verify -q "$rev^{commit}" >/dev/null || { echo "bench-broker: -w: no git revision '$rev'" >&2; exit 2; }
	check_ports bench-broker $r_amqp $r_mgmt $r_cluster
	brokers="$brokers,warren-$rev"
fi

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d /tmp/warren-bench.XXXXXX)
[ -n "$outdir" ] || outdir=$work
mkdir -p "$outdir"
results=$outdir/results.jsonl
: >"$results"
log() { printf '%s bench-broker: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# The scenarios: label and warren-perf flags. Every scenario uses one queue
# that its producers publish to and its consumers share; {round} in a
# durable queue's name keeps what one round leaves from the next.
scenarios=(
	"s1-1p1c-100B-autoack|-x 1 -y 1 -s 100 -a"
	"s2-1p1c-100B-confirm-ack|-x 1 -y 1 -s 100 -c 100 -q 100"
	"s3-4p4c-1KiB-confirm-ack|-x 4 -y 4 -s 1024 -c 100 -q 100"
	"s4-1p1c-100B-rate5000|-x 1 -y 1 -s 100 -r 5000 -q 100"
	"s5a-1p1c-1KiB-persistent|-x 1 -y 1 -s 1024 -c 100 -q 100 -f persistent -u bench-durable-1-r{round}"
	"s5b-4p4c-1KiB-persistent|-x 4 -y 4 -s 1024 -c 100 -q 100 -f persistent -u bench-durable-4-r{round}"
)

# ---- build ------------------------------------------------------------------
log "building warren-perf and warren"
mkdir -p bin
nice -n 10 go build -o bin/ ./cmd/warren-perf
warren_built=yes
if ! nice -n 10 go build -o bin/ ./cmd/warren 2>"$outdir/warren-build.log"; then
	warren_built=no
	log "WARREN DID NOT BUILD (see $outdir/warren-build.log); reporting RabbitMQ only"
fi

rev_built=no
if [ -n "$rev" ]; then
	log "building warren at $rev"
	git worktree add -q --detach "$work/rev-src" "$rev"
	if (cd "$work/rev-src" && nice -n 10 go build -o "$work/warren-rev" ./cmd/warren) 2>"$outdir/warren-$rev-build.log"; then
		rev_built=yes
	else
		log "WARREN AT $rev DID NOT BUILD (see $outdir/warren-$rev-build.log)"
	fi
	git worktree remove --force "$work/rev-src"
fi

# ---- RabbitMQ ---------------------------------------------------------------
rmq_dir=$work/rabbitmq

# ---- warren -----------------------------------------------------------------
# Each warren broker by name: its process, and how to start it.
declare -A pids
start_warren() { # name binary amqp mgmt cluster
	local name=$1 bin=$2 amqp=$3 mgmt=$4 cluster=$5 pid
	mkdir -p "$work/$name-data"
	log "starting $name on 127.0.0.1:$amqp"
	"$bin" --data-dir "$work/$name-data" --amqp-listen "127.0.0.1:$amqp" \
		--mgmt-listen "127.0.0.1:$mgmt" --cluster-listen "127.0.0.1:$cluster" \
		--node-name "warren@localhost:$cluster" \
		--prometheus-listen 127.0.0.1:0 --cookie-file "$work/warren.cookie" \
		>"$outdir/$name.out" 2>&1 &
	pid=$!
	for _ in $(seq 300); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" 2>/dev/null || true
			log "$name FAILED TO START: $bin exited; its output:"
			tail -20 "$outdir/$name.out" >&2
			return 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$amqp") 2>/dev/null; then
			log "$name is up (pid $pid)"
			pids[$name]=$pid
			return 0
		fi
		sleep 0.1
	done
	log "$name FAILED TO START: nothing listening on 127.0.0.1:$amqp after 30 s; its output:"
	tail -20 "$outdir/$name.out" >&2
	pids[$name]=$pid
	stop_warren "$name"
	return 1
}
stop_warren() { # name
	local pid=${pids[$1]:-}
	[ -n "$pid" ] || return 0
	log "stopping $1"
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	unset "pids[$1]"
}
stop_warrens() {
	local name
	for name in "${!pids[@]}"; do stop_warren "$name"; done
}

cleanup() {
	stop_warrens
	stop_rabbitmq
	# Broker state is scratch; results and logs stay.
	if [ "$outdir" = "$work" ]; then
		rm -rf "$rmq_dir" "$work"/*-data "$work/warren-rev"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- scenarios --------------------------------------------------------------
problems=()
# wanted id: whether -s asked for scenario id (s5 selects s5a and s5b).
wanted() {
	local item
	[ -n "$only" ] || return 0
	for item in ${only//,/ }; do
		case $1 in "$item" | "$item"[a-z]) return 0 ;; esac
	done
	return 1
}

# run_scenario broker uri pid label flags round
run_scenario() {
	local broker=$1 uri=$2 pid=$3 label=$4 flags=${5//\{round\}/$6} round=$6
	log "$broker: $label round $round/$rounds ($flags, ${seconds}s)"
	# shellcheck disable=SC2086 # flags are words on purpose
	if ! bin/warren-perf --json --broker "$broker" --id "$label" --broker-pid "$pid" \
		-h "$uri" -z "$seconds" $flags >>"$results" 2>"$outdir/$broker-$label-r$round.log"; then
		log "$broker: $label round $round FAILED:"
		problems+=("$broker: $label round $round failed (see $outdir/$broker-$label-r$round.log)")
		tail -5 "$outdir/$broker-$label-r$round.log" >&2
	fi
	sleep 2 # let the broker settle before the next run
}

running=()
if [[ ",$brokers," == *",rabbitmq,"* ]]; then
	if start_rabbitmq; then
		running+=(rabbitmq)
	else
		problems+=("RabbitMQ did not start")
	fi
fi
if [[ ",$brokers," == *",warren,"* ]]; then
	if [ "$warren_built" = yes ] && start_warren warren bin/warren $w_amqp $w_mgmt $w_cluster; then
		running+=(warren)
	else
		echo "bench-broker: warren did not start; the table shows the others' figures only" >&2
		problems+=("warren did not start (see $outdir/warren.out or $outdir/warren-build.log)")
	fi
fi
if [ -n "$rev" ]; then
	if [ "$rev_built" = yes ] && start_warren "warren-$rev" "$work/warren-rev" $r_amqp $r_mgmt $r_cluster; then
		running+=("warren-$rev")
	else
		problems+=("warren at $rev did not start (see $outdir/warren-$rev.out or $outdir/warren-$rev-build.log)")
	fi
fi
for round in $(seq "$rounds"); do
	order=("${running[@]}")
	if ((round % 2 == 0)); then
		order=()
		for ((i = ${#running[@]} - 1; i >= 0; i--)); do order+=("${running[i]}"); done
	fi
	for entry in "${scenarios[@]}"; do
		label=${entry%%|*}
		wanted "${label%%-*}" || continue
		for broker in "${order[@]}"; do
			case $broker in
			rabbitmq) run_scenario rabbitmq "amqp://guest:guest@127.0.0.1:$rmq_port/" "$rmq_pid" "$label" "${entry#*|}" "$round" ;;
			warren) run_scenario warren "amqp://guest:guest@127.0.0.1:$w_amqp/" "${pids[warren]}" "$label" "${entry#*|}" "$round" ;;
			warren-*) run_scenario "$broker" "amqp://guest:guest@127.0.0.1:$r_amqp/" "${pids[$broker]}" "$label" "${entry#*|}" "$round" ;;
			esac
		done
	done
done
stop_rabbitmq
stop_warrens

echo
echo "warren-perf, $rounds rounds of ${seconds} s per scenario and broker, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)," \
	"load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end; results in $results"
echo
bin/warren-perf report -baseline "$baseline" "$results"
if [ ${#problems[@]} -gt 0 ]; then
	echo
	printf 'bench-broker: incomplete: %s\n' "${problems[@]}" >&2
	exit 1
fi
