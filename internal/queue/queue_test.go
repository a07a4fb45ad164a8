package queue

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/store"
)

// consumer records what it is given and takes at most limit messages.
type consumer struct {
	name     string
	priority int
	limit    int
	mu       sync.Mutex
	got      []Entry
}

func (c *consumer) Deliver(q *Queue, e Entry, _ Batch) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.limit >= 0 && len(c.got) >= c.limit {
		return false
	}
	c.got = append(c.got, e)
	return true
}

func (c *consumer) Priority() int { return c.priority }

func msg(s string) *Message { return &Message{Body: []byte(s), TTL: -1} }

func bodies(es []Entry) string {
	s := ""
	for _, e := range es {
		s += string(e.Msg.Body)
	}
	return s
}

func TestRoundRobinWithinPriority(t *testing.T) {
	q := New("/", "q", NoLimits(), Paging{}, nil)
	a := &consumer{name: "a", limit: -1}
	b := &consumer{name: "b", limit: -1}
	hi := &consumer{name: "hi", priority: 5, limit: 2}
	q.AddConsumer(a)
	q.AddConsumer(b)
	q.AddConsumer(hi)
	for _, s := range []string{"1", "2", "3", "4", "5", "6"} {
		q.Publish(msg(s), nil, nil)
	}
	// The high-priority consumer takes what it has room for first; the
	// rest alternate between the two equal ones.
	if got := bodies(hi.got); got != "12" {
		t.Errorf("hi got %q", got)
	}
	if got := bodies(a.got) + "/" + bodies(b.got); got != "35/46" {
		t.Errorf("a/b got %q", got)
	}
	if q.Unacked() != 6 {
		t.Errorf("unacked %d", q.Unacked())
	}
}

func TestRequeueRestoresOrder(t *testing.T) {
	q := New("/", "q", NoLimits(), Paging{}, nil)
	for i := range 5 {
		q.Publish(msg(fmt.Sprint(i)), nil, nil)
	}
	var taken []Entry
	for range 3 {
		e, _, ok := q.Get(true)
		if !ok {
			t.Fatal("empty")
		}
		taken = append(taken, e)
	}
	// Give back 2 then 0: they return to their original places.
	q.Requeue([]Entry{taken[2], taken[0]})
	q.Settle(1)
	var rest []Entry
	for {
		e, _, ok := q.Get(false)
		if !ok {
			break
		}
		rest = append(rest, e)
	}
	if got := bodies(rest); got != "0234" {
		t.Fatalf("after requeue: %q, want 0234", got)
	}
	if !rest[0].Redelivered || rest[2].Redelivered {
		t.Fatalf("redelivered flags: %+v", rest)
	}
	if q.Unacked() != 0 {
		t.Fatalf("unacked %d", q.Unacked())
	}
}

func TestFullConsumersLeaveMessagesReady(t *testing.T) {
	q := New("/", "q", NoLimits(), Paging{}, nil)
	c := &consumer{limit: 1}
	q.AddConsumer(c)
	q.Publish(msg("a"), nil, nil)
	q.Publish(msg("b"), nil, nil)
	if q.Len() != 1 || len(c.got) != 1 {
		t.Fatalf("len %d, delivered %d", q.Len(), len(c.got))
	}
	c.limit = 2
	q.Kick(nil)
	if q.Len() != 0 || bodies(c.got) != "ab" {
		t.Fatalf("after kick: len %d got %q", q.Len(), bodies(c.got))
	}
	if n := q.RemoveConsumer(c); n != 0 {
		t.Fatalf("consumers left %d", n)
	}
	dropped, cs := q.Delete()
	if r := q.Publish(msg("c"), nil, nil); len(dropped) != 0 || len(cs) != 0 || r != Gone || q.AddConsumer(c) {
		t.Fatal("a deleted queue accepted work")
	}
}

func BenchmarkPublishDeliver(b *testing.B) {
	q := New("/", "q", NoLimits(), Paging{}, nil)
	c := &consumer{limit: -1}
	q.AddConsumer(c)
	m := msg("x")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		q.Publish(m, nil, nil)
		if len(c.got) > 1024 {
			q.Settle(len(c.got))
			c.got = c.got[:0]
		}
	}
}

