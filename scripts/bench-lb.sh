#!/usr/bin/env bash
# Benchmarks warren-lb against Debian's haproxy in one run, with the same
# configuration, on 127.0.0.1:
#   bulk throughput  1 GiB through one connection, and through 50 in parallel
#   connection rate  short connections per second (connect, 1 byte each way, close)
#   added latency    p50/p99 round trip of a 64-byte message, minus the direct one
#   memory           RSS growth per idle proxied connection (1,000 connections)
# Prints a markdown table with warren-lb / haproxy ratios.
#   BENCH_BYTES=268435456 ./scripts/bench-lb.sh   smaller bulk transfers
#   BENCH_ONLY=rate ./scripts/bench-lb.sh         only some rows (bulk, rate,
#                                                 latency, idle; comma-separated)
#   BENCH_ROUNDS=15 ./scripts/bench-lb.sh         rounds for the rate and latency
#                                                 rows (medians; default 9)
# Not part of CI: run it with `make bench-lb`.
set -euo pipefail
cd "$(dirname "$0")/.."

bytes=${BENCH_BYTES:-1073741824}
rate_secs=${BENCH_RATE_SECONDS:-2}
rounds=${BENCH_ROUNDS:-9}
only=${BENCH_ONLY:-bulk,rate,latency,idle}
want() { [[ ",$only," == *",$1,"* ]]; }

command -v haproxy >/dev/null || { echo "bench-lb: Debian's haproxy is needed (apt-get install haproxy)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tmp=$(mktemp -d)
pids=()
cleanup() {
	cat "$tmp/warren-lb.log" "$tmp/haproxy.log" >&2 2>/dev/null
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT


go build -o "$tmp/warren-lb" ./cmd/warren-lb
go build -o "$tmp/benchtool" ./internal/lb/benchtool

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$tmp/benchtool" serve -addr 127.0.0.1:0 >"$tmp/backend.addr" &
pids+=($!)
for _ in $(seq 50); do [ -s "$tmp/backend.addr" ] && break; sleep 0.1; done
backend=$(cat "$tmp/backend.addr")

config() {
	cat <<CFG
global
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen bench
    bind 127.0.0.1:$1
    balance roundrobin
    server s1 $backend
CFG
}

hp_port=$(free_port)
wl_port=$(free_port)
config "$hp_port" >"$tmp/haproxy.cfg"
config "$wl_port" >"$tmp/warren-lb.cfg"
haproxy -db -f "$tmp/haproxy.cfg" 2>"$tmp/haproxy.log" &
hp_pid=$!
pids+=($hp_pid)
"$tmp/warren-lb" -db -q -f "$tmp/warren-lb.cfg" 2>"$tmp/warren-lb.log" &
wl_pid=$!
pids+=($wl_pid)
for port in "$hp_port" "$wl_port"; do
	for _ in $(seq 50); do
		python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null && break
		sleep 0.1
	done
done

hp=127.0.0.1:$hp_port
wl=127.0.0.1:$wl_port
bt=$tmp/benchtool

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }

echo "| measure | warren-lb | haproxy 2.6 | ratio |"
echo "|---|---|---|---|"

# Alternate which proxy goes first to spread the machine's noise.
if want bulk; then
	w=$("$bt" bulk -addr "$wl" -bytes "$bytes" -conns 1)
	h=$("$bt" bulk -addr "$hp" -bytes "$bytes" -conns 1)
	row "bulk, 1 connection (MiB/s)" "$w" "$h"
	h=$("$bt" bulk -addr "$hp" -bytes "$bytes" -conns 50)
	w=$("$bt" bulk -addr "$wl" -bytes "$bytes" -conns 50)
	row "bulk, 50 connections (MiB/s)" "$w" "$h"
fi
# The rate and latency rows are the medians of several short rounds, each
# running both proxies back to back in alternating order: on a shared
# 2-core machine one long run of each mostly measures whatever else ran
# at the time.
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
if want rate; then
	ws=() hs=()
	for r in $(seq "$rounds"); do
		if ((r % 2)); then
			ws+=("$("$bt" rate -addr "$wl" -duration "${rate_secs}s")")
			hs+=("$("$bt" rate -addr "$hp" -duration "${rate_secs}s")")
		else
			hs+=("$("$bt" rate -addr "$hp" -duration "${rate_secs}s")")
			ws+=("$("$bt" rate -addr "$wl" -duration "${rate_secs}s")")
		fi
	done
	row "connection rate (conn/s)" "$(median "${ws[@]}")" "$(median "${hs[@]}")"
fi
if want latency; then
	w50=() w99=() h50=() h99=()
	for r in $(seq "$rounds"); do
		read -r a b < <("$bt" latency -addr "$hp" -direct "$backend")
		h50+=("$a") h99+=("$b")
		read -r a b < <("$bt" latency -addr "$wl" -direct "$backend")
		w50+=("$a") w99+=("$b")
	done
	row "added latency p50 (µs)" "$(median "${w50[@]}")" "$(median "${h50[@]}")"
	row "added latency p99 (µs)" "$(median "${w99[@]}")" "$(median "${h99[@]}")"
fi
if want idle; then
	w=$("$bt" idle -addr "$wl" -pid "$wl_pid" -n 1000)
	h=$("$bt" idle -addr "$hp" -pid "$hp_pid" -n 1000)
	row "RSS per idle connection (KiB)" "$w" "$h"
fi
