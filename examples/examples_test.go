// Package examples holds the HA stack's configuration files, written for
// the runbooks' hosts (node1..node3 for warren, lb1 and lb2 for
// warren-lb and warren-vrrp). Its test checks each file with its
// program's own check.
package examples

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestExamplesPassTheirChecks runs warren -t, warren-lb -c and
// warren-vrrp --config-test on the examples, unchanged, as an operator
// would on the hosts they are written for: in a mount namespace whose
// /etc (an overlay on this machine's) resolves the runbooks' host names
// and has the files where the examples say they are.
func TestExamplesPassTheirChecks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root, for a mount namespace (unshare -m) and an overlay on /etc")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("this test needs unshare (Debian package util-linux): %v", err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "../cmd/warren", "../cmd/warren-lb", "../cmd/warren-vrrp")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ex, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	overlay := t.TempDir()
	script := `set -e
mkdir -p "$OV/upper" "$OV/work"
mount -t overlay overlay -o lowerdir=/etc,upperdir="$OV/upper",workdir="$OV/work" /etc
printf '127.0.1.1 node1\n127.0.1.2 node2\n127.0.1.3 node3\n127.0.1.11 lb1\n127.0.1.12 lb2\n' >> /etc/hosts
mkdir -p /etc/warren /etc/keepalived
cp "$EX/definitions.json" /etc/warren/
cp "$EX/notify.sh" /etc/keepalived/
"$BIN/warren" -t --config "$EX/warren.conf"
"$BIN/warren-lb" -c -f "$EX/haproxy.cfg"
"$BIN/warren-vrrp" --config-test -f "$EX/keepalived-master.conf"
"$BIN/warren-vrrp" --config-test -f "$EX/keepalived-backup.conf"
`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "OV="+overlay, "EX="+ex, "BIN="+bin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("checking the examples: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
