package broker

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/warren-mq/warren/internal/queue"
)

// The queue link carries a client's use of a queue from the node the
// client is connected to (the peer end) to the node the queue lives on
// (the home end), over the cluster port's ServiceQueue. Each frame is a
// 4-octet big-endian length, an op octet and the op's fields: unsigned
// varints, and strings and octet strings each prefixed with a varint
// length. Frames of both directions are written in batches: many to one
// write call.
type linkOp byte

// Peer to home.
const (
	// opPublish: id, vhost, queue count, queue names, message. Answered
	// with opConfirm once every named queue holds the message (on disk
	// where it must be).
	opPublish linkOp = 1 + iota
	// opConsume: request id, consumer id, vhost, queue, tag, no-ack,
	// exclusive, priority, prefetch, credit, arguments (an AMQP table),
	// and, for operators, the client's connection ID and name, channel
	// number, user and address.
	opConsume
	// opCancel: consumer id. The consumer's unsettled deliveries stay
	// until settled.
	opCancel
	// opCredit: consumer id, count: the peer has passed that many
	// deliveries on to its client and can take as many more.
	opCredit
	// opSettle: kind, count, delivery ids.
	opSettle
	// opGet: request id, vhost, queue, ack.
	opGet
	// opPurge: request id, vhost, queue.
	opPurge
	// opInfo: request id, vhost, queue, renew (a declare that renews
	// x-expires). Answered with the ready count and consumer count.
	opInfo
	// opDelete: request id, vhost, queue, if-unused, if-empty. Answered
	// with the count of messages deleted.
	opDelete
	// opList: request id, vhost, queue ("" for every one). Answered with
	// the JSON of the queues' QueueInfo, for operators.
	opList
	// opNode: request id. Answered with the JSON of the node's
	// NodeReport.
	opNode
	// opSync: a position in the cluster's definitions log the peer has
	// applied. The frames that follow may name queues declared up to
	// there; the home node waits to have applied as far before it takes
	// a queue it does not know for one that does not exist.
	opSync
	// opAdmin: request id, what (see adminConnections), argument count,
	// arguments. Answered with JSON, for operators.
	opAdmin
	// opAwait: request id, a position in the cluster's definitions log.
	// Answered once the home node has applied as far, or with an error
	// after spreadWait.
	opAwait
	// opReplicate: vhost, queue, stream, epoch, offset, change (see
	// replicate.go): one change of a mirrored queue, from its leader.
	opReplicate
)

// Home to peer.
const (
	// opConfirm: publish id, status.
	opConfirm linkOp = 64 + iota
	// opReply: request id, AMQP reply code (0 for success), text, then
	// the request's results.
	opReply
	// opDeliver: consumer id, delivery id, redelivered, message.
	opDeliver
	// opCancelled: consumer id: the queue is gone.
	opCancelled
	// opReplAck: vhost, queue, stream, offset, status: a mirror holds
	// the stream's changes up to offset (replOK), or refuses the stream.
	opReplAck
)

// opPing keeps an idle link known to be alive, both ways.
const opPing linkOp = 127

// Settle kinds.
const (
	settleAck     = 0 // done with the message
	settleRequeue = 1 // back to the queue, redelivered
	settleReject  = 2 // rejected without requeue: dead-lettered or dropped
)

// Publish statuses.
const (
	confirmOK       = 0
	confirmRejected = 1 // a full queue refused it (reject-publish)
	confirmFailed   = 2 // a copy did not reach the disk
)

// linkPing is how often an idle link sends opPing; linkTimeout is how long
// a link may stay silent before its other end is taken for dead.
const (
	linkPing    = time.Second
	linkTimeout = 5 * time.Second
)

// maxLinkFrame bounds one frame: the largest message and its headers.
const maxLinkFrame = 256 << 20

// frameWriter appends one frame to a buffer.
type frameWriter struct{ b []byte }

// begin starts a frame with op; end fills in its length.
func (w *frameWriter) begin(op linkOp) int {
	at := len(w.b)
	w.b = append(w.b, 0, 0, 0, 0, byte(op))
	return at
}

func (w *frameWriter) end(at int) {
	binary.BigEndian.PutUint32(w.b[at:], uint32(len(w.b)-at-4))
}

func (w *frameWriter) uint(n uint64) { w.b = binary.AppendUvarint(w.b, n) }
func (w *frameWriter) int(n int64)   { w.b = binary.AppendVarint(w.b, n) }
func (w *frameWriter) str(s string) {
	w.uint(uint64(len(s)))
	w.b = append(w.b, s...)
}
func (w *frameWriter) bytes(p []byte) {
	w.uint(uint64(len(p)))
	w.b = append(w.b, p...)
}
func (w *frameWriter) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

// message writes what a queue needs of a message; the home node stamps
// its own enqueue time.
func (w *frameWriter) message(m *queue.Message) {
	w.int(int64(m.TTL))
	w.str(m.Exchange)
	w.str(m.RoutingKey)
	w.bytes(m.Properties)
	w.bytes(m.Body)
	w.bool(m.Persistent)
	w.b = append(w.b, m.Priority)
}

// errLinkFrame marks a frame that does not decode.
var errLinkFrame = errors.New("malformed queue link frame")

// frameReader decodes the fields of one frame; the first error sticks.
type frameReader struct {
	b   []byte
	err error
}

func (r *frameReader) fail() {
	if r.err == nil {
		r.err = errLinkFrame
	}
	r.b = nil
}

func (r *frameReader) uint() uint64 {
	n, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[k:]
	return n
}

func (r *frameReader) int() int64 {
	n, k := binary.Varint(r.b)
	if k <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[k:]
	return n
}

// bytes returns the next octet string, sharing the frame's memory.
func (r *frameReader) bytes() []byte {
	n := r.uint()
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *frameReader) str() string { return string(r.bytes()) }

func (r *frameReader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *frameReader) bool() bool { return r.byte() != 0 }

// message decodes a message written by frameWriter.message; its octet
// strings are copied out of the frame, which the reader reuses.
func (r *frameReader) message() *queue.Message {
	m := &queue.Message{TTL: time.Duration(r.int()), Exchange: r.str(), RoutingKey: r.str()}
	props, body := r.bytes(), r.bytes()
	// One allocation for both, which append leaves unzeroed where it
	// copies: props has no room, so it always gets a new array.
	buf := append(props[:len(props):len(props)], body...)
	m.Properties, m.Body = buf[:len(props):len(props)], buf[len(props):]
	m.Persistent = r.bool()
	m.Priority = r.byte()
	return m
}

// readFrame reads one frame into buf (grown as needed) and returns its op
// and fields.
func readFrame(br *bufio.Reader, buf *[]byte) (linkOp, frameReader, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return 0, frameReader{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 1 || n > maxLinkFrame {
		return 0, frameReader{}, fmt.Errorf("queue link frame of %d octets: %w", n, errLinkFrame)
	}
	if cap(*buf) < int(n-1) {
		*buf = make([]byte, n-1)
	}
	b := (*buf)[:n-1]
	if _, err := io.ReadFull(br, b); err != nil {
		return 0, frameReader{}, err
	}
	return linkOp(hdr[4]), frameReader{b: b}, nil
}
