package broker_test

import (
	"context"
	"strings"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/auth"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/meta"
)

func addUser(t *testing.T, s *broker.Server, name, pass string) {
	t.Helper()
	hash, err := auth.HashPassword(auth.SHA256, pass)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Meta().PutUser(context.Background(), meta.User{Name: name, PasswordHash: hash, HashingAlgorithm: auth.SHA256}); err != nil {
		t.Fatal(err)
	}
}

func TestPermissionsAreEnforced(t *testing.T) {
	s, url := startNode(t, broker.Config{})
	ctx := context.Background()
	if err := s.Meta().PutVHost(ctx, meta.VHost{Name: "v"}); err != nil {
		t.Fatal(err)
	}
	addUser(t, s, "alice", "secret")
	if err := s.Meta().SetPermission(ctx, meta.Permission{User: "alice", VHost: "v", Configure: "^alice-", Write: "^(alice-|amq\\.default$)", Read: "^alice-"}); err != nil {
		t.Fatal(err)
	}
	base := strings.Replace(url, "guest:guest", "alice:secret", 1)

	if _, err := amqp091.Dial(base); amqpErr(t, err).Reason != "NOT_ALLOWED - access to vhost '/' refused for user 'alice'" {
		t.Fatalf("vhost without permissions: %v", err)
	}
	c := dial(t, base+"v")
	refused := func(kind, name string) string {
		return "ACCESS_REFUSED - access to " + kind + " '" + name + "' in vhost 'v' refused for user 'alice'"
	}
	ok := openChannel(t, c)
	if _, err := ok.QueueDeclare("alice-q", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	publish(t, ok, "", "alice-q", amqp091.Publishing{Body: []byte("hi")})
	if d, got, err := ok.Get("alice-q", true); err != nil || !got || string(d.Body) != "hi" {
		t.Fatalf("own queue: %v %v", got, err)
	}
	cases := []struct {
		name string
		do   func(*amqp091.Channel) error
		want string
	}{
		{"configure", func(ch *amqp091.Channel) error {
			_, err := ch.QueueDeclare("bob-q", false, true, false, false, nil)
			return err
		}, refused("queue", "bob-q")},
		{"write exchange", func(ch *amqp091.Channel) error {
			return ch.PublishWithContext(ctx, "amq.topic", "k", false, false, amqp091.Publishing{})
		}, refused("exchange", "amq.topic")},
		{"read exchange to bind", func(ch *amqp091.Channel) error {
			return ch.QueueBind("alice-q", "k", "amq.topic", false, nil)
		}, refused("exchange", "amq.topic")},
		{"declare other's exchange", func(ch *amqp091.Channel) error {
			return ch.ExchangeDeclare("other-x", "direct", false, false, false, false, nil)
		}, refused("exchange", "other-x")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch := openChannel(t, c)
			if e := closedWith(t, ch, func() { tc.do(ch) }); e.Code != 403 || e.Reason != tc.want {
				t.Fatalf("got %d %q\nwant 403 %q", e.Code, e.Reason, tc.want)
			}
		})
	}
	// Reading a queue outside the read pattern, declared by guest.
	if err := s.Meta().SetPermission(ctx, meta.Permission{User: "guest", VHost: "v", Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	g := openChannel(t, dial(t, strings.TrimSuffix(url, "/")+"/v"))
	if _, err := g.QueueDeclare("shared", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	ch := openChannel(t, c)
	e := closedWith(t, ch, func() { ch.Consume("shared", "", false, false, false, false, nil) })
	if e.Code != 403 || e.Reason != refused("queue", "shared") {
		t.Fatalf("consume: %d %q", e.Code, e.Reason)
	}
	// Permissions changed at run time apply to open channels.
	if err := s.Meta().SetPermission(ctx, meta.Permission{User: "alice", VHost: "v", Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ok.QueueDeclare("bob-q", false, true, false, false, nil); err != nil {
		t.Fatalf("after granting: %v", err)
	}
}

func permAll(user, vhost string) meta.Permission {
	return meta.Permission{User: user, VHost: vhost, Configure: ".*", Write: ".*", Read: ".*"}
}

// TestTopicPermissions: with a topic permission on an exchange, a user
// publishes only with routing keys its write pattern matches and binds
// only with keys its read pattern matches; {username} stands for the
// user. Texts as RabbitMQ 3.10's.
func TestTopicPermissions(t *testing.T) {
	s, url := startNode(t, broker.Config{})
	ctx := context.Background()
	m := s.Meta()
	hash, _ := auth.HashPassword(auth.SHA256, "tp")
	if err := m.PutUser(ctx, meta.User{Name: "tp", PasswordHash: hash, HashingAlgorithm: auth.SHA256}); err != nil {
		t.Fatal(err)
	}
	m.SetPermission(ctx, meta.Permission{User: "tp", VHost: "/", Configure: ".*", Write: ".*", Read: ".*"})
	if err := m.SetTopicPermission(ctx, meta.TopicPermission{User: "tp", VHost: "/", Exchange: "amq.topic", Write: "^{username}\\.", Read: "^ok\\."}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, strings.Replace(url, "guest:guest", "tp:tp", 1))
	ch := openChannel(t, c)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "ok.#", "amq.topic", false, nil); err != nil {
		t.Fatalf("bind with a readable key: %v", err)
	}
	publish(t, ch, "amq.topic", "tp.x", amqp091.Publishing{Body: []byte("mine")})
	// Other exchanges have no topic permission: anything goes.
	publish(t, ch, "amq.direct", "whatever", amqp091.Publishing{})
	e := closedWith(t, ch, func() { ch.PublishWithContext(ctx, "amq.topic", "other.x", false, false, amqp091.Publishing{}) })
	if e.Code != 403 || e.Reason != "ACCESS_REFUSED - access to topic 'other.x' in exchange 'amq.topic' in vhost '/' refused for user 'tp'" {
		t.Errorf("publish: %d %q", e.Code, e.Reason)
	}
	ch = openChannel(t, c)
	q2, _ := ch.QueueDeclare("", false, true, true, false, nil)
	e = closedWith(t, ch, func() { ch.QueueBind(q2.Name, "bad.1", "amq.topic", false, nil) })
	if e.Code != 403 || e.Reason != "ACCESS_REFUSED - access to topic 'bad.1' in exchange 'amq.topic' in vhost '/' refused for user 'tp'" {
		t.Errorf("bind: %d %q", e.Code, e.Reason)
	}
	// Cleared: allowed again.
	if err := m.ClearTopicPermissions(ctx, "tp", "/", ""); err != nil {
		t.Fatal(err)
	}
	ch = openChannel(t, c)
	publish(t, ch, "amq.topic", "other.x", amqp091.Publishing{})
	if _, err := ch.QueueDeclarePassive(q.Name, false, true, true, false, nil); err != nil {
		t.Errorf("channel closed after clearing: %v", err)
	}
}

// TestLimits: vhost max-connections and max-queues, user max-connections
// and max-channels, refused with RabbitMQ 3.10's texts.
func TestLimits(t *testing.T) {
	s, url := startNode(t, broker.Config{})
	ctx := context.Background()
	m := s.Meta()
	if err := m.PutVHost(ctx, meta.VHost{Name: "lv", Limits: map[string]int64{"max-connections": 1, "max-queues": 1}}); err != nil {
		t.Fatal(err)
	}
	hash, _ := auth.HashPassword(auth.SHA256, "lu")
	if err := m.PutUser(ctx, meta.User{Name: "lu", PasswordHash: hash, HashingAlgorithm: auth.SHA256, Limits: map[string]int64{"max-channels": 1}}); err != nil {
		t.Fatal(err)
	}
	m.SetPermission(ctx, meta.Permission{User: "lu", VHost: "lv", Configure: ".*", Write: ".*", Read: ".*"})
	lv := strings.Replace(url, "guest:guest", "lu:lu", 1) + "lv"
	c := dial(t, lv)
	ch := openChannel(t, c)
	if _, err := ch.QueueDeclare("q1", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	e := closedWith(t, ch, func() { ch.QueueDeclare("q2", false, true, false, false, nil) })
	if e.Code != 406 || e.Reason != "PRECONDITION_FAILED - cannot declare queue 'q2': queue limit in vhost 'lv' (1) is reached" {
		t.Errorf("max-queues: %d %q", e.Code, e.Reason)
	}
	if _, err := amqp091.Dial(lv); err == nil || !strings.Contains(err.Error(), "NOT_ALLOWED - access to vhost 'lv' refused for user 'lu': connection limit (1) is reached") {
		t.Errorf("max-connections of the vhost: %v", err)
	}
	if _, err := c.Channel(); err != nil {
		t.Fatal(err)
	}
	closed := c.NotifyClose(make(chan *amqp091.Error, 1))
	if _, err := c.Channel(); err == nil {
		t.Fatal("second channel opened past max-channels")
	}
	if e := <-closed; e == nil || e.Reason != "NOT_ALLOWED - number of channels opened for user 'lu' has reached the maximum allowed user limit of (1)" {
		t.Errorf("max-channels: %v", e)
	}
	// The connection closed above may still be going away: lift the
	// vhost's limit so that only the user's counts.
	m.PutVHost(ctx, meta.VHost{Name: "lv"})
	u, _ := m.User("lu")
	u.Limits = map[string]int64{"max-connections": 0}
	m.PutUser(ctx, u)
	if _, err := amqp091.Dial(lv); err == nil || !strings.Contains(err.Error(), "connection refused for user 'lu': user connection limit (0) is reached") {
		t.Errorf("max-connections of the user: %v", err)
	}
}
