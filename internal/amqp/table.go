package amqp

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"time"
)

// Table is an AMQP field table. Values keep the Go type of the wire type
// they came in as, so a table re-encodes to the same types:
//
//	t bool      b int8     B uint8    s int16   u uint16  I int32
//	i uint32    l int64    f float32  d float64 D Decimal S string
//	x []byte    A []any    T time.Time F Table  V nil
//
// When encoding, int is written as l (int64) and map[string]any as F.
type Table map[string]any

// Decimal is the AMQP decimal type: Value × 10^-Scale.
type Decimal struct {
	Scale uint8
	Value int32
}

// maxTableDepth bounds nesting of tables and arrays so that hostile input
// cannot exhaust the stack.
const maxTableDepth = 32

func decodeTable(b []byte, depth int) (Table, error) {
	if depth > maxTableDepth {
		return nil, fmt.Errorf("%w: field table nested deeper than %d", ErrMalformed, maxTableDepth)
	}
	t := Table{}
	d := decoder{buf: b}
	for d.off < len(d.buf) && d.err == nil {
		key := d.shortstr()
		v := decodeFieldValue(&d, depth)
		if d.err != nil {
			break
		}
		t[key] = v
	}
	if d.err != nil {
		return nil, d.err
	}
	return t, nil
}

func decodeArray(b []byte, depth int) ([]any, error) {
	if depth > maxTableDepth {
		return nil, fmt.Errorf("%w: field array nested deeper than %d", ErrMalformed, maxTableDepth)
	}
	var a []any
	d := decoder{buf: b}
	for d.off < len(d.buf) && d.err == nil {
		v := decodeFieldValue(&d, depth)
		if d.err != nil {
			break
		}
		a = append(a, v)
	}
	if d.err != nil {
		return nil, d.err
	}
	if a == nil {
		a = []any{}
	}
	return a, nil
}

func decodeFieldValue(d *decoder, depth int) any {
	kind := d.octet()
	if d.err != nil {
		return nil
	}
	switch kind {
	case 't':
		return d.octet() != 0
	case 'b':
		return int8(d.octet())
	case 'B':
		return d.octet()
	case 's':
		return int16(d.short())
	case 'u':
		return d.short()
	case 'I':
		return int32(d.long())
	case 'i':
		return d.long()
	case 'l':
		return int64(d.longlong())
	case 'f':
		return math.Float32frombits(d.long())
	case 'd':
		return math.Float64frombits(d.longlong())
	case 'D':
		scale := d.octet()
		return Decimal{Scale: scale, Value: int32(d.long())}
	case 'S':
		return d.longstr()
	case 'x':
		n := d.long()
		b := d.bytes(int(min(n, math.MaxInt32)), "byte array")
		return append([]byte(nil), b...)
	case 'T':
		return d.timestamp()
	case 'V':
		return nil
	case 'F', 'A':
		n := d.long()
		body := d.bytes(int(min(n, math.MaxInt32)), "nested table")
		if d.err != nil {
			return nil
		}
		var v any
		var err error
		if kind == 'F' {
			v, err = decodeTable(body, depth+1)
		} else {
			v, err = decodeArray(body, depth+1)
		}
		if err != nil {
			d.err = err
			d.off = len(d.buf)
			return nil
		}
		return v
	default:
		d.err = fmt.Errorf("%w: unknown field type %q", ErrMalformed, kind)
		d.off = len(d.buf)
		return nil
	}
}

// appendTableBody writes the entries of t without the length prefix, keys in
// sorted order so that equal tables encode to equal bytes.
func appendTableBody(b []byte, t Table) []byte {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e := encoder{buf: b}
	for _, k := range keys {
		e.shortstr(k)
		appendFieldValue(&e, t[k])
	}
	return e.buf
}

func appendFieldValue(e *encoder, v any) {
	switch v := v.(type) {
	case bool:
		e.octet('t')
		if v {
			e.octet(1)
		} else {
			e.octet(0)
		}
	case int8:
		e.octet('b')
		e.octet(uint8(v))
	case uint8:
		e.octet('B')
		e.octet(v)
	case int16:
		e.octet('s')
		e.short(uint16(v))
	case uint16:
		e.octet('u')
		e.short(v)
	case int32:
		e.octet('I')
		e.long(uint32(v))
	case uint32:
		e.octet('i')
		e.long(v)
	case int64:
		e.octet('l')
		e.longlong(uint64(v))
	case int:
		e.octet('l')
		e.longlong(uint64(v))
	case float32:
		e.octet('f')
		e.long(math.Float32bits(v))
	case float64:
		e.octet('d')
		e.longlong(math.Float64bits(v))
	case Decimal:
		e.octet('D')
		e.octet(v.Scale)
		e.long(uint32(v.Value))
	case string:
		e.octet('S')
		e.longstr(v)
	case []byte:
		e.octet('x')
		e.long(uint32(len(v)))
		e.buf = append(e.buf, v...)
	case time.Time:
		e.octet('T')
		e.timestamp(v)
	case Table:
		e.octet('F')
		e.table(v)
	case map[string]any:
		e.octet('F')
		e.table(Table(v))
	case []any:
		e.octet('A')
		at := len(e.buf)
		e.long(0)
		for _, x := range v {
			appendFieldValue(e, x)
		}
		binary.BigEndian.PutUint32(e.buf[at:], uint32(len(e.buf)-at-4))
	default:
		// Values come from decoded tables or from the broker's own code;
		// an unknown type is written as void rather than corrupting the
		// frame.
		e.octet('V')
	}
}

// EncodeTable returns t in wire form, with its 4-octet length prefix.
func EncodeTable(t Table) []byte {
	e := encoder{}
	e.table(t)
	return e.buf
}

// DecodeTable parses a field table in wire form, with its length prefix.
func DecodeTable(b []byte) (Table, error) {
	d := decoder{buf: b}
	t := d.table()
	if d.err != nil {
		return nil, d.err
	}
	return t, nil
}

// Int returns a field value of an integer type as an int64; ok is false
// for every other type, floats included, as RabbitMQ reads integer
// arguments.
func Int(v any) (n int64, ok bool) {
	switch x := v.(type) {
	case int8:
		return int64(x), true
	case uint8:
		return int64(x), true
	case int16:
		return int64(x), true
	case uint16:
		return int64(x), true
	case int32:
		return int64(x), true
	case uint32:
		return int64(x), true
	case int64:
		return x, true
	case int:
		return int64(x), true
	}
	return 0, false
}
