package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// joinedCluster starts three members and joins the second and third to
// the cluster of the first, as the runbooks do, the third through the
// second; all three are disc nodes, so that two of them keep a majority.
func joinedCluster(t *testing.T, cookie string) (n1, n2, n3 *member) {
	t.Helper()
	ms := newMembers(t, 3, cookie)
	for _, m := range ms {
		m.start(t)
		m.dial(t, "guest", "guest")
	}
	ms[1].join(t, ms[0])
	ms[2].join(t, ms[1])
	return ms[0], ms[1], ms[2]
}

func channel(t *testing.T, c *amqp091.Connection) *amqp091.Channel {
	t.Helper()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// visible waits until queue is known to the node c is connected to: a
// definition reaches other nodes as soon as Raft delivers it.
func visible(t *testing.T, c *amqp091.Connection, queue string) {
	t.Helper()
	waitFor(t, func() bool {
		ch, err := c.Channel()
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		_, err = ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		return err == nil
	})
}

// confirmAll publishes n persistent messages named prefix-i to exchange
// with key and returns how many were acked and nacked.
func confirmAll(t *testing.T, ch *amqp091.Channel, exchange, key, prefix string, n int) (acked, nacked int) {
	t.Helper()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, n))
	for i := range n {
		if err := ch.Publish(exchange, key, false, false, amqp091.Publishing{DeliveryMode: 2, Body: fmt.Appendf(nil, "%s-%d", prefix, i)}); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		select {
		case c := <-confirms:
			if c.Ack {
				acked++
			} else {
				nacked++
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("confirms stopped after %d acks and %d nacks", acked, nacked)
		}
	}
	return acked, nacked
}

