package broker

import (
	"slices"
	"sync"
)

// confirms tracks a channel's publisher confirms: which publishes have
// been routed, which still wait for the disk, and how far the client has
// been told. The reader goroutine and the store's committer both update
// it, under mu.
//
// Every publish is answered exactly once, with basic.ack or basic.nack,
// and in order: a client takes a multiple ack as covering every tag up to
// it, so an answer never goes out before those of the publishes ahead of
// it. A nack decided early (a full queue refuses a message while the one
// before it still waits for its fsync) waits for them.
type confirms struct {
	mu        sync.Mutex
	published uint64 // highest publish routed
	// answered is the mark below which every publish has had its ack or
	// nack; nacked holds the publishes above it decided as nacks, in
	// order, sent when the mark reaches them.
	answered uint64
	nacked   []uint64
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

// done records one finished write for seq; a failed write ends the wait
// at once. It reports whether seq must be nacked: it failed, and was not
// decided before (a publish with several copies fails once, whatever the
// other copies do). A failure for a seq that waits for nothing (refused by
// a full queue) is reported too. c.mu held.
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
	return failed && !c.decided(seq)
}

// decided reports whether seq has been answered or is to be nacked.
// c.mu held.
func (c *confirms) decided(seq uint64) bool {
	return seq <= c.answered || slices.Contains(c.nacked, seq)
}

// nack records that seq is to be answered with a nack. c.mu held.
func (c *confirms) nack(seq uint64) {
	i, _ := slices.BinarySearch(c.nacked, seq)
	c.nacked = slices.Insert(c.nacked, i, seq)
}

// next returns the next answer due: a nack of the publish right above the
// mark, or an ack up to upTo (every publish above the mark up to it
// routed, on disk where it must be, and not nacked). ok is false when
// nothing is due. c.mu held.
func (c *confirms) next() (upTo uint64, ack, ok bool) {
	if len(c.nacked) > 0 && c.nacked[0] == c.answered+1 {
		return c.nacked[0], false, true
	}
	upTo = c.published
	if len(c.waiting) > 0 && c.waiting[0].seq <= upTo {
		upTo = c.waiting[0].seq - 1
	}
	if len(c.nacked) > 0 && c.nacked[0] <= upTo {
		upTo = c.nacked[0] - 1
	}
	return upTo, true, upTo > c.answered
}

// answer moves the mark to upTo, the answer to which is being sent.
// c.mu held.
func (c *confirms) answer(upTo uint64, ack bool) {
	if !ack {
		c.nacked = c.nacked[1:]
	}
	c.answered = upTo
}
