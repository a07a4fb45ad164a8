package vrrp

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSplitCommand(t *testing.T) {
	cases := map[string][]string{
		"killall -0 haproxy":                  {"killall", "-0", "haproxy"},
		`/bin/sh -c 'echo a b' x`:             {"/bin/sh", "-c", "echo a b", "x"},
		`/x "quoted arg" \ sp`:                {"/x", "quoted arg", " sp"},
		"  /usr/bin/notify   me  ":            {"/usr/bin/notify", "me"},
		`/bin/bash -c 'rm /tmp/snort_active'`: {"/bin/bash", "-c", "rm /tmp/snort_active"},
	}
	for in, want := range cases {
		got, err := splitCommand(in)
		if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%q: got %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := splitCommand(`/x 'open`); err == nil {
		t.Error("unterminated quote accepted")
	}
}

// TestScriptSecurity checks enable_script_security's rule: a script run as
// root must not be writable by anyone else, nor any directory above it.
func TestScriptSecurity(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to create root-owned files")
	}
	dir := t.TempDir() // 0700, owned by root, under /tmp (sticky)
	script := filepath.Join(dir, "check.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkScriptSecurity(script, true); err != nil {
		t.Fatalf("root-owned 0755 script refused: %v", err)
	}
	if err := os.Chmod(script, 0o757); err != nil {
		t.Fatal(err)
	}
	if err := checkScriptSecurity(script, true); err == nil {
		t.Fatal("world-writable script accepted")
	}
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := checkScriptSecurity(script, true); err == nil {
		t.Fatal("script in a world-writable directory accepted")
	}
	if err := checkScriptSecurity(script, false); err != nil {
		t.Fatalf("a script run as an unprivileged user is not checked: %v", err)
	}
	r := &scriptRunner{security: true}
	if _, err := r.prepare(script+" arg", nil); err == nil {
		t.Fatal("prepare accepted an insecure script")
	}
	os.Chmod(dir, 0o700)
	argv, err := r.prepare(script+" arg", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.run(context.Background(), argv, nil, time.Second); err != nil {
		t.Fatalf("run: %v", err)
	}
	slow, _ := r.prepare("/bin/sleep 5", nil)
	start := time.Now()
	if err := r.run(context.Background(), slow, nil, 100*time.Millisecond); err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("timeout not enforced: %v after %s", err, time.Since(start))
	}
}

// TestNotifierRelease checks that releasing a stopped instance's queue ends
// its worker once the queued scripts have run, and that a new queue for the
// same name runs its scripts after those of the released one.
func TestNotifierRelease(t *testing.T) {
	r, err := newScriptRunner(false, "")
	if err != nil {
		t.Fatal(err)
	}
	n := newNotifier(r, slog.New(slog.DiscardHandler))
	defer n.close(0)
	out := filepath.Join(t.TempDir(), "order")
	n.run("VI_1", []string{"/bin/sh -c 'sleep 0.3; echo first >>" + out + "'"}, [][]string{nil})
	n.release("VI_1")
	n.run("VI_1", []string{"/bin/sh -c 'echo second >>" + out + "'"}, [][]string{nil})
	n.release("VI_1")
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("workers of released queues still running")
	}
	b, err := os.ReadFile(out)
	if err != nil || string(b) != "first\nsecond\n" {
		t.Fatalf("scripts ran as %q, %v; want first, then second", b, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.queues) != 0 || len(n.retired) != 0 {
		t.Fatalf("left behind: %d queues, %d retired", len(n.queues), len(n.retired))
	}
}
