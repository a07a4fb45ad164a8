#!/usr/bin/env bash
# Runs the integration tests that ship with github.com/rabbitmq/amqp091-go
# (build tag "integration", broker at AMQP_URL) against a warren node. The
# recovery tests close connections through the management API, which they
# expect on localhost:15672.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(go list -m -f '{{.Version}}' github.com/rabbitmq/amqp091-go)
src=$(go mod download -json "github.com/rabbitmq/amqp091-go@${version}" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
[ -d "$src" ] || { echo "amqp091-go ${version} not in the module cache" >&2; exit 1; }

work=$(mktemp -d)
node_pid=
cleanup() {
	[ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

cp -r "$src" "$work/amqp091-go"
chmod -R u+w "$work/amqp091-go"

go build -o "$work/warren" ./cmd/warren
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The suite runs its RabbitMQ-specific tests only when the server calls
# itself RabbitMQ (and leaks a connection in each when it does not).
echo "server_properties.product = RabbitMQ" >"$work/warren.conf"
"$work/warren" --config "$work/warren.conf" --data-dir "$work/data" --amqp-listen "127.0.0.1:${port}" \
	--mgmt-listen 127.0.0.1:15672 --cluster-listen 127.0.0.1:0 --prometheus-listen 127.0.0.1:0 --cookie-file "$work/cookie" 2>"$work/warren.log" &
node_pid=$!
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null && break
	sleep 0.1
done

cd "$work/amqp091-go"
status=0
AMQP_URL="amqp://guest:guest@127.0.0.1:${port}/" \
	go test -tags integration -count=1 -race ${AMQP091_TEST_FLAGS:-} -timeout 10m . || status=$?
if [ $status -ne 0 ]; then
	echo "--- warren log" >&2
	tail -50 "$work/warren.log" >&2
fi
exit $status
