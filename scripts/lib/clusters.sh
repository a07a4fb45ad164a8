# Three-node clusters on this machine for the benchmarks that compare
# warren's with RabbitMQ's: RabbitMQ 3.10 from Debian's package (one epmd,
# one cookie) and warren, on loopback ports from $base, with their data
# under $work; and the CPU time of process groups. Set base, work and a log
# function, and source scripts/lib/rabbitmq.sh, before calling these.
#
# Ports: RabbitMQ node I's AMQP on base+I and distribution on base+10+I,
# epmd on base+20; warren node I's AMQP on base+30+I, HTTP on base+40+I,
# cluster port base+50+I (its node name wI@localhost:base+50+I).
# shellcheck shell=bash

# ---- RabbitMQ: three nodes, one epmd, one cookie ------------------------------
rmq_epmd=$((base + 20))
rmq_pids=()
rabbit() { # rabbit I: the variables of RabbitMQ node I for the library
	rmq_node=rabbit$1@localhost rmq_dir=$work/rabbit$1 rmq_port=$((base + $1)) rmq_dist=$((base + 10 + $1))
}
rabbitctl() { # rabbitctl I ARGS...: rabbitmqctl against node I
	local i=$1
	shift
	rabbit "$i"
	rmq_env timeout 120 "$rmq_bin/rabbitmqctl" -n "$rmq_node" -q "$@"
}
start_rabbit_cluster() {
	install_rabbitmq
	for i in 1 2 3; do
		rabbit "$i"
		mkdir -p "$rmq_dir/home"
		printf 'WARRENBENCHCOOKIE' >"$rmq_dir/home/.erlang.cookie"
		chmod 400 "$rmq_dir/home/.erlang.cookie"
		launch_rabbitmq
		rmq_pids[i]=$rmq_pid
	done
	for i in 1 2 3; do
		rabbit "$i"
		rmq_pid=${rmq_pids[i]}
		await_rabbitmq
	done
	for i in 2 3; do
		rabbitctl "$i" stop_app
		rabbitctl "$i" join_cluster rabbit1@localhost
		rabbitctl "$i" start_app
	done
	log "RabbitMQ cluster: $(rabbitctl 1 cluster_status --formatter json | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["running_nodes"]))')"
}
stop_rabbit_cluster() {
	for i in 3 2 1; do
		[ -n "${rmq_pids[i]:-}" ] || continue
		rabbit "$i"
		rmq_pid=${rmq_pids[i]}
		stop_rabbitmq
		rmq_pids[i]=
	done
}

# ---- warren ------------------------------------------------------------------
wctl() { # wctl NAME ARGS...
	local n=$1
	shift
	bin/warrenctl -n "$n" --cookie-file "$work/warren.cookie" "$@"
}
wnode() { # wnode NAME AMQP MGMT DIR: start a node in the background
	bin/warren -detached --node-name "$1" --data-dir "$4" --amqp-listen "127.0.0.1:$2" --mgmt-listen "127.0.0.1:$3" \
		--prometheus-listen 127.0.0.1:0 --cookie-file "$work/warren.cookie" >/dev/null
}
# wname I: warren node I's name.
wname() { echo "w$1@localhost:$((base + 50 + $1))"; }
# start_warren_nodes: warren nodes 1 to 3, 2 and 3 joined to 1.
start_warren_nodes() {
	for i in 1 2 3; do
		wnode "$(wname "$i")" $((base + 30 + i)) $((base + 40 + i)) "$work/w$i"
	done
	for i in 2 3; do
		wctl "$(wname "$i")" stop_app >/dev/null
		wctl "$(wname "$i")" join_cluster "$(wname 1)" >/dev/null
		wctl "$(wname "$i")" start_app >/dev/null
	done
	log "warren cluster: $(wctl "$(wname 1)" -q cluster_status --formatter json | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["running_nodes"]))')"
}

# ---- measuring ---------------------------------------------------------------
# group_cpu PGID...: CPU time (clock ticks) of every process in the
# groups, with that of their children that have exited and been reaped
# (which moves to the parent's cutime and cstime), so that it only grows.
group_cpu() {
	local g total=0 t
	for g in "$@"; do
		t=$(awk -v g="$g" '$5 == g { s += $14 + $15 + $16 + $17 } END { print s + 0 }' /proc/[0-9]*/stat 2>/dev/null)
		total=$((total + t))
	done
	echo "$total"
}
uri() { echo "amqp://guest:guest@127.0.0.1:$1/"; }
# pair_flags are more warren-perf flags for declare_queue and perf_pair
# (queue arguments, persistent messages).
pair_flags=()
# declare_queue PORT NAME: a durable queue on the node at PORT.
declare_queue() {
	bin/warren-perf -h "$(uri "$1")" -u "$2" -x 1 -y 0 -C 1 -s 1024 -ad=false "${pair_flags[@]}" >/dev/null 2>&1
}
# perf_pair LABEL QUEUE PRODUCER_PORT CONSUMER_PORT: one producer (1 KiB,
# confirms, window 100) and one consumer (manual acks, prefetch 100) for
# $seconds in the background; their JSON lines go to $work/LABEL.*.json.
perf_pair() {
	bin/warren-perf --json -h "$(uri "$4")" -u "$2" -x 0 -y 1 -q 100 -s 1024 -z "$seconds" -ad=false "${pair_flags[@]}" >"$work/$1.cons.json" 2>"$work/$1.cons.log" &
	perf_jobs+=($!)
	sleep 0.3
	bin/warren-perf --json -h "$(uri "$3")" -u "$2" -x 1 -y 0 -c 100 -s 1024 -z "$seconds" -ad=false "${pair_flags[@]}" >"$work/$1.prod.json" 2>"$work/$1.prod.log" &
	perf_jobs+=($!)
}
# record BROKER SCENARIO ROUND CPU LABEL...: the summed receive rate and
# messages of the consumers LABEL..., and the brokers' CPU ticks, as a
# JSON line on $results.
record() {
	local broker=$1 scenario=$2 round=$3 cpu=$4
	shift 4
	python3 - "$broker" "$scenario" "$round" "$cpu" "$(getconf CLK_TCK)" "$work" "$@" >>"$results" <<'EOF'
import json, sys
broker, scenario, rnd, cpu, hz, work, labels = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7:]
rate = received = 0
for l in labels:
    d = json.load(open(f"{work}/{l}.cons.json"))
    rate += d["receive_rate"]
    received += d["received"]
print(json.dumps({"broker": broker, "scenario": scenario, "round": int(rnd), "rate": rate, "received": received,
                  "cpu_us_per_msg": cpu / hz * 1e6 / max(received, 1)}))
EOF
}
