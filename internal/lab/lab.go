// Package lab runs the runbooks' HA stack on one machine: three warren
// nodes, two balancer hosts each running warren-lb and warren-vrrp around
// one virtual IP, and a client host, each in a network namespace of its
// own with its own address, joined by a bridge that nothing else is
// plugged into. The programs run the configuration files of examples/,
// with only their paths moved into the lab's directory, so that what a
// user tries here is what they would deploy.
//
// The lab outlives the command that starts it: its processes run in
// sessions of their own, and its state (configuration, data, logs, pid
// files) lives in one directory, so that later commands can look at it,
// break it and take it down.
package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// VIP is the virtual IP the examples' keepalived.conf moves between the
// balancer hosts; the lab's network is the /24 around it.
const VIP = "192.168.0.200"

// User and Password are the account the lab adds for clients on other
// hosts: guest may log in from localhost only, as in RabbitMQ.
const (
	User     = "lab"
	Password = "lab"
)

// Host is one machine of the stack.
type Host struct {
	Name     string
	Addr     string
	Programs []string // what runs there, in start order
}

// Hosts are the runbooks' five hosts and a client, with the names the
// examples use.
func Hosts() []Host {
	return []Host{
		{Name: "node1", Addr: "192.168.0.11", Programs: []string{"warren"}},
		{Name: "node2", Addr: "192.168.0.12", Programs: []string{"warren"}},
		{Name: "node3", Addr: "192.168.0.13", Programs: []string{"warren"}},
		{Name: "lb1", Addr: "192.168.0.21", Programs: []string{"warren-lb", "warren-vrrp"}},
		{Name: "lb2", Addr: "192.168.0.22", Programs: []string{"warren-lb", "warren-vrrp"}},
		{Name: "client", Addr: "192.168.0.100"},
	}
}

// Lab is the stack's state on this machine.
type Lab struct {
	Dir      string    // configuration, data, logs and pid files
	Bin      string    // where warren, warrenctl, warren-lb and warren-vrrp are
	Examples string    // the examples directory the configuration comes from
	Prefix   string    // of the namespaces' names
	Out      io.Writer // progress and reports
}

// Check says what the lab needs that this machine lacks, before anything
// is made.
func (l *Lab) Check() error {
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root: it makes network namespaces, a bridge and a virtual IP (run it with sudo)")
	}
	for _, tool := range []string{"ip", "pgrep"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the lab needs %s (Debian packages iproute2 and procps): %w", tool, err)
		}
	}
	for _, p := range []string{"warren", "warrenctl", "warren-lb", "warren-vrrp"} {
		if _, err := os.Stat(filepath.Join(l.Bin, p)); err != nil {
			return fmt.Errorf("the lab runs %s from %s: %w (build them with: go build -o %s/ ./cmd/...)", p, l.Bin, err, l.Bin)
		}
	}
	return nil
}

func (l *Lab) ns(h string) string { return l.Prefix + "-" + h }
func (l *Lab) sw() string         { return l.Prefix + "-sw" }

// host returns the host called name.
func host(name string) (Host, error) {
	for _, h := range Hosts() {
		if h.Name == name {
			return h, nil
		}
	}
	var names []string
	for _, h := range Hosts() {
		names = append(names, h.Name)
	}
	return Host{}, fmt.Errorf("no host %q in the lab (hosts: %s)", name, strings.Join(names, ", "))
}

// Exists reports whether a lab is up: its directory holds a stack.
func (l *Lab) Exists() bool {
	_, err := os.Stat(filepath.Join(l.Dir, "cookie"))
	return err == nil
}

