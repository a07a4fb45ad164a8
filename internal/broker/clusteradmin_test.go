package broker

import (
	"encoding/json"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/amqp"
)

// The operators' views cross the cluster as JSON and must come back as
// they went: typed table values and addresses included.
func TestAdminInfosCrossTheClusterIntact(t *testing.T) {
	props := amqp.Table{"product": "x", "capabilities": amqp.Table{"basic.nack": true}, "n": int32(7), "raw": []byte{1, 2}}
	conn := ConnectionInfo{ID: "12", Node: "a@h", Name: "1.2.3.4:5 -> 6.7.8.9:5672", User: "guest", VHost: "/",
		Peer: &net.TCPAddr{IP: net.IPv4(1, 2, 3, 4).To4(), Port: 5}, Local: &net.TCPAddr{IP: net.ParseIP("::1"), Port: 5672},
		ClientProperties: props, ConnectedAt: time.UnixMilli(1700000000000).UTC(), Heartbeat: 60 * time.Second, RecvOct: 99}
	var conn2 ConnectionInfo
	roundTrip(t, conn, &conn2)
	if !reflect.DeepEqual(conn, conn2) {
		t.Errorf("connection:\n got %#v\nwant %#v", conn2, conn)
	}
	ch := ChannelInfo{Node: "a@h", Connection: conn.Name, Number: 3, Peer: textAddr("pipe"), Confirm: true, Counts: MessageCounts{Publish: 4}}
	var ch2 ChannelInfo
	roundTrip(t, ch, &ch2)
	if !reflect.DeepEqual(ch, ch2) {
		t.Errorf("channel:\n got %#v\nwant %#v", ch2, ch)
	}
	cons := ConsumerInfo{Tag: "t", VHost: "/", Queue: "q", Node: "b@h", ConnectionID: "9", Connection: conn.Name, Channel: 1,
		Arguments: amqp.Table{"x-priority": int32(5)}, Prefetch: 10, Active: true}
	var cons2 ConsumerInfo
	roundTrip(t, cons, &cons2)
	if !reflect.DeepEqual(cons, cons2) {
		t.Errorf("consumer:\n got %#v\nwant %#v", cons2, cons)
	}
}

func roundTrip(t *testing.T, v, into any) {
	t.Helper()
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, into); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
}
