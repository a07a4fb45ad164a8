package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// member is one node of a test cluster on loopback: a warren process
// with its own ports, restartable on the same ones.
type member struct {
	name                      string // n1@localhost:PORT
	amqp, mgmt, clusterListen string
	prom                      string // the Prometheus listener
	dir, cookie               string
	config                    string   // a configuration file, if set
	ctlArgs                   []string // more options for warrenctl

	mu     sync.Mutex
	cmd    *exec.Cmd
	stderr *lockedBuffer
}

// lockedBuffer is a process's stderr, read while the process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newMembers makes n members sharing one cookie file.
func newMembers(t *testing.T, n int, cookie string) []*member {
	t.Helper()
	dir := t.TempDir()
	cookieFile := filepath.Join(dir, "cookie")
	if err := os.WriteFile(cookieFile, []byte(cookie), 0o400); err != nil {
		t.Fatal(err)
	}
	var ms []*member
	for i := range n {
		cl := freePort(t)
		_, port, _ := strings.Cut(cl, ":")
		m := &member{name: fmt.Sprintf("n%d@localhost:%s", i+1, port), amqp: freePort(t), mgmt: freePort(t), prom: freePort(t), clusterListen: cl,
			dir: filepath.Join(dir, fmt.Sprintf("d%d", i+1)), cookie: cookieFile}
		ms = append(ms, m)
		t.Cleanup(func() {
			m.kill()
			if t.Failed() && m.stderr != nil {
				out := m.stderr.String()
				t.Logf("%s log, last 4000 octets:\n%s", m.name, out[max(0, len(out)-4000):])
			}
		})
	}
	return ms
}

// start runs the member's process; it does not wait for the app, which
// may wait for a majority of the cluster.
func (m *member) start(t *testing.T) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stderr = &lockedBuffer{}
	m.cmd = exec.Command(warrenBin, "--node-name", m.name, "--data-dir", m.dir, "--amqp-listen", m.amqp, "--mgmt-listen", m.mgmt,
		"--cluster-listen", m.clusterListen, "--cookie-file", m.cookie, "--prometheus-listen", m.prom)
	if m.config != "" {
		m.cmd.Args = append(m.cmd.Args, "--config", m.config)
	}
	m.cmd.Stderr = m.stderr
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

func (m *member) kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		m.cmd.Process.Kill()
		m.cmd.Wait()
		m.cmd = nil
	}
}

// signal sends sig to the node's process (SIGSTOP and SIGCONT freeze and
// thaw it).
func (m *member) signal(sig os.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		m.cmd.Process.Signal(sig)
	}
}

// stop ends the process with SIGTERM, as an operator's "warrenctl stop".
func (m *member) stop(t *testing.T) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- m.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		m.cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not stop\n%s", m.name, m.stderr.String())
	}
	m.cmd = nil
}

func (m *member) ctl(t *testing.T, args ...string) ctlResult {
	t.Helper()
	return runCtl(t, append(append([]string{"-n", m.name, "--cookie-file", m.cookie}, m.ctlArgs...), args...)...)
}

// dial waits until the member's app serves AMQP.
func (m *member) dial(t *testing.T, user, pass string) *amqp091.Connection {
	t.Helper()
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var c *amqp091.Connection
		if c, err = amqp091.Dial("amqp://" + user + ":" + pass + "@" + m.amqp + "/"); err == nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
	}
	t.Fatalf("%s does not serve AMQP: %v\n%s", m.name, err, m.stderr.String())
	return nil
}

// join makes m a member of the cluster through seed, as the runbooks do.
func (m *member) join(t *testing.T, seed *member, extra ...string) {
	t.Helper()
	m.ctl(t, "stop_app").ok(t)
	out := m.ctl(t, append(append([]string{"join_cluster"}, extra...), seed.name)...).ok(t)
	if want := "Clustering node " + m.name + " with " + seed.name; !strings.Contains(out.stdout, want) {
		t.Errorf("join_cluster printed %q, want %q", out.stdout, want)
	}
	m.ctl(t, "start_app").ok(t)
}

