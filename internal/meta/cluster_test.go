package meta

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/cluster"
)

// member is one node of a test group: a real cluster port on loopback
// with Raft and the meta service behind it.
type member struct {
	id, addr, dir string
	ram           bool
	srv           *cluster.Server
	layer         *cluster.StreamLayer
	serveDone     chan error

	mu   sync.Mutex
	node *Node
}

const testCookie = "TESTCOOKIE"

func newMember(t *testing.T, id string, ram bool) *member {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &member{id: id, addr: l.Addr().String(), dir: t.TempDir(), ram: ram, serveDone: make(chan error, 1)}
	m.srv = cluster.NewServer(testCookie, nil, nil)
	m.srv.Handle(cluster.ServiceRaft, func(nc net.Conn, peer string) {
		m.mu.Lock()
		layer := m.layer
		m.mu.Unlock()
		if layer == nil {
			nc.Close()
			return
		}
		layer.Handoff(nc, peer)
	})
	m.srv.Handle(cluster.ServiceMeta, func(nc net.Conn, peer string) {
		m.mu.Lock()
		n := m.node
		m.mu.Unlock()
		if n == nil {
			nc.Close()
			return
		}
		n.ServeConn(nc, peer)
	})
	go func() { m.serveDone <- m.srv.Serve(l) }()
	t.Cleanup(func() {
		m.stop(t)
		m.srv.Close()
		<-m.serveDone
	})
	return m
}

// start opens the member's meta node, joining through seeds if it has
// no state.
func (m *member) start(ctx context.Context, t *testing.T, seeds ...string) error {
	t.Helper()
	id := cluster.Identity{Cookie: testCookie, Name: m.id}
	layer := cluster.NewStreamLayer(m.addr, id)
	m.mu.Lock()
	m.layer = layer
	m.mu.Unlock()
	n, err := Open(ctx, Config{NodeID: m.id, Dir: m.dir, RAM: m.ram, ApplyTimeout: 5 * time.Second, Network: &Network{
		Layer: layer,
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			return id.Dial(ctx, addr, cluster.ServiceMeta)
		},
		Join: seeds,
	}})
	if err != nil {
		m.mu.Lock()
		m.layer = nil
		m.mu.Unlock()
		return err
	}
	m.mu.Lock()
	m.node = n
	m.mu.Unlock()
	return nil
}

func (m *member) stop(t *testing.T) {
	m.mu.Lock()
	n := m.node
	m.node, m.layer = nil, nil
	m.mu.Unlock()
	if n != nil {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	}
}

func (m *member) n() *Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.node
}

