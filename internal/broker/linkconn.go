package broker

import (
	"bufio"
	"net"
	"sync"
	"time"
)

// linkConn is one queue link's connection: an output buffer that any
// goroutine appends frames to and a writer goroutine that sends what has
// gathered with one write call, and pings while the link is idle. The
// end that owns it runs the reader.
type linkConn struct {
	nc net.Conn

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
	return &linkConn{nc: nc, signal: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{})}
}

// send appends one frame written by fn and wakes the writer; it reports
// false, writing nothing, once the link has ended. Frames are not held
// back for the end of a batch of work: measured on two cores, the writer
// writing while the reader reads is worth more than fewer, larger writes.
func (l *linkConn) send(op linkOp, fn func(w *frameWriter)) bool {
	return l.sendSynced(0, op, fn)
}

// sendSynced is send preceded, if applied has moved since the last one,
// by an opSync with applied: the frame may name a queue declared up to
// there.
func (l *linkConn) sendSynced(applied uint64, op linkOp, fn func(w *frameWriter)) bool {
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
	select {
	case l.signal <- struct{}{}:
	default:
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
		l.omu.Lock()
		b := l.out.b
		if len(b) == 0 {
			l.omu.Unlock()
			continue
		}
		l.out.b = l.spare[:0]
		l.spare = nil
		l.omu.Unlock()
		l.nc.SetWriteDeadline(time.Now().Add(linkTimeout))
		_, err := l.nc.Write(b)
		last = time.Now()
		if cap(b) > 4<<20 {
			b = nil
		}
		l.omu.Lock()
		l.spare = b
		l.omu.Unlock()
		if err != nil {
			l.end()
			return
		}
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
	return bufio.NewReaderSize(&linkReader{nc: l.nc}, 64<<10)
}

// linkReader moves the read deadline forward at most every second, not
// on every read.
type linkReader struct {
	nc  net.Conn
	set time.Time
}

func (r *linkReader) Read(p []byte) (int, error) {
	if now := time.Now(); now.Sub(r.set) > time.Second {
		r.nc.SetReadDeadline(now.Add(linkTimeout))
		r.set = now
	}
	return r.nc.Read(p)
}
