package broker

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// memoryAlarm watches the node's memory use against the high watermark.
// While the alarm is on, connections that publish are blocked: they get
// connection.blocked and are not read until it clears, while consumers
// keep draining, as with RabbitMQ's vm_memory_high_watermark.
type memoryAlarm struct {
	mu      sync.Mutex // guards limit, on, cleared
	limit   uint64     // octets; 0 means no limit
	on      bool
	cleared chan struct{} // closed when the alarm goes off; replaced when it goes on
}

func newMemoryAlarm(limit uint64) *memoryAlarm {
	c := make(chan struct{})
	close(c)
	return &memoryAlarm{limit: limit, cleared: c}
}

// wait returns nil while the alarm is off, or a channel closed when it
// clears.
func (a *memoryAlarm) wait() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.on {
		return nil
	}
	return a.cleared
}

// active reports whether the alarm is on.
func (a *memoryAlarm) active() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.on
}

func (a *memoryAlarm) setLimit(limit uint64) {
	a.mu.Lock()
	a.limit = limit
	a.mu.Unlock()
}

// update compares used with the limit and turns the alarm on or off. It
// reports whether the state changed.
func (a *memoryAlarm) update(used uint64) (changed, on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	want := a.limit > 0 && used > a.limit
	if want == a.on {
		return false, a.on
	}
	a.on = want
	if want {
		a.cleared = make(chan struct{})
	} else {
		close(a.cleared)
	}
	return true, want
}

// watchMemory samples the process's resident memory until stop closes.
func (s *Server) watchMemory(stop <-chan struct{}) {
	t := time.NewTicker(s.cfg.MemoryCheckInterval)
	defer t.Stop()
	for {
		rss, err := residentMemory()
		if err != nil {
			s.log.Warn("read memory use", "error", err)
		} else if changed, on := s.memAlarm.update(rss); changed {
			if on {
				s.log.Warn("memory alarm set: publishers are blocked", "used_bytes", rss, "limit_bytes", s.MemoryLimit())
			} else {
				s.log.Info("memory alarm cleared", "used_bytes", rss)
			}
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// MemoryLimit returns the memory high watermark in octets.
func (s *Server) MemoryLimit() uint64 {
	s.memAlarm.mu.Lock()
	defer s.memAlarm.mu.Unlock()
	return s.memAlarm.limit
}

// SetMemoryHighWatermark sets the watermark as a fraction of the machine's
// memory (relative) or, with absolute > 0, in octets. It takes effect at
// the next check.
func (s *Server) SetMemoryHighWatermark(relative float64, absolute uint64) error {
	limit := absolute
	if limit == 0 {
		total, err := totalMemory()
		if err != nil {
			return err
		}
		limit = uint64(relative * float64(total))
	}
	s.memAlarm.setLimit(limit)
	return nil
}

// MemoryAlarm reports whether publishers are blocked for memory.
func (s *Server) MemoryAlarm() bool { return s.memAlarm.active() }

func residentMemory() (uint64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, fmt.Errorf("read statm: %w", err)
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, fmt.Errorf("read statm: %q", b)
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read statm: %w", err)
	}
	return pages * uint64(os.Getpagesize()), nil
}

// totalMemory is the machine's memory, or the cgroup's limit if lower.
func totalMemory() (uint64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("read meminfo: %w", err)
	}
	defer f.Close()
	var total uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb uint64
		if n, _ := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kb); n == 1 {
			total = kb << 10
			break
		}
	}
	if total == 0 {
		return 0, fmt.Errorf("read meminfo: no MemTotal")
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if v, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64); err == nil && v < total {
			total = v
		}
	}
	return total, nil
}
