package store

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type item struct {
	queue string
	loc   Location
	data  string
}

func open(t *testing.T, cfg Config) (*Store, []item) {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []item
	if err := s.Recover(func(q string, loc Location, data []byte) error {
		got = append(got, item{q, loc, string(data)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return s, got
}

// appendSync appends and waits until the record is on disk.
func appendSync(t *testing.T, s *Store, queue, data string) Location {
	t.Helper()
	done := make(chan error, 1)
	loc, err := s.Append(queue, []byte(data), func(err error) { done <- err })
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestRecoverWhatWasNotReleased(t *testing.T) {
	dir := t.TempDir()
	s, got := open(t, Config{Dir: dir})
	if len(got) != 0 {
		t.Fatalf("new store recovered %v", got)
	}
	var locs []Location
	for i := range 10 {
		locs = append(locs, appendSync(t, s, fmt.Sprintf("q%d", i%2), fmt.Sprintf("m%d", i)))
	}
	for _, i := range []int{0, 3, 4, 9} {
		s.Release(fmt.Sprintf("q%d", i%2), locs[i])
	}
	if d, err := s.ReadAt(locs[5]); err != nil || string(d) != "m5" {
		t.Fatalf("ReadAt: %q %v", d, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, got = open(t, Config{Dir: dir})
	defer s.Close()
	var names []string
	for _, it := range got {
		names = append(names, it.data)
	}
	if fmt.Sprint(names) != "[m1 m2 m5 m6 m7 m8]" {
		t.Fatalf("recovered %v", names)
	}
	if got[0].queue != "q1" || got[0].loc != locs[1] {
		t.Fatalf("first: %+v, want q1 at %+v", got[0], locs[1])
	}
}

func TestTornTailIsCutOff(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Config{Dir: dir})
	for i := range 5 {
		appendSync(t, s, "q", fmt.Sprintf("message-%d", i))
	}
	s.Close()
	seg := filepath.Join(dir, segName(1))
	fi, _ := os.Stat(seg)
	// A crash in the middle of the last write: half a record.
	if err := os.Truncate(seg, fi.Size()-5); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s, got := open(t, Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if len(got) != 4 || got[3].data != "message-3" {
		t.Fatalf("recovered %+v", got)
	}
	if !bytes.Contains(logs.Bytes(), []byte("dropped_bytes=")) {
		t.Fatalf("no log line about the cut:\n%s", logs.String())
	}
	// The log continues after the cut.
	appendSync(t, s, "q", "after")
	s.Close()
	s, got = open(t, Config{Dir: dir})
	defer s.Close()
	if len(got) != 5 || got[4].data != "after" {
		t.Fatalf("after reopening: %+v", got)
	}
}

func TestCorruptRecordEndsItsSegment(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Config{Dir: dir})
	var locs []Location
	for i := range 4 {
		locs = append(locs, appendSync(t, s, "q", fmt.Sprintf("m%d", i)))
	}
	s.Close()
	seg := filepath.Join(dir, segName(1))
	b, _ := os.ReadFile(seg)
	b[locs[2].Offset+headerSize+4] ^= 0xff // flip a payload octet of m2
	os.WriteFile(seg, b, 0o640)
	s, got := open(t, Config{Dir: dir})
	defer s.Close()
	if len(got) != 2 {
		t.Fatalf("recovered %+v, want m0 and m1", got)
	}
}

func TestReleasedSegmentsAreDeleted(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Config{Dir: dir, SegmentSize: 1024})
	var locs []Location
	for i := range 200 {
		locs = append(locs, appendSync(t, s, "q", fmt.Sprintf("%064d", i)))
	}
	segsBefore, _ := s.segments()
	if len(segsBefore) < 10 {
		t.Fatalf("only %d segments for 200 records of 1 KiB segments", len(segsBefore))
	}
	for _, l := range locs[:150] {
		s.Release("q", l)
	}
	appendSync(t, s, "q", "flush")
	// Segments are deleted after the commit's callbacks have run.
	deadline := time.Now().Add(5 * time.Second)
	for {
		segsAfter, _ := s.segments()
		if len(segsAfter) < len(segsBefore)/2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("segments before %d, after releasing 3/4 of the records %d", len(segsBefore), len(segsAfter))
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Close()
	s, got := open(t, Config{Dir: dir, SegmentSize: 1024})
	defer s.Close()
	if len(got) != 51 || got[0].data != fmt.Sprintf("%064d", 150) {
		t.Fatalf("recovered %d records, first %+v", len(got), got[0])
	}
}

// TestGroupCommit appends from many goroutines at once: each append is
// confirmed only once on disk, and they share syncs.
func TestGroupCommit(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Config{Dir: dir})
	const writers, each = 32, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				done := make(chan error, 1)
				if _, err := s.Append("q", []byte(fmt.Sprintf("%d-%d", w, i)), func(err error) { done <- err }); err != nil {
					errs <- err
					return
				}
				if err := <-done; err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s.Close()
	s, got := open(t, Config{Dir: dir})
	defer s.Close()
	if len(got) != writers*each {
		t.Fatalf("recovered %d of %d", len(got), writers*each)
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add(appendRecord(nil, kindPublish, "q", []byte("data"), Location{}))
	f.Add(appendRecord(nil, kindRelease, "q", nil, Location{Segment: 3, Offset: 64}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, size, err := parseRecord(b)
		if err != nil {
			return
		}
		if size > len(b) || size%align != 0 {
			t.Fatalf("size %d for %d octets", size, len(b))
		}
		again := appendRecord(nil, r.kind, r.queue, r.data, r.rel)
		if !bytes.Equal(again[:8], b[:8]) {
			t.Fatalf("re-encoding differs in its header")
		}
	})
}

func BenchmarkAppendConcurrent(b *testing.B) {
	s, err := Open(Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	s.Recover(func(string, Location, []byte) error { return nil })
	defer s.Close()
	data := make([]byte, 1024)
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		done := make(chan error, 1)
		for pb.Next() {
			s.Append("q", data, func(err error) { done <- err })
			<-done
		}
	})
}
