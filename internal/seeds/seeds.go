// Package seeds finds the configuration files quoted in the runbooks that
// warren's users follow today (HAProxy and keepalived setups in front of
// RabbitMQ), so that tests run them as written without copying them into
// this repository. The runbooks live in the seeds folder of the shared
// directory beside the repository; manifest.txt names, for each
// configuration, the runbook, the lines it occupies there and the few
// changes a test needs (addresses moved to loopback, no-break spaces made
// plain), so that every difference from the runbook is written down.
package seeds

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

//go:embed manifest.txt
var manifest string

// manifestName is how errors in the embedded manifest name it.
const manifestName = "internal/seeds/manifest.txt"

// EnvDir names the environment variable that overrides where the runbooks
// are looked for.
const EnvDir = "WARREN_SEEDS"

// ErrNoRunbooks means that the runbooks are neither named by WARREN_SEEDS
// nor beside the repository: a clone of the repository alone.
var ErrNoRunbooks = errors.New("runbooks not found")

// Dir returns the runbooks' directory: $WARREN_SEEDS, or shared/seeds
// beside the repository that contains the working directory.
func Dir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find runbooks: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			seeds := filepath.Join(filepath.Dir(d), "shared", "seeds")
			if _, err := os.Stat(seeds); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return "", fmt.Errorf("%w: no %s beside the repository, and %s is not set", ErrNoRunbooks, seeds, EnvDir)
				}
				return "", fmt.Errorf("find runbooks: %s beside the repository: %w (set %s)", seeds, err, EnvDir)
			}
			return seeds, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("find runbooks: not inside the repository")
		}
	}
}

// Names lists the configurations the manifest knows, in its order. Lines
// of the manifest that do not parse are left out here and reported by
// Config.
func Names() []string {
	es, _ := parseManifest(manifestName, manifest)
	var names []string
	for _, e := range es {
		names = append(names, e.name)
	}
	return names
}

// NamesWithSuffix lists, in the manifest's order, the configurations whose
// names end in suffix: ".conf" for the keepalived.conf files, ".cfg" for
// the haproxy.cfg files.
func NamesWithSuffix(suffix string) []string {
	var names []string
	for _, n := range Names() {
		if strings.HasSuffix(n, suffix) {
			names = append(names, n)
		}
	}
	return names
}

// entry is one manifest line: where a configuration is quoted and how the
// quoted lines are changed before use.
type entry struct {
	name, runbook string
	first, last   int
	nbsp          bool      // replace U+00A0 with a space
	addrs         []addrMap // applied together, so one rule never sees another's output
	source        string    // manifest file:line, for errors
}

// addrMap replaces the address old with new.
type addrMap struct {
	old, new string
}

// parseManifest reads manifest text: blank lines and lines starting with #
// are skipped; every other line is
//
//	NAME RUNBOOK FIRST LAST [nbsp] [addr=OLD>NEW ...]
//
// It returns the entries of the lines that parse and an error listing
// every line that does not, as file:line.
func parseManifest(file, text string) ([]entry, error) {
	var es []entry
	var errs []error
	seen := map[string]bool{}
	for i, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		src := fmt.Sprintf("%s:%d", file, i+1)
		e, err := parseEntry(src, f)
		if err == nil && seen[e.name] {
			err = fmt.Errorf("%s: %s is listed twice", src, e.name)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		seen[e.name] = true
		es = append(es, e)
	}
	return es, errors.Join(errs...)
}

