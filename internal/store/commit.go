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
	chunks, callbacks, doomed := s.pending, s.callbacks, s.doomed
	s.pending, s.callbacks, s.doomed = nil, nil, nil
	startSeg, startOff := s.fileSeg, s.fileOff
	s.mu.Unlock()

	// Releases alone need no sync of their own (see the package doc): the
	// next commit that has callbacks syncs them along.
	err := s.write(chunks, len(callbacks) > 0)
	if err != nil {
		s.rewind(chunks, callbacks, startSeg, startOff, err)
		return
	}
	for _, cb := range callbacks {
		cb(nil)
	}
	for _, seg := range doomed {
		s.mu.Lock()
		stillDead := s.live[seg] == 0 && seg < s.fileSeg
		s.mu.Unlock()
		if !stillDead {
			continue
		}
		if err := os.Remove(filepath.Join(s.cfg.Dir, segName(seg))); err != nil && !os.IsNotExist(err) {
			s.log.Warn("delete released segment", "segment", seg, "error", err)
		} else {
			s.log.Debug("deleted released segment", "segment", seg)
		}
	}
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
// failed ones), and the log continues from the last durable position.
func (s *Store) rewind(chunks []chunk, callbacks []func(error), seg uint64, off int64, err error) {
	s.log.Error("store write failed; failing the records not yet on disk", "error", err)
	for _, c := range chunks {
		if c.seg > seg {
			os.Remove(filepath.Join(s.cfg.Dir, segName(c.seg)))
		}
	}
	if s.file != nil && s.fileSeg != seg {
		s.file.Close()
		s.file = nil
	}
	if oerr := s.openFile(seg, off); oerr == nil {
		s.file.Truncate(off)
	}
	s.mu.Lock()
	later, laterCallbacks := s.pending, s.callbacks
	s.pending, s.callbacks = nil, nil
	for _, cs := range [][]chunk{chunks, later} {
		for _, c := range cs {
			if s.live[c.seg] -= c.publishes; s.live[c.seg] <= 0 {
				delete(s.live, c.seg)
			}
		}
	}
	s.nextSeg, s.nextOff = seg, off
	s.mu.Unlock()
	for _, cb := range append(callbacks, laterCallbacks...) {
		cb(err)
	}
}
