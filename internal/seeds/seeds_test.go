package seeds

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEveryConfigIsFound(t *testing.T) {
	names := Names()
	if len(names) == 0 {
		t.Fatal("empty manifest")
	}
	if _, err := parseManifest(manifestName, manifest); err != nil {
		t.Fatal(err)
	}
	needRunbooks(t)
	for _, n := range names {
		text, err := Config(n)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasSuffix(n, ".conf"):
			// Every quoted keepalived.conf opens with a section and closes it.
			if !strings.Contains(text, "{") || !strings.HasSuffix(strings.TrimSpace(text), "}") {
				t.Errorf("%s does not look like a whole keepalived.conf:\n%s", n, text)
			}
		case strings.HasSuffix(n, ".cfg"):
			// Every quoted haproxy.cfg has global settings and a proxy.
			if !hasSection(text, "global") || !hasSection(text, "listen", "backend") {
				t.Errorf("%s does not look like a whole haproxy.cfg:\n%s", n, text)
			}
		default:
			t.Errorf("%s: name ends in neither .conf nor .cfg", n)
		}
	}
	if got := len(NamesWithSuffix(".conf")) + len(NamesWithSuffix(".cfg")); got != len(names) {
		t.Fatalf("%d names by suffix, %d in all", got, len(names))
	}
	p, err := WriteFile(t.TempDir(), names[0])
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); len(b) == 0 || filepath.Base(p) != names[0] {
		t.Fatalf("wrote %s", p)
	}
}

// needRunbooks skips the test, saying why, unless the runbooks are here.
// (seedstest does this for other packages; it imports this one.)
func needRunbooks(t *testing.T) {
	t.Helper()
	switch dir, err := Dir(); {
	case errors.Is(err, ErrNoRunbooks):
		t.Skipf("%v: their configurations are not tested", err)
	case err != nil:
		t.Fatal(err)
	default:
		t.Logf("runbooks at %s: their configurations are tested", dir)
	}
}

// hasSection reports whether text has a line whose first word is one of
// keywords.
func hasSection(text string, keywords ...string) bool {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(strings.ReplaceAll(line, "\u00a0", " "))
		for _, k := range keywords {
			if len(f) > 0 && f[0] == k {
				return true
			}
		}
	}
	return false
}

// TestEveryChangeChangesSomething quotes each configuration again with
// one of its manifest changes left out and checks that the result differs,
// and that the quoted lines differ from the result only where a change
// says so: nothing is left to a rule that no longer applies.
func TestEveryChangeChangesSomething(t *testing.T) {
	es, err := parseManifest(manifestName, manifest)
	if err != nil {
		t.Fatal(err)
	}
	needRunbooks(t)
	changed := 0
	for _, e := range es {
		full, err := e.config()
		if err != nil {
			t.Fatal(err)
		}
		raw := e
		raw.nbsp, raw.addrs = false, nil
		quoted, err := raw.config()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(quoted, "\n") != strings.Count(full, "\n") {
			t.Errorf("%s: changes altered the number of lines", e.name)
		}
		if e.nbsp {
			changed++
			without := e
			without.nbsp = false
			if got, err := without.config(); err != nil || got == full {
				t.Errorf("%s: leaving out nbsp changes nothing (err %v)", e.name, err)
			}
			if strings.Contains(full, "\u00a0") {
				t.Errorf("%s: U+00A0 left after nbsp", e.name)
			}
		}
		for i, a := range e.addrs {
			changed++
			without := e
			without.addrs = append(append([]addrMap(nil), e.addrs[:i]...), e.addrs[i+1:]...)
			if got, err := without.config(); err != nil || got == full {
				t.Errorf("%s: leaving out addr=%s>%s changes nothing (err %v)", e.name, a.old, a.new, err)
			}
			if strings.Contains(full, a.old) {
				t.Errorf("%s: %s still appears", e.name, a.old)
			}
		}
		if !e.nbsp && len(e.addrs) == 0 && quoted != full {
			t.Errorf("%s: no changes listed, yet the text changed", e.name)
		}
	}
	if changed == 0 {
		t.Fatal("the manifest lists no changes, so this test checks nothing")
	}
}

