package perf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// clockTicksPerSecond is Linux's USER_HZ, the unit of the CPU times in
// /proc/<pid>/stat. It is 100 on every architecture Go supports on Linux;
// reading sysconf(_SC_CLK_TCK) would need cgo.
const clockTicksPerSecond = 100

// procStat is the part of /proc/<pid>/stat that tree CPU accounting needs.
type procStat struct {
	pid, ppid int
	// ticks is utime+stime+cutime+cstime: the process's own CPU time plus
	// that of its children that have exited and been waited for.
	ticks uint64
}

// parseProcStat parses the contents of a /proc/<pid>/stat file. The command
// name (field 2) is in parentheses and may itself contain spaces and
// parentheses, so fields are counted from the last ')'.
func parseProcStat(data []byte) (procStat, error) {
	open := bytes.IndexByte(data, '(')
	end := bytes.LastIndexByte(data, ')')
	if open < 1 || end < open {
		return procStat{}, errors.New("no command name in parentheses")
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(data[:open])))
	if err != nil {
		return procStat{}, fmt.Errorf("pid: %w", err)
	}
	// Field 3 (state) is rest[0]; field n is rest[n-3].
	rest := bytes.Fields(data[end+1:])
	if len(rest) < 15 {
		return procStat{}, fmt.Errorf("only %d fields after the command name", len(rest))
	}
	ppid, err := strconv.Atoi(string(rest[4-3]))
	if err != nil {
		return procStat{}, fmt.Errorf("ppid: %w", err)
	}
	var ticks uint64
	for field := 14; field <= 17; field++ {
		v, err := strconv.ParseUint(string(rest[field-3]), 10, 64)
		if err != nil {
			// cutime and cstime are signed in the kernel; a negative
			// value never happens in practice, but do not fail on it.
			if n, err2 := strconv.ParseInt(string(rest[field-3]), 10, 64); err2 == nil && n < 0 {
				continue
			}
			return procStat{}, fmt.Errorf("field %d: %w", field, err)
		}
		ticks += v
	}
	return procStat{pid: pid, ppid: ppid, ticks: ticks}, nil
}

// treeCPU returns the CPU time used so far by process root and all its live
// descendants, read from procRoot (normally "/proc"). Processes that exit
// while it scans are skipped.
func treeCPU(procRoot string, root int) (time.Duration, error) {
	rootData, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(root), "stat"))
	if err != nil {
		return 0, fmt.Errorf("read broker process %d: %w", root, err)
	}
	rootStat, err := parseProcStat(rootData)
	if err != nil {
		return 0, fmt.Errorf("parse %s/%d/stat: %w", procRoot, root, err)
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", procRoot, err)
	}
	children := make(map[int][]procStat)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == root {
			continue
		}
		data, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		st, err := parseProcStat(data)
		if err != nil {
			continue
		}
		children[st.ppid] = append(children[st.ppid], st)
	}
	total := rootStat.ticks
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			total += c.ticks
			queue = append(queue, c.pid)
		}
	}
	return time.Duration(total) * time.Second / clockTicksPerSecond, nil
}
