package mirror

import (
	"cmp"
	"slices"

	"github.com/warren-mq/warren/internal/queue"
	"github.com/warren-mq/warren/internal/store"
)

// Item is one message a copy of a queue holds: ready, or delivered and
// not yet settled (unacked).
type Item struct {
	// Msg is the message; the leader's own copy leaves it nil for a
	// message its store holds at Loc, so that a queue that pages does
	// not keep every body in memory twice.
	Msg *queue.Message
	// Loc is where this node's store keeps the message; nil if it does
	// not.
	Loc *store.Location
	// Enqueued is when the message entered the queue (Unix nanoseconds):
	// its TTL counts from then.
	Enqueued int64
	// Delivered is set once the message went to a consumer: a new
	// leader hands it out flagged as redelivered.
	Delivered bool
	// Unacked: with a consumer now, so a purge leaves it.
	Unacked bool
}

// Copy is the contents of one queue as the replication stream describes
// them: the messages by their IDs in the leader's queue. The leader keeps
// one to synchronise new mirrors from; each mirror keeps one to lead
// from if it is promoted. A change naming a message the copy does not
// hold is ignored: a mirror that is synchronising learns of a message's
// changes before the message itself, which the synchronisation then
// sends as it stands. Not safe for concurrent use.
type Copy struct {
	items map[uint64]*Item
}

// NewCopy returns an empty copy.
func NewCopy() *Copy { return &Copy{items: map[uint64]*Item{}} }

// Len is the number of messages held.
func (c *Copy) Len() int { return len(c.items) }

// Add puts message id in the copy, replacing what it held under that ID.
// It returns the item it replaced, if any, so that its stored copy can
// be given back.
func (c *Copy) Add(id uint64, it Item) (old *Item) {
	old = c.items[id]
	c.items[id] = &it
	return old
}

// Get returns message id, or nil.
func (c *Copy) Get(id uint64) *Item { return c.items[id] }

// Deliver records that message id went to a consumer.
func (c *Copy) Deliver(id uint64) *Item {
	it := c.items[id]
	if it != nil {
		it.Delivered, it.Unacked = true, true
	}
	return it
}

// Requeue records that message id is ready again.
func (c *Copy) Requeue(id uint64) {
	if it := c.items[id]; it != nil {
		it.Unacked = false
	}
}

// Remove takes message id out and returns it, or nil if it was not held.
func (c *Copy) Remove(id uint64) *Item {
	it := c.items[id]
	delete(c.items, id)
	return it
}

// Purge removes every ready message and returns them.
func (c *Copy) Purge() []*Item {
	var out []*Item
	for id, it := range c.items {
		if !it.Unacked {
			out = append(out, it)
			delete(c.items, id)
		}
	}
	return out
}

// Clear removes everything and returns what was held.
func (c *Copy) Clear() []*Item {
	out := make([]*Item, 0, len(c.items))
	for _, it := range c.items {
		out = append(out, it)
	}
	clear(c.items)
	return out
}

// IDs returns the IDs held, in order: a queue's order.
func (c *Copy) IDs() []uint64 {
	ids := make([]uint64, 0, len(c.items))
	for id := range c.items {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, cmp.Compare)
	return ids
}