func TestLengthLimits(t *testing.T) {
	var dropped []Entry
	drop := New("/", "q", Limits{MaxLen: 2, MaxBytes: -1, MessageTTL: -1}, Paging{}, func(e Entry, _ DropReason) { dropped = append(dropped, e) })
	for _, s := range []string{"a", "b", "c"} {
		drop.Publish(msg(s), nil, nil)
	}
	if bodies(dropped) != "a" || drop.Len() != 2 {
		t.Fatalf("drop-head: dropped %q, %d left", bodies(dropped), drop.Len())
	}
	bytesQ := New("/", "q", Limits{MaxLen: -1, MaxBytes: 10, MessageTTL: -1}, Paging{}, nil)
	for _, s := range []string{"aaaa", "bbbb", "cccc"} {
		bytesQ.Publish(msg(s), nil, nil)
	}
	if e, _, _ := bytesQ.Get(false); bytesQ.Len() != 1 || string(e.Msg.Body) != "bbbb" {
		t.Fatalf("max-length-bytes kept %d, head %q", bytesQ.Len()+1, e.Msg.Body)
	}
	reject := New("/", "q", Limits{MaxLen: 1, MaxBytes: -1, RejectPublish: true, MessageTTL: -1}, Paging{}, nil)
	r1 := reject.Publish(msg("a"), nil, nil)
	r2 := reject.Publish(msg("b"), nil, nil)
	if r1 != Queued || r2 != Rejected || reject.Len() != 1 {
		t.Fatalf("reject-publish: %v %v len %d", r1, r2, reject.Len())
	}
	// Room frees up as messages leave.
	reject.Get(false)
	if r := reject.Publish(msg("c"), nil, nil); r != Queued {
		t.Fatalf("after a get: %v", r)
	}
}

func TestMessageTTL(t *testing.T) {
	var expired []Entry
	q := New("/", "q", Limits{MaxLen: -1, MaxBytes: -1, MessageTTL: 50 * time.Millisecond}, Paging{}, func(e Entry, why DropReason) {
		if why == DropExpired {
			expired = append(expired, e)
		}
	})
	q.Publish(msg("old"), nil, nil)
	short := msg("short")
	short.TTL = 0 // its own expiration, shorter than the queue's
	q.Publish(short, nil, nil)
	// As in RabbitMQ, a message expires only from the head: the short one
	// waits behind the old one.
	if q.Len() != 2 {
		t.Fatalf("len %d, want 2", q.Len())
	}
	time.Sleep(60 * time.Millisecond)
	q.Publish(msg("new"), nil, nil)
	if e, _, ok := q.Get(false); !ok || string(e.Msg.Body) != "new" {
		t.Fatalf("got %q, want the unexpired one", e.Msg.Body)
	}
	if bodies(expired) != "oldshort" {
		t.Fatalf("expired %q", bodies(expired))
	}
	// A consumer that is ready takes a message before it can expire.
	c := &consumer{limit: -1}
	q.AddConsumer(c)
	zero := msg("now")
	zero.TTL = 0
	q.Publish(zero, nil, nil)
	if bodies(c.got) != "now" {
		t.Fatalf("consumer got %q", bodies(c.got))
	}
}

func TestPriorityQueue(t *testing.T) {
	lim := NoLimits()
	lim.MaxPriority = 5
	q := New("/", "p", lim, Paging{}, nil)
	publish := func(body string, prio uint8) {
		q.Publish(&Message{Body: []byte(body), Priority: prio, TTL: -1}, nil, nil)
	}
	publish("low-1", 0)
	publish("high-1", 5)
	publish("mid", 3)
	publish("capped", 9) // above the maximum: counts as 5
	publish("low-2", 0)
	publish("high-2", 5)
	var got []string
	var held []Entry
	for {
		e, _, ok := q.Get(true)
		if !ok {
			break
		}
		got = append(got, string(e.Msg.Body))
		held = append(held, e)
	}
	if want := "high-1 capped high-2 mid low-1 low-2"; strings.Join(got, " ") != want {
		t.Fatalf("order %q, want %q", strings.Join(got, " "), want)
	}
	// Requeued messages go back to their place within their priority.
	q.Requeue([]Entry{held[5], held[0], held[3]})
	got = got[:0]
	for {
		e, _, ok := q.Get(false)
		if !ok {
			break
		}
		got = append(got, string(e.Msg.Body))
	}
	if want := "high-1 mid low-2"; strings.Join(got, " ") != want {
		t.Errorf("after requeue %q, want %q", strings.Join(got, " "), want)
	}
	// Length limits drop what would be delivered next.
	lim.MaxLen = 2
	q2 := New("/", "p2", lim, Paging{}, nil)
	q2.Publish(&Message{Body: []byte("a"), TTL: -1}, nil, nil)
	q2.Publish(&Message{Body: []byte("b"), Priority: 2, TTL: -1}, nil, nil)
	q2.Publish(&Message{Body: []byte("c"), TTL: -1}, nil, nil)
	if e, n, _ := q2.Get(false); string(e.Msg.Body) != "a" || n != 1 {
		t.Errorf("after overflow got %q with %d left", e.Msg.Body, n)
	}
}