func TestStaleChangeIsAnError(t *testing.T) {
	e := entry{name: "x.cfg", source: "m:1", nbsp: true}
	if _, err := e.apply("bind 10.0.0.1:80\n"); err == nil || !strings.Contains(err.Error(), "m:1: x.cfg: nbsp") {
		t.Errorf("nbsp without U+00A0: %v", err)
	}
	e = entry{name: "x.cfg", source: "m:2", addrs: []addrMap{
		{"10.0.0.1:80", "127.0.0.1:8080"},
		{"10.0.0.2:80", "127.0.0.1:8081"},
	}}
	_, err := e.apply("bind 10.0.0.1:80\nserver s 110.0.0.2:80\nserver t 10.0.0.2:8080\n")
	if err == nil || !strings.Contains(err.Error(), "m:2: x.cfg: addr=10.0.0.2:80>127.0.0.1:8081") ||
		strings.Contains(err.Error(), "10.0.0.1:80 does not appear") {
		t.Errorf("stale addr rule: %v", err)
	}
}

func TestReplaceAddrs(t *testing.T) {
	maps := []addrMap{
		{"10.0.0.1:80", "10.0.0.2:80"}, // a chain: one pass must not apply the next rule to this output
		{"10.0.0.2:80", "127.0.0.1:1"},
		{"node1:5672", "127.0.0.1:2"},
	}
	in := "a 10.0.0.1:80\nb 10.0.0.2:80 c\n110.0.0.1:80 10.0.0.1:800 10.0.0.1:80,x\nserver n rabbit-node1:5672 node1:5672\nend 10.0.0.1:80"
	want := "a 10.0.0.2:80\nb 127.0.0.1:1 c\n110.0.0.1:80 10.0.0.1:800 10.0.0.2:80,x\nserver n rabbit-node1:5672 127.0.0.1:2\nend 10.0.0.2:80"
	got, counts := replaceAddrs(in, maps)
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if counts[0] != 3 || counts[1] != 1 || counts[2] != 1 {
		t.Errorf("counts %v", counts)
	}
	if got, _ := replaceAddrs("ü 10.0.0.1:80\u00a0ü", maps); got != "ü 10.0.0.2:80\u00a0ü" {
		t.Errorf("UTF-8 around an address: %q", got)
	}
}

func TestManifestErrors(t *testing.T) {
	text := strings.Join([]string{
		"# comment",
		"",
		"a.cfg r.txt 1 2 nbsp addr=10.0.0.1:80>127.0.0.1:80",
		"b.cfg r.txt 3",
		"c.cfg r.txt 5 4",
		"d.cfg r.txt 1 2 addr=10.0.0.1>127.0.0.1:80",
		"e.cfg r.txt 1 2 addr=10.0.0.1:80>127.0.0.1:80 addr=10.0.0.1:80>127.0.0.1:81",
		"f.cfg r.txt 1 2 dedent",
		"a.cfg r.txt 1 2",
		"g.cfg r.txt 1 2 nbsp nbsp",
	}, "\n")
	es, err := parseManifest("m.txt", text)
	if len(es) != 1 || es[0].name != "a.cfg" || !es[0].nbsp || len(es[0].addrs) != 1 {
		t.Errorf("entries %+v", es)
	}
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"m.txt:4: want NAME", "m.txt:5: line range 5 4", "m.txt:6: \"addr=10.0.0.1>127.0.0.1:80\"",
		"m.txt:7: 10.0.0.1:80 is mapped twice", "m.txt:8: unknown or repeated change \"dedent\"",
		"m.txt:9: a.cfg is listed twice", "m.txt:10: unknown or repeated change \"nbsp\"",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
