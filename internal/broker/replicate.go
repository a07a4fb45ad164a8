package broker

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/meta"
	"github.com/warren-mq/warren/internal/mirror"
	"github.com/warren-mq/warren/internal/queue"
)

// Replication of mirrored queues. The leader of a mirrored queue keeps a
// journal of its contents (a leaderLog) and streams every change to each
// mirror over the queue link, as opReplicate frames, each with an offset
// in the leader's stream. Mirrors apply them to a copy (a mirrorCopy) and
// acknowledge offsets once what they applied is safe: in memory, and on
// disk for persistent messages of durable queues. A publish is confirmed
// once every mirror the leader counts (see internal/mirror's invariants)
// has acknowledged the offset of the message.
//
// A stream begins with replReset, which a mirror takes only from the
// leader its definitions name in the epoch the frame carries, and which
// empties its copy: a mirror in the in-sync set is never reset, so the
// leader first takes it out (mirror.Shrink, through meta). With
// ha-sync-mode automatic the leader then sends its backlog in batches, as
// the mirror acknowledges them; with manual it sends only what changes.
// Either way the mirror joins the in-sync set (mirror.Expand) once it
// holds everything.

// The changes a replication frame carries.
const (
	// replReset: empty the copy and follow this stream.
	replReset byte = iota
	// replAdd: id, enqueued time, flags (addDelivered, addUnacked,
	// addDurable), message.
	replAdd
	// replDeliver, replRequeue, replRemove: count, ids.
	replDeliver
	replRequeue
	replRemove
	// replPurge: every ready message leaves.
	replPurge
)

// Flags of replAdd.
const (
	addDelivered = 1 << iota
	addUnacked
	addDurable
)

// Statuses of opReplAck.
const (
	replOK = 0
	// replRefused: the mirror does not follow this stream (it knows of a
	// newer leader, was never reset by it, or could not keep a copy).
	replRefused = 1
)

// replRetry is how long the leader waits before trying again to reach a
// mirror or to commit a change of its in-sync set.
const replRetry = 250 * time.Millisecond

// leaderLog is the leader's side of one mirrored queue's replication:
// it is the queue's journal.
type leaderLog struct {
	s       *Server
	q       *localQueue
	session uint64 // names this leader's stream; immutable

	mu        sync.Mutex // taken with the queue locked
	closed    bool
	pl        mirror.Placement // as last committed
	off       uint64           // the last offset used
	live      *mirror.Copy
	followers map[string]*follower
	waiters   []replWait // by offset
	proposing bool       // runProposals is running
	// gone, while start gathers unsettled messages, names those that
	// left the queue unknown to the journal.
	gone map[uint64]bool
}

// replWait is a publish that waits for the mirrors.
type replWait struct {
	off  uint64
	done func(error)
}

// follower is one mirror as its leader sees it.
type follower struct {
	node    string
	link    *peerLink // nil until the stream began
	dialing bool
	acked   uint64
	// sent is the offset of the last change sent to it: offsets are the
	// stream's, and a mirror is not sent every change (another mirror's
	// synchronisation, changes made while it was away), so it can only
	// acknowledge up to what it was sent.
	sent uint64
	// broken: the stream to it ended, or it refused it; it takes nothing
	// until it leaves the in-sync set and starts again.
	broken bool
	// joining: it has been sent everything the queue holds, and counts
	// for confirms from then on (invariant 5); once it has acknowledged
	// joinAt, what was sent until then, the leader asks meta to add it
	// to the in-sync set (expanding while that is under way).
	joining   bool
	joinAt    uint64
	expanding bool
	// Automatic synchronisation: IDs still to send, and the offset whose
	// acknowledgement asks for the next batch; when the last batch was
	// sent, and the timer that sends the next (see syncPace).
	pending  []uint64
	batchEnd uint64
	syncing  bool
	batchAt  time.Time
	pace     *time.Timer
	// Manual synchronisation: the messages it lacks (IDs above olderMin
	// and up to olderMax) still in the queue.
	olderMin, olderMax uint64
	older              int
}

// counted reports whether f's acknowledgements gate confirms.
func (lg *leaderLog) counted(f *follower) bool {
	return f.joining || slices.Contains(lg.pl.InSync, f.node)
}

// newSession returns a random stream name.
func newSession() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) | 1
}

