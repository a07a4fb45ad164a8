package broker

import (
	"bufio"
	"io"
	"net"
	"sync"
	"time"
)

// linkInlineMax is the most flushInline writes from the goroutine that
// did the work; more is left to the writer goroutine, which then gathers
// what arrives while it writes.
const linkInlineMax = 64 << 10

// linkConn is one queue link's connection: an output buffer that any
// goroutine appends frames to, and a writer goroutine that sends what has
// gathered with one write call and pings while the link is idle. A
// goroutine working through a batch writes its frames itself at the end
// of the batch (flushInline) while the writer is idle. The end that owns
// the link runs the reader.
type linkConn struct {
	nc net.Conn
	tw *tryWriter // flushInline's write; guarded by wmu
	w  io.Writer  // the writer goroutine's: nc's socket (socketOutput)

	// wmu serializes writes to the socket: the writer goroutine's and
	// flushInline's. It is taken before omu.
	wmu sync.Mutex

	omu    sync.Mutex // guards out, spare, synced and ended
	out    frameWriter
	synced uint64 // the last definitions position sent with opSync
	spare  []byte
	ended  bool
	signal chan struct{} // capacity 1: something to write
	done   chan struct{} // closed when the link ends
	exited chan struct{} // closed when the writer has returned
}

func newLinkConn(nc net.Conn) *linkConn {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return &linkConn{nc: nc, tw: newTryWriter(nc), w: socketOutput(nc), signal: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{})}
}

// send appends one frame written by fn and wakes the writer; it reports
// false, writing nothing, once the link has ended.
func (l *linkConn) send(op linkOp, fn func(w *frameWriter)) bool {
	return l.sendSynced(nil, 0, op, fn)
}

// sendBatch is send for a goroutine working through a batch (one read's
// worth of frames): the frame goes out when fs is flushed, with the rest
// of the batch, in one write made by that goroutine. A nil fs is send.
func (l *linkConn) sendBatch(fs *flushSet, op linkOp, fn func(w *frameWriter)) bool {
	return l.sendSynced(fs, 0, op, fn)
}

// wake tells the writer there is something to write.
func (l *linkConn) wake() {
	select {
	case l.signal <- struct{}{}:
	default:
	}
}

// sendSynced is send preceded, if applied has moved since the last one,
// by an opSync with applied: the frame may name a queue declared up to
// there.
func (l *linkConn) sendSynced(fs *flushSet, applied uint64, op linkOp, fn func(w *frameWriter)) bool {
	l.omu.Lock()
	if l.ended {
		l.omu.Unlock()
		return false
	}
	if applied > l.synced {
		l.synced = applied
		at := l.out.begin(opSync)
		l.out.uint(applied)
		l.out.end(at)
	}
	at := l.out.begin(op)
	if fn != nil {
		fn(&l.out)
	}
	l.out.end(at)
	l.omu.Unlock()
	if fs != nil {
		fs.addLink(l)
	} else {
		l.wake()
	}
	return true
}

// runWriter is the link's writer goroutine; it returns when the link
// ends, or ends the link when a write fails.
func (l *linkConn) runWriter() {
	defer close(l.exited)
	ping := time.NewTicker(linkPing)
	defer ping.Stop()
	last := time.Now()
	for {
		select {
		case <-l.done:
			return
		case <-l.signal:
		case now := <-ping.C:
			if now.Sub(last) < linkPing {
				continue
			}
			l.send(opPing, nil)
			continue
		}
		l.wmu.Lock()
		l.omu.Lock()
		b := l.out.b
		if len(b) == 0 {
			l.omu.Unlock()
			l.wmu.Unlock()
			continue
		}
		l.out.b = l.spare[:0]
		l.spare = nil
		l.omu.Unlock()
		l.nc.SetWriteDeadline(time.Now().Add(linkTimeout))
		_, err := l.w.Write(b)
		last = time.Now()
		if cap(b) > 4<<20 {
			b = nil
		}
		l.omu.Lock()
		l.spare = b
		l.omu.Unlock()
		l.wmu.Unlock()
		if err != nil {
			l.end()
			return
		}
	}
}

// flushInline writes what has gathered from the calling goroutine, with
// one write that never waits for the socket, when the writer is idle and
// the batch is small: that saves waking the writer goroutine, which on a
// busy machine costs more than the write. Anything else is left to the
// writer.
func (l *linkConn) flushInline() {
	if !l.tw.ok() || !l.wmu.TryLock() {
		l.wake()
		return
	}
	l.omu.Lock()
	b := l.out.b
	if l.ended || len(b) == 0 || len(b) > linkInlineMax {
		l.omu.Unlock()
		l.wmu.Unlock()
		if len(b) > 0 {
			l.wake()
		}
		return
	}
	l.out.b = l.spare[:0]
	l.spare = nil
	l.omu.Unlock()

	n := l.tw.try(b)
	rest := len(b) - n
	l.omu.Lock()
	if rest == 0 {
		l.spare = b[:0]
	} else if !l.ended {
		l.out.b, l.spare = putBack(b, n, l.out.b)
	}
	l.omu.Unlock()
	l.wmu.Unlock()
	if rest > 0 {
		l.wake()
	}
}

// end marks the link ended and closes its connection; the reader then
// returns. It is idempotent.
func (l *linkConn) end() {
	l.omu.Lock()
	if l.ended {
		l.omu.Unlock()
		return
	}
	l.ended = true
	l.out.b = nil
	l.omu.Unlock()
	close(l.done)
	l.nc.Close()
}

// reader returns the link's buffered reader; each read refreshes the
// deadline by which the other end must have said something.
func (l *linkConn) reader() *bufio.Reader {
	return bufio.NewReaderSize(&linkReader{nc: l.nc, in: socketInput(l.nc)}, 64<<10)
}

// linkReader reads the link's socket as a client's is read (socketInput)
// and moves the read deadline forward at most every second, not on every
// read.
type linkReader struct {
	nc  net.Conn
	in  io.Reader
	set time.Time
}

func (r *linkReader) Read(p []byte) (int, error) {
	if now := time.Now(); now.Sub(r.set) > time.Second {
		r.nc.SetReadDeadline(now.Add(linkTimeout))
		r.set = now
	}
	return r.in.Read(p)
}
