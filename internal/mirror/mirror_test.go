package mirror

import (
	"encoding/json"
	"slices"
	"testing"
)

// policyJSON reads a definition as it arrives from set_policy or the API:
// numbers are float64.
func policyJSON(t *testing.T, s string) Policy {
	t.Helper()
	var def map[string]any
	if err := json.Unmarshal([]byte(s), &def); err != nil {
		t.Fatal(err)
	}
	return FromDefinition(def)
}

func up(nodes ...string) func(string) bool {
	return func(n string) bool { return slices.Contains(nodes, n) }
}

func TestFromDefinition(t *testing.T) {
	for _, tc := range []struct {
		def  string
		want Policy
	}{
		{`{}`, Policy{BatchSize: DefaultBatchSize}},
		{`{"ha-mode":"all"}`, Policy{Mode: All, BatchSize: DefaultBatchSize}},
		{`{"ha-mode":"exactly","ha-params":2,"ha-sync-mode":"automatic"}`, Policy{Mode: Exactly, Count: 2, Automatic: true, BatchSize: DefaultBatchSize}},
		{`{"ha-mode":"nodes","ha-params":["a","b","a"],"ha-sync-batch-size":10}`, Policy{Mode: Nodes, Nodes: []string{"a", "b"}, BatchSize: 10}},
		{`{"ha-mode":"all","ha-promote-on-failure":"always","ha-promote-on-shutdown":"when-synced"}`, Policy{Mode: All, BatchSize: DefaultBatchSize, PromoteOnFailure: true}},
		{`{"ha-mode":"all","ha-promote-on-shutdown":"always","ha-sync-mode":"manual"}`, Policy{Mode: All, BatchSize: DefaultBatchSize, PromoteOnShutdown: true}},
		{`{"max-length":10}`, Policy{BatchSize: DefaultBatchSize}},
	} {
		got := policyJSON(t, tc.def)
		if got.Mode != tc.want.Mode || got.Count != tc.want.Count || !slices.Equal(got.Nodes, tc.want.Nodes) ||
			got.Automatic != tc.want.Automatic || got.BatchSize != tc.want.BatchSize ||
			got.PromoteOnFailure != tc.want.PromoteOnFailure || got.PromoteOnShutdown != tc.want.PromoteOnShutdown {
			t.Errorf("%s: got %+v, want %+v", tc.def, got, tc.want)
		}
		if got.Mirrored() != (tc.want.Mode != None) {
			t.Errorf("%s: Mirrored() = %v", tc.def, got.Mirrored())
		}
	}
}

