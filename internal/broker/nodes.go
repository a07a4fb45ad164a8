package broker

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/warren-mq/warren/internal/meta"
)

// NodeReport is one node's state, as operators see it in /api/nodes and
// cluster_status; a node that cannot be asked has only its name, type and
// Running false.
type NodeReport struct {
	Name       string
	RAM        bool
	Running    bool
	Started    time.Time
	OSPid      int
	Processors int
	Goroutines int
	GCNum      uint32
	Sockets    int
	FDs        int    // open file descriptors
	FDLimit    uint64 // the process's limit on them
	Resources  Resources
	// Unreachable lists the other members the node could not reach over
	// the cluster port when asked.
	Unreachable []string `json:",omitempty"`
	// Partitions lists the members the node cannot reach although
	// another running node can: it and they are partitioned. Only
	// ClusterReports fills it in.
	Partitions []string `json:",omitempty"`
}

// Report returns this node's state.
func (s *Server) Report() NodeReport {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.mu.Lock()
	sockets := len(s.conns)
	s.mu.Unlock()
	return NodeReport{Name: s.cfg.NodeName, RAM: s.cfg.RAM, Running: true, Started: s.started, OSPid: os.Getpid(),
		Processors: runtime.NumCPU(), Goroutines: runtime.NumGoroutine(), GCNum: ms.NumGC, Sockets: sockets,
		FDs: OpenFDs(), FDLimit: FDLimit(), Resources: s.Resources(),
		Unreachable: s.Unreachable()}
}

// OpenFDs counts the process's open file descriptors (0 if unknown).
func OpenFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(entries)
}

// FDLimit is the process's soft limit on open file descriptors (0 if
// unknown).
func FDLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return lim.Cur
}

// probeWait bounds how long Unreachable waits for a member to answer.
const probeWait = time.Second

// Unreachable lists the other members that this node has no working
// queue link to and cannot open one to within probeWait, sorted. A
// member whose link is up costs nothing to check; the links opened stay
// for later use.
func (s *Server) Unreachable() []string {
	if s.cfg.DialPeer == nil {
		return nil
	}
	others := s.otherMembers(s.meta)
	reached, ok := s.fanOut(others, probeWait, func(node string) bool {
		_, err := s.peerLink(node)
		return err == nil
	})
	if !ok {
		return nil
	}
	var out []string
	for _, node := range others {
		if !reached[node] {
			out = append(out, node)
		}
	}
	sort.Strings(out)
	return out
}

// otherMembers lists the members of the cluster but this node.
func (s *Server) otherMembers(defs *meta.Node) []string {
	var out []string
	for _, m := range defs.Members() {
		if m.ID != s.cfg.NodeName {
			out = append(out, m.ID)
		}
	}
	return out
}

// fanOut runs do for every node at once, on goroutines of the server's
// link work, and waits up to wait for them: it returns the nodes whose do
// returned true in time. ok is false, and nothing ran, when the server is
// closing. A do may outlive the wait; it ends when its link call does.
func (s *Server) fanOut(nodes []string, wait time.Duration, do func(node string) bool) (done map[string]bool, ok bool) {
	type result struct {
		node string
		ok   bool
	}
	// The buffer lets a late do finish without a reader.
	results := make(chan result, len(nodes))
	for _, node := range nodes {
		if !s.goLink(func() { results <- result{node, do(node)} }) {
			return nil, false
		}
	}
	done = map[string]bool{}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for range nodes {
		select {
		case r := <-results:
			if r.ok {
				done[r.node] = true
			}
		case <-timer.C:
			return done, true
		}
	}
	return done, true
}

// Partitions works out which running nodes are cut off from which, from
// what each says it cannot reach (unreachable, keyed by the nodes that
// answered): a member that some running node reaches is running, so a
// running node that cannot reach it is partitioned from it. A member
// that nobody reaches is down, not partitioned. The result has an entry
// only for nodes with partitions, as rabbitmqctl's cluster_status shows.
func Partitions(members []string, unreachable map[string][]string) map[string][]string {
	running := map[string]bool{}
	for node, cut := range unreachable {
		running[node] = true
		for _, m := range members {
			if m != node && !slices.Contains(cut, m) {
				running[m] = true
			}
		}
	}
	out := map[string][]string{}
	for node, cut := range unreachable {
		for _, m := range cut {
			if running[m] {
				out[node] = append(out[node], m)
			}
		}
	}
	return out
}

// ClusterReports returns the state of every member of the cluster, this
// node's included, sorted by name.
func (s *Server) ClusterReports() []NodeReport {
	var out []NodeReport
	for _, m := range s.meta.Members() {
		if m.ID == s.cfg.NodeName {
			out = append(out, s.Report())
			continue
		}
		r, err := s.remoteReport(m.ID)
		if err != nil {
			r = NodeReport{Name: m.ID}
		}
		r.RAM = !m.Voter
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	names := make([]string, len(out))
	cut := map[string][]string{}
	for i, r := range out {
		names[i] = r.Name
		if r.Running {
			cut[r.Name] = r.Unreachable
		}
	}
	parts := Partitions(names, cut)
	for i := range out {
		out[i].Partitions = parts[out[i].Name]
	}
	return out
}

// remoteReport asks another node for its state.
func (s *Server) remoteReport(node string) (NodeReport, error) {
	link, err := s.peerLink(node)
	if err != nil {
		return NodeReport{}, err
	}
	r, err := link.call(opNode, func(*frameWriter) {})
	if err != nil {
		return NodeReport{}, err
	}
	if err := r.error(); err != nil {
		return NodeReport{}, err
	}
	var rep NodeReport
	if err := json.Unmarshal(r.r.bytes(), &rep); err != nil {
		return NodeReport{}, fmt.Errorf("state of node %s: %w", node, err)
	}
	return rep, r.r.err
}

// QuorumCritical reports whether stopping this node would leave the disc
// nodes without a majority, and which disc nodes are down: RabbitMQ's
// node-is-quorum-critical health check, for the definitions' Raft group.
func (s *Server) QuorumCritical() (critical bool, down []string) {
	voters, up, selfVoter := 0, 0, false
	for _, r := range s.ClusterReports() {
		if r.RAM {
			continue
		}
		voters++
		switch {
		case r.Name == s.cfg.NodeName:
			selfVoter = true
			up++
		case r.Running:
			up++
		default:
			down = append(down, r.Name)
		}
	}
	if !selfVoter || voters < 2 {
		return false, down
	}
	return 2*(up-1) <= voters, down
}

// watchClusterAlarms asks the other nodes for their resource alarms every
// interval until stop closes: while any has one on, publishers here are
// blocked too, as in a RabbitMQ cluster.
func (s *Server) watchClusterAlarms(stop <-chan struct{}, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		var why []string
		reason := ""
		for _, m := range s.meta.Members() {
			if m.ID == s.cfg.NodeName {
				continue
			}
			r, err := s.remoteReport(m.ID)
			if err != nil {
				continue
			}
			if r.Resources.MemAlarm {
				why, reason = append(why, m.ID+" memory"), "low on memory"
			}
			if r.Resources.DiskAlarm {
				why = append(why, m.ID+" disk")
				if reason == "" {
					reason = "low on disk"
				}
			}
		}
		a := s.alarms
		a.mu.Lock()
		a.remoteWhy = reason
		changed := a.set(&a.remoteOn, len(why) > 0)
		a.mu.Unlock()
		if changed && len(why) > 0 {
			s.log.Warn("alarm on another node: publishers are blocked", "alarms", strings.Join(why, ", "))
		} else if changed {
			s.log.Info("alarms on other nodes cleared")
		}
	}
}
