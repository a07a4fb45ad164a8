# A 3-node warren cluster against a 3-node RabbitMQ 3.10 cluster on this
# machine, queues used through other nodes (not in CI).
#   make bench-cluster                        3 rounds of 10 s
#   make bench-cluster BENCH_ARGS='-d 30 -r 5 -o cluster-out'
.PHONY: bench-cluster
bench-cluster:
	./scripts/bench-cluster.sh $(BENCH_ARGS)

# Mirrored queues, warren's against RabbitMQ 3.10's (ha-mode exactly 2 and
# all) and a RabbitMQ quorum queue, on 3-node clusters on this machine (not
# in CI).
#   make bench-ha                             3 rounds of 10 s
#   make bench-ha BENCH_ARGS='-d 30 -r 5 -o ha-out'
.PHONY: bench-ha
bench-ha:
	./scripts/bench-ha.sh $(BENCH_ARGS)
