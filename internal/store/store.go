package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/warren-mq/warren/internal/durable"
)

// Config configures a Store. Zero values mean the defaults in each field's
// doc.
type Config struct {
	// Dir holds the segment files; it is created if missing.
	Dir string
	// SegmentSize is the size past which a new segment is started.
	// Default 64 MiB.
	SegmentSize int64
	// Logger receives recovery and deletion messages. Default: discard.
	Logger *slog.Logger
}

// ErrClosed is returned for work given to a closed Store.
var ErrClosed = errors.New("store: closed")

// chunk is queued bytes bound for one segment.
type chunk struct {
	seg       uint64
	data      []byte
	publishes int // publish records in data, counted live already
}

// Store is the node's message log. It is safe for concurrent use. One
// committer goroutine, started by Open and stopped by Close, writes and
// syncs; callbacks run on it and must not block.
type Store struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex // guards the fields below
	pending   []chunk
	acks      map[uint64][]byte // release and delivery records by the segment they are about
	free      [][]byte          // written buffers, for reuse
	callbacks []func(error)
	nextSeg   uint64 // segment the next record goes to
	nextOff   int64  // its offset there
	live      map[uint64]int
	doomed    []uint64 // segments with nothing live, to delete
	closed    bool
	// written is where the records on disk end (not necessarily synced);
	// readers of records past it wait on wrote.
	writtenSeg uint64
	writtenOff int64
	wrote      *sync.Cond
	recovered  bool
	// failed holds the records a failed commit never wrote: by segment,
	// the offset from which none was (0: the whole segment). The log
	// continues in a new segment after a failure, so nothing is ever
	// written again at such a location. An entry goes with its segment.
	// anyFailed says whether there ever was one, so that Stored need not
	// lock while nothing failed.
	failed    map[uint64]int64
	anyFailed atomic.Bool

	wake   chan struct{} // capacity 1: something is pending
	done   chan struct{} // closed by Close
	exited chan struct{} // closed when the committer returns

	rmu     sync.Mutex // guards readers
	readers map[uint64]*os.File

	// Committer goroutine only (and Open/Recover before it starts).
	file     *os.File
	fileSeg  uint64
	fileOff  int64               // durable end of the open file
	ackFiles map[uint64]*ackFile // open for appending
	// reserved is the highest segment number the numbers file allows;
	// a segment past it is numbered only after the file says so.
	reserved uint64
}

// ackFile is a segment's file of release records, open for appending,
// with the length of what was written whole.
type ackFile struct {
	f    *os.File
	size int64
}

