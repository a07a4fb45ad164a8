package chaos

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Warren is a warren cluster on a lab: one node on each host, named
// warren@nodeN, with the ports a runbook uses, clustered through
// classic_config peer discovery with pause_minority, as the examples
// configure it.
type Warren struct {
	lab         *Lab
	bin, ctl    string
	dir, cookie string
	config      string
	procs       *procs
	mu          sync.Mutex // guards logs and dataDirs
	logs        []*logBuffer
	dataDirs    []string
}

// logBuffer is a process's stderr, read while the process writes it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// NewWarren prepares a cluster of the binaries bin (warren) and ctl
// (warrenctl) on lab, with its files under dir.
func NewWarren(lab *Lab, bin, ctl, dir string) (*Warren, error) {
	w := &Warren{lab: lab, bin: bin, ctl: ctl, dir: dir, cookie: filepath.Join(dir, "cookie"), config: filepath.Join(dir, "warren.conf"),
		logs: make([]*logBuffer, len(lab.Hosts)), dataDirs: make([]string, len(lab.Hosts))}
	w.procs = newProcs(len(lab.Hosts), w.Node)
	if err := os.WriteFile(w.cookie, []byte("CHAOSCOOKIE"), 0o400); err != nil {
		return nil, err
	}
	var conf strings.Builder
	conf.WriteString("cluster_formation.peer_discovery_backend = classic_config\n")
	for i, h := range lab.Hosts {
		fmt.Fprintf(&conf, "cluster_formation.classic_config.nodes.%d = warren@%s\n", i+1, h.Name)
	}
	conf.WriteString("cluster_partition_handling = pause_minority\n")
	if err := os.WriteFile(w.config, []byte(conf.String()), 0o644); err != nil {
		return nil, err
	}
	return w, nil
}

// PlaceData puts host i's data directory at dir from its next start on;
// by default it is under the cluster's directory.
func (w *Warren) PlaceData(i int, dir string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dataDirs[i] = dir
}

// Node is the name of host i's node.
func (w *Warren) Node(i int) string { return "warren@" + w.lab.Hosts[i].Name }

// Start starts host i's node; it does not wait for it to serve.
func (w *Warren) Start(i int) error {
	if w.procs.running(i) {
		return nil
	}
	h := w.lab.Hosts[i]
	log := &logBuffer{}
	w.mu.Lock()
	if old := w.logs[i]; old != nil {
		log.b.WriteString(old.String())
	}
	w.logs[i] = log
	data := w.dataDirs[i]
	w.mu.Unlock()
	if data == "" {
		data = filepath.Join(w.dir, h.Name)
	}
	cmd := h.Command(w.bin, "--node-name", w.Node(i), "--data-dir", data, "--cookie-file", w.cookie, "--config", w.config)
	cmd.Stderr = log
	// Every goroutine's stack, should the test end the node with
	// SIGQUIT to see where it is stuck.
	cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	return w.procs.start(i, cmd, nil)
}

// Kill kills host i's node with SIGKILL.
func (w *Warren) Kill(i int) { w.procs.kill(i) }

// DumpStacks ends host i's node with SIGQUIT: its log then ends with
// every goroutine's stack.
func (w *Warren) DumpStacks(i int) { w.procs.quit(i) }

// Running reports whether host i's node has a process.
func (w *Warren) Running(i int) bool { return w.procs.running(i) }

// Freeze stops host i's node with SIGSTOP (true) or lets it go on with
// SIGCONT.
func (w *Warren) Freeze(i int, on bool) error { return w.procs.freeze(i, on) }

// Log returns what host i's node has written to stderr.
func (w *Warren) Log(i int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.logs[i] == nil {
		return ""
	}
	return w.logs[i].String()
}

// Close kills every node.
func (w *Warren) Close() { w.procs.close() }

