#!/usr/bin/env bash
# Benchmarks restarting warren against RabbitMQ 3.10 (Debian's
# rabbitmq-server) with a durable queue full of persistent messages. For each
# broker and each way of stopping it (graceful: SIGTERM to warren, `rabbitmqctl
# stop` for RabbitMQ; kill: SIGKILL to every process of the broker), a fresh
# node gets -n messages of -s bytes on one queue (publisher confirms, no
# consumers), is stopped and is started again over its data; warren-perf
# restart-probe then measures the time from the new process's start to a
# complete AMQP handshake and to the delivery of the queue's first message,
# and reads the queue's depth with a passive declare. A table with
# warren/RabbitMQ ratios follows. Not part of CI: with the default million
# messages it takes about seven minutes, mostly filling RabbitMQ's queue.
# One broker runs at a time; other work on the machine skews the figures,
# so the load average is reported.
#
#   ./scripts/bench-restart.sh                   1,000,000 messages of 1024 bytes
#   ./scripts/bench-restart.sh -n 50000          a quick run
#   ./scripts/bench-restart.sh -s 1000 -o out    1000-byte messages, results kept in out/
#   ./scripts/bench-restart.sh -b warren -m kill  one broker, one way of stopping
#   ./scripts/bench-restart.sh -w 0              stop at once after the last confirm
#                                                (default: 5 s later)
#
# Environment: BENCH_PORT_BASE (default 26740, below the kernel's ephemeral
# port range) is the first of the loopback ports used: RabbitMQ AMQP,
# distribution and epmd on base..base+2, warren AMQP, HTTP and cluster on
# base+10..base+12. Needs root to install rabbitmq-server when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# $EPOCHREALTIME then has a decimal point, whatever the caller's locale.
export LC_ALL=C

count=1000000
size=1024
settle=5
outdir=
brokers="rabbitmq,warren"
modes="graceful,kill"
usage() { sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; }
while getopts "n:s:w:o:b:m:h" opt; do
	case $opt in
	n) count=$OPTARG ;;
	s) size=$OPTARG ;;
	w) settle=$OPTARG ;;
	o) outdir=$OPTARG ;;
	b) brokers=$OPTARG ;;
	m) modes=$OPTARG ;;
	h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
for v in "n:$count" "s:$size" "w:$settle"; do
	case ${v#*:} in '' | *[!0-9]*) echo "bench-restart: -${v%%:*} wants a whole number, got '${v#*:}'" >&2; exit 2 ;; esac
done
[ "$count" -gt 0 ] || { echo "bench-restart: -n must be at least 1" >&2; exit 2; }
[ "$size" -ge 8 ] || { echo "bench-restart: -s must be at least 8 (warren-perf's timestamp)" >&2; exit 2; }
for b in ${brokers//,/ }; do
	case $b in rabbitmq | warren) ;; *) echo "bench-restart: unknown broker '$b' (rabbitmq, warren)" >&2; exit 2 ;; esac
done
for m in ${modes//,/ }; do
	case $m in graceful | kill) ;; *) echo "bench-restart: unknown stop mode '$m' (graceful, kill)" >&2; exit 2 ;; esac
done

base=${BENCH_PORT_BASE:-26740}
rmq_port=$base rmq_dist=$((base + 1)) rmq_epmd=$((base + 2))
w_amqp=$((base + 10)) w_mgmt=$((base + 11)) w_cluster=$((base + 12))
. scripts/lib/rabbitmq.sh
check_ports bench-restart $rmq_port $rmq_dist $rmq_epmd $w_amqp $w_mgmt $w_cluster

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v n="$(nproc)" '{ exit !($1 > n / 2) }' /proc/loadavg; then
	echo "bench-restart: warning: load average ${load_start%% *} on $(nproc) CPUs at the start; if other work is running, it skews the figures" >&2
