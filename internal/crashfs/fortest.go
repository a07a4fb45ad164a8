package crashfs

import (
	"os"
	"path/filepath"
	"testing"
)

// ForTest mounts a crash file system in a temporary directory of tb's,
// unmounted when tb ends. It fails tb, saying why, where FUSE cannot be
// mounted (it needs root and /dev/fuse). The test process serves the
// file system, so it must not map a file of it into memory (bbolt
// does): a page fault there can stop a thread the garbage collector
// waits for while the server waits for the collector. Run such code in
// another process.
func ForTest(tb testing.TB) *FS {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatal("crashfs mounts through FUSE and needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		tb.Fatalf("crashfs needs /dev/fuse: %v", err)
	}
	dir := tb.TempDir()
	f, err := Mount(filepath.Join(dir, "store"), filepath.Join(dir, "mnt"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := f.Close(); err != nil {
			tb.Error(err)
		}
	})
	return f
}
