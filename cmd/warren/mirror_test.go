package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// mirrorRow is a queue's row of list_queues name pid slave_pids
// synchronised_slave_pids, as --formatter json writes it.
type mirrorRow struct {
	Name   string `json:"name"`
	Pid    string `json:"pid"`
	Slaves any    `json:"slave_pids"`
	Synced any    `json:"synchronised_slave_pids"`
}

// mirrors lists the queues' mirror pids as node m sees them.
func (m *member) mirrors(t *testing.T) map[string]mirrorRow {
	t.Helper()
	r := m.ctl(t, "-q", "list_queues", "--formatter", "json", "name", "pid", "slave_pids", "synchronised_slave_pids")
	if r.code != 0 {
		t.Fatalf("list_queues on %s: %d %s", m.name, r.code, r.stderr)
	}
	var rows []mirrorRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("list_queues output: %v\n%s", err, r.stdout)
	}
	out := map[string]mirrorRow{}
	for _, row := range rows {
		out[row.Name] = row
	}
	return out
}

// pidsOn is the pids a mirror list names for queue on nodes.
func pidsOn(queue string, nodes ...*member) []any {
	out := []any{}
	for _, n := range nodes {
		out = append(out, fmt.Sprintf("<%s.mirror.%s>", n.name, queue))
	}
	return out
}

