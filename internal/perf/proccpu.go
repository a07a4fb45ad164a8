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

// procStat is the part of /proc/<pid>/stat that tree CPU and memory
// accounting needs.
type procStat struct {
	pid, ppid int
	// state is the one-letter process state: R, S, D, Z (zombie), ...
	state byte
	// ticks is utime+stime+cutime+cstime: the process's own CPU time plus
	// that of its children that have exited and been waited for.
	ticks uint64
	// rssPages is the resident set size in pages (field 24), or zero
	// when the line is too short to have it.
	rssPages uint64
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
	state := rest[0][0]
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
	var rss uint64
	if len(rest) > 24-3 {
		// Negative values do not happen; treat anything unparsable as
		// unknown rather than failing CPU accounting over it.
		rss, _ = strconv.ParseUint(string(rest[24-3]), 10, 64)
	}
	return procStat{pid: pid, ppid: ppid, state: state, ticks: ticks, rssPages: rss}, nil
}

// treeCPU returns the CPU time used so far by process root and all its live
// descendants, read from procRoot (normally "/proc"). Processes that exit
// while it scans are skipped.
func treeCPU(procRoot string, root int) (time.Duration, error) {
	tree, err := processTree(procRoot, root)
	if err != nil {
		return 0, err
	}
	var total uint64
	for _, st := range tree {
		total += st.ticks
	}
	return time.Duration(total) * time.Second / clockTicksPerSecond, nil
}

// machineSteal returns the CPU time the hypervisor has taken from this
// machine's virtual CPUs since boot, summed over them (the steal column of
// the "cpu" line of procRoot/stat, procRoot normally "/proc"), and the
// number of CPUs that line sums. A broker's CPU time per message rises
// when the host is busy, for reasons the broker does not control; the
// steal over a run says how busy.
func machineSteal(procRoot string) (time.Duration, int, error) {
	data, err := os.ReadFile(filepath.Join(procRoot, "stat"))
	if err != nil {
		return 0, 0, fmt.Errorf("read %s/stat: %w", procRoot, err)
	}
	var steal time.Duration
	cpus := 0
	for i, line := range bytes.Split(data, []byte("\n")) {
		f := bytes.Fields(line)
		if i == 0 {
			// cpu user nice system idle iowait irq softirq steal ...
			if len(f) < 9 || string(f[0]) != "cpu" {
				return 0, 0, fmt.Errorf("%s/stat: no steal column in %q", procRoot, line)
			}
			ticks, err := strconv.ParseUint(string(f[8]), 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("%s/stat: steal: %w", procRoot, err)
			}
			steal = time.Duration(ticks) * time.Second / clockTicksPerSecond
			continue
		}
		if len(f) > 0 && len(f[0]) > 3 && bytes.HasPrefix(f[0], []byte("cpu")) {
			cpus++
		}
	}
	if cpus == 0 {
		return 0, 0, fmt.Errorf("%s/stat: no per-CPU lines", procRoot)
	}
	return steal, cpus, nil
}

// treeRSS returns the resident memory in bytes of process root and all its
// live descendants, read from procRoot. Memory shared between them is
// counted once per process.
func treeRSS(procRoot string, root int) (uint64, error) {
	tree, err := processTree(procRoot, root)
	if err != nil {
		return 0, err
	}
	var pages uint64
	for _, st := range tree {
		pages += st.rssPages
	}
	return pages * uint64(os.Getpagesize()), nil
}

// processTree returns the stat of process root followed by those of all its
// live descendants, read from procRoot. Processes that exit while it scans
// are skipped.
func processTree(procRoot string, root int) ([]procStat, error) {
	rootData, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(root), "stat"))
	if err != nil {
		return nil, fmt.Errorf("read broker process %d: %w", root, err)
	}
	rootStat, err := parseProcStat(rootData)
	if err != nil {
		return nil, fmt.Errorf("parse %s/%d/stat: %w", procRoot, root, err)
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", procRoot, err)
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
	tree := []procStat{rootStat}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i].pid]...)
	}
	return tree, nil
}
