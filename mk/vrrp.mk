# warren-vrrp: failover measurements side by side with keepalived (needs root,
# iproute2 and keepalived; minutes long, so not part of the test suite).
#   make vrrp-measure                       both measurements
#   VRRP_MEASURE_RUNS=10 VRRP_MEASURE_CYCLES=50 make vrrp-measure
.PHONY: vrrp-measure vrrp-test
vrrp-measure:
	go test -tags vrrpmeasure -count=1 -timeout 60m -run 'TestMeasure' -v ./internal/vrrp/ | grep -v '^=== RUN'

vrrp-test:
	go test -race -count=1 ./internal/vrrp/...
