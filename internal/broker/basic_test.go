package broker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/broker"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

func TestPublishConsumeAck(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	c := dial(t, url)
	ch := openChannel(t, c)
	q, err := ch.QueueDeclare("work", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 100))
	for i := range 50 {
		publish(t, ch, "", q.Name, amqp091.Publishing{Body: []byte(fmt.Sprint(i)), Headers: amqp091.Table{"n": int32(i)}})
	}
	for i := range 50 {
		cf := <-confirms
		if !cf.Ack || cf.DeliveryTag != uint64(i+1) {
			t.Fatalf("confirm %d: %+v", i, cf)
		}
	}
	if err := ch.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(q.Name, "c1", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		d := recv(t, ds)
		if string(d.Body) != fmt.Sprint(i) || d.Headers["n"] != int32(i) || d.Redelivered {
			t.Fatalf("delivery %d: body %q headers %v redelivered %v", i, d.Body, d.Headers, d.Redelivered)
		}
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	q2, err := ch.QueueDeclarePassive("work", false, false, false, false, nil)
	if err != nil || q2.Messages != 0 || q2.Consumers != 1 {
		t.Fatalf("passive declare: %+v %v", q2, err)
	}
}

func TestPrefetchLimitsUnacked(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	ch := openChannel(t, dial(t, url))
	q, _ := ch.QueueDeclare("", false, true, true, false, nil)
	for i := range 20 {
		publish(t, ch, "", q.Name, amqp091.Publishing{Body: []byte{byte(i)}})
	}
	ch.Qos(5, 0, false)
	ds, _ := ch.Consume(q.Name, "", false, false, false, false, nil)
	var got []amqp091.Delivery
	for range 5 {
		got = append(got, recv(t, ds))
	}
	select {
	case d := <-ds:
		t.Fatalf("sixth delivery %v while five are unacked with prefetch 5", d.DeliveryTag)
	case <-time.After(200 * time.Millisecond):
	}
	got[4].Ack(true)
	for range 5 {
		recv(t, ds)
	}
}

func TestRequeueKeepsPositionAndMarksRedelivered(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	ch := openChannel(t, dial(t, url))
	q, _ := ch.QueueDeclare("", false, true, true, false, nil)
	for _, b := range []string{"a", "b", "c"} {
		publish(t, ch, "", q.Name, amqp091.Publishing{Body: []byte(b)})
	}
	d, ok, err := ch.Get(q.Name, false)
	if !ok || err != nil || string(d.Body) != "a" || d.MessageCount != 2 {
		t.Fatalf("get: %q %v %v count %d", d.Body, ok, err, d.MessageCount)
	}
	d2, _, _ := ch.Get(q.Name, false)
	if err := d.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	d3, _, _ := ch.Get(q.Name, true)
	if string(d3.Body) != "a" || !d3.Redelivered {
		t.Fatalf("after requeue got %q redelivered=%v, want a redelivered", d3.Body, d3.Redelivered)
	}
	d2.Reject(false)
	d4, _, _ := ch.Get(q.Name, true)
	if string(d4.Body) != "c" {
		t.Fatalf("got %q, want c", d4.Body)
	}
	if _, ok, _ := ch.Get(q.Name, true); ok {
		t.Fatal("queue should be empty")
	}
}

func TestUnackedRequeuedWhenChannelCloses(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	c := dial(t, url)
	ch := openChannel(t, c)
	q, _ := ch.QueueDeclare("rq", false, false, false, false, nil)
	publish(t, ch, "", q.Name, amqp091.Publishing{Body: []byte("x")})
	ch2 := openChannel(t, c)
	ds, _ := ch2.Consume(q.Name, "", false, false, false, false, nil)
	recv(t, ds)
	ch2.Close()
	d, ok, _ := ch.Get(q.Name, true)
	if !ok || !d.Redelivered || string(d.Body) != "x" {
		t.Fatalf("after close: ok=%v %q redelivered=%v", ok, d.Body, d.Redelivered)
	}
}

