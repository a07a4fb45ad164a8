#!/usr/bin/env bash
# Measures what the management API costs on a loaded node: 10,000 queues
# and 1,000 connections held open, then
#   1. the time of GET /api/queues?page=1&page_size=100 (what the web UI's
#      queue page asks for), over 20 requests;
#   2. publish throughput (warren-perf, 1 producer, 1 consumer, 100 B, acks
#      with prefetch 100)
#      with nobody watching and with the web UI's requests every 5 seconds,
#      alternating three times each.
# Not part of CI: make bench-mgmt.
set -euo pipefail
cd "$(dirname "$0")/.."
queues=${QUEUES:-10000}
conns=${CONNECTIONS:-1000}
seconds=${SECONDS_PER_RUN:-15}
go build -o bin/ ./cmd/warren ./cmd/warren-perf
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
amqp=$(free_port)
http=$(free_port)
bin/warren --data-dir "$work/data" --amqp-listen "127.0.0.1:$amqp" --mgmt-listen "127.0.0.1:$http" \
	--cluster-listen 127.0.0.1:0 --prometheus-listen 127.0.0.1:0 --cookie-file "$work/cookie" 2>"$work/warren.log" &
pid=$!
holder=
poller=
cleanup() {
	[ -n "$poller" ] && kill "$poller" 2>/dev/null
	[ -n "$holder" ] && kill "$holder" 2>/dev/null && wait "$holder" 2>/dev/null
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$amqp") 2>/dev/null && break; sleep 0.1; done
uri="amqp://guest:guest@127.0.0.1:$amqp/"

bin/warren-perf idle -h "$uri" -connections "$conns" -queues "$queues" -broker-pid "$pid" -hold 2>"$work/idle.log" &
holder=$!
until grep -q holding "$work/idle.log"; do
	kill -0 "$holder" 2>/dev/null || { cat "$work/idle.log" >&2; exit 1; }
	sleep 1
done
sleep 6 # one rate sample with everything in place

api() { curl -s -o /dev/null -w '%{time_total}\n' -u guest:guest "http://127.0.0.1:$http$1"; }
times=$(for _ in $(seq 20); do api '/api/queues?page=1&page_size=100'; done | sort -n)
median=$(echo "$times" | sed -n 10p)
worst=$(echo "$times" | tail -1)
printf 'GET /api/queues?page=1&page_size=100 with %d queues, %d connections: median %.1f ms, worst %.1f ms\n' \
	"$queues" "$conns" "$(echo "$median*1000" | bc -l)" "$(echo "$worst*1000" | bc -l)"

# What an open web UI asks for every 5 seconds.
ui_poll() {
	while :; do
		api '/api/overview?lengths_age=600&lengths_incr=5&msg_rates_age=600&msg_rates_incr=5' >/dev/null
		api '/api/queues?page=1&page_size=100' >/dev/null
		api '/api/connections?page=1&page_size=100' >/dev/null
		api '/api/channels?page=1&page_size=100' >/dev/null
		sleep 5
	done
}
rate() {
	bin/warren-perf --json -h "$uri" -z "$seconds" -x 1 -y 1 -s 100 -q 100 -u bench-mgmt 2>/dev/null |
		python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["receive_rate"])'
}
without=()
with=()
for _ in 1 2 3; do
	without+=("$(rate)")
	ui_poll &
	poller=$!
	with+=("$(rate)")
	kill "$poller"
	wait "$poller" 2>/dev/null || true
	poller=
done
python3 - "${without[@]}" -- "${with[@]}" <<'PY'
import statistics, sys
args = sys.argv[1:]
i = args.index("--")
a = [float(x) for x in args[:i]]
b = [float(x) for x in args[i + 1:]]
ma, mb = statistics.median(a), statistics.median(b)
print("publish/receive rate without UI: %s msg/s (median %.0f)" % (", ".join("%.0f" % x for x in a), ma))
print("publish/receive rate with UI:    %s msg/s (median %.0f)" % (", ".join("%.0f" % x for x in b), mb))
print("with UI / without: %.3f (drop %.1f%%)" % (mb / ma, 100 * (1 - mb / ma)))
PY
