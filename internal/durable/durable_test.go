package durable

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/warren-mq/warren/internal/crashfs"
)

// TestPowerLossKeepsWhatWasWritten: directories MkdirAll made, and a
// file WriteFile wrote in them, are there after a power cut; a second
// WriteFile replaces the first whole.
func TestPowerLossKeepsWhatWasWritten(t *testing.T) {
	fsys := crashfs.ForTest(t)
	dir := filepath.Join(fsys.Dir(), "a", "b", "c")
	if err := MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(dir, "state", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Cut(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "state")); err != nil || string(b) != "one" {
		t.Fatalf("after a power cut: %q, %v; want \"one\"", b, err)
	}
	if err := WriteFile(dir, "state", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Cut(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "state")); err != nil || string(b) != "two" {
		t.Fatalf("after a second power cut: %q, %v; want \"two\"", b, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
}

func TestMkdirAllRefusesAFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), nil, 0o644)
	if err := MkdirAll(filepath.Join(dir, "f"), 0o750); err == nil {
		t.Fatal("MkdirAll over a file succeeded")
	}
	if err := MkdirAll(filepath.Join(dir, "f", "g"), 0o750); err == nil {
		t.Fatal("MkdirAll under a file succeeded")
	}
}
