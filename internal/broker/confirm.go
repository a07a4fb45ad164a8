package broker

import "sync"

// confirms tracks a channel's publisher confirms: which publishes have
// been routed, which still wait for the disk, and how far the client has
// been told. The reader goroutine and the store's committer both update
// it, under mu.
//
// Every publish is answered exactly once, with basic.ack or basic.nack. A
// nack can go out before earlier publishes are answered (a full queue
// refuses a message while the one before it still waits for its fsync),
// and a client takes a later multiple ack as covering every tag up to it,
// a nacked one too: so an ack never reaches past an unanswered tag, nor
// past a nacked one that the mark has not yet passed.
type confirms struct {
	mu        sync.Mutex
	published uint64 // highest publish routed
	// answered is the mark below which every publish has had its ack or
	// nack; the ones above it that were nacked early are in nacked, in
	// order.
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
// at once. It reports whether seq must be nacked now: it failed, and it
// has not been answered before (a publish with several copies fails
// once, whatever the other copies do). A failure for a seq that waits for
// nothing (refused by a full queue) is reported too. c.mu held.
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
	return failed && !c.isAnswered(seq)
}

// isAnswered reports whether seq has had its ack or nack. c.mu held.
func (c *confirms) isAnswered(seq uint64) bool {
	if seq <= c.answered {
		return true
	}
	for _, n := range c.nacked {
		if n == seq {
			return true
		}
	}
	return false
}

// nack records that seq is answered with a nack. c.mu held.
func (c *confirms) nack(seq uint64) {
	i := len(c.nacked)
	for i > 0 && c.nacked[i-1] > seq {
		i--
	}
	c.nacked = append(c.nacked, 0)
	copy(c.nacked[i+1:], c.nacked[i:])
	c.nacked[i] = seq
	c.skipNacked()
}

// skipNacked moves the mark over nacked publishes that sit right above
// it. c.mu held.
func (c *confirms) skipNacked() {
	n := 0
	for n < len(c.nacked) && c.nacked[n] == c.answered+1 {
		c.answered++
		n++
	}
	if n > 0 {
		c.nacked = append(c.nacked[:0], c.nacked[n:]...)
	}
}

// nextAck is the highest seq that one basic.ack may cover now: every
// publish above the mark up to it routed, on disk where it must be, and
// not nacked. It is no higher than the mark when there is nothing to ack.
// c.mu held.
func (c *confirms) nextAck() uint64 {
	upTo := c.published
	if len(c.waiting) > 0 && c.waiting[0].seq <= upTo {
		upTo = c.waiting[0].seq - 1
	}
	if len(c.nacked) > 0 && c.nacked[0] <= upTo {
		upTo = c.nacked[0] - 1
	}
	return upTo
}
