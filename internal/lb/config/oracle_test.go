package config

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/warren-mq/warren/internal/seeds"
	"github.com/warren-mq/warren/internal/seeds/seedstest"
)

// deliberateDifferences lists corpus files that HAProxy 2.6 rejects and
// warren-lb accepts on purpose, with the line HAProxy complains about first.
// Both forms appear in the runbooks and were valid in older HAProxy versions.
var deliberateDifferences = map[string]struct {
	line int // 0: the file says "quiet" and haproxy prints nothing
	why  string
}{
	"seed000.cfg": {48, "listen NAME ADDR:PORT"},
	"seed002.cfg": {0, "nbproc"},
}

var alertLine = regexp.MustCompile(`\[ALERT\].*?\[([^\]:]+):(\d+)\]`)

// missingTimeoutsLine finds HAProxy's "missing timeouts" warnings.
var missingTimeoutsLine = regexp.MustCompile(`missing timeouts for \w+ '[^']*'\.`)

// haproxyCheck runs Debian's haproxy -c and returns whether it accepted the
// file, the line numbers of the errors it reported, and its output.
func haproxyCheck(t *testing.T, bin, dir, file string) (bool, []int, string) {
	t.Helper()
	cmd := exec.Command(bin, "-c", "-f", file)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var lines []int
	for _, m := range alertLine.FindAllStringSubmatch(string(out), -1) {
		n, _ := strconv.Atoi(m[2])
		lines = append(lines, n)
	}
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("running haproxy: %v", err)
		}
		return false, lines, string(out)
	}
	return true, lines, string(out)
}

func haproxyBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatalf("haproxy is needed as the test oracle (apt-get install haproxy, listed in scripts/deps/lb.txt): %v", err)
	}
	return bin
}

// TestOracleHAProxyCheck parses every corpus file with warren-lb and with
// haproxy -c: both must accept or reject the same files, and for rejected
// files warren-lb must report the first line HAProxy reports. The corpus is
// the files in testdata/oracle and the runbooks' haproxy.cfg files, which
// the seeds package writes into a temporary directory.
func TestOracleHAProxyCheck(t *testing.T) {
	bin := haproxyBinary(t)
	dir := filepath.Join("testdata", "oracle")
	files, err := filepath.Glob(filepath.Join(dir, "*.cfg"))
	if err != nil || len(files) < 30 {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	if seedstest.Found(t) {
		seedDir := t.TempDir()
		seedNames := seeds.NamesWithSuffix(".cfg")
		if len(seedNames) < 7 {
			t.Fatalf("runbook haproxy.cfg files: %v", seedNames)
		}
		for _, n := range seedNames {
			p, err := seeds.WriteFile(seedDir, n)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, p)
		}
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			hpOK, hpLines, hpOut := haproxyCheck(t, bin, filepath.Dir(path), name)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			res, perr := ParseWithResolver(name, data, loopbackOnly)
			var ourLines []int
			if es, ok := perr.(Errors); ok {
				for _, e := range es {
					ourLines = append(ourLines, e.Pos.Line)
				}
			}
			if d, ok := deliberateDifferences[name]; ok {
				if hpOK || len(hpLines) > 0 && hpLines[0] != d.line {
					t.Fatalf("haproxy no longer rejects %s at line %d (accepted=%v lines=%v)", d.why, d.line, hpOK, hpLines)
				}
				if perr != nil {
					t.Fatalf("warren-lb should accept %s: %v", d.why, perr)
				}
				return
			}
			if hpOK != (perr == nil) {
				t.Fatalf("haproxy accepted=%v, warren-lb error=%v", hpOK, perr)
			}
			if !hpOK && len(hpLines) > 0 {
				sort.Ints(ourLines)
				if !containsInt(ourLines, hpLines[0]) {
					t.Fatalf("haproxy reports line %d, warren-lb lines %v: %v", hpLines[0], ourLines, perr)
				}
			}
			if hpOK && res != nil {
				// The same proxies lack timeouts for both.
				var ours []string
				for _, w := range res.Warnings {
					ours = append(ours, missingTimeoutsLine.FindAllString(w.Msg, -1)...)
				}
				theirs := missingTimeoutsLine.FindAllString(hpOut, -1)
				if strings.Join(ours, "\n") != strings.Join(theirs, "\n") {
					t.Fatalf("missing timeouts warnings differ\nhaproxy:\n%s\nwarren-lb:\n%s", strings.Join(theirs, "\n"), strings.Join(ours, "\n"))
				}
			}
			if strings.HasPrefix(name, "bad_several") && len(ourLines) < 3 {
				t.Fatalf("want every error listed, got %v", perr)
			}
		})
	}
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
