// Package balance picks the server for a new connection, with the same
// algorithms, and for roundrobin the same order, as HAProxy.
//
// A Balancer holds no locks and does no I/O: the backend that owns it calls
// it under its own mutex, tells it when a server's weight or usability
// changes (SetServer) and asks it for a server (Pick).
package balance

// Algorithm names, as written after "balance" in haproxy.cfg.
const (
	RoundRobin = "roundrobin"
	StaticRR   = "static-rr"
	LeastConn  = "leastconn"
	Source     = "source"
	First      = "first"
)

// weightScale multiplies user weights into effective weights, as HAProxy
// does, so that roundrobin positions keep precision.
const weightScale = 16

// Load reports a server's live load for algorithms that need it.
type Load interface {
	// Conns returns the server's connections, served and waiting in its
	// own queue (what leastconn compares).
	Conns(i int) int
	// Full reports whether the server may take no new connection now:
	// it reached its maxconn or has connections waiting for it.
	// roundrobin, static-rr and first skip full servers.
	Full(i int) bool
	// Accepts reports whether leastconn may choose the server: it has no
	// maxconn, or its served and queued connections are below maxconn
	// plus maxqueue (so it may queue the connection).
	Accepts(i int) bool
}

type server struct {
	weight int // user weight, 0..256
	usable bool
	backup bool
}

// group is one set of servers (active or backup) under one algorithm.
type group interface {
	setServer(i int, eweight int, usable bool)
	pick(load Load, avoid int, key uint32) int
}

// Balancer picks servers for one backend. It is not safe for concurrent
// use: the owning backend serialises calls.
type Balancer struct {
	algo       string
	allBackups bool
	servers    []server
	active     group
	backup     group
}

// New returns a Balancer for n servers, all initially unusable with weight 0.
// allBackups spreads load over every backup server when no active one is
// usable; otherwise only the first usable backup (in declaration order) is used.
func New(algo string, n int, allBackups bool) *Balancer {
	b := &Balancer{algo: algo, allBackups: allBackups, servers: make([]server, n)}
	b.active = newGroup(algo, n)
	b.backup = newGroup(algo, n)
	return b
}

func newGroup(algo string, n int) group {
	switch algo {
	case StaticRR, Source:
		return newMapGroup(n, algo == Source)
	case LeastConn:
		return newLeastConnGroup(n)
	case First:
		return newFirstGroup(n)
	default:
		return newFWRR(n)
	}
}

// SetServer records server i's weight, usability (UP and not in
// maintenance or drain) and backup flag.
func (b *Balancer) SetServer(i, weight int, usable, backup bool) {
	old := b.servers[i]
	if old.weight == weight && old.usable == usable && old.backup == backup {
		return
	}
	if old.backup != backup && old.usable {
		b.groupOf(old.backup).setServer(i, old.weight*weightScale, false)
	}
	b.servers[i] = server{weight: weight, usable: usable, backup: backup}
	b.groupOf(backup).setServer(i, weight*weightScale, usable && weight > 0)
}

func (b *Balancer) groupOf(backup bool) group {
	if backup {
		return b.backup
	}
	return b.active
}

// ActiveUsable counts usable active servers with a non-zero weight.
func (b *Balancer) ActiveUsable() int { return b.count(false) }

// BackupUsable counts usable backup servers with a non-zero weight.
func (b *Balancer) BackupUsable() int { return b.count(true) }

func (b *Balancer) count(backup bool) int {
	n := 0
	for _, s := range b.servers {
		if s.usable && s.weight > 0 && s.backup == backup {
			n++
		}
	}
	return n
}

// Pick returns the server index for a new connection, or -1 when no server
// can take it (none usable, or all usable ones full). As in HAProxy, a
// server is returned whatever its load when the algorithm designates it:
// source hashes to a server, and while only backups are usable without
// allbackups the first backup takes every connection; the caller queues
// the connection on that server when it is full. avoid names a server
// to skip if another one is available (used by redispatch), -1 for none;
// key is the source-address hash for the source algorithm.
func (b *Balancer) Pick(load Load, avoid int, key uint32) int {
	if b.ActiveUsable() > 0 {
		return b.active.pick(load, avoid, key)
	}
	if b.BackupUsable() == 0 {
		return -1
	}
	if !b.allBackups {
		for i, s := range b.servers {
			if s.backup && s.usable && s.weight > 0 {
				return i
			}
		}
	}
	return b.backup.pick(load, avoid, key)
}

// HashSource hashes a source address for the source algorithm the way
// HAProxy's map-based hash does: the address's 32-bit big-endian words
// XORed together (so an IPv4 client's hash is its address as a number).
func HashSource(ip []byte) uint32 {
	var h uint32
	for l := 0; l+4 <= len(ip); l += 4 {
		h ^= uint32(ip[l])<<24 | uint32(ip[l+1])<<16 | uint32(ip[l+2])<<8 | uint32(ip[l+3])
	}
	return h
}
