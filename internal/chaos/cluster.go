package chaos

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Warren is a warren cluster on a lab: one node on each host, named
// warren@nodeN, with the ports a runbook uses, clustered through
// classic_config peer discovery with pause_minority, as the examples
// configure it.
type Warren struct {
	lab          *Lab
	bin, ctl     string
	dir, cookie  string
	config       string
	mu           sync.Mutex
	procs        []*exec.Cmd
	logs         []*logBuffer
	pausedByTest []bool
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
		procs: make([]*exec.Cmd, len(lab.Hosts)), logs: make([]*logBuffer, len(lab.Hosts)), pausedByTest: make([]bool, len(lab.Hosts))}
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

// Node is the name of host i's node.
func (w *Warren) Node(i int) string { return "warren@" + w.lab.Hosts[i].Name }

// Start starts host i's node; it does not wait for it to serve.
func (w *Warren) Start(i int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.procs[i] != nil {
		return nil
	}
	h := w.lab.Hosts[i]
	log := &logBuffer{}
	if old := w.logs[i]; old != nil {
		log.b.WriteString(old.String())
	}
	cmd := h.Command(w.bin, "--node-name", w.Node(i), "--data-dir", filepath.Join(w.dir, h.Name), "--cookie-file", w.cookie, "--config", w.config)
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", w.Node(i), err)
	}
	w.procs[i], w.logs[i], w.pausedByTest[i] = cmd, log, false
	return nil
}

// Kill kills host i's node with SIGKILL.
func (w *Warren) Kill(i int) {
	w.mu.Lock()
	cmd := w.procs[i]
	w.procs[i] = nil
	w.mu.Unlock()
	if cmd != nil {
		cmd.Process.Kill()
		cmd.Wait()
	}
}

// Running reports whether host i's node has a process.
func (w *Warren) Running(i int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.procs[i] != nil
}

// Freeze stops host i's node with SIGSTOP (true) or lets it go on with
// SIGCONT.
func (w *Warren) Freeze(i int, on bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	cmd := w.procs[i]
	if cmd == nil {
		return fmt.Errorf("%s is not running", w.Node(i))
	}
	sig := syscall.SIGCONT
	if on {
		sig = syscall.SIGSTOP
	}
	w.pausedByTest[i] = on
	return cmd.Process.Signal(sig)
}

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
func (w *Warren) Close() {
	for i := range w.procs {
		w.mu.Lock()
		paused := w.pausedByTest[i]
		w.mu.Unlock()
		if paused {
			w.Freeze(i, false)
		}
		w.Kill(i)
	}
}

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
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		var out string
		out, err = w.Ctl(i, "-q", "cluster_status", "--formatter", "json")
		if err == nil {
			var st struct {
				Running []string `json:"running_nodes"`
			}
			if err = json.Unmarshal([]byte(out), &st); err == nil {
				if len(st.Running) == len(w.lab.Hosts) {
					return nil
				}
				err = fmt.Errorf("running nodes: %v", st.Running)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("%s not back in a full cluster within %v: %w", w.Node(i), timeout, err)
}

// errNoLeader: no live node could say where the queue is led.
var errNoLeader = errors.New("no node could name the queue's leader")

// Leader returns the index of the host whose node leads queue, as the
// first live node that answers says.
func (w *Warren) Leader(queue string) (int, error) {
	for i := range w.lab.Hosts {
		if !w.Running(i) {
			continue
		}
		out, err := w.Ctl(i, "-q", "list_queues", "--formatter", "json", "name", "pid")
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
			for j := range w.lab.Hosts {
				if strings.HasPrefix(r.Pid, "<"+w.Node(j)+".") {
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
