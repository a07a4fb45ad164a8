package vrrp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"go.uber.org/goleak"
)

// warrenBinary is the warren-vrrp built once for the process tests.
var warrenBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "warren-vrrp-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	warrenBinary = filepath.Join(dir, "warren-vrrp")
	out, err := exec.Command("go", "build", "-o", warrenBinary, "github.com/warren-mq/warren/cmd/warren-vrrp").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building warren-vrrp: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

var labSeq atomic.Int64

// needRoot fails the test loudly when the process tests cannot run.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("namespace tests need root (ip netns, raw sockets)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("namespace tests need iproute2 (scripts/deps/vrrp.txt)")
	}
}

// lab is a set of network namespaces joined by a bridge in a namespace of
// its own: node i has eth0 with 10.77.0.(i+1)/24. Nothing leaves the lab.
type lab struct {
	t      *testing.T
	prefix string
	sw     string
	nodes  []*labNode
}

type labNode struct {
	lab   *lab
	ns    string
	addr  netip.Addr
	dir   string
	iface string // eth0 unless renamed
}

// rename gives the node's interface another name (em1, enp0s8...), so a
// seed's keepalived.conf runs without edits.
func (n *labNode) rename(t testing.TB, name string) {
	t.Helper()
	run(t, "ip", "-n", n.ns, "link", "set", n.iface, "down")
	run(t, "ip", "-n", n.ns, "link", "set", n.iface, "name", name)
	run(t, "ip", "-n", n.ns, "link", "set", name, "up")
	n.iface = name
}

// addAddr adds another address (a seed's host address) to the interface.
func (n *labNode) addAddr(t testing.TB, cidr string) {
	t.Helper()
	run(t, "ip", "-n", n.ns, "addr", "add", cidr, "dev", n.iface)
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newLab(t *testing.T, n int) *lab {
	t.Helper()
	needRoot(t)
	l := &lab{t: t, prefix: fmt.Sprintf("wv%d-%d", os.Getpid(), labSeq.Add(1))}
	l.sw = l.prefix + "-sw"
	t.Cleanup(func() {
		for _, nd := range l.nodes {
			_ = exec.Command("ip", "netns", "del", nd.ns).Run()
		}
		_ = exec.Command("ip", "netns", "del", l.sw).Run()
	})
	run(t, "ip", "netns", "add", l.sw)
	run(t, "ip", "-n", l.sw, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	run(t, "ip", "-n", l.sw, "link", "set", "br0", "up")
	for i := range n {
		nd := &labNode{lab: l, ns: fmt.Sprintf("%s-%d", l.prefix, i+1),
			addr: netip.AddrFrom4([4]byte{10, 77, 0, byte(i + 1)}), dir: t.TempDir(), iface: "eth0"}
		l.nodes = append(l.nodes, nd)
		host := fmt.Sprintf("h%d", i+1)
		run(t, "ip", "netns", "add", nd.ns)
		run(t, "ip", "link", "add", host, "netns", l.sw, "type", "veth", "peer", "name", "eth0", "netns", nd.ns)
		run(t, "ip", "-n", l.sw, "link", "set", host, "master", "br0", "up")
		run(t, "ip", "-n", nd.ns, "link", "set", "lo", "up")
		run(t, "ip", "-n", nd.ns, "addr", "add", nd.addr.String()+"/24", "dev", "eth0")
		run(t, "ip", "-n", nd.ns, "link", "set", "eth0", "up")
	}
	return l
}

// hasAddr reports whether addr (IPv4 or IPv6) is on the node's eth0.
func (n *labNode) hasAddr(addr string) bool {
	fam := "-4"
	if strings.Contains(addr, ":") {
		fam = "-6"
	}
	out, err := exec.Command("ip", "-n", n.ns, fam, "-o", "addr", "show", "dev", n.iface).Output()
	return err == nil && strings.Contains(string(out), " "+addr+"/")
}

// addIPv6 gives node i the address fd00:77::(i+1)/64 too (without
// duplicate address detection, so it is usable at once). The nodes'
// link-local addresses may still be tentative: the daemons must cope.
func (l *lab) addIPv6(t testing.TB) {
	t.Helper()
	for i, n := range l.nodes {
		run(t, "ip", "-n", n.ns, "-6", "addr", "add", fmt.Sprintf("fd00:77::%d/64", i+1), "dev", n.iface, "nodad")
	}
}

// linkLocal waits for the node's IPv6 link-local address and returns it;
// with settled it also waits for duplicate address detection to end.
func (n *labNode) linkLocal(t testing.TB, settled bool) string {
	t.Helper()
	var addr string
	waitFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		out, err := exec.Command("ip", "-n", n.ns, "-6", "-o", "addr", "show", "dev", n.iface, "scope", "link").Output()
		if err != nil {
			return err
		}
		f := strings.Fields(string(out))
		for i, w := range f {
			if w == "inet6" && i+1 < len(f) {
				addr, _, _ = strings.Cut(f[i+1], "/")
			}
		}
		switch {
		case addr == "":
			return fmt.Errorf("%s has no link-local address", n.ns)
		case settled && strings.Contains(string(out), "tentative"):
			return fmt.Errorf("%s: link-local %s still tentative", n.ns, addr)
		}
		return nil
	})
	return addr
}

