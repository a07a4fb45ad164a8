# A 3-node warren cluster against a 3-node RabbitMQ 3.10 cluster on this
# machine, queues used through other nodes (not in CI).
#   make bench-cluster                        3 rounds of 10 s
#   make bench-cluster BENCH_ARGS='-d 30 -r 5 -o cluster-out'
.PHONY: bench-cluster
bench-cluster:
	./scripts/bench-cluster.sh $(BENCH_ARGS)
