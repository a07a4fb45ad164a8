package broker_test

import (
	"context"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/meta"
)

func messagesIn(t *testing.T, ch *amqp091.Channel, q string) int {
	t.Helper()
	st, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st.Messages
}

func TestPoliciesApplyToQueuesAndExchanges(t *testing.T) {
	s, url := startNode(t, broker.Config{})
	ctx := context.Background()
	ch := openChannel(t, dial(t, url))
	m := s.Meta()

	// The argument says 10, the policy 3: the lower wins.
	if _, err := ch.QueueDeclare("orders.eu", false, false, false, false, amqp091.Table{"x-max-length": int32(10)}); err != nil {
		t.Fatal(err)
	}
	if err := m.SetPolicy(ctx, meta.Policy{VHost: "/", Name: "cap", Pattern: "^orders\\.", ApplyTo: "queues",
		Definition: map[string]any{"max-length": 3.0, "dead-letter-exchange": "dead", "ha-mode": "all"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("dead-letters", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("dead", "fanout", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("dead-letters", "", "dead", false, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		publish(t, ch, "", "orders.eu", amqp091.Publishing{Body: []byte{byte('0' + i)}})
	}
	if n := messagesIn(t, ch, "orders.eu"); n != 3 {
		t.Errorf("orders.eu holds %d, want 3 (policy max-length)", n)
	}
	// What the policy dropped went to its dead-letter exchange.
	deadline := time.Now().Add(5 * time.Second)
	for messagesIn(t, ch, "dead-letters") != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := messagesIn(t, ch, "dead-letters"); n != 2 {
		t.Errorf("dead-letters holds %d, want 2", n)
	}
	qi, _, _ := s.Queue("/", "orders.eu")
	if qi.Policy != "cap" || qi.Effective["ha-mode"] != "all" {
		t.Errorf("queue info: policy %q, effective %v", qi.Policy, qi.Effective)
	}

	// An operator policy caps it further, at once (drop-head).
	if err := m.SetPolicy(ctx, meta.Policy{VHost: "/", Name: "ops-cap", Pattern: ".*", ApplyTo: "queues", Operator: true,
		Definition: map[string]any{"max-length": 1.0}}); err != nil {
		t.Fatal(err)
	}
	if n := messagesIn(t, ch, "orders.eu"); n != 1 {
		t.Errorf("after operator policy, orders.eu holds %d, want 1", n)
	}
	// Clearing both leaves the queue's own argument.
	m.ClearPolicy(ctx, "/", "ops-cap", true)
	m.ClearPolicy(ctx, "/", "cap", false)
	for range 12 {
		publish(t, ch, "", "orders.eu", amqp091.Publishing{Body: []byte("x")})
	}
	if n := messagesIn(t, ch, "orders.eu"); n != 10 {
		t.Errorf("after clearing, orders.eu holds %d, want 10", n)
	}

	// alternate-exchange from a policy, for exchanges.
	if err := ch.ExchangeDeclare("in", "direct", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("unrouted", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	ch.ExchangeDeclare("ae", "fanout", false, false, false, false, nil)
	ch.QueueBind("unrouted", "", "ae", false, nil)
	if err := m.SetPolicy(ctx, meta.Policy{VHost: "/", Name: "ae", Pattern: "^in$", ApplyTo: "exchanges",
		Definition: map[string]any{"alternate-exchange": "ae"}}); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "in", "nowhere", amqp091.Publishing{Body: []byte("lost?")})
	if n := messagesIn(t, ch, "unrouted"); n != 1 {
		t.Errorf("unrouted holds %d, want 1 (policy alternate-exchange)", n)
	}
}

// TestRestartReplaysPolicyChanges restarts a node whose log holds policy
// changes not yet in a snapshot: replaying them at start must not reach
// for the definitions before they are open (it crashed the node once),
// and the policy in force afterwards is the last one set.
func TestRestartReplaysPolicyChanges(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := broker.New(ctx, broker.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	m := s.Meta()
	for _, p := range []meta.Policy{
		{VHost: "/", Name: "cap", Pattern: "^", ApplyTo: "queues", Definition: map[string]any{"max-length": 5}},
		{VHost: "/", Name: "gone", Pattern: "^", ApplyTo: "queues", Definition: map[string]any{"max-length": 9}},
	} {
		if err := m.SetPolicy(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.ClearPolicy(ctx, "/", "gone", false); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, url := startNode(t, broker.Config{DataDir: dir})
	if pols := s2.Meta().Policies("/"); len(pols) != 1 || pols[0].Name != "cap" {
		t.Fatalf("policies after the restart: %+v", pols)
	}
	ch := openChannel(t, dial(t, url))
	if _, err := ch.QueueDeclare("capped", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		publish(t, ch, "", "capped", amqp091.Publishing{Body: []byte{byte(i)}})
	}
	deadline := time.Now().Add(10 * time.Second)
	for messagesIn(t, ch, "capped") != 5 {
		if time.Now().After(deadline) {
			t.Fatalf("capped holds %d messages, want 5 (max-length of the policy in force)", messagesIn(t, ch, "capped"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
