package meta

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/amqp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) Changed(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) count(k EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

func openTest(t *testing.T, obs Observer) *Node {
	t.Helper()
	n, err := Open(context.Background(), Config{NodeID: "test@localhost", Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func TestDefinitionsCascade(t *testing.T) {
	rec := &recorder{}
	n := openTest(t, rec)
	ctx := context.Background()
	if err := n.PutVHost(ctx, VHost{Name: "/"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.Exchange("/", "amq.topic"); !ok {
		t.Fatal("vhost lacks amq.topic")
	}
	q := Queue{VHost: "/", Name: "q", Durable: true, Arguments: Args{amqp.Table{"x-max-length": int64(5)}}}
	if _, err := n.DeclareQueue(ctx, q); err != nil {
		t.Fatal(err)
	}
	cur, err := n.DeclareQueue(ctx, Queue{VHost: "/", Name: "q"})
	if !errors.Is(err, ErrExists) || !cur.Durable || cur.Arguments.Table["x-max-length"] != int64(5) {
		t.Fatalf("redeclare: %+v %v", cur, err)
	}
	if _, err := n.DeclareExchange(ctx, Exchange{VHost: "/", Name: "ad", Type: "fanout", AutoDelete: true}); err != nil {
		t.Fatal(err)
	}
	if err := n.Bind(ctx, Binding{VHost: "/", Source: "ad", Destination: "q", DestinationType: DestQueue}); err != nil {
		t.Fatal(err)
	}
	if err := n.Bind(ctx, Binding{VHost: "/", Source: "ad", Destination: "missing", DestinationType: DestQueue}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bind to missing queue: %v", err)
	}
	// Deleting the queue removes its binding, and with it the auto-delete
	// exchange that has nothing bound any more.
	if ok, err := n.DeleteQueue(ctx, "/", "q"); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if _, ok := n.Exchange("/", "ad"); ok {
		t.Fatal("auto-delete exchange survived its last binding")
	}
	if rec.count(BindingRemoved) != 1 || rec.count(ExchangeDeleted) != 1 || rec.count(QueueDeleted) != 1 {
		t.Fatalf("events: %+v", rec.events)
	}
}

func TestSnapshotRestore(t *testing.T) {
	n := openTest(t, nil)
	ctx := context.Background()
	n.PutVHost(ctx, VHost{Name: "v"})
	n.PutUser(ctx, User{Name: "u", PasswordHash: "x", HashingAlgorithm: "rabbit_password_hashing_sha256"})
	n.SetPermission(ctx, Permission{User: "u", VHost: "v", Configure: ".*", Write: ".*", Read: ".*"})
	n.DeclareQueue(ctx, Queue{VHost: "v", Name: "q", Arguments: Args{amqp.Table{"x-message-ttl": int32(10)}}})
	n.Bind(ctx, Binding{VHost: "v", Source: "amq.direct", Destination: "q", DestinationType: DestQueue, RoutingKey: "k"})

	snap, err := n.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.(*fsmSnapshot).data.write(&buf); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	f := &fsm{st: newState(), observer: rec}
	if err := f.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	got := f.st.export()
	want := n.Snapshot()
	if len(got.Queues) != 1 || len(got.Bindings) != len(want.Bindings) || len(got.Permissions) != 1 || got.Queues[0].Arguments.Table["x-message-ttl"] != int32(10) {
		t.Fatalf("restored %+v, want %+v", got, want)
	}
	if rec.count(StateReset) != 1 {
		t.Fatal("restore did not announce a reset")
	}
}

// TestPlacementFencing: a placement names the version it replaces, and
// is refused unless that version is current and its own is newer.
func TestPlacementFencing(t *testing.T) {
	rec := &recorder{}
	n := openTest(t, rec)
	ctx := context.Background()
	n.PutVHost(ctx, VHost{Name: "/"})
	if _, err := n.SetPlacement(ctx, Placement{VHost: "/", Name: "none", Mirroring: Mirroring{Version: 1}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("placement of a missing queue: %v", err)
	}
	if _, err := n.DeclareQueue(ctx, Queue{VHost: "/", Name: "q", Durable: true, Node: "a"}); err != nil {
		t.Fatal(err)
	}
	first := Placement{VHost: "/", Name: "q", Expect: 0, Leader: "a", Mirroring: Mirroring{Mirrors: []string{"b", "c"}, Epoch: 1, Version: 1}}
	if q, err := n.SetPlacement(ctx, first); err != nil || q.Node != "a" || q.Mirroring == nil || len(q.Mirroring.Mirrors) != 2 {
		t.Fatalf("first placement: %+v %v", q, err)
	}
	// A decider still at version 0 loses.
	stale := first
	stale.Leader = "b"
	if _, err := n.SetPlacement(ctx, stale); !errors.Is(err, ErrStale) {
		t.Fatalf("placement from a replaced version: %v", err)
	}
	// A change must move the version forward.
	same := Placement{VHost: "/", Name: "q", Expect: 1, Leader: "b", Mirroring: Mirroring{Epoch: 2, Version: 1}}
	if _, err := n.SetPlacement(ctx, same); !errors.Is(err, ErrStale) {
		t.Fatalf("placement that keeps the version: %v", err)
	}
	next := Placement{VHost: "/", Name: "q", Expect: 1, Leader: "c", Mirroring: Mirroring{Mirrors: []string{"b"}, InSync: []string{"b"}, Epoch: 2, Version: 2}}
	if _, err := n.SetPlacement(ctx, next); err != nil {
		t.Fatal(err)
	}
	q, _ := n.Queue("/", "q")
	if q.Node != "c" || q.PlacementVersion() != 2 || q.Mirroring.Epoch != 2 || len(q.Mirroring.InSync) != 1 || !q.Durable {
		t.Fatalf("queue after two placements: %+v %+v", q, q.Mirroring)
	}
	if rec.count(QueuePlaced) != 2 {
		t.Fatalf("%d QueuePlaced events, want 2", rec.count(QueuePlaced))
	}

	// A snapshot keeps the placement.
	snap, err := n.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.(*fsmSnapshot).data.write(&buf); err != nil {
		t.Fatal(err)
	}
	f := &fsm{st: newState()}
	if err := f.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	got := f.st.export().Queues
	if len(got) != 1 || got[0].Node != "c" || got[0].Mirroring == nil || got[0].Mirroring.Version != 2 || got[0].Mirroring.InSync[0] != "b" {
		t.Fatalf("restored %+v", got)
	}
}

// TestCascadeRemovesLaterBindings deletes a queue whose only binding is
// from an auto-delete exchange that is itself the destination of another
// binding: the cascade removes a binding the outer loop has yet to visit.
func TestCascadeRemovesLaterBindings(t *testing.T) {
	n := openTest(t, nil)
	ctx := context.Background()
	n.PutVHost(ctx, VHost{Name: "/"})
	n.DeclareQueue(ctx, Queue{VHost: "/", Name: "q"})
	n.DeclareExchange(ctx, Exchange{VHost: "/", Name: "ad", Type: "direct", AutoDelete: true})
	n.DeclareExchange(ctx, Exchange{VHost: "/", Name: "src", Type: "direct"})
	n.Bind(ctx, Binding{VHost: "/", Source: "ad", Destination: "q", DestinationType: DestQueue, RoutingKey: "a"})
	n.Bind(ctx, Binding{VHost: "/", Source: "src", Destination: "ad", DestinationType: DestExchange, RoutingKey: "b"})
	if _, err := n.DeleteQueue(ctx, "/", "q"); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.Exchange("/", "ad"); ok {
		t.Fatal("auto-delete exchange kept after its last binding went")
	}
	if b := n.Snapshot().Bindings; len(b) != 0 {
		t.Fatalf("bindings left: %+v", b)
	}
}

func TestDurableLogSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	n, err := Open(ctx, Config{NodeID: "test@localhost", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if n.Restored() {
		t.Fatal("a new directory reported restored state")
	}
	n.PutVHost(ctx, VHost{Name: "/"})
	n.DeclareQueue(ctx, Queue{VHost: "/", Name: "q", Durable: true, Arguments: Args{amqp.Table{"x-max-length": int32(3)}}})
	n.Bind(ctx, Binding{VHost: "/", Source: "amq.direct", Destination: "q", DestinationType: DestQueue, RoutingKey: "k"})
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	rec := &recorder{}
	n, err = Open(ctx, Config{NodeID: "test@localhost", Dir: dir, Observer: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if !n.Restored() {
		t.Fatal("restart did not report restored state")
	}
	q, ok := n.Queue("/", "q")
	if !ok || !q.Durable || q.Arguments.Table["x-max-length"] != int32(3) {
		t.Fatalf("after restart: %+v %v", q, ok)
	}
	if len(n.Snapshot().Bindings) != 1 {
		t.Fatalf("bindings after restart: %+v", n.Snapshot().Bindings)
	}
	// The observer saw the replay, so a broker rebuilds its view from it.
	if rec.count(QueueAdded) != 1 || rec.count(BindingAdded) != 1 {
		t.Fatalf("replayed events: %+v", rec.events)
	}
}

// TestOpenElectsWithoutWaitingForTimeout checks that a node, new or
// restarted, leads as soon as it starts rather than after the heartbeat
// timeout it starts with (twice the lease), and then runs with timeouts
// as long as the lease, so that an idle leader wakes up rarely.
func TestOpenElectsWithoutWaitingForTimeout(t *testing.T) {
	dir := t.TempDir()
	for _, run := range []string{"new", "restarted"} {
		start := time.Now()
		n, err := Open(context.Background(), Config{NodeID: "test@localhost", Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		rc := n.raft.ReloadableConfig()
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if took >= 2*leaseTimeout {
			t.Errorf("%s node took %v to lead: it waited for the initial heartbeat timeout", run, took)
		}
		if rc.HeartbeatTimeout != leaseTimeout || rc.ElectionTimeout != leaseTimeout {
			t.Errorf("%s node runs with heartbeat timeout %v and election timeout %v, want %v", run, rc.HeartbeatTimeout, rc.ElectionTimeout, leaseTimeout)
		}
	}
}
