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