// replicate brings q's replication in line with def's placement: it
// starts the journal when the queue gains mirrors, follows changes of
// mirrors and in-sync set, and stops when it has none left.
func (s *Server) replicate(q *localQueue, def meta.Queue) {
	pl := s.placementOf(def)
	lg := q.repl.Load()
	if len(pl.Mirrors) == 0 {
		if lg != nil {
			q.SetJournal(nil)
			q.repl.CompareAndSwap(lg, nil)
			lg.close(nil)
		}
		return
	}
	if lg == nil {
		lg = &leaderLog{s: s, q: q, session: newSession(), live: mirror.NewCopy(), followers: map[string]*follower{}, pl: pl}
		if !q.repl.CompareAndSwap(nil, lg) {
			lg = q.repl.Load()
		} else {
			lg.start()
		}
	}
	lg.place(pl)
}

// start fills the journal with the queue's contents: its ready messages,
// and those delivered and not yet settled, wherever they are. Those are
// gathered without the journal's lock (channels take queue locks while
// holding theirs): meanwhile the journal notes which unknown messages
// left, so that none comes back.
func (lg *leaderLog) start() {
	lg.mu.Lock()
	// The queue has no journal until SetJournal takes its lock, so none
	// of its callers waits for lg.mu meanwhile.
	for _, e := range lg.q.SetJournal(lg) {
		lg.live.Add(e.ID, itemOf(&e, time.Now().UnixNano()))
	}
	lg.gone = map[uint64]bool{}
	lg.mu.Unlock()
	unacked := lg.s.unackedOf(lg.q)
	lg.mu.Lock()
	defer lg.mu.Unlock()
	for i := range unacked {
		e := &unacked[i]
		if lg.live.Get(e.ID) != nil || lg.gone[e.ID] {
			continue
		}
		it := itemOf(e, time.Now().UnixNano())
		it.Delivered, it.Unacked = true, true
		lg.live.Add(e.ID, it)
	}
	lg.gone = nil
}

// itemOf is the journal's record of e: the leader keeps the bodies of
// messages its store holds only there.
func itemOf(e *queue.Entry, enqueued int64) mirror.Item {
	it := mirror.Item{Loc: e.Loc, Enqueued: enqueued, Delivered: e.Redelivered}
	if e.Loc == nil {
		it.Msg = e.Msg
	}
	return it
}

// unackedOf returns the messages of q that this node's channels and
// links hold delivered and unsettled.
func (s *Server) unackedOf(q *localQueue) []queue.Entry {
	var out []queue.Entry
	s.mu.Lock()
	conns := s.connList()
	links := s.homeLinkList()
	s.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		chans := make([]*channel, 0, len(c.channels))
		for _, ch := range c.channels {
			chans = append(chans, ch)
		}
		c.mu.Unlock()
		for _, ch := range chans {
			ch.mu.Lock()
			for _, d := range ch.unacked {
				if d.q == q && !d.done {
					out = append(out, d.entry)
				}
			}
			ch.mu.Unlock()
		}
	}
	for _, l := range links {
		l.mu.Lock()
		for _, d := range l.unacked {
			if d.q == q {
				out = append(out, d.e)
			}
		}
		l.mu.Unlock()
	}
	return out
}

// place follows a committed placement.
func (lg *leaderLog) place(pl mirror.Placement) {
	lg.mu.Lock()
	if lg.closed || pl.Version < lg.pl.Version {
		lg.mu.Unlock()
		return
	}
	lg.pl = pl
	for node, f := range lg.followers {
		if !slices.Contains(pl.Mirrors, node) {
			delete(lg.followers, node)
			continue
		}
		if f.joining && slices.Contains(pl.InSync, node) {
			f.joining = false
		}
		if f.broken && !f.dialing && !f.expanding && !lg.counted(f) {
			// Out of the in-sync set now: it may start again.
			lg.restartLocked(f)
		}
	}
	for _, node := range pl.Mirrors {
		if lg.followers[node] != nil {
			continue
		}
		f := &follower{node: node}
		lg.followers[node] = f
		if slices.Contains(pl.InSync, node) {
			// In sync with an earlier stream, not this one: it leaves the
			// set before it starts again.
			f.broken = true
			lg.proposeLocked()
			continue
		}
		lg.restartLocked(f)
	}
	done := lg.dueLocked()
	lg.proposeLocked()
	lg.mu.Unlock()
	for _, w := range done {
		w.done(nil)
	}
}