func parseEntry(src string, f []string) (entry, error) {
	if len(f) < 4 {
		return entry{}, fmt.Errorf("%s: want NAME RUNBOOK FIRST LAST [nbsp] [addr=OLD>NEW ...], got %d fields", src, len(f))
	}
	e := entry{name: f[0], runbook: f[1], source: src}
	var err1, err2 error
	e.first, err1 = strconv.Atoi(f[2])
	e.last, err2 = strconv.Atoi(f[3])
	if err1 != nil || err2 != nil || e.first < 1 || e.first > e.last {
		return entry{}, fmt.Errorf("%s: line range %s %s is not FIRST <= LAST, both from 1", src, f[2], f[3])
	}
	olds := map[string]bool{}
	for _, opt := range f[4:] {
		switch {
		case opt == "nbsp" && !e.nbsp:
			e.nbsp = true
		case strings.HasPrefix(opt, "addr="):
			old, new, ok := strings.Cut(strings.TrimPrefix(opt, "addr="), ">")
			if !ok || !isHostPort(old) || !isHostPort(new) {
				return entry{}, fmt.Errorf("%s: %q: want addr=HOST:PORT>HOST:PORT", src, opt)
			}
			if olds[old] {
				return entry{}, fmt.Errorf("%s: %s is mapped twice", src, old)
			}
			olds[old] = true
			e.addrs = append(e.addrs, addrMap{old: old, new: new})
		default:
			return entry{}, fmt.Errorf("%s: unknown or repeated change %q (want nbsp or addr=OLD>NEW)", src, opt)
		}
	}
	return e, nil
}

func isHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n > 0 && n < 65536
}

// Config returns the configuration called name as the runbook quotes it,
// with the manifest's changes applied. A change that finds nothing to
// change is an error, so a rule cannot outlive the text it was written for.
func Config(name string) (string, error) {
	es, err := parseManifest(manifestName, manifest)
	if err != nil {
		return "", err
	}
	for _, e := range es {
		if e.name == name {
			return e.config()
		}
	}
	return "", fmt.Errorf("no runbook configuration called %q", name)
}

func (e entry) config() (string, error) {
	dir, err := Dir()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(dir, e.runbook))
	if err != nil {
		return "", fmt.Errorf("read runbook for %s: %w", e.name, err)
	}
	lines := strings.Split(string(b), "\n")
	if e.last > len(lines) {
		return "", fmt.Errorf("%s: runbook %s has %d lines; %s is listed at %d-%d", e.source, e.runbook, len(lines), e.name, e.first, e.last)
	}
	return e.apply(strings.Join(lines[e.first-1:e.last], "\n") + "\n")
}

// apply makes the entry's changes to text, the quoted lines.
func (e entry) apply(text string) (string, error) {
	if e.nbsp {
		if !strings.Contains(text, "\u00a0") {
			return "", fmt.Errorf("%s: %s: nbsp: the quoted lines have no U+00A0", e.source, e.name)
		}
		text = strings.ReplaceAll(text, "\u00a0", " ")
	}
	if len(e.addrs) == 0 {
		return text, nil
	}
	text, counts := replaceAddrs(text, e.addrs)
	var errs []error
	for i, a := range e.addrs {
		if counts[i] == 0 {
			errs = append(errs, fmt.Errorf("%s: %s: addr=%s>%s: %s does not appear in the quoted lines", e.source, e.name, a.old, a.new, a.old))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	return text, nil
}

// replaceAddrs replaces every address of maps that stands on its own in
// text (not as part of a longer name, address or port) by its new value,
// in one pass so that a replacement is never replaced again. It returns
// the new text and how many times each map was used.
func replaceAddrs(text string, maps []addrMap) (string, []int) {
	counts := make([]int, len(maps))
	var b strings.Builder
	i := 0
next:
	for i < len(text) {
		if i == 0 || !isAddrByte(text[i-1]) {
			for k, m := range maps {
				end := i + len(m.old)
				if strings.HasPrefix(text[i:], m.old) && (end == len(text) || !isAddrByte(text[end])) {
					b.WriteString(m.new)
					counts[k]++
					i = end
					continue next
				}
			}
		}
		b.WriteByte(text[i])
		i++
	}
	return b.String(), counts
}

// isAddrByte reports whether c can be part of a host name, an IP address
// or a port.
func isAddrByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
		c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']'
}

// WriteFile writes the configuration called name into dir under that name
// and returns its path, for programs that take a file.
func WriteFile(dir, name string) (string, error) {
	text, err := Config(name)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	return p, nil
}
