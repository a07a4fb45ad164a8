package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
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

// TestRabbitmqadminFromTheNode fetches the node's own rabbitmqadmin as the
// runbooks do (wget http://NODE:15672/cli/rabbitmqadmin, chmod +x), runs
// the runbook's lines with it and then the rest of its grammar: every
// listing, declare and delete of every object, purge, close, publish and
// get with their options, export and import, the output formats and the
// exit codes of mistakes.
func TestRabbitmqadminFromTheNode(t *testing.T) {
	n, conn := startNode(t, buildWarren(t), t.TempDir())
	resp, err := http.Get("http://" + n.mgmt + "/cli/rabbitmqadmin")
	if err != nil {
		t.Fatal(err)
	}
	tool, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.HasPrefix(tool, []byte("#!/usr/bin/env python3")) {
		t.Fatalf("GET /cli/rabbitmqadmin: %d\n%.200s", resp.StatusCode, tool)
	}
	dir := t.TempDir()
	admin := filepath.Join(dir, "rabbitmqadmin")
	if err := os.WriteFile(admin, tool, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(admin, 0o755); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(n.mgmt)
	run := func(stdin string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(admin, append([]string{"-H", host, "-P", port}, args...)...)
		cmd.Dir = dir
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("rabbitmqadmin %s: %v", strings.Join(args, " "), err)
		}
		return string(out), code
	}
	// One client stays connected, for the connection and channel
	// listings and close.
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	connName := conn.LocalAddr().String() + " -> " + conn.RemoteAddr().String()
	defs := filepath.Join(dir, "defs.json")

	steps := []struct {
		stdin string
		args  []string
		want  string // in the output
		code  int
	}{
		// The runbook's lines, in its order. Its "get queue=test" reads a
		// queue the runbook made elsewhere: here it is made and bound to
		// the exchange first.
		{"", []string{"declare", "exchange", "name=my-new-exchange", "type=fanout"}, "exchange declared", 0},
		{"", []string{"declare", "queue", "name=my-new-queue", "durable=false"}, "queue declared", 0},
		{"", []string{"declare", "queue", "name=test"}, "queue declared", 0},
		{"", []string{"declare", "binding", "source=my-new-exchange", "destination=test"}, "binding declared", 0},
		{"", []string{"publish", "exchange=my-new-exchange", "routing_key=test", "payload=hello, world"}, "Message published", 0},
		{"", []string{"get", "queue=test", "requeue=false"}, "| test        | my-new-exchange | 0             | hello, world | 12            | string           | False       |", 0},
		{"", []string{"list", "queues", "name", "messages"}, "| test         | 0        |", 0},

		// Listings, each in every format.
		{"", []string{"list", "exchanges"}, "| my-new-exchange    | fanout  |", 0},
		{"", []string{"list", "bindings"}, "| my-new-exchange | test         |              |", 0},
		{"", []string{"list", "connections"}, connName, 0},
		{"", []string{"list", "channels"}, connName + " (1)", 0},
		{"", []string{"list", "users"}, "administrator", 0},
		{"", []string{"list", "vhosts"}, "| /    |", 0},
		{"", []string{"list", "permissions"}, "guest", 0},
		{"", []string{"list", "nodes"}, "disc", 0},
		{"", []string{"list", "policies"}, "No items", 0},
		{"", []string{"list", "operator_policies"}, "No items", 0},
		{"", []string{"list", "parameters"}, "No items", 0},
		{"", []string{"list", "vhost_limits"}, "No items", 0},
		{"", []string{"list", "consumers"}, "No items", 0},
		{"", []string{"show", "overview"}, "| rabbitmq_version |", 0},
		{"", []string{"-f", "long", "list", "queues", "name"}, "name: my-new-queue", 0},
		{"", []string{"-f", "tsv", "list", "queues", "name", "durable"}, "name\tdurable\nmy-new-queue\tFalse\ntest\tTrue", 0},
		{"", []string{"-q", "-f", "tsv", "list", "queues", "name"}, "my-new-queue\ntest\n", 0},
		{"", []string{"-f", "kvp", "list", "queues", "name"}, `name="my-new-queue"`, 0},
		{"", []string{"-f", "bash", "list", "queues"}, "my-new-queue test", 0},
		{"", []string{"-f", "raw_json", "list", "vhosts", "name"}, `[{"name":"/"}]`, 0},
		{"", []string{"-f", "pretty_json", "list", "vhosts", "name"}, "[\n  {\n    \"name\": \"/\"\n  }\n]", 0},
		{"", []string{"-S", "name", "-R", "-f", "bash", "list", "queues"}, "test my-new-queue", 0},

		// Every object declared and deleted, in a vhost of its own.
		{"", []string{"declare", "vhost", "name=v2"}, "vhost declared", 0},
		{"", []string{"declare", "user", "name=alice", "password=s3cret", "tags=monitoring"}, "user declared", 0},
		{"", []string{"declare", "permission", "vhost=v2", "user=alice", "configure=.*", "write=.*", "read=.*"}, "permission declared", 0},
		{"", []string{"-V", "v2", "declare", "queue", "name=q2", "arguments={\"x-max-length\": 10}"}, "queue declared", 0},
		{"", []string{"-V", "v2", "declare", "exchange", "name=x2", "type=topic", "durable=false"}, "exchange declared", 0},
		{"", []string{"-V", "v2", "declare", "binding", "source=x2", "destination=q2", "routing_key=a.#"}, "binding declared", 0},
		{"", []string{"-V", "v2", "declare", "policy", "name=p2", "pattern=^q", "definition={\"max-length\": 5}", "apply-to=queues"}, "policy declared", 0},
		{"", []string{"-V", "v2", "declare", "operator_policy", "name=op2", "pattern=^q", "definition={\"max-length\": 7}"}, "operator_policy declared", 0},
		{"", []string{"declare", "vhost_limit", "vhost=v2", "name=max-queues", "value=100"}, "vhost_limit declared", 0},
		{"", []string{"-V", "v2", "list", "queues", "name", "arguments.x-max-length"}, "| q2   | 10                     |", 0},
		{"", []string{"list", "vhost_limits"}, "max-queues", 0},
		{"", []string{"-u", "alice", "-p", "s3cret", "-V", "v2", "list", "queues", "name"}, "| q2   |", 0},
		{"", []string{"-u", "alice", "-p", "wrong", "list", "queues"}, "*** Access refused: /api/queues", 1},
		{"", []string{"-V", "v2", "publish", "exchange=x2", "routing_key=a.b", "payload=aGk=", "payload_encoding=base64", "properties={\"headers\": {\"h\": 1}}"}, "Message published", 0},
		{"from stdin", []string{"-V", "v2", "publish", "exchange=x2", "routing_key=a.c"}, "Message published", 0},
		{"", []string{"-V", "v2", "publish", "exchange=x2", "routing_key=b"}, "Message published but NOT routed", 0},
		{"", []string{"-V", "v2", "get", "queue=q2", "count=2", "ackmode=ack_requeue_true"}, "from stdin", 0},
		{"", []string{"-V", "v2", "get", "queue=q2", "payload_file=" + filepath.Join(dir, "payload")}, "| a.b         | x2       | 1             | 2             | True        |", 0},
		{"", []string{"-V", "v2", "purge", "queue", "name=q2"}, "queue purged", 0},
		{"", []string{"-V", "v2", "list", "queues", "name", "messages"}, "| q2   | 0        |", 0},
		{"", []string{"-V", "v2", "export", defs}, `Exported definitions for ` + host + ` to "` + defs + `"`, 0},
		{"", []string{"-V", "v2", "delete", "binding", "source=x2", "destination_type=queue", "destination=q2", "properties_key=a.%23"}, "binding deleted", 0},
		{"", []string{"-V", "v2", "delete", "queue", "name=q2"}, "queue deleted", 0},
		{"", []string{"-V", "v2", "import", defs}, `Uploaded definitions from "` + host + `" to ` + defs, 0},
		{"", []string{"-V", "v2", "list", "bindings", "source", "destination", "routing_key"}, "| x2     | q2          | a.#         |", 0},
		{"", []string{"-V", "v2", "delete", "exchange", "name=x2"}, "exchange deleted", 0},
		{"", []string{"-V", "v2", "delete", "policy", "name=p2"}, "policy deleted", 0},
		{"", []string{"-V", "v2", "delete", "operator_policy", "name=op2"}, "operator_policy deleted", 0},
		{"", []string{"delete", "vhost_limit", "vhost=v2", "name=max-queues"}, "vhost_limit deleted", 0},
		{"", []string{"delete", "permission", "vhost=v2", "user=alice"}, "permission deleted", 0},
		{"", []string{"delete", "user", "name=alice"}, "user deleted", 0},
		{"", []string{"delete", "vhost", "name=v2"}, "vhost deleted", 0},
		{"", []string{"close", "connection", "name=" + connName}, "connection closed", 0},

		// Mistakes: rabbitmqadmin's messages and exit codes.
		{"", []string{"delete", "queue", "name=nosuch"}, "*** Not found: /api/queues/%2F/nosuch", 1},
		{"", []string{"declare", "queue"}, `ERROR: mandatory argument "name" is required`, 1},
		{"", []string{"declare", "queue", "name=x", "colour=red"}, `ERROR: Argument "colour" is not recognised`, 1},
		{"", []string{"declare", "queue", "name=x", "arguments=nope"}, "ERROR: Could not parse JSON:\n  nope", 1},
		{"", []string{"declare", "gadget", "name=x"}, "ERROR: Type gadget not recognised", 1},
		{"", []string{"list", "gadgets"}, "ERROR: Don't know how to list gadgets", 1},
		{"", []string{"frob"}, "ERROR: Action frob not understood", 1},
		{"", []string{"-f", "xml", "list", "queues"}, "ERROR: Format xml not recognised", 1},
		{"", []string{"get", "queue=test", "requeue=maybe"}, `ERROR: requeue must be true or false, not "maybe"`, 1},
		{"", []string{"help", "subcommands"}, "  declare queue name=... [auto_delete=... durable=... arguments=... node=... queue_type=...]", 0},
		{"", []string{"--version"}, "rabbitmqadmin 3.10.8", 0},
		{"", []string{"-P", "1", "list", "queues"}, "*** Could not connect:", 1},
	}
	for _, s := range steps {
		out, code := run(s.stdin, s.args...)
		if code != s.code || !strings.Contains(out, s.want) {
			t.Errorf("rabbitmqadmin %s: exit %d, want %d\n%s\nwant it to contain %q", strings.Join(s.args, " "), code, s.code, out, s.want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "payload")); err != nil || string(b) != "hi" {
		t.Errorf("payload_file: %q %v", b, err)
	}
}