// Open opens the log in cfg.Dir and starts the committer. Call Recover
// before the first Append.
//
// A restart never appends to a segment written before it: new records go
// to a new segment. So a location in a segment's cut-off tail is never
// used again, and a release written for a publish that did not reach the
// disk can never be taken for a release of a later one.
func Open(cfg Config) (*Store, error) {
	if cfg.SegmentSize == 0 {
		cfg.SegmentSize = 64 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := durable.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	s := &Store{
		cfg:      cfg,
		log:      cfg.Logger,
		live:     map[uint64]int{},
		failed:   map[uint64]int64{},
		acks:     map[uint64][]byte{},
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		exited:   make(chan struct{}),
		readers:  map[uint64]*os.File{},
		ackFiles: map[uint64]*ackFile{},
		nextSeg:  1,
	}
	s.wrote = sync.NewCond(&s.mu)
	last, err := s.highestNumber()
	if err != nil {
		return nil, err
	}
	s.nextSeg = last + 1
	if err := s.reserve(s.nextSeg); err != nil {
		return nil, err
	}
	s.writtenSeg = s.nextSeg
	go s.run()
	return s, nil
}

// numbersName is the file that keeps the highest segment number the log
// may use before it writes the file again: segment numbers are never used
// twice, even once every file that bore one is deleted.
const numbersName = "segments.next"

// reserveAhead is how many segment numbers one write of the numbers file
// reserves.
const reserveAhead = 1024

// highestNumber is the highest segment number ever used or reserved: the
// numbers file's, or a segment's or release file's that is higher.
func (s *Store) highestNumber() (uint64, error) {
	var last uint64
	b, err := os.ReadFile(filepath.Join(s.cfg.Dir, numbersName))
	switch {
	case err == nil:
		n, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if perr != nil {
			s.log.Warn("segment numbers file does not parse; numbering from the files present", "file", numbersName, "error", perr)
		}
		last = n
	case !os.IsNotExist(err):
		return 0, fmt.Errorf("read segment numbers: %w", err)
	}
	for _, suffix := range []string{".seg", ".ack"} {
		nums, err := s.numbered(suffix)
		if err != nil {
			return 0, err
		}
		if len(nums) > 0 {
			last = max(last, nums[len(nums)-1])
		}
	}
	return last, nil
}

// reserve makes sure segment seg may be used: the numbers file, made
// durable, allows it (and reserveAhead more). Open, then the committer.
func (s *Store) reserve(seg uint64) error {
	if seg <= s.reserved {
		return nil
	}
	upTo := seg + reserveAhead
	if err := durable.WriteFile(s.cfg.Dir, numbersName, []byte(strconv.FormatUint(upTo, 10)+"\n")); err != nil {
		return fmt.Errorf("reserve segment numbers up to %d: %w", upTo, err)
	}
	s.reserved = upTo
	return nil
}

func segName(seg uint64) string { return fmt.Sprintf("%016d.seg", seg) }

// ackName is the file of release and delivery records about segment seg's
// publishes.
func ackName(seg uint64) string { return fmt.Sprintf("%016d.ack", seg) }

// segments lists the segment numbers in the directory, in order.
func (s *Store) segments() ([]uint64, error) { return s.numbered(".seg") }

// numbered lists, in order, the numbers of the files in the directory
// named NUMBER+suffix.
func (s *Store) numbered(suffix string) ([]uint64, error) {
	ents, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("list store directory: %w", err)
	}
	var nums []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), suffix)
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(name, 10, 64); err == nil {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	return nums, nil
}

// scan reads one segment, calling fn for each valid record, and cuts the
// file at the first record that is torn or corrupt. It returns the end of
// the valid records.
func (s *Store) scan(seg uint64, fn func(record, Location)) (int64, error) {
	path := filepath.Join(s.cfg.Dir, segName(seg))
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("read segment %d: %w", seg, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("read segment %d: %w", seg, err)
	}
	// One record at a time through a modest buffer: a segment is never
	// held in memory whole.
	br := bufio.NewReaderSize(f, 1<<20)
	var buf []byte
	var off int64
	for off < fi.Size() {
		r, size, err := readRecord(br, fi.Size()-off, &buf)
		if err != nil {
			if !errors.Is(err, errShort) && !errors.Is(err, ErrCorrupt) {
				return 0, fmt.Errorf("read segment %d at %d: %w", seg, off, err)
			}
			s.log.Warn("cutting segment at a torn or corrupt record", "segment", seg, "offset", off,
				"dropped_bytes", fi.Size()-off, "reason", err.Error())
			if terr := os.Truncate(path, off); terr != nil {
				return 0, fmt.Errorf("truncate segment %d at %d: %w", seg, off, terr)
			}
			break
		}
		fn(r, Location{Segment: seg, Offset: off})
		off += int64(size)
	}
	return off, nil
}

// readRecord reads the next record from br, which has left octets before
// the end of the file, into *buf (grown as needed; the record's data
// points into it).
func readRecord(br *bufio.Reader, left int64, buf *[]byte) (record, int, error) {
	if left < headerSize {
		return record{}, 0, errShort
	}
	head, err := br.Peek(headerSize)
	if err != nil {
		return record{}, 0, err
	}
	size := framedSize(int(binary.BigEndian.Uint32(head)))
	if int64(size) > left {
		return record{}, 0, errShort
	}
	if cap(*buf) < size {
		*buf = make([]byte, size)
	}
	b := (*buf)[:size]
	if _, err := io.ReadFull(br, b); err != nil {
		return record{}, 0, err
	}
	return parseRecord(b)
}

