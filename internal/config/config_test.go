package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rabbitmq.conf")
	os.WriteFile(path, []byte(`# a comment
listeners.tcp.default = 127.0.0.1:5680
default_user = admin
default_pass = s3cret
loopback_users.guest = false
vm_memory_high_watermark.relative = 0.6
heartbeat = 30
frame_max = 65536
channel_max = 100
log.level = debug
`), 0o644)
	n := Defaults()
	if err := n.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if n.AMQPListen != "127.0.0.1:5680" || n.DefaultUser != "admin" || n.DefaultPass != "s3cret" ||
		len(n.LoopbackUsers) != 0 || n.MemoryHighWater != 0.6 || n.Heartbeat != 30*time.Second ||
		n.FrameMax != 65536 || n.ChannelMax != 100 || n.LogLevel != "debug" {
		t.Fatalf("loaded %+v", n)
	}
}

func TestLoadFileReportsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(path, []byte("heartbeat = soon\nno equals sign\nlisteners.tcp.default = 5672\nfrobnicate = 1\n"), 0o644)
	n := Defaults()
	err := n.LoadFile(path)
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 3 {
		t.Fatalf("err = %v", err)
	}
	for i, want := range []string{"bad.conf:1: heartbeat", "bad.conf:2: expected", "bad.conf:4: frobnicate: unknown setting"} {
		if !strings.Contains(ce.Problems[i], want) {
			t.Errorf("problem %d = %q, want it to contain %q", i, ce.Problems[i], want)
		}
	}
	if !slices.Equal(Defaults().LoopbackUsers, []string{"guest"}) {
		t.Fatal("defaults changed")
	}
}
