package lab

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Ctl runs warrenctl (rabbitmqctl in the reference) on host h against
// its own node and returns what it printed.
func (l *Lab) Ctl(ctx context.Context, h string, args ...string) (string, error) {
	full := []string{"netns", "exec", l.ns(h), filepath.Join(l.Bin, "warrenctl"), "-n", l.NodeName(h), "--cookie-file", filepath.Join(l.Dir, "cookie")}
	if l.Reference {
		full = append(append(append([]string{"netns", "exec", l.ns(h), "env"}, l.rabbitEnv(h)...), "timeout", "60"),
			filepath.Join(RabbitBin, "rabbitmqctl"), "-n", l.NodeName(h))
	}
	cmd := exec.CommandContext(ctx, "ip", append(full, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("warrenctl %s on %s: %v: %s", strings.Join(args, " "), h, err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// settle waits for the three nodes to be clustered and running and for
// one balancer host to hold the virtual IP, then adds the lab's user.
func (l *Lab) settle(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var last error
	for {
		last = l.clustered(ctx)
		if last == nil && len(l.vipHolders()) > 0 {
			break
		}
		if last == nil {
			last = fmt.Errorf("no balancer host holds the virtual IP %s", VIP)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the stack did not come up in 90 s: %w", last)
		case <-time.After(500 * time.Millisecond):
		}
	}
	// The balancers take a node in once its checks pass (rise 2, every
	// 5 s): until then clients would find fewer nodes, or none.
	for {
		err := l.balancersSeeAll(ctx)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the balancers do not see every node up: %w", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	if l.Reference {
		// A running RabbitMQ node may still be booting.
		if _, err := l.Ctl(ctx, "node1", "await_startup"); err != nil {
			return err
		}
	}
	steps := [][]string{
		{"add_user", User, Password},
		{"set_user_tags", User, "administrator"},
		{"set_permissions", "-p", "/", User, ".*", ".*", ".*"},
	}
	if l.Reference {
		pols, err := l.examplePolicies()
		if err != nil {
			return err
		}
		steps = append(steps, pols...)
	}
	for _, args := range steps {
		if _, err := l.Ctl(ctx, "node1", args...); err != nil {
			return err
		}
	}
	return nil
}

// balancersSeeAll reads the stats CSV of the balancer holding the
// virtual IP, from the client host, and reports which AMQP server it
// does not see UP, or nil.
func (l *Lab) balancersSeeAll(ctx context.Context) error {
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) { return l.DialClient(network, addr) },
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+VIP+":8100/stats;csv", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rows, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil {
		return fmt.Errorf("stats CSV: %w", err)
	}
	up := 0
	for _, r := range rows {
		if len(r) > 17 && r[0] == "amqp" && strings.HasPrefix(r[1], "node") {
			if r[17] != "UP" {
				return fmt.Errorf("%s is %s", r[1], r[17])
			}
			up++
		}
	}
	if up != 3 {
		return fmt.Errorf("the stats page lists %d AMQP servers", up)
	}
	return nil
}

// examplePolicies are the set_policy commands for the policies of the
// examples' definitions.json.
func (l *Lab) examplePolicies() ([][]string, error) {
	b, err := os.ReadFile(filepath.Join(l.Examples, "definitions.json"))
	if err != nil {
		return nil, err
	}
	var defs struct {
		Policies []struct {
			VHost      string          `json:"vhost"`
			Name       string          `json:"name"`
			Pattern    string          `json:"pattern"`
			ApplyTo    string          `json:"apply-to"`
			Definition json.RawMessage `json:"definition"`
			Priority   int             `json:"priority"`
		} `json:"policies"`
	}
	if err := json.Unmarshal(b, &defs); err != nil {
		return nil, fmt.Errorf("definitions.json: %w", err)
	}
	var out [][]string
	for _, p := range defs.Policies {
		out = append(out, []string{"set_policy", "-p", p.VHost, "--apply-to", p.ApplyTo, "--priority", fmt.Sprint(p.Priority),
			p.Name, p.Pattern, string(p.Definition)})
	}
	return out, nil
}

// clusterStatus is the part of warrenctl cluster_status --formatter json
// the lab reads.
type clusterStatus struct {
	Disk    []string          `json:"disk_nodes"`
	Running []string          `json:"running_nodes"`
	Maint   map[string]string `json:"maintenance_status"`
}

// answering are the broker hosts whose node runs and is not cut off:
// those a question about the cluster can go to.
func (l *Lab) answering() []Host {
	var out []Host
	for _, h := range Hosts() {
		if h.Role != Broker || l.cut(h.Name) {
			continue
		}
		if _, state := l.proc(h.Name, l.BrokerProgram()); state == "running" {
			out = append(out, h)
		}
	}
	return out
}

// plug puts host h's cable into the switch (in) or pulls it out.
func (l *Lab) plug(h string, in bool) error {
	state := "down"
	if in {
		state = "up"
	}
	return ip("-n", l.sw(), "link", "set", l.port(h), state)
}

// status asks the first running node for the cluster's status.
func (l *Lab) status(ctx context.Context) (clusterStatus, string, error) {
	var st clusterStatus
	for _, h := range l.answering() {
		out, err := l.Ctl(ctx, h.Name, "-q", "cluster_status", "--formatter", "json")
		if err != nil {
			continue
		}
		if i := strings.IndexByte(out, '{'); i >= 0 {
			out = out[i:]
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return st, h.Name, fmt.Errorf("cluster_status on %s: %w", h.Name, err)
		}
		return st, h.Name, nil
	}
	return st, "", fmt.Errorf("no node answers")
}

// clustered reports why the three nodes are not all running together,
// or nil.
func (l *Lab) clustered(ctx context.Context) error {
	st, _, err := l.status(ctx)
	if err != nil {
		return err
	}
	if len(st.Running) < 3 {
		return fmt.Errorf("nodes running: %s", strings.Join(st.Running, ", "))
	}
	return nil
}

// vipHolders are the balancer hosts that have the virtual IP on their
// eth0: one, unless a partition split them.
func (l *Lab) vipHolders() []string {
	var out []string
	for _, h := range Hosts() {
		if h.Role == Balancer && l.holdsVIP(h.Name) {
			out = append(out, h.Name)
		}
	}
	return out
}

// holdsVIP reports whether host h has the virtual IP on its eth0.
func (l *Lab) holdsVIP(h string) bool {
	out, err := exec.Command("ip", "-n", l.ns(h), "-o", "addr", "show", "dev", "eth0").Output()
	return err == nil && strings.Contains(string(out), " "+VIP+"/")
}

// cut reports whether host h's cable is out of the switch.
func (l *Lab) cut(h string) bool {
	out, err := exec.Command("ip", "-n", l.sw(), "-o", "link", "show", l.port(h)).Output()
	return err == nil && !strings.Contains(string(out), "state UP") && !strings.Contains(string(out), ",UP")
}

// port is host h's end of its cable in the switch.
func (l *Lab) port(h string) string {
	for i, x := range Hosts() {
		if x.Name == h {
			return fmt.Sprintf("v%d", i+1)
		}
	}
	return ""
}

// Status prints every host's programs and cable, who holds the virtual
// IP, the cluster's view of its nodes, and where each mirrored queue's
// leader and in-sync mirrors are.
func (l *Lab) Status(ctx context.Context) error {
	if !l.Exists() {
		return fmt.Errorf("no lab is up in %s (warren-lab up starts one)", l.Dir)
	}
	vip := l.vipHolders()
	fmt.Fprintf(l.Out, "%-7s %-14s %-6s %s\n", "HOST", "ADDRESS", "CABLE", "PROGRAMS")
	for _, h := range Hosts() {
		cable := "in"
		if l.cut(h.Name) {
			cable = "out"
		}
		var progs []string
		for _, p := range l.Programs(h) {
			pid, state := l.proc(h.Name, p)
			if state == "dead" {
				progs = append(progs, p+" dead")
			} else {
				progs = append(progs, fmt.Sprintf("%s %s (pid %d)", p, state, pid))
			}
		}
		if slices.Contains(vip, h.Name) {
			progs = append(progs, "holds the virtual IP "+VIP)
		}
		fmt.Fprintf(l.Out, "%-7s %-14s %-6s %s\n", h.Name, h.Addr, cable, strings.Join(progs, ", "))
	}
	if len(vip) == 0 {
		fmt.Fprintf(l.Out, "\nno host holds the virtual IP %s\n", VIP)
	}
	st, from, err := l.status(ctx)
	if err != nil {
		fmt.Fprintf(l.Out, "\ncluster: %v\n", err)
		return nil
	}
	fmt.Fprintf(l.Out, "\ncluster, as %s sees it: members %s; running %s", from, strings.Join(st.Disk, ", "), strings.Join(st.Running, ", "))
	var drained []string
	for n, m := range st.Maint {
		if m == "under maintenance" {
			drained = append(drained, n)
		}
	}
	if len(drained) > 0 {
		slices.Sort(drained)
		fmt.Fprintf(l.Out, "; under maintenance %s", strings.Join(drained, ", "))
	}
	fmt.Fprintln(l.Out)
	out, err := l.Ctl(ctx, from, "-q", "list_queues", "--formatter", "json", "name", "pid", "slave_pids", "synchronised_slave_pids", "messages")
	if err != nil && l.Reference {
		// RabbitMQ lists nothing before a queue exists.
		out, err = "[]", nil
	}
	if err != nil {
		fmt.Fprintf(l.Out, "queues: %v\n", err)
		return nil
	}
	var rows []struct {
		Name     string `json:"name"`
		Pid      string `json:"pid"`
		Slaves   any    `json:"slave_pids"`
		Synced   any    `json:"synchronised_slave_pids"`
		Messages any    `json:"messages"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		return fmt.Errorf("list_queues on %s: %w", from, err)
	}
	if len(rows) == 0 {
		fmt.Fprintln(l.Out, "no queues yet")
		return nil
	}
	fmt.Fprintf(l.Out, "\n%-24s %-8s %-9s %-22s %s\n", "QUEUE", "MESSAGES", "LEADER", "MIRRORS", "IN SYNC")
	for _, r := range rows {
		fmt.Fprintf(l.Out, "%-24s %-8v %-9s %-22s %s\n", r.Name, r.Messages, pidNode(r.Pid), strings.Join(pidNodes(r.Slaves), ","), strings.Join(pidNodes(r.Synced), ","))
	}
	return nil
}

// pidNode is the host of a queue pid such as <warren@node1.queue.q> or
// RabbitMQ's <rabbit@node1.1670000000.512.0>.
func pidNode(pid string) string {
	if _, after, ok := strings.Cut(pid, "@"); ok {
		pid = after
	}
	if i := strings.IndexByte(pid, '.'); i >= 0 {
		return pid[:i]
	}
	return pid
}

// pidNodes is the hosts of a list of pids.
func pidNodes(v any) []string {
	l, _ := v.([]any)
	out := []string{}
	for _, p := range l {
		if s, ok := p.(string); ok {
			out = append(out, pidNode(s))
		}
	}
	return out
}

// targets resolves HOST or HOST:PROGRAM to a host and the programs meant.
func (l *Lab) targets(t string) (Host, []string, error) {
	name, prog, one := strings.Cut(t, ":")
	h, err := host(name)
	if err != nil {
		return h, nil, err
	}
	progs := l.Programs(h)
	if !one {
		return h, progs, nil
	}
	if !slices.Contains(progs, prog) {
		return h, nil, fmt.Errorf("%s runs %s, not %q", h.Name, strings.Join(progs, " and "), prog)
	}
	return h, []string{prog}, nil
}

// Kill is a host's sudden death: SIGKILL to its programs and, for a
// whole host, its cable out. HOST:PROGRAM kills that program only.
func (l *Lab) Kill(t string) error {
	h, progs, err := l.targets(t)
	if err != nil {
		return err
	}
	for _, p := range progs {
		l.signal(h.Name, p, syscall.SIGKILL)
		l.waitDead(h.Name, p, 5*time.Second)
		fmt.Fprintf(l.Out, "%s: killed %s\n", h.Name, p)
	}
	if !strings.Contains(t, ":") {
		if err := l.plug(h.Name, false); err != nil {
			return err
		}
		// A machine that loses its power loses the addresses its
		// programs had added.
		if l.holdsVIP(h.Name) {
			if err := ip("-n", l.ns(h.Name), "addr", "del", VIP+"/24", "dev", "eth0"); err != nil {
				return err
			}
		}
		fmt.Fprintf(l.Out, "%s: cable out\n", h.Name)
	}
	return nil
}

// Stop stops a host's programs gracefully (SIGTERM, then SIGKILL after
// 30 s), as systemctl stop would.
func (l *Lab) Stop(t string) error {
	h, progs, err := l.targets(t)
	if err != nil {
		return err
	}
	for i := len(progs) - 1; i >= 0; i-- {
		p := progs[i]
		l.signal(h.Name, p, syscall.SIGCONT)
		l.signal(h.Name, p, syscall.SIGTERM)
		if !l.waitDead(h.Name, p, 30*time.Second) {
			l.signal(h.Name, p, syscall.SIGKILL)
			l.waitDead(h.Name, p, 5*time.Second)
		}
		fmt.Fprintf(l.Out, "%s: stopped %s\n", h.Name, p)
	}
	return nil
}

// Start brings a host back: cable in, programs started (those running
// are left alone).
func (l *Lab) Start(t string) error {
	h, progs, err := l.targets(t)
	if err != nil {
		return err
	}
	if !strings.Contains(t, ":") {
		if err := l.plug(h.Name, true); err != nil {
			return err
		}
	}
	for _, p := range progs {
		if err := l.start(h, p); err != nil {
			return err
		}
	}
	return nil
}

// Freeze stops a host's programs with SIGSTOP (on) or lets them go on
// with SIGCONT: a machine that hangs, or a long pause.
func (l *Lab) Freeze(t string, on bool) error {
	h, progs, err := l.targets(t)
	if err != nil {
		return err
	}
	sig, what := syscall.SIGCONT, "thawed"
	if on {
		sig, what = syscall.SIGSTOP, "froze"
	}
	for _, p := range progs {
		if err := l.signal(h.Name, p, sig); err != nil {
			return err
		}
		fmt.Fprintf(l.Out, "%s: %s %s\n", h.Name, what, p)
	}
	return nil
}

// Partition cuts each named host off from every other host, its programs
// still running.
func (l *Lab) Partition(names ...string) error {
	for _, n := range names {
		h, err := host(n)
		if err != nil {
			return err
		}
		if err := l.plug(h.Name, false); err != nil {
			return err
		}
		fmt.Fprintf(l.Out, "%s: cut off\n", h.Name)
	}
	return nil
}

// Heal plugs every cable back in.
func (l *Lab) Heal() error {
	for _, h := range Hosts() {
		if l.cut(h.Name) {
			if err := l.plug(h.Name, true); err != nil {
				return err
			}
			fmt.Fprintf(l.Out, "%s: cable in\n", h.Name)
		}
	}
	return nil
}

// Command is a command to run on host h, with the lab's binaries first
// on its PATH.
func (l *Lab) Command(h string, args ...string) (*exec.Cmd, error) {
	if _, err := host(h); err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("exec %s: no command", h)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.ns(h)}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+l.Bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return cmd, nil
}

// Leader is the host whose node leads queue, as a running node reports
// it.
func (l *Lab) Leader(ctx context.Context, queue string) (string, error) {
	for _, h := range l.answering() {
		out, err := l.Ctl(ctx, h.Name, "-q", "list_queues", "name", "pid")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && f[0] == queue {
				return pidNode(f[1]), nil
			}
		}
	}
	return "", fmt.Errorf("no running node reports a leader for queue %s", queue)
}

// InSync is the number of in-sync mirrors of queue, as host h's node
// reports it.
func (l *Lab) InSync(ctx context.Context, h, queue string) (int, error) {
	out, err := l.Ctl(ctx, h, "-q", "list_queues", "--formatter", "json", "name", "synchronised_slave_pids")
	if err != nil {
		return 0, err
	}
	var rows []struct {
		Name   string `json:"name"`
		Synced any    `json:"synchronised_slave_pids"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		return 0, fmt.Errorf("list_queues on %s: %w", h, err)
	}
	for _, r := range rows {
		if r.Name == queue {
			l, _ := r.Synced.([]any)
			return len(l), nil
		}
	}
	return 0, fmt.Errorf("no queue %s on %s", queue, h)
}

// Healthy reports what keeps the stack from being whole, or nil: every
// program running, every cable in, the three nodes running together and
// one balancer host holding the virtual IP.
func (l *Lab) Healthy(ctx context.Context) error {
	for _, h := range Hosts() {
		if l.cut(h.Name) {
			return fmt.Errorf("%s is cut off", h.Name)
		}
		for _, p := range l.Programs(h) {
			if _, state := l.proc(h.Name, p); state != "running" {
				return fmt.Errorf("%s on %s is %s", p, h.Name, state)
			}
		}
	}
	if err := l.clustered(ctx); err != nil {
		return err
	}
	if v := l.vipHolders(); len(v) != 1 {
		return fmt.Errorf("the virtual IP is held by %d hosts (%s)", len(v), strings.Join(v, ", "))
	}
	return nil
}

// VIPHolder is the one balancer host holding the virtual IP, or "".
func (l *Lab) VIPHolder() string {
	if v := l.vipHolders(); len(v) == 1 {
		return v[0]
	}
	return ""
}

// DialClient opens a connection from the client host, as a program
// running there would.
func (l *Lab) DialClient(network, addr string) (net.Conn, error) {
	return DialIn(l.ns("client"), network, addr)
}
