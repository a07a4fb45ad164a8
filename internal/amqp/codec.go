package amqp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrMalformed is wrapped by every decoding error caused by bytes that do not
// form a valid frame, method, table or property list.
var ErrMalformed = errors.New("amqp: malformed")

// decoder reads AMQP primitive types from a byte slice. The first error
// sticks: later reads return zero values, and err is checked once at the end.
type decoder struct {
	buf []byte
	off int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s truncated at offset %d", ErrMalformed, what, d.off)
	}
	d.off = len(d.buf)
}

func (d *decoder) need(n int, what string) bool {
	if d.err != nil {
		return false
	}
	if len(d.buf)-d.off < n {
		d.fail(what)
		return false
	}
	return true
}

func (d *decoder) octet() uint8 {
	if !d.need(1, "octet") {
		return 0
	}
	v := d.buf[d.off]
	d.off++
	return v
}

func (d *decoder) short() uint16 {
	if !d.need(2, "short") {
		return 0
	}
	v := binary.BigEndian.Uint16(d.buf[d.off:])
	d.off += 2
	return v
}

func (d *decoder) long() uint32 {
	if !d.need(4, "long") {
		return 0
	}
	v := binary.BigEndian.Uint32(d.buf[d.off:])
	d.off += 4
	return v
}

func (d *decoder) longlong() uint64 {
	if !d.need(8, "longlong") {
		return 0
	}
	v := binary.BigEndian.Uint64(d.buf[d.off:])
	d.off += 8
	return v
}

func (d *decoder) bytes(n int, what string) []byte {
	if n < 0 || !d.need(n, what) {
		if n < 0 {
			d.fail(what)
		}
		return nil
	}
	v := d.buf[d.off : d.off+n : d.off+n]
	d.off += n
	return v
}

func (d *decoder) shortstr() string {
	n := int(d.octet())
	return string(d.bytes(n, "shortstr"))
}

// shortstrAgain reads a shortstr and returns prev, without allocating,
// when it has the same bytes.
func (d *decoder) shortstrAgain(prev string) string {
	n := int(d.octet())
	b := d.bytes(n, "shortstr")
	if string(b) == prev {
		return prev
	}
	return string(b)
}

func (d *decoder) longstr() string {
	n := d.long()
	if uint64(n) > uint64(len(d.buf)) {
		d.fail("longstr")
		return ""
	}
	return string(d.bytes(int(n), "longstr"))
}

func (d *decoder) timestamp() time.Time {
	return time.Unix(int64(d.longlong()), 0)
}

func (d *decoder) table() Table {
	n := d.long()
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(d.buf)-d.off) {
		d.fail("table")
		return nil
	}
	t, err := decodeTable(d.buf[d.off:d.off+int(n)], 0)
	if err != nil {
		d.err = err
		d.off = len(d.buf)
		return nil
	}
	d.off += int(n)
	return t
}

// encoder appends AMQP primitive types to a byte slice.
type encoder struct {
	buf []byte
}

func (e *encoder) octet(v uint8)     { e.buf = append(e.buf, v) }
func (e *encoder) short(v uint16)    { e.buf = binary.BigEndian.AppendUint16(e.buf, v) }
func (e *encoder) long(v uint32)     { e.buf = binary.BigEndian.AppendUint32(e.buf, v) }
func (e *encoder) longlong(v uint64) { e.buf = binary.BigEndian.AppendUint64(e.buf, v) }

// shortstr writes s, cut at 255 octets: the caller validates lengths where
// a longer string is a protocol error rather than something to truncate.
func (e *encoder) shortstr(s string) {
	if len(s) > math.MaxUint8 {
		s = s[:math.MaxUint8]
	}
	e.buf = append(e.buf, uint8(len(s)))
	e.buf = append(e.buf, s...)
}

func (e *encoder) longstr(s string) {
	e.long(uint32(len(s)))
	e.buf = append(e.buf, s...)
}

func (e *encoder) timestamp(t time.Time) { e.longlong(uint64(t.Unix())) }

func (e *encoder) table(t Table) {
	at := len(e.buf)
	e.long(0)
	e.buf = appendTableBody(e.buf, t)
	binary.BigEndian.PutUint32(e.buf[at:], uint32(len(e.buf)-at-4))
}
