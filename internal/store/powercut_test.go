package store

import (
	"bytes"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/warren-mq/warren/internal/crashfs"
)

// TestConfirmedRecordsSurvivePowerLoss: a record whose append was
// reported durable is recovered after a power cut, in a store whose
// directory, and segments, were all new; so is one in a segment cut
// later.
func TestConfirmedRecordsSurvivePowerLoss(t *testing.T) {
	fsys := crashfs.ForTest(t)
	dir := filepath.Join(fsys.Dir(), "data", "msgs")
	s, _ := open(t, Config{Dir: dir, SegmentSize: 4096})
	var want []string
	for i := range 40 { // about five segments
		d := fmt.Sprintf("m%d-%0500d", i, i)
		appendSync(t, s, "q", d)
		want = append(want, d[:4])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Cut(); err != nil {
		t.Fatal(err)
	}
	s, got := open(t, Config{Dir: dir, SegmentSize: 4096})
	defer s.Close()
	var names []string
	for _, it := range got {
		names = append(names, it.data[:4])
	}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("after the power cut the store recovered %d records %v, want %d", len(names), names, len(want))
	}
}

// TestFailedSyncIsNotRetried: a commit whose fsync failed fails its
// records, and says so in the log. Linux may have dropped those writes
// and cleared the error, so a store that synced the same file again and
// reported the next records durable could lose them with the power; this
// one goes on in a new segment, and what it reports durable after the
// failure survives a power cut.
func TestFailedSyncIsNotRetried(t *testing.T) {
	fsys := crashfs.ForTest(t)
	dir := filepath.Join(fsys.Dir(), "msgs")
	var logged bytes.Buffer
	cfg := Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logged}, nil))}
	s, _ := open(t, cfg)
	appendSync(t, s, "q", "before")
	fsys.FailSyncs(1)
	if _, err := appendErr(t, s, "q", []byte("failed")); err == nil {
		t.Fatal("an append whose fsync failed was reported durable")
	}
	for i := range 3 {
		appendSync(t, s, "q", fmt.Sprintf("after%d", i))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logged.String(), "store write failed") {
		t.Errorf("the failed fsync was not logged; the log:\n%s", logged.String())
	}
	if err := fsys.Cut(); err != nil {
		t.Fatal(err)
	}
	s, got := open(t, Config{Dir: dir})
	defer s.Close()
	var names []string
	for _, it := range got {
		if it.data != "failed" { // may survive or not: it was never confirmed
			names = append(names, it.data)
		}
	}
	if want := "[before after0 after1 after2]"; fmt.Sprint(names) != want {
		t.Fatalf("after the power cut the store recovered %v, want %s", names, want)
	}
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
