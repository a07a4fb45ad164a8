package broker

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/queue"
)

// TestLinkFrameRoundTrip writes a publish frame and reads it back, and
// checks that every truncation of it is refused as malformed rather than
// read as something else.
func TestLinkFrameRoundTrip(t *testing.T) {
	m := &queue.Message{TTL: 1500 * time.Millisecond, Exchange: "x", RoutingKey: "k.1", Properties: []byte{0x80, 0, 1}, Body: []byte("hello"), Persistent: true, Priority: 7}
	var w frameWriter
	at := w.begin(opPublish)
	w.uint(42)
	w.str("/")
	w.uint(2)
	w.str("q1")
	w.str("q2")
	w.message(m)
	w.end(at)

	var buf []byte
	op, r, err := readFrame(bufio.NewReader(bytes.NewReader(w.b)), &buf)
	if err != nil || op != opPublish {
		t.Fatalf("read: %v %v", op, err)
	}
	id, vh, n := r.uint(), r.str(), r.uint()
	q1, q2 := r.str(), r.str()
	got := r.message()
	if r.err != nil || id != 42 || vh != "/" || n != 2 || q1 != "q1" || q2 != "q2" || len(r.b) != 0 {
		t.Fatalf("fields: %d %q %d %q %q err %v, %d left", id, vh, n, q1, q2, r.err, len(r.b))
	}
	if got.TTL != m.TTL || got.Exchange != m.Exchange || got.RoutingKey != m.RoutingKey || !bytes.Equal(got.Properties, m.Properties) ||
		!bytes.Equal(got.Body, m.Body) || got.Persistent != m.Persistent || got.Priority != m.Priority {
		t.Fatalf("message: %+v", got)
	}
	// The payload cut anywhere short of its end never decodes cleanly.
	payload := w.b[5:]
	for cut := range len(payload) {
		r := frameReader{b: payload[:cut]}
		r.uint()
		r.str()
		r.uint()
		r.str()
		r.str()
		r.message()
		if !errors.Is(r.err, errLinkFrame) {
			t.Fatalf("payload cut at %d of %d decoded without error", cut, len(payload))
		}
	}
	// A frame whose length is zero or past the limit is refused.
	for _, hdr := range [][]byte{{0, 0, 0, 0, 1}, {0x7f, 0xff, 0xff, 0xff, 1}} {
		if _, _, err := readFrame(bufio.NewReader(bytes.NewReader(hdr)), &buf); !errors.Is(err, errLinkFrame) {
			t.Errorf("header % x: %v", hdr, err)
		}
	}
}
