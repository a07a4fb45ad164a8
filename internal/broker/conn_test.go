package broker_test

import (
	"bytes"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/broker"
)

func addrOf(url string) string {
	return strings.TrimSuffix(strings.TrimPrefix(url, "amqp://guest:guest@"), "/")
}

func TestBadProtocolHeaderIsAnsweredWithOurs(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	r := rawDial(t, addrOf(url))
	r.send([]byte("AMQP\x01\x01\x00\x0a"))
	got, err := io.ReadAll(r.nc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, amqp.ProtocolHeader[:]) {
		t.Fatalf("got %q, want our protocol header and then EOF", got)
	}
}

func TestSilentClientIsDroppedAfterHandshakeTimeout(t *testing.T) {
	_, url := startNode(t, broker.Config{HandshakeTimeout: 300 * time.Millisecond})
	r := rawDial(t, addrOf(url))
	start := time.Now()
	if _, err := io.ReadAll(r.nc); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("dropped after %v", d)
	}
	// A client that sent the header but stalls in the handshake too.
	r = rawDial(t, addrOf(url))
	r.send(amqp.ProtocolHeader[:])
	r.expect(&amqp.ConnectionStart{})
	if got := r.closeReason(); got != "eof" {
		t.Fatalf("stalled handshake: %s", got)
	}
}

func TestMissedHeartbeatsCloseTheConnection(t *testing.T) {
	_, url := startNode(t, broker.Config{Heartbeat: time.Second})
	r := rawDial(t, addrOf(url))
	r.send(amqp.ProtocolHeader[:])
	r.expect(&amqp.ConnectionStart{})
	r.method(0, &amqp.ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest"})
	tune := r.expect(&amqp.ConnectionTune{}).(*amqp.ConnectionTune)
	if tune.Heartbeat != 1 {
		t.Fatalf("offered heartbeat %d, want 1", tune.Heartbeat)
	}
	r.method(0, &amqp.ConnectionTuneOk{ChannelMax: 10, FrameMax: 131072, Heartbeat: 1})
	r.method(0, &amqp.ConnectionOpen{VirtualHost: "/"})
	r.expect(&amqp.ConnectionOpenOk{})
	// The server heartbeats while we stay silent, then gives up on us.
	start := time.Now()
	heartbeats := 0
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			break
		}
		if f.Type == amqp.FrameHeartbeat {
			heartbeats++
		}
	}
	if d := time.Since(start); d < 1500*time.Millisecond || d > 6*time.Second {
		t.Fatalf("closed after %v, want about two heartbeat intervals", d)
	}
	if heartbeats == 0 {
		t.Fatal("server sent no heartbeat")
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestManyConnectionsLeaveNothingBehind opens and closes 10,000 client
// connections and checks that goroutines and file descriptors return to
// where they were.
func TestManyConnectionsLeaveNothingBehind(t *testing.T) {
	s, url := startNode(t, broker.Config{})
	_ = s
	// Settle, then take the baseline.
	c := dial(t, url)
	c.Close()
	time.Sleep(100 * time.Millisecond)
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)

	const total, workers = 10000, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < total/workers; i++ {
				nc, err := net.Dial("tcp", addrOf(url))
				if err != nil {
					errs <- err
					return
				}
				c, err := amqp091.Open(nc, amqp091.Config{SASL: []amqp091.Authentication{&amqp091.PlainAuth{Username: "guest", Password: "guest"}}, Vhost: "/"})
				if err != nil {
					nc.Close()
					errs <- err
					return
				}
				if i%2 == 0 {
					c.Close()
				} else {
					// Half of them vanish without connection.close.
					nc.Close()
					c.Close()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		g, fd := runtime.NumGoroutine(), openFDs(t)
		if g <= baseG+2 && fd <= baseFD+2 {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			n := runtime.Stack(buf, true)
			t.Fatalf("after %d connections: %d goroutines (was %d), %d fds (was %d)\n%s", total, g, baseG, fd, baseFD, buf[:n])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
