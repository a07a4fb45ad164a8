#!/usr/bin/env bash
# Moves definitions both ways between warren and Debian's RabbitMQ 3.10:
#   1. RabbitMQ gets users, vhosts, permissions, policies, exchanges,
#      queues and bindings through its management API, and exports them;
#   2. warren imports that file (POST /api/definitions), then exports its
#      own;
#   3. a fresh RabbitMQ imports warren's export;
# and each export is compared with the first, section by section. Exits
# non-zero on any difference. Not part of CI (it runs RabbitMQ): make
# defs-interop.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '%s defs-interop: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rmq_port=$(free_port) rmq_dist=$(free_port) rmq_epmd=$(free_port) rmq_http=$(free_port)
rmq_plugins=rabbitmq_management
rmq_conf_extra="management.tcp.port = $rmq_http
management.tcp.ip = 127.0.0.1"
rmq_dir=$work/rabbitmq
. scripts/lib/rabbitmq.sh
warren_pid=
cleanup() {
	stop_rabbitmq
	[ -n "$warren_pid" ] && kill "$warren_pid" 2>/dev/null && wait "$warren_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

api() { # base method path [body]
	local base=$1 method=$2 path=$3
	shift 3
	curl -sf -u guest:guest -H 'content-type: application/json' -X "$method" "$base/api/$path" "$@"
}

start_rabbitmq
rmq="http://127.0.0.1:$rmq_http"
for _ in $(seq 60); do api "$rmq" GET overview >/dev/null 2>&1 && break; sleep 1; done
log "defining objects on RabbitMQ"
api "$rmq" PUT vhosts/staging -d '{"description":"staging apps"}'
api "$rmq" PUT users/app -d '{"password":"s3cret","tags":"management"}'
api "$rmq" PUT users/ops -d '{"password":"ops","tags":"monitoring,policymaker"}'
api "$rmq" PUT permissions/staging/app -d '{"configure":"^app\\.","write":".*","read":".*"}'
api "$rmq" PUT permissions/%2F/app -d '{"configure":"","write":"^orders$","read":"^orders\\..*"}'
api "$rmq" PUT policies/staging/ha-all -d '{"pattern":"^ha\\.","definition":{"ha-mode":"exactly","ha-params":2,"ha-sync-mode":"automatic"},"priority":1,"apply-to":"queues"}'
api "$rmq" PUT policies/staging/limits -d '{"pattern":"^orders\\.","definition":{"max-length":5000,"message-ttl":3600000,"expires":86400000,"dead-letter-exchange":"orders.dlx"},"apply-to":"queues"}'
api "$rmq" PUT exchanges/staging/orders -d '{"type":"topic","durable":true}'
api "$rmq" PUT exchanges/staging/orders.dlx -d '{"type":"fanout","durable":true,"arguments":{"alternate-exchange":"orders"}}'
api "$rmq" PUT exchanges/staging/orders.internal -d '{"type":"headers","durable":true,"internal":true}'
api "$rmq" PUT queues/staging/orders.created -d '{"durable":true,"arguments":{"x-max-length":10000,"x-overflow":"reject-publish","x-dead-letter-exchange":"orders.dlx","x-message-ttl":60000,"x-max-priority":5}}'
api "$rmq" PUT queues/staging/orders.dead -d '{"durable":true,"arguments":{"x-queue-mode":"lazy","x-single-active-consumer":true}}'
api "$rmq" POST bindings/staging/e/orders/q/orders.created -d '{"routing_key":"order.*.created"}'
api "$rmq" POST bindings/staging/e/orders.dlx/q/orders.dead -d '{"routing_key":""}'
api "$rmq" POST bindings/staging/e/orders/e/orders.internal -d '{"routing_key":"#","arguments":{"x-match":"any","region":"eu"}}'
api "$rmq" GET definitions >"$work/from-rabbitmq.json"

log "importing RabbitMQ's export into warren"
go build -o "$work/" ./cmd/warren
w_amqp=$(free_port) w_http=$(free_port)
"$work/warren" --data-dir "$work/warren-data" --amqp-listen "127.0.0.1:$w_amqp" --mgmt-listen "127.0.0.1:$w_http" \
	--cluster-listen 127.0.0.1:0 --prometheus-listen 127.0.0.1:0 --cookie-file "$work/cookie" 2>"$work/warren.log" &
warren_pid=$!
wrn="http://127.0.0.1:$w_http"
for _ in $(seq 100); do api "$wrn" GET overview >/dev/null 2>&1 && break; sleep 0.1; done
api "$wrn" POST definitions --data-binary @"$work/from-rabbitmq.json" || { log "warren refused RabbitMQ's export"; curl -s -u guest:guest -X POST "$wrn/api/definitions" --data-binary @"$work/from-rabbitmq.json" >&2; exit 1; }
api "$wrn" GET definitions >"$work/from-warren.json"

log "importing warren's export into a fresh RabbitMQ"
stop_rabbitmq
rm -rf "$rmq_dir"
start_rabbitmq
for _ in $(seq 60); do api "$rmq" GET overview >/dev/null 2>&1 && break; sleep 1; done
api "$rmq" POST definitions --data-binary @"$work/from-warren.json" || { log "RabbitMQ refused warren's export"; exit 1; }
api "$rmq" GET definitions >"$work/round-trip.json"

python3 - "$work/from-rabbitmq.json" "$work/from-warren.json" "$work/round-trip.json" <<'PY'
import json, sys
def load(p):
    d = json.load(open(p))
    out = {}
    for k in ["users", "vhosts", "permissions", "policies", "queues", "exchanges", "bindings"]:
        items = []
        for x in d.get(k, []):
            x = dict(x)
            if k == "vhosts":
                x = {"name": x["name"]}
            if k == "users":
                x.pop("limits", None)
            items.append(json.dumps(x, sort_keys=True))
        out[k] = sorted(items)
    return out
a, b, c = (load(p) for p in sys.argv[1:])
bad = 0
for k in a:
    for name, other in (("warren's export", b), ("RabbitMQ after importing warren's", c)):
        if a[k] != other[k]:
            bad += 1
            print("%s differs in %s:" % (name, k))
            for x in sorted(set(a[k]) ^ set(other[k])):
                print("   ", "only in RabbitMQ's:" if x in a[k] else "only in " + name + ":", x)
    print("%-12s %3d: %s" % (k, len(a[k]), "same both ways" if a[k] == b[k] == c[k] else "DIFFERENT"))
sys.exit(1 if bad else 0)
PY
