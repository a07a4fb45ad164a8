# warren-lb: benchmark against Debian's haproxy 2.6 (not run in CI).
.PHONY: bench-lb
bench-lb:
	./scripts/bench-lb.sh
