package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// rabbitmqadmin returns the path of Debian's rabbitmqadmin, fetching it
// if needed; the test fails if it cannot be had.
func rabbitmqadmin(t *testing.T) string {
	t.Helper()
	script, err := filepath.Abs("../../scripts/rabbitmqadmin.sh")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(script).Output()
	if err != nil {
		t.Fatalf("rabbitmqadmin: %v (%s)", err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestRabbitmqadminRunbookCommands runs the runbooks' rabbitmqadmin
// commands, unchanged but for the port, against a warren node.
func TestRabbitmqadminRunbookCommands(t *testing.T) {
	admin := rabbitmqadmin(t)
	n, _ := startNode(t, buildWarren(t), t.TempDir())
	_, port, _ := strings.Cut(n.mgmt, ":")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("python3", append([]string{admin, "-H", "127.0.0.1", "-P", port}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("rabbitmqadmin %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"declare", "exchange", "name=my-new-exchange", "type=fanout"}, "exchange declared"},
		{[]string{"declare", "queue", "name=my-new-queue", "durable=false"}, "queue declared"},
		{[]string{"declare", "binding", "source=my-new-exchange", "destination=my-new-queue"}, "binding declared"},
		{[]string{"publish", "exchange=my-new-exchange", "routing_key=test", "payload=hello, world"}, "Message published"},
		{[]string{"list", "queues"}, "| my-new-queue | 1        |"},
		{[]string{"get", "queue=my-new-queue", "ackmode=ack_requeue_true"}, "hello, world"},
		{[]string{"get", "queue=my-new-queue", "ackmode=ack_requeue_false"}, "| True        |"},
		{[]string{"list", "queues", "name", "messages"}, "| my-new-queue | 0        |"},
		{[]string{"list", "exchanges"}, "my-new-exchange"},
		{[]string{"list", "users"}, "administrator"},
		{[]string{"show", "overview"}, "warren@"},
		{[]string{"delete", "queue", "name=my-new-queue"}, "queue deleted"},
		{[]string{"list", "queues"}, "No items"},
	}
	for _, s := range steps {
		if out := run(s.args...); !strings.Contains(out, s.want) {
			t.Errorf("rabbitmqadmin %s:\n%s\nwant it to contain %q", strings.Join(s.args, " "), out, s.want)
		}
	}
	// The runbooks' older form, "get queue=test requeue=false", is refused
	// by rabbitmqadmin 3.10 itself, before any request.
	cmd := exec.Command("python3", admin, "-H", "127.0.0.1", "-P", port, "get", "queue=test", "requeue=false")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), `Argument "requeue" is not recognised`) {
		t.Errorf("get requeue=false: %v\n%s", err, out)
	}
}