// holders returns the indexes of the nodes holding addr.
func (l *lab) holders(addr string) []int {
	var out []int
	for i, n := range l.nodes {
		if n.hasAddr(addr) {
			out = append(out, i)
		}
	}
	return out
}

// waitFor polls cond every interval until it returns nil or total passes.
func waitFor(t testing.TB, total, interval time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", total, err)
		}
		time.Sleep(interval)
	}
}

// waitHolder waits until exactly node idx holds addr.
func (l *lab) waitHolder(addr string, idx int, total time.Duration) {
	l.t.Helper()
	waitFor(l.t, total, 20*time.Millisecond, func() error {
		if h := l.holders(addr); len(h) != 1 || h[0] != idx {
			return fmt.Errorf("%s held by nodes %v, want only %d", addr, h, idx)
		}
		return nil
	})
}

// speaker is one VRRP daemon process, warren-vrrp or keepalived, in a node.
type speaker struct {
	node       *labNode
	kind       string
	cmd        *exec.Cmd
	conf       string
	pidFile    string
	statusFile string
	log        *lockedBuffer
	done       chan struct{}
	waitErr    error
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (n *labNode) writeConf(t testing.TB, name, body string) string {
	t.Helper()
	p := filepath.Join(n.dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// startWarren runs the built warren-vrrp in the node with conf.
func (n *labNode) startWarren(t testing.TB, conf string) *speaker {
	t.Helper()
	s := &speaker{node: n, kind: "warren-vrrp", conf: n.writeConf(t, "warren.conf", conf),
		pidFile: filepath.Join(n.dir, "warren.pid"), statusFile: filepath.Join(n.dir, "warren.data")}
	s.start(t, "ip", "netns", "exec", n.ns, warrenBinary, "-n", "-l", "-D", "-f", s.conf, "-p", s.pidFile, "--status-file", s.statusFile)
	return s
}

// startKeepalived runs Debian's keepalived (VRRP only, foreground) in the node.
func (n *labNode) startKeepalived(t testing.TB, conf string) *speaker {
	t.Helper()
	if _, err := exec.LookPath("keepalived"); err != nil {
		t.Fatal("interop tests need Debian's keepalived (scripts/deps/vrrp.txt)")
	}
	s := &speaker{node: n, kind: "keepalived", conf: n.writeConf(t, "keepalived.conf", conf),
		pidFile: filepath.Join(n.dir, "keepalived.pid")}
	s.start(t, "ip", "netns", "exec", n.ns, "keepalived", "-n", "-l", "-D", "-P", "-f", s.conf,
		"-p", s.pidFile, "-r", filepath.Join(n.dir, "vrrp.pid"))
	return s
}

func (s *speaker) start(t testing.TB, args ...string) {
	s.log = &lockedBuffer{}
	s.cmd = exec.Command(args[0], args[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	// Its own process group, so a kill reaches keepalived's child too.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", s.kind, err)
	}
	s.done = make(chan struct{})
	go func() { s.waitErr = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("%s in %s log:\n%s", s.kind, s.node.ns, s.log.String())
		}
	})
}

// sigkill sends SIGKILL to the speaker's process group and returns at once,
// so a test can time what follows from the signal; call kill to reap it.
func (s *speaker) sigkill() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
}

// kill sends SIGKILL to the speaker's process group and waits for it.
func (s *speaker) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	if s.kind == "keepalived" {
		// keepalived's VRRP child may outlive the parent for a moment; a
		// restart before it is gone finds its pid file and refuses to run.
		b, err := os.ReadFile(filepath.Join(s.node.dir, "vrrp.pid"))
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			for range 200 {
				if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		os.Remove(filepath.Join(s.node.dir, "vrrp.pid"))
		os.Remove(s.pidFile)
	}
}

// sigterm sends SIGTERM and returns at once, so a test can time what
// follows from the signal; call stop to wait for the exit.
func (s *speaker) sigterm() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
}

// stop sends SIGTERM and waits up to 10 s for a graceful exit.
func (s *speaker) stop(t testing.TB) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.kill()
		t.Fatalf("%s did not stop on SIGTERM", s.kind)
	}
}

// status runs "warren-vrrp status" against the speaker.
func (s *speaker) status(t testing.TB) string {
	t.Helper()
	var out []byte
	waitFor(t, 3*time.Second, 50*time.Millisecond, func() (err error) {
		out, err = exec.Command(warrenBinary, "status", "-p", s.pidFile, "--status-file", s.statusFile).CombinedOutput()
		if err != nil {
			return fmt.Errorf("warren-vrrp status: %v\n%s", err, out)
		}
		return nil
	})
	return string(out)
}