// restartLocked begins (again) the stream to f, once its link is up.
func (lg *leaderLog) restartLocked(f *follower) {
	*f = follower{node: f.node, dialing: true, broken: true}
	if !lg.s.goLink(func() { lg.dial(f) }) {
		f.dialing = false
	}
}

// dial reaches f's node and begins the stream to it.
func (lg *leaderLog) dial(f *follower) {
	for {
		link, err := lg.s.peerLink(f.node)
		lg.mu.Lock()
		if lg.closed || lg.followers[f.node] != f {
			lg.mu.Unlock()
			return
		}
		if err == nil {
			f.dialing = false
			lg.beginLocked(f, link)
			lg.mu.Unlock()
			return
		}
		lg.mu.Unlock()
		select {
		case <-lg.s.stop:
			return
		case <-time.After(time.Second):
		}
	}
}

// beginLocked sends the stream's reset to f and starts its
// synchronisation.
func (lg *leaderLog) beginLocked(f *follower, link *peerLink) {
	f.link, f.broken = link, false
	lg.sendLocked(f, replReset, nil)
	pol := lg.q.mirrorPolicy()
	if pol.Automatic {
		f.pending = lg.live.IDs()
		f.syncing = true
		lg.syncBatchLocked(f, pol.BatchSize)
		return
	}
	ids := lg.live.IDs()
	f.older = len(ids)
	if len(ids) > 0 {
		f.olderMax = ids[len(ids)-1]
	}
	if f.older == 0 {
		lg.joinLocked(f)
	}
}

// joinLocked counts f, which has been sent everything the queue holds,
// for confirms from now on.
func (lg *leaderLog) joinLocked(f *follower) {
	if f.joining || f.broken || slices.Contains(lg.pl.InSync, f.node) {
		return
	}
	f.joining, f.joinAt = true, f.sent
	lg.proposeLocked()
}

// syncPace is the share of the time a copy of the backlog works: after
// each batch is acknowledged, the next waits as long again as that one
// took, so that the copy leaves the queue's own publishers and consumers
// more of what the nodes can do (RabbitMQ's synchronisation stops the
// queue until it ends). At full speed, a 1 GiB copy on two cores took a
// minute and cut the queue's publishers to 0.37x of their rate and its
// consumers to 0.19x; paced so, 80 s, 0.55x and 0.40x.
const syncPace = 0.5

// syncBatchLocked sends f the next batch of the backlog, as the messages
// stand now; the last batch's acknowledgement makes f caught up.
func (lg *leaderLog) syncBatchLocked(f *follower, size int) {
	f.batchAt = time.Now()
	sent := 0
	for len(f.pending) > 0 && sent < size && !f.broken {
		id := f.pending[0]
		f.pending = f.pending[1:]
		it := lg.live.Get(id)
		if it == nil {
			continue // gone since the synchronisation began
		}
		m := it.Msg
		if m == nil {
			data, err := lg.s.store.ReadAt(*it.Loc)
			if err == nil {
				m, _, err = decodeMessage(data)
			}
			if err != nil {
				lg.s.log.Warn("mirrored queue: cannot read a message back to synchronise a mirror; it is not copied",
					"queue", lg.q.Name, "vhost", lg.q.VHost, "node", f.node, "error", err)
				continue
			}
		}
		lg.sendAddLocked(f, id, it, m)
		sent++
	}
	f.batchEnd = lg.off
	if len(f.pending) == 0 {
		f.pending = nil
	}
}

// sendAddLocked sends f one message as it stands.
func (lg *leaderLog) sendAddLocked(f *follower, id uint64, it *mirror.Item, m *queue.Message) {
	var flags byte
	if it.Delivered {
		flags |= addDelivered
	}
	if it.Unacked {
		flags |= addUnacked
	}
	if lg.q.def.Durable {
		flags |= addDurable
	}
	lg.sendLocked(f, replAdd, func(w *frameWriter) {
		w.uint(id)
		w.uint(uint64(it.Enqueued))
		w.b = append(w.b, flags)
		w.message(m)
	})
}

