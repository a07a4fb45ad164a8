package lab_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/chaos"
	"github.com/warren-mq/warren/internal/lab"
)

var (
	e2eReference = flag.Bool("lab.reference", false, "run the end-to-end test on Debian's rabbitmq-server, haproxy and keepalived (make e2e-reference)")
	e2eReport    = flag.String("lab.report", "", "also write the end-to-end test's table to this file")
)

// e2eQueue is the mirrored queue the clients use; the examples' ha-all
// policy mirrors it on every node.
const e2eQueue = "e2e.q"

// fault is one failure of the end-to-end test: what it does to the
// stack and how the stack is mended after.
type fault struct {
	name       string
	do, mend   func(ctx context.Context, l *lab.Lab) error
	recovering time.Duration // how long the stack may take to come back whole after mend
}

// faultRow is what the clients saw of one fault.
type faultRow struct {
	name   string
	outage time.Duration // the longest time without a confirm around the fault
	lost   int           // confirmed in the fault's window, never delivered
	dups   int           // deliveries in the fault's window of messages delivered before
}

// e2eFaults are the faults of the end-to-end test, one after another;
// hit names the host the running fault hit.
func e2eFaults(l *lab.Lab, hit *string) []fault {
	holder := func() (string, error) {
		if h := l.VIPHolder(); h != "" {
			return h, nil
		}
		return "", fmt.Errorf("no single holder of the virtual IP")
	}
	onHolder := func(prog string, act func(string) error) func(context.Context, *lab.Lab) error {
		return func(context.Context, *lab.Lab) error {
			h, err := holder()
			if err != nil {
				return err
			}
			*hit = h
			if prog != "" {
				h += ":" + prog
			}
			return act(h)
		}
	}
	onLeader := func(act func(ctx context.Context, h string) error) func(context.Context, *lab.Lab) error {
		return func(ctx context.Context, l *lab.Lab) error {
			h, err := l.Leader(ctx, e2eQueue)
			if err != nil {
				return err
			}
			*hit = h
			return act(ctx, h)
		}
	}
	mend := func(act func(ctx context.Context, h string) error) func(context.Context, *lab.Lab) error {
		return func(ctx context.Context, l *lab.Lab) error { return act(ctx, *hit) }
	}
	broker, balancer, vrrp := l.BrokerProgram(), l.BalancerProgram(), l.VRRPProgram()
	return []fault{
		{name: "SIGKILL of the balancer host holding the virtual IP (" + balancer + " and " + vrrp + " die, link down)",
			do:   onHolder("", l.Kill),
			mend: mend(func(_ context.Context, h string) error { return l.Start(h) }), recovering: time.Minute},
		{name: "SIGKILL of " + balancer + " alone on the VIP holder (track_script moves the VIP)",
			do:   onHolder(balancer, l.Kill),
			mend: mend(func(_ context.Context, h string) error { return l.Start(h + ":" + balancer) }), recovering: time.Minute},
		{name: "SIGKILL of the broker node leading the queue",
			do:   onLeader(func(_ context.Context, h string) error { return l.Kill(h + ":" + broker) }),
			mend: mend(func(_ context.Context, h string) error { return l.Start(h + ":" + broker) }), recovering: 2 * time.Minute},
		{name: "stop_app on the node leading the queue (the health check takes it out)",
			do: onLeader(func(ctx context.Context, h string) error {
				_, err := l.Ctl(ctx, h, "stop_app")
				return err
			}),
			mend: mend(func(ctx context.Context, h string) error {
				_, err := l.Ctl(ctx, h, "start_app")
				return err
			}), recovering: 2 * time.Minute},
		{name: "the node leading the queue cut off from the others",
			do:   onLeader(func(_ context.Context, h string) error { return l.Partition(h) }),
			mend: func(context.Context, *lab.Lab) error { return l.Heal() }, recovering: 3 * time.Minute},
		{name: "graceful stop of " + vrrp + " on the VRRP master",
			do:   onHolder(vrrp, l.Stop),
			mend: mend(func(_ context.Context, h string) error { return l.Start(h + ":" + vrrp) }), recovering: time.Minute},
	}
}

