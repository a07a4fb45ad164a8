// Package packaging holds what installs warren on hosts: the systemd
// units in systemd/. Its test checks the units with systemd's own
// checker.
package packaging

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSystemdUnitsVerify runs systemd-analyze verify on every unit, with
// the programs it starts pointed at freshly built binaries (the units name
// the installed paths), so that a misspelt setting or a missing program
// fails.
func TestSystemdUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("this test needs systemd-analyze (Debian package systemd): %v", err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "../cmd/warren", "../cmd/warren-lb", "../cmd/warren-vrrp")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	units, err := filepath.Glob("systemd/*.service")
	if err != nil || len(units) != 3 {
		t.Fatalf("units: %v %v", units, err)
	}
	dir := t.TempDir()
	paths := strings.NewReplacer("/usr/bin/warren ", bin+"/warren ", "/usr/sbin/warren-lb ", bin+"/warren-lb ", "/usr/sbin/warren-vrrp ", bin+"/warren-vrrp ")
	var copies []string
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, filepath.Base(u))
		if err := os.WriteFile(out, []byte(paths.Replace(string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
		copies = append(copies, out)
	}
	out, err := exec.Command(analyze, append([]string{"verify"}, copies...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestDebianPackageInstalls builds the package with scripts/deb.sh and
// installs it with dpkg into a throw-away root (its maintainer scripts run
// outside a chroot, with DPKG_ROOT set, as dpkg allows): the programs,
// units and examples are there, the warren user exists and owns its data
// directory, the installed warren runs, and a purge removes them.
func TestDebianPackageInstalls(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root: dpkg installs with the package's owners and modes")
	}
	for _, tool := range []string{"dpkg", "dpkg-deb", "useradd", "userdel"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("this test needs %s (Debian packages dpkg and passwd): %v", tool, err)
		}
	}
	out, err := exec.Command("../scripts/deb.sh", "-o", t.TempDir()).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/deb.sh: %v\n%s", err, out)
	}
	deb := strings.TrimSpace(string(out))

	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{
		"var/lib/dpkg/status": "", "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/group": "root:x:0:\n",
		"etc/shadow": "root:*:19000:0:99999:7:::\n", "etc/gshadow": "root:*::\n",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dpkg := func(args ...string) {
		t.Helper()
		cmd := exec.Command("dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--force-depends", "--log=/dev/null"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	dpkg("-i", deb)

	for _, f := range []string{"usr/bin/warren", "usr/bin/warrenctl", "usr/bin/warren-perf", "usr/sbin/warren-lb", "usr/sbin/warren-vrrp",
		"lib/systemd/system/warren.service", "lib/systemd/system/warren-lb.service", "lib/systemd/system/warren-vrrp.service",
		"etc/warren/warren.conf", "usr/share/doc/warren/examples/warren.conf", "usr/share/doc/warren/examples/haproxy.cfg", "usr/share/doc/warren/examples/keepalived-master.conf"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	var uid string
	for _, line := range strings.Split(string(passwd), "\n") {
		if f := strings.Split(line, ":"); len(f) > 6 && f[0] == "warren" {
			uid = f[2]
			if f[5] != "/var/lib/warren" || f[6] != "/usr/sbin/nologin" {
				t.Errorf("warren user: %s", line)
			}
		}
	}
	if uid == "" {
		t.Fatalf("no warren user in the root's /etc/passwd:\n%s", passwd)
	}
	st, err := os.Stat(filepath.Join(root, "var/lib/warren"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o750 || fmt.Sprint(st.Sys().(*syscall.Stat_t).Uid) != uid {
		t.Errorf("/var/lib/warren: mode %v, owner %d, want 0750 and %s", st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Uid, uid)
	}
	if out, err := exec.Command(filepath.Join(root, "usr/bin/warren"), "-t", "--config", filepath.Join(root, "etc/warren/warren.conf")).CombinedOutput(); err != nil || !strings.Contains(string(out), "configuration ok") {
		t.Errorf("the installed warren -t: %v\n%s", err, out)
	}

	dpkg("--purge", "warren")
	if _, err := os.Stat(filepath.Join(root, "usr/bin/warren")); !os.IsNotExist(err) {
		t.Errorf("warren still installed after purge: %v", err)
	}
	if passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); strings.Contains(string(passwd), "warren:") {
		t.Errorf("the warren user outlived the purge:\n%s", passwd)
	}
}
