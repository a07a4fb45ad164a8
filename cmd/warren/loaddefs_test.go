package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestLoadDefinitionsAtEveryStart starts a node with load_definitions,
// as RabbitMQ reads it: the file's policy is there once the node serves,
// and again after a restart that follows clear_policy. A file that is not
// JSON stops warren -t and the node, naming the file.
func TestLoadDefinitionsAtEveryStart(t *testing.T) {
	bin := buildWarren(t)
	dir := t.TempDir()
	defsFile := filepath.Join(dir, "definitions.json")
	os.WriteFile(defsFile, []byte(`{"policies":[{"vhost":"/","name":"ha-all","pattern":"^","apply-to":"queues","definition":{"ha-mode":"all"},"priority":0}]}`), 0o644)
	data := filepath.Join(dir, "data")
	conf := "load_definitions = " + defsFile + "\n"

	n, _ := startNodeWithConfig(t, bin, data, conf)
	r := n.warrenctl(t, "-q", "list_policies").ok(t)
	if !strings.Contains(r.stdout, "ha-all") || !strings.Contains(r.stdout, `{"ha-mode":"all"}`) {
		t.Fatalf("list_policies after the start:\n%s", r.stdout)
	}
	n.warrenctl(t, "clear_policy", "ha-all").ok(t)
	n.cmd.Process.Signal(syscall.SIGTERM)
	n.cmd.Wait()

	n, _ = startNodeWithConfig(t, bin, data, conf)
	if r := n.warrenctl(t, "-q", "list_policies").ok(t); !strings.Contains(r.stdout, "ha-all") {
		t.Fatalf("list_policies after a restart:\n%s", r.stdout)
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	n.cmd.Wait()

	os.WriteFile(defsFile, []byte(`{"policies": [`), 0o644)
	confFile := filepath.Join(dir, "broken.conf")
	os.WriteFile(confFile, []byte(conf), 0o644)
	out, err := exec.Command(bin, "-t", "--config", confFile).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "load_definitions "+defsFile+": the definitions are not valid JSON") {
		t.Errorf("warren -t with a broken definitions file: %v\n%s", err, out)
	}
}
