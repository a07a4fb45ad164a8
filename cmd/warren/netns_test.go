package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/vishvananda/netns"
)

// hostLab is three hosts in network namespaces on one bridge, each with
// its own address and the others' names in its /etc/hosts, as the
// runbooks' machines: node1 10.78.0.1, node2 10.78.0.2, node3 10.78.0.3.
type hostLab struct {
	prefix string
	sw     string
	hosts  []*labHost
	cookie string
}

// labHost is one host of the lab and the warren node on it.
type labHost struct {
	name, ns, addr, dir string
	lab                 *hostLab

	mu  sync.Mutex
	cmd *exec.Cmd
	log *lockedBuffer
}

func newHostLab(t *testing.T) *hostLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the namespace cluster test needs root (ip netns)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("the namespace cluster test needs iproute2's ip")
	}
	dir := t.TempDir()
	l := &hostLab{prefix: fmt.Sprintf("wc%d", os.Getpid()%100000), cookie: filepath.Join(dir, "cookie")}
	l.sw = l.prefix + "-sw"
	if err := os.WriteFile(l.cookie, []byte("NETNSCOOKIE"), 0o400); err != nil {
		t.Fatal(err)
	}
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		for _, h := range l.hosts {
			h.kill()
			exec.Command("ip", "netns", "del", h.ns).Run()
			os.RemoveAll(filepath.Join("/etc/netns", h.ns))
		}
		exec.Command("ip", "netns", "del", l.sw).Run()
	})
	sh("ip", "netns", "add", l.sw)
	sh("ip", "-n", l.sw, "link", "add", "br0", "type", "bridge")
	sh("ip", "-n", l.sw, "link", "set", "br0", "up")
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1 localhost\n")
	for i := range 3 {
		fmt.Fprintf(&hosts, "10.78.0.%d node%d\n", i+1, i+1)
	}
	for i := range 3 {
		h := &labHost{name: fmt.Sprintf("node%d", i+1), ns: fmt.Sprintf("%s-%d", l.prefix, i+1), addr: fmt.Sprintf("10.78.0.%d", i+1),
			dir: filepath.Join(dir, fmt.Sprintf("node%d", i+1)), lab: l}
		l.hosts = append(l.hosts, h)
		sh("ip", "netns", "add", h.ns)
		sh("ip", "link", "add", fmt.Sprintf("v%d", i+1), "netns", l.sw, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
		sh("ip", "-n", l.sw, "link", "set", fmt.Sprintf("v%d", i+1), "master", "br0", "up")
		sh("ip", "-n", h.ns, "link", "set", "lo", "up")
		sh("ip", "-n", h.ns, "addr", "add", h.addr+"/24", "dev", "eth0")
		sh("ip", "-n", h.ns, "link", "set", "eth0", "up")
		if err := os.MkdirAll(filepath.Join("/etc/netns", h.ns), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("/etc/netns", h.ns, "hosts"), []byte(hosts.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// start runs warren on the host with the defaults a runbook uses: node
// name warren@nodeN, AMQP 5672, HTTP 15672, cluster port 25672.
func (h *labHost) start(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log = &lockedBuffer{}
	h.cmd = exec.Command("ip", "netns", "exec", h.ns, warrenBin, "--node-name", "warren@"+h.name, "--data-dir", h.dir,
		"--cookie-file", h.lab.cookie)
	h.cmd.Stderr = h.log
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

func (h *labHost) kill() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd != nil {
		h.cmd.Process.Kill()
		h.cmd.Wait()
		h.cmd = nil
	}
}

// ctl runs warrenctl on the host against the node named node (its own
// when empty), as an operator logged in there would.
func (h *labHost) ctl(t *testing.T, node string, args ...string) ctlResult {
	t.Helper()
	if node == "" {
		node = "warren@" + h.name
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.ns, warrenctlBin, "-n", node, "--cookie-file", h.lab.cookie}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := ctlResult{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// dial connects an AMQP client from inside the host's namespace to its
// own node, retrying while the node starts.
func (h *labHost) dial(t *testing.T) *amqp091.Connection {
	t.Helper()
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var c *amqp091.Connection
		c, err = amqp091.DialConfig("amqp://guest:guest@localhost:5672/", amqp091.Config{Dial: h.dialer(), Heartbeat: 5 * time.Second})
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
	}
	t.Fatalf("%s does not serve AMQP: %v\n%s", h.name, err, h.log.String())
	return nil
}

// dialer opens TCP connections from inside the host's namespace.
func (h *labHost) dialer() func(network, addr string) (net.Conn, error) {
	return func(network, addr string) (net.Conn, error) {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		defer orig.Close()
		target, err := netns.GetFromName(h.ns)
		if err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		nc, err := net.DialTimeout(network, addr, 5*time.Second)
		if netns.Set(orig) == nil {
			// A thread left in the other namespace dies with its
			// goroutine instead of serving others.
			runtime.UnlockOSThread()
		}
		return nc, err
	}
}

// link takes the host's cable out of the switch, or puts it back.
func (h *labHost) link(t *testing.T, up bool) {
	t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	if out, err := exec.Command("ip", "-n", h.lab.sw, "link", "set", "v"+strings.TrimPrefix(h.name, "node"), state).CombinedOutput(); err != nil {
		t.Fatalf("link %s: %v\n%s", state, err, out)
	}
}

// TestClusterOfHostsLosesNothingConfirmed runs the runbooks' cluster on
// three hosts with their own names and addresses: node2 joins node1,
// node3 joins through node2 as a RAM node. A producer on node2 publishes
// to a queue on node1 with confirms while a consumer on node3 takes them;
// node3's cable is pulled and put back, and node1 is killed with SIGKILL
// and started again. Every confirmed message must be delivered, and
// nothing that was not published.
func TestClusterOfHostsLosesNothingConfirmed(t *testing.T) {
	l := newHostLab(t)
	n1, n2, n3 := l.hosts[0], l.hosts[1], l.hosts[2]
	for _, h := range l.hosts {
		h.start(t)
	}
	for _, h := range l.hosts {
		h.dial(t)
	}
	defer func() {
		if t.Failed() {
			for _, h := range l.hosts {
				out := h.log.String()
				t.Logf("%s log, last 3000 octets:\n%s", h.name, out[max(0, len(out)-3000):])
			}
		}
	}()
	n2.ctl(t, "", "stop_app").ok(t)
	n2.ctl(t, "", "join_cluster", "warren@node1").ok(t)
	n2.ctl(t, "", "start_app").ok(t)
	n3.ctl(t, "", "stop_app").ok(t)
	n3.ctl(t, "", "join_cluster", "--ram", "warren@node2").ok(t)
	n3.ctl(t, "", "start_app").ok(t)
	if out := n1.ctl(t, "warren@node3", "cluster_status").ok(t).stdout; !strings.Contains(out, "RAM Nodes\n\nwarren@node3") {
		t.Fatalf("cluster_status asked of node3 from node1:\n%s", out)
	}

	ch1, err := n1.dial(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch1.QueueDeclare("orders", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// node2 routes to the queue once Raft has brought it the declaration.
	for _, h := range []*labHost{n2, n3} {
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(h.ctl(t, "", "list_queues", "name").ok(t).stdout, "orders"); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s does not know the queue", h.name)
			}
		}
	}

	var (
		mu        sync.Mutex
		published = map[string]bool{}
		confirmed = map[string]bool{}
		delivered = map[string]int{}
	)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	// The producer on node2 reconnects whenever its connection or channel
	// goes, and counts only what was acked.
	go func() {
		defer wg.Done()
		seq := 0
		for ctx.Err() == nil {
			c, err := amqp091.DialConfig("amqp://guest:guest@localhost:5672/", amqp091.Config{Dial: n2.dialer(), Heartbeat: 5 * time.Second})
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			ch, err := c.Channel()
			if err == nil {
				err = ch.Confirm(false)
			}
			if err != nil {
				c.Close()
				continue
			}
			confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 64))
			for ctx.Err() == nil {
				batch := make([]string, 0, 20)
				for range 20 {
					seq++
					body := fmt.Sprintf("m-%d", seq)
					mu.Lock()
					published[body] = true
					mu.Unlock()
					if ch.Publish("", "orders", false, false, amqp091.Publishing{DeliveryMode: 2, Body: []byte(body)}) != nil {
						break
					}
					batch = append(batch, body)
				}
				ok := true
				for _, body := range batch {
					select {
					case cf, open := <-confirms:
						if !open {
							ok = false
						} else if cf.Ack {
							mu.Lock()
							confirmed[body] = true
							mu.Unlock()
						}
					case <-time.After(30 * time.Second):
						ok = false
					}
					if !ok {
						break
					}
				}
				if !ok || len(batch) < 20 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			c.Close()
		}
	}()
	// The consumer on node3 consumes again after a basic.cancel or a lost
	// connection.
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			c, err := amqp091.DialConfig("amqp://guest:guest@localhost:5672/", amqp091.Config{Dial: n3.dialer(), Heartbeat: 5 * time.Second})
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			for ctx.Err() == nil && !c.IsClosed() {
				ch, err := c.Channel()
				if err != nil {
					break
				}
				ch.Qos(50, 0, false)
				ds, err := ch.Consume("orders", "", false, false, false, false, nil)
				if err != nil {
					time.Sleep(300 * time.Millisecond)
					continue
				}
			consume:
				for {
					select {
					case <-ctx.Done():
						break consume
					case d, open := <-ds:
						if !open {
							break consume
						}
						mu.Lock()
						delivered[string(d.Body)]++
						mu.Unlock()
						d.Ack(false)
					}
				}
				ch.Close()
			}
			c.Close()
		}
	}()
	var phases []string
	progress := func(what string) {
		t.Helper()
		mu.Lock()
		start := len(confirmed)
		phases = append(phases, fmt.Sprintf("%s: %d published", what, len(published)))
		mu.Unlock()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			mu.Lock()
			now := len(confirmed)
			mu.Unlock()
			if now >= start+200 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: confirms stuck at %d", what, now)
			}
		}
	}
	progress("start")
	n3.link(t, false)
	time.Sleep(8 * time.Second)
	n3.link(t, true)
	mu.Lock()
	phases = append(phases, fmt.Sprintf("cable back: %d published", len(published)))
	mu.Unlock()
	progress("after node3's cable came back")
	n1.kill()
	mu.Lock()
	phases = append(phases, fmt.Sprintf("node1 killed: %d published", len(published)))
	mu.Unlock()
	time.Sleep(3 * time.Second)
	n1.start(t)
	progress("after node1 restarted")
	stop()
	wg.Wait()

	// Whatever is still queued is drained from node1, once what the
	// consumer held has gone back to the queue.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out := n1.ctl(t, "", "list_queues", "name", "messages_unacknowledged").ok(t).stdout
		if strings.Contains(out, "orders\t0\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages still unacknowledged on node1:\n%s", out)
		}
	}
	c := n1.dial(t)
	drained := map[string]int{}
	drainQueue(t, c, "orders", drained)
	mu.Lock()
	defer mu.Unlock()
	for k, n := range drained {
		delivered[k] += n
	}
	var lost, unexpected, duplicated int
	var lostOnes []string
	for k := range confirmed {
		if delivered[k] == 0 {
			lost++
			lostOnes = append(lostOnes, k)
		}
	}
	if len(lostOnes) > 0 {
		t.Logf("lost: %v; phases at %v", lostOnes, phases)
	}
	for k, n := range delivered {
		if !published[k] {
			unexpected++
		}
		if n > 1 {
			duplicated++
		}
	}
	t.Logf("published %d, confirmed %d, delivered %d distinct; lost %d, unexpected %d, delivered more than once %d",
		len(published), len(confirmed), len(delivered), lost, unexpected, duplicated)
	if lost > 0 || unexpected > 0 {
		t.Errorf("lost %d confirmed messages, delivered %d never published", lost, unexpected)
	}
}
