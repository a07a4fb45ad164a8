package amqp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame types.
const (
	FrameMethod    uint8 = 1
	FrameHeader    uint8 = 2
	FrameBody      uint8 = 3
	FrameHeartbeat uint8 = 8
)

// FrameEnd is the octet that closes every frame.
const FrameEnd = 0xCE

// Frame size limits.
const (
	// FrameOverhead is what a frame adds to its payload: 7 octets in front,
	// one behind.
	FrameOverhead = 8
	// FrameMinSize is the smallest frame_max a peer may negotiate; frames of
	// this size are always allowed, before and after tuning.
	FrameMinSize = 4096
)

// ProtocolHeader opens an AMQP 0-9-1 connection.
var ProtocolHeader = [8]byte{'A', 'M', 'Q', 'P', 0, 0, 9, 1}

// ErrFrameTooLarge is returned for a frame whose size exceeds the limit set
// with SetMaxSize.
var ErrFrameTooLarge = errors.New("amqp: frame too large")

// Frame is one frame as read. Payload points into the reader's buffer and
// stays valid only until the next call to ReadFrame.
type Frame struct {
	Type    uint8
	Channel uint16
	Payload []byte
}

// FrameReader reads frames from a stream with as few read calls as the
// traffic allows: one read fills its buffer with as many frames as arrived.
// It is not safe for concurrent use.
type FrameReader struct {
	r       io.Reader
	buf     []byte
	start   int
	end     int
	maxSize uint32
	// lastRead is how much the last read call returned, against the room it
	// had (lastRoom): the buffer grows after reads that fill it and shrinks
	// after reads that use little of it, so idle connections stay small.
	lastRead, lastRoom int
}

// Read buffer sizes: an idle connection holds minReadBuffer, a busy one up
// to maxReadBuffer (a single larger frame gets a buffer of its own size).
const (
	minReadBuffer = 4 << 10
	maxReadBuffer = 64 << 10
)

// NewFrameReader returns a reader of r that accepts frames of up to
// FrameMinSize octets until SetMaxSize raises the limit.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: r, buf: make([]byte, minReadBuffer), maxSize: FrameMinSize}
}

// resize picks the buffer size for the next reads while the buffer is
// empty, from how full the last read was.
func (fr *FrameReader) resize() {
	size := len(fr.buf)
	switch {
	case fr.lastRead == fr.lastRoom && size < maxReadBuffer:
		size *= 2
	case fr.lastRead < fr.lastRoom/8 && size > minReadBuffer:
		size /= 2
	default:
		return
	}
	fr.buf = make([]byte, size)
}

// SetMaxSize sets the largest frame accepted, overhead included (the
// negotiated frame_max; 0 means no limit beyond 2^32).
func (fr *FrameReader) SetMaxSize(n uint32) { fr.maxSize = n }

// Buffered reports how many octets have been read from the stream but not
// yet returned as frames. A reader loop uses it to act once per batch: when
// it is zero, the next ReadFrame will block on the stream.
func (fr *FrameReader) Buffered() int { return fr.end - fr.start }

