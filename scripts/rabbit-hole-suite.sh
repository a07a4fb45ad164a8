#!/usr/bin/env bash
# Runs the test suite that ships with github.com/michaelklishin/rabbit-hole
# (a Go client of RabbitMQ's management API) against a warren node. The
# suite expects AMQP on localhost:5672 and the API on 127.0.0.1:15672, so
# node and suite run in a network namespace of their own, where those
# ports are free whatever runs on the machine. Needs root. Specs for
# features warren does not have are skipped by name; README.md's
# compatibility section lists them.
set -euo pipefail
cd "$(dirname "$0")/.."

module=github.com/michaelklishin/rabbit-hole/v2
version=v2.16.0
[ "$(id -u)" -eq 0 ] || { echo "rabbit-hole-suite: needs root (network namespace)" >&2; exit 1; }

work=$(mktemp -d)
ns=warren-rh-$$
node_pid=
cleanup() {
	[ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

src=$(go mod download -json "$module@$version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
[ -d "$src" ] || { echo "rabbit-hole-suite: cannot download $module@$version" >&2; exit 1; }
cp -r "$src" "$work/rabbit-hole"
chmod -R u+w "$work/rabbit-hole"
# The namespace has no network: fetch the suite's modules first.
(cd "$work/rabbit-hole" && go mod download && go test -c -o "$work/rabbit-hole.test" .)
go build -o "$work/" ./cmd/warren ./cmd/warrenctl

ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
echo "server_properties.product = RabbitMQ" >"$work/warren.conf"
ip netns exec "$ns" "$work/warren" --config "$work/warren.conf" --data-dir "$work/data" \
	--amqp-listen 127.0.0.1:5672 --mgmt-listen 127.0.0.1:15672 --cluster-listen 127.0.0.1:25672 \
	--prometheus-listen 127.0.0.1:15692 --cookie-file "$work/cookie" 2>"$work/warren.log" &
node_pid=$!
ctl() { ip netns exec "$ns" "$work/warrenctl" --port 25672 --cookie-file "$work/cookie" -q "$@" >/dev/null; }
for _ in $(seq 100); do ctl await_startup --timeout 1 2>/dev/null && break; sleep 0.1; done
# What the suite's own CI script sets up on RabbitMQ.
ctl add_user policymaker policymaker
ctl set_user_tags policymaker policymaker
ctl set_permissions -p / policymaker ".*" ".*" ".*"
ctl add_vhost "rabbit/hole"
ctl set_permissions -p "rabbit/hole" guest ".*" ".*" ".*"

# Not in warren (see README.md, "Compatibility"): quorum queues, and the
# federation and shovel plugins.
# The suite's specs that only check what warren answers without them (no
# upstreams, no links, bad definitions refused) still run.
skip="PUT /queues/\{vhost\}/\{queue\} declares a queue\$|creates a vhost with a default queue type"
skip="$skip|federation-upstream.* when there are upstreams|federation-upstream.* when the upstream exists"
skip="$skip|federation-upstream.* when the upstream does not exist creates the upstream|federation-links.* when there are links"
skip="$skip|shovel"
skip="$skip|when the parameter does not exist .*creates the parameter|when there are runtime parameters .*returns the list of parameters"

status=0
(cd "$work/rabbit-hole" && ip netns exec "$ns" env GOMEGA_DEFAULT_EVENTUALLY_TIMEOUT=5s \
	"$work/rabbit-hole.test" -ginkgo.skip "$skip" -ginkgo.no-color ${RABBIT_HOLE_FLAGS:-}) >"$work/suite.log" 2>&1 || status=$?
grep -E '^(Ran |SUCCESS|FAIL)|Passed \|' "$work/suite.log" || true
if [ $status -ne 0 ]; then
	sed -n "/Summarizing/,\$p" "$work/suite.log" | head -40 >&2
	echo "--- warren log" >&2
	tail -20 "$work/warren.log" >&2
fi
exit $status