// Recovered is a publish record found by Recover.
type Recovered struct {
	Queue string
	Loc   Location
	// Data is valid only during the call to Recover's function.
	Data []byte
	// Delivered is set when the record was marked delivered.
	Delivered bool
}

// Recover calls fn, in the order written, for every publish record that
// has not been released. It must be called once, after Open and before
// any Append. Each segment is read once, after its (small) file of
// release and delivery records.
func (s *Store) Recover(fn func(Recovered) error) error {
	segs, err := s.segments()
	if err != nil {
		return err
	}
	if err := s.dropOrphanAcks(segs); err != nil {
		return err
	}
	for _, seg := range segs {
		released, delivered, err := s.readAcks(seg)
		if err != nil {
			return err
		}
		var ferr error
		if _, err := s.scan(seg, func(r record, loc Location) {
			if ferr != nil || r.kind != kindPublish || released[loc.Offset] {
				return
			}
			// Counted before fn runs: fn may release it at once.
			s.mu.Lock()
			s.live[seg]++
			s.mu.Unlock()
			ferr = fn(Recovered{Queue: r.queue, Loc: loc, Data: r.data, Delivered: delivered[loc.Offset]})
		}); err != nil {
			return err
		}
		if ferr != nil {
			return ferr
		}
	}
	s.mu.Lock()
	for _, seg := range segs {
		if s.live[seg] <= 0 {
			delete(s.live, seg)
			s.doomed = append(s.doomed, seg)
		}
	}
	s.recovered = true
	s.mu.Unlock()
	s.signal()
	return nil
}

// readAcks reads the release and delivery records about segment seg, by
// offset. A torn tail (a crash mid-write) is cut off: releases need no
// sync, and one lost means a message delivered again, never one lost.
func (s *Store) readAcks(seg uint64) (released, delivered map[int64]bool, err error) {
	released, delivered = map[int64]bool{}, map[int64]bool{}
	path := filepath.Join(s.cfg.Dir, ackName(seg))
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return released, delivered, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read releases of segment %d: %w", seg, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("read releases of segment %d: %w", seg, err)
	}
	br := bufio.NewReaderSize(f, 256<<10)
	var buf []byte
	var off int64
	for off < fi.Size() {
		r, size, err := readRecord(br, fi.Size()-off, &buf)
		if err != nil {
			s.log.Warn("cutting release records at a torn or corrupt one", "segment", seg, "offset", off,
				"dropped_bytes", fi.Size()-off, "reason", err.Error())
			if terr := os.Truncate(path, off); terr != nil {
				return nil, nil, fmt.Errorf("truncate releases of segment %d at %d: %w", seg, off, terr)
			}
			break
		}
		switch r.kind {
		case kindRelease:
			released[r.rel.Offset] = true
		case kindDeliver:
			delivered[r.rel.Offset] = true
		}
		off += int64(size)
	}
	return released, delivered, nil
}

// dropOrphanAcks deletes release files whose segment is gone (a crash
// between deleting the two).
func (s *Store) dropOrphanAcks(segs []uint64) error {
	have := map[uint64]bool{}
	for _, seg := range segs {
		have[seg] = true
	}
	acks, err := s.numbered(".ack")
	if err != nil {
		return err
	}
	for _, n := range acks {
		if !have[n] {
			if err := os.Remove(filepath.Join(s.cfg.Dir, ackName(n))); err != nil {
				return fmt.Errorf("delete releases of a deleted segment: %w", err)
			}
		}
	}
	return nil
}