func TestRequeueMergesInOrder(t *testing.T) {
	q := New("/", "r", NoLimits(), Paging{}, nil)
	for i := range 8 {
		q.Publish(&Message{Body: []byte{byte('a' + i)}, TTL: -1}, nil, nil)
	}
	var held []Entry
	for range 6 {
		e, _, _ := q.Get(true)
		held = append(held, e)
	}
	// a..f are out; g, h are ready. Put back b and e, then a, f and c:
	// the second batch interleaves with what is ready.
	q.Requeue([]Entry{held[4], held[1]})
	q.Requeue([]Entry{held[0], held[5], held[2]})
	var got []byte
	for {
		e, _, ok := q.Get(false)
		if !ok {
			break
		}
		got = append(got, e.Msg.Body[0])
		if !e.Redelivered && e.Msg.Body[0] < 'g' {
			t.Errorf("%c not marked redelivered", e.Msg.Body[0])
		}
	}
	if string(got) != "abcefgh" {
		t.Errorf("order %q, want abcefgh", got)
	}
}

// BenchmarkRequeueLargeQueue puts back 50,000 unacked messages into a
// queue holding 200,000, as when a greedy consumer disconnects.
func BenchmarkRequeueLargeQueue(b *testing.B) {
	for range b.N {
		b.StopTimer()
		q := New("/", "big", NoLimits(), Paging{}, nil)
		m := &Message{Body: []byte("x"), TTL: -1}
		for range 250000 {
			q.Publish(m, nil, nil)
		}
		held := make([]Entry, 0, 50000)
		for range 50000 {
			e, _, _ := q.Get(true)
			held = append(held, e)
		}
		b.StartTimer()
		q.Requeue(held)
	}
}

// A queue can hold more than its length limit at a restart (messages
// requeued past it, or a policy that lowered it): recovery brings every
// message back, as RabbitMQ does, and the limit acts on what follows.
func TestRecoverKeepsMessagesPastTheLimit(t *testing.T) {
	var dropped []Entry
	onDrop := func(e Entry, _ DropReason) { dropped = append(dropped, e) }
	reject := New("/", "q", Limits{MaxLen: 2, MaxBytes: -1, RejectPublish: true, MessageTTL: -1}, Paging{}, onDrop)
	dropHead := New("/", "q", Limits{MaxLen: 2, MaxBytes: 4, MessageTTL: -1}, Paging{}, onDrop)
	for _, q := range []*Queue{reject, dropHead} {
		for i, s := range []string{"a", "b", "c", "d"} {
			if r := q.Recover(msg(s), store.Location{Segment: 1, Offset: int64(8 * i)}, 0, false); r != Queued {
				t.Fatalf("recover %s: %v", s, r)
			}
		}
		if q.Len() != 4 || len(dropped) != 0 {
			t.Fatalf("after recovery: %d ready, %q dropped; want all 4 kept", q.Len(), bodies(dropped))
		}
	}
	if r := reject.Publish(msg("e"), nil, nil); r != Rejected || reject.Len() != 4 {
		t.Fatalf("reject-publish over the limit after recovery: %v, %d ready", r, reject.Len())
	}
	if r := dropHead.Publish(msg("e"), nil, nil); r != Queued || dropHead.Len() != 2 || bodies(dropped) != "abc" {
		t.Fatalf("drop-head after recovery: %v, %d ready, dropped %q", r, dropHead.Len(), bodies(dropped))
	}
}
