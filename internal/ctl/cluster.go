package ctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/cluster"
)

// Member is a node of the cluster as cluster commands show it.
type Member struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
	Disc bool   `json:"disc"`
}

// Clustered is what cluster commands need from a node, whether its app
// runs or not.
type Clustered interface {
	// Members returns the cluster's nodes, this one included.
	Members() []Member
	// Identity is how the node introduces itself to other nodes: its
	// cookie, name and TLS client settings.
	Identity() cluster.Identity
	JoinCluster(ctx context.Context, target string, ram bool) error
	// Leave is reset: the other members forget this node (unless force)
	// and its data is deleted.
	Leave(ctx context.Context, force bool) error
	ForgetNode(ctx context.Context, name string, offline bool) error
	ChangeNodeType(ctx context.Context, ram bool) error
	UpdateClusterNodes(ctx context.Context, from string) error
	ForceBoot(ctx context.Context) ([]string, error)
}

// nodeStatus is what one node says of itself to another's cluster_status.
type nodeStatus struct {
	Name      string     `json:"name"`
	Running   bool       `json:"running"`
	Version   string     `json:"version"`
	Listeners []Listener `json:"listeners"`
	Alarms    []string   `json:"alarms,omitempty"`
	// Unreachable lists the members the node cannot reach.
	Unreachable []string `json:"unreachable,omitempty"`
	// Draining: the node is in maintenance mode.
	Draining bool `json:"draining,omitempty"`
}

// maintenanceStatus is a node's maintenance status as cluster_status
// words it.
func maintenanceStatus(draining bool) string {
	if draining {
		return "under maintenance"
	}
	return "not under maintenance"
}

func (s *Server) localStatus() nodeStatus {
	info := s.app.Info()
	st := nodeStatus{Name: info.Name, Version: info.Version, Listeners: info.Listeners}
	if b := s.app.Broker(); b != nil {
		st.Running = true
		st.Draining = b.Draining()
		res := b.Resources()
		if res.MemAlarm {
			st.Alarms = append(st.Alarms, "memory")
		}
		if res.DiskAlarm {
			st.Alarms = append(st.Alarms, "disk")
		}
		st.Unreachable = b.Unreachable()
	}
	return st
}

func runNodeStatus(ctx context.Context, s *Server, _ Broker, r *Request, c *command) Response {
	return Response{JSON: s.localStatus()}
}

func runClusterMembers(ctx context.Context, s *Server, _ Broker, r *Request, c *command) Response {
	return Response{JSON: s.app.Members()}
}

