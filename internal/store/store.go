package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
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
	callbacks []func(error)
	nextSeg   uint64 // segment the next record goes to
	nextOff   int64  // its offset there
	live      map[uint64]int
	doomed    []uint64 // segments with nothing live, to delete
	closed    bool

	wake   chan struct{} // capacity 1: something is pending
	done   chan struct{} // closed by Close
	exited chan struct{} // closed when the committer returns

	// Committer goroutine only (and Open/Recover before it starts).
	file    *os.File
	fileSeg uint64
	fileOff int64 // durable end of the open file

	released map[Location]bool // from Open until Recover
}

// Open reads the segments in cfg.Dir, cutting off torn or corrupt tails,
// and starts the committer. Call Recover before the first Append.
func Open(cfg Config) (*Store, error) {
	if cfg.SegmentSize == 0 {
		cfg.SegmentSize = 64 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	s := &Store{
		cfg:      cfg,
		log:      cfg.Logger,
		live:     map[uint64]int{},
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		exited:   make(chan struct{}),
		released: map[Location]bool{},
		nextSeg:  1,
	}
	segs, err := s.segments()
	if err != nil {
		return nil, err
	}
	for _, seg := range segs {
		end, err := s.scan(seg, func(r record, loc Location) {
			if r.kind == kindRelease {
				s.released[r.rel] = true
			}
		})
		if err != nil {
			return nil, err
		}
		s.nextSeg, s.nextOff = seg, end
	}
	if err := s.openFile(s.nextSeg, s.nextOff); err != nil {
		return nil, err
	}
	go s.run()
	return s, nil
}

func segName(seg uint64) string { return fmt.Sprintf("%016d.seg", seg) }

// segments lists the segment numbers in the directory, in order.
func (s *Store) segments() ([]uint64, error) {
	ents, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("list store directory: %w", err)
	}
	var segs []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		segs = append(segs, n)
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i] < segs[j] })
	return segs, nil
}

// scan reads one segment, calling fn for each valid record, and cuts the
// file at the first record that is torn or corrupt. It returns the end of
// the valid records.
func (s *Store) scan(seg uint64, fn func(record, Location)) (int64, error) {
	path := filepath.Join(s.cfg.Dir, segName(seg))
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read segment %d: %w", seg, err)
	}
	off := 0
	for off < len(b) {
		r, size, err := parseRecord(b[off:])
		if err != nil {
			s.log.Warn("cutting segment at a torn or corrupt record", "segment", seg, "offset", off,
				"dropped_bytes", len(b)-off, "reason", err.Error())
			if terr := os.Truncate(path, int64(off)); terr != nil {
				return 0, fmt.Errorf("truncate segment %d at %d: %w", seg, off, terr)
			}
			break
		}
		fn(r, Location{Segment: seg, Offset: int64(off)})
		off += size
	}
	return int64(off), nil
}

// Recover calls fn, in the order written, for every publish record that
// has not been released; data is valid only during the call. It must be
// called once, after Open and before any Append.
func (s *Store) Recover(fn func(queue string, loc Location, data []byte) error) error {
	segs, err := s.segments()
	if err != nil {
		return err
	}
	var ferr error
	for _, seg := range segs {
		if _, err := s.scan(seg, func(r record, loc Location) {
			if ferr != nil || r.kind != kindPublish || s.released[loc] {
				return
			}
			s.live[seg]++
			ferr = fn(r.queue, loc, r.data)
		}); err != nil {
			return err
		}
		if ferr != nil {
			return ferr
		}
	}
	s.released = nil
	s.mu.Lock()
	for _, seg := range segs {
		if s.live[seg] == 0 && seg < s.nextSeg {
			s.doomed = append(s.doomed, seg)
		}
	}
	s.mu.Unlock()
	s.signal()
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
	s.placeLocked(framedSize(1 + 2 + len(queue) + 16))
	c := &s.pending[len(s.pending)-1]
	c.data = appendRecord(c.data, kindRelease, queue, nil, loc)
	if s.live[loc.Segment]--; s.live[loc.Segment] <= 0 {
		delete(s.live, loc.Segment)
		if loc.Segment < s.nextSeg {
			s.doomed = append(s.doomed, loc.Segment)
		}
	}
	return nil
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
		s.pending = append(s.pending, chunk{seg: s.nextSeg})
	}
	return loc
}

func (s *Store) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// ReadAt returns the data of the publish record at loc.
func (s *Store) ReadAt(loc Location) ([]byte, error) {
	f, err := os.Open(filepath.Join(s.cfg.Dir, segName(loc.Segment)))
	if err != nil {
		return nil, fmt.Errorf("read record %d/%d: %w", loc.Segment, loc.Offset, err)
	}
	defer f.Close()
	head := make([]byte, headerSize)
	if _, err := f.ReadAt(head, loc.Offset); err != nil {
		return nil, fmt.Errorf("read record %d/%d: %w", loc.Segment, loc.Offset, err)
	}
	n := framedSize(int(uint32(head[0])<<24 | uint32(head[1])<<16 | uint32(head[2])<<8 | uint32(head[3])))
	b := make([]byte, n)
	if _, err := f.ReadAt(b, loc.Offset); err != nil {
		return nil, fmt.Errorf("read record %d/%d: %w", loc.Segment, loc.Offset, err)
	}
	r, _, err := parseRecord(b)
	if err != nil {
		return nil, fmt.Errorf("read record %d/%d: %w", loc.Segment, loc.Offset, err)
	}
	if r.kind != kindPublish {
		return nil, fmt.Errorf("read record %d/%d: %w: not a publish", loc.Segment, loc.Offset, ErrCorrupt)
	}
	return r.data, nil
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
	s.mu.Unlock()
	close(s.done)
	<-s.exited
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
