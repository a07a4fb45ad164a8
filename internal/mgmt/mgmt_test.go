package mgmt_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/mgmt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// node is a broker with its management API, both on loopback.
type node struct {
	srv  *broker.Server
	amqp string // AMQP URL for guest
	api  string // base URL of the HTTP API
	http *http.Client
}

func startNode(t testing.TB) *node {
	t.Helper()
	return startNodeSampling(t, 100*time.Millisecond)
}

// startNodeSampling starts a node whose API samples rates at interval.
func startNodeSampling(t testing.TB, interval time.Duration) *node {
	t.Helper()
	srv, err := broker.New(context.Background(), broker.Config{NodeName: "warren@test"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	api := mgmt.New(mgmt.Config{Broker: srv, Version: broker.Version, SampleInterval: interval,
		Listeners: []mgmt.Listener{{Protocol: "amqp", Addr: l.Addr().String()}}})
	ctx, cancel := context.WithCancel(context.Background())
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		api.Run(ctx)
	}()
	hs := httptest.NewServer(api)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	t.Cleanup(func() {
		hs.Close()
		cancel()
		<-sampled
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &node{srv: srv, amqp: "amqp://guest:guest@" + l.Addr().String() + "/", api: hs.URL, http: client}
}

// client opens an AMQP connection and a channel to the node as guest,
// closed when the test ends.
func (n *node) client(t *testing.T) (*amqp091.Connection, *amqp091.Channel) {
	t.Helper()
	c, err := amqp091.Dial(n.amqp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return c, ch
}

// call makes a request as user:pass and returns the status and body.
func (n *node) call(t *testing.T, method, path, user, pass string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, n.api+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// do is call as guest, failing the test unless the status is want.
func (n *node) do(t *testing.T, method, path string, body any, want int) []byte {
	t.Helper()
	code, out := n.call(t, method, path, "guest", "guest", body)
	if code != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, code, want, out)
	}
	return out
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

type object = map[string]any

func errorBody(t *testing.T, b []byte) (string, string) {
	t.Helper()
	e := decode[map[string]string](t, b)
	return e["error"], e["reason"]
}

func TestAuthentication(t *testing.T) {
	n := startNode(t)
	if code, _ := n.call(t, "GET", "/api/overview", "", "", nil); code != http.StatusUnauthorized {
		t.Errorf("no credentials: status %d, want 401", code)
	}
	code, body := n.call(t, "GET", "/api/overview", "guest", "wrong", nil)
	if kind, reason := errorBody(t, body); code != http.StatusUnauthorized || kind != "not_authorized" && kind != "not_authorised" || reason != "Login failed" {
		t.Errorf("wrong password: %d %s", code, body)
	}
	// A user without a management tag may use AMQP but not the API.
	n.do(t, "PUT", "/api/users/plain", object{"password": "p", "tags": ""}, http.StatusCreated)
	code, body = n.call(t, "GET", "/api/overview", "plain", "p", nil)
	if _, reason := errorBody(t, body); code != http.StatusUnauthorized || reason != "Not management user" {
		t.Errorf("untagged user: %d %s", code, body)
	}
	who := decode[object](t, n.do(t, "GET", "/api/whoami", nil, http.StatusOK))
	if who["name"] != "guest" || fmt.Sprint(who["tags"]) != "[administrator]" {
		t.Errorf("whoami = %v", who)
	}
}

func TestQueueLifecycle(t *testing.T) {
	n := startNode(t)
	n.do(t, "PUT", "/api/queues/%2F/orders", object{"durable": true, "arguments": object{"x-max-length": 10}}, http.StatusCreated)
	n.do(t, "PUT", "/api/queues/%2F/orders", object{"durable": true, "arguments": object{"x-max-length": 10}}, http.StatusNoContent)
	// rabbitmqadmin sends booleans as strings.
	n.do(t, "PUT", "/api/queues/%2F/orders", `{"durable":"true","auto_delete":"false","arguments":{"x-max-length":10}}`, http.StatusNoContent)

	_, body := n.call(t, "PUT", "/api/queues/%2F/orders", "guest", "guest", object{"durable": false})
	if kind, reason := errorBody(t, body); kind != "bad_request" || reason != "inequivalent arg 'durable' for queue 'orders' in vhost '/': received 'false' but current is 'true'" {
		t.Errorf("inequivalent redeclare: %s", body)
	}
	if _, body := n.call(t, "PUT", "/api/queues/%2F/x", "guest", "guest", "{bad"); !strings.Contains(string(body), "not_json") {
		t.Errorf("malformed body: %s", body)
	}

	_, ch := n.client(t)
	for i := range 3 {
		if err := ch.PublishWithContext(context.Background(), "", "orders", false, false, amqp091.Publishing{Body: []byte(fmt.Sprintf("m%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool {
		q := decode[object](t, n.do(t, "GET", "/api/queues/%2F/orders", nil, http.StatusOK))
		return q["messages"] == float64(3)
	})
	q := decode[object](t, n.do(t, "GET", "/api/queues/%2F/orders", nil, http.StatusOK))
	for k, want := range (object{"name": "orders", "vhost": "/", "durable": true, "messages_ready": float64(3), "messages_unacknowledged": float64(0), "node": "warren@test", "consumers": float64(0)}) {
		if q[k] != want {
			t.Errorf("queue %s = %v, want %v", k, q[k], want)
		}
	}
	if args, _ := q["arguments"].(object); args["x-max-length"] != float64(10) {
		t.Errorf("arguments = %v", q["arguments"])
	}

	// Get with requeue leaves the messages, flagged redelivered.
	msgs := decode[[]object](t, n.do(t, "POST", "/api/queues/%2F/orders/get", object{"count": 2, "ackmode": "ack_requeue_true", "encoding": "auto"}, http.StatusOK))
	if len(msgs) != 2 || msgs[0]["payload"] != "m0" || msgs[1]["payload"] != "m1" || msgs[0]["payload_encoding"] != "string" {
		t.Fatalf("get = %v", msgs)
	}
	msgs = decode[[]object](t, n.do(t, "POST", "/api/queues/%2F/orders/get", object{"count": "5", "ackmode": "ack_requeue_false", "encoding": "base64"}, http.StatusOK))
	if len(msgs) != 3 || msgs[0]["redelivered"] != true || msgs[0]["payload"] != "bTA=" || msgs[2]["redelivered"] != false {
		t.Fatalf("get after requeue = %v", msgs)
	}
	if q := decode[object](t, n.do(t, "GET", "/api/queues/%2F/orders", nil, http.StatusOK)); q["messages"] != float64(0) {
		t.Errorf("after ack_requeue_false, messages = %v", q["messages"])
	}

	for range 2 {
		ch.PublishWithContext(context.Background(), "", "orders", false, false, amqp091.Publishing{Body: []byte("x")})
	}
	waitFor(t, func() bool {
		return decode[object](t, n.do(t, "GET", "/api/queues/%2F/orders", nil, http.StatusOK))["messages"] == float64(2)
	})
	n.do(t, "DELETE", "/api/queues/%2F/orders/contents", nil, http.StatusNoContent)
	if q := decode[object](t, n.do(t, "GET", "/api/queues/%2F/orders", nil, http.StatusOK)); q["messages"] != float64(0) {
		t.Errorf("after purge, messages = %v", q["messages"])
	}

	// if-unused refuses while a consumer is attached.
	if _, err := ch.Consume("orders", "c1", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	code, body := n.call(t, "DELETE", "/api/queues/%2F/orders?if-unused=true", "guest", "guest", nil)
	if _, reason := errorBody(t, body); code != http.StatusBadRequest || reason != "queue 'orders' in vhost '/' in use" {
		t.Errorf("delete if-unused: %d %s", code, body)
	}
	cons := decode[[]object](t, n.do(t, "GET", "/api/consumers/%2F", nil, http.StatusOK))
	if len(cons) != 1 || cons[0]["consumer_tag"] != "c1" || cons[0]["ack_required"] != true {
		t.Errorf("consumers = %v", cons)
	}
	n.do(t, "DELETE", "/api/queues/%2F/orders", nil, http.StatusNoContent)
	n.do(t, "GET", "/api/queues/%2F/orders", nil, http.StatusNotFound)
	n.do(t, "DELETE", "/api/queues/%2F/orders", nil, http.StatusNotFound)
	n.do(t, "GET", "/api/queues/nosuchvhost", nil, http.StatusNotFound)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestExchangesBindingsPublish(t *testing.T) {
	n := startNode(t)
	n.do(t, "PUT", "/api/exchanges/%2F/events", object{"type": "topic"}, http.StatusCreated)
	x := decode[object](t, n.do(t, "GET", "/api/exchanges/%2F/events", nil, http.StatusOK))
	if x["type"] != "topic" || x["durable"] != true {
		t.Errorf("exchange = %v", x)
	}
	_, body := n.call(t, "PUT", "/api/exchanges/%2F/amq.custom", "guest", "guest", object{"type": "direct"})
	if _, reason := errorBody(t, body); reason != "exchange name 'amq.custom' contains reserved prefix 'amq.*'" {
		t.Errorf("reserved name: %s", body)
	}
	n.do(t, "PUT", "/api/queues/%2F/eu", object{}, http.StatusCreated)

	pub := object{"routing_key": "order.eu.created", "payload": "hello", "payload_encoding": "string", "properties": object{"delivery_mode": 2, "headers": object{"n": 1}}}
	if r := decode[object](t, n.do(t, "POST", "/api/exchanges/%2F/events/publish", pub, http.StatusOK)); r["routed"] != false {
		t.Errorf("publish before binding: routed = %v", r["routed"])
	}
	n.do(t, "POST", "/api/bindings/%2F/e/events/q/eu", object{"routing_key": "order.eu.*"}, http.StatusCreated)
	if r := decode[object](t, n.do(t, "POST", "/api/exchanges/%2F/events/publish", pub, http.StatusOK)); r["routed"] != true {
		t.Errorf("publish after binding: routed = %v", r["routed"])
	}
	msgs := decode[[]object](t, n.do(t, "POST", "/api/queues/%2F/eu/get", object{"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"}, http.StatusOK))
	if len(msgs) != 1 || msgs[0]["payload"] != "hello" || msgs[0]["routing_key"] != "order.eu.created" {
		t.Fatalf("get = %v", msgs)
	}
	props, _ := msgs[0]["properties"].(object)
	if props["delivery_mode"] != float64(2) || fmt.Sprint(props["headers"]) != "map[n:1]" {
		t.Errorf("properties = %v", props)
	}

	bs := decode[[]object](t, n.do(t, "GET", "/api/bindings/%2F/e/events/q/eu", nil, http.StatusOK))
	if len(bs) != 1 || bs[0]["properties_key"] != "order.eu.%2A" {
		t.Fatalf("bindings = %v", bs)
	}
	key := bs[0]["properties_key"].(string)
	n.do(t, "GET", "/api/bindings/%2F/e/events/q/eu/"+url.PathEscape(key), nil, http.StatusOK)
	all := decode[[]object](t, n.do(t, "GET", "/api/queues/%2F/eu/bindings", nil, http.StatusOK))
	if len(all) != 2 || all[0]["source"] != "" {
		t.Errorf("queue bindings (default binding first) = %v", all)
	}
	n.do(t, "DELETE", "/api/bindings/%2F/e/events/q/eu/"+url.PathEscape(key), nil, http.StatusNoContent)
	if bs := decode[[]object](t, n.do(t, "GET", "/api/exchanges/%2F/events/bindings/source", nil, http.StatusOK)); len(bs) != 0 {
		t.Errorf("after unbind: %v", bs)
	}

	// Exchange-to-exchange with arguments: the key carries a hash.
	n.do(t, "PUT", "/api/exchanges/%2F/audit", object{"type": "headers", "durable": false}, http.StatusCreated)
	n.do(t, "POST", "/api/bindings/%2F/e/events/e/audit", object{"routing_key": "", "arguments": object{"x-match": "any"}}, http.StatusCreated)
	bs = decode[[]object](t, n.do(t, "GET", "/api/exchanges/%2F/audit/bindings/destination", nil, http.StatusOK))
	if len(bs) != 1 || !strings.HasPrefix(bs[0]["properties_key"].(string), "~") || bs[0]["destination_type"] != "exchange" {
		t.Fatalf("e2e bindings = %v", bs)
	}
	n.do(t, "DELETE", "/api/exchanges/%2F/audit", nil, http.StatusNoContent)
	n.do(t, "GET", "/api/exchanges/%2F/audit", nil, http.StatusNotFound)
	n.do(t, "GET", "/api/exchanges/%2F/amq.default", nil, http.StatusOK)
}

func TestConnectionsAndClose(t *testing.T) {
	n := startNode(t)
	c, err := amqp091.DialConfig(n.amqp, amqp091.Config{Properties: amqp091.Table{"connection_name": "billing"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(7, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	closed := c.NotifyClose(make(chan *amqp091.Error, 1))

	conns := decode[[]object](t, n.do(t, "GET", "/api/connections/", nil, http.StatusOK))
	if len(conns) != 1 {
		t.Fatalf("connections = %v", conns)
	}
	conn := conns[0]
	props, _ := conn["client_properties"].(object)
	if props["connection_name"] != "billing" || conn["user"] != "guest" || conn["vhost"] != "/" || conn["protocol"] != "AMQP 0-9-1" || conn["channels"] != float64(1) {
		t.Errorf("connection = %v", conn)
	}
	name := conn["name"].(string)
	chans := decode[[]object](t, n.do(t, "GET", "/api/connections/"+url.PathEscape(name)+"/channels", nil, http.StatusOK))
	if len(chans) != 1 || chans[0]["prefetch_count"] != float64(7) || chans[0]["confirm"] != true || chans[0]["name"] != name+" (1)" {
		t.Errorf("channels = %v", chans)
	}
	page := decode[object](t, n.do(t, "GET", "/api/channels?page=1&page_size=10&columns=name,number", nil, http.StatusOK))
	if page["total_count"] != float64(1) || page["page_count"] != float64(1) {
		t.Errorf("channel page = %v", page)
	}

	req, _ := http.NewRequest("DELETE", n.api+"/api/connections/"+url.PathEscape(name), nil)
	req.SetBasicAuth("guest", "guest")
	req.Header.Set("X-Reason", "maintenance")
	resp, err := n.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("close connection: status %d", resp.StatusCode)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp091.ConnectionForced || e.Reason != "CONNECTION_FORCED - maintenance" {
			t.Errorf("client saw close %v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed")
	}
	n.do(t, "DELETE", "/api/connections/"+url.PathEscape(name), nil, http.StatusNotFound)
}

func TestUsersVHostsPermissions(t *testing.T) {
	n := startNode(t)
	n.do(t, "PUT", "/api/vhosts/staging", object{"description": "pre-production"}, http.StatusCreated)
	n.do(t, "PUT", "/api/users/app", object{"password": "s3cret", "tags": "management"}, http.StatusCreated)
	n.do(t, "PUT", "/api/users/app", object{"password": "s3cret", "tags": []string{"management"}}, http.StatusNoContent)
	n.do(t, "PUT", "/api/permissions/staging/app", object{"configure": "^app\\.", "write": ".*", "read": ".*"}, http.StatusCreated)
	_, body := n.call(t, "PUT", "/api/permissions/staging/app", "guest", "guest", object{"configure": "(", "write": ".*", "read": ".*"})
	if kind, _ := errorBody(t, body); kind != "bad_request" {
		t.Errorf("bad regexp: %s", body)
	}

	// A management user sees its own vhosts only and may not manage users.
	vhosts := decode[[]object](t, mustCall(t, n, "GET", "/api/vhosts", "app", "s3cret", nil, http.StatusOK))
	if len(vhosts) != 1 || vhosts[0]["name"] != "staging" || vhosts[0]["description"] != "pre-production" {
		t.Errorf("app's vhosts = %v", vhosts)
	}
	mustCall(t, n, "GET", "/api/users", "app", "s3cret", nil, http.StatusUnauthorized)
	mustCall(t, n, "GET", "/api/queues/%2F", "app", "s3cret", nil, http.StatusUnauthorized)
	// Permissions apply to what it does: configure only ^app\. names.
	mustCall(t, n, "PUT", "/api/queues/staging/app.jobs", "app", "s3cret", object{}, http.StatusCreated)
	code, body := n.call(t, "PUT", "/api/queues/staging/other", "app", "s3cret", object{})
	if _, reason := errorBody(t, body); code != http.StatusUnauthorized || !strings.Contains(reason, "access to queue 'other' in vhost 'staging' refused for user 'app'") {
		t.Errorf("declare without permission: %d %s", code, body)
	}

	perms := decode[[]object](t, n.do(t, "GET", "/api/users/app/permissions", nil, http.StatusOK))
	if len(perms) != 1 || perms[0]["configure"] != "^app\\." {
		t.Errorf("permissions = %v", perms)
	}
	n.do(t, "DELETE", "/api/permissions/staging/app", nil, http.StatusNoContent)
	n.do(t, "DELETE", "/api/users/app", nil, http.StatusNoContent)
	n.do(t, "GET", "/api/users/app", nil, http.StatusNotFound)
	n.do(t, "DELETE", "/api/vhosts/staging", nil, http.StatusNoContent)
	n.do(t, "GET", "/api/vhosts/staging", nil, http.StatusNotFound)
}

func mustCall(t *testing.T, n *node, method, path, user, pass string, body any, want int) []byte {
	t.Helper()
	code, out := n.call(t, method, path, user, pass, body)
	if code != want {
		t.Fatalf("%s %s as %s: status %d, want %d; %s", method, path, user, code, want, out)
	}
	return out
}

func TestListParameters(t *testing.T) {
	n := startNode(t)
	for _, q := range []string{"b", "a", "c", "ab"} {
		n.do(t, "PUT", "/api/queues/%2F/"+q, object{}, http.StatusCreated)
	}
	names := func(items []object) string {
		var s []string
		for _, it := range items {
			s = append(s, it["name"].(string))
		}
		return strings.Join(s, ",")
	}
	if got := names(decode[[]object](t, n.do(t, "GET", "/api/queues?sort=name&sort_reverse=true", nil, http.StatusOK))); got != "c,b,ab,a" {
		t.Errorf("sorted = %s", got)
	}
	page := decode[object](t, n.do(t, "GET", "/api/queues?page=2&page_size=3&columns=name", nil, http.StatusOK))
	items, _ := page["items"].([]any)
	if page["filtered_count"] != float64(4) || page["page_count"] != float64(2) || len(items) != 1 {
		t.Errorf("page = %v", page)
	}
	if it := items[0].(object); len(it) != 1 || it["name"] != "c" {
		t.Errorf("columns: %v", it)
	}
	if got := names(decode[[]object](t, n.do(t, "GET", "/api/queues?name=a", nil, http.StatusOK))); got != "a,ab" {
		t.Errorf("name filter = %s", got)
	}
	if got := names(decode[[]object](t, n.do(t, "GET", "/api/queues?name=^a$&use_regex=true", nil, http.StatusOK))); got != "a" {
		t.Errorf("regex filter = %s", got)
	}
	n.do(t, "GET", "/api/queues?page=1&page_size=501", nil, http.StatusBadRequest)
}

func TestHealthChecks(t *testing.T) {
	n := startNode(t)
	for _, p := range []string{"/api/health/checks/alarms", "/api/health/checks/local-alarms", "/api/health/checks/virtual-hosts",
		"/api/health/checks/protocol-listener/amqp", "/api/health/checks/node-is-mirror-sync-critical",
		"/api/health/checks/node-is-quorum-critical", "/api/aliveness-test/%2F"} {
		if b := decode[object](t, n.do(t, "GET", p, nil, http.StatusOK)); b["status"] != "ok" {
			t.Errorf("%s = %v", p, b)
		}
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(strings.TrimSuffix(n.amqp, "/"), "amqp://guest:guest@"))
	n.do(t, "GET", "/api/health/checks/port-listener/"+port, nil, http.StatusOK)
	b := decode[object](t, n.do(t, "GET", "/api/health/checks/port-listener/1", nil, http.StatusServiceUnavailable))
	if b["status"] != "failed" {
		t.Errorf("missing port = %v", b)
	}
	n.do(t, "GET", "/api/health/checks/protocol-listener/mqtt", nil, http.StatusServiceUnavailable)
}

func TestDefinitionsFromRabbitMQ(t *testing.T) {
	// Exported by RabbitMQ 3.10.8's management API (GET /api/definitions).
	raw, err := os.ReadFile("testdata/rabbitmq-3.10-definitions.json")
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t)
	n.do(t, "POST", "/api/definitions", string(raw), http.StatusNoContent)

	q := decode[object](t, n.do(t, "GET", "/api/queues/staging/orders.created", nil, http.StatusOK))
	args, _ := q["arguments"].(object)
	if q["durable"] != true || args["x-max-length"] != float64(10000) || args["x-overflow"] != "reject-publish" {
		t.Errorf("imported queue = %v", q)
	}
	bs := decode[[]object](t, n.do(t, "GET", "/api/bindings/staging/e/orders/e/orders.internal", nil, http.StatusOK))
	if len(bs) != 1 || fmt.Sprint(bs[0]["arguments"]) != "map[region:eu x-match:any]" {
		t.Errorf("imported e2e binding = %v", bs)
	}
	// Users keep their RabbitMQ password hashes: the old password works.
	c, err := amqp091.Dial(strings.Replace(n.amqp, "guest:guest@", "app:s3cret@", 1) + "staging")
	if err != nil {
		t.Fatalf("log in as imported user: %v", err)
	}
	c.Close()

	// What warren exports imports into a fresh node unchanged.
	exported := n.do(t, "GET", "/api/definitions", nil, http.StatusOK)
	m := startNode(t)
	m.do(t, "POST", "/api/definitions", string(exported), http.StatusNoContent)
	again := m.do(t, "GET", "/api/definitions", nil, http.StatusOK)
	if !bytes.Equal(normalize(t, exported), normalize(t, again)) {
		t.Errorf("round trip changed the definitions:\n%s\n%s", exported, again)
	}

	// Per-vhost export has no vhost fields and imports into another vhost.
	vh := decode[object](t, n.do(t, "GET", "/api/definitions/staging", nil, http.StatusOK))
	if _, ok := vh["users"]; ok {
		t.Errorf("per-vhost export has users")
	}
	m.do(t, "PUT", "/api/vhosts/copy", object{}, http.StatusCreated)
	m.do(t, "POST", "/api/definitions/copy", vh, http.StatusNoContent)
	m.do(t, "GET", "/api/queues/copy/orders.dead", nil, http.StatusOK)

	// Policies import, checked as when set.
	n.do(t, "POST", "/api/definitions", `{"policies":[{"vhost":"/","name":"ha","pattern":".*","apply-to":"queues","definition":{"ha-mode":"all"},"priority":1}]}`, http.StatusNoContent)
	if p := decode[object](t, n.do(t, "GET", "/api/policies/%2F/ha", nil, http.StatusOK)); p["apply-to"] != "queues" || p["priority"] != float64(1) {
		t.Errorf("imported policy = %v", p)
	}
	code, body := n.call(t, "POST", "/api/definitions", "guest", "guest", `{"policies":[{"vhost":"/","name":"bad","pattern":".*","definition":{"ha-mode":"sometimes"}}]}`)
	if _, reason := errorBody(t, body); code != http.StatusBadRequest || !strings.Contains(reason, "is not a valid ha-mode value") {
		t.Errorf("bad policy import: %d %s", code, body)
	}
	// Sections the node does not have are refused, not dropped.
	code, body = n.call(t, "POST", "/api/definitions", "guest", "guest", `{"parameters":[{"component":"federation-upstream","vhost":"/","name":"up","value":{"uri":"amqp://x"}}]}`)
	if _, reason := errorBody(t, body); code != http.StatusBadRequest || !strings.Contains(reason, "parameters") {
		t.Errorf("federation parameters import: %d %s", code, body)
	}
}

// normalize drops the fields that name the exporting node.
func normalize(t *testing.T, b []byte) []byte {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	// Each node keeps its own cluster id.
	var globals []any
	for _, g := range v["global_parameters"].([]any) {
		if g.(map[string]any)["name"] != "internal_cluster_id" {
			globals = append(globals, g)
		}
	}
	v["global_parameters"] = globals
	out, _ := json.Marshal(v)
	return out
}

func TestRatesAndOverview(t *testing.T) {
	n := startNode(t)
	_, ch := n.client(t)
	if _, err := ch.QueueDeclare("rates", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	stop := time.Now().Add(time.Second)
	sent := 0
	for time.Now().Before(stop) {
		if err := ch.PublishWithContext(context.Background(), "", "rates", false, false, amqp091.Publishing{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		sent++
		time.Sleep(time.Millisecond)
	}
	waitFor(t, func() bool {
		o := decode[object](t, n.do(t, "GET", "/api/overview", nil, http.StatusOK))
		ms, _ := o["message_stats"].(object)
		return ms["publish"] == float64(sent)
	})
	o := decode[object](t, n.do(t, "GET", "/api/overview", nil, http.StatusOK))
	totals, _ := o["object_totals"].(object)
	if totals["queues"] != float64(1) || totals["connections"] != float64(1) || totals["channels"] != float64(1) {
		t.Errorf("object_totals = %v", totals)
	}
	qt, _ := o["queue_totals"].(object)
	if qt["messages"] != float64(sent) {
		t.Errorf("queue_totals = %v (sent %d)", qt, sent)
	}
	q := decode[object](t, n.do(t, "GET", "/api/queues/%2F/rates", nil, http.StatusOK))
	ms, _ := q["message_stats"].(object)
	if ms["publish"] != float64(sent) {
		t.Errorf("queue message_stats = %v", ms)
	}
	if d, _ := ms["publish_details"].(object); d == nil {
		t.Errorf("no publish_details in %v", ms)
	}
}

func TestUnknownPathsAndMethods(t *testing.T) {
	n := startNode(t)
	_, body := n.call(t, "GET", "/api/nope", "guest", "guest", nil)
	if kind, _ := errorBody(t, body); kind != "Object Not Found" {
		t.Errorf("unknown path: %s", body)
	}
	code, _ := n.call(t, "PATCH", "/api/queues/%2F/x", "guest", "guest", nil)
	if code != http.StatusMethodNotAllowed {
		t.Errorf("PATCH: status %d", code)
	}
}

func TestPolicies(t *testing.T) {
	n := startNode(t)
	n.do(t, "PUT", "/api/queues/%2F/ha.jobs", object{"durable": true}, http.StatusCreated)
	n.do(t, "PUT", "/api/policies/%2F/ha-all", object{"pattern": "^ha\\.", "definition": object{"ha-mode": "all", "ha-sync-mode": "automatic"}, "priority": 1, "apply-to": "queues"}, http.StatusCreated)
	n.do(t, "PUT", "/api/policies/%2F/ha-all", object{"pattern": "^ha\\.", "definition": object{"ha-mode": "all"}, "apply-to": "queues"}, http.StatusNoContent)
	pols := decode[[]object](t, n.do(t, "GET", "/api/policies", nil, http.StatusOK))
	if len(pols) != 1 || pols[0]["name"] != "ha-all" || pols[0]["pattern"] != "^ha\\." {
		t.Fatalf("policies = %v", pols)
	}
	q := decode[object](t, n.do(t, "GET", "/api/queues/%2F/ha.jobs", nil, http.StatusOK))
	if q["policy"] != "ha-all" || fmt.Sprint(q["effective_policy_definition"]) != "map[ha-mode:all]" {
		t.Errorf("queue policy fields: %v %v", q["policy"], q["effective_policy_definition"])
	}
	_, body := n.call(t, "PUT", "/api/policies/%2F/bad", "guest", "guest", object{"pattern": ".*", "definition": object{"ha-mode": "exactly"}})
	if kind, reason := errorBody(t, body); kind != "bad_request" || reason != "Validation failed\n\nha-mode=\"exactly\" takes an integer, none given" {
		t.Errorf("invalid policy: %s", body)
	}
	n.do(t, "PUT", "/api/operator-policies/%2F/cap", object{"pattern": ".*", "definition": object{"max-length": 1000}, "apply-to": "queues"}, http.StatusCreated)
	q = decode[object](t, n.do(t, "GET", "/api/queues/%2F/ha.jobs", nil, http.StatusOK))
	if q["operator_policy"] != "cap" {
		t.Errorf("operator_policy = %v", q["operator_policy"])
	}
	n.do(t, "DELETE", "/api/operator-policies/%2F/cap", nil, http.StatusNoContent)
	n.do(t, "DELETE", "/api/policies/%2F/ha-all", nil, http.StatusNoContent)
	n.do(t, "DELETE", "/api/policies/%2F/ha-all", nil, http.StatusNotFound)
	if q := decode[object](t, n.do(t, "GET", "/api/queues/%2F/ha.jobs", nil, http.StatusOK)); q["policy"] != nil {
		t.Errorf("policy after delete = %v", q["policy"])
	}
}

func TestPrometheusMetrics(t *testing.T) {
	n := startNode(t)
	ms := httptest.NewServer(mgmt.NewMetrics(n.srv, broker.Version))
	defer ms.Close()
	_, ch := n.client(t)
	if _, err := ch.QueueDeclare("metered", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		ch.PublishWithContext(context.Background(), "", "metered", false, false, amqp091.Publishing{Body: []byte("abcd")})
	}
	get := func(path string) string {
		resp, err := n.http.Get(ms.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		return string(b)
	}
	waitFor(t, func() bool { return strings.Contains(get("/metrics"), "\nrabbitmq_queue_messages_ready 3\n") })
	agg := get("/metrics")
	for _, want := range []string{"\nrabbitmq_queues 1\n", "\nrabbitmq_connections 1\n", "\nrabbitmq_channels 1\n",
		"\nrabbitmq_channel_messages_published_total 3\n", "\nrabbitmq_queue_messages_ready_bytes 12\n",
		"\nrabbitmq_global_messages_received_total{protocol=\"amqp091\"} 3\n", "# TYPE rabbitmq_queue_messages gauge\n"} {
		if !strings.Contains(agg, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	per := get("/metrics/per-object")
	if !strings.Contains(per, "\nrabbitmq_queue_messages_ready{vhost=\"/\",queue=\"metered\"} 3\n") {
		t.Errorf("/metrics/per-object lacks the queue's series:\n%s", per)
	}
	// Every name is one rabbitmq_prometheus uses, so dashboards find it,
	// or one of the few warren adds for what it has no metric for.
	known := map[string]bool{}
	for _, file := range []string{"testdata/rabbitmq-3.10-metric-names.txt", "testdata/warren-metric-names.txt"} {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(raw), "\n") {
			if l != "" && !strings.HasPrefix(l, "#") {
				known[l] = true
			}
		}
	}
	for _, l := range strings.Split(agg+per, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" && !known[f[2]] {
			t.Errorf("metric %s is neither one of rabbitmq_prometheus's nor one of warren's own", f[2])
		}
	}
}

// TestClientLibraryEndpoints covers what RabbitMQ API clients such as
// rabbit-hole use beyond the basics.
func TestClientLibraryEndpoints(t *testing.T) {
	n := startNode(t)
	// Global parameters, with the two every cluster has.
	globals := decode[[]object](t, n.do(t, "GET", "/api/global-parameters", nil, http.StatusOK))
	if len(globals) != 2 {
		t.Errorf("default global parameters = %v", globals)
	}
	n.do(t, "PUT", "/api/global-parameters/endpoints", object{"name": "endpoints", "value": object{"uris": []string{"amqp://a"}}}, http.StatusCreated)
	if g := decode[object](t, n.do(t, "GET", "/api/global-parameters/endpoints", nil, http.StatusOK)); fmt.Sprint(g["value"]) != "map[uris:[amqp://a]]" {
		t.Errorf("global parameter = %v", g)
	}
	n.do(t, "DELETE", "/api/global-parameters/endpoints", nil, http.StatusNoContent)
	n.do(t, "GET", "/api/global-parameters/endpoints", nil, http.StatusNotFound)
	n.do(t, "PUT", "/api/cluster-name", object{"name": "rabbit-prod"}, http.StatusNoContent)
	if c := decode[object](t, n.do(t, "GET", "/api/cluster-name", nil, http.StatusOK)); c["name"] != "rabbit-prod" {
		t.Errorf("cluster name = %v", c)
	}
	if o := decode[object](t, n.do(t, "GET", "/api/overview", nil, http.StatusOK)); o["cluster_name"] != "rabbit-prod" {
		t.Errorf("overview cluster_name = %v", o["cluster_name"])
	}

	// Connections of one user.
	c, err := amqp091.Dial(n.amqp)
	if err != nil {
		t.Fatal(err)
	}
	closed := c.NotifyClose(make(chan *amqp091.Error, 1))
	waitFor(t, func() bool {
		return len(decode[[]object](t, n.do(t, "GET", "/api/connections/username/guest", nil, http.StatusOK))) == 1
	})
	n.do(t, "DELETE", "/api/connections/username/guest", nil, http.StatusNoContent)
	select {
	case e := <-closed:
		if e == nil || e.Code != 320 {
			t.Errorf("closed with %v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("user's connection not closed")
	}

	// Binding Location: destination and properties key, escaped again.
	n.do(t, "PUT", "/api/queues/%2F/loc", object{}, http.StatusCreated)
	req, _ := http.NewRequest("POST", n.api+"/api/bindings/%2F/e/amq.topic/q/loc", strings.NewReader(`{"routing_key":"#"}`))
	req.SetBasicAuth("guest", "guest")
	resp, err := n.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "loc/%2523" {
		t.Errorf("Location = %q", loc)
	}
	n.do(t, "POST", "/api/queues/%2F/loc/actions", object{"action": "sync"}, http.StatusNoContent)
	n.do(t, "POST", "/api/queues/%2F/loc/actions", object{"action": "explode"}, http.StatusBadRequest)

	// Runtime parameters: no components, so nothing listed or stored.
	if l := decode[[]object](t, n.do(t, "GET", "/api/parameters/federation-upstream", nil, http.StatusOK)); len(l) != 0 {
		t.Errorf("parameters = %v", l)
	}
	_, body := n.call(t, "PUT", "/api/parameters/federation-upstream/%2F/up", "guest", "guest", object{"value": object{"uri": "amqp://x"}})
	if _, reason := errorBody(t, body); !strings.HasPrefix(reason, "Validation failed") {
		t.Errorf("unknown component: %s", body)
	}
	n.do(t, "GET", "/api/parameters/federation-upstream/%2F/up", nil, http.StatusNotFound)

	// Refused, not dropped.
	n.do(t, "PUT", "/api/users/bad", object{"password_hash": "not base64!", "tags": ""}, http.StatusBadRequest)
	n.do(t, "PUT", "/api/vhosts/q", object{"default_queue_type": "quorum"}, http.StatusBadRequest)
	// Queue lengths with samples.
	qs := decode[[]object](t, n.do(t, "GET", "/api/queues?lengths_age=60&lengths_incr=5", nil, http.StatusOK))
	if d, _ := qs[0]["messages_details"].(object); d == nil || d["samples"] == nil {
		t.Errorf("no samples in %v", qs[0]["messages_details"])
	}
}

func TestTopicPermissionEndpoints(t *testing.T) {
	n := startNode(t)
	n.do(t, "PUT", "/api/users/tp", object{"password": "tp", "tags": ""}, http.StatusCreated)
	n.do(t, "PUT", "/api/topic-permissions/%2F/tp", object{"exchange": "amq.topic", "write": "^a", "read": ".*"}, http.StatusCreated)
	n.do(t, "PUT", "/api/topic-permissions/%2F/tp", object{"exchange": "logs", "write": "^b", "read": ".*"}, http.StatusCreated)
	if l := decode[[]object](t, n.do(t, "GET", "/api/topic-permissions/%2F/tp", nil, http.StatusOK)); len(l) != 2 || l[0]["exchange"] != "amq.topic" {
		t.Errorf("topic permissions = %v", l)
	}
	if l := decode[[]object](t, n.do(t, "GET", "/api/users/tp/topic-permissions", nil, http.StatusOK)); len(l) != 2 {
		t.Errorf("user's topic permissions = %v", l)
	}
	n.do(t, "DELETE", "/api/topic-permissions/%2F/tp/logs", nil, http.StatusNoContent)
	if l := decode[[]object](t, n.do(t, "GET", "/api/topic-permissions", nil, http.StatusOK)); len(l) != 1 {
		t.Errorf("after deleting one: %v", l)
	}
	exported := decode[object](t, n.do(t, "GET", "/api/definitions", nil, http.StatusOK))
	if tp, _ := exported["topic_permissions"].([]any); len(tp) != 1 {
		t.Errorf("exported topic_permissions = %v", exported["topic_permissions"])
	}
	n.do(t, "DELETE", "/api/topic-permissions/%2F/tp", nil, http.StatusNoContent)
	n.do(t, "GET", "/api/topic-permissions/%2F/tp", nil, http.StatusNotFound)
}
