package chaos

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/warren-mq/warren/internal/lab"
)

// Lab is hosts in network namespaces on one switch (a bridge in a
// namespace of its own), each with an address and the others' names in
// its /etc/hosts, as on a real network.
type Lab struct {
	prefix string
	sw     string // the switch's namespace
	Hosts  []*Host
}

// Host is one machine of the lab.
type Host struct {
	Name, NS, Addr string
	port           string // its cable's end in the switch
	lab            *Lab
}

// NewLab makes n hosts named host1..hostN with addresses 10.79.0.1 and
// up. Close removes them.
func NewLab(n int) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("the chaos lab needs root, to make network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("the chaos lab needs iproute2's ip: %w", err)
	}
	l := &Lab{prefix: fmt.Sprintf("ch%d", os.Getpid()%100000)}
	l.sw = l.prefix + "-sw"
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1 localhost\n")
	for i := range n {
		fmt.Fprintf(&hosts, "10.79.0.%d node%d\n", i+1, i+1)
	}
	steps := [][]string{{"ip", "netns", "add", l.sw}, {"ip", "-n", l.sw, "link", "add", "br0", "type", "bridge"}, {"ip", "-n", l.sw, "link", "set", "br0", "up"}}
	for i := range n {
		h := &Host{Name: fmt.Sprintf("node%d", i+1), NS: fmt.Sprintf("%s-%d", l.prefix, i+1), Addr: fmt.Sprintf("10.79.0.%d", i+1),
			port: fmt.Sprintf("v%d", i+1), lab: l}
		l.Hosts = append(l.Hosts, h)
		steps = append(steps,
			[]string{"ip", "netns", "add", h.NS},
			[]string{"ip", "link", "add", h.port, "netns", l.sw, "type", "veth", "peer", "name", "eth0", "netns", h.NS},
			[]string{"ip", "-n", l.sw, "link", "set", h.port, "master", "br0", "up"},
			[]string{"ip", "-n", h.NS, "link", "set", "lo", "up"},
			[]string{"ip", "-n", h.NS, "addr", "add", h.Addr + "/24", "dev", "eth0"},
			[]string{"ip", "-n", h.NS, "link", "set", "eth0", "up"})
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			l.Close()
			return nil, fmt.Errorf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	for _, h := range l.Hosts {
		dir := filepath.Join("/etc/netns", h.NS)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			l.Close()
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(hosts.String()), 0o644); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// Close removes the lab's namespaces and files.
func (l *Lab) Close() {
	for _, h := range l.Hosts {
		exec.Command("ip", "netns", "del", h.NS).Run()
		os.RemoveAll(filepath.Join("/etc/netns", h.NS))
	}
	exec.Command("ip", "netns", "del", l.sw).Run()
}

// Command returns a command that runs inside the host's namespace.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// Cable plugs the host's cable into the switch (true) or pulls it out.
func (h *Host) Cable(in bool) error {
	state := "down"
	if in {
		state = "up"
	}
	if out, err := exec.Command("ip", "-n", h.lab.sw, "link", "set", h.port, state).CombinedOutput(); err != nil {
		return fmt.Errorf("%s's cable %s: %v: %s", h.Name, state, err, out)
	}
	return nil
}

// Block drops (true) or lets through again the host's traffic to other.
func (h *Host) Block(other *Host, on bool) error {
	verb := "del"
	if on {
		verb = "add"
	}
	if out, err := exec.Command("ip", "-n", h.NS, "route", verb, "blackhole", other.Addr+"/32").CombinedOutput(); err != nil {
		return fmt.Errorf("%s: route %s blackhole %s: %v: %s", h.Name, verb, other.Addr, err, out)
	}
	return nil
}

// Dial opens a TCP connection from inside the host's namespace.
func (h *Host) Dial(network, addr string) (net.Conn, error) { return DialIn(h.NS, network, addr) }

// DialIn opens a connection from inside the named network namespace, as
// a program running there would.
func DialIn(ns, network, addr string) (net.Conn, error) { return lab.DialIn(ns, network, addr) }
