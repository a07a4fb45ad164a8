package meta

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/warren-mq/warren/internal/crashfs"
)

// TestDefinitionsSurvivePowerLoss: what Apply committed is in the Raft
// log on disk, name and all, when the power goes.
func TestDefinitionsSurvivePowerLoss(t *testing.T) {
	fsys := crashfs.ForTest(t)
	ctx := context.Background()
	dir := filepath.Join(fsys.Dir(), "data", "meta")
	n, err := Open(ctx, Config{NodeID: "test@localhost", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.PutVHost(ctx, VHost{Name: "/"}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.DeclareQueue(ctx, Queue{VHost: "/", Name: "q", Durable: true}); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Cut(); err != nil {
		t.Fatal(err)
	}
	n, err = Open(ctx, Config{NodeID: "test@localhost", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if !n.Restored() {
		t.Fatal("after the power cut the node started as a new one: its Raft log is gone")
	}
	if _, ok := n.Queue("/", "q"); !ok {
		t.Fatal("after the power cut the queue declared before it is gone")
	}
}