// sendLocked sends one change to f under a new offset.
func (lg *leaderLog) sendLocked(f *follower, kind byte, fn func(w *frameWriter)) {
	lg.off++
	lg.frameLocked(f, lg.off, kind, fn)
}

// emitLocked sends one change to every mirror that follows the stream.
func (lg *leaderLog) emitLocked(kind byte, fn func(w *frameWriter)) {
	lg.off++
	for _, f := range lg.followers {
		lg.frameLocked(f, lg.off, kind, fn)
	}
}

// frameLocked writes change off to f's link, if f follows the stream.
func (lg *leaderLog) frameLocked(f *follower, off uint64, kind byte, fn func(w *frameWriter)) {
	if f.link == nil || f.broken {
		return
	}
	f.sent = off
	ok := f.link.sendSynced(nil, lg.s.applied(), opReplicate, func(w *frameWriter) {
		w.str(lg.q.VHost)
		w.str(lg.q.Name)
		w.uint(lg.session)
		w.uint(lg.pl.Epoch)
		w.uint(off)
		w.b = append(w.b, kind)
		if fn != nil {
			fn(w)
		}
	})
	if !ok {
		lg.breakLocked(f)
	}
}

// breakLocked ends the stream to f: it must leave the in-sync set before
// it starts again.
func (lg *leaderLog) breakLocked(f *follower) {
	if f.broken {
		return
	}
	f.broken = true
	if slices.Contains(lg.pl.InSync, f.node) || f.expanding {
		lg.s.log.Warn("mirrored queue: lost an in-sync mirror; confirms wait until it leaves the in-sync set",
			"queue", lg.q.Name, "vhost", lg.q.VHost, "node", f.node)
		lg.proposeLocked()
		return
	}
	// Not in the set, nor about to be: it stops counting.
	f.joining = false
	if !f.dialing {
		lg.restartLocked(f)
	}
}

// Added implements queue.Journal.
func (lg *leaderLog) Added(e *queue.Entry, enqueued int64) {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	lg.live.Add(e.ID, itemOf(e, enqueued))
	var flags byte
	if e.Redelivered {
		flags |= addDelivered
	}
	if lg.q.def.Durable {
		flags |= addDurable
	}
	m := e.Msg
	lg.emitLocked(replAdd, func(w *frameWriter) {
		w.uint(e.ID)
		w.uint(uint64(enqueued))
		w.b = append(w.b, flags)
		w.message(m)
	})
}

// Delivered implements queue.Journal.
func (lg *leaderLog) Delivered(e *queue.Entry) {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	if lg.live.Deliver(e.ID) == nil {
		return // taken without ack, and already gone
	}
	lg.emitLocked(replDeliver, func(w *frameWriter) {
		w.uint(1)
		w.uint(e.ID)
	})
}

// Requeued implements queue.Journal.
func (lg *leaderLog) Requeued(es []queue.Entry) {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	for i := range es {
		if lg.live.Get(es[i].ID) == nil {
			// Delivered before the journal began, and not yet gathered.
			it := itemOf(&es[i], time.Now().UnixNano())
			it.Delivered = true
			lg.live.Add(es[i].ID, it)
			continue
		}
		lg.live.Requeue(es[i].ID)
	}
	lg.emitLocked(replRequeue, func(w *frameWriter) {
		w.uint(uint64(len(es)))
		for i := range es {
			w.uint(es[i].ID)
		}
	})
}

// Removed implements queue.Journal; the broker also calls it for
// messages settled outside the queue.
func (lg *leaderLog) Removed(e *queue.Entry) {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	if lg.live.Remove(e.ID) == nil {
		if lg.gone != nil {
			lg.gone[e.ID] = true
		}
		return
	}
	lg.emitLocked(replRemove, func(w *frameWriter) {
		w.uint(1)
		w.uint(e.ID)
	})
	for _, f := range lg.followers {
		if f.older > 0 && e.ID > f.olderMin && e.ID <= f.olderMax {
			f.older--
			if f.older == 0 {
				lg.joinLocked(f)
			}
		}
	}
}

// Purged implements queue.Journal.
func (lg *leaderLog) Purged() {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	lg.live.Purge()
	lg.emitLocked(replPurge, nil)
	for _, f := range lg.followers {
		if f.older == 0 {
			continue
		}
		f.older = 0
		for _, id := range lg.live.IDs() {
			if id > f.olderMin && id <= f.olderMax {
				f.older++
			}
		}
		if f.older == 0 {
			lg.joinLocked(f)
		}
	}
}

