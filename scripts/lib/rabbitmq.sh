# A RabbitMQ node from Debian's rabbitmq-server, run as a reference peer on
# ports of the caller's choosing, never the package's own service. Source
# it after setting rmq_dir, rmq_port, rmq_dist and rmq_epmd, and a log
# function; rmq_plugins (e.g. rabbitmq_management) and rmq_conf_extra
# (rabbitmq.conf lines) are optional. start_rabbitmq installs the package
# if needed (as root) and waits for the node; stop_rabbitmq ends it.
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
rmq_env() {
	env HOME="$rmq_dir/home" \
		RABBITMQ_NODENAME="bench@localhost" \
		RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
		RABBITMQ_NODE_PORT="$rmq_port" \
		RABBITMQ_DIST_PORT="$rmq_dist" \
		ERL_EPMD_PORT="$rmq_epmd" \
		ERL_EPMD_ADDRESS=127.0.0.1 \
		RABBITMQ_MNESIA_BASE="$rmq_dir/mnesia" \
		RABBITMQ_LOG_BASE="$rmq_dir/log" \
		RABBITMQ_PID_FILE="$rmq_dir/rabbit.pid" \
		RABBITMQ_CONFIG_FILE="$rmq_dir/rabbitmq" \
		RABBITMQ_ENABLED_PLUGINS_FILE="$rmq_dir/enabled_plugins" \
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
		"$@"
}
start_rabbitmq() {
	install_rabbitmq
	mkdir -p "$rmq_dir/home" "$rmq_dir/mnesia" "$rmq_dir/log"
	echo "[${rmq_plugins:-}]." >"$rmq_dir/enabled_plugins"
	printf 'listeners.tcp.default = 127.0.0.1:%s\n' "$rmq_port" >"$rmq_dir/rabbitmq.conf"
	printf '%s\n' "${rmq_conf_extra:-}" >>"$rmq_dir/rabbitmq.conf"
	log "starting RabbitMQ on 127.0.0.1:$rmq_port (node bench@localhost, dist $rmq_dist, epmd $rmq_epmd)"
	rmq_env setsid "$rmq_bin/rabbitmq-server" >"$rmq_dir/server.out" 2>&1 &
	rmq_pid=$!
	# await_startup gives up at once while the node is not yet registered
	# with epmd, so ask again until it answers or the node dies.
	local tries=0
	until rmq_env timeout 120 "$rmq_bin/rabbitmqctl" -n bench@localhost -q await_startup >"$rmq_dir/await.out" 2>&1; do
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
stop_rabbitmq() {
	[ -n "$rmq_pid" ] || return 0
	log "stopping RabbitMQ"
	rmq_env timeout 60 "$rmq_bin/rabbitmqctl" -n bench@localhost -q stop >/dev/null 2>&1 || true
	for _ in $(seq 100); do kill -0 "$rmq_pid" 2>/dev/null || break; sleep 0.2; done
	if kill -0 "$rmq_pid" 2>/dev/null; then
		# setsid made it a process group of its own: end the whole tree.
		kill -KILL -- "-$rmq_pid" 2>/dev/null || true
	fi
	wait "$rmq_pid" 2>/dev/null || true
	# The epmd this node started on its own port.
	ERL_EPMD_PORT=$rmq_epmd epmd -port "$rmq_epmd" -kill >/dev/null 2>&1 || true
	rmq_pid=
}

