package store

import (
	"fmt"
	"path/filepath"
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
