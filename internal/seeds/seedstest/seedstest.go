// Package seedstest lets the tests of the runbooks' configurations run
// wherever the runbooks are, and say so in one line where they are not: a
// clone of the repository alone has no runbooks beside it.
package seedstest

import (
	"errors"
	"testing"

	"github.com/warren-mq/warren/internal/seeds"
)

// Found reports whether the runbooks are here, logging one line that says
// so either way. Runbooks named by WARREN_SEEDS that cannot be read fail
// the test.
func Found(t testing.TB) bool {
	t.Helper()
	dir, err := seeds.Dir()
	switch {
	case err == nil:
		t.Logf("runbooks at %s: their configurations are tested", dir)
		return true
	case errors.Is(err, seeds.ErrNoRunbooks):
		t.Logf("%v: their configurations are not tested", err)
		return false
	}
	t.Fatal(err)
	return false
}

// Need skips the test, saying why in one line, unless the runbooks are
// here.
func Need(t testing.TB) {
	t.Helper()
	dir, err := seeds.Dir()
	switch {
	case err == nil:
		t.Logf("runbooks at %s: their configurations are tested", dir)
	case errors.Is(err, seeds.ErrNoRunbooks):
		t.Skipf("%v: their configurations are not tested", err)
	default:
		t.Fatal(err)
	}
}