type clusterStatus struct {
	ClusterName  string   `json:"cluster_name"`
	DiskNodes    []string `json:"disk_nodes"`
	RAMNodes     []string `json:"ram_nodes"`
	RunningNodes []string `json:"running_nodes"`
	Listeners    map[string][]struct {
		Protocol string `json:"protocol"`
		Port     int    `json:"port"`
	} `json:"listeners"`
	Versions map[string]any `json:"versions"`
}

func (m *member) status(t *testing.T) clusterStatus {
	t.Helper()
	out := m.ctl(t, "--formatter", "json", "cluster_status").ok(t)
	js := out.stdout[strings.Index(out.stdout, "{"):]
	var st clusterStatus
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatalf("cluster_status json: %v\n%s", err, out.stdout)
	}
	return st
}

func names(ms ...*member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.name)
	}
	slices.Sort(out)
	return out
}

// TestClusterLikeTheRunbooks joins three nodes as the runbooks do (one
// through a member that is not the first node, one as a RAM node) and
// checks that every definition is in force everywhere, that mistakes are
// refused with a reason, and that nodes leave and are forgotten.
func TestClusterLikeTheRunbooks(t *testing.T) {
	ms := newMembers(t, 3, "RUNBOOKCOOKIE")
	n1, n2, n3 := ms[0], ms[1], ms[2]
	for _, m := range ms {
		m.start(t)
		m.dial(t, "guest", "guest")
	}
	n2.join(t, n1)
	n3.join(t, n2, "--ram")

	st := n1.status(t)
	if !slices.Equal(st.DiskNodes, names(n1, n2)) || !slices.Equal(st.RAMNodes, names(n3)) || !slices.Equal(st.RunningNodes, names(n1, n2, n3)) {
		t.Fatalf("cluster_status: %+v", st)
	}
	if len(st.Listeners[n3.name]) == 0 || st.Versions[n2.name] == nil {
		t.Errorf("cluster_status lacks listeners or versions of other nodes: %+v", st)
	}
	text := n3.ctl(t, "cluster_status").ok(t).stdout
	for _, want := range []string{"Cluster status of node " + n3.name, "Disk Nodes\n\n" + strings.Join(names(n1, n2), "\n"), "RAM Nodes\n\n" + n3.name, "Running Nodes\n\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("cluster_status text lacks %q:\n%s", want, text)
		}
	}

	// Definitions made on any node are in force on every node.
	n2.ctl(t, "add_vhost", "hrsystem").ok(t)
	n3.ctl(t, "add_user", "hr", "secret").ok(t)
	n1.ctl(t, "set_permissions", "-p", "hrsystem", "hr", ".*", ".*", ".*").ok(t)
	n1.ctl(t, "set_cluster_name", "kevinmq").ok(t)
	if st := n3.status(t); st.ClusterName != "kevinmq" {
		t.Errorf("cluster name on n3: %q", st.ClusterName)
	}
	if out := n3.ctl(t, "list_vhosts").ok(t).stdout; !strings.Contains(out, "hrsystem") {
		t.Errorf("n3 lacks the vhost made on n2:\n%s", out)
	}
	c1, err := amqp091.Dial("amqp://hr:secret@" + n1.amqp + "/hrsystem")
	if err != nil {
		t.Fatalf("user made on n3 cannot log in on n1: %v", err)
	}
	defer c1.Close()
	ch3, err := n3.dial(t, "guest", "guest").Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch3.QueueDeclare("on-n3", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if out := n1.ctl(t, "export_definitions", "-").ok(t).stdout; !strings.Contains(out, `"on-n3"`) {
		t.Errorf("export on n1 lacks the queue declared on n3")
	}
	// A queue homed on n3 is served from n1 as well.
	ch1, err := n1.dial(t, "guest", "guest").Channel()
	if err != nil {
		t.Fatal(err)
	}
	if acked, nacked := confirmAll(t, ch1, "", "on-n3", "x", 1); acked != 1 || nacked != 0 {
		t.Errorf("publish from n1 to a queue on n3: %d acked, %d nacked", acked, nacked)
	}
	if q, err := ch1.QueueDeclarePassive("on-n3", true, false, false, false, nil); err != nil || q.Messages != 1 {
		t.Errorf("passive declare on n1: %+v %v", q, err)
	}

	// Mistakes are refused, saying why.
	n1.ctl(t, "join_cluster", n2.name).fails(t, 70, "stop it first")
	n1.ctl(t, "stop_app").ok(t)
	n1.ctl(t, "join_cluster", n1.name).fails(t, 65, "cannot cluster node with itself")
	n1.ctl(t, "join_cluster", "n9@no-such-host.invalid").fails(t, 69, "is not a known host name")
	n1.ctl(t, "start_app").ok(t)
	n1.ctl(t, "forget_cluster_node", n2.name).fails(t, 70, "stop_app")
	stranger := newMembers(t, 1, "OTHERCOOKIE")[0]
	stranger.start(t)
	stranger.dial(t, "guest", "guest")
	stranger.ctl(t, "stop_app").ok(t)
	stranger.ctl(t, "join_cluster", n1.name).fails(t, 69, "cookie is different")
	waitFor(t, func() bool {
		return strings.Contains(n1.stderr.String(), "connection attempt from node '"+stranger.name+"' rejected")
	})

	// reset leaves the cluster; forget_cluster_node removes a stopped node.
	n3.ctl(t, "stop_app").ok(t)
	n3.ctl(t, "reset").ok(t)
	n2.ctl(t, "stop_app").ok(t)
	// n1 is now one of two disc nodes, alone: once its leader lease has
	// run out it has no majority, and forgetting n2 still works.
	time.Sleep(2 * time.Second)
	n1.ctl(t, "forget_cluster_node", n2.name).ok(t)
	if !strings.Contains(n1.stderr.String(), "restarting the app with it removed") {
		t.Error("n1 did not say why it restarted its app")
	}
	ch1 = channel(t, n1.dial(t, "guest", "guest"))
	if _, err := ch1.QueueDeclare("after-forget", true, false, false, false, nil); err != nil {
		t.Errorf("n1 alone after forgetting n2: %v", err)
	}
	if st := n1.status(t); !slices.Equal(st.DiskNodes, names(n1)) || len(st.RAMNodes) != 0 {
		t.Errorf("after reset and forget: %+v", st)
	}
	// The last disc node cannot become a RAM node.
	n1.ctl(t, "stop_app").ok(t)
	n1.ctl(t, "change_cluster_node_type", "ram").fails(t, 70, "not clustered")
}

