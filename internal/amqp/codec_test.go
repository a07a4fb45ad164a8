package amqp

import (
	"bytes"
	"errors"
	"io"
	"math"
	"reflect"
	"testing"
	"testing/iotest"
	"time"
	"unsafe"
)

func TestTableRoundTrip(t *testing.T) {
	in := Table{
		"bool": true, "i8": int8(-3), "u8": uint8(200), "i16": int16(-300), "u16": uint16(60000),
		"i32": int32(-70000), "u32": uint32(4000000000), "i64": int64(-1 << 40), "f32": float32(1.5),
		"f64": math.Pi, "dec": Decimal{Scale: 2, Value: 12345}, "str": "hello", "bytes": []byte{0, 1, 2},
		"ts": time.Unix(1700000000, 0), "void": nil,
		"nested":      Table{"x-match": "all", "list": []any{int64(1), "two", Table{"three": false}}},
		"empty-array": []any{},
	}
	out, err := DecodeTable(EncodeTable(in))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip changed the table:\n got %#v\nwant %#v", out, in)
	}
}

func TestTableRejectsMalformed(t *testing.T) {
	for name, b := range map[string][]byte{
		"length beyond input": {0, 0, 0, 10, 1, 'k'},
		"unknown type":        {0, 0, 0, 3, 1, 'k', 'Z'},
		"truncated value":     {0, 0, 0, 4, 1, 'k', 'I', 0},
		"huge longstr":        {0, 0, 0, 8, 1, 'k', 'S', 0xff, 0xff, 0xff, 0xff, 0},
	} {
		if _, err := DecodeTable(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	nested := Table{}
	cur := nested
	for range maxTableDepth + 5 {
		next := Table{}
		cur["n"] = next
		cur = next
	}
	if _, err := DecodeTable(EncodeTable(nested)); !errors.Is(err, ErrMalformed) {
		t.Errorf("deep nesting: err = %v, want ErrMalformed", err)
	}
}

func TestPropertiesRoundTrip(t *testing.T) {
	p := Properties{
		ContentType: "text/plain", Headers: Table{"a": int32(1)}, DeliveryMode: 2, Priority: 5,
		CorrelationID: "c", ReplyTo: "r", Expiration: "60000", MessageID: "m",
		Timestamp: time.Unix(1700000000, 0), Type: "t", UserID: "guest", AppID: "app",
	}
	raw := AppendProperties(nil, &p)
	got, err := DecodeProperties(raw)
	if err != nil {
		t.Fatal(err)
	}
	got.Flags, p.Flags = 0, 0
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("got %#v\nwant %#v", got, p)
	}
	sum, err := ScanProperties(raw)
	if err != nil {
		t.Fatal(err)
	}
	if sum.DeliveryMode != 2 || sum.Priority != 5 || !sum.HasPriority || string(sum.Expiration) != "60000" || string(sum.UserID) != "guest" {
		t.Fatalf("scan: %+v", sum)
	}
	h, err := DecodeTable(sum.Headers)
	if err != nil || h["a"] != int32(1) {
		t.Fatalf("scanned headers: %v %v", h, err)
	}
	if _, err := ScanProperties(raw[:len(raw)-2]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated properties: %v", err)
	}
}

func TestFrameReader(t *testing.T) {
	var b []byte
	b = AppendMethodFrame(b, 1, &BasicPublish{Exchange: "ex", RoutingKey: "rk", Mandatory: true})
	props := AppendProperties(nil, &Properties{DeliveryMode: 2})
	body := bytes.Repeat([]byte("z"), 10000)
	b = AppendHeaderFrame(b, 1, ClassBasic, uint64(len(body)), props)
	b = AppendBodyFrames(b, 1, body, FrameMinSize)
	b = AppendHeartbeat(b)

	// One octet per read exercises frames split at every position.
	fr := NewFrameReader(iotest.OneByteReader(bytes.NewReader(b)))
	f, err := fr.ReadFrame()
	if err != nil || f.Type != FrameMethod || f.Channel != 1 {
		t.Fatalf("method frame: %+v %v", f, err)
	}
	m, err := DecodeMethod(f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if p := m.(*BasicPublish); p.Exchange != "ex" || p.RoutingKey != "rk" || !p.Mandatory || p.Immediate {
		t.Fatalf("publish: %+v", p)
	}
	f, _ = fr.ReadFrame()
	h, sum, err := ParseContentHeader(f.Payload)
	if err != nil || h.BodySize != 10000 || sum.DeliveryMode != 2 {
		t.Fatalf("header: %+v %+v %v", h, sum, err)
	}
	var got []byte
	for len(got) < len(body) {
		f, err = fr.ReadFrame()
		if err != nil || f.Type != FrameBody {
			t.Fatalf("body: %+v %v", f, err)
		}
		if len(f.Payload) > FrameMinSize-FrameOverhead {
			t.Fatalf("body frame of %d octets exceeds frame_max", len(f.Payload))
		}
		got = append(got, f.Payload...)
	}
	if !bytes.Equal(got, body) {
		t.Fatal("body differs")
	}
	if f, err = fr.ReadFrame(); err != nil || f.Type != FrameHeartbeat {
		t.Fatalf("heartbeat: %+v %v", f, err)
	}
	if _, err = fr.ReadFrame(); err != io.EOF {
		t.Fatalf("at end: %v, want EOF", err)
	}
}

func TestFrameReaderRejects(t *testing.T) {
	big := AppendBodyFrames(nil, 1, make([]byte, 5000), 0)
	if _, err := NewFrameReader(bytes.NewReader(big)).ReadFrame(); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversize frame: %v", err)
	}
	bad := AppendHeartbeat(nil)
	bad[len(bad)-1] = 0
	if _, err := NewFrameReader(bytes.NewReader(bad)).ReadFrame(); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad frame end: %v", err)
	}
	short := AppendHeartbeat(nil)[:5]
	if _, err := NewFrameReader(bytes.NewReader(short)).ReadFrame(); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated frame: %v", err)
	}
	var unknown *UnknownMethodError
	if _, err := DecodeMethod([]byte{0, 60, 0, 99}); !errors.As(err, &unknown) {
		t.Errorf("unknown method: %v", err)
	}
	if _, err := DecodeMethod([]byte{0, 60, 0, 40, 0}); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated publish: %v", err)
	}
}