// statuses asks every member how it is, at once, each within two
// seconds: a node takes up to one to find which members it cannot reach.
func (s *Server) statuses(ctx context.Context, members []Member) map[string]nodeStatus {
	self := s.app.Info().Name
	out := map[string]nodeStatus{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range members {
		if m.Name == self {
			st := s.localStatus()
			mu.Lock()
			out[self] = st
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			var resp struct {
				JSON nodeStatus `json:"json"`
			}
			err := s.app.Identity().Call(cctx, m.Addr, cluster.ServiceCtl, &Request{Command: "node_status"}, &resp)
			if err != nil {
				return
			}
			mu.Lock()
			out[m.Name] = resp.JSON
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func runClusterStatus(ctx context.Context, s *Server, _ Broker, r *Request, c *command) Response {
	info := s.app.Info()
	members := s.app.Members()
	clusterName := info.Name
	if b := s.app.Broker(); b != nil {
		clusterName = b.ClusterName()
	}
	st := s.statuses(ctx, members)
	var disc, ram, running []string
	for _, m := range members {
		if m.Disc {
			disc = append(disc, m.Name)
		} else {
			ram = append(ram, m.Name)
		}
		if st[m.Name].Running {
			running = append(running, m.Name)
		}
	}
	lines := func(xs []string) string {
		if len(xs) == 0 {
			return "(none)"
		}
		return strings.Join(xs, "\n")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Basics\n\nCluster name: %s\n\nDisk Nodes\n\n%s\n\n", clusterName, lines(disc))
	if len(ram) > 0 {
		fmt.Fprintf(&b, "RAM Nodes\n\n%s\n\n", lines(ram))
	}
	fmt.Fprintf(&b, "Running Nodes\n\n%s\n\nVersions\n\n", lines(running))
	versions := map[string]any{}
	maintenance := map[string]string{}
	listeners := map[string][]map[string]any{}
	var alarms []string
	var alarmsJSON []map[string]any
	for _, n := range running {
		ns := st[n]
		fmt.Fprintf(&b, "%s: warren %s\n", n, ns.Version)
		versions[n] = map[string]string{"rabbitmq_version": ns.Version, "erlang_version": "none (warren is written in Go)"}
		maintenance[n] = maintenanceStatus(ns.Draining)
		for _, a := range ns.Alarms {
			alarms = append(alarms, fmt.Sprintf("Node %s reported an alarm: %s", n, a))
			alarmsJSON = append(alarmsJSON, map[string]any{"node": n, "resource": a, "type": "resource_alarm"})
		}
		for _, l := range ns.Listeners {
			host, port := splitListen(l.Addr)
			listeners[n] = append(listeners[n], map[string]any{"node": n, "interface": host, "port": port, "protocol": l.Protocol, "purpose": purpose(l.Protocol)})
		}
	}
	b.WriteString("\nMaintenance status\n\n")
	for _, n := range running {
		fmt.Fprintf(&b, "Node: %s, status: %s\n", n, maintenanceStatus(st[n].Draining))
	}
	names := make([]string, len(members))
	cut := map[string][]string{}
	for i, m := range members {
		names[i] = m.Name
		if st[m.Name].Running {
			cut[m.Name] = st[m.Name].Unreachable
		}
	}
	parts := broker.Partitions(names, cut)
	var partLines []string
	partsJSON := map[string]any{}
	for _, n := range running {
		if p := parts[n]; len(p) > 0 {
			partLines = append(partLines, fmt.Sprintf("Node %s cannot communicate with %s", n, strings.Join(p, ", ")))
			partsJSON[n] = p
		}
	}
	fmt.Fprintf(&b, "\nAlarms\n\n%s\n\nNetwork Partitions\n\n%s\n\nListeners\n\n", lines(alarms), lines(partLines))
	for _, n := range running {
		for _, l := range listeners[n] {
			fmt.Fprintf(&b, "Node: %s, interface: %s, port: %d, protocol: %s, purpose: %s\n", n, l["interface"], l["port"], l["protocol"], l["purpose"])
		}
	}
	b.WriteString("\nFeature flags\n\n")
	for _, f := range featureFlags {
		fmt.Fprintf(&b, "Flag: %s, state: enabled\n", f)
	}
	ff := make([]map[string]string, 0, len(featureFlags))
	for _, f := range featureFlags {
		ff = append(ff, map[string]string{"name": f, "state": "enabled"})
	}
	if disc == nil {
		disc = []string{}
	}
	if ram == nil {
		ram = []string{}
	}
	if running == nil {
		running = []string{}
	}
	if alarmsJSON == nil {
		alarmsJSON = []map[string]any{}
	}
	return Response{Text: strings.TrimRight(b.String(), "\n"), JSON: map[string]any{
		"cluster_name": clusterName, "disk_nodes": disc, "ram_nodes": ram, "running_nodes": running,
		"versions": versions, "maintenance_status": maintenance, "alarms": alarmsJSON,
		"partitions": partsJSON, "listeners": listeners, "feature_flags": ff,
	}}
}

// featureFlags are the RabbitMQ 3.10 feature flags whose behaviour warren
// has from the start.
var featureFlags = []string{"drop_unroutable_metric", "empty_basic_get_metric", "implicit_default_bindings", "maintenance_mode_status", "user_limits", "virtual_host_metadata"}

func splitListen(addr string) (string, int) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return addr, 0
	}
	port, _ := strconv.Atoi(addr[i+1:])
	host := strings.Trim(addr[:i], "[]")
	if host == "" || host == "::" {
		host = "[::]"
	}
	return host, port
}

func purpose(protocol string) string {
	switch {
	case protocol == "amqp/ssl":
		return "AMQP 0-9-1 and AMQP 1.0 over TLS"
	case strings.HasPrefix(protocol, "amqp"):
		return "AMQP 0-9-1 and AMQP 1.0"
	case protocol == "http":
		return "HTTP API"
	case strings.Contains(protocol, "prometheus"):
		return "Prometheus exporter API over HTTP"
	case strings.HasPrefix(protocol, "clustering"):
		return "inter-node and CLI tool communication"
	}
	return protocol
}

// clusterFail turns a cluster command's error into rabbitmqctl's answer.
func clusterFail(err error) Response {
	if ce, ok := err.(interface{ ExitCode() int }); ok {
		return failf(ce.ExitCode(), "%v", err)
	}
	return failf(ExitSoftware, "%v", err)
}

// ClusterError is a cluster command's refusal with the exit code
// rabbitmqctl gives it.
type ClusterError struct {
	Code int
	Msg  string
}

func (e *ClusterError) Error() string { return e.Msg }

// ExitCode is the exit code warrenctl ends with.
func (e *ClusterError) ExitCode() int { return e.Code }

// Refuse makes a ClusterError.
func Refuse(code int, format string, a ...any) error {
	return &ClusterError{Code: code, Msg: fmt.Sprintf(format, a...)}
}

func runJoinCluster(ctx context.Context, s *Server, _ Broker, r *Request, c *command) Response {
	_, ram := r.Options["ram"]
	if err := s.app.JoinCluster(ctx, r.Args[0], ram); err != nil {
		return clusterFail(err)
	}
	return ok("")
}

func runReset(force bool) func(ctx context.Context, s *Server, _ Broker, r *Request, c *command) Response {
	return func(ctx context.Context, s *Server, _ Broker, r *Request, c *command) Response {
		if err := s.app.Leave(ctx, force); err != nil {
			return clusterFail(err)
		}
		return ok("")
	}
}

func runForgetClusterNode(ctx context.Context, s *Server, _ Broker, r *Request, c *command) Response {
	_, offline := r.Options["offline"]
	if err := s.app.ForgetNode(ctx, r.Args[0], offline); err != nil {
		return clusterFail(err)
	}
	return ok("")
}

func runChangeNodeType(ctx context.Context, s *Server, _ Broker, r *Request, c *command) Response {
	var ram bool
	switch r.Args[0] {
	case "ram":
		ram = true
	case "disc", "disk":
	default:
		return failf(ExitUsage, "node type must be one of: disc, ram")
	}
	if err := s.app.ChangeNodeType(ctx, ram); err != nil {
		return clusterFail(err)
	}
	return ok("")
}

func runUpdateClusterNodes(ctx context.Context, s *Server, _ Broker, r *Request, c *command) Response {
	if err := s.app.UpdateClusterNodes(ctx, r.Args[0]); err != nil {
		return clusterFail(err)
	}
	return ok("")
}

func runForceBoot(ctx context.Context, s *Server, _ Broker, r *Request, c *command) Response {
	kept, err := s.app.ForceBoot(ctx)
	if err != nil {
		return clusterFail(err)
	}
	return ok(fmt.Sprintf("Warning: the next start of this node forms a cluster of %s only. Changes to definitions that only the other disc nodes had committed are lost; bring those nodes back with \"warrenctl reset\" and \"join_cluster\".", strings.Join(kept, ", ")))
}

func runAwaitOnlineNodes(ctx context.Context, s *Server, _ Broker, r *Request, c *command) Response {
	want, err := strconv.Atoi(r.Args[0])
	if err != nil || want < 1 {
		return failf(ExitUsage, "the node count must be a positive integer, got %q", r.Args[0])
	}
	timeout, bad := waitTimeout(r)
	if bad != nil {
		return *bad
	}
	deadline := time.Now().Add(timeout)
	for {
		running := 0
		for _, st := range s.statuses(ctx, s.app.Members()) {
			if st.Running {
				running++
			}
		}
		if running >= want {
			return ok("")
		}
		if time.Now().After(deadline) {
			return failf(ExitTempFail, "only %d of the %d nodes expected came online within %s", running, want, timeout)
		}
		select {
		case <-ctx.Done():
			return failf(ExitTempFail, "%v", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