// TestHAStackLosesNothing is the runbooks' promise, end to end: a client
// on the client host publishes with confirms through the virtual IP into
// a mirrored queue and a consumer consumes through it, both reconnecting
// as applications do, while the stack suffers each fault of e2eFaults in
// turn, mended in between. Nothing confirmed may be lost; the table
// reports each fault's client-visible outage.
func TestHAStackLosesNothing(t *testing.T) {
	runE2E(t, false)
}

// TestReferenceHAStack runs the same clients, faults and checker on
// RabbitMQ 3.10, haproxy 2.6 and keepalived 2.2 from Debian, with the
// runbooks' settings (make e2e-reference).
func TestReferenceHAStack(t *testing.T) {
	if !*e2eReference {
		t.Skip("the reference runs with -lab.reference: make e2e-reference")
	}
	runE2E(t, true)
}

func runE2E(t *testing.T, reference bool) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root: the lab makes network namespaces")
	}
	bin := t.TempDir()
	if !reference {
		build := exec.Command("go", "build", "-o", bin+"/", "../../cmd/warren", "../../cmd/warrenctl", "../../cmd/warren-lb", "../../cmd/warren-vrrp")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	examples, err := filepath.Abs("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	l := &lab.Lab{Dir: filepath.Join(t.TempDir(), "lab"), Bin: bin, Examples: examples, Prefix: fmt.Sprintf("wle%d", os.Getpid()%10000),
		Out: &progress, Reference: reference}
	if err := l.Check(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lab output:\n%s", progress.String())
			logTails(t, l)
		}
		if err := l.Down(); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	if err := l.Up(ctx); err != nil {
		t.Fatal(err)
	}
	client := chaos.Client{Name: "e2e", Dial: l.DialClient, URL: fmt.Sprintf("amqp://%s:%s@%s:5672/", lab.User, lab.Password, lab.VIP)}
	declare(t, client)
	waitWhole(t, ctx, l, 2*time.Minute)

	h := chaos.NewHistory()
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); chaos.Publish(wctx, client, e2eQueue, 200, 50, h) }()
	go func() { defer wg.Done(); chaos.Consume(wctx, client, e2eQueue, nil, h) }()
	defer func() { stop(); wg.Wait() }()

	var rows []faultRow
	var windows [][2]time.Duration
	var hit string
	for _, f := range e2eFaults(l, &hit) {
		waitWhole(t, ctx, l, f.recovering)
		time.Sleep(3 * time.Second) // a steady stream before the fault
		from := time.Since(h.Began())
		if err := f.do(ctx, l); err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		t.Logf("%.1f s: %s, on %s", from.Seconds(), f.name, hit)
		// Hold the fault until confirms have flowed again for a while,
		// or for as long as the stack may need.
		holdUntil := time.Now().Add(f.recovering)
		time.Sleep(5 * time.Second)
		for time.Now().Before(holdUntil) && !flowing(h, 2*time.Second) {
			time.Sleep(250 * time.Millisecond)
		}
		if err := f.mend(ctx, l); err != nil {
			t.Fatalf("mending %s: %v", f.name, err)
		}
		waitWhole(t, ctx, l, f.recovering)
		to := time.Since(h.Began())
		rows = append(rows, faultRow{name: f.name + " (" + hit + ")", outage: longestGap(h.Confirms(), from-time.Second, to)})
		windows = append(windows, [2]time.Duration{from, to})
	}
	time.Sleep(3 * time.Second)
	stop()
	wg.Wait()

	// Drain what is left and check.
	dctx, dstop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); chaos.Consume(dctx, client, e2eQueue, nil, h) }()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if last := h.LastDelivery(); !last.IsZero() && time.Since(last) > 3*time.Second && depth(ctx, l) == 0 {
			break
		}
	}
	dstop()
	<-done
	res := chaos.Check(h)
	for i, w := range windows {
		for _, at := range res.LostAt {
			if at >= w[0] && at < w[1] {
				rows[i].lost++
			}
		}
		for _, at := range h.Duplicates() {
			if at >= w[0] && at < w[1] {
				rows[i].dups++
			}
		}
	}
	report := e2eTable(reference, rows, res)
	t.Logf("\n%s", report)
	if *e2eReport != "" {
		if err := os.WriteFile(*e2eReport, []byte(report), 0o644); err != nil {
			t.Error(err)
		}
	}
	if res.Acked == 0 || res.Delivered == 0 {
		t.Fatalf("the clients got nothing through:\n%s", res)
	}
	if !reference && !res.OK() {
		t.Fatalf("confirmed messages lost or unpublished ones delivered:\n%s", res)
	}
}

