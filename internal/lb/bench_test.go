package lb

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// BenchmarkShortConnections measures connect, one byte each way, close,
// through warren-lb to an echo backend.
func BenchmarkShortConnections(b *testing.B) {
	be, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	go func() {
		for {
			c, err := be.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	l, err := New(mustConfigB(b, listenCfg(port, "    server x "+be.Addr().String())), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := []byte{'x'}
		for pb.Next() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := c.Write(buf); err != nil {
				b.Error(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Error(err)
			}
			c.Close()
		}
	})
}

// BenchmarkIdleConnectionMemory reports the Go stack and heap held per idle
// proxied connection (the figure includes the test's own client and
// backend goroutines and sockets, which live in the same process).
func BenchmarkIdleConnectionMemory(b *testing.B) {
	be, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	go func() {
		for {
			c, err := be.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	l, err := New(mustConfigB(b, listenCfg(port, "    server x "+be.Addr().String())), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	const n = 1000
	for i := 0; i < b.N; i++ {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		conns := make([]net.Conn, 0, n)
		buf := []byte{'x'}
		for j := 0; j < n; j++ {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = c.Write(buf)
			_, _ = io.ReadFull(c, buf)
			conns = append(conns, c)
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.StackInuse-m0.StackInuse)/n, "stack-B/conn")
		b.ReportMetric(float64(m1.HeapInuse-m0.HeapInuse)/n, "heap-B/conn")
		for _, c := range conns {
			c.Close()
		}
		for l.ActiveConns() > 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
}
