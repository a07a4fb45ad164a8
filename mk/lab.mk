# The runbooks' whole HA stack on this machine (as root), in network
# namespaces standing for its hosts: three warren nodes, lb1 and lb2 with
# warren-lb and warren-vrrp sharing a virtual IP, and a client host.
#   make lab-up        build, then bring the stack up and print its addresses
#   make lab-status    hosts, programs, the virtual IP, the cluster, queues
#   make lab-down      remove every namespace, process and file it made
# Between them, bin/warren-lab kill|stop|start|freeze|thaw|partition|heal|exec
# break and mend it by host name.
.PHONY: lab-up lab-status lab-down
lab-up: build
	bin/warren-lab up

lab-status:
	bin/warren-lab status

lab-down:
	bin/warren-lab down

# The end-to-end test (in CI) on the reference instead: Debian's
# rabbitmq-server, haproxy and keepalived (installed if missing) in the
# same namespaces, with the same faults, clients and checker; the table
# goes to e2e-reference-report.txt.
.PHONY: e2e e2e-reference
e2e:
	go test -count=1 -timeout 30m -run TestHAStackLosesNothing ./internal/lab/ -v -lab.report=$(CURDIR)/e2e-report.txt

e2e-reference:
	@for p in rabbitmq-server haproxy keepalived; do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$p >/dev/null; done
	@(systemctl stop rabbitmq-server haproxy keepalived 2>/dev/null || true)
	go test -count=1 -timeout 60m -run TestReferenceHAStack ./internal/lab/ -v -lab.reference -lab.report=$(CURDIR)/e2e-reference-report.txt
