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
//
// The same lab runs the programs warren replaces, as the reference:
// Debian's rabbitmq-server, haproxy and keepalived on the same hosts,
// with the same files where they read the same syntax.
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

// Role is what a host is for.
type Role int

// The hosts' roles.
const (
	Broker   Role = iota // a broker node
	Balancer             // a load balancer with a share of the virtual IP
	Client               // where clients run
)

// Host is one machine of the stack.
type Host struct {
	Name string
	Addr string
	Role Role
}

// Hosts are the runbooks' five hosts and a client, with the names the
// examples use.
func Hosts() []Host {
	return []Host{
		{Name: "node1", Addr: "192.168.0.11", Role: Broker},
		{Name: "node2", Addr: "192.168.0.12", Role: Broker},
		{Name: "node3", Addr: "192.168.0.13", Role: Broker},
		{Name: "lb1", Addr: "192.168.0.21", Role: Balancer},
		{Name: "lb2", Addr: "192.168.0.22", Role: Balancer},
		{Name: "client", Addr: "192.168.0.100", Role: Client},
	}
}

// Lab is the stack's state on this machine.
type Lab struct {
	Dir      string    // configuration, data, logs and pid files
	Bin      string    // where warren, warrenctl, warren-lb and warren-vrrp are
	Examples string    // the examples directory the configuration comes from
	Prefix   string    // of the namespaces' names
	Out      io.Writer // progress and reports
	// Reference runs rabbitmq-server, haproxy and keepalived in place
	// of warren, warren-lb and warren-vrrp.
	Reference bool
	// Cmd is how the user runs this tool, for the hints it prints;
	// "warren-lab" if empty.
	Cmd string
}

// The programs of each flavour of the stack, by the part they play.
const (
	warrenBroker, warrenBalancer, warrenVRRP = "warren", "warren-lb", "warren-vrrp"
	refBroker, refBalancer, refVRRP          = "rabbitmq-server", "haproxy", "keepalived"
)

// RabbitBin is where Debian's rabbitmq-server package keeps its scripts.
const RabbitBin = "/usr/lib/rabbitmq/bin"

// Programs are what runs on h, in start order.
func (l *Lab) Programs(h Host) []string {
	switch {
	case h.Role == Broker && l.Reference:
		return []string{refBroker}
	case h.Role == Broker:
		return []string{warrenBroker}
	case h.Role == Balancer && l.Reference:
		return []string{refBalancer, refVRRP}
	case h.Role == Balancer:
		return []string{warrenBalancer, warrenVRRP}
	}
	return nil
}

// BrokerProgram, BalancerProgram and VRRPProgram name the program that
// plays each part in this lab.
func (l *Lab) BrokerProgram() string { return l.Programs(Hosts()[0])[0] }

// BalancerProgram is the load balancer's program.
func (l *Lab) BalancerProgram() string { return l.Programs(Hosts()[3])[0] }

// VRRPProgram is the virtual IP's program.
func (l *Lab) VRRPProgram() string { return l.Programs(Hosts()[3])[1] }

// NodeName is the broker node's name on host h.
func (l *Lab) NodeName(h string) string {
	if l.Reference {
		return "rabbit@" + h
	}
	return "warren@" + h
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
	if l.Reference {
		for _, p := range []string{filepath.Join(RabbitBin, "rabbitmq-server"), "/usr/sbin/haproxy", "/usr/sbin/keepalived"} {
			if _, err := os.Stat(p); err != nil {
				return fmt.Errorf("the reference lab needs Debian's rabbitmq-server, haproxy and keepalived packages: %w", err)
			}
		}
		return nil
	}
	for _, p := range []string{"warren", "warrenctl", "warren-lb", "warren-vrrp"} {
		if _, err := os.Stat(filepath.Join(l.Bin, p)); err != nil {
			return fmt.Errorf("the lab runs %s from %s: %w (build them with: go build -o %s/ ./cmd/...)", p, l.Bin, err, l.Bin)
		}
	}
	return nil
}

func (l *Lab) ns(h string) string { return l.Prefix + "-" + h }

// cmd is how the hints name this tool.
func (l *Lab) cmd() string {
	if l.Cmd == "" {
		return "warren-lab"
	}
	return l.Cmd
}
func (l *Lab) sw() string { return l.Prefix + "-sw" }

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
	_, err := os.Stat(filepath.Join(l.Dir, "flavour"))
	return err == nil
}

// Open takes the flavour of the lab up in l.Dir (warren or the
// reference); false if none is up.
func (l *Lab) Open() bool {
	b, err := os.ReadFile(filepath.Join(l.Dir, "flavour"))
	if err != nil {
		return false
	}
	l.Reference = strings.TrimSpace(string(b)) == "reference"
	return true
}

