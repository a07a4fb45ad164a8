# A RabbitMQ node from Debian's rabbitmq-server, run as a reference peer on
# ports of the caller's choosing, never the package's own service. Set
# rmq_dir, rmq_port, rmq_dist and rmq_epmd, and a log function, before
# calling its functions; rmq_plugins (e.g. rabbitmq_management), rmq_conf_extra
# (rabbitmq.conf lines) and rmq_node (the node name, default bench@localhost)
# are optional. start_rabbitmq installs the package
# if needed (as root) and waits for the node; stop_rabbitmq ends it.
#
# The node's data under rmq_dir outlives it, so starting again restarts the
# same node with its durable queues and persistent messages. For timing a
# restart, launch_rabbitmq starts the node and returns at once (await_rabbitmq
# then waits for it: start_rabbitmq is the two; rmq_started is bash's
# $EPOCHREALTIME just before the launch), shutdown_rabbitmq stops it with
# `rabbitmqctl stop`, and kill_rabbitmq sends SIGKILL to all of it instead.
# shellcheck shell=bash

rmq_bin=/usr/lib/rabbitmq/bin
install_rabbitmq() {
	[ -x "$rmq_bin/rabbitmq-server" ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "rabbitmq-server is not installed and installing it needs root" >&2
		exit 1
	fi
	log "installing Debian's rabbitmq-server"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq rabbitmq-server >/dev/null
	# The package starts its own node on 5672 where it can; this script
	# runs its own node instead.
	if command -v systemctl >/dev/null && systemctl is-active -q rabbitmq-server 2>/dev/null; then
		systemctl stop rabbitmq-server || true
	fi
	service rabbitmq-server stop >/dev/null 2>&1 || true
	[ -x "$rmq_bin/rabbitmq-server" ] || { echo "$rmq_bin/rabbitmq-server missing after install" >&2; exit 1; }
}

rmq_pid=
# set_rmq_vars: rmq_vars is the environment of the node and of the CLI
# tools that talk to it.
set_rmq_vars() {
	rmq_vars=(
		HOME="$rmq_dir/home"
		RABBITMQ_NODENAME="${rmq_node:-bench@localhost}"
		RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
		RABBITMQ_NODE_PORT="$rmq_port"
		RABBITMQ_DIST_PORT="$rmq_dist"
		ERL_EPMD_PORT="$rmq_epmd"
		ERL_EPMD_ADDRESS=127.0.0.1
		RABBITMQ_MNESIA_BASE="$rmq_dir/mnesia"
		RABBITMQ_LOG_BASE="$rmq_dir/log"
		RABBITMQ_PID_FILE="$rmq_dir/rabbit.pid"
		RABBITMQ_CONFIG_FILE="$rmq_dir/rabbitmq"
		RABBITMQ_ENABLED_PLUGINS_FILE="$rmq_dir/enabled_plugins"
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
	)
}
rmq_env() {
	set_rmq_vars
	env "${rmq_vars[@]}" "$@"
}
launch_rabbitmq() {
	install_rabbitmq
	mkdir -p "$rmq_dir/home" "$rmq_dir/mnesia" "$rmq_dir/log"
	echo "[${rmq_plugins:-}]." >"$rmq_dir/enabled_plugins"
	printf 'listeners.tcp.default = 127.0.0.1:%s\n' "$rmq_port" >"$rmq_dir/rabbitmq.conf"
	printf '%s\n' "${rmq_conf_extra:-}" >>"$rmq_dir/rabbitmq.conf"
	log "starting RabbitMQ on 127.0.0.1:$rmq_port (node ${rmq_node:-bench@localhost}, dist $rmq_dist, epmd $rmq_epmd)"
	set_rmq_vars
	rmq_started=$EPOCHREALTIME
	# A simple command rather than a function, so that $! is the node's
	# own process (env and setsid exec), which setsid makes the leader of
	# a process group of its own, apart from the caller's.
	env "${rmq_vars[@]}" setsid "$rmq_bin/rabbitmq-server" >"$rmq_dir/server.out" 2>&1 &
	rmq_pid=$!
}
await_rabbitmq() {
	# await_startup gives up at once while the node is not yet registered
	# with epmd, so ask again until it answers or the node dies.
	local tries=0
	until rmq_env timeout 120 "$rmq_bin/rabbitmqctl" -n ${rmq_node:-bench@localhost} -q await_startup >"$rmq_dir/await.out" 2>&1; do
		tries=$((tries + 1))
		if ! kill -0 "$rmq_pid" 2>/dev/null || [ $tries -ge 60 ]; then
			log "RabbitMQ did not start; its output:"
			tail -20 "$rmq_dir/server.out" "$rmq_dir/await.out" >&2
			return 1
		fi
		sleep 1
	done
	log "RabbitMQ is up (process tree rooted at pid $rmq_pid)"
}
start_rabbitmq() {
	launch_rabbitmq
	await_rabbitmq
}
# shutdown_rabbitmq [seconds]: stops the node with `rabbitmqctl stop` and
# waits up to seconds (default 80) for it to exit. Returns 1, leaving the
# node to the caller, when it is still running then.
shutdown_rabbitmq() {
	[ -n "$rmq_pid" ] || return 0
	local limit=${1:-80} t0=$SECONDS
	log "stopping RabbitMQ"
	rmq_env timeout "$limit" "$rmq_bin/rabbitmqctl" -n ${rmq_node:-bench@localhost} -q stop >/dev/null 2>&1 || true
	while kill -0 "$rmq_pid" 2>/dev/null; do
		[ $((SECONDS - t0)) -lt "$limit" ] || return 1
		sleep 0.05
	done
	rmq_reap
}
# kill_rabbitmq: SIGKILL to every process of the node.
kill_rabbitmq() {
	[ -n "$rmq_pid" ] || return 0
	log "killing RabbitMQ"
	# setsid made it a process group of its own: end the whole tree.
	kill -KILL -- "-$rmq_pid" 2>/dev/null || true
	rmq_reap
}
stop_rabbitmq() {
	shutdown_rabbitmq 80 || kill_rabbitmq
}
rmq_reap() {
	wait "$rmq_pid" 2>/dev/null || true
	# The Erlang VM and its helpers may outlive the script that started
	# them by a moment; the node is gone once its process group has only
	# zombies left (exited, their memory and sockets released, but not yet
	# reaped by init, which took over when the script went first).
	for _ in $(seq 1000); do
		ps -e -o pgid=,stat= | awk -v g="$rmq_pid" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }' || break
		sleep 0.01
	done
	# The epmd this node started on its own port. It refuses -kill while
	# it still lists the node, which it drops only once it notices a killed
	# node's connection closed.
	for _ in $(seq 200); do
		ERL_EPMD_PORT=$rmq_epmd epmd -port "$rmq_epmd" -kill >/dev/null 2>&1 || true
		ERL_EPMD_PORT=$rmq_epmd epmd -port "$rmq_epmd" -names >/dev/null 2>&1 || break
		sleep 0.01
	done
	rmq_pid=
}

# check_ports NAME PORT... exits with a message (prefixed NAME) unless every
# port is free, outside the kernel's ephemeral range (where an outgoing
# connection could take it first) and outside 35672-35682, which RabbitMQ's
# CLI tools use for their own distribution ports.
check_ports() {
	local name=$1 p eph_lo eph_hi
	shift
	read -r eph_lo eph_hi </proc/sys/net/ipv4/ip_local_port_range
	for p in "$@"; do
		if [ "$p" -ge 35672 ] && [ "$p" -le 35682 ]; then
			echo "$name: port $p is in 35672-35682, which RabbitMQ's CLI tools use; pick another BENCH_PORT_BASE" >&2
			exit 2
		fi
		if [ "$p" -ge "$eph_lo" ] && [ "$p" -le "$eph_hi" ]; then
			echo "$name: port $p is in the ephemeral range $eph_lo-$eph_hi, where an outgoing connection can take it first; pick another BENCH_PORT_BASE" >&2
			exit 2
		fi
		if ss -Htln "sport = :$p" | grep -q .; then
			echo "$name: port $p is already in use; pick another BENCH_PORT_BASE" >&2
			exit 2
		fi
	done
}
