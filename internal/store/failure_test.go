package store

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// smallDisk mounts a tmpfs of size octets for the test.
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a small file system and must run as root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// appendErr appends and returns the record's location and what its
// commit said.
func appendErr(t *testing.T, s *Store, queue string, data []byte) (Location, error) {
	t.Helper()
	done := make(chan error, 1)
	loc, err := s.Append(queue, data, func(err error) { done <- err })
	if err != nil {
		t.Fatal(err)
	}
	return loc, <-done
}

// A write that fails for want of space fails its records, but whoever
// holds their locations still releases them: each must count once, or
// the segment's count reaches zero early and a confirmed record in it is
// deleted with it.
func TestFailedWriteCountsEachRecordOnce(t *testing.T) {
	dir := smallDisk(t, 256<<10)
	s, _ := open(t, Config{Dir: dir})
	keep := appendSync(t, s, "q", "confirmed")
	bad, err := appendErr(t, s, "q", make([]byte, 512<<10))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("oversized write: %v, want ENOSPC", err)
	}
	if bad.Segment != keep.Segment {
		t.Fatalf("failed record in segment %d, confirmed one in %d", bad.Segment, keep.Segment)
	}
	if s.Stored(bad) || !s.Stored(keep) {
		t.Fatalf("Stored: failed record %v, confirmed record %v", s.Stored(bad), s.Stored(keep))
	}
	if _, err := s.ReadAt(bad); !errors.Is(err, ErrNotStored) {
		t.Fatalf("ReadAt of the failed record: %v", err)
	}
	// The broker releases the failed record once its message leaves the
	// queue; the log goes on in a new segment.
	if err := s.Release("q", bad); err != nil {
		t.Fatal(err)
	}
	next := appendSync(t, s, "q", "after")
	if next.Segment <= keep.Segment {
		t.Fatalf("log did not move on to a new segment: %+v", next)
	}
	if err := s.Release("q", next); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, got := open(t, Config{Dir: dir})
	defer s.Close()
	if len(got) != 1 || got[0].data != "confirmed" {
		t.Fatalf("recovered %+v, want the confirmed record", got)
	}
}

// fileSizeLimit limits the size of files this process writes, as
// `ulimit -f` does, until the test ends; writes past it fail with EFBIG.
func fileSizeLimit(t *testing.T, n uint64) (restore func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	signal.Ignore(syscall.SIGXFSZ)
	lim := old
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	done := false
	restore = func() {
		if !done {
			done = true
			syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
			signal.Reset(syscall.SIGXFSZ)
		}
	}
	t.Cleanup(restore)
	return restore
}

// A write of release records that fails part-way must not leave half a
// record in the file: recovery would end the file there, and every
// release written after it in the same run would be lost, so acked
// messages would come back after a clean restart.
func TestTornReleaseWriteIsCutOff(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Config{Dir: dir})
	var locs []Location
	for i := range 100 {
		locs = append(locs, appendSync(t, s, "q", fmt.Sprintf("m%d", i)))
	}
	ackFile := filepath.Join(dir, ackName(locs[0].Segment))
	restore := fileSizeLimit(t, 1000)
	for _, l := range locs[:50] {
		if err := s.Release("q", l); err != nil {
			t.Fatal(err)
		}
	}
	// Wait for the committer to have tried: it opens the file, then
	// writes.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(ackFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no release written")
		}
	}
	time.Sleep(200 * time.Millisecond)
	restore()
	for _, l := range locs[50:] {
		if err := s.Release("q", l); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, got := open(t, Config{Dir: dir})
	defer s.Close()
	for _, it := range got {
		var i int
		fmt.Sscanf(it.data, "m%d", &i)
		if i >= 50 {
			t.Fatalf("%s was released after a failed release write, and came back", it.data)
		}
	}
	// The failed releases may come back (delivered again), never half.
	t.Logf("%d of the 50 whose release write failed came back", len(got))
}

// Segment numbers are never used twice, even after every segment that
// bore them is deleted: a stale release file surviving a crash must not
// meet a new segment of its number.
func TestSegmentNumbersAreNeverReused(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Config{Dir: dir})
	first := appendSync(t, s, "q", "a")
	s.Close()
	s, got := open(t, Config{Dir: dir})
	if err := s.Release("q", got[0].loc); err != nil {
		t.Fatal(err)
	}
	// The release empties the segment, which the next commit deletes.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, segName(first.Segment))); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("released segment not deleted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Close()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".seg") {
			t.Fatalf("segment left: %s", e.Name())
		}
	}
	s, _ = open(t, Config{Dir: dir})
	defer s.Close()
	next := appendSync(t, s, "q", "b")
	if next.Segment <= first.Segment {
		t.Fatalf("new record in segment %d, which was used before (%d)", next.Segment, first.Segment)
	}
}

// A numbers file that does not parse is not fatal: numbering goes on
// from the files present.
func TestUnreadableSegmentNumbersFile(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Config{Dir: dir})
	a := appendSync(t, s, "q", "a")
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, numbersName), []byte("garbage"), 0o640); err != nil {
		t.Fatal(err)
	}
	s, got := open(t, Config{Dir: dir})
	defer s.Close()
	if len(got) != 1 {
		t.Fatalf("recovered %+v", got)
	}
	if b := appendSync(t, s, "q", "b"); b.Segment <= a.Segment {
		t.Fatalf("new record in segment %d after %d", b.Segment, a.Segment)
	}
}