// Append queues a publish record for queue and returns where it will be.
// done, if not nil, is called on the committer goroutine once the record is
// on disk (nil) or failed to get there; a failed record must be treated as
// never written.
func (s *Store) Append(queue string, data []byte, done func(error)) (Location, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Location{}, ErrClosed
	}
	loc := s.placeLocked(framedSize(1 + 2 + len(queue) + len(data)))
	c := &s.pending[len(s.pending)-1]
	c.data = appendRecord(c.data, kindPublish, queue, data, Location{})
	c.publishes++
	s.live[loc.Segment]++
	if done != nil {
		s.callbacks = append(s.callbacks, done)
	}
	s.mu.Unlock()
	s.signal()
	return loc, nil
}

// Release records that the publish at loc is no longer needed (acked, or
// its queue deleted). The release is written with the next commit, which
// it asks for; nobody waits for it.
func (s *Store) Release(queue string, loc Location) error {
	defer s.signal()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	// A record that was never written needs no release on disk; it still
	// counts as live until released, once, here.
	if !s.failedLocked(loc) {
		s.acks[loc.Segment] = appendRecord(s.ackBufLocked(loc.Segment), kindRelease, queue, nil, loc)
	}
	if s.live[loc.Segment]--; s.live[loc.Segment] <= 0 {
		delete(s.live, loc.Segment)
		if loc.Segment < s.nextSeg && s.recovered {
			s.doomed = append(s.doomed, loc.Segment)
		}
	}
	return nil
}

// MarkDelivered records that the publish at loc has been handed to a
// consumer, so that after a restart it is delivered again flagged as a
// redelivery. Like a release, it rides on the next commit.
func (s *Store) MarkDelivered(queue string, loc Location) error {
	defer s.signal()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if !s.failedLocked(loc) {
		s.acks[loc.Segment] = appendRecord(s.ackBufLocked(loc.Segment), kindDeliver, queue, nil, loc)
	}
	return nil
}

// ErrNotStored is returned for a record whose write failed: it is not in
// the log, and never will be.
var ErrNotStored = errors.New("store: record was never written")

