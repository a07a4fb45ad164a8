# The mirrored-queue nemesis test for as long as asked (as root): the fixed
# schedule of every fault, then random faults; the report goes to
# chaos-report.txt (not in CI; CI runs the fixed schedule only).
#   make chaos                                10 minutes of random faults
#   make chaos CHAOS_DURATION=1h
CHAOS_DURATION ?= 10m
.PHONY: chaos
chaos:
	go test -count=1 -timeout 0 -run TestMirroredQueuesLoseNothing ./internal/chaos/ -v \
		-chaos.duration=$(CHAOS_DURATION) -chaos.report=$(CURDIR)/chaos-report.txt

# The same test, faults and checker against a 3-node RabbitMQ 3.10 cluster
# from Debian's package (installed if missing), as the reference; the
# report goes to chaos-rabbitmq-report.txt.
.PHONY: chaos-rabbitmq
chaos-rabbitmq:
	@dpkg-query -W -f='$${Status}' rabbitmq-server 2>/dev/null | grep -q 'install ok installed' || \
		(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null && \
		 (systemctl stop rabbitmq-server 2>/dev/null || service rabbitmq-server stop >/dev/null 2>&1 || true))
	go test -count=1 -timeout 0 -run TestRabbitMQMirroredQueues ./internal/chaos/ -v \
		-chaos.rabbitmq -chaos.duration=$(CHAOS_DURATION) -chaos.report=$(CURDIR)/chaos-rabbitmq-report.txt
