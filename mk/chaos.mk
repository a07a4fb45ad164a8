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
