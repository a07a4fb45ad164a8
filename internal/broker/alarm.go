package broker

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Resource alarms, as RabbitMQ has them: while memory use is above the high
// watermark, or free disk space in the data directory is below the limit,
// connections that publish are blocked: they get connection.blocked and
// are not read until every alarm clears, while consumers keep draining.
type alarms struct {
	mu        sync.Mutex // guards the fields below
	memLimit  uint64     // octets; 0 means no limit
	diskLimit uint64     // free octets below which the disk alarm is on; 0: none
	memOn     bool
	diskOn    bool
	// remoteOn is set while another node of the cluster has an alarm on,
	// which blocks publishers here too; remoteWhy is that alarm's reason.
	remoteOn  bool
	remoteWhy string
	memUsed   uint64        // at the last check
	diskFree  uint64        // at the last check; 0 before one or without a data directory
	cleared   chan struct{} // closed while no alarm is on; replaced when one goes on
}

func newAlarms() *alarms {
	c := make(chan struct{})
	close(c)
	return &alarms{cleared: c}
}

// wait returns nil while no alarm is on, or a channel closed when all
// clear, with the reason to give clients.
func (a *alarms) wait() (<-chan struct{}, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.memOn:
		return a.cleared, "low on memory"
	case a.diskOn:
		return a.cleared, "low on disk"
	case a.remoteOn:
		return a.cleared, a.remoteWhy
	}
	return nil, ""
}

// set turns one alarm on or off and reports whether it changed.
func (a *alarms) set(on *bool, want bool) bool {
	if *on == want {
		return false
	}
	wasAny := a.memOn || a.diskOn || a.remoteOn
	*on = want
	isAny := a.memOn || a.diskOn || a.remoteOn
	if isAny && !wasAny {
		a.cleared = make(chan struct{})
	} else if !isAny && wasAny {
		close(a.cleared)
	}
	return true
}

// watchResources samples memory use and free disk space until stop closes.
func (s *Server) watchResources(stop <-chan struct{}) {
	t := time.NewTicker(s.cfg.MemoryCheckInterval)
	defer t.Stop()
	for {
		s.checkResources()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func (s *Server) checkResources() {
	a := s.alarms
	if rss, err := residentMemory(); err != nil {
		s.log.Warn("read memory use", "error", err)
	} else {
		a.mu.Lock()
		a.memUsed = rss
		changed := a.set(&a.memOn, a.memLimit > 0 && rss > a.memLimit)
		on, limit := a.memOn, a.memLimit
		a.mu.Unlock()
		if changed && on {
			s.log.Warn("memory alarm set: publishers are blocked", "used_bytes", rss, "limit_bytes", limit)
		} else if changed {
			s.log.Info("memory alarm cleared", "used_bytes", rss)
		}
	}
	if s.cfg.DataDir == "" {
		return
	}
	free, err := freeDisk(s.cfg.DataDir)
	if err != nil {
		s.log.Warn("read free disk space", "error", err)
		return
	}
	a.mu.Lock()
	a.diskFree = free
	changed := a.set(&a.diskOn, a.diskLimit > 0 && free < a.diskLimit)
	on, limit := a.diskOn, a.diskLimit
	a.mu.Unlock()
	if changed && on {
		s.log.Warn("disk alarm set: publishers are blocked", "free_bytes", free, "limit_bytes", limit)
	} else if changed {
		s.log.Info("disk alarm cleared", "free_bytes", free)
	}
}

// MemoryLimit returns the memory high watermark in octets.
func (s *Server) MemoryLimit() uint64 {
	s.alarms.mu.Lock()
	defer s.alarms.mu.Unlock()
	return s.alarms.memLimit
}

// SetMemoryHighWatermark sets the watermark as a fraction of the machine's
// memory (relative) or, with absolute > 0, in octets, in force when it
// returns.
func (s *Server) SetMemoryHighWatermark(relative float64, absolute uint64) error {
	if err := s.setMemoryLimit(relative, absolute); err != nil {
		return err
	}
	// At once, as RabbitMQ does: a client told that the watermark is set
	// finds the alarm in force.
	s.checkResources()
	return nil
}

// setMemoryLimit sets the watermark for the next check.
func (s *Server) setMemoryLimit(relative float64, absolute uint64) error {
	limit := absolute
	if limit == 0 {
		total, err := totalMemory()
		if err != nil {
			return err
		}
		limit = uint64(relative * float64(total))
	}
	s.alarms.mu.Lock()
	s.alarms.memLimit = limit
	s.alarms.mu.Unlock()
	s.memory.SetLimit(int64(float64(limit) * s.cfg.MemoryPagingRatio))
	if s.cfg.RuntimeMemoryLimit && os.Getenv("GOMEMLIMIT") == "" && limit > 0 && limit < math.MaxInt64 {
		// A little below the watermark, so that the collector's work
		// keeps the alarm from going off.
		debug.SetMemoryLimit(int64(limit / 10 * 9))
	}
	return nil
}

// SetDiskFreeLimit sets the free space below which publishers are blocked,
// in force when it returns.
func (s *Server) SetDiskFreeLimit(limit uint64) {
	s.setDiskLimit(limit)
	s.checkResources()
}

// setDiskLimit sets the free space limit for the next check.
func (s *Server) setDiskLimit(limit uint64) {
	s.alarms.mu.Lock()
	s.alarms.diskLimit = limit
	s.alarms.mu.Unlock()
}

// Resources is the node's use of memory and disk at the last check, with
// the limits that raise the alarms.
type Resources struct {
	MemUsed, MemLimit       uint64
	DiskFree, DiskFreeLimit uint64
	MemAlarm, DiskAlarm     bool
}

// Resources returns memory and disk use as last sampled.
func (s *Server) Resources() Resources {
	a := s.alarms
	a.mu.Lock()
	defer a.mu.Unlock()
	return Resources{MemUsed: a.memUsed, MemLimit: a.memLimit, DiskFree: a.diskFree, DiskFreeLimit: a.diskLimit, MemAlarm: a.memOn, DiskAlarm: a.diskOn}
}

// MemoryAlarm reports whether publishers are blocked for memory.
func (s *Server) MemoryAlarm() bool {
	s.alarms.mu.Lock()
	defer s.alarms.mu.Unlock()
	return s.alarms.memOn
}

// DiskAlarm reports whether publishers are blocked for disk space.
func (s *Server) DiskAlarm() bool {
	s.alarms.mu.Lock()
	defer s.alarms.mu.Unlock()
	return s.alarms.diskOn
}

func freeDisk(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

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
