// Package seeds finds the configuration files quoted in the runbooks that
// warren's users follow today (HAProxy and keepalived setups in front of
// RabbitMQ), so that tests run them exactly as written without copying
// them into this repository. The runbooks live in the seeds folder of the
// shared directory beside the repository; manifest.txt names, for each
// configuration, the runbook and the lines it occupies there.
package seeds

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

//go:embed manifest.txt
var manifest string

// EnvDir names the environment variable that overrides where the runbooks
// are looked for.
const EnvDir = "WARREN_SEEDS"

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
				return "", fmt.Errorf("find runbooks: %s beside the repository: %w (set %s)", seeds, err, EnvDir)
			}
			return seeds, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("find runbooks: not inside the repository")
		}
	}
}

// Names lists the configurations the manifest knows, in its order.
func Names() []string {
	var names []string
	for _, e := range entries() {
		names = append(names, e.name)
	}
	return names
}

type entry struct {
	name, runbook string
	first, last   int
}

func entries() []entry {
	var es []entry
	for _, line := range strings.Split(manifest, "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || strings.HasPrefix(f[0], "#") {
			continue
		}
		first, err1 := strconv.Atoi(f[2])
		last, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		es = append(es, entry{name: f[0], runbook: f[1], first: first, last: last})
	}
	return es
}

// Config returns the configuration called name, as the runbook quotes it.
func Config(name string) (string, error) {
	dir, err := Dir()
	if err != nil {
		return "", err
	}
	for _, e := range entries() {
		if e.name != name {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.runbook))
		if err != nil {
			return "", fmt.Errorf("read runbook for %s: %w", name, err)
		}
		lines := strings.Split(string(b), "\n")
		if e.last > len(lines) || e.first < 1 || e.first > e.last {
			return "", fmt.Errorf("runbook %s has %d lines; %s is listed at %d-%d", e.runbook, len(lines), name, e.first, e.last)
		}
		return strings.Join(lines[e.first-1:e.last], "\n") + "\n", nil
	}
	return "", fmt.Errorf("no runbook configuration called %q", name)
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
