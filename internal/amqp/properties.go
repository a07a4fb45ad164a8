package amqp

import (
	"fmt"
	"time"
)

// Properties are the basic class content properties. A zero field is
// absent on the wire, except where the matching Has flag says otherwise.
type Properties struct {
	ContentType     string
	ContentEncoding string
	Headers         Table
	DeliveryMode    uint8 // 1 transient, 2 persistent
	Priority        uint8
	CorrelationID   string
	ReplyTo         string
	Expiration      string
	MessageID       string
	Timestamp       time.Time
	Type            string
	UserID          string
	AppID           string
	ClusterID       string

	// Flags records which properties were present when decoded, and
	// decides which are written when encoded (see the Flag constants).
	Flags uint16
}

// Property flag bits, as they appear in the content header.
const (
	FlagContentType     uint16 = 1 << 15
	FlagContentEncoding uint16 = 1 << 14
	FlagHeaders         uint16 = 1 << 13
	FlagDeliveryMode    uint16 = 1 << 12
	FlagPriority        uint16 = 1 << 11
	FlagCorrelationID   uint16 = 1 << 10
	FlagReplyTo         uint16 = 1 << 9
	FlagExpiration      uint16 = 1 << 8
	FlagMessageID       uint16 = 1 << 7
	FlagTimestamp       uint16 = 1 << 6
	FlagType            uint16 = 1 << 5
	FlagUserID          uint16 = 1 << 4
	FlagAppID           uint16 = 1 << 3
	FlagClusterID       uint16 = 1 << 2
)

// DecodeProperties parses a property list: the flags word followed by the
// present properties, as carried in a content header after the body size.
func DecodeProperties(raw []byte) (Properties, error) {
	var p Properties
	d := decoder{buf: raw}
	flags := d.short()
	if d.err != nil {
		return p, fmt.Errorf("decode properties: %w", d.err)
	}
	if flags&1 != 0 {
		return p, fmt.Errorf("%w: property flags continuation is not used by class basic", ErrMalformed)
	}
	p.Flags = flags
	if flags&FlagContentType != 0 {
		p.ContentType = d.shortstr()
	}
	if flags&FlagContentEncoding != 0 {
		p.ContentEncoding = d.shortstr()
	}
	if flags&FlagHeaders != 0 {
		p.Headers = d.table()
	}
	if flags&FlagDeliveryMode != 0 {
		p.DeliveryMode = d.octet()
	}
	if flags&FlagPriority != 0 {
		p.Priority = d.octet()
	}
	if flags&FlagCorrelationID != 0 {
		p.CorrelationID = d.shortstr()
	}
	if flags&FlagReplyTo != 0 {
		p.ReplyTo = d.shortstr()
	}
	if flags&FlagExpiration != 0 {
		p.Expiration = d.shortstr()
	}
	if flags&FlagMessageID != 0 {
		p.MessageID = d.shortstr()
	}
	if flags&FlagTimestamp != 0 {
		p.Timestamp = d.timestamp()
	}
	if flags&FlagType != 0 {
		p.Type = d.shortstr()
	}
	if flags&FlagUserID != 0 {
		p.UserID = d.shortstr()
	}
	if flags&FlagAppID != 0 {
		p.AppID = d.shortstr()
	}
	if flags&FlagClusterID != 0 {
		p.ClusterID = d.shortstr()
	}
	if d.err != nil {
		return p, fmt.Errorf("decode properties: %w", d.err)
	}
	return p, nil
}

// setFlags sets the flag of every non-zero property, so that a Properties
// built in code encodes what it holds.
func (p *Properties) setFlags() uint16 {
	f := p.Flags
	set := func(cond bool, bit uint16) {
		if cond {
			f |= bit
		}
	}
	set(p.ContentType != "", FlagContentType)
	set(p.ContentEncoding != "", FlagContentEncoding)
	set(p.Headers != nil, FlagHeaders)
	set(p.DeliveryMode != 0, FlagDeliveryMode)
	set(p.Priority != 0, FlagPriority)
	set(p.CorrelationID != "", FlagCorrelationID)
	set(p.ReplyTo != "", FlagReplyTo)
	set(p.Expiration != "", FlagExpiration)
	set(p.MessageID != "", FlagMessageID)
	set(!p.Timestamp.IsZero(), FlagTimestamp)
	set(p.Type != "", FlagType)
	set(p.UserID != "", FlagUserID)
	set(p.AppID != "", FlagAppID)
	set(p.ClusterID != "", FlagClusterID)
	return f
}

