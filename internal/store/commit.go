package store

import (
	"fmt"
	"os"
	"path/filepath"
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
	f, err := os.OpenFile(filepath.Join(s.cfg.Dir, segName(seg)), os.O_CREATE|os.O_WRONLY, 0o640)
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
// segment they are about. A segment already deleted needs none.
func (s *Store) writeAcks(seg uint64, b []byte) error {
	f := s.ackFiles[seg]
	if f == nil {
		if _, err := os.Stat(filepath.Join(s.cfg.Dir, segName(seg))); os.IsNotExist(err) {
			return nil
		}
		var err error
		f, err = os.OpenFile(filepath.Join(s.cfg.Dir, ackName(seg)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("open releases of segment %d: %w", seg, err)
		}
		s.ackFiles[seg] = f
	}
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("write releases of segment %d: %w", seg, err)
	}
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
	if f := s.ackFiles[seg]; f != nil {
		f.Close()
		delete(s.ackFiles, seg)
	}
	if err := os.Remove(filepath.Join(s.cfg.Dir, segName(seg))); err != nil {
		if !os.IsNotExist(err) {
			s.log.Warn("delete released segment", "segment", seg, "error", err)
		}
		return
	}
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
// already be on its way to disk).
func (s *Store) rewind(chunks []chunk, callbacks []func(error), seg uint64, off int64, err error) {
	s.log.Error("store write failed; failing the records not yet on disk", "error", err)
	last := seg
	for _, c := range chunks {
		if c.seg > seg {
			os.Remove(filepath.Join(s.cfg.Dir, segName(c.seg)))
		}
		last = max(last, c.seg)
	}
	if s.file != nil && s.fileSeg != seg {
		s.file.Close()
		s.file = nil
	}
	if seg != 0 {
		if oerr := s.openFile(seg, off); oerr == nil {
			s.file.Truncate(off)
		}
	}
	if s.file != nil {
		s.file.Close()
		s.file = nil
	}
	s.mu.Lock()
	later, laterCallbacks := s.pending, s.callbacks
	s.pending, s.callbacks = nil, nil
	for _, cs := range [][]chunk{chunks, later} {
		for _, c := range cs {
			last = max(last, c.seg)
			if s.live[c.seg] -= c.publishes; s.live[c.seg] <= 0 {
				delete(s.live, c.seg)
			}
		}
	}
	s.nextSeg, s.nextOff = last+1, 0
	s.writtenSeg, s.writtenOff = s.nextSeg, 0
	s.wrote.Broadcast() // readers of the failed records give up
	s.mu.Unlock()
	for _, cb := range append(callbacks, laterCallbacks...) {
		cb(err)
	}
}
