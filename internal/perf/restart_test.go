package perf

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/broker"
)

// node is a warren broker serving AMQP on one loopback address.
type node struct {
	srv    *broker.Server
	served chan error
}

// startNode starts a broker over dataDir, listening on addr ("127.0.0.1:0"
// for any port).
func startNode(t *testing.T, dataDir, addr string) (*node, string) {
	t.Helper()
	srv, err := broker.New(context.Background(), broker.Config{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	n := &node{srv: srv, served: make(chan error, 1)}
	go func() { n.served <- srv.Serve(l) }()
	return n, l.Addr().String()
}

func (n *node) stop() {
	n.srv.Close()
	<-n.served
}

// freeAddr returns a loopback address nothing listens on, for now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func uriOf(addr string) string { return "amqp://guest:guest@" + addr + "/" }

// fill declares a durable queue and publishes count persistent messages of
// size bytes to it with confirms.
func fill(t *testing.T, addr, queue string, count, size int) {
	t.Helper()
	_, err := Run(context.Background(), Config{
		URI: uriOf(addr), Producers: 1, Size: size, ConfirmWindow: 50, Persistent: true,
		MessageCount: count, Queue: queue, Durable: true, KeepQueue: true, Duration: time.Minute,
	})
	if err != nil {
		t.Fatalf("fill %q: %v", queue, err)
	}
}

func TestProbeMeasuresARestartedBroker(t *testing.T) {
	dir := t.TempDir()
	first, addr := startNode(t, dir, "127.0.0.1:0")
	fill(t, addr, "restart", 200, 100)
	first.stop()

	// The "broker process" starts now, but listens only after a while.
	start := time.Now()
	type outcome struct {
		res ProbeResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := Probe(context.Background(), ProbeConfig{
			URI: uriOf(addr), Queue: "restart", Start: start, Interval: 2 * time.Millisecond,
			Timeout: 30 * time.Second, Expected: 200, Broker: "warren", Stop: "graceful", StopSeconds: 0.5,
		})
		done <- outcome{res, err}
	}()
	const delay = 150 * time.Millisecond
	time.Sleep(delay)
	second, _ := startNode(t, dir, addr)
	defer second.stop()

	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	r := o.res
	if r.ConnectSeconds < delay.Seconds() || r.ConnectAttempts < 2 {
		t.Errorf("connected at %.3f s after %d attempts; the broker listened only after %v", r.ConnectSeconds, r.ConnectAttempts, delay)
	}
	if !(r.ConnectSeconds <= r.DeclareSeconds && r.DeclareSeconds <= r.FirstDeliverySeconds && r.FirstDeliverySeconds < 30) {
		t.Errorf("times out of order: %+v", r)
	}
	if r.Depth != 200 || r.DepthAfter != 200 || r.FirstSize != 100 {
		t.Errorf("depth %d, depth after %d, first size %d: want 200, 200, 100", r.Depth, r.DepthAfter, r.FirstSize)
	}
	if r.Broker != "warren" || r.Stop != "graceful" || r.StopSeconds != 0.5 || r.Expected != 200 || r.Queue != "restart" {
		t.Errorf("labels not copied: %+v", r)
	}

	// The probe put its message back: a consumer gets all 200, the first
	// one redelivered.
	conn, err := amqp.Dial(uriOf(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive("restart", true, false, false, false, nil)
	if err != nil || q.Messages != 200 || q.Consumers != 0 {
		t.Fatalf("after the probe: %+v, %v; want 200 messages and no consumer", q, err)
	}
}

func TestProbeWaitsForTheQueueAndItsFirstMessage(t *testing.T) {
	n, addr := startNode(t, "", "127.0.0.1:0")
	defer n.stop()
	start := time.Now()
	done := make(chan error, 1)
	var res ProbeResult
	go func() {
		var err error
		res, err = Probe(context.Background(), ProbeConfig{
			URI: uriOf(addr), Queue: "late", Start: start, Interval: 2 * time.Millisecond, Timeout: 30 * time.Second,
		})
		done <- err
	}()
	// Until the queue exists the broker answers 404, which closes the
	// probe's channel; it must retry on a new one.
	time.Sleep(100 * time.Millisecond)
	fill(t, addr, "late", 1, 16)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if res.DeclareSeconds < 0.1 || res.FirstDeliverySeconds < res.DeclareSeconds {
		t.Errorf("declared at %.3f s, first message at %.3f s: want the declare after the queue appeared at 0.1 s", res.DeclareSeconds, res.FirstDeliverySeconds)
	}
	if res.DepthAfter != 1 {
		t.Errorf("depth after %d, want 1", res.DepthAfter)
	}
}

func TestProbeGivesUp(t *testing.T) {
	addr := freeAddr(t)
	t.Run("timeout", func(t *testing.T) {
		begin := time.Now()
		_, err := Probe(context.Background(), ProbeConfig{URI: uriOf(addr), Queue: "q", Start: begin, Timeout: 100 * time.Millisecond})
		// The last attempt failed with "connection refused", or with a
		// timeout when the deadline came during it.
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "last attempt: dial tcp "+addr) {
			t.Fatalf("error %v, want the deadline and the last connection error", err)
		}
		if took := time.Since(begin); took > 5*time.Second {
			t.Fatalf("took %v with a 100ms timeout", took)
		}
	})
	t.Run("broker exited", func(t *testing.T) {
		// An exited child not yet waited for is a zombie: it counts as
		// exited too.
		cmd := exec.Command("true")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for processRunning("/proc", cmd.Process.Pid) {
			if time.Now().After(deadline) {
				t.Fatal("child never exited")
			}
			time.Sleep(5 * time.Millisecond)
		}
		_, err := Probe(context.Background(), ProbeConfig{URI: uriOf(addr), Queue: "q", Start: time.Now(), BrokerPID: cmd.Process.Pid})
		_ = cmd.Wait()
		if err == nil || !strings.Contains(err.Error(), "exited before accepting") {
			t.Fatalf("error %v, want the broker's exit", err)
		}
	})
	t.Run("invalid config", func(t *testing.T) {
		_, err := Probe(context.Background(), ProbeConfig{URI: "ftp://x", Interval: -1})
		for _, want := range []string{"uri", "queue is empty", "start time", "interval"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v, want it to mention %q", err, want)
			}
		}
	})
}

func TestProcessRunning(t *testing.T) {
	if !processRunning("/proc", 1) {
		t.Error("pid 1 not running")
	}
	if processRunning("/proc", 1<<30) {
		t.Error("a pid that cannot exist is running")
	}
}

func TestParseUnixTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"1712345678.123456", time.Unix(1712345678, 123456000), false},
		{"1712345678,5", time.Unix(1712345678, 500000000), false},
		{" 1712345678.000000001\n", time.Unix(1712345678, 1), false},
		{"1712345678", time.Unix(1712345678, 0), false},
		{"", time.Time{}, true},
		{"-5", time.Time{}, true},
		{"12.3x", time.Time{}, true},
		{"12.-3", time.Time{}, true},
		{"12.1234567891", time.Time{}, true},
	} {
		got, err := ParseUnixTime(tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("%q: parsed as %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%q: got %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseProbeFlags(t *testing.T) {
	cli, err := ParseProbeFlags(strings.Fields("-h amqp://u:p@127.0.0.1:5999/ -u q -start 100.25 -expect 1000 -interval 2ms "+
		"-timeout 1m -broker-pid 42 -broker rabbitmq -stop kill -stop-seconds 1.5 -publish-rate 14000 --json"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := ProbeConfig{
		URI: "amqp://u:p@127.0.0.1:5999/", Queue: "q", Start: time.Unix(100, 250000000), Expected: 1000,
		Interval: 2 * time.Millisecond, Timeout: time.Minute, BrokerPID: 42, Broker: "rabbitmq", Stop: "kill",
		StopSeconds: 1.5, PublishRate: 14000,
	}
	if cli.Config != want || !cli.JSON {
		t.Errorf("got %+v json=%v\nwant %+v", cli.Config, cli.JSON, want)
	}
	for _, tc := range []struct{ args, want string }{
		{"-u q", "-start is required"},
		{"-u q -start soon", "-start: unix time"},
		{"-start 1", "queue is empty"},
		{"-u q -start 1 -expect -1", "expected message count"},
		{"-u q -start 1 extra", `unexpected argument "extra"`},
	} {
		if _, err := ParseProbeFlags(strings.Fields(tc.args), io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
}

func sampleProbe(broker, stop string, connect, first float64, depth int64) ProbeResult {
	return ProbeResult{
		Broker: broker, Stop: stop, Queue: "q", Expected: 1000, StopSeconds: 2, PublishRate: 14000,
		ConnectSeconds: connect, ConnectAttempts: 10, DeclareSeconds: connect, Depth: depth,
		FirstDeliverySeconds: first, FirstSize: 1024, DepthAfter: depth, BrokerCPUSeconds: 3, BrokerRSS: 100 << 20,
	}
}

func TestProbeResultJSONRoundTrip(t *testing.T) {
	in := []ProbeResult{sampleProbe("rabbitmq", "kill", 4, 5, 1000), sampleProbe("warren", "kill", 0.5, 0.6, 1000)}
	var buf bytes.Buffer
	for _, r := range in {
		if err := r.WriteJSON(&buf); err != nil {
			t.Fatal(err)
		}
	}
	buf.WriteString("\n")
	out, err := ReadProbeResults(&buf, "probes.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0] != in[0] || out[1] != in[1] {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, in)
	}
	if _, err := ReadProbeResults(strings.NewReader("{}\n{\"bogus\":1}\n"), "x.jsonl"); err == nil || !strings.Contains(err.Error(), "x.jsonl:2") {
		t.Fatalf("unknown field: error %v, want x.jsonl:2", err)
	}
}

func TestWriteRestartReport(t *testing.T) {
	results := []ProbeResult{
		sampleProbe("rabbitmq", "graceful", 4, 5, 1000),
		sampleProbe("warren", "graceful", 0.5, 0.75, 1000),
		sampleProbe("rabbitmq", "kill", 8, 10, 1000),
		sampleProbe("warren", "kill", 2, 2.5, 990),
	}
	var b strings.Builder
	if err := WriteRestartReport(&b, results, "rabbitmq"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| graceful | rabbitmq | 1000 | 14000 | 2.00 s | 4.00 s | 5.00 s | 3.00 s | 100 MiB | 1000 (all there) |",
		"| kill | warren | 1000 | 14000 | 2.00 s | 2.00 s | 2.50 s | 3.00 s | 100 MiB | 990 (10 MISSING) |",
		"| graceful | warren/rabbitmq | 0.12× | 0.15× |",
		"| kill | warren/rabbitmq | 0.25× | 0.25× |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	// Without the baseline there is no ratio table.
	b.Reset()
	if err := WriteRestartReport(&b, results[1:2], "rabbitmq"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "ratio") {
		t.Errorf("ratio table without a baseline:\n%s", b.String())
	}
	// A missing counterpart shows n/a.
	b.Reset()
	if err := WriteRestartReport(&b, results[:3], "rabbitmq"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "| kill | warren/rabbitmq | n/a | n/a |") {
		t.Errorf("no n/a row:\n%s", b.String())
	}
}

func TestDepthVerdict(t *testing.T) {
	for _, tc := range []struct {
		expected, depth, after int64
		want                   string
	}{
		{0, 5, 5, "nothing expected"},
		{10, 10, 10, "all there"},
		{10, 10, 9, "1 MISSING"},
		{10, 7, 10, "3 MISSING"},
		{10, 12, 10, "2 EXTRA"},
	} {
		r := ProbeResult{Expected: tc.expected, Depth: tc.depth, DepthAfter: tc.after}
		if got := depthVerdict(&r); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc, got, tc.want)
		}
	}
}
