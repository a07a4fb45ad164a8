// Command benchtool drives the warren-lb versus haproxy benchmark run by
// scripts/bench-lb.sh: a backend server and load generators for bulk
// throughput, connection rate, request/response latency and idle memory.
// It talks to 127.0.0.1 only.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool serve|bulk|rate|latency|idle [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "bulk":
		err = bulk(os.Args[2:])
	case "rate":
		err = rate(os.Args[2:])
	case "latency":
		err = latency(os.Args[2:])
	case "idle":
		err = idle(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

// serve runs the backend: each connection's first byte selects the
// behaviour: 's' sink (read to EOF, then answer with the byte count),
// 'e' echo. Other first bytes are echoed.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	_ = fs.Parse(args)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil
		}
		go func() {
			defer c.Close()
			var first [1]byte
			if _, err := io.ReadFull(c, first[:]); err != nil {
				return
			}
			if first[0] == 's' {
				n, _ := io.Copy(io.Discard, c)
				_, _ = fmt.Fprintf(c, "%d\n", n+1)
				return
			}
			if _, err := c.Write(first[:]); err != nil {
				return
			}
			_, _ = io.Copy(c, c)
		}()
	}
}

// bulk pushes -bytes in total through -conns parallel connections and
// prints MiB/s.
func bulk(args []string) error {
	fs := flag.NewFlagSet("bulk", flag.ExitOnError)
	addr := fs.String("addr", "", "proxy address")
	total := fs.Int64("bytes", 1<<30, "bytes to send in total")
	conns := fs.Int("conns", 1, "parallel connections")
	_ = fs.Parse(args)
	per := *total / int64(*conns)
	buf := make([]byte, 256<<10)
	buf[0] = 's'
	var wg sync.WaitGroup
	errc := make(chan error, *conns)
	start := time.Now()
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", *addr)
			if err != nil {
				errc <- err
				return
			}
			defer c.Close()
			left := per
			for left > 0 {
				n := int64(len(buf))
				if left < n {
					n = left
				}
				m, err := c.Write(buf[:n])
				if err != nil {
					errc <- err
					return
				}
				left -= int64(m)
			}
			_ = c.(*net.TCPConn).CloseWrite()
			reply, err := io.ReadAll(c)
			if err != nil {
				errc <- err
				return
			}
			if got, _ := strconv.ParseInt(strings.TrimSpace(string(reply)), 10, 64); got != per {
				errc <- fmt.Errorf("backend got %d bytes, sent %d", got, per)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	fmt.Printf("%.1f\n", float64(per*int64(*conns))/(1<<20)/el.Seconds())
	return nil
}

// rate opens short connections (connect, one byte each way, close) from
// -workers goroutines for -duration and prints connections per second.
func rate(args []string) error {
	fs := flag.NewFlagSet("rate", flag.ExitOnError)
	addr := fs.String("addr", "", "proxy address")
	workers := fs.Int("workers", 16, "parallel clients")
	dur := fs.Duration("duration", 5*time.Second, "run time")
	_ = fs.Parse(args)
	var done, failed atomic.Int64
	stop := time.Now().Add(*dur)
	var wg sync.WaitGroup
	for i := 0; i < *workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := []byte{'e'}
			for time.Now().Before(stop) {
				c, err := net.Dial("tcp", *addr)
				if err != nil {
					failed.Add(1)
					time.Sleep(time.Millisecond)
					continue
				}
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write(b); err == nil {
					if _, err := io.ReadFull(c, b); err == nil {
						done.Add(1)
					} else {
						failed.Add(1)
					}
				}
				// Close with RST-free FIN from the client side.
				c.Close()
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > done.Load()/100 {
		return fmt.Errorf("%d failed connections (%d ok)", f, done.Load())
	}
	fmt.Printf("%.0f\n", float64(done.Load())/dur.Seconds())
	return nil
}

// latency measures round trips of a -size byte message on one connection,
// through the proxy and directly, and prints the added p50 and p99 in
// microseconds.
func latency(args []string) error {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	addr := fs.String("addr", "", "proxy address")
	direct := fs.String("direct", "", "backend address")
	n := fs.Int("n", 20000, "round trips")
	size := fs.Int("size", 64, "message size")
	_ = fs.Parse(args)
	measure := func(a string) ([]time.Duration, error) {
		c, err := net.Dial("tcp", a)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		msg := make([]byte, *size)
		msg[0] = 'e'
		got := make([]byte, *size)
		var out []time.Duration
		for i := 0; i < *n; i++ {
			t0 := time.Now()
			if _, err := c.Write(msg); err != nil {
				return nil, err
			}
			if _, err := io.ReadFull(c, got); err != nil {
				return nil, err
			}
			out = append(out, time.Since(t0))
			msg[0] = 'x'
		}
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		return out, nil
	}
	p, err := measure(*addr)
	if err != nil {
		return err
	}
	d, err := measure(*direct)
	if err != nil {
		return err
	}
	pct := func(s []time.Duration, q float64) float64 { return float64(s[int(q*float64(len(s)-1))].Microseconds()) }
	fmt.Printf("%.0f %.0f\n", pct(p, 0.5)-pct(d, 0.5), pct(p, 0.99)-pct(d, 0.99))
	return nil
}

// idle opens -n connections through the proxy, waits, reads the proxy's
// RSS before and after from /proc and prints KiB per connection.
func idle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	addr := fs.String("addr", "", "proxy address")
	pid := fs.Int("pid", 0, "proxy pid")
	n := fs.Int("n", 1000, "connections")
	_ = fs.Parse(args)
	before, err := rss(*pid)
	if err != nil {
		return err
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	b := []byte{'e'}
	for i := 0; i < *n; i++ {
		c, err := net.Dial("tcp", *addr)
		if err != nil {
			return err
		}
		conns = append(conns, c)
		if _, err := c.Write(b); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return err
		}
	}
	time.Sleep(time.Second)
	after, err := rss(*pid)
	if err != nil {
		return err
	}
	fmt.Printf("%.2f\n", float64(after-before)/float64(*n))
	return nil
}

// rss returns a process's resident set size in KiB.
func rss(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}
