package seeds

import (
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
	for _, n := range names {
		text, err := Config(n)
		if err != nil {
			t.Fatal(err)
		}
		// Every quoted keepalived.conf opens with a section and closes it.
		if !strings.Contains(text, "{") || !strings.HasSuffix(strings.TrimSpace(text), "}") {
			t.Errorf("%s does not look like a whole configuration:\n%s", n, text)
		}
	}
	p, err := WriteFile(t.TempDir(), names[0])
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); len(b) == 0 || filepath.Base(p) != names[0] {
		t.Fatalf("wrote %s", p)
	}
}