func TestWant(t *testing.T) {
	members := []string{"n1", "n2", "n3", "n4"}
	for _, tc := range []struct {
		name    string
		policy  string
		pl      Placement
		running []string
		load    map[string]int
		want    []string
	}{
		{"all: every other member", `{"ha-mode":"all"}`, Placement{Leader: "n2"}, members, nil, []string{"n1", "n3", "n4"}},
		{"all: old mirrors first, then a joined node", `{"ha-mode":"all"}`, Placement{Leader: "n1", Mirrors: []string{"n3", "n2"}}, members, nil, []string{"n3", "n2", "n4"}},
		{"all: stopped members keep theirs", `{"ha-mode":"all"}`, Placement{Leader: "n1", Mirrors: []string{"n2"}}, []string{"n1"}, nil, []string{"n2", "n3", "n4"}},
		{"all: a forgotten node's mirror goes", `{"ha-mode":"all"}`, Placement{Leader: "n1", Mirrors: []string{"n9", "n2"}}, members, nil, []string{"n2", "n3", "n4"}},
		{"exactly 2: one new mirror, least loaded", `{"ha-mode":"exactly","ha-params":2}`, Placement{Leader: "n1"}, members, map[string]int{"n2": 3, "n3": 1, "n4": 2}, []string{"n3"}},
		{"exactly 2: the existing mirror stays", `{"ha-mode":"exactly","ha-params":2}`, Placement{Leader: "n1", Mirrors: []string{"n4"}}, members, map[string]int{"n4": 9}, []string{"n4"}},
		{"exactly 2: a stopped mirror is replaced", `{"ha-mode":"exactly","ha-params":2}`, Placement{Leader: "n1", Mirrors: []string{"n2"}}, []string{"n1", "n3", "n4"}, nil, []string{"n3"}},
		{"exactly 3: a stopped mirror stays when no node can replace it", `{"ha-mode":"exactly","ha-params":3}`, Placement{Leader: "n1", Mirrors: []string{"n2", "n3"}}, []string{"n1", "n3"}, nil, []string{"n3", "n2"}},
		{"exactly 9: all there are", `{"ha-mode":"exactly","ha-params":9}`, Placement{Leader: "n1"}, members, nil, []string{"n2", "n3", "n4"}},
		{"exactly 1: none", `{"ha-mode":"exactly","ha-params":1}`, Placement{Leader: "n1", Mirrors: []string{"n2"}}, members, nil, nil},
		{"exactly 2 of 3: the newest mirror goes first", `{"ha-mode":"exactly","ha-params":2}`, Placement{Leader: "n1", Mirrors: []string{"n3", "n2"}}, members, nil, []string{"n3"}},
		{"nodes: named members only", `{"ha-mode":"nodes","ha-params":["n3","n9","n2"]}`, Placement{Leader: "n1"}, members, nil, []string{"n3", "n2"}},
		{"nodes: the leader is not its own mirror", `{"ha-mode":"nodes","ha-params":["n1","n2"]}`, Placement{Leader: "n1", Mirrors: []string{"n4"}}, members, nil, []string{"n2"}},
		{"no ha-mode: no mirrors", `{}`, Placement{Leader: "n1", Mirrors: []string{"n2"}}, members, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Want(policyJSON(t, tc.policy), tc.pl, Cluster{Members: members, Running: up(tc.running...), Load: tc.load})
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Want = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReconcile(t *testing.T) {
	members := []string{"n1", "n2", "n3"}
	c := Cluster{Members: members, Running: up(members...)}

	// A new policy adds mirrors, out of sync, in a new version.
	pl := Placement{Leader: "n1", Epoch: 1, Version: 4}
	got, changed := Reconcile(policyJSON(t, `{"ha-mode":"all"}`), pl, c)
	want := Placement{Leader: "n1", Mirrors: []string{"n2", "n3"}, Epoch: 1, Version: 5}
	if !changed || !got.Equal(want) {
		t.Fatalf("all: %+v %v, want %+v", got, changed, want)
	}
	if _, changed := Reconcile(policyJSON(t, `{"ha-mode":"all"}`), got, c); changed {
		t.Fatal("reconciling twice changed the placement again")
	}

	// Fewer copies: the newest mirror goes, and with it its place in sync.
	pl = Placement{Leader: "n1", Mirrors: []string{"n2", "n3"}, InSync: []string{"n2", "n3"}, Epoch: 1, Version: 5}
	got, _ = Reconcile(policyJSON(t, `{"ha-mode":"exactly","ha-params":2}`), pl, c)
	want = Placement{Leader: "n1", Mirrors: []string{"n2"}, InSync: []string{"n2"}, Epoch: 1, Version: 6}
	if !got.Equal(want) {
		t.Fatalf("exactly 2: %+v, want %+v", got, want)
	}

	// The policy drops mirroring: no mirrors left.
	got, _ = Reconcile(Policy{}, pl, c)
	if len(got.Mirrors) != 0 || len(got.InSync) != 0 || got.Leader != "n1" || got.Epoch != 1 {
		t.Fatalf("no policy: %+v", got)
	}

	// A nodes policy that leaves the leader out: it keeps leading, with
	// the named mirrors, until one of them is in sync.
	nodes := policyJSON(t, `{"ha-mode":"nodes","ha-params":["n2","n3"]}`)
	pl = Placement{Leader: "n1", Epoch: 3, Version: 7}
	got, _ = Reconcile(nodes, pl, c)
	want = Placement{Leader: "n1", Mirrors: []string{"n2", "n3"}, Epoch: 3, Version: 8}
	if !got.Equal(want) {
		t.Fatalf("nodes, nothing in sync: %+v, want %+v", got, want)
	}
	got.InSync = []string{"n3"}
	got, _ = Reconcile(nodes, got, c)
	want = Placement{Leader: "n3", Mirrors: []string{"n2"}, Epoch: 4, Version: 9}
	if !got.Equal(want) {
		t.Fatalf("nodes, n3 in sync: %+v, want %+v", got, want)
	}

	// An in-sync mirror that is not running does not take over.
	pl = Placement{Leader: "n1", Mirrors: []string{"n2", "n3"}, InSync: []string{"n2"}, Epoch: 3, Version: 7}
	got, _ = Reconcile(nodes, pl, Cluster{Members: members, Running: up("n1", "n3")})
	if got.Leader != "n1" || got.Epoch != 3 {
		t.Fatalf("nodes, in-sync mirror down: %+v", got)
	}
}

func TestFailover(t *testing.T) {
	members := []string{"n1", "n2", "n3"}
	pl := Placement{Leader: "n1", Mirrors: []string{"n3", "n2"}, InSync: []string{"n3", "n2"}, Epoch: 5, Version: 9}
	all := policyJSON(t, `{"ha-mode":"all"}`)

	got, out := Failover(all, pl, Cluster{Members: members, Running: up("n2", "n3")}, false)
	// The other mirrors followed the old leader: they join the new
	// leader's in-sync set only once it has brought them up to date.
	want := Placement{Leader: "n3", Mirrors: []string{"n2"}, Epoch: 6, Version: 10}
	if out != Promoted || !got.Equal(want) {
		t.Fatalf("oldest in-sync: %+v %v, want %+v", got, out, want)
	}
	if pl.Leader != "n1" || len(pl.Mirrors) != 2 {
		t.Fatal("Failover changed its input")
	}

	got, out = Failover(all, pl, Cluster{Members: members, Running: up("n2")}, false)
	if out != Promoted || got.Leader != "n2" || got.Epoch != 6 {
		t.Fatalf("the oldest running in-sync mirror: %+v %v", got, out)
	}

	unsynced := Placement{Leader: "n1", Mirrors: []string{"n2", "n3"}, InSync: []string{"n3"}, Epoch: 5, Version: 9}
	c := Cluster{Members: members, Running: up("n2")}
	if got, out := Failover(all, unsynced, c, false); out != Unavailable || !got.Equal(unsynced) {
		t.Fatalf("no in-sync mirror running: %+v %v", got, out)
	}
	if _, out := Failover(policyJSON(t, `{"ha-mode":"all","ha-promote-on-shutdown":"always"}`), unsynced, c, false); out != Unavailable {
		t.Fatalf("consent for shutdown used on failure: %v", out)
	}
	got, out = Failover(policyJSON(t, `{"ha-mode":"all","ha-promote-on-failure":"always"}`), unsynced, c, false)
	if out != PromotedUnsynced || got.Leader != "n2" || got.Epoch != 6 || len(got.InSync) != 0 {
		t.Fatalf("consent on failure: %+v %v", got, out)
	}
	if _, out := Failover(policyJSON(t, `{"ha-mode":"all","ha-promote-on-failure":"always"}`), unsynced, c, true); out != Unavailable {
		t.Fatalf("consent for failure used on shutdown: %v", out)
	}
	if _, out := Failover(policyJSON(t, `{"ha-mode":"all","ha-promote-on-shutdown":"always"}`), unsynced, c, true); out != PromotedUnsynced {
		t.Fatalf("consent on shutdown: %v", out)
	}
}

func TestInSyncSet(t *testing.T) {
	pl := Placement{Leader: "n1", Mirrors: []string{"n2", "n3", "n4"}, InSync: []string{"n4"}, Epoch: 2, Version: 3}
	got, ok := Expand(pl, "n2")
	if !ok || !slices.Equal(got.InSync, []string{"n2", "n4"}) || got.Version != 4 || got.Epoch != 2 {
		t.Fatalf("Expand n2: %+v %v", got, ok)
	}
	if _, ok := Expand(got, "n2"); ok {
		t.Fatal("Expand of an in-sync mirror changed the set")
	}
	if _, ok := Expand(got, "n9"); ok {
		t.Fatal("Expand of a node that is no mirror changed the set")
	}
	got, ok = Shrink(got, "n4")
	if !ok || !slices.Equal(got.InSync, []string{"n2"}) || got.Version != 5 {
		t.Fatalf("Shrink n4: %+v %v", got, ok)
	}
	if _, ok := Shrink(got, "n3"); ok {
		t.Fatal("Shrink of a mirror out of sync changed the set")
	}
	if !slices.Equal(pl.InSync, []string{"n4"}) {
		t.Fatal("Expand or Shrink changed its input")
	}
}

func TestCritical(t *testing.T) {
	members := []string{"n1", "n2", "n3"}
	pl := Placement{Leader: "n1", Mirrors: []string{"n2", "n3"}, InSync: []string{"n2"}}
	for _, tc := range []struct {
		node    string
		running []string
		want    bool
	}{
		{"n1", members, false},             // n2 has a copy in sync
		{"n1", []string{"n1", "n3"}, true}, // n2 is down: n1 holds the only one
		{"n2", []string{"n1", "n2"}, false},
		{"n3", []string{"n3"}, false}, // n3 holds no copy in sync
		{"n2", []string{"n2", "n3"}, true},
	} {
		if got := Critical(pl, tc.node, Cluster{Members: members, Running: up(tc.running...)}); got != tc.want {
			t.Errorf("Critical(%s) with %v running = %v, want %v", tc.node, tc.running, got, tc.want)
		}
	}
}