// declare declares the test's queue through the virtual IP, durable:
// the examples' ha-all policy mirrors it.
func declare(t *testing.T, c chaos.Client) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		var conn *amqp091.Connection
		conn, err = amqp091.DialConfig(c.URL, amqp091.Config{Dial: c.Dial})
		if err != nil {
			continue
		}
		var ch *amqp091.Channel
		if ch, err = conn.Channel(); err == nil {
			_, err = ch.QueueDeclare(e2eQueue, true, false, false, false, nil)
		}
		conn.Close()
		if err == nil {
			return
		}
	}
	t.Fatalf("declare %s through the virtual IP: %v", e2eQueue, err)
}

// waitWhole waits for the stack to be whole again: the virtual IP back
// on lb1, the examples' VRRP master, and the queue's two mirrors in sync.
func waitWhole(t *testing.T, ctx context.Context, l *lab.Lab, d time.Duration) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if err = l.Healthy(ctx); err != nil {
			continue
		}
		if h := l.VIPHolder(); h != "lb1" {
			err = fmt.Errorf("the virtual IP is on %s, not yet back on lb1", h)
			continue
		}
		var leader string
		if leader, err = l.Leader(ctx, e2eQueue); err != nil {
			continue
		}
		var n int
		if n, err = l.InSync(ctx, leader, e2eQueue); err == nil && n == 2 {
			return
		}
		if err == nil {
			err = fmt.Errorf("%d of 2 mirrors in sync", n)
		}
	}
	t.Fatalf("the stack is not whole again after %v: %v", d, err)
}

// flowing reports whether confirms have arrived steadily over the last
// d: at least one in every quarter of it.
func flowing(h *chaos.History, d time.Duration) bool {
	cs := h.Confirms()
	now := time.Since(h.Began())
	for q := range 4 {
		lo, hi := now-d+time.Duration(q)*d/4, now-d+time.Duration(q+1)*d/4
		seen := false
		for i := len(cs) - 1; i >= 0 && cs[i] >= lo; i-- {
			if cs[i] < hi {
				seen = true
				break
			}
		}
		if !seen {
			return false
		}
	}
	return true
}

// longestGap is the longest time without a confirm between from and to.
func longestGap(cs []time.Duration, from, to time.Duration) time.Duration {
	last, gap := from, time.Duration(0)
	for _, c := range cs {
		if c < from {
			continue
		}
		if c > to {
			break
		}
		gap = max(gap, c-last)
		last = c
	}
	return max(gap, to-last)
}

// depth is the queue's message count as the first node that answers
// reports it; -1 if none does.
func depth(ctx context.Context, l *lab.Lab) int {
	for _, h := range lab.Hosts() {
		if h.Role != lab.Broker {
			continue
		}
		out, err := l.Ctl(ctx, h.Name, "-q", "list_queues", "name", "messages")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(out, "\n") {
			var name string
			var n int
			if _, err := fmt.Sscan(line, &name, &n); err == nil && name == e2eQueue {
				return n
			}
		}
	}
	return -1
}

// e2eTable is the report of a run.
func e2eTable(reference bool, rows []faultRow, res chaos.Result) string {
	var b strings.Builder
	what := "warren, warren-lb and warren-vrrp"
	if reference {
		what = "RabbitMQ 3.10, haproxy 2.6 and keepalived 2.2"
	}
	fmt.Fprintf(&b, "%s, the examples' settings:\n\n| fault | outage (longest time without a confirm) | confirmed and lost | delivered again |\n|---|---:|---:|---:|\n", what)
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %.1f s | %d | %d |\n", r.name, r.outage.Seconds(), r.lost, r.dups)
	}
	fmt.Fprintf(&b, "\n%s", res)
	return b.String()
}

// logTails logs the end of every program's log.
func logTails(t *testing.T, l *lab.Lab) {
	for _, h := range lab.Hosts() {
		for _, p := range l.Programs(h) {
			b, _ := os.ReadFile(filepath.Join(l.Dir, h.Name, p+".log"))
			if len(b) > 3000 {
				b = b[len(b)-3000:]
			}
			t.Logf("%s %s log, end:\n%s", h.Name, p, b)
		}
	}
}