// TestHAPoliciesPlaceMirrors sets the runbooks' ha-mode policies on a
// 3-node cluster and checks where the mirrors go, as RabbitMQ places
// them: on every node, on one other node, on the nodes named; never for
// exclusive queues; away from a node that dies when the policy wants a
// fixed number of copies; and gone when the policy goes.
func TestHAPoliciesPlaceMirrors(t *testing.T) {
	n1, n2, n3 := joinedCluster(t, "MIRRORCOOKIE")
	n1.ctl(t, "set_policy", "ha-all", `^all\.`, `{"ha-mode":"all"}`)
	n1.ctl(t, "set_policy", "ha-two", `^two\.`, `{"ha-mode":"exactly","ha-params":2,"ha-sync-mode":"automatic"}`)
	n2.ctl(t, "set_policy", "ha-nodes", `^nodes\.`, fmt.Sprintf(`{"ha-mode":"nodes","ha-params":[%q]}`, n3.name))

	conn := n1.dial(t, "guest", "guest")
	ch := channel(t, conn)
	for _, q := range []string{"all.q", "two.q", "nodes.q", "plain.q"} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ch.QueueDeclare("all.mine", false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}

	var rows map[string]mirrorRow
	placed := func() bool {
		rows = n2.mirrors(t)
		two, _ := rows["two.q"].Slaves.([]any)
		return len(two) == 1 && slices.Equal(asList(rows["all.q"].Slaves), pidsOn("all.q", n2, n3)) &&
			slices.Equal(asList(rows["nodes.q"].Slaves), pidsOn("nodes.q", n3))
	}
	waitFor(t, placed)
	if rows["plain.q"].Slaves != "" || rows["all.mine"].Slaves != "" {
		t.Errorf("a plain queue and an exclusive one have mirrors: %+v %+v", rows["plain.q"], rows["all.mine"])
	}
	if got := rows["all.q"].Pid; got != fmt.Sprintf("<%s.queue.all.q>", n1.name) {
		t.Errorf("all.q's pid is %s", got)
	}
	// The API names the mirrors' nodes, for mirrored queues only.
	var api struct {
		Node   string   `json:"node"`
		Slaves []string `json:"slave_nodes"`
		Synced []string `json:"synchronised_slave_nodes"`
	}
	getJSON(t, n3, "/api/queues/%2F/all.q", &api)
	if api.Node != n1.name || !slices.Equal(api.Slaves, []string{n2.name, n3.name}) || api.Synced == nil || len(api.Synced) != 0 {
		t.Errorf("GET /api/queues/%%2F/all.q: %+v", api)
	}
	var plain map[string]any
	getJSON(t, n3, "/api/queues/%2F/plain.q", &plain)
	if _, ok := plain["slave_nodes"]; ok {
		t.Errorf("a queue that is not mirrored has slave_nodes: %v", plain["slave_nodes"])
	}
	// Nothing is copied to the mirrors yet, so none is in sync.
	for _, q := range []string{"all.q", "two.q", "nodes.q"} {
		if len(asList(rows[q].Synced)) != 0 {
			t.Errorf("%s has mirrors in sync: %+v", q, rows[q])
		}
	}

	// n1 leads the mirrored queues and none of their mirrors is in sync:
	// stopping it would lose their only copy. n2 leads none.
	code, body := apiGet(t, n1, "/api/health/checks/node-is-mirror-sync-critical")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "There are classic mirrored queues without online synchronised mirrors") ||
		!strings.Contains(body, `"name":"all.q"`) || strings.Contains(body, "plain.q") || strings.Contains(body, "all.mine") {
		t.Errorf("node-is-mirror-sync-critical on n1: %d %s", code, body)
	}
	r := n1.ctl(t, "check_if_node_is_mirror_sync_critical")
	if want := fmt.Sprintf("queue 'two.q' in vhost '/' would lose its only synchronised replica (master) if node %s is stopped", n1.name); r.code != 69 || !strings.Contains(r.stderr, want) {
		t.Errorf("check_if_node_is_mirror_sync_critical on n1: exit %d\n%s", r.code, r.stderr)
	}
	if code, body := apiGet(t, n2, "/api/health/checks/node-is-mirror-sync-critical"); code != http.StatusOK || !strings.Contains(body, `"ok"`) {
		t.Errorf("node-is-mirror-sync-critical on n2: %d %s", code, body)
	}
	if r := n2.ctl(t, "check_if_node_is_mirror_sync_critical"); r.code != 0 || !strings.Contains(r.stdout, "reported no classic mirrored queues without online synchronised mirrors") {
		t.Errorf("check_if_node_is_mirror_sync_critical on n2: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// ha-mode exactly replaces a mirror whose node dies; all keeps it
	// for when the node returns.
	twoOn := rows["two.q"].Slaves.([]any)[0]
	dead, live := n3, n2
	if twoOn == pidsOn("two.q", n2)[0] {
		dead, live = n2, n3
	}
	// Two queues led from the node about to die: one whose policy
	// consents to promoting a mirror out of sync, one whose does not.
	n1.ctl(t, "set_policy", "ha-any", `^any\.`, `{"ha-mode":"all","ha-promote-on-failure":"always"}`)
	dch := channel(t, dead.dial(t, "guest", "guest"))
	for _, q := range []string{"any.q", "all.held"} {
		if _, err := dch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool {
		rows = n1.mirrors(t)
		return len(asList(rows["any.q"].Slaves)) == 2 && len(asList(rows["all.held"].Slaves)) == 2
	})

	dead.kill()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows = n1.mirrors(t)
		if slices.Equal(asList(rows["two.q"].Slaves), pidsOn("two.q", live)) && rows["any.q"].Pid != fmt.Sprintf("<%s.queue.any.q>", dead.name) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("two.q's mirror stayed on %s, which was killed, or any.q's leader did: %+v %+v", dead.name, rows["two.q"], rows["any.q"])
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !slices.Equal(asList(rows["all.q"].Slaves), pidsOn("all.q", n2, n3)) {
		t.Errorf("all.q lost the mirror of a node that is down: %+v", rows["all.q"])
	}
	// The consenting queue is led from a live node and usable there; the
	// other waits for its node.
	if got, want := rows["all.held"].Pid, fmt.Sprintf("<%s.queue.all.held>", dead.name); got != want {
		t.Errorf("all.held, with no mirror in sync and no consent, moved: pid %s, want %s", got, want)
	}
	lch := channel(t, n1.dial(t, "guest", "guest"))
	if _, err := lch.QueueDeclarePassive("any.q", true, false, false, false, nil); err != nil {
		t.Fatalf("any.q after failover: %v", err)
	}
	if acked, nacked := confirmAll(t, lch, "", "any.q", "after", 10); acked != 10 || nacked != 0 {
		t.Errorf("publishing to any.q after failover: %d acked, %d nacked", acked, nacked)
	}

	// Without its policy a queue has no mirrors left.
	n1.ctl(t, "clear_policy", "ha-all")
	waitFor(t, func() bool { return len(asList(n1.mirrors(t)["all.q"].Slaves)) == 0 })
}

// getJSON gets a management API path of m as guest and decodes its
// JSON body into v.
func getJSON(t *testing.T, m *member, path string, v any) {
	t.Helper()
	code, body := apiGet(t, m, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// asList is a JSON list as []any; anything else is an empty list.
func asList(v any) []any {
	l, _ := v.([]any)
	if l == nil {
		return []any{}
	}
	return l
}
