package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/chaos"
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

// startAll starts every host's node and waits for each to serve AMQP;
// if the test fails, the end of each node's log goes with it.
func (l *hostLab) startAll(t *testing.T) {
	t.Helper()
	for _, h := range l.hosts {
		h.start(t)
	}
	for _, h := range l.hosts {
		h.dial(t)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, h := range l.hosts {
				out := h.log.String()
				t.Logf("%s log, last 3000 octets:\n%s", h.name, out[max(0, len(out)-3000):])
			}
		}
	})
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
	return func(network, addr string) (net.Conn, error) { return chaos.DialIn(h.ns, network, addr) }
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
	l.startAll(t)
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

// blackhole makes the host drop everything it sends to other, or stop
// doing so: with both ends done, the two hosts are cut off from each
// other while both still reach the third.
func (h *labHost) blackhole(t *testing.T, other *labHost, on bool) {
	t.Helper()
	verb := "del"
	if on {
		verb = "add"
	}
	if out, err := exec.Command("ip", "-n", h.ns, "route", verb, "blackhole", other.addr+"/32").CombinedOutput(); err != nil {
		t.Fatalf("route %s blackhole %s on %s: %v\n%s", verb, other.addr, h.name, err, out)
	}
}

// api GETs path from the host's own management API.
func (h *labHost) api(t *testing.T, path string, v any) {
	t.Helper()
	dial := h.dialer()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) { return dial(network, addr) },
	}}
	req, err := http.NewRequest("GET", "http://localhost:15672"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s on %s: %v", path, h.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s on %s: %s", path, h.name, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s on %s: %v", path, h.name, err)
	}
}

// TestPartitionBetweenTwoHostsIsShown cuts node1 and node3 off from each
// other while both still reach node2: cluster_status (text and JSON) and
// /api/nodes, asked on any side, show each of the two as unable to
// communicate with the other, and nothing once the cut heals. A node
// that nobody reaches is down, not partitioned.
func TestPartitionBetweenTwoHostsIsShown(t *testing.T) {
	l := newHostLab(t)
	n1, n2, n3 := l.hosts[0], l.hosts[1], l.hosts[2]
	l.startAll(t)
	for _, h := range []*labHost{n2, n3} {
		h.ctl(t, "", "stop_app").ok(t)
		h.ctl(t, "", "join_cluster", "warren@node1").ok(t)
		h.ctl(t, "", "start_app").ok(t)
	}
	if out := n2.ctl(t, "", "cluster_status").ok(t).stdout; !strings.Contains(out, "Network Partitions\n\n(none)") {
		t.Fatalf("before the cut:\n%s", out)
	}

	n1.blackhole(t, n3, true)
	n3.blackhole(t, n1, true)
	want := []string{
		"Node warren@node1 cannot communicate with warren@node3",
		"Node warren@node3 cannot communicate with warren@node1",
	}
	var out string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		out = n2.ctl(t, "", "cluster_status").ok(t).stdout
		if strings.Contains(out, want[0]) && strings.Contains(out, want[1]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster_status on node2 does not show the cut within 30s:\n%s", out)
		}
	}
	if !strings.Contains(out, "Running Nodes\n\nwarren@node1\nwarren@node2\nwarren@node3") {
		t.Errorf("every node runs during the cut:\n%s", out)
	}
	// Each node reports what it reaches: node2 answers for both sides,
	// node1 and node3 each for their own and see the other as down, as
	// RabbitMQ's nodes do.
	partitions := func(h *labHost) map[string][]string {
		var js struct {
			Partitions map[string][]string `json:"partitions"`
		}
		out := h.ctl(t, "", "cluster_status", "--formatter", "json").ok(t).stdout
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &js); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return js.Partitions
	}
	both := map[string][]string{"warren@node1": {"warren@node3"}, "warren@node3": {"warren@node1"}}
	if got := partitions(n2); !reflect.DeepEqual(got, both) {
		t.Errorf("cluster_status --formatter json on node2: partitions %v, want %v", got, both)
	}
	if got, want := partitions(n1), map[string][]string{"warren@node1": {"warren@node3"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("cluster_status --formatter json on node1: partitions %v, want %v", got, want)
	}
	var nodes []struct {
		Name       string   `json:"name"`
		Running    bool     `json:"running"`
		Partitions []string `json:"partitions"`
	}
	n2.api(t, "/api/nodes", &nodes)
	got := map[string][]string{}
	for _, n := range nodes {
		if len(n.Partitions) > 0 {
			got[n.Name] = n.Partitions
		}
	}
	if !reflect.DeepEqual(got, both) {
		t.Errorf("/api/nodes on node2: %+v", nodes)
	}
	n3.api(t, "/api/nodes", &nodes)
	if len(nodes) != 3 || nodes[0].Running || !slices.Equal(nodes[2].Partitions, []string{"warren@node1"}) {
		t.Errorf("/api/nodes on node3: %+v", nodes)
	}

	n1.blackhole(t, n3, false)
	n3.blackhole(t, n1, false)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		out = n1.ctl(t, "", "cluster_status").ok(t).stdout
		if strings.Contains(out, "Network Partitions\n\n(none)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster_status on node1 still shows a partition 30s after the cut healed:\n%s", out)
		}
	}

	// A node that nobody reaches is down, not partitioned.
	n3.link(t, false)
	defer n3.link(t, true)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		out = n1.ctl(t, "", "cluster_status").ok(t).stdout
		if !strings.Contains(out, "Running Nodes\n\nwarren@node1\nwarren@node2\n\n") {
			if time.Now().After(deadline) {
				t.Fatalf("node3 off the network still runs for node1:\n%s", out)
			}
			continue
		}
		if !strings.Contains(out, "Network Partitions\n\n(none)") {
			t.Fatalf("node3 off the network shows as a partition:\n%s", out)
		}
		break
	}
}