// Up builds the network, writes the configuration, starts every program
// and waits for the cluster to form and the virtual IP to be held.
func (l *Lab) Up(ctx context.Context) error {
	if err := l.Check(); err != nil {
		return err
	}
	if l.Exists() {
		return fmt.Errorf("a lab is already up in %s: take it down first (%s down)", l.Dir, l.cmd())
	}
	if nsExists(l.sw()) {
		return fmt.Errorf("network namespace %s exists already: another lab of that name is up (%s -name NAME picks another)", l.sw(), l.cmd())
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
		for _, p := range l.Programs(h) {
			if err := l.start(h, p); err != nil {
				l.Down()
				return err
			}
		}
	}
	fmt.Fprintln(l.Out, "waiting for the cluster to form and the virtual IP to be held...")
	if err := l.settle(ctx); err != nil {
		return fmt.Errorf("%w (the logs are in %s; %s down takes it all away)", err, l.Dir, l.cmd())
	}
	fmt.Fprintf(l.Out, `
The HA stack is up.
  AMQP on the virtual IP:  amqp://%[2]s:%[3]s@%[1]s:5672/   (user %[2]s, password %[3]s, added by the lab)
  management UI and API:   http://%[1]s:15672/
  warren-lb's stats page:  http://%[1]s:8100/stats
These addresses live inside the lab: reach them from its client host, e.g.
  %[5]s exec client warren-perf -recover -h amqp://%[2]s:%[3]s@%[1]s:5672/ -u lab.q -ad=false -f persistent -c 50 -r 500
  %[5]s exec client curl -s http://%[1]s:8100/stats
Look at it:   %[5]s status
Break it:     %[5]s kill|stop|start|freeze|thaw HOST[:PROGRAM], %[5]s partition HOST..., %[5]s heal
Take it down: %[5]s down
State, configuration and logs: %[4]s
`, VIP, User, Password, l.Dir, l.cmd())
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

// labFile is a file of a host: an example, with rewrites, under a name.
type labFile struct {
	example, out string
	changes      []rewrite
}

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
	cookie := fmt.Sprintf("WARRENLAB%d", time.Now().UnixNano())
	for _, h := range Hosts() {
		dir := filepath.Join(l.Dir, h.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		var files []labFile
		switch h.Role {
		case Broker:
			changes := []rewrite{{"/etc/warren/definitions.json", defs}}
			out := "warren.conf"
			if l.Reference {
				// RabbitMQ makes no default vhost and user when it
				// loads definitions at boot: the lab sets the
				// examples' policies with rabbitmqctl instead, as the
				// runbooks do.
				changes = []rewrite{{"load_definitions = /etc/warren/definitions.json", ""}, {"warren@", "rabbit@"}}
				out = "rabbitmq.conf"
				if err := l.rabbitHome(h.Name, cookie); err != nil {
					return err
				}
			}
			files = append(files, labFile{"warren.conf", out, changes})
		case Balancer:
			vrrp := "keepalived-master.conf"
			if h.Name != "lb1" {
				vrrp = "keepalived-backup.conf"
			}
			lb := []rewrite{{"/var/lib/warren-lb/server-state", filepath.Join(dir, "server-state")}}
			if l.Reference {
				// haproxy has no AMQP check: the runbooks check the
				// port.
				lb = append(lb, rewrite{"    option amqp-check\n", ""})
				// haproxy refuses to start without two descriptors
				// per connection of its maxconn, and a machine whose
				// hard limit cannot be raised has fewer.
				var lim syscall.Rlimit
				if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Max < 2*20000+100 {
					lb = append(lb, rewrite{"maxconn 20000", fmt.Sprintf("maxconn %d", (lim.Max-100)/2)})
				}
			}
			files = append(files, labFile{"haproxy.cfg", "haproxy.cfg", lb}, labFile{vrrp, "keepalived.conf", []rewrite{
				{"/etc/keepalived/notify.sh", notify},
				// The hosts share one process table: the check looks
				// for this host's balancer only.
				{"/usr/bin/pgrep -x warren-lb", "/usr/bin/pgrep -F " + l.pidFile(h.Name, l.BalancerProgram()) + " -x " + l.BalancerProgram()},
			}})
		}
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(l.Examples, f.example))
			if err != nil {
				return err
			}
			text := string(b)
			for _, c := range f.changes {
				if !strings.Contains(text, c.old) {
					return fmt.Errorf("%s no longer says %q, which the lab moves: update internal/lab", f.example, c.old)
				}
				text = strings.ReplaceAll(text, c.old, c.new)
			}
			if err := os.WriteFile(filepath.Join(dir, f.out), []byte(text), 0o644); err != nil {
				return err
			}
		}
	}
	if err := os.WriteFile(filepath.Join(l.Dir, "cookie"), []byte(cookie), 0o400); err != nil {
		return err
	}
	flavour := "warren"
	if l.Reference {
		flavour = "reference"
	}
	return os.WriteFile(filepath.Join(l.Dir, "flavour"), []byte(flavour+"\n"), 0o644)
}

// rabbitHome makes a RabbitMQ node's directories, cookie and plugins
// file.
func (l *Lab) rabbitHome(h, cookie string) error {
	dir := filepath.Join(l.Dir, h)
	for _, sub := range []string{"home", "mnesia", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "home", ".erlang.cookie"), []byte(cookie), 0o400); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "enabled_plugins"), []byte("[rabbitmq_management].\n"), 0o644)
}