// await calls done once every counted mirror holds what the queue holds
// now; at once if none is counted.
func (lg *leaderLog) await(done func(error)) {
	lg.mu.Lock()
	if lg.closed {
		lg.mu.Unlock()
		done(errNotHere)
		return
	}
	if lg.satisfiedLocked(lg.off) {
		lg.mu.Unlock()
		done(nil)
		return
	}
	lg.waiters = append(lg.waiters, replWait{off: lg.off, done: done})
	lg.mu.Unlock()
}

// satisfiedLocked reports whether every counted mirror has acknowledged
// off, or everything it was sent if that ends before.
func (lg *leaderLog) satisfiedLocked(off uint64) bool {
	if !lg.s.leaseValid() {
		return false
	}
	for _, f := range lg.followers {
		if lg.counted(f) && (f.broken || f.acked < min(off, f.sent)) {
			return false
		}
	}
	// A mirror in the in-sync set with no follower yet has acknowledged
	// nothing.
	for _, n := range lg.pl.InSync {
		if lg.followers[n] == nil {
			return false
		}
	}
	return true
}

// dueLocked takes the waiters that are satisfied now.
func (lg *leaderLog) dueLocked() []replWait {
	n := 0
	for n < len(lg.waiters) && lg.satisfiedLocked(lg.waiters[n].off) {
		n++
	}
	if n == 0 {
		return nil
	}
	done := slices.Clone(lg.waiters[:n])
	lg.waiters = slices.Delete(lg.waiters, 0, n)
	return done
}

// recheck confirms what waited only for the lease.
func (lg *leaderLog) recheck() {
	lg.mu.Lock()
	done := lg.dueLocked()
	lg.mu.Unlock()
	for _, w := range done {
		w.done(nil)
	}
}

// acked takes a mirror's acknowledgement of off, or its refusal.
func (lg *leaderLog) acked(node string, session, off uint64, status byte) {
	if session != lg.session {
		return
	}
	lg.mu.Lock()
	f := lg.followers[node]
	if lg.closed || f == nil || f.broken {
		lg.mu.Unlock()
		return
	}
	if status != replOK {
		lg.s.log.Warn("mirrored queue: a mirror refused the stream", "queue", lg.q.Name, "vhost", lg.q.VHost, "node", node)
		lg.breakLocked(f)
		lg.mu.Unlock()
		return
	}
	f.acked = max(f.acked, off)
	if f.syncing && f.acked >= f.batchEnd && f.pace == nil {
		if len(f.pending) > 0 {
			took := time.Since(f.batchAt)
			f.pace = time.AfterFunc(time.Duration(float64(took)*(1-syncPace)/syncPace), func() { lg.nextBatch(f) })
		} else {
			f.syncing = false
			lg.joinLocked(f)
		}
	}
	if f.joining && f.acked >= f.joinAt {
		lg.proposeLocked()
	}
	done := lg.dueLocked()
	lg.mu.Unlock()
	for _, w := range done {
		w.done(nil)
	}
}

// nextBatch sends f the next batch of the backlog once its pause is
// over, unless the copy ended meanwhile.
func (lg *leaderLog) nextBatch(f *follower) {
	lg.mu.Lock()
	f.pace = nil
	if lg.closed || f.broken || !f.syncing || lg.followers[f.node] != f {
		lg.mu.Unlock()
		return
	}
	lg.syncBatchLocked(f, lg.q.mirrorPolicy().BatchSize)
	if len(f.pending) == 0 && f.acked >= f.batchEnd {
		f.syncing = false
		lg.joinLocked(f)
	}
	done := lg.dueLocked()
	lg.mu.Unlock()
	for _, w := range done {
		w.done(nil)
	}
}

// linkFailed breaks the streams that went over a link that ended.
func (lg *leaderLog) linkFailed(l *peerLink) {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	for _, f := range lg.followers {
		if f.link == l {
			lg.breakLocked(f)
		}
	}
}

// proposeLocked starts runProposals if it is not running.
func (lg *leaderLog) proposeLocked() {
	if lg.proposing || lg.closed {
		return
	}
	lg.proposing = true
	if !lg.s.goLink(lg.runProposals) {
		lg.proposing = false
	}
}

