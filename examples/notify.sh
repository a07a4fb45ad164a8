#!/bin/sh
# /etc/keepalived/notify.sh: called by warren-vrrp (or keepalived) as
# notify.sh master|backup|fault when this host's role changes. It only
# logs; put what your site needs here (a page, a metric).
logger -t warren-vrrp "this host is now $1 for the virtual IP"
