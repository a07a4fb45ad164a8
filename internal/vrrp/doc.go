// Package vrrp implements warren-vrrp: the VRRP part of keepalived, reading
// keepalived.conf and speaking VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798) on the
// wire, so that it can share a virtual router with keepalived.
//
// The package is split by concern:
//
//   - packet.go: the advert codec (v2 with PASS authentication, v3 with the
//     IPv4 or IPv6 pseudo-header checksum; over IPv6 only v3 exists).
//   - machine.go: the state machine. It does no I/O and reads no clock:
//     Machine.Step takes an event and the current time and returns the
//     actions (adverts to send, addresses to add or remove, transitions).
//   - config*.go: the keepalived.conf parser, with file:line errors and
//     keepalived's validation rules.
//   - socket.go, vip.go: the raw IP protocol 112 sockets (IPv4 to
//     224.0.0.18, IPv6 to ff02::12 from the link-local address), netlink
//     address changes, gratuitous ARP and unsolicited neighbour adverts.
//   - track.go, notify.go: vrrp_script checks and notify scripts.
//   - daemon.go, instance.go, status.go: the owner goroutine per instance that
//     holds the sockets, feeds the machines and writes the status dump.
//   - plan.go: turning a configuration into a running set and, on reload
//     (SIGHUP), changing the running set in place: kept instances keep
//     their state, removed ones stop, new ones start.
//
// Time in a Machine is a time.Duration since an origin chosen by its owner;
// the daemon uses the monotonic clock since start.
package vrrp