// Stored reports whether the record at loc is in the log, or on its way
// there: false only for a record whose write failed. A queue keeping such
// a message must treat it as held in memory only.
func (s *Store) Stored(loc Location) bool {
	if !s.anyFailed.Load() {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.failedLocked(loc)
}

// failedLocked reports whether loc is a record a failed commit never
// wrote. s.mu held.
func (s *Store) failedLocked(loc Location) bool {
	from, ok := s.failed[loc.Segment]
	return ok && loc.Offset >= from
}

// Write buffers are reused from commit to commit: grown once to their
// working size, they are not grown (and copied) again for every batch.
const (
	bufStart = 64 << 10 // a new buffer's capacity
	bufKeep  = 8 << 20  // larger ones are left to the collector
	freeKeep = 8        // buffers kept for reuse
)

// bufLocked returns an empty buffer, reused if one is free.
func (s *Store) bufLocked() []byte {
	if n := len(s.free); n > 0 {
		b := s.free[n-1]
		s.free[n-1] = nil
		s.free = s.free[:n-1]
		return b
	}
	return make([]byte, 0, bufStart)
}

// ackBufLocked returns the buffer of release records about seg.
func (s *Store) ackBufLocked(seg uint64) []byte {
	if b, ok := s.acks[seg]; ok {
		return b
	}
	return s.bufLocked()
}

// recycle gives written buffers back for reuse.
func (s *Store) recycle(chunks []chunk, acks map[uint64][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := func(b []byte) {
		if cap(b) <= bufKeep && len(s.free) < freeKeep {
			s.free = append(s.free, b[:0])
		}
	}
	for _, c := range chunks {
		keep(c.data)
	}
	for _, b := range acks {
		keep(b)
	}
}

// placeLocked reserves size octets at the end of the log, starting a new
// segment when the current one is full, and makes sure the last pending
// chunk is for that segment.
func (s *Store) placeLocked(size int) Location {
	if s.nextOff > 0 && s.nextOff+int64(size) > s.cfg.SegmentSize {
		// Segments left behind with nothing live can go now.
		if s.live[s.nextSeg] == 0 {
			s.doomed = append(s.doomed, s.nextSeg)
		}
		s.nextSeg++
		s.nextOff = 0
	}
	loc := Location{Segment: s.nextSeg, Offset: s.nextOff}
	s.nextOff += int64(size)
	if n := len(s.pending); n == 0 || s.pending[n-1].seg != s.nextSeg {
		s.pending = append(s.pending, chunk{seg: s.nextSeg, data: s.bufLocked()})
	}
	return loc
}

func (s *Store) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// ReadAt returns the data of the publish record at loc, waiting for the
// committer if the record is not yet written.
func (s *Store) ReadAt(loc Location) ([]byte, error) {
	if err := s.awaitWritten(loc); err != nil {
		return nil, fmt.Errorf("read record %d/%d: %w", loc.Segment, loc.Offset, err)
	}
	f, err := s.reader(loc.Segment)
	if err != nil {
		return nil, fmt.Errorf("read record %d/%d: %w", loc.Segment, loc.Offset, err)
	}
	// Most records are small: one read of a guess at the size usually
	// gets the whole of it.
	b := make([]byte, 4096)
	n, err := f.ReadAt(b, loc.Offset)
	if n < headerSize {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read record %d/%d: %w", loc.Segment, loc.Offset, err)
	}
	size := framedSize(int(binary.BigEndian.Uint32(b)))
	if size > n {
		b = make([]byte, size)
		if _, err := f.ReadAt(b, loc.Offset); err != nil {
			return nil, fmt.Errorf("read record %d/%d: %w", loc.Segment, loc.Offset, err)
		}
	}
	r, _, err := parseRecord(b[:min(size, len(b))])
	if err != nil {
		return nil, fmt.Errorf("read record %d/%d: %w", loc.Segment, loc.Offset, err)
	}
	if r.kind != kindPublish {
		return nil, fmt.Errorf("read record %d/%d: %w: not a publish", loc.Segment, loc.Offset, ErrCorrupt)
	}
	return r.data, nil
}

// awaitWritten waits until the record at loc is in its file.
func (s *Store) awaitWritten(loc Location) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failedLocked(loc) {
		return ErrNotStored
	}
	for loc.Segment > s.writtenSeg || loc.Segment == s.writtenSeg && loc.Offset >= s.writtenOff {
		if s.closed {
			return ErrClosed
		}
		if loc.Segment > s.nextSeg || loc.Segment == s.nextSeg && loc.Offset >= s.nextOff {
			return fmt.Errorf("%w: past the end of the log", ErrCorrupt)
		}
		s.signal()
		s.wrote.Wait()
	}
	return nil
}

// reader returns a file open for reading segment seg, kept open until the
// segment is deleted or the store closed.
func (s *Store) reader(seg uint64) (*os.File, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if f := s.readers[seg]; f != nil {
		return f, nil
	}
	f, err := os.Open(filepath.Join(s.cfg.Dir, segName(seg)))
	if err != nil {
		return nil, err
	}
	s.readers[seg] = f
	return f, nil
}

// dropReader closes the reading file of segment seg, if open.
func (s *Store) dropReader(seg uint64) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if f := s.readers[seg]; f != nil {
		f.Close()
		delete(s.readers, seg)
	}
}

// Close writes and syncs what is pending, stops the committer and closes
// the files. It is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.exited
		return nil
	}
	s.closed = true
	s.wrote.Broadcast()
	s.mu.Unlock()
	close(s.done)
	<-s.exited
	s.rmu.Lock()
	for seg, f := range s.readers {
		f.Close()
		delete(s.readers, seg)
	}
	s.rmu.Unlock()
	for seg, af := range s.ackFiles {
		af.f.Close()
		delete(s.ackFiles, seg)
	}
	if s.file != nil {
		serr := s.file.Sync()
		if cerr := s.file.Close(); serr == nil {
			serr = cerr
		}
		if serr != nil {
			return fmt.Errorf("close segment %d: %w", s.fileSeg, serr)
		}
	}
	return nil
}
