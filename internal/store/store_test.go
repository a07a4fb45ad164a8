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
	queue     string
	loc       Location
	data      string
	delivered bool
}

func open(t *testing.T, cfg Config) (*Store, []item) {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []item
	if err := s.Recover(func(r Recovered) error {
		got = append(got, item{r.Queue, r.Loc, string(r.Data), r.Delivered})
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
	s.Recover(func(Recovered) error { return nil })
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

func TestDeliveredMarksSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Config{Dir: dir})
	a := appendSync(t, s, "q", "a")
	b := appendSync(t, s, "q", "b")
	c := appendSync(t, s, "q", "c")
	if err := s.MarkDelivered("q", b); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDelivered("q", c); err != nil {
		t.Fatal(err)
	}
	if err := s.Release("q", c); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, got := open(t, Config{Dir: dir})
	defer s.Close()
	want := []item{{"q", a, "a", false}, {"q", b, "b", true}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("recovered %v, want %v", got, want)
	}
}

func TestReadAtWaitsForTheCommit(t *testing.T) {
	s, _ := open(t, Config{Dir: t.TempDir()})
	defer s.Close()
	// No callback: nothing waits for this record, yet a reader must get
	// it, whether or not the committer has written it yet.
	for i := range 200 {
		want := fmt.Sprintf("record %d", i)
		loc, err := s.Append("q", []byte(want), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.ReadAt(loc)
		if err != nil || string(got) != want {
			t.Fatalf("ReadAt(%v) = %q, %v; want %q", loc, got, err, want)
		}
	}
	big := bytes.Repeat([]byte("x"), 10000)
	loc, err := s.Append("q", big, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadAt(loc); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("ReadAt of a large record: %d octets, %v", len(got), err)
	}
	if _, err := s.ReadAt(Location{Segment: loc.Segment, Offset: loc.Offset + 1<<20}); err == nil {
		t.Fatal("ReadAt past the end of the log succeeded")
	}
}

// A release lives in a later segment than its publish. When that later
// segment is deleted (nothing in it is live any more) while the publish's
// segment stays, the release must not be lost with it, or the acked
// message comes back after a restart.
func TestReleasesOutliveTheirSegment(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentSize: 256}
	s, _ := open(t, cfg)
	keep := appendSync(t, s, "q", "keep")   // stays live: its segment stays
	acked := appendSync(t, s, "q", "acked") // released from a later segment
	var later []Location
	for i := range 16 {
		later = append(later, appendSync(t, s, "q", fmt.Sprintf("later-%d", i)))
	}
	if later[len(later)-1].Segment == keep.Segment {
		t.Fatalf("segments did not roll over: %v", later)
	}
	if err := s.Release("q", acked); err != nil {
		t.Fatal(err)
	}
	for _, l := range later {
		if err := s.Release("q", l); err != nil {
			t.Fatal(err)
		}
	}
	// Roll well past the segments that held the releases, so they go.
	for i := range 20 {
		l := appendSync(t, s, "q", fmt.Sprintf("filler-%d", i))
		if err := s.Release("q", l); err != nil {
			t.Fatal(err)
		}
	}
	appendSync(t, s, "q", "last")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := os.ReadDir(dir)
	s, got := open(t, cfg)
	defer s.Close()
	var names []string
	for _, it := range got {
		names = append(names, it.data)
	}
	if fmt.Sprint(names) != "[keep last]" {
		t.Fatalf("recovered %v, want [keep last] (%d segment files)", names, len(segs))
	}
}

// A release can reach the disk while the publish it is about does not (a
// message delivered and acked before its sync, then a crash). Its
// location must never be used again, or the release would drop a later,
// confirmed message.
func TestReleaseOfALostPublishDropsNothingLater(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Config{Dir: dir})
	m0 := appendSync(t, s, "q", "m0")
	s.Close()
	fi, err := os.Stat(filepath.Join(dir, segName(m0.Segment)))
	if err != nil {
		t.Fatal(err)
	}
	// The release of a publish that would have followed m0.
	lost := Location{Segment: m0.Segment, Offset: fi.Size()}
	if err := os.WriteFile(filepath.Join(dir, ackName(lost.Segment)), appendRecord(nil, kindRelease, "q", nil, lost), 0o640); err != nil {
		t.Fatal(err)
	}
	s, got := open(t, Config{Dir: dir})
	if len(got) != 1 {
		t.Fatalf("recovered %+v", got)
	}
	m1 := appendSync(t, s, "q", "m1")
	if m1 == lost {
		t.Fatalf("a location with a release on disk was used again: %+v", m1)
	}
	s.Close()
	s, got = open(t, Config{Dir: dir})
	defer s.Close()
	if len(got) != 2 || got[1].data != "m1" {
		t.Fatalf("recovered %+v, want m0 and m1", got)
	}
}

// After a restart, with nothing appended yet, records of earlier segments
// read back at once, releases being written or not.
func TestReadAtAfterRestart(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Config{Dir: dir})
	a := appendSync(t, s, "q", "a")
	b := appendSync(t, s, "q", "b")
	s.Close()
	s, _ = open(t, Config{Dir: dir})
	defer s.Close()
	if err := s.Release("q", a); err != nil {
		t.Fatal(err)
	}
	// Let the committer write the release: a commit of releases alone.
	time.Sleep(100 * time.Millisecond)
	done := make(chan error, 1)
	go func() {
		got, err := s.ReadAt(b)
		if err == nil && string(got) != "b" {
			err = fmt.Errorf("read %q", got)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadAt of a recovered record hangs")
	}
}
