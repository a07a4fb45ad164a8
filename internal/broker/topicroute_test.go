package broker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// TestTopicEdgeCasesMatchRabbitMQ routes the edge cases of topic words
// through a topic exchange. Each expectation is what RabbitMQ 3.10 does
// (WARREN_RAW_TARGET=host:port runs the same cases against it): a key is
// split at every dot, so "a..b" has an empty middle word and "a." an
// empty last one, but the empty key has no words at all.
func TestTopicEdgeCasesMatchRabbitMQ(t *testing.T) {
	addr := rawTarget(t)
	c := dial(t, "amqp://guest:guest@"+addr+"/")
	ch := openChannel(t, c)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	returns := ch.NotifyReturn(make(chan amqp091.Return, 1))
	long := strings.Repeat("x", 255)           // one word of 255 octets
	many := strings.Repeat("a.", 127) + "a"    // 128 words in 255 octets
	manyB := strings.Repeat("a.", 126) + "b.a" // the same length, "b" second to last
	cases := []struct {
		binding, key string
		routed       bool
	}{
		{"*", "", false},    // "*" is exactly one word; "" has none
		{"*", "a", true},    //
		{"*", ".", false},   // "." is two empty words
		{"*.*", ".", true},  //
		{"#", "", true},     // "#" is zero or more words
		{"#", ".", true},    //
		{"", "", true},      // the empty binding matches only the empty key
		{"", "a", false},    //
		{"", ".", false},    //
		{"a.*", "a.", true}, // an empty last word is still a word
		{"a.*", "a", false}, //
		{"*.a", ".a", true}, // an empty first word
		{"a.*.b", "a..b", true},
		{"a.b", "a..b", false},
		{"a..b", "a..b", true}, // empty words match literally
		{"a..b", "a.b", false},
		{"a.#", "a", true},     // "#" at the end takes zero words
		{"a.#", "a.", true},    //
		{"a.#", "ab", false},   //
		{"#.a", "a", true},     // and at the start
		{"#.a", "b.a", true},   //
		{"#.a", "", false},     //
		{"#.#", "", true},      //
		{"#.#", "a.b.c", true}, //
		{"*.#", "", false},     // at least one word
		{"*.#", "a", true},     //
		{"#.*", "", false},     //
		{"#.*", "a.b", true},   //
		{"#.a.#", "a", true},   //
		{"a.#.b", "a.b", true}, //
		{"a.#.b", "a.x.y.b", true},
		{"a.#.#.b", "a.b", true},
		{long, long, true},            // 255-octet binding and key
		{"*", long, true},             //
		{"#.a", many, true},           // 128 words
		{"*." + many[2:], many, true}, //
		{"#.b.*", manyB, true},        //
		{"#.b", manyB, false},         //
	}
	for i, tc := range cases {
		x := fmt.Sprintf("topic-edges-%d", i)
		if err := ch.ExchangeDeclare(x, "topic", false, true, false, false, nil); err != nil {
			t.Fatal(err)
		}
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(q.Name, tc.binding, x, false, nil); err != nil {
			t.Fatal(err)
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), x, tc.key, true, false, amqp091.Publishing{Body: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		if !dc.Wait() {
			t.Fatalf("binding %q, key %q: nacked", tc.binding, tc.key)
		}
		// A return comes before the confirm.
		var routed bool
		select {
		case <-returns:
		case <-time.After(10 * time.Millisecond):
			routed = true
		}
		if routed != tc.routed {
			t.Errorf("binding %q, key %q: routed %v, RabbitMQ %v", short(tc.binding), short(tc.key), routed, tc.routed)
		}
		if _, err := ch.QueueDelete(q.Name, false, false, false); err != nil {
			t.Fatal(err)
		}
	}
}

// short abbreviates a long key for a failure message.
func short(s string) string {
	if len(s) <= 20 {
		return s
	}
	return fmt.Sprintf("%s...(%d octets)", s[:12], len(s))
}