// nextChangeLocked is the change of the in-sync set the leader needs
// next: a broken mirror out (first), or a caught-up one in.
func (lg *leaderLog) nextChangeLocked() (node string, shrink, ok bool) {
	for _, n := range lg.pl.InSync {
		if f := lg.followers[n]; f == nil || f.broken {
			return n, true, true
		}
	}
	for _, n := range lg.pl.Mirrors {
		f := lg.followers[n]
		if f != nil && f.joining && !f.broken && !f.expanding && f.acked >= f.joinAt && !slices.Contains(lg.pl.InSync, n) {
			return n, false, true
		}
	}
	return "", false, false
}

// runProposals commits the changes of the in-sync set the leader needs,
// one at a time, until none is left. A leader cut off from the meta
// majority keeps trying, and meanwhile confirms nothing its lost mirror
// lacks.
func (lg *leaderLog) runProposals() {
	for {
		lg.mu.Lock()
		node, shrink, ok := lg.nextChangeLocked()
		if lg.closed || !ok {
			lg.proposing = false
			lg.mu.Unlock()
			return
		}
		f := lg.followers[node]
		if !shrink {
			f.expanding = true
		}
		lg.mu.Unlock()
		def, err := lg.commit(node, shrink)
		if !shrink {
			lg.mu.Lock()
			f.expanding = false
			if err != nil && f.broken {
				// It broke while the change was under way, and the change
				// did not commit: it no longer counts.
				f.joining = false
				if !f.dialing && lg.followers[node] == f {
					lg.restartLocked(f)
				}
			}
			lg.mu.Unlock()
		}
		if err == nil {
			lg.place(lg.s.placementOf(def))
			if shrink {
				lg.s.log.Info("mirrored queue: mirror left the in-sync set", "queue", lg.q.Name, "vhost", lg.q.VHost, "node", node)
			} else {
				lg.s.log.Info("mirrored queue: mirror is in sync", "queue", lg.q.Name, "vhost", lg.q.VHost, "node", node)
			}
			continue
		}
		if errors.Is(err, errDeposed) {
			lg.mu.Lock()
			lg.proposing = false
			lg.mu.Unlock()
			return
		}
		select {
		case <-lg.s.stop:
			lg.mu.Lock()
			lg.proposing = false
			lg.mu.Unlock()
			return
		case <-time.After(replRetry):
		}
	}
}

// errStarting: the node has yet to open its definitions.
var errStarting = errors.New("broker: starting")

// applied is how far this node has applied the definitions; 0 while it
// starts.
func (s *Server) applied() uint64 {
	if !s.metaSet.Load() {
		return 0
	}
	return s.meta.Applied()
}

// errDeposed: the queue has another leader, or is gone.
var errDeposed = errors.New("broker: no longer the queue's leader")