// Up builds the network, writes the configuration, starts every program
// and waits for the cluster to form and the virtual IP to be held.
func (l *Lab) Up(ctx context.Context) error {
	if err := l.Check(); err != nil {
		return err
	}
	if l.Exists() {
		return fmt.Errorf("a lab is already up in %s: take it down first (warren-lab down)", l.Dir)
	}
	if nsExists(l.sw()) {
		return fmt.Errorf("network namespace %s exists already: another lab of that name is up (warren-lab -name NAME picks another)", l.sw())
	}
	if err := l.network(); err != nil {
		l.Down()
		return err
	}
	if err := l.configure(); err != nil {
		l.Down()
		return err
	}
	for _, h := range Hosts() {
		for _, p := range h.Programs {
			if err := l.start(h, p); err != nil {
				l.Down()
				return err
			}
		}
	}
	fmt.Fprintln(l.Out, "waiting for the cluster to form and the virtual IP to be held...")
	if err := l.settle(ctx); err != nil {
		return fmt.Errorf("%w (the logs are in %s; warren-lab down takes it all away)", err, l.Dir)
	}
	fmt.Fprintf(l.Out, `
The HA stack is up.
  AMQP on the virtual IP:  amqp://%[2]s:%[3]s@%[1]s:5672/   (user %[2]s, password %[3]s, added by the lab)
  management UI and API:   http://%[1]s:15672/
  warren-lb's stats page:  http://%[1]s:8100/stats
These addresses live inside the lab: reach them from its client host, e.g.
  warren-lab exec client warren-perf -recover -h amqp://%[2]s:%[3]s@%[1]s:5672/ -u lab.q -ad=false -f persistent -c 50 -r 500
  warren-lab exec client curl -s http://%[1]s:8100/stats
Look at it:   warren-lab status
Break it:     warren-lab kill|stop|start|freeze|thaw HOST[:PROGRAM], warren-lab partition HOST..., warren-lab heal
Take it down: warren-lab down
State, configuration and logs: %[4]s
`, VIP, User, Password, l.Dir)
	return nil
}

// network makes the switch and the hosts' namespaces, cables and names.
func (l *Lab) network() error {
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1 localhost\n")
	for _, h := range Hosts() {
		fmt.Fprintf(&hosts, "%s %s\n", h.Addr, h.Name)
	}
	steps := [][]string{{"netns", "add", l.sw()}, {"-n", l.sw(), "link", "add", "br0", "type", "bridge"}, {"-n", l.sw(), "link", "set", "br0", "up"}}
	for i, h := range Hosts() {
		port := fmt.Sprintf("v%d", i+1)
		ns := l.ns(h.Name)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"link", "add", port, "netns", l.sw(), "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"-n", l.sw(), "link", "set", port, "master", "br0", "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", ns, "addr", "add", h.Addr + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"})
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	for _, h := range Hosts() {
		dir := filepath.Join("/etc/netns", l.ns(h.Name))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("hosts file of %s: %w", h.Name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(hosts.String()), 0o644); err != nil {
			return fmt.Errorf("hosts file of %s: %w", h.Name, err)
		}
	}
	return nil
}

// ip runs iproute2's ip with args.
func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// rewrite is one change the lab makes to an example: the paths a real
// host has to itself, moved into the lab's directory.
type rewrite struct{ old, new string }

// configure writes the cookie and each host's configuration, the
// examples with their host paths moved into the lab.
func (l *Lab) configure() error {
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return err
	}
	copyFile := func(name string, mode os.FileMode) (string, error) {
		b, err := os.ReadFile(filepath.Join(l.Examples, name))
		if err != nil {
			return "", err
		}
		dst := filepath.Join(l.Dir, name)
		return dst, os.WriteFile(dst, b, mode)
	}
	defs, err := copyFile("definitions.json", 0o644)
	if err != nil {
		return err
	}
	notify, err := copyFile("notify.sh", 0o755)
	if err != nil {
		return err
	}
	for _, h := range Hosts() {
		dir := filepath.Join(l.Dir, h.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		var files []struct{ example, out string }
		var changes []rewrite
		switch {
		case slices.Contains(h.Programs, "warren"):
			files = append(files, struct{ example, out string }{"warren.conf", "warren.conf"})
			changes = append(changes, rewrite{"/etc/warren/definitions.json", defs})
		case slices.Contains(h.Programs, "warren-lb"):
			vrrp := "keepalived-master.conf"
			if h.Name != "lb1" {
				vrrp = "keepalived-backup.conf"
			}
			files = append(files, struct{ example, out string }{"haproxy.cfg", "haproxy.cfg"}, struct{ example, out string }{vrrp, "keepalived.conf"})
			changes = append(changes,
				rewrite{"/var/lib/warren-lb/server-state", filepath.Join(dir, "server-state")},
				rewrite{"/etc/keepalived/notify.sh", notify},
				// The hosts share one process table: the check looks
				// for this host's warren-lb only.
				rewrite{"/usr/bin/pgrep -x warren-lb", "/usr/bin/pgrep -F " + l.pidFile(h.Name, "warren-lb") + " -x warren-lb"})
		}
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(l.Examples, f.example))
			if err != nil {
				return err
			}
			text := string(b)
			for _, c := range changes {
				text = strings.ReplaceAll(text, c.old, c.new)
			}
			if err := os.WriteFile(filepath.Join(dir, f.out), []byte(text), 0o644); err != nil {
				return err
			}
		}
	}
	return os.WriteFile(filepath.Join(l.Dir, "cookie"), []byte(fmt.Sprintf("WARRENLAB%d", time.Now().UnixNano())), 0o400)
}

