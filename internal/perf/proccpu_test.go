package perf

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// statLine builds a /proc/<pid>/stat line with the given CPU tick fields.
func statLine(pid, ppid int, comm string, utime, stime, cutime, cstime int) string {
	// Fields 3..13, then 14..17, then the rest (enough of them to look real).
	return strconv.Itoa(pid) + " (" + comm + ") S " + strconv.Itoa(ppid) +
		" 1 1 0 -1 4194560 100 0 0 0 " +
		strconv.Itoa(utime) + " " + strconv.Itoa(stime) + " " + strconv.Itoa(cutime) + " " + strconv.Itoa(cstime) +
		" 20 0 8 0 12345 100000 500 18446744073709551615\n"
}

func TestParseProcStat(t *testing.T) {
	st, err := parseProcStat([]byte(statLine(77, 12, "beam.smp) (x y", 150, 50, 7, 3)))
	if err != nil {
		t.Fatal(err)
	}
	if st.pid != 77 || st.ppid != 12 || st.ticks != 210 {
		t.Fatalf("got %+v, want pid 77 ppid 12 ticks 210", st)
	}
	for _, bad := range []string{"", "12 no parens", "x (a) S 1 2", "5 (a) S 1 2 3"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
}

func TestTreeCPUSumsDescendantsOnly(t *testing.T) {
	root := t.TempDir()
	write := func(pid, ppid, utime, stime, cutime, cstime int) {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		line := statLine(pid, ppid, "p"+strconv.Itoa(pid), utime, stime, cutime, cstime)
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(1, 0, 1000, 1000, 0, 0) // init: not part of the tree
	write(10, 1, 100, 50, 20, 5)  // broker: 175 ticks
	write(11, 10, 30, 10, 0, 0)   // child: 40
	write(12, 11, 4, 1, 0, 0)     // grandchild: 5
	write(13, 1, 500, 500, 0, 0)  // unrelated
	if err := os.MkdirAll(filepath.Join(root, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := treeCPU(root, 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2200 * time.Millisecond; got != want { // 220 ticks at 100 Hz
		t.Fatalf("treeCPU = %v, want %v", got, want)
	}
	if _, err := treeCPU(root, 99); err == nil {
		t.Fatal("missing broker pid gave no error")
	}
}

func TestTreeCPUOfRealChildProcess(t *testing.T) {
	// A real child that burns CPU: its time must show up in our tree.
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
	before, err := treeCPU("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Run(); err != nil {
		t.Fatalf("run busy child: %v", err)
	}
	after, err := treeCPU("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// The child has been waited for, so its time is in our cutime/cstime.
	if after-before < 10*time.Millisecond {
		t.Fatalf("tree CPU grew by %v after a busy child, want at least 10ms", after-before)
	}
}

func TestParseProcStatStateAndRSS(t *testing.T) {
	st, err := parseProcStat([]byte(statLine(5, 1, "w", 1, 1, 0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	if st.state != 'S' || st.rssPages != 500 {
		t.Fatalf("state %q rss %d, want 'S' and 500 pages", st.state, st.rssPages)
	}
	zombie := strings.Replace(statLine(6, 1, "z", 0, 0, 0, 0), ") S ", ") Z ", 1)
	if st, err := parseProcStat([]byte(zombie)); err != nil || st.state != 'Z' {
		t.Fatalf("zombie: %+v, %v", st, err)
	}
	// A line that ends before field 24 has no RSS, which is no error.
	short := "7 (s) R 1 1 1 0 -1 0 0 0 0 0 10 20 0 0 20\n"
	if st, err := parseProcStat([]byte(short)); err != nil || st.rssPages != 0 || st.ticks != 30 {
		t.Fatalf("short line: %+v, %v", st, err)
	}
}

func TestTreeRSSSumsDescendants(t *testing.T) {
	root := t.TempDir()
	for _, p := range []struct{ pid, ppid, rss int }{{1, 0, 9000}, {10, 1, 100}, {11, 10, 20}, {12, 11, 3}, {13, 1, 7000}} {
		dir := filepath.Join(root, strconv.Itoa(p.pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		line := strings.Replace(statLine(p.pid, p.ppid, "p", 0, 0, 0, 0), " 500 ", " "+strconv.Itoa(p.rss)+" ", 1)
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := treeRSS(root, 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(123 * os.Getpagesize()); got != want {
		t.Fatalf("treeRSS = %d, want %d", got, want)
	}
	if self, err := treeRSS("/proc", os.Getpid()); err != nil || self == 0 {
		t.Fatalf("own tree RSS %d, %v", self, err)
	}
}

func TestMachineSteal(t *testing.T) {
	root := t.TempDir()
	stat := "cpu  1913350 612932 826540 5149133 42735 0 166303 181785 0 0\n" +
		"cpu0 956675 306466 413270 2574566 21367 0 83151 90892 0 0\n" +
		"cpu1 956675 306466 413270 2574567 21368 0 83152 90893 0 0\n" +
		"intr 12345 0 0\nctxt 999\n"
	if err := os.WriteFile(filepath.Join(root, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	steal, cpus, err := machineSteal(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := 1817850 * time.Millisecond; steal != want || cpus != 2 { // 181785 ticks at 100 Hz
		t.Fatalf("machineSteal = %v over %d CPUs, want %v over 2", steal, cpus, want)
	}
	// A kernel too old to have the steal column is an error, not zero.
	if err := os.WriteFile(filepath.Join(root, "stat"), []byte("cpu  1 2 3 4 5 6 7\ncpu0 1 2 3 4 5 6 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := machineSteal(root); err == nil {
		t.Fatal("a cpu line without steal gave no error")
	}
	// The real one parses.
	if _, cpus, err := machineSteal("/proc"); err != nil || cpus < 1 {
		t.Fatalf("/proc/stat: %d CPUs, %v", cpus, err)
	}
}