func TestGroupReplicatesAndForwards(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, b, c := newMember(t, "a@localhost", false), newMember(t, "b@localhost", false), newMember(t, "c@localhost", true)
	if err := a.start(ctx, t); err != nil {
		t.Fatal(err)
	}
	if err := a.n().PutVHost(ctx, VHost{Name: "/"}); err != nil {
		t.Fatal(err)
	}
	if err := b.start(ctx, t, a.addr); err != nil {
		t.Fatal(err)
	}
	// The RAM node joins through b, which is not the leader.
	if err := c.start(ctx, t, b.addr); err != nil {
		t.Fatal(err)
	}
	if !c.n().VHostExists("/") {
		t.Fatal("a joining node did not catch up")
	}
	members := a.n().Members()
	want := []Member{{ID: "a@localhost", Addr: a.addr, Voter: true}, {ID: "b@localhost", Addr: b.addr, Voter: true}, {ID: "c@localhost", Addr: c.addr, Voter: false}}
	if len(members) != 3 || members[0] != want[0] || members[1] != want[1] || members[2] != want[2] {
		t.Fatalf("members %+v, want %+v", members, want)
	}

	// A change on a follower is forwarded, and read back at once there.
	if _, err := c.n().DeclareQueue(ctx, Queue{VHost: "/", Name: "q", Durable: true, Node: "c@localhost"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.n().Queue("/", "q"); !ok {
		t.Fatal("the RAM node does not read its own write")
	}
	// Errors keep their meaning across the wire.
	if cur, err := b.n().DeclareQueue(ctx, Queue{VHost: "/", Name: "q"}); !errors.Is(err, ErrExists) || cur.Node != "c@localhost" {
		t.Fatalf("redeclare on b: %+v %v", cur, err)
	}
	if err := b.n().DeleteVHost(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete missing vhost on b: %v", err)
	}
	if ok, err := b.n().DeleteQueue(ctx, "/", "missing"); err != nil || ok {
		t.Fatalf("delete missing queue on b: %v %v", ok, err)
	}
	waitFor(t, func() bool { _, ok := a.n().Queue("/", "q"); return ok })

	// Placements change only from the current version, wherever asked:
	// of two changes made from the same version, the second is refused.
	move := Placement{VHost: "/", Name: "q", Expect: 0, Leader: "b@localhost", Mirroring: Mirroring{Mirrors: []string{"c@localhost"}, Epoch: 1, Version: 1}}
	if q, err := c.n().SetPlacement(ctx, move); err != nil || q.Node != "b@localhost" || q.PlacementVersion() != 1 {
		t.Fatalf("placement through c: %+v %v", q, err)
	}
	move.Leader = "a@localhost"
	if q, err := b.n().SetPlacement(ctx, move); !errors.Is(err, ErrStale) || q.Node != "b@localhost" {
		t.Fatalf("second placement from version 0 through b: %+v %v", q, err)
	}
	waitFor(t, func() bool {
		q, _ := a.n().Queue("/", "q")
		return q.PlacementVersion() == 1 && q.Node == "b@localhost"
	})

	// The only disc node left cannot go, nor become a RAM node.
	if err := b.n().RemoveMember(ctx, "b@localhost"); err != nil {
		t.Fatal(err)
	}
	b.stop(t)
	if err := c.n().RemoveMember(ctx, "a@localhost"); !errors.Is(err, ErrLastDisc) {
		t.Fatalf("remove last disc node: %v", err)
	}
	if err := c.n().AddMember(ctx, "a@localhost", a.addr, false); !errors.Is(err, ErrLastDisc) {
		t.Fatalf("demote last disc node: %v", err)
	}
}

// TestRestartInAnyOrder: three disc nodes stopped, then started one at a
// time in the reverse order; the group serves again once two are up.
func TestRestartInAnyOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ms := startGroup(ctx, t)
	if _, err := ms[1].n().DeclareExchange(ctx, Exchange{VHost: "/", Name: "x", Type: "fanout", Durable: true}); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		m.stop(t)
	}
	// The first to stop starts last; the first two up form a majority.
	started := make(chan error, 2)
	for _, m := range []*member{ms[2], ms[1]} {
		go func() { started <- m.start(ctx, t) }()
	}
	for range 2 {
		if err := <-started; err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := ms[2].n().Exchange("/", "x"); !ok {
		t.Fatal("exchange lost over a full restart")
	}
	if err := ms[2].n().PutVHost(ctx, VHost{Name: "after"}); err != nil {
		t.Fatal(err)
	}
	if err := ms[0].start(ctx, t); err != nil {
		t.Fatal(err)
	}
	if !ms[0].n().VHostExists("after") {
		t.Fatal("the last node up did not catch up")
	}
}

// TestMinorityRefusesChanges: a node cut off from the majority refuses a
// change within a bounded time and applies nothing.
func TestMinorityRefusesChanges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ms := startGroup(ctx, t)
	ms[1].stop(t)
	ms[2].stop(t)
	start := time.Now()
	err := ms[0].n().PutVHost(ctx, VHost{Name: "lonely"})
	if err == nil {
		t.Fatal("a minority applied a change")
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("refusal took %s", took)
	}
	if ms[0].n().VHostExists("lonely") {
		t.Error("the refused change is visible")
	}
	t.Logf("refused after %s: %v", time.Since(start).Round(time.Millisecond), err)
}

// startGroup starts three disc members, the first with vhost "/", the
// others joining it.
func startGroup(ctx context.Context, t *testing.T) []*member {
	t.Helper()
	ms := []*member{newMember(t, "a@localhost", false), newMember(t, "b@localhost", false), newMember(t, "c@localhost", false)}
	if err := ms[0].start(ctx, t); err != nil {
		t.Fatal(err)
	}
	if err := ms[0].n().PutVHost(ctx, VHost{Name: "/"}); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[1:] {
		if err := m.start(ctx, t, ms[0].addr); err != nil {
			t.Fatal(err)
		}
	}
	return ms
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
