#!/usr/bin/env bash
# Measures warren's resident memory with 10,000 idle connections (one
# channel each) and then 100,000 empty queues. Not part of CI.
#   ./scripts/bench-memory.sh [connections] [queues]
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-10000}
queues=${2:-100000}
go build -o bin/ ./cmd/warren ./cmd/warren-perf
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bin/warren --data-dir "$work/data" --amqp-listen "127.0.0.1:$port" --mgmt-listen 127.0.0.1:0 --cluster-listen 127.0.0.1:0 --prometheus-listen 127.0.0.1:0 --cookie-file "$work/cookie" 2>"$work/warren.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
bin/warren-perf idle -h "amqp://guest:guest@127.0.0.1:$port/" -connections "$conns" -queues "$queues" -broker-pid "$pid"