fi
work=$(mktemp -d /tmp/warren-bench-restart.XXXXXX)
[ -n "$outdir" ] || outdir=$work
mkdir -p "$outdir"
results=$outdir/results.jsonl # one warren-perf restart-probe line per restart
fills=$outdir/fill.jsonl      # one warren-perf line per filling of the queue
: >"$results"
: >"$fills"
log() { printf '%s bench-restart: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

queue=bench-restart
# Publisher confirms with this many messages in flight: enough to keep
# either broker's disk busy.
confirm_window=1000

# micros: a $EPOCHREALTIME value (6 decimals) as whole microseconds.
micros() { echo "${1/./}"; }
# seconds_since t0: seconds from $EPOCHREALTIME value t0 until now.
seconds_since() {
	local d=$(($(micros "$EPOCHREALTIME") - $(micros "$1")))
	printf '%d.%06d' $((d / 1000000)) $((d % 1000000))
}

# ---- build ------------------------------------------------------------------
log "building warren-perf and warren"
mkdir -p bin
nice -n 10 go build -o bin/ ./cmd/warren-perf
warren_built=yes
if [[ ",$brokers," == *",warren,"* ]] && ! nice -n 10 go build -o bin/ ./cmd/warren 2>"$outdir/warren-build.log"; then
	warren_built=no
	log "WARREN DID NOT BUILD (see $outdir/warren-build.log); reporting RabbitMQ only"
fi

# ---- RabbitMQ ---------------------------------------------------------------
rmq_dir=$work/rabbitmq

# ---- warren -----------------------------------------------------------------
warren_pid=
warren_data=$work/warren-data
# launch_warren starts warren over warren_data and returns at once;
# warren_started is $EPOCHREALTIME just before.
launch_warren() {
	mkdir -p "$warren_data"
	log "starting warren on 127.0.0.1:$w_amqp"
	warren_started=$EPOCHREALTIME
	bin/warren --data-dir "$warren_data" --amqp-listen "127.0.0.1:$w_amqp" \
		--mgmt-listen "127.0.0.1:$w_mgmt" --cluster-listen "127.0.0.1:$w_cluster" \
		--prometheus-listen 127.0.0.1:0 --cookie-file "$work/warren.cookie" \
		>>"$work/warren.out" 2>&1 &
	warren_pid=$!
}
# start_warren starts warren and waits until it accepts TCP connections.
start_warren() {
	launch_warren
	for _ in $(seq 300); do
		if ! kill -0 "$warren_pid" 2>/dev/null; then
			wait "$warren_pid" 2>/dev/null || true
			warren_pid=
			log "WARREN FAILED TO START: bin/warren exited; its output:"
			tail -20 "$work/warren.out" >&2
			return 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$w_amqp") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	log "WARREN FAILED TO START: nothing listening on 127.0.0.1:$w_amqp after 30 s"
	kill_warren
	return 1
}
# shutdown_warren [seconds]: SIGTERM, then wait up to seconds (default 120)
# for warren to exit. Returns 1, leaving warren running, when it has not.
shutdown_warren() {
	[ -n "$warren_pid" ] || return 0
	local limit=${1:-120} t0=$SECONDS
	log "stopping warren"
	kill -TERM "$warren_pid" 2>/dev/null || true
	while kill -0 "$warren_pid" 2>/dev/null; do
		[ $((SECONDS - t0)) -lt "$limit" ] || return 1
		sleep 0.02
	done
	wait "$warren_pid" 2>/dev/null || true
	warren_pid=
}
kill_warren() {
	[ -n "$warren_pid" ] || return 0
	log "killing warren"
	kill -KILL "$warren_pid" 2>/dev/null || true
	wait "$warren_pid" 2>/dev/null || true
	warren_pid=
}
stop_warren() {
	shutdown_warren 120 || kill_warren
}

# run_child stdout stderr cmd...: runs cmd in the background with its
# output appended to file stdout and its errors in file stderr, and waits
# for it, so that a signal to this script is handled at once, not only
# after cmd ends.
child=
run_child() {
	local rc=0 out=$1 err=$2
	shift 2
	"$@" >>"$out" 2>"$err" &
	child=$!
	wait "$child" || rc=$?
	child=
	return $rc
}

cleanup() {
	if [ -n "$child" ]; then
		kill -TERM "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	stop_warren
	stop_rabbitmq
	# Broker state is scratch; results and logs stay.
	if [ "$outdir" = "$work" ]; then
		rm -rf "$rmq_dir" "$warren_data"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- one broker -------------------------------------------------------------
problems=()

# The broker-specific steps, for broker $1.
broker_start() { if [ "$1" = rabbitmq ]; then start_rabbitmq; else start_warren; fi; }
broker_launch() { if [ "$1" = rabbitmq ]; then launch_rabbitmq; else launch_warren; fi; }
broker_pid() { if [ "$1" = rabbitmq ]; then echo "$rmq_pid"; else echo "$warren_pid"; fi; }
broker_started() { if [ "$1" = rabbitmq ]; then echo "$rmq_started"; else echo "$warren_started"; fi; }
broker_uri() {
	if [ "$1" = rabbitmq ]; then echo "amqp://guest:guest@127.0.0.1:$rmq_port/"; else echo "amqp://guest:guest@127.0.0.1:$w_amqp/"; fi
}
broker_shutdown() { if [ "$1" = rabbitmq ]; then shutdown_rabbitmq 600; else shutdown_warren 600; fi; }
broker_kill() { if [ "$1" = rabbitmq ]; then kill_rabbitmq; else kill_warren; fi; }
broker_stop() { if [ "$1" = rabbitmq ]; then stop_rabbitmq; else stop_warren; fi; }
# broker_wipe broker mode: keeps the node's log as broker-mode.log in outdir
# and removes its data.
broker_wipe() {
	if [ "$1" = rabbitmq ]; then
		cat "$rmq_dir"/log/*.log >"$outdir/rabbitmq-$2.log" 2>/dev/null || true
		rm -rf "$rmq_dir"
	else
		mv "$work/warren.out" "$outdir/warren-$2.log" 2>/dev/null || true
		rm -rf "$warren_data"
	fi
}
# json_field name: the number after "name": in the JSON line on stdin.
json_field() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p"; }

# cycle broker mode: fill a fresh node, stop it (mode), start it again and
# probe it.
cycle() {
	local broker=$1 mode=$2 uri pid line rate confirmed nacked t0 took
	uri=$(broker_uri "$broker")
	log "$broker/$mode: starting a fresh node"
	if ! broker_start "$broker"; then
		problems+=("$broker/$mode: the broker did not start")
		return
	fi
	pid=$(broker_pid "$broker")
	log "$broker/$mode: publishing $count persistent messages of $size bytes to $queue"
	: >"$work/fill.json"
	if ! run_child "$work/fill.json" "$outdir/$broker-fill-$mode.log" \
		bin/warren-perf --json --broker "$broker" --id "fill-$mode" --broker-pid "$pid" -h "$uri" \
		-x 1 -y 0 -C "$count" -s "$size" -c "$confirm_window" -f persistent -u "$queue" -ad=false; then
		log "$broker/$mode: publishing FAILED:"
		tail -5 "$outdir/$broker-fill-$mode.log" >&2
		problems+=("$broker/$mode: publishing failed (see $outdir/$broker-fill-$mode.log)")
		broker_stop "$broker"
		broker_wipe "$broker" "$mode"
		return
	fi
	line=$(cat "$work/fill.json")
	echo "$line" >>"$fills"
	rate=$(json_field confirm_rate <<<"$line")
	confirmed=$(json_field confirmed <<<"$line")
	nacked=$(json_field nacked <<<"$line")
	log "$broker/$mode: $confirmed confirmed, $nacked nacked, $(printf '%.0f' "$rate") msg/s"
	if [ "$confirmed" != "$count" ] || [ "$nacked" != 0 ]; then
		problems+=("$broker/$mode: $confirmed of $count messages confirmed, $nacked nacked")
	fi
	sleep "$settle"

	t0=$EPOCHREALTIME
	if [ "$mode" = kill ]; then
		broker_kill "$broker"
	elif ! broker_shutdown "$broker"; then
		log "$broker/$mode: still running 600 s after the stop; killing it, so this is no graceful restart"
		problems+=("$broker/$mode: the graceful stop did not finish within 600 s")
		broker_kill "$broker"
		broker_wipe "$broker" "$mode"
		return
	fi
	took=$(seconds_since "$t0")
	log "$broker/$mode: stopped in $took s; starting it again over its data"

	broker_launch "$broker"
	pid=$(broker_pid "$broker")
	if ! run_child "$results" "$outdir/$broker-probe-$mode.log" \
		bin/warren-perf restart-probe --json -h "$uri" -u "$queue" -start "$(broker_started "$broker")" \
		-expect "$count" -broker-pid "$pid" -broker "$broker" -stop "$mode" -stop-seconds "$took" \
		-publish-rate "$rate" -timeout 30m; then
		log "$broker/$mode: the restart probe FAILED:"
		tail -5 "$outdir/$broker-probe-$mode.log" >&2
		problems+=("$broker/$mode: restart probe failed (see $outdir/$broker-probe-$mode.log)")
	else
		tail -1 "$outdir/$broker-probe-$mode.log" | sed 's/^/    /' >&2
	fi
	broker_stop "$broker"
	broker_wipe "$broker" "$mode"
}

for broker in ${brokers//,/ }; do
	if [ "$broker" = warren ] && [ "$warren_built" != yes ]; then
		problems+=("warren did not build (see $outdir/warren-build.log)")
		continue
	fi
	for mode in ${modes//,/ }; do
		cycle "$broker" "$mode"
		sleep 2 # let the disk settle before the next cycle
	done
done

echo
echo "restart with $count persistent messages of $size bytes on one durable queue, $(nproc) CPUs," \
	"$(date -u +%Y-%m-%dT%H:%MZ), load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end;" \
	"results in $results"
echo "Times count from the broker process's start; \"stop took\" includes rabbitmqctl's own start for RabbitMQ's graceful stop."
echo
report=$(bin/warren-perf restart-report -baseline rabbitmq "$results")
echo "$report"
while read -r line; do
	case $line in *MISSING* | *EXTRA*) problems+=("depth check failed: $line") ;; esac
done <<<"$report"
if [ ${#problems[@]} -gt 0 ]; then
	echo
	printf 'bench-restart: incomplete: %s\n' "${problems[@]}" >&2
	exit 1
fi