// TestClusterRestartsInAnyOrder stops three disc nodes and starts them
// in each of the six orders: the cluster serves as soon as two are up,
// with every definition, and the third catches up.
func TestClusterRestartsInAnyOrder(t *testing.T) {
	ms := newMembers(t, 3, "ORDERCOOKIE")
	for _, m := range ms {
		m.start(t)
		m.dial(t, "guest", "guest")
	}
	ms[1].join(t, ms[0])
	ms[2].join(t, ms[0])
	orders := [][3]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for round, order := range orders {
		for _, i := range order {
			ms[i].stop(t)
		}
		// The last to stop is the first to start only in some rounds.
		first, second, third := ms[order[0]], ms[order[1]], ms[order[2]]
		first.start(t)
		second.start(t)
		first.dial(t, "guest", "guest")
		second.dial(t, "guest", "guest")
		vhost := fmt.Sprintf("round%d", round)
		second.ctl(t, "add_vhost", vhost).ok(t)
		third.start(t)
		third.dial(t, "guest", "guest")
		out := third.ctl(t, "list_vhosts").ok(t).stdout
		for r := 0; r <= round; r++ {
			if !strings.Contains(out, fmt.Sprintf("round%d", r)) {
				t.Fatalf("round %d (order %v): %s lacks round%d's vhost:\n%s", round, order, third.name, r, out)
			}
		}
	}
	if st := ms[0].status(t); len(st.RunningNodes) != 3 || len(st.DiskNodes) != 3 {
		t.Errorf("after the restarts: %+v", st)
	}
}