// FuzzFrameDecoder feeds arbitrary bytes through the frame reader and every
// decoder a broker applies to a frame, reading the input in two halves so
// frames split across reads are covered. Nothing may panic.
func FuzzFrameDecoder(f *testing.F) {
	var seed []byte
	seed = AppendMethodFrame(seed, 1, &QueueDeclare{Queue: "q", Arguments: Table{"x-max-length": int64(5)}})
	seed = AppendHeaderFrame(seed, 1, ClassBasic, 3, AppendProperties(nil, &Properties{Headers: Table{"h": "v"}}))
	seed = AppendBodyFrames(seed, 1, []byte("abc"), 0)
	f.Add(seed, 7)
	f.Add(AppendMethodFrame(nil, 0, &ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest"}), 3)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		if split < 0 || split > len(data) {
			split = len(data) / 2
		}
		r := io.MultiReader(bytes.NewReader(data[:split]), bytes.NewReader(data[split:]))
		fr := NewFrameReader(r)
		fr.SetMaxSize(1 << 20)
		for {
			fm, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch fm.Type {
			case FrameMethod:
				if m, err := DecodeMethod(fm.Payload); err == nil {
					AppendMethodFrame(nil, fm.Channel, m)
				}
			case FrameHeader:
				if h, sum, err := ParseContentHeader(fm.Payload); err == nil {
					DecodeProperties(h.Properties)
					if sum.Headers != nil {
						DecodeTable(sum.Headers)
					}
				}
			}
		}
	})
}

func TestDecodeMethodInto(t *testing.T) {
	payload := func(m Method) []byte {
		b := AppendMethodFrame(nil, 1, m)
		return b[7 : len(b)-1] // strip the frame header and end octet
	}
	var p BasicPublish
	ok, err := DecodeMethodInto(payload(&BasicPublish{Exchange: "ex", RoutingKey: "rk", Mandatory: true}), &p)
	if !ok || err != nil || p.Exchange != "ex" || p.RoutingKey != "rk" || !p.Mandatory || p.Immediate {
		t.Fatalf("first publish: ok %v, err %v, %+v", ok, err, p)
	}
	// The same routing key keeps its string; a new one replaces it, and
	// every field is decoded afresh.
	rk := unsafe.StringData(p.RoutingKey)
	ok, err = DecodeMethodInto(payload(&BasicPublish{Exchange: "ex2", RoutingKey: "rk"}), &p)
	if !ok || err != nil || p.Exchange != "ex2" || p.RoutingKey != "rk" || p.Mandatory {
		t.Fatalf("second publish: ok %v, err %v, %+v", ok, err, p)
	}
	if unsafe.StringData(p.RoutingKey) != rk {
		t.Error("an unchanged routing key was allocated again")
	}
	// Another method leaves the value alone.
	before := p
	ok, err = DecodeMethodInto(payload(&BasicAck{DeliveryTag: 7}), &p)
	if ok || err != nil || p != before {
		t.Fatalf("basic.ack into a publish: ok %v, err %v, %+v", ok, err, p)
	}
	// A truncated publish is an error, reported as DecodeMethod does.
	full := payload(&BasicPublish{Exchange: "ex", RoutingKey: "rk"})
	_, want := DecodeMethod(full[:len(full)-2])
	ok, err = DecodeMethodInto(full[:len(full)-2], &p)
	if !ok || err == nil || want == nil || err.Error() != want.Error() {
		t.Fatalf("truncated publish: ok %v, err %v, want %v", ok, err, want)
	}
}
