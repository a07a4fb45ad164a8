package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
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
// fixed number of copies; and gone when the policy goes. Each queue has
// a message from before its policy: with ha-sync-mode automatic the new
// mirrors copy it and are in sync, with manual (the default) they are
// not while it is there.
func TestHAPoliciesPlaceMirrors(t *testing.T) {
	n1, n2, n3 := joinedCluster(t, "MIRRORCOOKIE")
	conn := n1.dial(t, "guest", "guest")
	ch := channel(t, conn)
	for _, q := range []string{"all.q", "two.q", "nodes.q", "plain.q"} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if acked, _ := confirmAll(t, ch, "", q, "old", 1); acked != 1 {
			t.Fatalf("publish to %s: not confirmed", q)
		}
	}
	n1.ctl(t, "set_policy", "ha-all", `^all\.`, `{"ha-mode":"all"}`)
	n1.ctl(t, "set_policy", "ha-two", `^two\.`, `{"ha-mode":"exactly","ha-params":2,"ha-sync-mode":"automatic"}`)
	n2.ctl(t, "set_policy", "ha-nodes", `^nodes\.`, fmt.Sprintf(`{"ha-mode":"nodes","ha-params":[%q]}`, n3.name))

	if _, err := ch.QueueDeclare("all.mine", false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}

	var rows map[string]mirrorRow
	placed := func() bool {
		rows = n2.mirrors(t)
		two, _ := rows["two.q"].Slaves.([]any)
		return len(two) == 1 && slices.Equal(asList(rows["two.q"].Synced), two) && slices.Equal(asList(rows["all.q"].Slaves), pidsOn("all.q", n2, n3)) &&
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
	// Manual synchronisation leaves the mirrors out of sync while the
	// message from before them is in the queue.
	for _, q := range []string{"all.q", "nodes.q"} {
		if len(asList(rows[q].Synced)) != 0 {
			t.Errorf("%s has mirrors in sync: %+v", q, rows[q])
		}
	}

	// n1 leads the mirrored queues and the mirrors of two of them are
	// not in sync: stopping it would lose their only copy. n2 leads none.
	code, body := apiGet(t, n1, "/api/health/checks/node-is-mirror-sync-critical")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "There are classic mirrored queues without online synchronised mirrors") ||
		!strings.Contains(body, `"name":"all.q"`) || strings.Contains(body, "plain.q") || strings.Contains(body, "all.mine") {
		t.Errorf("node-is-mirror-sync-critical on n1: %d %s", code, body)
	}
	r := n1.ctl(t, "check_if_node_is_mirror_sync_critical")
	if want := fmt.Sprintf("queue 'all.q' in vhost '/' would lose its only synchronised replica (master) if node %s is stopped", n1.name); r.code != 69 || !strings.Contains(r.stderr, want) {
		t.Errorf("check_if_node_is_mirror_sync_critical on n1: exit %d\n%s", r.code, r.stderr)
	}
	if code, body := apiGet(t, n2, "/api/health/checks/node-is-mirror-sync-critical"); code != http.StatusOK || !strings.Contains(body, `"ok"`) {
		t.Errorf("node-is-mirror-sync-critical on n2: %d %s", code, body)
	}
	if r := n2.ctl(t, "check_if_node_is_mirror_sync_critical"); r.code != 0 || !strings.Contains(r.stdout, "reported no classic mirrored queues without online synchronised mirrors") {
		t.Errorf("check_if_node_is_mirror_sync_critical on n2: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// sync_queue copies the backlog to the mirrors out of sync and waits
	// for them, from any node; a queue without mirrors cannot be synced.
	if r := n2.ctl(t, "sync_queue", "all.q"); r.code != 0 || !strings.Contains(r.stdout, "Synchronising queue 'all.q' in vhost '/' ...") {
		t.Errorf("sync_queue all.q: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := n3.mirrors(t)["all.q"]; !slices.Equal(asList(got.Synced), pidsOn("all.q", n2, n3)) {
		t.Errorf("all.q after sync_queue: %+v", got)
	}
	if r := n1.ctl(t, "sync_queue", "plain.q"); r.code == 0 || !strings.Contains(r.stderr, "not_mirrored") {
		t.Errorf("sync_queue of a queue without mirrors: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := n1.ctl(t, "cancel_sync_queue", "nodes.q"); r.code != 0 || !strings.Contains(r.stdout, "Stopping synchronising queue 'nodes.q' in vhost '/' ...") {
		t.Errorf("cancel_sync_queue nodes.q: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// ha-mode exactly replaces a mirror whose node dies; all keeps it
	// for when the node returns.
	twoOn := rows["two.q"].Slaves.([]any)[0]
	dead, live := n3, n2
	if twoOn == pidsOn("two.q", n2)[0] {
		dead, live = n2, n3
	}
	// Two queues led from the node about to die, with mirrors out of
	// sync: one whose policy consents to promoting such a mirror, one
	// whose does not.
	dch := channel(t, dead.dial(t, "guest", "guest"))
	for _, q := range []string{"any.q", "held.q"} {
		if _, err := dch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if acked, _ := confirmAll(t, dch, "", q, "old", 1); acked != 1 {
			t.Fatalf("publish to %s: not confirmed", q)
		}
	}
	n1.ctl(t, "set_policy", "ha-any", `^any\.`, `{"ha-mode":"all","ha-promote-on-failure":"always"}`)
	n1.ctl(t, "set_policy", "ha-held", `^held\.`, `{"ha-mode":"all"}`)
	waitFor(t, func() bool {
		rows = n1.mirrors(t)
		return len(asList(rows["any.q"].Slaves)) == 2 && len(asList(rows["held.q"].Slaves)) == 2
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
	if got, want := rows["held.q"].Pid, fmt.Sprintf("<%s.queue.held.q>", dead.name); got != want {
		t.Errorf("held.q, with no mirror in sync and no consent, moved: pid %s, want %s", got, want)
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

// TestMirroredQueueKeepsConfirmedMessages publishes to a mirrored queue
// through a node other than its leader, with a backlog from before the
// policy and a consumer holding deliveries unacked, then kills the
// leader's node with SIGKILL: a mirror in sync takes over with every
// confirmed message, and those that were delivered come back flagged as
// redelivered.
func TestMirroredQueueKeepsConfirmedMessages(t *testing.T) {
	n1, n2, n3 := joinedCluster(t, "FAILOVERCOOKIE")
	ch1 := channel(t, n1.dial(t, "guest", "guest"))
	if _, err := ch1.QueueDeclare("ha.q", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// A backlog from before the policy: the mirrors copy it in batches.
	if acked, nacked := confirmAll(t, ch1, "", "ha.q", "before", 500); acked != 500 || nacked != 0 {
		t.Fatalf("backlog: %d acked, %d nacked", acked, nacked)
	}
	n1.ctl(t, "set_policy", "ha-all", `^ha\.`, `{"ha-mode":"all","ha-sync-mode":"automatic","ha-sync-batch-size":64}`)
	waitFor(t, func() bool {
		row := n3.mirrors(t)["ha.q"]
		return sameSet(asList(row.Synced), pidsOn("ha.q", n2, n3))
	})

	// The leader's Prometheus series count the mirrors.
	for _, want := range []string{`warren_queue_mirrors{vhost="/",queue="ha.q"} 2`, `warren_queue_mirrors_in_sync{vhost="/",queue="ha.q"} 2`} {
		if got := httpGet(t, "http://"+n1.prom+"/metrics/per-object"); !strings.Contains(got, want) {
			t.Errorf("/metrics/per-object of the leader lacks %s", want)
		}
	}

	// Persistent and transient messages, through n2.
	ch2 := channel(t, n2.dial(t, "guest", "guest"))
	if acked, nacked := confirmAll(t, ch2, "", "ha.q", "after", 2000); acked != 2000 || nacked != 0 {
		t.Fatalf("publishing through n2: %d acked, %d nacked", acked, nacked)
	}
	tch := channel(t, n2.dial(t, "guest", "guest"))
	if err := tch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	tconf := tch.NotifyPublish(make(chan amqp091.Confirmation, 300))
	for i := range 300 {
		if err := tch.Publish("", "ha.q", false, false, amqp091.Publishing{Body: fmt.Appendf(nil, "transient-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 300 {
		select {
		case c := <-tconf:
			if !c.Ack {
				t.Fatalf("transient message %d nacked", c.DeliveryTag)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("transient messages: confirms stopped")
		}
	}
	want := 2800

	// A consumer on n3 holds 100 deliveries without acking them.
	ch3 := channel(t, n3.dial(t, "guest", "guest"))
	if err := ch3.Qos(100, 0, false); err != nil {
		t.Fatal(err)
	}
	held, err := ch3.Consume("ha.q", "holder", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	heldBodies := map[string]bool{}
	for len(heldBodies) < 100 {
		select {
		case d := <-held:
			heldBodies[string(d.Body)] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("the consumer got %d deliveries", len(heldBodies))
		}
	}

	// A publisher on n2 keeps publishing, one message at a time, through
	// the kill: every publish is answered, and what is acked survives.
	pch := channel(t, n2.dial(t, "guest", "guest"))
	if err := pch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	pconf := pch.NotifyPublish(make(chan amqp091.Confirmation, 1))
	var killed atomic.Int64     // Unix nanoseconds
	during := map[string]bool{} // acked
	sentDuring := 0
	firstAck := make(chan time.Duration, 1)
	pubDone := make(chan error, 1)
	stopPub := make(chan struct{})
	go func() {
		afterKill := 0
		for i := 0; ; i++ {
			select {
			case <-stopPub:
				pubDone <- nil
				return
			default:
			}
			body := fmt.Sprintf("during-%d", i)
			sent := time.Now()
			sentDuring = i + 1
			if err := pch.Publish("", "ha.q", false, false, amqp091.Publishing{DeliveryMode: 2, Body: []byte(body)}); err != nil {
				pubDone <- err
				return
			}
			select {
			case c := <-pconf:
				if c.Ack {
					during[body] = true
					if k := killed.Load(); k != 0 && sent.UnixNano() > k {
						if afterKill == 0 {
							firstAck <- time.Since(time.Unix(0, k))
						}
						afterKill++
					}
				} else {
					time.Sleep(10 * time.Millisecond)
				}
			case <-time.After(30 * time.Second):
				pubDone <- fmt.Errorf("publish %s unanswered", body)
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)

	killed.Store(time.Now().UnixNano())
	n1.kill()
	select {
	case d := <-firstAck:
		t.Logf("from SIGKILL of the leader's node to the first confirm of a publish made after it: %v", d)
	case <-time.After(30 * time.Second):
		t.Fatal("no publish confirmed within 30s of the leader's death")
	}
	close(stopPub)
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	var leader *member
	waitFor(t, func() bool {
		pid := n2.mirrors(t)["ha.q"].Pid
		for _, m := range []*member{n2, n3} {
			if pid == fmt.Sprintf("<%s.queue.ha.q>", m.name) {
				leader = m
			}
		}
		return leader != nil
	})

	// The holder followed the queue to its new leader and may have taken
	// deliveries there: closing its channel gives them back.
	if err := ch3.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		r := leader.ctl(t, "-q", "list_queues", "--formatter", "json", "name", "messages_unacknowledged", "consumers")
		return r.code == 0 && strings.Contains(r.stdout, `"messages_unacknowledged":0`) && strings.Contains(r.stdout, `"consumers":0`)
	})

	// Everything confirmed is there, once; what had been delivered comes
	// back redelivered.
	chl := channel(t, leader.dial(t, "guest", "guest"))
	got := map[string]int{}
	redelivered := 0
	for {
		d, ok, err := chl.Get("ha.q", true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got[string(d.Body)]++
		if heldBodies[string(d.Body)] {
			if !d.Redelivered {
				t.Errorf("%s was delivered before the failover but not flagged redelivered", d.Body)
			}
			redelivered++
		}
	}
	lost := 0
	for i := range 500 {
		if got[fmt.Sprintf("before-%d", i)] == 0 {
			lost++
		}
	}
	for i := range 2000 {
		if got[fmt.Sprintf("after-%d", i)] == 0 {
			lost++
		}
	}
	for i := range 300 {
		if got[fmt.Sprintf("transient-%d", i)] == 0 {
			lost++
		}
	}
	for body := range during {
		if got[body] == 0 {
			lost++
		}
	}
	want += len(during)
	dups, unexpected := 0, 0
	for body, n := range got {
		dups += n - 1
		var i int
		if _, err := fmt.Sscanf(body, "during-%d", &i); err == nil && i >= sentDuring {
			unexpected++
		}
	}
	// Publishes nacked while the leader died may be there too: only the
	// acked ones must be.
	if lost != 0 || dups != 0 || unexpected != 0 || len(got) < want || redelivered != 100 {
		t.Fatalf("after the failover: %d messages (%d confirmed), %d lost, %d duplicated, %d unexpected, %d of 100 held ones redelivered",
			len(got), want, lost, dups, unexpected, redelivered)
	}
	// The new leader confirms new messages.
	if acked, nacked := confirmAll(t, chl, "", "ha.q", "later", 100); acked != 100 || nacked != 0 {
		t.Errorf("publishing after the failover: %d acked, %d nacked", acked, nacked)
	}
}

// httpGet returns the body of a GET of url, which must answer 200.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// sameSet reports whether a and b hold the same values, in any order.
func sameSet(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for _, v := range a {
		if !slices.Contains(b, v) {
			return false
		}
	}
	return true
}

// TestDrainHandsOverAndRevives puts the leader's node of a mirrored
// queue into maintenance, as rabbitmq-upgrade drain does: its clients are
// disconnected with 320 and refused, the queue is led from an in-sync
// mirror with every message, and cluster_status says so; revive lets
// clients in again.
func TestDrainHandsOverAndRevives(t *testing.T) {
	n1, n2, n3 := joinedCluster(t, "DRAINCOOKIE")
	n1.ctl(t, "set_policy", "ha-all", `^ha\.`, `{"ha-mode":"all","ha-sync-mode":"automatic"}`)
	conn := n1.dial(t, "guest", "guest")
	closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
	ch := channel(t, conn)
	if _, err := ch.QueueDeclare("ha.drained", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if acked, nacked := confirmAll(t, ch, "", "ha.drained", "m", 100); acked != 100 || nacked != 0 {
		t.Fatalf("publishing: %d acked, %d nacked", acked, nacked)
	}
	waitFor(t, func() bool {
		return sameSet(asList(n2.mirrors(t)["ha.drained"].Synced), pidsOn("ha.drained", n2, n3))
	})

	r := n1.ctl(t, "drain")
	if want := fmt.Sprintf("Will put node %s into maintenance mode. The node will no longer serve any client traffic!", n1.name); r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Fatalf("drain: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp091.ConnectionForced || !strings.Contains(e.Reason, "Node was put into maintenance mode") {
			t.Errorf("the client of the drained node was closed with %v", e)
		}
	case <-time.After(10 * time.Second):
		t.Error("the client of the drained node is still connected")
	}
	if c, err := amqp091.Dial("amqp://guest:guest@" + n1.amqp + "/"); err == nil {
		c.Close()
		t.Error("the drained node accepts AMQP connections")
	}
	rows := n2.mirrors(t)
	pid := rows["ha.drained"].Pid
	var leader *member
	for _, m := range []*member{n2, n3} {
		if pid == fmt.Sprintf("<%s.queue.ha.drained>", m.name) {
			leader = m
		}
	}
	if leader == nil {
		t.Fatalf("ha.drained is still led from %s", pid)
	}
	lch := channel(t, leader.dial(t, "guest", "guest"))
	q, err := lch.QueueDeclarePassive("ha.drained", true, false, false, false, nil)
	if err != nil || q.Messages != 100 {
		t.Errorf("ha.drained after the drain: %d messages, %v", q.Messages, err)
	}
	if out := n2.ctl(t, "cluster_status").stdout; !strings.Contains(out, fmt.Sprintf("Node: %s, status: under maintenance", n1.name)) {
		t.Errorf("cluster_status does not show the drained node:\n%s", out)
	}

	r = n1.ctl(t, "revive")
	if r.code != 0 || !strings.Contains(r.stdout, "back into regular operating mode") {
		t.Fatalf("revive: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	n1.dial(t, "guest", "guest").Close()
	if out := n2.ctl(t, "cluster_status").stdout; !strings.Contains(out, fmt.Sprintf("Node: %s, status: not under maintenance", n1.name)) {
		t.Errorf("cluster_status after revive:\n%s", out)
	}
}

// TestConsumersFollowFailover checks that consumers of a mirrored queue
// carry on against its new leader without consuming again, wherever
// their client is connected: when the leader's node dies, and when a
// policy moves the leadership. A consumer that asked for
// x-cancel-on-ha-failover receives basic.cancel instead.
func TestConsumersFollowFailover(t *testing.T) {
	n1, n2, n3 := joinedCluster(t, "FOLLOWCOOKIE")
	ch1 := channel(t, n1.dial(t, "guest", "guest"))
	for _, q := range []string{"ha.follow", "ha.told"} {
		if _, err := ch1.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	n1.ctl(t, "set_policy", "ha-all", `^ha\.`, `{"ha-mode":"all","ha-sync-mode":"automatic"}`)
	waitFor(t, func() bool {
		rows := n3.mirrors(t)
		return sameSet(asList(rows["ha.follow"].Synced), pidsOn("ha.follow", n2, n3)) &&
			sameSet(asList(rows["ha.told"].Synced), pidsOn("ha.told", n2, n3))
	})

	// The follower is connected to n3; the consumer that wants to be
	// told, to n2.
	fch := channel(t, n3.dial(t, "guest", "guest"))
	if err := fch.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	follow, err := fch.Consume("ha.follow", "follower", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	fcancel := fch.NotifyCancel(make(chan string, 4))
	xch := channel(t, n2.dial(t, "guest", "guest"))
	told, err := xch.Consume("ha.told", "told", false, false, false, false, amqp091.Table{"x-cancel-on-ha-failover": true})
	if err != nil {
		t.Fatal(err)
	}
	xcancel := xch.NotifyCancel(make(chan string, 4))
	go func() {
		for d := range told {
			d.Ack(false)
		}
	}()

	got := map[string]bool{}
	// receive takes deliveries on the follower until it has every body
	// with prefix up to n, acking each.
	receive := func(prefix string, n int) {
		t.Helper()
		missing := func() int {
			m := 0
			for i := range n {
				if !got[fmt.Sprintf("%s-%d", prefix, i)] {
					m++
				}
			}
			return m
		}
		for missing() > 0 {
			select {
			case d, ok := <-follow:
				if !ok {
					t.Fatalf("the follower's deliveries ended (%d of %s missing)", missing(), prefix)
				}
				got[string(d.Body)] = true
				d.Ack(false)
			case tag := <-fcancel:
				t.Fatalf("the follower was cancelled (%s)", tag)
			case <-time.After(30 * time.Second):
				t.Fatalf("%d of %d %s messages never reached the follower", missing(), n, prefix)
			}
		}
	}
	// publish confirms n messages through m, publishing again what is
	// nacked while a leader changes.
	publish := func(m *member, prefix string, n int) {
		t.Helper()
		pch := channel(t, m.dial(t, "guest", "guest"))
		if err := pch.Confirm(false); err != nil {
			t.Fatal(err)
		}
		conf := pch.NotifyPublish(make(chan amqp091.Confirmation, 1))
		for i := 0; i < n; {
			if err := pch.Publish("", "ha.follow", false, false, amqp091.Publishing{DeliveryMode: 2, Body: fmt.Appendf(nil, "%s-%d", prefix, i)}); err != nil {
				t.Fatal(err)
			}
			select {
			case c := <-conf:
				if c.Ack {
					i++
				} else {
					time.Sleep(20 * time.Millisecond)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("publish %s-%d unanswered", prefix, i)
			}
		}
	}
	leaderOf := func(from *member, q string, among ...*member) *member {
		t.Helper()
		var leader *member
		waitFor(t, func() bool {
			pid := from.mirrors(t)[q].Pid
			for _, m := range among {
				if pid == fmt.Sprintf("<%s.queue.%s>", m.name, q) {
					leader = m
				}
			}
			return leader != nil
		})
		return leader
	}

	publish(n2, "before", 100)
	receive("before", 100)

	// The leader's node dies: the follower, on n3, carries on; the other
	// consumer is told.
	n1.kill()
	leader := leaderOf(n3, "ha.follow", n2, n3)
	select {
	case tag := <-xcancel:
		if tag != "told" {
			t.Errorf("basic.cancel for %q, want told", tag)
		}
	case <-time.After(30 * time.Second):
		t.Error("the consumer with x-cancel-on-ha-failover got no basic.cancel")
	}
	publish(n2, "after-kill", 100)
	receive("after-kill", 100)

	// A policy moves the leadership to the other surviving node: the
	// follower goes with it, from a local queue to a remote one or back.
	other := n2
	if leader == n2 {
		other = n3
	}
	n2.ctl(t, "set_policy", "ha-all", `^ha\.`, fmt.Sprintf(`{"ha-mode":"nodes","ha-params":[%q],"ha-sync-mode":"automatic"}`, other.name)).ok(t)
	if l := leaderOf(n3, "ha.follow", other); l != other {
		t.Fatalf("leader %s, want %s", l.name, other.name)
	}
	publish(n2, "after-move", 100)
	receive("after-move", 100)

	// The follower is still one consumer, under its tag.
	r := n3.ctl(t, "-q", "list_consumers", "--formatter", "json", "queue_name", "consumer_tag")
	if r.code != 0 || !strings.Contains(r.stdout, `"follower"`) || strings.Count(r.stdout, `"follower"`) != 1 {
		t.Errorf("list_consumers after the failovers: %d %s %s", r.code, r.stdout, r.stderr)
	}
}