// Ctl runs warrenctl on host i against its own node and returns what it
// printed; a non-zero exit is an error carrying the output.
func (w *Warren) Ctl(i int, args ...string) (string, error) {
	h := w.lab.Hosts[i]
	cmd := h.Command(w.ctl, append([]string{"-n", w.Node(i), "--cookie-file", w.cookie}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("warrenctl %s on %s: %v: %s%s", strings.Join(args, " "), h.Name, err, out.String(), errb.String())
	}
	return out.String(), nil
}

// Await waits until host i's node serves and sees every node of the
// cluster running.
func (w *Warren) Await(i int, timeout time.Duration) error {
	return awaitFull(w.Node(i), len(w.lab.Hosts), timeout, func() (string, error) {
		return w.Ctl(i, "-q", "cluster_status", "--formatter", "json")
	}, nil)
}

// awaitFull asks status (cluster_status in JSON) until it shows n nodes
// running and ready (if not nil) answers, or timeout passes.
func awaitFull(node string, n int, timeout time.Duration, status func() (string, error), ready func() error) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		var out string
		out, err = status()
		if err == nil {
			var st struct {
				Running []string `json:"running_nodes"`
			}
			if err = json.Unmarshal([]byte(out), &st); err == nil {
				if len(st.Running) == n {
					if ready == nil {
						return nil
					}
					if err = ready(); err == nil {
						return nil
					}
				} else {
					err = fmt.Errorf("running nodes: %v", st.Running)
				}
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("%s not back in a full cluster within %v: %w", node, timeout, err)
}

// errNoLeader: no live node could say where the queue is led.
var errNoLeader = errors.New("no node could name the queue's leader")

// Leader returns the index of the host whose node leads queue, as the
// first live node that answers says.
func (w *Warren) Leader(queue string) (int, error) {
	return leaderFrom(queue, len(w.lab.Hosts), w.Running, w.Node, func(i int) (string, error) {
		return w.Ctl(i, "-q", "list_queues", "--formatter", "json", "name", "pid")
	})
}

// leaderFrom asks the running nodes in turn for list_queues name pid in
// JSON until one names the node of queue's pid, and returns its host.
func leaderFrom(queue string, n int, running func(int) bool, node func(int) string, list func(int) (string, error)) (int, error) {
	for i := range n {
		if !running(i) {
			continue
		}
		out, err := list(i)
		if err != nil {
			continue
		}
		var rows []struct{ Name, Pid string }
		if json.Unmarshal([]byte(out), &rows) != nil {
			continue
		}
		for _, r := range rows {
			if r.Name != queue {
				continue
			}
			for j := range n {
				if strings.Contains(r.Pid, "<"+node(j)+".") {
					return j, nil
				}
			}
		}
	}
	return 0, errNoLeader
}

// Cluster is the brokers under test, one node on each host of a lab:
// what the nemesis and the test do to them.
type Cluster interface {
	// Node is host i's node name.
	Node(i int) string
	// Start starts host i's node without waiting for it; Kill ends it
	// with SIGKILL; Running reports whether it has a process.
	Start(i int) error
	Kill(i int)
	Running(i int) bool
	// Freeze stops host i's node with SIGSTOP, or lets it go on.
	Freeze(i int, on bool) error
	// Await waits until host i's node serves in a full cluster; Ready
	// reports whether it answers its CLI at all.
	Await(i int, timeout time.Duration) error
	Ready(i int) bool
	// Leader is the host whose node leads queue.
	Leader(queue string) (int, error)
	// SetPolicy sets a queue policy through host 0's node.
	SetPolicy(name, pattern, definition string) error
	// Synced reports whether every mirror of every queue is in sync.
	Synced() bool
	// Depths is the number of messages of each queue, as host i's node
	// reports them.
	Depths(i int) (map[string]int, error)
	// Drain and Revive put host i's node into maintenance and out.
	Drain(i int) error
	Revive(i int) error
	// Log is what host i's node has logged.
	Log(i int) string
	Close()
}

// Ready implements Cluster.
func (w *Warren) Ready(i int) bool {
	_, err := w.Ctl(i, "status")
	return err == nil
}

// SetPolicy implements Cluster.
func (w *Warren) SetPolicy(name, pattern, definition string) error {
	_, err := w.Ctl(0, "set_policy", name, pattern, definition)
	return err
}

// Synced implements Cluster.
func (w *Warren) Synced() bool {
	out, err := w.Ctl(0, "-q", "list_queues", "--formatter", "json", "name", "slave_pids", "synchronised_slave_pids")
	return err == nil && allSynced(out)
}

// allSynced reads list_queues name slave_pids synchronised_slave_pids in
// JSON: every queue with mirrors has all of them in sync, and some queue
// has mirrors.
func allSynced(js string) bool {
	var rows []struct {
		Slaves any `json:"slave_pids"`
		Synced any `json:"synchronised_slave_pids"`
	}
	if json.Unmarshal([]byte(js), &rows) != nil {
		return false
	}
	mirrored := 0
	for _, r := range rows {
		s, _ := r.Slaves.([]any)
		y, _ := r.Synced.([]any)
		if len(s) != len(y) {
			return false
		}
		if len(s) > 0 {
			mirrored++
		}
	}
	return mirrored > 0
}

// Depths implements Cluster.
func (w *Warren) Depths(i int) (map[string]int, error) {
	out, err := w.Ctl(i, "-q", "list_queues", "--no-table-headers", "name", "messages")
	if err != nil {
		return nil, err
	}
	return parseDepths(out), nil
}

// parseDepths reads list_queues name messages without headers.
func parseDepths(out string) map[string]int {
	d := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		var n int
		fmt.Sscan(f[1], &n)
		d[f[0]] = n
	}
	return d
}

// Drain implements Cluster.
func (w *Warren) Drain(i int) error {
	_, err := w.Ctl(i, "drain")
	return err
}

// Revive implements Cluster.
func (w *Warren) Revive(i int) error {
	_, err := w.Ctl(i, "revive")
	return err
}