// AppendProperties appends p as a property list (flags word and values).
// Every property whose flag is set in p.Flags or whose value is non-zero is
// written.
func AppendProperties(b []byte, p *Properties) []byte {
	flags := p.setFlags()
	e := encoder{buf: b}
	e.short(flags)
	if flags&FlagContentType != 0 {
		e.shortstr(p.ContentType)
	}
	if flags&FlagContentEncoding != 0 {
		e.shortstr(p.ContentEncoding)
	}
	if flags&FlagHeaders != 0 {
		e.table(p.Headers)
	}
	if flags&FlagDeliveryMode != 0 {
		e.octet(p.DeliveryMode)
	}
	if flags&FlagPriority != 0 {
		e.octet(p.Priority)
	}
	if flags&FlagCorrelationID != 0 {
		e.shortstr(p.CorrelationID)
	}
	if flags&FlagReplyTo != 0 {
		e.shortstr(p.ReplyTo)
	}
	if flags&FlagExpiration != 0 {
		e.shortstr(p.Expiration)
	}
	if flags&FlagMessageID != 0 {
		e.shortstr(p.MessageID)
	}
	if flags&FlagTimestamp != 0 {
		e.timestamp(p.Timestamp)
	}
	if flags&FlagType != 0 {
		e.shortstr(p.Type)
	}
	if flags&FlagUserID != 0 {
		e.shortstr(p.UserID)
	}
	if flags&FlagAppID != 0 {
		e.shortstr(p.AppID)
	}
	if flags&FlagClusterID != 0 {
		e.shortstr(p.ClusterID)
	}
	return e.buf
}

// PropertySummary holds the properties a broker routes and queues by,
// found without decoding the rest. Headers and Expiration point into the
// scanned property list.
type PropertySummary struct {
	DeliveryMode uint8
	Priority     uint8
	HasPriority  bool
	Expiration   []byte
	// Headers is the headers table in wire form (with its length prefix),
	// nil when absent; decode it with DecodeTable when it is needed.
	Headers []byte
	UserID  []byte
	ReplyTo []byte
}

// ScanProperties checks the structure of a property list and returns its
// routing-relevant fields without allocating. The headers table's length is
// checked but its entries are not decoded.
func ScanProperties(raw []byte) (PropertySummary, error) {
	var s PropertySummary
	d := decoder{buf: raw}
	flags := d.short()
	if d.err == nil && flags&1 != 0 {
		return s, fmt.Errorf("%w: property flags continuation is not used by class basic", ErrMalformed)
	}
	skipShortstr := func() []byte { return d.bytes(int(d.octet()), "shortstr") }
	if flags&FlagContentType != 0 {
		skipShortstr()
	}
	if flags&FlagContentEncoding != 0 {
		skipShortstr()
	}
	if flags&FlagHeaders != 0 {
		at := d.off
		n := d.long()
		d.bytes(int(min(n, 1<<31-1)), "headers")
		if d.err == nil {
			s.Headers = raw[at:d.off:d.off]
		}
	}
	if flags&FlagDeliveryMode != 0 {
		s.DeliveryMode = d.octet()
	}
	if flags&FlagPriority != 0 {
		s.Priority = d.octet()
		s.HasPriority = true
	}
	if flags&FlagCorrelationID != 0 {
		skipShortstr()
	}
	if flags&FlagReplyTo != 0 {
		s.ReplyTo = skipShortstr()
	}
	if flags&FlagExpiration != 0 {
		s.Expiration = skipShortstr()
	}
	if flags&FlagMessageID != 0 {
		skipShortstr()
	}
	if flags&FlagTimestamp != 0 {
		d.longlong()
	}
	if flags&FlagType != 0 {
		skipShortstr()
	}
	if flags&FlagUserID != 0 {
		s.UserID = skipShortstr()
	}
	if flags&FlagAppID != 0 {
		skipShortstr()
	}
	if flags&FlagClusterID != 0 {
		skipShortstr()
	}
	if d.err != nil {
		return PropertySummary{}, fmt.Errorf("scan properties: %w", d.err)
	}
	return s, nil
}