// fill makes at least n octets available from fr.start.
func (fr *FrameReader) fill(n int) error {
	if fr.end-fr.start >= n {
		return nil
	}
	if fr.start == fr.end {
		fr.start, fr.end = 0, 0
		if fr.lastRoom > 0 {
			fr.resize()
		}
	}
	if n > len(fr.buf) {
		nb := make([]byte, n)
		copy(nb, fr.buf[fr.start:fr.end])
		fr.end -= fr.start
		fr.start = 0
		fr.buf = nb
	} else if fr.start+n > len(fr.buf) {
		copy(fr.buf, fr.buf[fr.start:fr.end])
		fr.end -= fr.start
		fr.start = 0
	}
	for fr.end-fr.start < n {
		m, err := fr.r.Read(fr.buf[fr.end:])
		fr.lastRead, fr.lastRoom = m, len(fr.buf)-fr.end
		fr.end += m
		if err != nil {
			if fr.end-fr.start >= n {
				return nil
			}
			if errors.Is(err, io.EOF) && fr.end > fr.start {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// ReadProtocolHeader reads the 8 octets a client sends first.
func (fr *FrameReader) ReadProtocolHeader() ([8]byte, error) {
	var h [8]byte
	if err := fr.fill(8); err != nil {
		return h, err
	}
	copy(h[:], fr.buf[fr.start:])
	fr.start += 8
	return h, nil
}

// ReadFrame returns the next frame. Its payload is valid until the next call.
func (fr *FrameReader) ReadFrame() (Frame, error) {
	if err := fr.fill(7); err != nil {
		return Frame{}, err
	}
	h := fr.buf[fr.start:]
	typ := h[0]
	ch := binary.BigEndian.Uint16(h[1:])
	size := binary.BigEndian.Uint32(h[3:])
	if fr.maxSize != 0 && uint64(size)+FrameOverhead > uint64(fr.maxSize) {
		return Frame{}, fmt.Errorf("%w: %d octets, limit %d", ErrFrameTooLarge, uint64(size)+FrameOverhead, fr.maxSize)
	}
	total := 7 + int(size) + 1
	if err := fr.fill(total); err != nil {
		return Frame{}, err
	}
	f := fr.buf[fr.start : fr.start+total]
	if f[total-1] != FrameEnd {
		return Frame{}, fmt.Errorf("%w: frame end octet is 0x%02x, want 0xce", ErrMalformed, f[total-1])
	}
	fr.start += total
	if fr.start == fr.end {
		fr.start, fr.end = 0, 0
	}
	return Frame{Type: typ, Channel: ch, Payload: f[7 : total-1]}, nil
}

func appendFrameStart(b []byte, typ uint8, ch uint16) ([]byte, int) {
	b = append(b, typ, byte(ch>>8), byte(ch), 0, 0, 0, 0)
	return b, len(b)
}

func finishFrame(b []byte, payloadAt int) []byte {
	binary.BigEndian.PutUint32(b[payloadAt-4:], uint32(len(b)-payloadAt))
	return append(b, FrameEnd)
}

// AppendMethodFrame appends m as a method frame on channel ch.
func AppendMethodFrame(b []byte, ch uint16, m Method) []byte {
	b, at := appendFrameStart(b, FrameMethod, ch)
	class, id := m.ID()
	b = binary.BigEndian.AppendUint16(b, class)
	b = binary.BigEndian.AppendUint16(b, id)
	return finishFrame(m.write(b), at)
}

// AppendDeliverFrame is AppendMethodFrame for basic.deliver, which the
// broker sends once per message: with the concrete type, m need not
// escape to the heap.
func AppendDeliverFrame(b []byte, ch uint16, m *BasicDeliver) []byte {
	b, at := appendFrameStart(b, FrameMethod, ch)
	b = binary.BigEndian.AppendUint16(b, ClassBasic)
	b = binary.BigEndian.AppendUint16(b, 60)
	return finishFrame(m.write(b), at)
}

// AppendHeaderFrame appends a content header frame whose property list
// (flags and values, as DecodeProperties takes it) is props.
func AppendHeaderFrame(b []byte, ch uint16, classID uint16, bodySize uint64, props []byte) []byte {
	b, at := appendFrameStart(b, FrameHeader, ch)
	e := encoder{buf: b}
	e.short(classID)
	e.short(0)
	e.longlong(bodySize)
	e.buf = append(e.buf, props...)
	return finishFrame(e.buf, at)
}

// AppendBodyFrames appends body split into frames of at most frameMax
// octets each (overhead included; 0 means no limit).
func AppendBodyFrames(b []byte, ch uint16, body []byte, frameMax uint32) []byte {
	max := len(body)
	if frameMax > FrameOverhead {
		max = int(frameMax - FrameOverhead)
	}
	for len(body) > 0 {
		n := min(len(body), max)
		var at int
		b, at = appendFrameStart(b, FrameBody, ch)
		b = append(b, body[:n]...)
		b = finishFrame(b, at)
		body = body[n:]
	}
	return b
}

// AppendHeartbeat appends a heartbeat frame.
func AppendHeartbeat(b []byte) []byte {
	return append(b, FrameHeartbeat, 0, 0, 0, 0, 0, 0, FrameEnd)
}

// ContentHeader is a decoded content header frame. Properties points into
// the frame's payload.
type ContentHeader struct {
	ClassID    uint16
	BodySize   uint64
	Properties []byte
}

// ParseContentHeader decodes a header frame payload. The property list's
// structure is checked here (see ScanProperties), so a malformed one is
// refused once, on arrival.
func ParseContentHeader(p []byte) (ContentHeader, PropertySummary, error) {
	if len(p) < 14 {
		return ContentHeader{}, PropertySummary{}, fmt.Errorf("%w: content header of %d octets", ErrMalformed, len(p))
	}
	h := ContentHeader{
		ClassID:    binary.BigEndian.Uint16(p),
		BodySize:   binary.BigEndian.Uint64(p[4:]),
		Properties: p[12:],
	}
	sum, err := ScanProperties(h.Properties)
	if err != nil {
		return ContentHeader{}, PropertySummary{}, err
	}
	return h, sum, nil
}
