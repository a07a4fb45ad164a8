package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// ctlResult is what one warrenctl run printed and returned.
type ctlResult struct {
	stdout, stderr string
	code           int
}

// warrenctl runs the warrenctl binary against n with its cookie file.
func (n *node) warrenctl(t *testing.T, args ...string) ctlResult {
	t.Helper()
	_, port, _ := strings.Cut(n.cluster, ":")
	return runCtl(t, append([]string{"--port", port, "--cookie-file", n.cookie}, args...)...)
}

func runCtl(t *testing.T, args ...string) ctlResult {
	t.Helper()
	cmd := exec.Command(warrenctlBin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return ctlResult{out.String(), errOut.String(), code}
}

// ok fails the test unless warrenctl succeeded.
func (r ctlResult) ok(t *testing.T) ctlResult {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("warrenctl exited %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	return r
}

func (r ctlResult) fails(t *testing.T, code int, msg string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stderr, msg) {
		t.Fatalf("warrenctl exited %d, want %d with %q\nstdout: %s\nstderr: %s", r.code, code, msg, r.stdout, r.stderr)
	}
}

func TestCookieFileIsCreatedPrivateAndChecked(t *testing.T) {
	n, _ := startNode(t, buildWarren(t), t.TempDir())
	st, err := os.Stat(n.cookie)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o400 {
		t.Errorf("cookie file mode %04o, want 0400", st.Mode().Perm())
	}
	n.warrenctl(t, "ping").ok(t)

	// A copy readable by everyone, as some runbooks make it: refused, with
	// the fix named.
	loose := filepath.Join(t.TempDir(), "cookie")
	b, _ := os.ReadFile(n.cookie)
	os.WriteFile(loose, b, 0o600)
	os.Chmod(loose, 0o777)
	_, port, _ := strings.Cut(n.cluster, ":")
	runCtl(t, "--port", port, "--cookie-file", loose, "ping").fails(t, 69, "run chmod 400 "+loose)

	wrong := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrong, []byte("NOTTHECOOKIE"), 0o400)
	runCtl(t, "--port", port, "--cookie-file", wrong, "ping").fails(t, 69, "refused its cookie")

	// The node refuses to start with a cookie others can read.
	os.Chmod(n.cookie, 0o644)
	cmd := exec.Command(warrenBin, "--data-dir", t.TempDir(), "--amqp-listen", freePort(t), "--mgmt-listen", freePort(t),
		"--cluster-listen", freePort(t), "--cookie-file", n.cookie, "--prometheus-listen", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "chmod 400") {
		t.Errorf("node started with a group-readable cookie: %v\n%s", err, out)
	}
}

func TestUsersVHostsAndPermissions(t *testing.T) {
	n, _ := startNode(t, buildWarren(t), t.TempDir())
	r := n.warrenctl(t, "add_user", "bob", "s3cret").ok(t)
	if !strings.HasPrefix(r.stdout, "Adding user \"bob\" ...\n") {
		t.Errorf("add_user printed %q", r.stdout)
	}
	n.warrenctl(t, "add_user", "bob", "x").fails(t, 70, `User "bob" already exists`)
	n.warrenctl(t, "set_user_tags", "bob", "monitoring", "policymaker").ok(t)
	n.warrenctl(t, "add_vhost", "staging").ok(t)
	n.warrenctl(t, "set_permissions", "-p", "staging", "bob", "^bob\\.", ".*", ".*").ok(t)
	n.warrenctl(t, "set_permissions", "-p", "nope", "bob", ".*", ".*", ".*").fails(t, 65, "Virtual host nope does not exist")
	n.warrenctl(t, "set_permissions", "bob", ".*").fails(t, 64, "not enough arguments")

	if r := n.warrenctl(t, "-q", "list_users").ok(t); r.stdout != "user\ttags\nbob\t[monitoring, policymaker]\nguest\t[administrator]\n" {
		t.Errorf("list_users -q = %q", r.stdout)
	}
	if r := n.warrenctl(t, "-s", "list_user_permissions", "bob").ok(t); r.stdout != "staging\t^bob\\.\t.*\t.*\n" {
		t.Errorf("list_user_permissions -s = %q", r.stdout)
	}
	r = n.warrenctl(t, "list_vhosts", "--formatter", "json", "name").ok(t)
	js := r.stdout[strings.Index(r.stdout, "["):]
	var vhosts []map[string]any
	if err := json.Unmarshal([]byte(js), &vhosts); err != nil || len(vhosts) != 2 {
		t.Errorf("list_vhosts json = %q (%v)", r.stdout, err)
	}

	// The password works for AMQP, and authenticate_user checks it.
	c, err := amqp091.Dial("amqp://bob:s3cret@" + n.addr + "/staging")
	if err != nil {
		t.Fatalf("bob cannot log in: %v", err)
	}
	c.Close()
	n.warrenctl(t, "authenticate_user", "bob", "s3cret").ok(t)
	n.warrenctl(t, "authenticate_user", "bob", "wrong").fails(t, 65, "invalid credentials")
	n.warrenctl(t, "change_password", "bob", "new").ok(t)
	n.warrenctl(t, "authenticate_user", "bob", "new").ok(t)

	n.warrenctl(t, "clear_permissions", "-p", "staging", "bob").ok(t)
	if r := n.warrenctl(t, "-s", "list_user_permissions", "bob").ok(t); r.stdout != "" {
		t.Errorf("permissions after clear: %q", r.stdout)
	}
	n.warrenctl(t, "delete_user", "bob").ok(t)
	n.warrenctl(t, "delete_user", "bob").fails(t, 67, `User "bob" does not exist`)
	n.warrenctl(t, "delete_vhost", "staging").ok(t)
	n.warrenctl(t, "delete_vhost", "staging").fails(t, 65, "does not exist")
	n.warrenctl(t, "list_queues", "bogus").fails(t, 64, "Info key(s) bogus are not supported")
	n.warrenctl(t, "no_such_command").fails(t, 64, "Command 'no_such_command' not found")
}