// counter reads "key=N" from the status of the named instance (or the
// interface block when instance starts with "interface ").
func counter(t testing.TB, status, block, key string) int {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(status))
	in := false
	re := regexp.MustCompile(`(?:^|\s)` + regexp.QuoteMeta(key) + `=(\S+)`)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, " ") {
			in = line == block
			continue
		}
		if m := re.FindStringSubmatch(line); in && m != nil {
			n, err := strconv.Atoi(m[1])
			if err != nil {
				t.Fatalf("%s %s=%s is not a number", block, key, m[1])
			}
			return n
		}
	}
	return 0
}

// field reads "key=value" from a block of the status.
func field(status, block, key string) string {
	in := false
	re := regexp.MustCompile(`(?:^|\s)` + regexp.QuoteMeta(key) + `=(\S+)`)
	for _, line := range strings.Split(status, "\n") {
		if !strings.HasPrefix(line, " ") {
			in = line == block
			continue
		}
		if m := re.FindStringSubmatch(line); in && m != nil {
			return m[1]
		}
	}
	return ""
}

// inNS runs f on a thread switched into the named namespace. Sockets
// created by f belong to that namespace and stay usable afterwards.
func inNS(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := f()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked and dies with this goroutine
		errc <- ferr
	}()
	return <-errc
}

// serveName listens on :port in the node and answers each connection with
// the node's namespace name, so a client can tell who holds the VIP.
func (n *labNode) serveName(t testing.TB, port int) {
	t.Helper()
	var ln net.Listener
	if err := inNS(n.ns, func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", port)) // IPv4 and IPv6
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, n.ns)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
}

// askName connects from the node to addr:port and returns the answer.
func (n *labNode) askName(addr string, port int) (string, error) {
	var c net.Conn
	err := inNS(n.ns, func() (err error) {
		d := net.Dialer{Timeout: 500 * time.Millisecond}
		c, err = d.DialContext(context.Background(), "tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return string(b), nil
}

// vrrpConf renders a keepalived.conf for one speaker of the lab; the same
// text runs under warren-vrrp and keepalived.
type vrrpConf struct {
	Version   int
	VRID      int
	Priority  int
	AdvertInt string
	State     string
	NoPreempt bool
	AuthPass  string
	VIP       string
	MoreVIPs  []string // more virtual_ipaddress lines
	Excluded  []string // virtual_ipaddress_excluded lines
	Extra     string   // more lines inside vrrp_instance
	Top       string   // more sections (vrrp_script ...)
	Global    string   // more lines in global_defs
}

// withDefaults fills in what the configuration leaves unset: version 2,
// VRID 51, advert_int 1, state BACKUP and VIP 10.77.0.100.
func (c vrrpConf) withDefaults() vrrpConf {
	if c.Version == 0 {
		c.Version = 2
	}
	if c.VRID == 0 {
		c.VRID = 51
	}
	if c.AdvertInt == "" {
		c.AdvertInt = "1"
	}
	if c.State == "" {
		c.State = "BACKUP"
	}
	if c.VIP == "" {
		c.VIP = "10.77.0.100"
	}
	return c
}

func (c vrrpConf) String() string {
	c = c.withDefaults()
	var sb strings.Builder
	fmt.Fprintf(&sb, "global_defs {\n  router_id lab\n  vrrp_version %d\n  vrrp_garp_master_delay 1\n%s}\n%s\n", c.Version, c.Global, c.Top)
	fmt.Fprintf(&sb, "vrrp_instance VI_1 {\n  state %s\n  interface eth0\n  virtual_router_id %d\n  priority %d\n  advert_int %s\n",
		c.State, c.VRID, c.Priority, c.AdvertInt)
	if c.NoPreempt {
		sb.WriteString("  nopreempt\n")
	}
	if c.AuthPass != "" && c.Version == 2 {
		fmt.Fprintf(&sb, "  authentication {\n    auth_type PASS\n    auth_pass %s\n  }\n", c.AuthPass)
	}
	if strings.Contains(c.VIP, ":") {
		fmt.Fprintf(&sb, "  virtual_ipaddress {\n    %s/64 dev eth0\n", c.VIP)
	} else {
		fmt.Fprintf(&sb, "  virtual_ipaddress {\n    %s/24 dev eth0 label eth0:vip\n", c.VIP)
	}
	for _, v := range c.MoreVIPs {
		fmt.Fprintf(&sb, "    %s\n", v)
	}
	sb.WriteString("  }\n")
	if len(c.Excluded) > 0 {
		sb.WriteString("  virtual_ipaddress_excluded {\n")
		for _, v := range c.Excluded {
			fmt.Fprintf(&sb, "    %s\n", v)
		}
		sb.WriteString("  }\n")
	}
	fmt.Fprintf(&sb, "%s}\n", c.Extra)
	return sb.String()
}
