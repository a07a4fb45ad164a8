package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/warren-mq/warren/internal/durable"
)

// openFile makes seg the file written to, at offset off.
func (s *Store) openFile(seg uint64, off int64) error {
	if s.file != nil && s.fileSeg == seg {
		return nil
	}
	if s.file != nil {
		if err := s.file.Sync(); err != nil {
			return fmt.Errorf("sync segment %d: %w", s.fileSeg, err)
		}
		s.file.Close()
		s.file = nil
	}
	if err := s.reserve(seg); err != nil {
		return err
	}
	path := filepath.Join(s.cfg.Dir, segName(seg))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if errors.Is(err, fs.ErrExist) {
		f, err = os.OpenFile(path, os.O_WRONLY, 0)
	} else if err == nil {
		// A new segment's name must be on disk before any confirm of a
		// record in it: its data alone, synced, would not be found.
		if err = durable.SyncDir(s.cfg.Dir); err != nil {
			f.Close()
			os.Remove(path)
		}
	}
	if err != nil {
		return fmt.Errorf("open segment %d: %w", seg, err)
	}
	s.file, s.fileSeg, s.fileOff = f, seg, off
	return nil
}

// run is the committer: it writes whatever is pending with one write per
// segment and one sync, then runs the callbacks.
func (s *Store) run() {
	defer close(s.exited)
	for {
		select {
		case <-s.wake:
		case <-s.done:
			s.commit()
			return
		}
		s.commit()
	}
}

func (s *Store) commit() {
	s.mu.Lock()
	chunks, callbacks := s.pending, s.callbacks
	s.pending, s.callbacks = nil, nil
	var acks map[uint64][]byte
	if len(s.acks) > 0 {
		acks, s.acks = s.acks, map[uint64][]byte{}
	}
	var doomed []uint64
	if s.recovered { // until then, what is live is not known
		doomed, s.doomed = s.doomed, nil
	}
	startSeg, startOff := s.fileSeg, s.fileOff
	if s.file == nil {
		startSeg = 0 // every chunk goes to a segment of its own
	}
	s.mu.Unlock()

	err := s.write(chunks, len(callbacks) > 0)
	if err != nil {
		s.rewind(chunks, callbacks, startSeg, startOff, err)
	} else {
		if len(chunks) > 0 {
			s.mu.Lock()
			s.writtenSeg, s.writtenOff = s.fileSeg, s.fileOff
			s.wrote.Broadcast()
			s.mu.Unlock()
		}
		for _, cb := range callbacks {
			cb(nil)
		}
	}
	// Releases and delivery marks are never synced on their own (see the
	// package doc).
	for seg, b := range acks {
		if err := s.writeAcks(seg, b); err != nil {
			s.log.Warn("write release records; those messages may be delivered again after a restart", "segment", seg, "error", err)
		}
	}
	s.recycle(chunks, acks)
	for _, seg := range doomed {
		s.retire(seg)
	}
}

