package perf

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// IdleConfig describes a memory measurement: many idle connections with a
// channel each, then many empty queues, with the broker's resident memory
// read after each step.
type IdleConfig struct {
	URI         string
	TLS         *tls.Config // for amqps://; see Config.TLS
	Connections int
	Queues      int
	// BrokerPID is the broker process whose memory is read.
	BrokerPID int
	// Progress receives a line per step; nil discards.
	Progress io.Writer
	// Hold keeps the connections open after measuring until ctx ends, so
	// that other measurements can run against a loaded broker.
	Hold bool
}

// IdleResult is the broker's resident memory at each step, in octets.
type IdleResult struct {
	Connections    int    `json:"connections"`
	Queues         int    `json:"queues"`
	RSSBefore      uint64 `json:"rss_before"`
	RSSConnections uint64 `json:"rss_with_connections"`
	RSSQueues      uint64 `json:"rss_with_queues"`
}

// Idle runs the measurement described by cfg.
func Idle(ctx context.Context, cfg IdleConfig) (IdleResult, error) {
	out := cfg.Progress
	if out == nil {
		out = io.Discard
	}
	res := IdleResult{Connections: cfg.Connections, Queues: cfg.Queues}
	var err error
	if res.RSSBefore, err = processRSS(cfg.BrokerPID); err != nil {
		return res, err
	}
	conns := make([]*amqp.Connection, cfg.Connections)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	next := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := amqp.DialConfig(cfg.URI, amqp.Config{Heartbeat: 0, TLSClientConfig: TLSFor(cfg.TLS)})
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
				if _, err := c.Channel(); err != nil {
					c.Close()
					errs <- fmt.Errorf("channel on connection %d: %w", i, err)
					return
				}
				conns[i] = c
			}
		}()
	}
	start := time.Now()
feed:
	for i := range conns {
		select {
		case next <- i:
		case err = <-errs:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	if err != nil {
		return res, err
	}
	fmt.Fprintf(out, "opened %d connections with a channel each in %v\n", cfg.Connections, time.Since(start).Round(time.Millisecond))
	time.Sleep(time.Second)
	if res.RSSConnections, err = processRSS(cfg.BrokerPID); err != nil {
		return res, err
	}
	if cfg.Queues > 0 {
		if err := declareQueues(ctx, cfg, out); err != nil {
			return res, err
		}
		time.Sleep(time.Second)
		if res.RSSQueues, err = processRSS(cfg.BrokerPID); err != nil {
			return res, err
		}
	}
	if cfg.Hold {
		fmt.Fprintf(out, "holding %d connections and %d queues until interrupted\n", cfg.Connections, cfg.Queues)
		<-ctx.Done()
	}
	return res, nil
}

// declareQueues declares cfg.Queues durable empty queues over a few
// channels, without waiting for each declare-ok, and then checks the last
// one exists.
func declareQueues(ctx context.Context, cfg IdleConfig, out io.Writer) error {
	c, err := amqp.DialConfig(cfg.URI, amqp.Config{TLSClientConfig: TLSFor(cfg.TLS)})
	if err != nil {
		return err
	}
	defer c.Close()
	const workers = 4
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		ch, err := c.Channel()
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < cfg.Queues; i += workers {
				if ctx.Err() != nil {
					return
				}
				if _, err := ch.QueueDeclare(fmt.Sprintf("idle-%d", i), true, false, false, true, nil); err != nil {
					errs <- err
					return
				}
			}
			// A round trip: every declare before it has been applied.
			if _, err := ch.QueueDeclarePassive(fmt.Sprintf("idle-%d", w), true, false, false, false, nil); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return fmt.Errorf("declare queues: %w", err)
	default:
	}
	fmt.Fprintf(out, "declared %d queues in %v\n", cfg.Queues, time.Since(start).Round(time.Millisecond))
	return nil
}

// processRSS returns a process's resident memory from /proc/PID/status.
func processRSS(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read broker memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			var kb uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err != nil {
				return 0, fmt.Errorf("read broker memory: %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("read broker memory: no VmRSS for pid %d", pid)
}

// TLSFor is the TLS configuration to dial an amqps:// URI with: c, or
// one that accepts any certificate (PerfTest's default for amqps).
func TLSFor(c *tls.Config) *tls.Config {
	if c != nil {
		return c
	}
	// A load generator, as PerfTest: -cacert asks for checking.
	return &tls.Config{InsecureSkipVerify: true}
}

// LoadCA returns a TLS configuration that checks the broker's certificate
// against the PEM CA certificates in path.
func LoadCA(path string) (*tls.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", path)
	}
	return &tls.Config{RootCAs: pool}, nil
}
