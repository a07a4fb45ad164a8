package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// labCLI runs the warren-lab binary of a test.
type labCLI struct {
	t        *testing.T
	bin, dir string
	name     string
}

// run runs warren-lab with args and returns its exit code and output.
func (c *labCLI) run(args ...string) (int, string) {
	c.t.Helper()
	full := append([]string{"-dir", c.dir, "-bin", c.bin, "-examples", "../../examples", "-name", c.name}, args...)
	cmd := exec.Command(filepath.Join(c.bin, "warren-lab"), full...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("warren-lab %s: %v", strings.Join(args, " "), err)
	}
	return code, string(out)
}

// ok runs warren-lab with args, which must succeed.
func (c *labCLI) ok(args ...string) string {
	c.t.Helper()
	code, out := c.run(args...)
	if code != 0 {
		c.t.Fatalf("warren-lab %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// eventually runs status until cond holds on its output, for up to d.
func (c *labCLI) eventually(d time.Duration, what string, cond func(status string) bool) string {
	c.t.Helper()
	var out string
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		out = c.ok("status")
		if cond(out) {
			return out
		}
	}
	c.t.Fatalf("%s: not within %v; status:\n%s", what, d, out)
	return ""
}

// holder is the host that status says holds the virtual IP.
func holder(status string) string {
	for _, line := range strings.Split(status, "\n") {
		if strings.Contains(line, "holds the virtual IP") {
			return strings.Fields(line)[0]
		}
	}
	return ""
}

// TestLabUpBreakDown drives warren-lab as a user would: without root it
// refuses before making anything; up brings the stack up and a client
// behind the virtual IP publishes and consumes; killing the balancer host
// that holds the virtual IP moves it to the other one and the client
// carries on; a partition cuts a host off and heal plugs it in; down
// leaves no namespace, process or file behind.
func TestLabUpBreakDown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root: the lab makes network namespaces")
	}
	for _, tool := range []string{"ip", "pgrep", "setpriv", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("this test needs %s (scripts/deps/lab.txt): %v", tool, err)
		}
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "../../cmd/warren", "../../cmd/warrenctl", "../../cmd/warren-lb",
		"../../cmd/warren-vrrp", "../../cmd/warren-perf", "../../cmd/warren-lab")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	c := &labCLI{t: t, bin: bin, dir: filepath.Join(t.TempDir(), "lab"), name: fmt.Sprintf("wlt%d", os.Getpid()%10000)}
	t.Cleanup(func() {
		if code, out := c.run("down"); code != 0 {
			t.Errorf("down at cleanup: %d\n%s", code, out)
		}
	})

	// Without root: a clear refusal, nothing made.
	nobody := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		filepath.Join(bin, "warren-lab"), "-dir", c.dir, "-bin", bin, "-name", c.name, "up")
	raw, err := nobody.CombinedOutput()
	if err == nil || !strings.Contains(string(raw), "needs root") {
		t.Fatalf("up without root: %v\n%s", err, raw)
	}
	t.Logf("up without root: %s", raw)
	if _, err := os.Stat(filepath.Join("/run/netns", c.name+"-sw")); err == nil {
		t.Fatal("up without root made a namespace")
	}

	out := c.ok("up")
	if !strings.Contains(out, "amqp://lab:lab@192.168.0.200:5672/") {
		t.Fatalf("up does not print the AMQP URL on the virtual IP:\n%s", out)
	}
	status := c.ok("status")
	for _, want := range []string{"running warren@node1, warren@node2, warren@node3", "holds the virtual IP"} {
		if !strings.Contains(status, want) {
			t.Fatalf("status lacks %q:\n%s", want, status)
		}
	}
	perf := func() {
		t.Helper()
		out := c.ok("exec", "client", "warren-perf", "-h", "amqp://lab:lab@192.168.0.200:5672/", "-u", "lab.q", "-ad=false",
			"-f", "persistent", "-c", "20", "-C", "200", "-z", "60")
		if !strings.Contains(out, "confirmed 200") || !strings.Contains(out, "received 200") {
			t.Fatalf("warren-perf through the virtual IP:\n%s", out)
		}
	}
	perf()
	status = c.ok("status")
	if !strings.Contains(status, "lab.q") {
		t.Fatalf("status does not list the queue:\n%s", status)
	}
	// The stats page and the management API, through the virtual IP
	// from the client host, as up prints them.
	if out := c.ok("exec", "client", "curl", "-sf", "http://192.168.0.200:8100/stats;csv"); !strings.Contains(out, "amqp,node1,") {
		t.Errorf("stats page through the virtual IP:\n%s", out)
	}
	if out := c.ok("exec", "client", "curl", "-sf", "-u", "lab:lab", "http://192.168.0.200:15672/api/overview"); !strings.Contains(out, "rabbitmq_version") {
		t.Errorf("management API through the virtual IP:\n%s", out)
	}

	// The balancer host that holds the address dies: the other takes it.
	first := holder(status)
	c.ok("kill", first)
	c.eventually(15*time.Second, "the virtual IP moving off "+first, func(s string) bool {
		h := holder(s)
		return h != "" && h != first
	})
	perf()
	c.ok("start", first)
	c.eventually(15*time.Second, first+" running again", func(s string) bool {
		for _, line := range strings.Split(s, "\n") {
			if strings.HasPrefix(line, first+" ") {
				return strings.Contains(line, "warren-lb running") && strings.Contains(line, "warren-vrrp running")
			}
		}
		return false
	})

	// A node cut off, then back.
	c.ok("partition", "node3")
	c.eventually(15*time.Second, "node3 out of the running nodes", func(s string) bool {
		return strings.Contains(s, "running warren@node1, warren@node2\n") && strings.Contains(s, "node3   192.168.0.13   out")
	})
	c.ok("heal")
	c.eventually(30*time.Second, "node3 running again", func(s string) bool {
		return strings.Contains(s, "running warren@node1, warren@node2, warren@node3")
	})

	// Wrong names are refused with what is there.
	if code, out := c.run("kill", "node9"); code == 0 || !strings.Contains(out, "hosts: node1, node2, node3, lb1, lb2, client") {
		t.Errorf("kill node9: %d %s", code, out)
	}

	t.Logf("status at the end:\n%s", c.ok("status"))
	c.ok("down")
	for _, h := range Hosts() {
		if _, err := os.Stat(filepath.Join("/run/netns", c.name+"-"+h.Name)); err == nil {
			t.Errorf("namespace of %s left after down", h.Name)
		}
		if _, err := os.Stat(filepath.Join("/etc/netns", c.name+"-"+h.Name)); err == nil {
			t.Errorf("/etc/netns entry of %s left after down", h.Name)
		}
	}
	if _, err := os.Stat(c.dir); err == nil {
		t.Error("the lab's directory is left after down")
	}
	if out, err := exec.Command("pgrep", "-f", c.dir).Output(); err == nil {
		t.Errorf("processes left after down:\n%s", out)
	}
}
