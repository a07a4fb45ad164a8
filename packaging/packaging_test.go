// Package packaging holds what installs warren on hosts: the systemd
// units in systemd/. Its test checks the units with systemd's own
// checker.
package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
