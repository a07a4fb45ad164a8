package broker

import "sync"

// confirms tracks a channel's publisher confirms: which publishes have
// been routed, which still wait for the disk, and how far the client has
// been told. The reader goroutine and the store's committer both update
// it, under mu.
type confirms struct {
	mu        sync.Mutex
	published uint64 // highest publish routed
	acked     uint64 // highest seq the client has an ack for
	// waiting holds publishes whose stored copies are not all on disk, in
	// sequence order (seqs arrive in order; most finish in order).
	waiting []diskWait
	closed  bool
}

type diskWait struct {
	seq    uint64
	copies int
}

// waitDisk records that seq is confirmed only once copies writes finish.
func (c *confirms) waitDisk(seq uint64, copies int) {
	c.mu.Lock()
	c.waiting = append(c.waiting, diskWait{seq, copies})
	c.mu.Unlock()
}

// done records one finished write for seq; failed writes end the wait at
// once. It reports whether seq failed now, so the caller sends a nack. A
// failure for a seq that waits for nothing (refused by a full queue) is
// reported too. c.mu held.
func (c *confirms) done(seq uint64, failed bool) bool {
	for i := range c.waiting {
		w := &c.waiting[i]
		if w.seq != seq {
			continue
		}
		w.copies--
		if failed || w.copies == 0 {
			c.waiting = append(c.waiting[:i], c.waiting[i+1:]...)
			return failed
		}
		return false
	}
	return failed && seq > c.acked
}

// confirmable is the highest seq that may be acked: every publish routed
// and not waiting for the disk. c.mu held.
func (c *confirms) confirmable() uint64 {
	if len(c.waiting) > 0 && c.waiting[0].seq <= c.published {
		return c.waiting[0].seq - 1
	}
	return c.published
}
