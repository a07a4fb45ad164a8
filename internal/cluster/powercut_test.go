package cluster

import (
	"path/filepath"
	"testing"

	"github.com/warren-mq/warren/internal/crashfs"
)

// TestCookieSurvivesPowerLoss: a cookie the node made for itself is the
// same after a power cut, or the node could not talk to its cluster.
func TestCookieSurvivesPowerLoss(t *testing.T) {
	fsys := crashfs.ForTest(t)
	path := filepath.Join(fsys.Dir(), "home", ".erlang.cookie")
	made, err := ReadCookie(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := fsys.Cut(); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCookie(path, false)
	if err != nil || got != made {
		t.Fatalf("after the power cut the cookie is %q (%v), was %q", got, err, made)
	}
}