// TestNormalModeServesEveryQueueFromEveryNode uses a queue that lives on
// one node from clients on the two others: confirmed publishes, a
// consumer under prefetch with acks, gets, rejects to a dead-letter queue
// on a third node, purge and delete; then the queue's node is killed and
// brought back.
func TestNormalModeServesEveryQueueFromEveryNode(t *testing.T) {
	n1, n2, n3 := joinedCluster(t, "NORMALCOOKIE")
	c1, c2, c3 := n1.dial(t, "guest", "guest"), n2.dial(t, "guest", "guest"), n3.dial(t, "guest", "guest")

	// The dead-letter queue lives on n2, the work queue on n1.
	ch2 := channel(t, c2)
	if err := ch2.ExchangeDeclare("dlx", "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch2.QueueDeclare("dead", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch2.QueueBind("dead", "", "dlx", false, nil); err != nil {
		t.Fatal(err)
	}
	ch1 := channel(t, c1)
	if _, err := ch1.QueueDeclare("work", true, false, false, false, amqp091.Table{"x-dead-letter-exchange": "dlx"}); err != nil {
		t.Fatal(err)
	}

	visible(t, c3, "work")
	visible(t, c2, "work")
	visible(t, c1, "dead")

	// A producer on n2 and a consumer on n3, prefetch 100, manual acks.
	const n = 3000
	cons := channel(t, c3)
	if err := cons.Qos(100, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := cons.Consume("work", "c3", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		got      = map[string]int{}
		maxUnack int
	)
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		var window []amqp091.Delivery
		for d := range deliveries {
			mu.Lock()
			got[string(d.Body)]++
			total := len(got)
			mu.Unlock()
			window = append(window, d)
			maxUnack = max(maxUnack, len(window))
			if len(window) == 50 || total == n {
				window[len(window)-1].Ack(true)
				window = window[:0]
			}
			if total == n {
				return
			}
		}
	}()
	acked, nacked := confirmAll(t, channel(t, c2), "", "work", "m", n)
	if acked != n || nacked != 0 {
		t.Fatalf("publishes from n2 to a queue on n1: %d acked, %d nacked", acked, nacked)
	}
	select {
	case <-consumed:
	case <-time.After(60 * time.Second):
		mu.Lock()
		t.Fatalf("consumer on n3 got %d of %d\n%s", len(got), n, n1.ctl(t, "list_queues", "name", "messages_ready", "messages_unacknowledged", "consumers").stdout)
	}
	for k, v := range got {
		if v != 1 || !strings.HasPrefix(k, "m-") {
			t.Fatalf("delivered %q %d times", k, v)
		}
	}
	if maxUnack > 100 {
		t.Errorf("consumer held %d unacked messages with prefetch 100", maxUnack)
	}
	if err := cons.Cancel("c3", false); err != nil {
		t.Fatal(err)
	}

	// basic.get from n2: a requeued message comes back redelivered; a
	// rejected one is dead-lettered to the queue on n2.
	if acked, _ := confirmAll(t, channel(t, c3), "", "work", "g", 2); acked != 2 {
		t.Fatal("publishes from n3 nacked")
	}
	// Every node lists every queue, with the node it lives on.
	for _, m := range []*member{n2, n3} {
		out := m.ctl(t, "list_queues", "name", "messages", "node", "state").ok(t).stdout
		if !strings.Contains(out, "work\t2\t"+n1.name+"\trunning") {
			t.Errorf("list_queues on %s:\n%s", m.name, out)
		}
	}
	g := channel(t, c2)
	d, ok, err := g.Get("work", false)
	if err != nil || !ok || d.Redelivered {
		t.Fatalf("get from n2: %v %v %+v", ok, err, d)
	}
	if d.MessageCount != 1 {
		t.Errorf("get-ok message count %d, want 1", d.MessageCount)
	}
	if err := d.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	d, ok, err = g.Get("work", false)
	if err != nil || !ok || !d.Redelivered || string(d.Body) != "g-0" {
		t.Fatalf("requeued message from n2: %v %v redelivered=%v %q", ok, err, d.Redelivered, d.Body)
	}
	if err := d.Reject(false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		q, err := ch1.QueueDeclarePassive("dead", true, false, false, false, nil)
		return err == nil && q.Messages == 1
	})
	// Passive declare, purge and delete from other nodes.
	q, err := channel(t, c3).QueueDeclarePassive("work", true, false, false, false, nil)
	if err != nil || q.Messages != 1 {
		t.Fatalf("passive declare from n3: %+v %v", q, err)
	}
	if purged, err := channel(t, c3).QueuePurge("work", false); err != nil || purged != 1 {
		t.Fatalf("purge from n3: %d %v", purged, err)
	}

	// A consumer on n3 of a queue on n1 is cancelled when the queue is
	// deleted from n2.
	watch := channel(t, c3)
	cancels := watch.NotifyCancel(make(chan string, 1))
	if _, err := watch.Consume("work", "watcher", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := channel(t, c2).QueueDelete("work", false, false, false); err != nil {
		t.Fatal(err)
	}
	select {
	case tag := <-cancels:
		if tag != "watcher" {
			t.Errorf("cancelled %q", tag)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no basic.cancel on n3 after the queue was deleted on n1")
	}

	// The queue's node dies: its consumers elsewhere are cancelled, and
	// publishes to it are nacked, never acked; when it returns, what was
	// confirmed before is there.
	if _, err := ch1.QueueDeclare("durable", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch1.QueueDeclare("transient", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	visible(t, c2, "durable")
	visible(t, c3, "durable")
	if acked, _ := confirmAll(t, channel(t, c2), "", "durable", "d", 100); acked != 100 {
		t.Fatal("publishes to the durable queue nacked")
	}
	watch = channel(t, c3)
	cancels = watch.NotifyCancel(make(chan string, 1))
	if err := watch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	held, err := watch.Consume("durable", "held", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-held // one message stays unacked on n3 while n1 dies
	n1.kill()
	select {
	case <-cancels:
	case <-time.After(15 * time.Second):
		t.Fatal("no basic.cancel on n3 after the queue's node died")
	}
	if acked, nacked := confirmAll(t, channel(t, c2), "", "durable", "late", 5); acked != 0 || nacked != 5 {
		t.Errorf("publishes to a queue whose node is down: %d acked, %d nacked", acked, nacked)
	}
	_, err = channel(t, c3).QueueDeclarePassive("durable", true, false, false, false, nil)
	var ae *amqp091.Error
	if !errors.As(err, &ae) || ae.Code != 404 || !strings.Contains(ae.Reason, "home node '"+n1.name+"' of durable queue 'durable'") {
		t.Errorf("passive declare while the home node is down: %v", err)
	}
	if out := n2.ctl(t, "list_queues", "name", "state").ok(t).stdout; !strings.Contains(out, "durable\tdown") {
		t.Errorf("list_queues while the queue's node is down:\n%s", out)
	}
	// Its non-durable queue goes: the cluster removes it once the node
	// has missed heartbeats for a few seconds.
	killed := time.Now()
	for {
		_, err := channel(t, c2).QueueDeclarePassive("transient", false, false, false, false, nil)
		if errors.As(err, &ae) && ae.Code == 404 && strings.Contains(ae.Reason, "no queue 'transient'") {
			break
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("the non-durable queue of a killed node is still there: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("non-durable queue of the killed node removed after %v", time.Since(killed).Round(100*time.Millisecond))
	n1.start(t)
	n1.dial(t, "guest", "guest")
	all := map[string]int{}
	var c2b *amqp091.Connection
	waitFor(t, func() bool {
		c, err := amqp091.Dial("amqp://guest:guest@" + n2.amqp + "/")
		if err != nil {
			return false
		}
		ch, err := c.Channel()
		if err == nil {
			_, err = ch.QueueDeclarePassive("durable", true, false, false, false, nil)
		}
		if err != nil {
			c.Close()
			return false
		}
		c2b = c
		return true
	})
	defer c2b.Close()
	if got := drainQueue(t, c2b, "durable", all); got != 100 {
		t.Errorf("after the home node returned, n2 got %d of 100 confirmed messages", got)
	}
	for i := range 100 {
		if all[fmt.Sprintf("d-%d", i)] != 1 {
			t.Errorf("d-%d delivered %d times", i, all[fmt.Sprintf("d-%d", i)])
		}
	}
}

// TestQueueMasterLocator places new queues as x-queue-master-locator and
// the queue-master-locator policy key say: min-masters on the node with
// the fewest queues, and an unknown locator refused.
func TestQueueMasterLocator(t *testing.T) {
	n1, n2, n3 := joinedCluster(t, "LOCATORCOOKIE")
	ch := channel(t, n1.dial(t, "guest", "guest"))
	for _, q := range []string{"a", "b"} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ch.QueueDeclare("placed", true, false, false, false, amqp091.Table{"x-queue-master-locator": "min-masters"}); err != nil {
		t.Fatal(err)
	}
	n1.ctl(t, "set_policy", "spread", "^spread", `{"queue-master-locator":"min-masters"}`, "--apply-to", "queues").ok(t)
	if _, err := ch.QueueDeclare("spread-1", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	out := n1.ctl(t, "list_queues", "name", "node").ok(t).stdout
	home := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Split(line, "\t"); len(f) == 2 {
			home[f[0]] = f[1]
		}
	}
	if home["a"] != n1.name || home["placed"] == n1.name || home["placed"] == "" {
		t.Errorf("min-masters placed the queue on %q:\n%s", home["placed"], out)
	}
	if h := home["spread-1"]; h == n1.name || h == home["placed"] || (h != n2.name && h != n3.name) {
		t.Errorf("the policy's min-masters placed spread-1 on %q:\n%s", h, out)
	}
	_, err := ch.QueueDeclare("bad", true, false, false, false, amqp091.Table{"x-queue-master-locator": "nearest"})
	var ae *amqp091.Error
	if !errors.As(err, &ae) || ae.Code != 406 || !strings.Contains(ae.Reason, "invalid arg 'x-queue-master-locator' for queue 'bad'") {
		t.Errorf("unknown locator: %v", err)
	}
}

// apiGet fetches a management API path from m as guest.
func apiGet(t *testing.T, m *member, path string) (int, string) {
	t.Helper()
	return apiDo(t, m, "GET", path)
}

// apiDo makes a management API request of m as guest.
func apiDo(t *testing.T, m *member, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+m.mgmt+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestClusterWideOperations checks what operators see and what one node's
// trouble does to the others: /api/nodes lists every node, a memory alarm
// on one node blocks publishers on another, and the quorum-critical
// health check fails once stopping the node would lose the majority.
func TestClusterWideOperations(t *testing.T) {
	n1, n2, n3 := joinedCluster(t, "OPSCOOKIE")
	code, body := apiGet(t, n1, "/api/nodes")
	var nodes []struct {
		Name    string `json:"name"`
		Type    string `json:"type"`
		Running bool   `json:"running"`
		FDUsed  int    `json:"fd_used"`
		FDTotal int    `json:"fd_total"`
	}
	if err := json.Unmarshal([]byte(body), &nodes); code != 200 || err != nil || len(nodes) != 3 {
		t.Fatalf("/api/nodes: %d %v\n%s", code, err, body)
	}
	for _, n := range nodes {
		if !n.Running || n.Type != "disc" || n.FDUsed <= 0 || n.FDTotal < n.FDUsed {
			t.Errorf("/api/nodes: %+v", n)
		}
	}
	// The overview counts the queues of every node.
	for i, m := range []*member{n1, n2, n3} {
		if _, err := channel(t, m.dial(t, "guest", "guest")).QueueDeclare(fmt.Sprintf("ov-%d", i), true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool {
		_, body := apiGet(t, n2, "/api/overview")
		var ov struct {
			ObjectTotals struct {
				Queues int `json:"queues"`
			} `json:"object_totals"`
		}
		return json.Unmarshal([]byte(body), &ov) == nil && ov.ObjectTotals.Queues == 3
	})
	if code, body := apiGet(t, n1, "/api/health/checks/node-is-quorum-critical"); code != 200 {
		t.Errorf("quorum-critical with every node up: %d %s", code, body)
	}

	// A memory alarm on n2 blocks a publisher on n1.
	c1 := n1.dial(t, "guest", "guest")
	blocked := c1.NotifyBlocked(make(chan amqp091.Blocking, 4))
	channel(t, c1)
	if out := n3.ctl(t, "list_connections", "node", "user").ok(t).stdout; !strings.Contains(out, n1.name+"\tguest") {
		t.Errorf("list_connections on n3 lacks n1's connection:\n%s", out)
	}
	if out := n3.ctl(t, "list_channels", "pid", "user").ok(t).stdout; !strings.Contains(out, "<"+n1.name+".") {
		t.Errorf("list_channels on n3 lacks n1's channel:\n%s", out)
	}
	seeClientsOfOtherNodes(t, n1, n2, n3, c1)
	n2.ctl(t, "set_vm_memory_high_watermark", "absolute", "1").ok(t)
	if err := channel(t, c1).Publish("", "nowhere", false, false, amqp091.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-blocked:
		if !b.Active || b.Reason != "low on memory" {
			t.Errorf("connection.blocked on n1: %+v", b)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a memory alarm on n2 did not block a publisher on n1")
	}
	n2.ctl(t, "set_vm_memory_high_watermark", "0.4").ok(t)
	select {
	case b := <-blocked:
		if b.Active {
			t.Errorf("still blocked: %+v", b)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("n1's publisher not unblocked after n2's alarm cleared")
	}

	// With n3 gone, stopping n1 would leave one disc node of three.
	n3.kill()
	waitFor(t, func() bool {
		code, _ := apiGet(t, n1, "/api/health/checks/node-is-quorum-critical")
		return code == 503
	})
	_, body = apiGet(t, n1, "/api/nodes/"+url.PathEscape(n3.name))
	if !strings.Contains(body, `"running":false`) {
		t.Errorf("/api/nodes/%s after a kill: %s", n3.name, body)
	}
}

// seeClientsOfOtherNodes checks that the management API of every node
// shows the connections, channels and consumers of all of them, as
// RabbitMQ's does, and closes a connection of another node: c1 is a
// client of n1 with a channel open, and queue ov-0 lives on n1.
func seeClientsOfOtherNodes(t *testing.T, n1, n2, n3 *member, c1 *amqp091.Connection) {
	t.Helper()
	type connection struct {
		Name string `json:"name"`
		Node string `json:"node"`
	}
	c1Name := c1.LocalAddr().String() + " -> "
	var conns []connection
	_, body := apiGet(t, n2, "/api/connections")
	if err := json.Unmarshal([]byte(body), &conns); err != nil {
		t.Fatalf("/api/connections on n2: %v\n%s", err, body)
	}
	found := ""
	for _, c := range conns {
		if strings.HasPrefix(c.Name, c1Name) {
			found = c.Node
		}
	}
	if found != n1.name {
		t.Errorf("/api/connections on n2: n1's client %q on node %q, want %q\n%s", c1Name, found, n1.name, body)
	}
	nodes := map[string]bool{}
	for _, c := range conns {
		nodes[c.Node] = true
	}
	if len(nodes) != 3 {
		t.Errorf("/api/connections on n2 lists clients of %d nodes, want all 3\n%s", len(nodes), body)
	}
	var ov struct {
		ObjectTotals struct {
			Connections int `json:"connections"`
		} `json:"object_totals"`
	}
	_, body = apiGet(t, n3, "/api/overview")
	if err := json.Unmarshal([]byte(body), &ov); err != nil || ov.ObjectTotals.Connections != len(conns) {
		t.Errorf("/api/overview on n3 counts %d connections, /api/connections on n2 lists %d (%v)", ov.ObjectTotals.Connections, len(conns), err)
	}
	var chans []struct {
		Node       string `json:"node"`
		Connection struct {
			Name string `json:"name"`
		} `json:"connection_details"`
	}
	_, body = apiGet(t, n3, "/api/channels")
	if err := json.Unmarshal([]byte(body), &chans); err != nil {
		t.Fatalf("/api/channels on n3: %v\n%s", err, body)
	}
	found = ""
	for _, c := range chans {
		if strings.HasPrefix(c.Connection.Name, c1Name) {
			found = c.Node
		}
	}
	if found != n1.name {
		t.Errorf("/api/channels on n3: n1's channel on node %q\n%s", found, body)
	}

	// A client of n3 consumes from n1's queue: n1 lists the consumer as
	// n3's, and so does every node's API.
	c3 := n3.dial(t, "guest", "guest")
	if _, err := channel(t, c3).Consume("ov-0", "remote-tag", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if out := n1.ctl(t, "list_consumers", "queue_name", "consumer_tag", "channel_pid").ok(t).stdout; !strings.Contains(out, "ov-0\tremote-tag\t<"+n3.name+".") {
		t.Errorf("list_consumers on n1 lacks n3's consumer of ov-0:\n%s", out)
	}
	var consumers []struct {
		Tag     string `json:"consumer_tag"`
		Channel struct {
			Node string `json:"node"`
		} `json:"channel_details"`
	}
	_, body = apiGet(t, n2, "/api/consumers")
	if err := json.Unmarshal([]byte(body), &consumers); err != nil {
		t.Fatalf("/api/consumers on n2: %v\n%s", err, body)
	}
	if len(consumers) != 1 || consumers[0].Tag != "remote-tag" || consumers[0].Channel.Node != n3.name {
		t.Errorf("/api/consumers on n2: want remote-tag of %s\n%s", n3.name, body)
	}
	var q struct {
		Consumers []struct {
			Tag string `json:"consumer_tag"`
		} `json:"consumer_details"`
	}
	_, body = apiGet(t, n2, "/api/queues/%2F/ov-0")
	if err := json.Unmarshal([]byte(body), &q); err != nil || len(q.Consumers) != 1 || q.Consumers[0].Tag != "remote-tag" {
		t.Errorf("/api/queues/%%2F/ov-0 on n2: want consumer remote-tag (%v)\n%s", err, body)
	}

	// A connection of n1 closed through n2's API, and one of n3 through
	// warrenctl on n1.
	for _, tc := range []struct {
		client *amqp091.Connection
		close  func(name string)
	}{
		{n1.dial(t, "guest", "guest"), func(name string) {
			if code, body := apiDo(t, n2, "DELETE", "/api/connections/"+url.PathEscape(name)); code != 204 {
				t.Errorf("DELETE /api/connections on n2 of a connection of n1: %d %s", code, body)
			}
		}},
		{c3, func(name string) { n1.ctl(t, "close_connection", name, "bye").ok(t) }},
	} {
		closed := tc.client.NotifyClose(make(chan *amqp091.Error, 1))
		name := tc.client.LocalAddr().String() + " -> " + tc.client.RemoteAddr().String()
		tc.close(name)
		select {
		case err := <-closed:
			if err == nil || err.Code != 320 {
				t.Errorf("connection %s closed with %v, want 320 CONNECTION_FORCED", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("connection %s not closed", name)
		}
	}
}

// TestDeclaredQueueIsUsableAtOnceFromEveryNode declares queues through one
// node and at once publishes to each through another, mandatory and
// confirmed: as with RabbitMQ, whose declare-ok comes once every running
// node has the queue, none may come back unroutable.
func TestDeclaredQueueIsUsableAtOnceFromEveryNode(t *testing.T) {
	n1, n2, n3 := joinedCluster(t, "SPREADCOOKIE")
	for _, pair := range [][2]*member{{n1, n2}, {n2, n3}, {n3, n1}} {
		decl := channel(t, pair[0].dial(t, "guest", "guest"))
		pub := channel(t, pair[1].dial(t, "guest", "guest"))
		if err := pub.Confirm(false); err != nil {
			t.Fatal(err)
		}
		returns := pub.NotifyReturn(make(chan amqp091.Return, 1000))
		const n = 100
		for i := range n {
			q := fmt.Sprintf("spread-%s-%d", pair[0].name, i)
			if _, err := decl.QueueDeclare(q, false, false, false, false, nil); err != nil {
				t.Fatal(err)
			}
			dc, err := pub.PublishWithDeferredConfirm("", q, true, false, amqp091.Publishing{Body: []byte("x")})
			if err != nil {
				t.Fatal(err)
			}
			if !dc.Wait() {
				t.Fatalf("publish to %s nacked", q)
			}
		}
		if len(returns) > 0 {
			r := <-returns
			t.Errorf("declared through %s, published through %s: %d of %d returned unroutable, first %s", pair[0].name, pair[1].name, len(returns)+1, n, r.RoutingKey)
		}
	}

	// A frozen node holds up a declare once, not every declare; once it
	// runs again, declares wait for it again.
	n3.signal(syscall.SIGSTOP)
	decl := channel(t, n1.dial(t, "guest", "guest"))
	start := time.Now()
	for i := range 20 {
		if _, err := decl.QueueDeclare(fmt.Sprintf("frozen-%d", i), false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("20 declares with a node frozen took %v: each waited for it", d)
	}
	if !strings.Contains(n1.stderr.String(), "definition changes no longer wait for a node that did not answer") {
		t.Errorf("n1 did not log that it stopped waiting for %s", n3.name)
	}
	n3.signal(syscall.SIGCONT)
	waitFor(t, func() bool {
		return strings.Contains(n1.stderr.String(), "definition changes wait for a node again")
	})
	pub := channel(t, n3.dial(t, "guest", "guest"))
	returns := pub.NotifyReturn(make(chan amqp091.Return, 100))
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		q := fmt.Sprintf("thawed-%d", i)
		if _, err := decl.QueueDeclare(q, false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		dc, err := pub.PublishWithDeferredConfirm("", q, true, false, amqp091.Publishing{Body: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		dc.Wait()
	}
	if len(returns) > 0 {
		t.Errorf("after %s ran again: %d of 50 publishes through it returned unroutable", n3.name, len(returns))
	}
}
