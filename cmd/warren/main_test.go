package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// warrenBin is the binary under test, built once by TestMain so that the
// tests run the program a user runs.
var warrenBin, warrenctlBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "warren-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	warrenBin = filepath.Join(dir, "warren")
	warrenctlBin = filepath.Join(dir, "warrenctl")
	args := []string{"build", "-o", dir + "/"}
	if os.Getenv("WARREN_TEST_RACE") != "" {
		// The nodes themselves under the race detector, stopping at the
		// first race (GORACE=halt_on_error=1 in the environment).
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, ".", "../warrenctl")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildWarren returns the binary under test.
func buildWarren(t *testing.T) string {
	t.Helper()
	return warrenBin
}

// portCursor walks test ports upward from a random start, so that one
// test process never hands out a port twice (a test picks several ports
// before it starts the nodes that bind them).
var portCursor = func() *atomic.Int32 {
	var c atomic.Int32
	c.Store(int32(rand.IntN(portSpan)))
	return &c
}()

// Test ports lie below the kernel's range of ephemeral ports (32768 and
// up by default), so that a node stopped and started again by a test
// finds its ports still free: a port of that range can meanwhile become
// the source port of any outgoing connection on the machine.
const (
	portBase = 20000
	portSpan = 12000
)

// freePort returns a loopback address with a port that is free now and
// that this test process has not handed out before.
func freePort(t *testing.T) string {
	t.Helper()
	for range portSpan {
		port := portBase + int(portCursor.Add(1))%portSpan
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return l.Addr().String()
	}
	t.Fatalf("no free loopback port between %d and %d", portBase, portBase+portSpan)
	return ""
}

// node is a warren process started by a test.
type node struct {
	cmd     *exec.Cmd
	addr    string // AMQP
	mgmt    string // management HTTP
	cluster string // cluster port, for warrenctl
	cookie  string // cookie file
	stderr  *lockedBuffer
}

// startNode runs the binary on dataDir and waits until it accepts a client.
func startNode(t *testing.T, bin, dataDir string) (*node, *amqp091.Connection) {
	t.Helper()
	return startNodeWithin(t, bin, dataDir, 10*time.Second)
}

// startNodeWithin is startNode for a node that may take up to wait to
// start (recovering a large store). A port found free can be taken by
// another process before the node binds it; the node then exits saying
// so, and it is started again on other ports.
func startNodeWithin(t *testing.T, bin, dataDir string, wait time.Duration, extra ...string) (*node, *amqp091.Connection) {
	t.Helper()
	for try := 1; ; try++ {
		n, c, inUse := startNodeOnce(t, bin, dataDir, wait, extra)
		if !inUse || try == 3 {
			if c == nil {
				t.Fatalf("node did not start\n%s", n.stderr.String())
			}
			return n, c
		}
	}
}

// startNodeOnce starts a node on ports found free, with extra arguments
// after its own, and waits for it to serve AMQP; it reports inUse if a
// port was taken meanwhile.
func startNodeOnce(t *testing.T, bin, dataDir string, wait time.Duration, extra []string) (n *node, c *amqp091.Connection, inUse bool) {
	t.Helper()
	n = &node{addr: freePort(t), mgmt: freePort(t), cluster: freePort(t), cookie: filepath.Join(dataDir + ".cookie"), stderr: &lockedBuffer{}}
	n.cmd = exec.Command(bin, append([]string{"--data-dir", dataDir, "--amqp-listen", n.addr, "--mgmt-listen", n.mgmt,
		"--cluster-listen", n.cluster, "--cookie-file", n.cookie, "--prometheus-listen", "127.0.0.1:0"}, extra...)...)
	n.cmd.Stderr = n.stderr
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill := func() { n.cmd.Process.Kill(); n.cmd.Wait() }
	var err error
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); {
		if c, err = amqp091.Dial("amqp://guest:guest@" + n.addr + "/"); err == nil {
			// Cleanups run last first: the node dies before the client
			// closes, so a client stuck on a blocked node cannot hang.
			t.Cleanup(func() { c.Close() })
			t.Cleanup(kill)
			return n, c, false
		}
		if strings.Contains(n.stderr.String(), "address already in use") {
			kill()
			t.Logf("a port was taken before the node bound it, starting it again:\n%s", n.stderr.String())
			return n, nil, true
		}
		time.Sleep(50 * time.Millisecond)
	}
	kill()
	t.Logf("node did not serve AMQP within %v: %v", wait, err)
	return n, nil, false
}