// commit takes node out of the in-sync set (shrink) or puts it in.
func (lg *leaderLog) commit(node string, shrink bool) (meta.Queue, error) {
	s := lg.s
	if !s.metaSet.Load() {
		// The node is starting: its definitions are not open yet.
		return meta.Queue{}, errStarting
	}
	def, ok := s.meta.Queue(lg.q.VHost, lg.q.Name)
	if !ok || !s.homedHere(def) {
		return meta.Queue{}, errDeposed
	}
	cur := s.placementOf(def)
	lg.mu.Lock()
	epoch := lg.pl.Epoch
	lg.mu.Unlock()
	if cur.Epoch != epoch {
		return meta.Queue{}, errDeposed
	}
	var next mirror.Placement
	var changed bool
	if shrink {
		next, changed = mirror.Shrink(cur, node)
	} else {
		next, changed = mirror.Expand(cur, node)
	}
	if !changed {
		return def, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.meta.SetPlacement(ctx, meta.Placement{
		VHost: def.VHost, Name: def.Name, Expect: cur.Version, Leader: next.Leader,
		Mirroring: meta.Mirroring{Mirrors: next.Mirrors, InSync: next.InSync, Epoch: next.Epoch, Version: next.Version},
	})
}

// close ends the journal: publishes still waiting get err (nil: they
// need no mirror any more).
func (lg *leaderLog) close(err error) {
	lg.mu.Lock()
	lg.closed = true
	for _, f := range lg.followers {
		if f.pace != nil {
			f.pace.Stop()
			f.pace = nil
		}
	}
	ws := lg.waiters
	lg.waiters = nil
	lg.mu.Unlock()
	for _, w := range ws {
		w.done(err)
	}
}

// movedAway reports whether a queue this node no longer has still
// exists, led from another node: a publish that reached the old leader
// after the move is not in the queue.
func (s *Server) movedAway(vhost, name string) bool {
	if !s.metaSet.Load() {
		return false
	}
	def, ok := s.meta.Queue(vhost, name)
	return ok && !s.homedHere(def)
}

// mirrorPolicy is the queue's mirroring policy as it applies now.
func (q *localQueue) mirrorPolicy() mirror.Policy {
	return mirror.FromDefinition(q.applied.Load().definition)
}

// left tells the journal of a mirrored queue that a delivered message
// was settled: acked, rejected or taken without ack.
func (q *localQueue) left(e *queue.Entry) {
	if lg := q.repl.Load(); lg != nil {
		lg.Removed(e)
	}
}

// syncAll makes every mirror that is not in sync copy the backlog now,
// as sync_queue asks of a queue with ha-sync-mode manual.
func (lg *leaderLog) syncAll() {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	for _, f := range lg.followers {
		if f.broken || f.joining || f.syncing || f.link == nil || slices.Contains(lg.pl.InSync, f.node) {
			continue
		}
		f.older = 0
		f.pending = lg.live.IDs()
		f.syncing = true
		lg.syncBatchLocked(f, lg.q.mirrorPolicy().BatchSize)
		if len(f.pending) == 0 && f.acked >= f.batchEnd {
			f.syncing = false
			lg.joinLocked(f)
		}
	}
}

// cancelSync stops the copies of the backlog under way, as
// cancel_sync_queue does: those mirrors take new messages only, as under
// manual synchronisation.
func (lg *leaderLog) cancelSync() {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	for _, f := range lg.followers {
		if !f.syncing || len(f.pending) == 0 {
			// Nothing under way, or all sent: the copy ends as it acks.
			continue
		}
		// It lacks what the copy had not sent yet: the IDs from the next
		// to send up to the last of the backlog.
		f.olderMin, f.olderMax, f.older = 0, 0, 0
		if len(f.pending) > 0 {
			f.olderMin, f.olderMax = f.pending[0]-1, f.pending[len(f.pending)-1]
		}
		for _, id := range f.pending {
			if lg.live.Get(id) != nil {
				f.older++
			}
		}
		f.syncing, f.pending = false, nil
		if f.older == 0 {
			lg.joinLocked(f)
		}
	}
}

// ErrNotMirrored refuses to synchronise a queue without mirrors.
var ErrNotMirrored = errors.New("not_mirrored")

// SyncQueue makes the mirrors of a queue that are not in sync copy its
// backlog, and waits until every mirror is in sync or ctx ends, as
// sync_queue does. cancel stops the copies instead (cancel_sync_queue),
// and returns at once.
func (s *Server) SyncQueue(ctx context.Context, vhost, name string, cancel bool) error {
	def, ok := s.meta.Queue(vhost, name)
	if !ok {
		return ErrNoQueue
	}
	if def.Mirroring == nil || len(def.Mirroring.Mirrors) == 0 {
		return ErrNotMirrored
	}
	what := "sync"
	if cancel {
		what = "cancel"
	}
	if s.homedHere(def) {
		if err := s.syncHere(vhost, name, what); err != nil {
			return err
		}
	} else if _, err := s.askNode(def.Node, adminSync, vhost, name, what); err != nil {
		return fmt.Errorf("ask node %s: %w", def.Node, err)
	}
	if cancel {
		return nil
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		def, ok := s.meta.Queue(vhost, name)
		if !ok {
			return ErrNoQueue
		}
		if m := def.Mirroring; m == nil || len(m.InSync) == len(m.Mirrors) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// syncHere starts or stops the synchronisation of a queue this node
// leads.
func (s *Server) syncHere(vhost, name, what string) error {
	q := s.findQueue(vhost, name)
	if q == nil {
		return ErrNoQueue
	}
	lg := q.repl.Load()
	if lg == nil {
		return ErrNotMirrored
	}
	if what == "cancel" {
		lg.cancelSync()
	} else {
		lg.syncAll()
	}
	return nil
}