// rabbitEnv is the environment of a RabbitMQ node on host h and of the
// tools that talk to it.
func (l *Lab) rabbitEnv(h string) []string { return RabbitEnv(filepath.Join(l.Dir, h), l.NodeName(h)) }

// RabbitEnv is the environment of a RabbitMQ node from Debian's package
// whose files are all under dir (home with its cookie, mnesia, log,
// rabbitmq.conf, enabled_plugins), and of the tools that talk to it.
func RabbitEnv(dir, node string) []string {
	return []string{
		"HOME=" + filepath.Join(dir, "home"),
		"RABBITMQ_NODENAME=" + node,
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE=" + filepath.Join(dir, "rabbit.pid"),
		"RABBITMQ_CONFIG_FILE=" + filepath.Join(dir, "rabbitmq"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(dir, "enabled_plugins"),
		"PATH=" + os.Getenv("PATH"),
		"LANG=C.UTF-8", "LC_ALL=C.UTF-8",
	}
}

// pidFile is where the lab keeps the process id of a host's program.
func (l *Lab) pidFile(h, prog string) string { return filepath.Join(l.Dir, h, prog+".pid") }

// command is a program's command line on host h: the program and its
// arguments.
func (l *Lab) command(h Host, prog string) []string {
	dir := filepath.Join(l.Dir, h.Name)
	switch prog {
	case warrenBroker:
		return []string{filepath.Join(l.Bin, prog), "--node-name", l.NodeName(h.Name), "--data-dir", filepath.Join(dir, "data"),
			"--cookie-file", filepath.Join(l.Dir, "cookie"), "--config", filepath.Join(dir, "warren.conf")}
	case warrenBalancer:
		return []string{filepath.Join(l.Bin, prog), "-db", "-f", filepath.Join(dir, "haproxy.cfg")}
	case warrenVRRP:
		return []string{filepath.Join(l.Bin, prog), "-n", "-l", "-f", filepath.Join(dir, "keepalived.conf"), "-p", filepath.Join(dir, "warren-vrrp.own.pid"),
			"-status-file", filepath.Join(dir, "warren-vrrp.data")}
	case refBroker:
		return append(append([]string{"env"}, l.rabbitEnv(h.Name)...), filepath.Join(RabbitBin, "rabbitmq-server"))
	case refBalancer:
		return []string{"/usr/sbin/haproxy", "-db", "-f", filepath.Join(dir, "haproxy.cfg")}
	case refVRRP:
		return []string{"/usr/sbin/keepalived", "-n", "-l", "-P", "-f", filepath.Join(dir, "keepalived.conf"),
			"-p", filepath.Join(dir, "keepalived.own.pid"), "-r", filepath.Join(dir, "vrrp.own.pid")}
	}
	return nil
}

// start starts prog on h in a session of its own, logging to the lab's
// directory, unless it runs already.
func (l *Lab) start(h Host, prog string) error {
	if pid, state := l.proc(h.Name, prog); pid != 0 && state != "dead" {
		return nil
	}
	// As the systemd units do: haproxy insists on descriptors for its
	// maxconn.
	raiseFileLimit()
	logPath := filepath.Join(l.Dir, h.Name, prog+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.ns(h.Name)}, l.command(h, prog)...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s on %s: %w", prog, h.Name, err)
	}
	pid := cmd.Process.Pid
	// Reaped as soon as it ends, while this process lives (a test
	// driving the lab); after that, init reaps it.
	go cmd.Wait()
	if err := os.WriteFile(l.pidFile(h.Name, prog), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(l.Out, "%s: started %s (pid %d, log %s)\n", h.Name, prog, pid, logPath)
	return nil
}

// raiseFileLimit raises this process's open-file limit, which the
// programs it starts inherit, to what the systemd units give them.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Max < 1<<20 {
		lim.Cur, lim.Max = 1<<20, 1<<20
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

// proc finds a host's program: its pid, and "running", "frozen" or
// "dead". The program leads a session of its own, which a process that
// took a recycled pid would not.
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
	// pid (comm) state ppid pgrp session ...: comm may hold spaces and
	// parentheses.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return pid, "dead"
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 4 || f[3] != strconv.Itoa(pid) {
		return pid, "dead"
	}
	switch f[0] {
	case "Z", "X":
		return pid, "dead"
	case "T", "t":
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

// waitDead waits up to d for a host's program to end and be reaped: a
// program started again checks its pid file, and takes a zombie for a
// live copy of itself, as keepalived does.
func (l *Lab) waitDead(h, prog string, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		pid, state := l.proc(h, prog)
		if state != "dead" {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); pid == 0 || err != nil {
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
		for _, p := range l.Programs(h) {
			l.signal(h.Name, p, syscall.SIGCONT)
			l.signal(h.Name, p, syscall.SIGKILL)
			if !l.waitDead(h.Name, p, 5*time.Second) {
				errs = append(errs, fmt.Errorf("%s on %s did not die", p, h.Name))
			}
		}
	}
	for _, h := range Hosts() {
		if nsExists(l.ns(h.Name)) {
			// What the programs started (epmd, scripts) goes too.
			out, _ := exec.Command("ip", "netns", "pids", l.ns(h.Name)).Output()
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
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
