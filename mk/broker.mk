# Broker benchmarks: warren against RabbitMQ 3.10 in one run (not in CI).
#   make bench-broker                         every scenario, 3 rounds of 10 s
#   make bench-broker BENCH_ARGS='-d 30 -r 5 -o bench-out'
.PHONY: bench-broker
bench-broker:
	./scripts/bench-broker.sh $(BENCH_ARGS)

# Restart with a million persistent messages queued, after a graceful stop
# and after SIGKILL: time to the first AMQP handshake and to the first
# delivered message, warren against RabbitMQ 3.10 (not in CI).
#   make bench-restart                        1,000,000 messages of 1024 bytes
#   make bench-restart BENCH_ARGS='-n 50000 -o restart-out'
.PHONY: bench-restart
bench-restart:
	./scripts/bench-restart.sh $(BENCH_ARGS)

# Resident memory with 10,000 idle connections and 100,000 empty queues.
.PHONY: bench-memory
bench-memory:
	./scripts/bench-memory.sh

# What the management API costs: the queue page's latency with 10,000
# queues and 1,000 connections, and publish throughput with the web UI's
# requests against without.
.PHONY: bench-mgmt
bench-mgmt:
	./scripts/bench-mgmt.sh

# Definitions exported by RabbitMQ 3.10 import into warren, and warren's
# export imports into RabbitMQ 3.10, with nothing lost either way.
.PHONY: defs-interop
defs-interop:
	./scripts/defs-interop.sh