func TestSIGTERMClosesConnectionsWithConnectionForced(t *testing.T) {
	bin := buildWarren(t)
	n, c := startNode(t, bin, t.TempDir())
	cmd, stderr := n.cmd, n.stderr
	closed := c.NotifyClose(make(chan *amqp091.Error, 1))
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != 320 || !strings.HasPrefix(e.Reason, "CONNECTION_FORCED") {
			t.Fatalf("closed with %v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("connection not closed after SIGTERM")
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("node still running 10s after SIGTERM")
	}
	if !strings.Contains(stderr.String(), "node stopped") {
		t.Fatalf("log: %s", stderr.String())
	}
}

func TestBrokenConfigFileIsRefusedWithFileAndLine(t *testing.T) {
	bin := buildWarren(t)
	conf := filepath.Join(t.TempDir(), "rabbitmq.conf")
	os.WriteFile(conf, []byte("listeners.tcp.default = 5672\nheartbeat = often\nno_such_key = 1\n"), 0o644)
	out, err := exec.Command(bin, "--config", conf, "-t").CombinedOutput()
	if err == nil {
		t.Fatalf("accepted a broken config: %s", out)
	}
	for _, want := range []string{conf + ":2: heartbeat", conf + ":3: no_such_key: unknown setting"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestDefinitionsSurviveSIGKILL kills the node without warning and starts
// it again on the same data directory: durable definitions are back,
// transient and exclusive ones are gone, as with RabbitMQ.
func TestDefinitionsSurviveSIGKILL(t *testing.T) {
	bin := buildWarren(t)
	dir := t.TempDir()
	n, c := startNode(t, bin, dir)
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	args := amqp091.Table{"x-max-length": int32(10)}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = ch.QueueDeclare("durable-q", true, false, false, false, args)
	must(err)
	must(ch.ExchangeDeclare("durable-x", "topic", true, false, false, false, nil))
	must(ch.QueueBind("durable-q", "a.#", "durable-x", false, nil))
	_, err = ch.QueueDeclare("transient-q", false, false, false, false, nil)
	must(err)
	_, err = ch.QueueDeclare("exclusive-q", true, false, true, false, nil)
	must(err)
	must(ch.ExchangeDeclare("transient-x", "fanout", false, false, false, false, nil))

	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	n.cmd.Wait()

	_, c = startNode(t, bin, dir)
	ch, err = c.Channel()
	must(err)
	if _, err := ch.QueueDeclarePassive("durable-q", true, false, false, false, args); err != nil {
		t.Fatalf("durable queue after SIGKILL: %v", err)
	}
	// Redeclaring with other arguments is refused: the arguments came back.
	if _, err := ch.QueueDeclare("durable-q", true, false, false, false, nil); err == nil {
		t.Fatal("durable queue lost its arguments")
	}
	ch, err = c.Channel()
	must(err)
	must(ch.PublishWithContext(context.Background(), "durable-x", "a.b", false, false, amqp091.Publishing{Body: []byte("routed")}))
	if d, ok, err := ch.Get("durable-q", true); err != nil || !ok || string(d.Body) != "routed" {
		t.Fatalf("binding after SIGKILL: %v %v", ok, err)
	}
	for _, q := range []string{"transient-q", "exclusive-q"} {
		if _, err := ch.QueueDeclarePassive(q, false, false, false, false, nil); err == nil {
			t.Fatalf("%s survived a restart", q)
		}
		ch, err = c.Channel()
		must(err)
	}
	if err := ch.ExchangeDeclarePassive("transient-x", "fanout", false, false, false, false, nil); err == nil {
		t.Fatal("transient exchange survived a restart")
	}
}

// TestConfirmedMessagesSurviveSIGKILL publishes persistent messages with
// confirms, acks some, kills the node and starts it again: every confirmed
// message that was not acked is delivered, none twice, and the transient
// ones are gone, as with RabbitMQ.
func TestConfirmedMessagesSurviveSIGKILL(t *testing.T) {
	bin := buildWarren(t)
	dir := t.TempDir()
	n, c := startNode(t, bin, dir)
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("jobs", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 2000))
	const persistent, transient = 1000, 100
	for i := range persistent + transient {
		mode := amqp091.Persistent
		if i >= persistent {
			mode = amqp091.Transient
		}
		if err := ch.PublishWithContext(context.Background(), "", "jobs", false, false,
			amqp091.Publishing{DeliveryMode: mode, Body: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	for range persistent + transient {
		if cf := <-confirms; !cf.Ack {
			t.Fatalf("nack for %d", cf.DeliveryTag)
		}
	}
	// Take and ack the first 100: they must not come back.
	for i := range 100 {
		d, ok, err := ch.Get("jobs", false)
		if err != nil || !ok || string(d.Body) != fmt.Sprint(i) {
			t.Fatalf("get %d: %q %v %v", i, d.Body, ok, err)
		}
		d.Ack(false)
	}
	// One more taken but not acked: it comes back after the restart.
	if _, ok, _ := ch.Get("jobs", false); !ok {
		t.Fatal("get 100")
	}
	// A round trip on the channel: the node has taken the acks. Their
	// releases reach the disk with the next commit, within milliseconds;
	// give it ample time.
	if _, err := ch.QueueDeclarePassive("jobs", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	n.cmd.Process.Signal(syscall.SIGKILL)
	n.cmd.Wait()

	_, c = startNode(t, bin, dir)
	ch, err = c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive("jobs", true, false, false, false, nil)
	if err != nil || q.Messages != persistent-100 {
		t.Fatalf("after restart: %+v %v, want %d messages", q, err, persistent-100)
	}
	for i := 100; i < persistent; i++ {
		d, ok, err := ch.Get("jobs", true)
		if err != nil || !ok || string(d.Body) != fmt.Sprint(i) || d.DeliveryMode != amqp091.Persistent {
			t.Fatalf("message %d after restart: %q mode %d %v %v", i, d.Body, d.DeliveryMode, ok, err)
		}
	}
	if d, ok, _ := ch.Get("jobs", true); ok {
		t.Fatalf("unexpected message %q", d.Body)
	}
}

// TestNoConfirmedMessageLostWhenKilledAtRandom publishes persistent
// messages with confirms while the node is killed at a random moment, over
// several rounds, and checks after the last restart that every confirmed
// message is delivered and nothing is delivered that was never published.
// The load mixes the ways a node refuses or moves messages: a plain
// durable queue; one that refuses publishes once full (reject-publish, so
// nacks go out among acks); one that dead-letters its oldest messages at
// its length limit into another; and, in one round, a disk that fills up
// (writes fail and are nacked).
func TestNoConfirmedMessageLostWhenKilledAtRandom(t *testing.T) {
	bin := buildWarren(t)
	disk := smallDisk(t, "256m")
	const conf = "disk_free_limit.absolute = 1\n"
	const fullRound = 3
	targets := []string{"ledger", "bounded", "dl-src"}
	published := map[string]string{} // message id -> the queue it was sent to
	confirmed := map[string]bool{}
	nacked := 0
	pad := strings.Repeat(".", 1024)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for round := range fullRound + 2 {
		switch round {
		case fullRound:
			// Little room left: this round fills the disk.
			var st syscall.Statfs_t
			if err := syscall.Statfs(disk, &st); err != nil {
				t.Fatal(err)
			}
			used := (st.Blocks - st.Bfree) * uint64(st.Bsize)
			remount(t, disk, used+4<<20)
		case fullRound + 1:
			remount(t, disk, 512<<20)
		}
		n, c := startNodeWithConfig(t, bin, disk, conf)
		ch, err := c.Channel()
		if err != nil {
			t.Fatal(err)
		}
		declare := func(name string, args amqp091.Table) {
			t.Helper()
			if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
				t.Fatal(err)
			}
		}
		declare("ledger", nil)
		declare("bounded", amqp091.Table{"x-max-length": int32(500), "x-overflow": "reject-publish"})
		declare("dl-dst", nil)
		declare("dl-src", amqp091.Table{"x-max-length": int32(200), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dl-dst"})
		ch.Confirm(false)
		confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 1<<16))
		kill := time.Duration(100+rng.IntN(700)) * time.Millisecond
		if round == fullRound {
			kill = 2 * time.Second
		}
		killed := make(chan struct{})
		go func() {
			time.Sleep(kill)
			n.cmd.Process.Signal(syscall.SIGKILL)
			close(killed)
		}()
		var ids []string
		settle := func(cf amqp091.Confirmation) {
			if cf.Ack {
				confirmed[ids[cf.DeliveryTag-1]] = true
			} else {
				nacked++
			}
		}
	publish:
		for i := 0; ; i++ {
			id := fmt.Sprintf("r%d-%d", round, i)
			q := targets[i%len(targets)]
			published[id] = q
			ids = append(ids, id)
			if err := ch.PublishWithContext(context.Background(), "", q, false, false,
				amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: []byte(id + "|" + pad)}); err != nil {
				break
			}
			// Drain confirms as they come, so the window never blocks us.
			for {
				select {
				case cf, ok := <-confirms:
					if !ok {
						break publish
					}
					settle(cf)
					continue
				default:
				}
				break
			}
		}
		<-killed
		for cf := range confirms {
			settle(cf)
		}
		n.cmd.Wait()
		t.Logf("round %d: killed after %v, %d published so far, %d confirmed, %d nacked", round, kill, len(published), len(confirmed), nacked)
	}
	_, c := startNodeWithConfig(t, bin, disk, conf)
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, q := range []string{"ledger", "bounded", "dl-src", "dl-dst"} {
		for {
			d, ok, err := ch.Get(q, true)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			id, _, _ := strings.Cut(string(d.Body), "|")
			sentTo, ok := published[id]
			if !ok || sentTo != q && !(sentTo == "dl-src" && q == "dl-dst") {
				t.Fatalf("%s delivered from %s; it was never published there", id, q)
			}
			// Dead-lettering is at least once: a crash can leave a message
			// in both queues, or dead-lettered twice.
			if got[id] > 0 && sentTo != "dl-src" {
				t.Fatalf("%s delivered twice", id)
			}
			got[id]++
		}
	}
	lost := 0
	for id := range confirmed {
		if got[id] == 0 {
			if lost++; lost <= 10 {
				t.Errorf("%s, confirmed in %s, is gone", id, published[id])
			}
		}
	}
	t.Logf("%d confirmed, %d nacked, %d delivered after the last restart, %d lost", len(confirmed), nacked, len(got), lost)
	if lost != 0 || len(confirmed) == 0 || nacked == 0 {
		t.Fatalf("lost %d confirmed messages (of %d; %d nacked)", lost, len(confirmed), nacked)
	}
}

// remount sets the size of the tmpfs at dir.
func remount(t *testing.T, dir string, size uint64) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", fmt.Sprintf("remount,size=%dk", (size+1023)/1024), dir).CombinedOutput(); err != nil {
		t.Fatalf("resize tmpfs: %v\n%s", err, out)
	}
}

// TestCommittedTransactionSurvivesSIGKILL: once tx.commit-ok arrives, the
// transaction's persistent messages are on disk, as RabbitMQ promises: the
// node is killed the moment the answer arrives, and they are all there.
func TestCommittedTransactionSurvivesSIGKILL(t *testing.T) {
	bin := buildWarren(t)
	dir := t.TempDir()
	n, c := startNode(t, bin, dir)
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("ledger", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Tx(); err != nil {
		t.Fatal(err)
	}
	const count = 500
	for i := range count {
		if err := ch.PublishWithContext(context.Background(), "", "ledger", false, false,
			amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.TxCommit(); err != nil {
		t.Fatal(err)
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	n.cmd.Wait()

	_, c = startNode(t, bin, dir)
	ch, err = c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if q, err := ch.QueueDeclarePassive("ledger", true, false, false, false, nil); err != nil || q.Messages != count {
		t.Fatalf("after restart: %+v %v, want %d messages", q, err, count)
	}
}