// writeAcks appends release and delivery records to the file of the
// segment they are about. A segment already deleted needs none. A write
// that fails, or only partly succeeds, is cut off again: a torn record
// would end the file at recovery, and every release written after it
// would be lost with it.
func (s *Store) writeAcks(seg uint64, b []byte) error {
	af := s.ackFiles[seg]
	if af == nil {
		if _, err := os.Stat(filepath.Join(s.cfg.Dir, segName(seg))); os.IsNotExist(err) {
			return nil
		}
		f, err := os.OpenFile(filepath.Join(s.cfg.Dir, ackName(seg)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("open releases of segment %d: %w", seg, err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("open releases of segment %d: %w", seg, err)
		}
		af = &ackFile{f: f, size: fi.Size()}
		s.ackFiles[seg] = af
	}
	if _, err := af.f.Write(b); err != nil {
		if terr := af.f.Truncate(af.size); terr != nil {
			// The torn record stays: close the file, so that the next
			// write finds its length again.
			af.f.Close()
			delete(s.ackFiles, seg)
			return fmt.Errorf("write releases of segment %d: %w (and cutting the torn record: %v)", seg, err, terr)
		}
		return fmt.Errorf("write releases of segment %d: %w", seg, err)
	}
	af.size += int64(len(b))
	return nil
}

// retire deletes a segment with nothing live in it, with its release
// records, unless it is the one being written.
func (s *Store) retire(seg uint64) {
	s.mu.Lock()
	keep := s.live[seg] != 0 || seg >= s.fileSeg && s.file != nil || seg >= s.nextSeg
	s.mu.Unlock()
	if keep {
		return
	}
	s.dropReader(seg)
	if af := s.ackFiles[seg]; af != nil {
		af.f.Close()
		delete(s.ackFiles, seg)
	}
	if err := os.Remove(filepath.Join(s.cfg.Dir, segName(seg))); err != nil {
		if !os.IsNotExist(err) {
			s.log.Warn("delete released segment", "segment", seg, "error", err)
			return
		}
	}
	s.mu.Lock()
	delete(s.failed, seg)
	s.mu.Unlock()
	// The release records go after their segment: a crash in between
	// leaves a file Recover deletes.
	if err := os.Remove(filepath.Join(s.cfg.Dir, ackName(seg))); err != nil && !os.IsNotExist(err) {
		s.log.Warn("delete releases of a released segment", "segment", seg, "error", err)
	}
	s.log.Debug("deleted released segment", "segment", seg)
}

// write puts chunks on disk and, if sync, syncs the file last written
// (switching segments syncs the one left behind).
func (s *Store) write(chunks []chunk, sync bool) error {
	if len(chunks) == 0 {
		return nil
	}
	for _, c := range chunks {
		if err := s.openFile(c.seg, 0); err != nil {
			return err
		}
		n, err := s.file.WriteAt(c.data, s.fileOff)
		s.fileOff += int64(n)
		if err != nil {
			return fmt.Errorf("write segment %d: %w", c.seg, err)
		}
	}
	if !sync {
		return nil
	}
	if err := s.file.Sync(); err != nil {
		return fmt.Errorf("sync segment %d: %w", s.fileSeg, err)
	}
	return nil
}

// rewind undoes a failed commit: the files go back to where they were,
// every record queued since then fails too (their locations assumed the
// failed ones), and the log continues in a new segment, so that no
// location of a failed record is ever used again (a release for it may
// already be on its way to disk). The failed records stay counted as
// live: whoever holds their locations releases each once, as for any
// other record, and Release knows them as never written. seg is the
// segment the commit began in, 0 if it began a new one; off is where.
func (s *Store) rewind(chunks []chunk, callbacks []func(error), seg uint64, off int64, err error) {
	s.log.Error("store write failed; failing the records not yet on disk", "error", err)
	if s.file != nil && s.fileSeg != seg {
		s.file.Close()
		s.file = nil
	}
	if seg != 0 {
		if oerr := s.openFile(seg, off); oerr == nil {
			if terr := s.file.Truncate(off); terr != nil {
				s.log.Error("cut a failed write off its segment", "segment", seg, "error", terr)
			}
		}
	}
	if s.file != nil {
		s.file.Close()
		s.file = nil
	}
	s.mu.Lock()
	later, laterCallbacks := s.pending, s.callbacks
	s.pending, s.callbacks = nil, nil
	failed := map[uint64]bool{}
	for _, cs := range [][]chunk{chunks, later} {
		for _, c := range cs {
			if c.seg != seg {
				failed[c.seg] = true
			}
		}
	}
	if seg != 0 {
		s.failed[seg] = off
	}
	last := max(seg, s.nextSeg)
	for c := range failed {
		s.failed[c] = 0
		last = max(last, c)
	}
	s.anyFailed.Store(true)
	s.nextSeg, s.nextOff = last+1, 0
	s.writtenSeg, s.writtenOff = s.nextSeg, 0
	s.wrote.Broadcast() // readers of the failed records give up
	s.mu.Unlock()
	// Known as failed now, the segments the commit began can go.
	for c := range failed {
		os.Remove(filepath.Join(s.cfg.Dir, segName(c)))
	}
	for _, cb := range append(callbacks, laterCallbacks...) {
		cb(err)
	}
}
