package lb

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// TestPipeSmallThenBulk: a few bytes go through the chunk buffer, a bulk
// upload switches that direction to splice, and the byte counts and
// half-close come out right.
func TestPipeSmallThenBulk(t *testing.T) {
	client, proxyClientSide := tcpPair(t)
	proxyServerSide, server := tcpPair(t)
	defer client.Close()
	defer server.Close()
	bufs := &sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}
	var wg sync.WaitGroup
	resc := make(chan pipeResult, 1)
	startPipe(proxyClientSide, proxyServerSide, pipeTimeouts{client: 5 * time.Second, server: 5 * time.Second}, bufs,
		func(f func()) {
			wg.Add(1)
			go func() { defer wg.Done(); f() }()
		},
		func(r pipeResult) {
			// As the session does: both sockets close when the pipe is done.
			proxyClientSide.Close()
			proxyServerSide.Close()
			resc <- r
		})

	bulk := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	got := make(chan []byte, 1)
	go func() {
		data, _ := io.ReadAll(server)
		_, _ = server.Write([]byte("ok"))
		_ = server.CloseWrite()
		got <- data
	}()
	_, _ = client.Write([]byte("hi"))
	time.Sleep(20 * time.Millisecond) // let the small write travel alone
	_, _ = client.Write(bulk)
	_ = client.CloseWrite()
	reply, err := io.ReadAll(client)
	if err != nil || string(reply) != "ok" {
		t.Fatalf("reply %q %v", reply, err)
	}
	if data := <-got; len(data) != 2+len(bulk) || string(data[:2]) != "hi" || !bytes.Equal(data[2:], bulk) {
		t.Fatalf("server got %d bytes", len(data))
	}
	wg.Wait()
	res := <-resc
	if res.toServer != int64(2+len(bulk)) || res.toClient != 2 || res.term != "--" {
		t.Fatalf("result %+v", res)
	}
	if !res.splicedUp || res.splicedDown {
		t.Fatalf("spliced up=%v down=%v, want the bulk direction only", res.splicedUp, res.splicedDown)
	}
}