// pidFile is where the lab keeps the process id of a host's program.
func (l *Lab) pidFile(h, prog string) string { return filepath.Join(l.Dir, h, prog+".pid") }

// args are a program's command line on host h.
func (l *Lab) args(h Host, prog string) []string {
	dir := filepath.Join(l.Dir, h.Name)
	switch prog {
	case "warren":
		return []string{"--node-name", "warren@" + h.Name, "--data-dir", filepath.Join(dir, "data"),
			"--cookie-file", filepath.Join(l.Dir, "cookie"), "--config", filepath.Join(dir, "warren.conf")}
	case "warren-lb":
		return []string{"-db", "-f", filepath.Join(dir, "haproxy.cfg")}
	case "warren-vrrp":
		return []string{"-n", "-l", "-f", filepath.Join(dir, "keepalived.conf"), "-p", filepath.Join(dir, "warren-vrrp.own.pid"),
			"-status-file", filepath.Join(dir, "warren-vrrp.data")}
	}
	return nil
}

// start starts prog on h in a session of its own, logging to the lab's
// directory, unless it runs already.
func (l *Lab) start(h Host, prog string) error {
	if pid, state := l.proc(h.Name, prog); pid != 0 && state != "dead" {
		return nil
	}
	logPath := filepath.Join(l.Dir, h.Name, prog+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.ns(h.Name), filepath.Join(l.Bin, prog)}, l.args(h, prog)...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s on %s: %w", prog, h.Name, err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	if err := os.WriteFile(l.pidFile(h.Name, prog), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(l.Out, "%s: started %s (pid %d, log %s)\n", h.Name, prog, pid, logPath)
	return nil
}

// proc finds a host's program: its pid, and "running", "frozen" or
// "dead".
func (l *Lab) proc(h, prog string) (int, string) {
	b, err := os.ReadFile(l.pidFile(h, prog))
	if err != nil {
		return 0, "dead"
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, "dead"
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return pid, "dead"
	}
	// pid (comm) state ...: the name may hold spaces and parentheses.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) || !strings.HasPrefix(s[strings.IndexByte(s, '(')+1:], prog) {
		return pid, "dead"
	}
	switch s[i+2] {
	case 'Z', 'X':
		return pid, "dead"
	case 'T', 't':
		return pid, "frozen"
	}
	return pid, "running"
}

// signal sends sig to the session of a host's program.
func (l *Lab) signal(h, prog string, sig syscall.Signal) error {
	pid, state := l.proc(h, prog)
	if state == "dead" {
		return nil
	}
	if err := syscall.Kill(-pid, sig); err != nil {
		return fmt.Errorf("%s %s on %s: %w", sig, prog, h, err)
	}
	return nil
}

// waitDead waits up to d for a host's program to end.
func (l *Lab) waitDead(h, prog string, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, state := l.proc(h, prog); state == "dead" {
			return true
		}
	}
	return false
}

// Down stops every program and removes every namespace and file the lab
// made; it carries on past what is already gone.
func (l *Lab) Down() error {
	var errs []error
	for _, h := range Hosts() {
		for _, p := range h.Programs {
			l.signal(h.Name, p, syscall.SIGCONT)
			l.signal(h.Name, p, syscall.SIGKILL)
			if !l.waitDead(h.Name, p, 5*time.Second) {
				errs = append(errs, fmt.Errorf("%s on %s did not die", p, h.Name))
			}
		}
	}
	for _, h := range Hosts() {
		if nsExists(l.ns(h.Name)) {
			if err := ip("netns", "del", l.ns(h.Name)); err != nil {
				errs = append(errs, err)
			}
		}
		os.RemoveAll(filepath.Join("/etc/netns", l.ns(h.Name)))
	}
	if nsExists(l.sw()) {
		if err := ip("netns", "del", l.sw()); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(l.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// nsExists reports whether the named network namespace is there.
func nsExists(name string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}
