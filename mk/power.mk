# The power-cut tests for longer (as root, with /dev/fuse): nodes with their
# data directories on crashfs, which keeps only what was fsynced, cut again
# and again while clients publish, consume and change definitions; one node
# on its own, then a 3-node cluster with mirrored queues (CI runs 50 and 9
# cuts).
#   make power-cuts                           500 and 60 cuts
#   make power-cuts POWER_CUTS=2000 CLUSTER_CUTS=300
POWER_CUTS ?= 500
CLUSTER_CUTS ?= 60
.PHONY: power-cuts
power-cuts:
	go test -count=1 -timeout 0 -run 'TestPowerCuts' ./internal/chaos/ -v \
		-chaos.cuts=$(POWER_CUTS) -chaos.clustercuts=$(CLUSTER_CUTS)