func TestListingsAndQueueCommands(t *testing.T) {
	n, c := startNode(t, buildWarren(t), t.TempDir())
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("jobs", true, false, false, false, amqp091.Table{"x-max-length": int32(100)}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		ch.PublishWithContext(context.Background(), "", "jobs", false, false, amqp091.Publishing{Body: []byte("x")})
	}
	if _, err := ch.QueueDeclare("busy", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Consume("busy", "worker-1", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		return strings.Contains(n.warrenctl(t, "-s", "list_queues").stdout, "jobs\t3\n")
	})
	r := n.warrenctl(t, "list_queues", "name", "durable", "arguments", "consumers").ok(t)
	want := "Timeout: 60.0 seconds ...\nListing queues for vhost / ...\nname\tdurable\targuments\tconsumers\nbusy\tfalse\t\t1\njobs\ttrue\t[{\"x-max-length\",100}]\t0\n"
	if r.stdout != want {
		t.Errorf("list_queues:\n%s\nwant:\n%s", r.stdout, want)
	}
	if r := n.warrenctl(t, "-s", "list_consumers", "queue_name", "consumer_tag", "ack_required").ok(t); r.stdout != "busy\tworker-1\ttrue\n" {
		t.Errorf("list_consumers = %q", r.stdout)
	}
	if r := n.warrenctl(t, "-s", "list_bindings", "source_name", "destination_name", "routing_key").ok(t); r.stdout != "\tbusy\tbusy\n\tjobs\tjobs\n" {
		t.Errorf("list_bindings = %q", r.stdout)
	}
	n.warrenctl(t, "delete_queue", "jobs", "--if-empty").fails(t, 65, "Queue is not empty")
	n.warrenctl(t, "delete_queue", "busy", "--if-unused").fails(t, 65, "Queue is in use")
	n.warrenctl(t, "purge_queue", "jobs").ok(t)
	n.warrenctl(t, "purge_queue", "nope").fails(t, 69, "not_found")
	n.warrenctl(t, "delete_queue", "jobs", "--if-empty").ok(t)
	n.warrenctl(t, "delete_queue", "jobs").fails(t, 65, "Queue not found")

	// close_connection takes the pid list_connections shows.
	closed := c.NotifyClose(make(chan *amqp091.Error, 1))
	r = n.warrenctl(t, "-s", "list_connections", "pid", "user", "channels").ok(t)
	fields := strings.Fields(r.stdout)
	if len(fields) != 3 || fields[1] != "guest" || fields[2] != "1" {
		t.Fatalf("list_connections = %q", r.stdout)
	}
	if r := n.warrenctl(t, "-s", "list_channels", "user", "consumer_count").ok(t); r.stdout != "guest\t1\n" {
		t.Errorf("list_channels = %q", r.stdout)
	}
	n.warrenctl(t, "close_connection", fields[0], "go away").ok(t)
	select {
	case e := <-closed:
		if e == nil || e.Code != 320 || e.Reason != "CONNECTION_FORCED - go away" {
			t.Errorf("client saw %v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStopAppResetStartApp follows the runbooks' sequence: stop_app,
// reset, start_app. The process stays up throughout; AMQP closes with 320
// and reopens; reset empties the node.
func TestStopAppResetStartApp(t *testing.T) {
	n, c := startNode(t, buildWarren(t), t.TempDir())
	ch, _ := c.Channel()
	if _, err := ch.QueueDeclare("kept-until-reset", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	n.warrenctl(t, "add_user", "ops", "pw").ok(t)
	closed := c.NotifyClose(make(chan *amqp091.Error, 1))
	n.warrenctl(t, "reset").fails(t, 70, "stop it first")

	n.warrenctl(t, "stop_app").ok(t)
	select {
	case e := <-closed:
		if e == nil || e.Code != 320 {
			t.Errorf("client saw %v, want 320", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed by stop_app")
	}
	if _, err := amqp091.Dial("amqp://guest:guest@" + n.addr + "/"); err == nil {
		t.Fatal("AMQP still accepts connections after stop_app")
	}
	n.warrenctl(t, "list_queues").fails(t, 69, "not running")
	n.warrenctl(t, "status").ok(t)

	// start_app alone keeps everything.
	n.warrenctl(t, "start_app").ok(t)
	n.warrenctl(t, "await_startup").ok(t)
	if r := n.warrenctl(t, "-s", "list_queues", "name").ok(t); r.stdout != "kept-until-reset\n" {
		t.Errorf("after restart: %q", r.stdout)
	}
	n.warrenctl(t, "stop_app").ok(t)
	n.warrenctl(t, "reset").ok(t)
	n.warrenctl(t, "start_app").ok(t)
	if r := n.warrenctl(t, "-s", "list_queues", "name").ok(t); r.stdout != "" {
		t.Errorf("after reset: %q", r.stdout)
	}
	if r := n.warrenctl(t, "-s", "list_users").ok(t); r.stdout != "guest\t[administrator]\n" {
		t.Errorf("users after reset: %q", r.stdout)
	}
	c2, err := amqp091.Dial("amqp://guest:guest@" + n.addr + "/")
	if err != nil {
		t.Fatalf("AMQP after start_app: %v", err)
	}
	c2.Close()

	// stop ends the process.
	n.warrenctl(t, "stop").ok(t)
	done := make(chan error, 1)
	go func() { done <- n.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("node exited with %v\n%s", err, n.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("node still running after warrenctl stop")
	}
}

func TestDefinitionsExportImport(t *testing.T) {
	n, _ := startNode(t, buildWarren(t), t.TempDir())
	n.warrenctl(t, "import_definitions", "../../internal/mgmt/testdata/rabbitmq-3.10-definitions.json").ok(t)
	if r := n.warrenctl(t, "-s", "list_queues", "-p", "staging", "name").ok(t); r.stdout != "orders.created\norders.dead\n" {
		t.Errorf("imported queues: %q", r.stdout)
	}
	file := filepath.Join(t.TempDir(), "defs.json")
	n.warrenctl(t, "export_definitions", file).ok(t)
	m, _ := startNode(t, buildWarren(t), t.TempDir())
	m.warrenctl(t, "import_definitions", file).ok(t)
	a := withoutClusterID(t, n.warrenctl(t, "-q", "export_definitions", "-").ok(t).stdout)
	b := withoutClusterID(t, m.warrenctl(t, "-q", "export_definitions", "-").ok(t).stdout)
	if a != b {
		t.Errorf("export differs after import:\n%s\n%s", a, b)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte("{not json"), 0o600)
	m.warrenctl(t, "import_definitions", bad).fails(t, 65, "not valid JSON")
}

// TestRunbookPolicies sets the runbooks' HA policies, as written in them.
func TestRunbookPolicies(t *testing.T) {
	n, _ := startNode(t, buildWarren(t), t.TempDir())
	for _, args := range [][]string{
		{"set_policy", "-p", "/", "ha-all", ".+", `{"ha-mode": "all"}`},
		{"set_policy", "ha-all", "^", `{"ha-mode":"all"}`},
		{"set_policy", "ha-all-queue", `^ha\.`, `{"ha-mode":"all","ha-sync-mode":"automatic"}`},
		{"set_policy", "ha-two", "^", `{"ha-mode":"exactly","ha-params":2,"ha-sync-mode":"automatic"}`},
		{"set_policy", "half", "^queue.*1$", `{"ha-mode":"exactly","ha-params":1}`, "--priority", "2", "--apply-to", "queues"},
	} {
		n.warrenctl(t, args...).ok(t)
	}
	r := n.warrenctl(t, "-q", "list_policies").ok(t)
	want := "vhost\tname\tpattern\tapply-to\tdefinition\tpriority\n" +
		"/\tha-all\t^\tall\t{\"ha-mode\":\"all\"}\t0\n" +
		"/\tha-all-queue\t^ha\\.\tall\t{\"ha-mode\":\"all\",\"ha-sync-mode\":\"automatic\"}\t0\n" +
		"/\tha-two\t^\tall\t{\"ha-mode\":\"exactly\",\"ha-params\":2,\"ha-sync-mode\":\"automatic\"}\t0\n" +
		"/\thalf\t^queue.*1$\tqueues\t{\"ha-mode\":\"exactly\",\"ha-params\":1}\t2\n"
	if r.stdout != want {
		t.Errorf("list_policies:\n%s\nwant:\n%s", r.stdout, want)
	}
	n.warrenctl(t, "set_policy", "bad", ".*", `{"ha-mode":"exactly"}`).fails(t, 65, `ha-mode="exactly" takes an integer, none given`)
	n.warrenctl(t, "set_policy", "bad", ".*", `{"federation-upstream-set":"all"}`).fails(t, 65, "are not recognised policy settings")
	n.warrenctl(t, "set_policy", "bad", ".*", `not json`).fails(t, 65, "not a JSON object")
	n.warrenctl(t, "set_operator_policy", "cap", ".*", `{"max-length":100}`, "--apply-to", "queues").ok(t)
	if r := n.warrenctl(t, "-s", "list_operator_policies").ok(t); !strings.Contains(r.stdout, "cap\t.*\tqueues\t{\"max-length\":100}") {
		t.Errorf("list_operator_policies = %q", r.stdout)
	}
	n.warrenctl(t, "clear_policy", "ha-all").ok(t)
	n.warrenctl(t, "clear_policy", "ha-all").fails(t, 65, "Parameter does not exist")
}

// withoutClusterID drops the one global parameter that differs between
// any two nodes, their cluster ids.
func withoutClusterID(t *testing.T, export string) string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(export), &v); err != nil {
		t.Fatalf("export is not JSON: %v\n%s", err, export)
	}
	var keep []any
	for _, g := range v["global_parameters"].([]any) {
		if g.(map[string]any)["name"] != "internal_cluster_id" {
			keep = append(keep, g)
		}
	}
	v["global_parameters"] = keep
	out, _ := json.Marshal(v)
	return string(out)
}

func TestClusterName(t *testing.T) {
	n, _ := startNode(t, buildWarren(t), t.TempDir())
	if r := n.warrenctl(t, "cluster_status").ok(t); !strings.Contains(r.stdout, "Cluster name: warren@") {
		t.Errorf("default cluster name: %q", r.stdout)
	}
	n.warrenctl(t, "set_cluster_name", "rabbit-prod").ok(t)
	if r := n.warrenctl(t, "cluster_status").ok(t); !strings.Contains(r.stdout, "Cluster name: rabbit-prod") {
		t.Errorf("after set_cluster_name: %q", r.stdout)
	}
	if r := n.warrenctl(t, "-s", "list_global_parameters").ok(t); !strings.Contains(r.stdout, "cluster_name\t\"rabbit-prod\"\n") {
		t.Errorf("list_global_parameters: %q", r.stdout)
	}
}

func TestLimitCommands(t *testing.T) {
	n, c := startNode(t, buildWarren(t), t.TempDir())
	n.warrenctl(t, "set_vhost_limits", "-p", "/", `{"max-queues": 1}`).ok(t)
	if r := n.warrenctl(t, "-s", "list_vhost_limits").ok(t); r.stdout != "/\t{\"max-queues\":1}\n" {
		t.Errorf("list_vhost_limits = %q", r.stdout)
	}
	ch, _ := c.Channel()
	if _, err := ch.QueueDeclare("one", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("two", false, true, false, false, nil); err == nil || !strings.Contains(err.Error(), "queue limit in vhost '/' (1) is reached") {
		t.Errorf("second queue: %v", err)
	}
	n.warrenctl(t, "set_vhost_limits", "-p", "/", `{"max-bogus": 1}`).fails(t, 65, "unknown limit")
	n.warrenctl(t, "clear_vhost_limits", "-p", "/").ok(t)
	n.warrenctl(t, "set_user_limits", "guest", `{"max-channels": 5}`).ok(t)
	if r := n.warrenctl(t, "-s", "list_user_limits").ok(t); r.stdout != "guest\t{\"max-channels\":5}\n" {
		t.Errorf("list_user_limits = %q", r.stdout)
	}
	n.warrenctl(t, "clear_user_limits", "guest", "all").ok(t)
	if r := n.warrenctl(t, "-s", "list_user_limits").ok(t); r.stdout != "" {
		t.Errorf("after clear: %q", r.stdout)
	}
}
