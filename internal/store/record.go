package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

const (
	kindPublish byte = 1
	kindRelease byte = 2
	kindDeliver byte = 3

	headerSize = 8
	align      = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is wrapped by errors for records that fail their checksum or
// do not parse.
var ErrCorrupt = errors.New("store: corrupt record")

// Location is where a publish record lives: its segment and its offset in
// it. It identifies the record for Release, MarkDelivered and ReadAt.
type Location struct {
	Segment uint64
	Offset  int64
}

// framedSize is the size on disk of a record with a payload of n octets.
func framedSize(n int) int {
	return (headerSize + n + align - 1) / align * align
}

// appendRecord frames a record onto b.
func appendRecord(b []byte, kind byte, queue string, data []byte, rel Location) []byte {
	n := 1 + 2 + len(queue)
	if kind == kindPublish {
		n += len(data)
	} else {
		n += 16
	}
	start := len(b)
	b = append(b, make([]byte, headerSize)...)
	b = append(b, kind)
	b = binary.BigEndian.AppendUint16(b, uint16(len(queue)))
	b = append(b, queue...)
	if kind == kindPublish {
		b = append(b, data...)
	} else {
		b = binary.BigEndian.AppendUint64(b, rel.Segment)
		b = binary.BigEndian.AppendUint64(b, uint64(rel.Offset))
	}
	payload := b[start+headerSize:]
	binary.BigEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(payload, castagnoli))
	for (len(b)-start)%align != 0 {
		b = append(b, 0)
	}
	return b
}

// record is a decoded record. Data points into the buffer it was read from.
type record struct {
	kind  byte
	queue string
	data  []byte
	rel   Location
}

// parseRecord decodes the record at the start of b. It returns the record
// and its framed size, or an error if b does not start with a whole, valid
// record (io.ErrUnexpectedEOF-style truncation is reported as errShort).
func parseRecord(b []byte) (record, int, error) {
	if len(b) < headerSize {
		return record{}, 0, errShort
	}
	n := int(binary.BigEndian.Uint32(b))
	size := framedSize(n)
	if n == 0 || size > len(b) {
		if n == 0 {
			return record{}, 0, fmt.Errorf("%w: zero length", ErrCorrupt)
		}
		return record{}, 0, errShort
	}
	payload := b[headerSize : headerSize+n]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return record{}, 0, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if len(payload) < 3 {
		return record{}, 0, fmt.Errorf("%w: payload of %d octets", ErrCorrupt, len(payload))
	}
	r := record{kind: payload[0]}
	ql := int(binary.BigEndian.Uint16(payload[1:]))
	if 3+ql > len(payload) {
		return record{}, 0, fmt.Errorf("%w: queue name overruns payload", ErrCorrupt)
	}
	r.queue = string(payload[3 : 3+ql])
	rest := payload[3+ql:]
	switch r.kind {
	case kindPublish:
		r.data = rest
	case kindRelease, kindDeliver:
		if len(rest) != 16 {
			return record{}, 0, fmt.Errorf("%w: kind %d record of %d octets", ErrCorrupt, r.kind, len(rest))
		}
		r.rel = Location{Segment: binary.BigEndian.Uint64(rest), Offset: int64(binary.BigEndian.Uint64(rest[8:]))}
	default:
		return record{}, 0, fmt.Errorf("%w: kind %d", ErrCorrupt, r.kind)
	}
	return r, size, nil
}

var errShort = errors.New("store: record runs past the end of the segment")