func TestExchangeTypes(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	ch := openChannel(t, dial(t, url))
	declare := func(name string) string {
		q, err := ch.QueueDeclare(name, false, true, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		return q.Name
	}
	count := func(name string) int {
		q, err := ch.QueueDeclarePassive(name, false, true, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		return q.Messages
	}
	ch.ExchangeDeclare("t", "topic", false, true, false, false, nil)
	ch.ExchangeDeclare("f", "fanout", false, true, false, false, nil)
	ch.ExchangeDeclare("h", "headers", false, true, false, false, nil)
	for _, n := range []string{"star", "hash", "exact", "fan", "hall", "hany", "e2e"} {
		declare(n)
	}
	ch.QueueBind("star", "a.*.c", "t", false, nil)
	ch.QueueBind("hash", "a.#", "t", false, nil)
	ch.QueueBind("exact", "a.b.c", "t", false, nil)
	ch.QueueBind("fan", "ignored", "f", false, nil)
	ch.QueueBind("hall", "", "h", false, amqp091.Table{"x-match": "all", "k1": "v1", "k2": int32(2)})
	ch.QueueBind("hany", "", "h", false, amqp091.Table{"x-match": "any", "k1": "v1", "k2": int32(2)})
	// Exchange-to-exchange: t routes a.# on to f as well.
	if err := ch.ExchangeBind("f", "a.b.#", "t", false, nil); err != nil {
		t.Fatal(err)
	}
	ch.QueueBind("e2e", "", "f", false, nil)

	publish(t, ch, "t", "a.b.c", amqp091.Publishing{})                                              // star hash exact + fan e2e
	publish(t, ch, "t", "a", amqp091.Publishing{})                                                  // hash
	publish(t, ch, "t", "a.x.y.c", amqp091.Publishing{})                                            // hash
	publish(t, ch, "h", "", amqp091.Publishing{Headers: amqp091.Table{"k1": "v1"}})                 // hany
	publish(t, ch, "h", "", amqp091.Publishing{Headers: amqp091.Table{"k1": "v1", "k2": int64(2)}}) // hall hany
	want := map[string]int{"star": 1, "hash": 3, "exact": 1, "fan": 1, "e2e": 1, "hall": 1, "hany": 2}
	for name, n := range want {
		if got := count(name); got != n {
			t.Errorf("queue %s has %d messages, want %d", name, got, n)
		}
	}
}

func TestMandatoryReturn(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	ch := openChannel(t, dial(t, url))
	returns := ch.NotifyReturn(make(chan amqp091.Return, 1))
	if err := ch.PublishWithContext(context.Background(), "amq.direct", "nowhere", true, false, amqp091.Publishing{Body: []byte("r")}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-returns:
		if r.ReplyCode != 312 || r.ReplyText != "NO_ROUTE" || string(r.Body) != "r" || r.RoutingKey != "nowhere" {
			t.Fatalf("return: %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no basic.return")
	}
}

// closedWith runs do and returns the error the server closes ch with.
func closedWith(t *testing.T, ch *amqp091.Channel, do func()) *amqp091.Error {
	t.Helper()
	closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	do()
	select {
	case e := <-closed:
		if e == nil {
			t.Fatal("channel closed without an error")
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed by the server")
	}
	return nil
}

// amqpErr returns the *amqp091.Error a channel was closed with.
func amqpErr(t *testing.T, err error) *amqp091.Error {
	t.Helper()
	var e *amqp091.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *amqp.Error", err, err)
	}
	return e
}

// TestChannelErrors checks channel errors' codes and texts; they are
// RabbitMQ 3.10's, as WARREN_RAW_TARGET=host:port shows when it points the
// test at a RabbitMQ node.
func TestChannelErrors(t *testing.T) {
	url := "amqp://guest:guest@" + rawTarget(t) + "/"
	c := dial(t, url)
	cases := []struct {
		name string
		do   func(ch *amqp091.Channel) error
		code int
		text string
	}{
		{"missing queue", func(ch *amqp091.Channel) error {
			_, err := ch.QueueDeclarePassive("nope", false, false, false, false, nil)
			return err
		}, 404, "NOT_FOUND - no queue 'nope' in vhost '/'"},
		{"inequivalent durable", func(ch *amqp091.Channel) error {
			ch.QueueDeclare("q", false, false, false, false, nil)
			_, err := ch.QueueDeclare("q", true, false, false, false, nil)
			return err
		}, 406, "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/': received 'true' but current is 'false'"},
		{"inequivalent arg", func(ch *amqp091.Channel) error {
			ch.QueueDeclare("qa", false, false, false, false, amqp091.Table{"x-max-length": int32(5)})
			_, err := ch.QueueDeclare("qa", false, false, false, false, nil)
			return err
		}, 406, "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'qa' in vhost '/': received none but current is the value '5' of type 'signedint'"},
		{"unknown delivery tag", func(ch *amqp091.Channel) error {
			return ch.Ack(42, false)
		}, 406, "PRECONDITION_FAILED - unknown delivery tag 42"},
		{"missing exchange", func(ch *amqp091.Channel) error {
			return ch.PublishWithContext(context.Background(), "nope", "", false, false, amqp091.Publishing{})
		}, 404, "NOT_FOUND - no exchange 'nope' in vhost '/'"},
		{"reserved name", func(ch *amqp091.Channel) error {
			_, err := ch.QueueDeclare("amq.mine", false, false, false, false, nil)
			return err
		}, 403, "ACCESS_REFUSED - queue name 'amq.mine' contains reserved prefix 'amq.*'"},
		{"default exchange bind", func(ch *amqp091.Channel) error {
			ch.QueueDeclare("qb", false, false, false, false, nil)
			return ch.QueueBind("qb", "k", "", false, nil)
		}, 403, "ACCESS_REFUSED - operation not permitted on the default exchange"},
		{"delete if-empty", func(ch *amqp091.Channel) error {
			ch.QueueDeclare("qe", false, false, false, false, nil)
			ch.PublishWithContext(context.Background(), "", "qe", false, false, amqp091.Publishing{})
			_, err := ch.QueueDelete("qe", false, true, false)
			return err
		}, 406, "PRECONDITION_FAILED - queue 'qe' in vhost '/' not empty"},
		{"delete if-unused", func(ch *amqp091.Channel) error {
			ch.QueueDeclare("qu", false, false, false, false, nil)
			ch.Consume("qu", "", false, false, false, false, nil)
			_, err := ch.QueueDelete("qu", true, false, false)
			return err
		}, 406, "PRECONDITION_FAILED - queue 'qu' in vhost '/' in use"},
		{"exchange delete if-unused", func(ch *amqp091.Channel) error {
			ch.ExchangeDeclare("xu", "direct", false, false, false, false, nil)
			ch.QueueDeclare("qxu", false, false, false, false, nil)
			ch.QueueBind("qxu", "k", "xu", false, nil)
			return ch.ExchangeDelete("xu", true, false)
		}, 406, "PRECONDITION_FAILED - exchange 'xu' in vhost '/' in use"},
		{"missing exchange passive", func(ch *amqp091.Channel) error {
			return ch.ExchangeDeclarePassive("nox", "direct", false, false, false, false, nil)
		}, 404, "NOT_FOUND - no exchange 'nox' in vhost '/'"},
		{"bind to missing queue", func(ch *amqp091.Channel) error {
			return ch.QueueBind("noq", "k", "amq.direct", false, nil)
		}, 404, "NOT_FOUND - no queue 'noq' in vhost '/'"},
		{"bind from missing exchange", func(ch *amqp091.Channel) error {
			ch.QueueDeclare("qbm", false, false, false, false, nil)
			return ch.QueueBind("qbm", "k", "nox2", false, nil)
		}, 404, "NOT_FOUND - no exchange 'nox2' in vhost '/'"},
		{"reserved exchange name", func(ch *amqp091.Channel) error {
			return ch.ExchangeDeclare("amq.mine", "direct", false, false, false, false, nil)
		}, 403, "ACCESS_REFUSED - exchange name 'amq.mine' contains reserved prefix 'amq.*'"},
		{"internal exchange", func(ch *amqp091.Channel) error {
			ch.ExchangeDeclare("ix", "direct", false, false, true, false, nil)
			return ch.PublishWithContext(context.Background(), "ix", "k", false, false, amqp091.Publishing{})
		}, 403, "ACCESS_REFUSED - cannot publish to internal exchange 'ix' in vhost '/'"},
		{"user_id mismatch", func(ch *amqp091.Channel) error {
			return ch.PublishWithContext(context.Background(), "", "q", false, false, amqp091.Publishing{UserId: "mallory"})
		}, 406, "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'"},
		{"exclusive consumer", func(ch *amqp091.Channel) error {
			ch.QueueDeclare("qx", false, false, false, false, nil)
			ch.Consume("qx", "a", false, true, false, false, nil)
			_, err := ch.Consume("qx", "b", false, false, false, false, nil)
			return err
		}, 403, "ACCESS_REFUSED - queue 'qx' in vhost '/' in exclusive use"},
		{"tx after confirm", func(ch *amqp091.Channel) error {
			ch.Confirm(false)
			return ch.Tx()
		}, 406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode"},
		{"commit without tx", func(ch *amqp091.Channel) error {
			return ch.TxCommit()
		}, 406, "PRECONDITION_FAILED - channel is not transactional"},
		{"inequivalent exchange type", func(ch *amqp091.Channel) error {
			return ch.ExchangeDeclare("amq.direct", "fanout", true, false, false, false, nil)
		}, 406, "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'amq.direct' in vhost '/': received 'fanout' but current is 'direct'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch := openChannel(t, c)
			e := closedWith(t, ch, func() { tc.do(ch) })
			if os.Getenv("WARREN_RAW_TARGET") != "" {
				t.Logf("%s: %d %q", tc.name, e.Code, e.Reason)
				return
			}
			if e.Code != tc.code || e.Reason != tc.text {
				t.Fatalf("got %d %q\nwant %d %q", e.Code, e.Reason, tc.code, tc.text)
			}
		})
	}
	// None of that touched the connection.
	if c.IsClosed() {
		t.Fatal("channel errors closed the connection")
	}
}

func TestExclusiveQueue(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	c1 := dial(t, url)
	ch1 := openChannel(t, c1)
	if _, err := ch1.QueueDeclare("mine", false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	ch2 := openChannel(t, dial(t, url))
	_, err := ch2.QueueDeclarePassive("mine", false, false, true, false, nil)
	if e := amqpErr(t, err); e.Code != 405 || !strings.HasPrefix(e.Reason, "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'mine'") {
		t.Fatalf("got %v", e)
	}
	c1.Close()
	ch3 := openChannel(t, dial(t, url))
	if _, err := ch3.QueueDeclarePassive("mine", false, false, true, false, nil); amqpErr(t, err).Code != 404 {
		t.Fatal("exclusive queue survived its connection")
	}
}

func TestLoginRefused(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	bad := strings.Replace(url, "guest:guest", "guest:wrong", 1)
	// amqp091-go does not announce authentication_failure_close, so, as
	// RabbitMQ does for such clients, the socket is simply closed.
	if _, err := amqp091.Dial(bad); err != amqp091.ErrCredentials {
		t.Fatalf("wrong password: %v, want ErrCredentials", err)
	}
	_, err := amqp091.Dial(strings.TrimSuffix(url, "/") + "/nosuchvhost")
	if e := amqpErr(t, err); e.Code != 530 {
		t.Fatalf("unknown vhost: %v", e)
	}
}

func TestTransactions(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	ch := openChannel(t, dial(t, url))
	q, _ := ch.QueueDeclare("", false, true, true, false, nil)
	if err := ch.Tx(); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "", q.Name, amqp091.Publishing{Body: []byte("1")})
	if err := ch.TxRollback(); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "", q.Name, amqp091.Publishing{Body: []byte("2")})
	if n, _ := ch.QueueDeclarePassive(q.Name, false, true, true, false, nil); n.Messages != 0 {
		t.Fatalf("uncommitted publish visible: %d", n.Messages)
	}
	if err := ch.TxCommit(); err != nil {
		t.Fatal(err)
	}
	if n, _ := ch.QueueDeclarePassive(q.Name, false, true, true, false, nil); n.Messages != 1 {
		t.Fatalf("after commit: %d messages, want 1", n.Messages)
	}
}

// TestTransactionKeepsEachPublish commits several publishes with different
// routing keys, properties and bodies at once: each must arrive as it was
// published and in order, though a channel assembles every publish in the
// same place.
func TestTransactionKeepsEachPublish(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	ch := openChannel(t, dial(t, url))
	for _, q := range []string{"tx-a", "tx-b"} {
		if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.Tx(); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"tx-a": {"a1", "a2", "a3"}, "tx-b": {"b1", "b2"}}
	for _, body := range []string{"a1", "b1", "a2", "b2", "a3"} {
		q := "tx-" + body[:1]
		publish(t, ch, "", q, amqp091.Publishing{Body: []byte(body), CorrelationId: "c-" + body})
	}
	if err := ch.TxCommit(); err != nil {
		t.Fatal(err)
	}
	for q, bodies := range want {
		for _, body := range bodies {
			d, ok, err := ch.Get(q, true)
			if err != nil || !ok {
				t.Fatalf("get from %s: ok %v, %v", q, ok, err)
			}
			if string(d.Body) != body || d.CorrelationId != "c-"+body || d.RoutingKey != q {
				t.Fatalf("from %s got body %q, correlation id %q, routing key %q; want %q", q, d.Body, d.CorrelationId, d.RoutingKey, body)
			}
		}
	}
}

func TestServerCloseSendsConnectionForced(t *testing.T) {
	s, url := startNode(t, broker.Config{})
	c := dial(t, url)
	closed := c.NotifyClose(make(chan *amqp091.Error, 1))
	s.Close()
	select {
	case e := <-closed:
		if e == nil || e.Code != 320 {
			t.Fatalf("close: %v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed")
	}
}

func TestAlternateExchange(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	ch := openChannel(t, dial(t, url))
	if err := ch.ExchangeDeclare("ae", "fanout", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("main", "direct", false, true, false, false, amqp091.Table{"alternate-exchange": "ae"}); err != nil {
		t.Fatal(err)
	}
	ch.QueueDeclare("routed", false, true, false, false, nil)
	ch.QueueDeclare("unrouted", false, true, false, false, nil)
	ch.QueueBind("routed", "k", "main", false, nil)
	ch.QueueBind("unrouted", "", "ae", false, nil)
	publish(t, ch, "main", "k", amqp091.Publishing{Body: []byte("1")})
	publish(t, ch, "main", "other", amqp091.Publishing{Body: []byte("2")})
	for name, body := range map[string]string{"routed": "1", "unrouted": "2"} {
		d, ok, err := ch.Get(name, true)
		if err != nil || !ok || string(d.Body) != body {
			t.Fatalf("%s: %q %v %v, want %q", name, d.Body, ok, err, body)
		}
	}
}

func TestDirectReplyTo(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	client := openChannel(t, dial(t, url))
	server := openChannel(t, dial(t, url))
	server.QueueDeclare("rpc", false, true, false, false, nil)
	requests, _ := server.Consume("rpc", "", true, false, false, false, nil)
	replies, err := client.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, client, "", "rpc", amqp091.Publishing{ReplyTo: "amq.rabbitmq.reply-to", CorrelationId: "c1", Body: []byte("ping")})
	req := recv(t, requests)
	if !strings.HasPrefix(req.ReplyTo, "amq.rabbitmq.reply-to.") || req.CorrelationId != "c1" {
		t.Fatalf("request reply_to %q correlation %q", req.ReplyTo, req.CorrelationId)
	}
	publish(t, server, "", req.ReplyTo, amqp091.Publishing{CorrelationId: "c1", Body: []byte("pong")})
	if r := recv(t, replies); string(r.Body) != "pong" || r.CorrelationId != "c1" {
		t.Fatalf("reply %q %q", r.Body, r.CorrelationId)
	}
	// Without a reply consumer the request is refused, as in RabbitMQ.
	other := openChannel(t, dial(t, url))
	e := closedWith(t, other, func() {
		other.PublishWithContext(context.Background(), "", "rpc", false, false, amqp091.Publishing{ReplyTo: "amq.rabbitmq.reply-to"})
	})
	if e.Code != 406 || e.Reason != "PRECONDITION_FAILED - fast reply consumer does not exist" {
		t.Fatalf("got %v", e)
	}
}

func TestDeletedQueueCancelsConsumers(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	c := dial(t, url)
	ch := openChannel(t, c)
	ch.QueueDeclare("gone", false, true, false, false, nil)
	cancels := ch.NotifyCancel(make(chan string, 1))
	if _, err := ch.Consume("gone", "tag1", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	other := openChannel(t, c)
	if _, err := other.QueueDelete("gone", false, false, false); err != nil {
		t.Fatal(err)
	}
	select {
	case tag := <-cancels:
		if tag != "tag1" {
			t.Fatalf("cancelled %q", tag)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no basic.cancel")
	}
	// The tag is free again, on a queue of the same name declared anew;
	// closing the channel must not take the new queue for the old one.
	ch.QueueDeclare("gone", false, true, false, false, nil)
	if _, err := ch.Consume("gone", "tag1", false, false, false, false, nil); err != nil {
		t.Fatalf("reuse of a cancelled tag: %v", err)
	}
	ch2 := openChannel(t, c)
	ch2.QueueDeclare("ad", false, true, false, false, nil)
	if _, err := ch2.Consume("ad", "x", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
}

func TestPipelinedHandshake(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	r := rawDial(t, addrOf(url))
	// Everything up to a declare in one write, as a pipelining client
	// sends it.
	var b []byte
	b = append(b, amqp.ProtocolHeader[:]...)
	b = amqp.AppendMethodFrame(b, 0, &amqp.ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest"})
	b = amqp.AppendMethodFrame(b, 0, &amqp.ConnectionTuneOk{ChannelMax: 10, FrameMax: 131072})
	b = amqp.AppendMethodFrame(b, 0, &amqp.ConnectionOpen{VirtualHost: "/"})
	b = amqp.AppendMethodFrame(b, 1, &amqp.ChannelOpen{})
	b = amqp.AppendMethodFrame(b, 1, &amqp.QueueDeclare{Queue: "piped"})
	r.send(b)
	r.expect(&amqp.ConnectionStart{})
	r.expect(&amqp.ConnectionTune{})
	r.expect(&amqp.ConnectionOpenOk{})
	r.expect(&amqp.ChannelOpenOk{})
	if ok := r.expect(&amqp.QueueDeclareOk{}).(*amqp.QueueDeclareOk); ok.Queue != "piped" {
		t.Fatalf("declare-ok %+v", ok)
	}
}

func TestQueueLengthLimits(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	ch := openChannel(t, dial(t, url))
	ch.QueueDeclare("head", false, true, false, false, amqp091.Table{"x-max-length": int32(2)})
	for _, b := range []string{"1", "2", "3"} {
		publish(t, ch, "", "head", amqp091.Publishing{Body: []byte(b)})
	}
	if d, ok, _ := ch.Get("head", true); !ok || string(d.Body) != "2" || d.MessageCount != 1 {
		t.Fatalf("drop-head kept %q (+%d)", d.Body, d.MessageCount)
	}
	ch.QueueDeclare("bytes", false, true, false, false, amqp091.Table{"x-max-length-bytes": int64(10)})
	for _, b := range []string{"aaaa", "bbbb", "cccc"} {
		publish(t, ch, "", "bytes", amqp091.Publishing{Body: []byte(b)})
	}
	if d, ok, _ := ch.Get("bytes", true); !ok || string(d.Body) != "bbbb" {
		t.Fatalf("max-length-bytes kept %q first", d.Body)
	}

	ch.QueueDeclare("reject", false, true, false, false, amqp091.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"})
	ch.Confirm(false)
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 4))
	publish(t, ch, "", "reject", amqp091.Publishing{Body: []byte("kept")})
	publish(t, ch, "", "reject", amqp091.Publishing{Body: []byte("refused")})
	for i, want := range []bool{true, false} {
		select {
		case cf := <-confirms:
			if cf.DeliveryTag != uint64(i+1) || cf.Ack != want {
				t.Fatalf("confirm %d: %+v, want ack=%v", i+1, cf, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no confirm")
		}
	}
	if q, _ := ch.QueueDeclarePassive("reject", false, true, false, false, nil); q.Messages != 1 {
		t.Fatalf("reject-publish queue has %d messages", q.Messages)
	}
	bad := openChannel(t, dial(t, url))
	e := closedWith(t, bad, func() {
		bad.QueueDeclare("bad", false, true, false, false, amqp091.Table{"x-overflow": "explode"})
	})
	if e.Code != 406 || !strings.HasPrefix(e.Reason, "PRECONDITION_FAILED - invalid arg 'x-overflow' for queue 'bad' in vhost '/'") {
		t.Fatalf("bad x-overflow: %v", e)
	}
}

func TestMessageTTL(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	ch := openChannel(t, dial(t, url))
	ch.QueueDeclare("ttl", false, true, false, false, amqp091.Table{"x-message-ttl": int32(100)})
	publish(t, ch, "", "ttl", amqp091.Publishing{Body: []byte("expires")})
	ch.QueueDeclare("plain", false, true, false, false, nil)
	publish(t, ch, "", "plain", amqp091.Publishing{Body: []byte("own"), Expiration: "100"})
	publish(t, ch, "", "plain", amqp091.Publishing{Body: []byte("stays")})
	time.Sleep(200 * time.Millisecond)
	for q, want := range map[string]string{"ttl": "", "plain": "stays"} {
		d, ok, err := ch.Get(q, true)
		if err != nil || (want == "") == ok || (ok && string(d.Body) != want) {
			t.Fatalf("%s: got %q %v %v, want %q", q, d.Body, ok, err, want)
		}
	}
	e := closedWith(t, ch, func() {
		ch.PublishWithContext(context.Background(), "", "plain", false, false, amqp091.Publishing{Expiration: "soon"})
	})
	if e.Code != 406 || e.Reason != "PRECONDITION_FAILED - invalid expiration 'soon'" {
		t.Fatalf("bad expiration: %v", e)
	}
}

func TestDeadLettering(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	ch := openChannel(t, dial(t, url))
	ch.ExchangeDeclare("dlx", "fanout", false, true, false, false, nil)
	ch.QueueDeclare("dead", false, true, false, false, nil)
	ch.QueueBind("dead", "", "dlx", false, nil)
	args := amqp091.Table{"x-dead-letter-exchange": "dlx", "x-max-length": int32(1), "x-message-ttl": int32(50)}
	ch.QueueDeclare("work", false, true, false, false, args)

	deaths := func(want string) amqp091.Delivery {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			d, ok, err := ch.Get("dead", true)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				xd, _ := d.Headers["x-death"].([]any)
				if len(xd) == 0 {
					t.Fatalf("no x-death in %v", d.Headers)
				}
				first := xd[0].(amqp091.Table)
				if first["reason"] != want || first["queue"] != "work" || first["count"] != int64(1) {
					t.Fatalf("x-death %v, want reason %s", first, want)
				}
				return d
			}
			if time.Now().After(deadline) {
				t.Fatalf("nothing dead-lettered for %s", want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Rejected.
	publish(t, ch, "", "work", amqp091.Publishing{Body: []byte("r")})
	d, ok, _ := ch.Get("work", false)
	if !ok {
		t.Fatal("get")
	}
	d.Reject(false)
	if d := deaths("rejected"); string(d.Body) != "r" || d.Headers["x-first-death-reason"] != "rejected" {
		t.Fatalf("rejected: %q %v", d.Body, d.Headers)
	}
	// Dropped at the length limit.
	publish(t, ch, "", "work", amqp091.Publishing{Body: []byte("a")})
	publish(t, ch, "", "work", amqp091.Publishing{Body: []byte("b")})
	if d := deaths("maxlen"); string(d.Body) != "a" {
		t.Fatalf("maxlen: %q", d.Body)
	}
	// Expired, noticed when the queue is looked at.
	time.Sleep(100 * time.Millisecond)
	ch.QueueDeclarePassive("work", false, true, false, false, args)
	if d := deaths("expired"); string(d.Body) != "b" {
		t.Fatalf("expired: %q", d.Body)
	}
}

// TestQueueArgumentErrors checks queue.declare's argument validation. The
// texts are those RabbitMQ 3.10 answers; WARREN_RAW_TARGET runs the same
// declarations against another broker and logs its answers.
func TestQueueArgumentErrors(t *testing.T) {
	c := dial(t, "amqp://guest:guest@"+rawTarget(t)+"/")
	cases := []struct {
		args amqp091.Table
		text string
	}{
		{amqp091.Table{"x-dead-letter-routing-key": "dead"}, "invalid arg 'x-dead-letter-routing-key' for queue 'bad' in vhost '/': routing_key_but_no_dlx_defined"},
		{amqp091.Table{"x-expires": int32(0)}, "invalid arg 'x-expires' for queue 'bad' in vhost '/': {value_zero,0}"},
		{amqp091.Table{"x-expires": int32(-5)}, "invalid arg 'x-expires' for queue 'bad' in vhost '/': {value_negative,-5}"},
		{amqp091.Table{"x-expires": "soon"}, "invalid arg 'x-expires' for queue 'bad' in vhost '/': \"expected integer, got longstr\""},
		{amqp091.Table{"x-max-length": int32(-1)}, "invalid arg 'x-max-length' for queue 'bad' in vhost '/': {value_negative,-1}"},
		{amqp091.Table{"x-max-length": "ten"}, "invalid arg 'x-max-length' for queue 'bad' in vhost '/': \"expected integer, got longstr\""},
		{amqp091.Table{"x-message-ttl": int32(-1)}, "invalid arg 'x-message-ttl' for queue 'bad' in vhost '/': {value_negative,-1}"},
		{amqp091.Table{"x-overflow": "drop-tail"}, "invalid arg 'x-overflow' for queue 'bad' in vhost '/': invalid_overflow"},
		{amqp091.Table{"x-max-priority": int32(300)}, "invalid arg 'x-max-priority' for queue 'bad' in vhost '/': {max_value_exceeded,300}"},
		{amqp091.Table{"x-max-priority": int32(-1)}, "invalid arg 'x-max-priority' for queue 'bad' in vhost '/': {value_negative,-1}"},
		{amqp091.Table{"x-queue-mode": "fast"}, "invalid arg 'x-queue-mode' for queue 'bad' in vhost '/': \"unsupported queue mode 'fast'\""},
		{amqp091.Table{"x-queue-type": "weird"}, "invalid arg 'x-queue-type' for queue 'bad' in vhost '/': \"unsupported queue type 'weird'\""},
		{amqp091.Table{"x-single-active-consumer": "yes"}, "invalid arg 'x-single-active-consumer' for queue 'bad' in vhost '/': {unacceptable_type,longstr}"},
		{amqp091.Table{"x-dead-letter-exchange": int32(5)}, "invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue 'bad' in vhost '/'"},
		{amqp091.Table{"x-max-length-bytes": 1.5}, "invalid arg 'x-max-length-bytes' for queue 'bad' in vhost '/': \"expected integer, got double\""},
	}
	for _, tc := range cases {
		ch := openChannel(t, c)
		e := closedWith(t, ch, func() { ch.QueueDeclare("bad", false, false, false, false, tc.args) })
		if os.Getenv("WARREN_RAW_TARGET") != "" {
			t.Logf("%v: %d %q", tc.args, e.Code, e.Reason)
			continue
		}
		if want := "PRECONDITION_FAILED - " + tc.text; e.Code != 406 || e.Reason != want {
			t.Errorf("%v: got %d %q\nwant 406 %q", tc.args, e.Code, e.Reason, want)
		}
	}
	// Accepted: every valid form.
	ch := openChannel(t, c)
	ok := amqp091.Table{"x-expires": int32(60000), "x-message-ttl": int64(0), "x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": "k",
		"x-max-length": int16(10), "x-max-length-bytes": int64(1 << 20), "x-overflow": "reject-publish-dlx", "x-queue-mode": "lazy", "x-queue-type": "classic"}
	if _, err := ch.QueueDeclare("good", false, true, false, false, ok); err != nil {
		t.Fatalf("valid arguments refused: %v", err)
	}
}
