package queue

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/store"
)

// storePager keeps bodies in a real message store; the record is the
// body, with the priority in front.
type storePager struct {
	t        *testing.T
	st       *store.Store
	mu       sync.Mutex
	stashed  int
	released int
	errs     []error
}

func newStorePager(t *testing.T) *storePager {
	t.Helper()
	st, err := store.Open(store.Config{Dir: t.TempDir(), SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Recover(func(store.Recovered) error { return nil }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &storePager{t: t, st: st}
}

func (p *storePager) Stash(m *Message) (store.Location, error) {
	p.mu.Lock()
	p.stashed++
	p.mu.Unlock()
	return p.st.Append("q", append([]byte{m.Priority}, m.Body...), nil)
}

func (p *storePager) Stored(loc store.Location) bool { return p.st.Stored(loc) }

func (p *storePager) Load(loc store.Location) (*Message, error) {
	b, err := p.st.ReadAt(loc)
	if err != nil {
		return nil, err
	}
	return &Message{Priority: b[0], Body: append([]byte(nil), b[1:]...), TTL: -1}, nil
}

func (p *storePager) Release(loc store.Location) {
	p.mu.Lock()
	p.released++
	p.mu.Unlock()
	if err := p.st.Release("q", loc); err != nil {
		p.t.Error(err)
	}
}

func (p *storePager) Error(err error) {
	p.mu.Lock()
	p.errs = append(p.errs, err)
	p.mu.Unlock()
}

func pagedQueue(t *testing.T, lim Limits, mem *Memory, onDrop func(Entry, DropReason)) (*Queue, *storePager) {
	p := newStorePager(t)
	return New("/", "q", lim, Paging{Pager: p, Dir: t.TempDir(), Memory: mem}, onDrop), p
}

// paged returns how many ready messages are in q's tails, out of memory
// or on their way out.
func paged(q *Queue) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for i := range q.levels {
		if t := q.levels[i].tail; t != nil {
			n += t.n
		}
	}
	return n
}

func lazy() Limits {
	l := NoLimits()
	l.Lazy = true
	return l
}

// drain takes every ready message with basic.get and checks the bodies
// are want(0), want(1), ... in that order.
func drain(t *testing.T, q *Queue, n int, want func(int) string) {
	t.Helper()
	for i := range n {
		e, _, ok := q.Get(false)
		if !ok {
			t.Fatalf("queue empty after %d of %d", i, n)
		}
		if got := string(e.Msg.Body); got != want(i) {
			t.Fatalf("message %d is %q, want %q", i, got, want(i))
		}
	}
	if _, _, ok := q.Get(false); ok {
		t.Fatal("more messages than published")
	}
}

func TestLazyQueueKeepsOnlyItsHeadInMemory(t *testing.T) {
	mem := &Memory{}
	q, p := pagedQueue(t, lazy(), mem, nil)
	const n = 10000
	for i := range n {
		q.Publish(msg(fmt.Sprintf("m%05d", i)), nil, nil)
	}
	if got := paged(q); got < n-2*minHead {
		t.Fatalf("%d of %d messages paged out", got, n)
	}
	if max := int64(2 * minHead * (6 + 160)); mem.Used() > max {
		t.Fatalf("memory in use %d, want at most %d", mem.Used(), max)
	}
	st := q.Stats()
	if st.Ready != n || st.ReadyBytes != 6*n {
		t.Fatalf("stats %+v", st)
	}
	drain(t, q, n, func(i int) string { return fmt.Sprintf("m%05d", i) })
	if tl := q.levels[0].tail; tl == nil || tl.f != nil {
		t.Fatal("the drained tail's file is still open")
	}
	if mem.Used() != 0 || p.stashed < n-2*minHead || len(p.errs) != 0 {
		t.Fatalf("after draining: memory %d, stashed %d, errors %v", mem.Used(), p.stashed, p.errs)
	}
}

func TestBudgetDecidesWhenQueuesPage(t *testing.T) {
	mem := &Memory{}
	mem.SetLimit(100 << 10)
	p := newStorePager(t)
	qs := []*Queue{
		New("/", "a", NoLimits(), Paging{Pager: p, Dir: t.TempDir(), Memory: mem}, nil),
		New("/", "b", NoLimits(), Paging{Pager: p, Dir: t.TempDir(), Memory: mem}, nil),
	}
	body := string(make([]byte, 1000))
	for range 3000 {
		for _, q := range qs {
			q.Publish(msg(body), nil, nil)
		}
	}
	// Each queue may run one head and one tail batch past the budget.
	if max := int64(100<<10) + 2*int64(minHead+tailBatch)*(1000+160); mem.Used() > max {
		t.Fatalf("memory in use %d, want at most %d", mem.Used(), max)
	}
	for _, q := range qs {
		if paged(q) == 0 {
			t.Fatalf("queue %s paged nothing", q.Name)
		}
		drain(t, q, 3000, func(int) string { return body })
	}
	if mem.Used() != 0 {
		t.Fatalf("memory in use %d after draining", mem.Used())
	}
	// Under the budget, nothing pages.
	q := New("/", "c", NoLimits(), Paging{Pager: p, Dir: t.TempDir(), Memory: mem}, nil)
	for range 50 {
		q.Publish(msg(body), nil, nil)
	}
	if paged(q) != 0 {
		t.Fatal("paged while under budget")
	}
}

func TestPagedQueueDeliversInOrderToConsumers(t *testing.T) {
	q, _ := pagedQueue(t, lazy(), &Memory{}, nil)
	c := &consumer{limit: 0}
	q.AddConsumer(c)
	const n = 5000
	for i := range n {
		q.Publish(msg(fmt.Sprintf("%d,", i)), nil, nil)
	}
	c.mu.Lock()
	c.limit = -1
	c.mu.Unlock()
	q.Kick(nil)
	want := ""
	for i := range n {
		want += fmt.Sprintf("%d,", i)
	}
	if got := bodies(c.got); got != want {
		t.Fatalf("delivered %d messages out of order", len(c.got))
	}
}

func TestRequeueIntoAPagedQueue(t *testing.T) {
	q, _ := pagedQueue(t, lazy(), &Memory{}, nil)
	const n = 3000
	for i := range n {
		q.Publish(msg(fmt.Sprintf("m%04d", i)), nil, nil)
	}
	var taken []Entry
	for range 700 {
		e, _, _ := q.Get(true)
		taken = append(taken, e)
	}
	q.Requeue(taken)
	drain(t, q, n, func(i int) string { return fmt.Sprintf("m%04d", i) })
}

func TestPagedPriorityQueue(t *testing.T) {
	lim := lazy()
	lim.MaxPriority = 2
	q, _ := pagedQueue(t, lim, &Memory{}, nil)
	for i := range 3000 {
		m := msg(fmt.Sprintf("p%d-%04d", i%3, i))
		m.Priority = uint8(i % 3)
		q.Publish(m, nil, nil)
	}
	var want []string
	for p := 2; p >= 0; p-- {
		for i := range 3000 {
			if i%3 == p {
				want = append(want, fmt.Sprintf("p%d-%04d", p, i))
			}
		}
	}
	drain(t, q, 3000, func(i int) string { return want[i] })
}

func TestPurgeGivesBackThePagedMessages(t *testing.T) {
	q, p := pagedQueue(t, lazy(), &Memory{}, nil)
	const n = 4000
	for i := range n {
		q.Publish(msg(fmt.Sprint(i)), nil, nil)
	}
	inMemory, count := q.Purge()
	if count != n {
		t.Fatalf("purged %d, want %d", count, n)
	}
	if len(inMemory)+p.released != n {
		t.Fatalf("%d returned and %d released, want %d in all", len(inMemory), p.released, n)
	}
	if st := q.Stats(); st.Ready != 0 || st.ReadyBytes != 0 || paged(q) != 0 {
		t.Fatalf("after purge: %+v, %d paged", st, paged(q))
	}
	// The queue pages again after a purge.
	for i := range n {
		q.Publish(msg(fmt.Sprint(i)), nil, nil)
	}
	drain(t, q, n, func(i int) string { return fmt.Sprint(i) })
}

func TestPagedMessagesExpireAndDropAtTheHead(t *testing.T) {
	lim := lazy()
	lim.MessageTTL = 30 * time.Millisecond
	var mu sync.Mutex
	dropped := 0
	q, _ := pagedQueue(t, lim, &Memory{}, func(e Entry, why DropReason) {
		if e.Msg == nil || why != DropExpired {
			t.Errorf("dropped %+v for %s", e, why)
		}
		mu.Lock()
		dropped++
		mu.Unlock()
	})
	for i := range 3000 {
		q.Publish(msg(fmt.Sprint(i)), nil, nil)
	}
	time.Sleep(50 * time.Millisecond)
	if n := q.Len(); n != 0 {
		t.Fatalf("%d left after their TTL", n)
	}
	if dropped != 3000 {
		t.Fatalf("dropped %d, want 3000", dropped)
	}

	lim = lazy()
	lim.MaxLen = 2500
	q, _ = pagedQueue(t, lim, &Memory{}, nil)
	for i := range 3000 {
		q.Publish(msg(fmt.Sprintf("%04d", i)), nil, nil)
	}
	if st := q.Stats(); st.Ready != 2500 || st.ReadyBytes != 4*2500 {
		t.Fatalf("stats %+v", st)
	}
	drain(t, q, 2500, func(i int) string { return fmt.Sprintf("%04d", i+500) })
}

// failingPager cannot write anything: the queue keeps its messages in
// memory and loses none.
type failingPager struct{ storePager }

func (p *failingPager) Stash(*Message) (store.Location, error) {
	return store.Location{}, errors.New("disk full")
}

func TestStashFailureKeepsMessagesInMemory(t *testing.T) {
	p := &failingPager{storePager: storePager{t: t}}
	q := New("/", "q", lazy(), Paging{Pager: p, Dir: t.TempDir(), Memory: &Memory{}}, nil)
	for i := range 3000 {
		q.Publish(msg(fmt.Sprint(i)), nil, nil)
	}
	if len(p.errs) != 1 {
		t.Fatalf("errors reported: %v (want the first only)", p.errs)
	}
	// Nothing could be stashed, so no index entry was ever written.
	if tl := q.levels[0].tail; tl != nil && (tl.f != nil || tl.wOff != 0) {
		t.Fatalf("a tail file was written: %+v", tl)
	}
	drain(t, q, 3000, func(i int) string { return fmt.Sprint(i) })
}

// A queue of large messages that pages keeps a head and a tail buffer
// bounded in bytes, not only in messages: 512 messages of a MiB each would
// be half a GiB in memory.
func TestPagingBoundsMemoryByBytes(t *testing.T) {
	mem := &Memory{}
	q, p := pagedQueue(t, lazy(), mem, nil)
	const n, size = 60, 1 << 20
	body := func(i int) string { return fmt.Sprintf("%04d", i) + strings.Repeat("x", size-4) }
	// What memory may hold: a head and a tail buffer, each up to its
	// budget plus the one message that passes it.
	bound := int64(headBytes + tailBatchBytes + 2*(size+200))
	peak := int64(0)
	for i := range n {
		q.Publish(msg(body(i)), nil, nil)
		peak = max(peak, mem.Used())
	}
	if peak > bound {
		t.Fatalf("%d MiB held in memory while paging (bound %d MiB)", peak>>20, bound>>20)
	}
	for i := range n {
		e, _, ok := q.Get(false)
		if !ok || string(e.Msg.Body) != body(i) {
			t.Fatalf("message %d: ok %v, %.8q", i, ok, e.Msg.Body)
		}
		peak = max(peak, mem.Used())
	}
	if peak > bound {
		t.Fatalf("%d MiB held in memory while draining (bound %d MiB)", peak>>20, bound>>20)
	}
	if len(p.errs) != 0 {
		t.Fatal(p.errs)
	}
	t.Logf("peak %d MiB of %d MiB published", peak>>20, n*size>>20)
}

// A message whose write to the store failed is held in memory only: when
// it goes to the tail it is written again, not dropped for want of a
// record to read back.
func TestFailedWriteIsStashedAgain(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a small file system and must run as root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	st, err := store.Open(store.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Recover(func(store.Recovered) error { return nil }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p := &storePager{t: t, st: st}
	q := New("/", "q", lazy(), Paging{Pager: p, Dir: t.TempDir(), Memory: &Memory{}}, nil)

	failed := make(chan error, 1)
	loc, err := st.Append("q", make([]byte, 4<<20), func(err error) { failed <- err })
	if err != nil {
		t.Fatal(err)
	}
	if err := <-failed; err == nil {
		t.Fatal("a write larger than the disk succeeded")
	}
	const n = 3000
	for i := range n {
		if i == 1000 {
			q.Publish(msg("unwritten"), &loc, nil)
		}
		q.Publish(msg(fmt.Sprintf("%04d", i)), nil, nil)
	}
	if paged(q) < n-minHead {
		t.Fatalf("only %d messages paged", paged(q))
	}
	drain(t, q, n+1, func(i int) string {
		switch {
		case i < 1000:
			return fmt.Sprintf("%04d", i)
		case i == 1000:
			return "unwritten"
		}
		return fmt.Sprintf("%04d", i-1)
	})
	if len(p.errs) != 0 {
		t.Fatal(p.errs)
	}
}
