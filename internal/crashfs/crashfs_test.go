package crashfs

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func write(t *testing.T, path, data string, sync bool) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := fh.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
}

func syncDir(t *testing.T, path string) {
	t.Helper()
	d, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

func cut(t *testing.T, f *FS) {
	t.Helper()
	if err := f.Cut(); err != nil {
		t.Fatal(err)
	}
}

// tree lists what dir holds after a cut: each file with its contents.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if fi.IsDir() {
			out = append(out, rel+"/")
			return nil
		}
		b, err := os.ReadFile(p)
		out = append(out, rel+"="+string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestCutKeepsOnlyWhatWasSynced(t *testing.T) {
	f := ForTest(t)
	d := f.Dir()
	cases := []struct {
		name string
		do   func()
		want string
	}{
		{"a file synced but not its directory is gone", func() {
			write(t, filepath.Join(d, "a"), "data", true)
		}, ""},
		{"a new name synced keeps no unsynced data", func() {
			write(t, filepath.Join(d, "a"), "data", false)
			syncDir(t, d)
		}, "a="},
		{"synced data stays, later writes go", func() {
			write(t, filepath.Join(d, "a"), "one", true)
			write(t, filepath.Join(d, "a"), "two", false)
		}, "a=one"},
		{"a deletion not synced is undone", func() {
			os.Remove(filepath.Join(d, "a"))
		}, "a=one"},
		{"a rename not synced is undone", func() {
			os.Rename(filepath.Join(d, "a"), filepath.Join(d, "b"))
		}, "a=one"},
		{"a synced rename stays", func() {
			write(t, filepath.Join(d, "tmp"), "new", true)
			os.Rename(filepath.Join(d, "tmp"), filepath.Join(d, "a"))
			syncDir(t, d)
		}, "a=new"},
		{"a truncation not synced is undone", func() {
			os.Truncate(filepath.Join(d, "a"), 1)
		}, "a=new"},
		{"a synced truncation stays", func() {
			fh, _ := os.OpenFile(filepath.Join(d, "a"), os.O_WRONLY|os.O_TRUNC, 0)
			fh.WriteString("xy")
			fh.Sync()
			fh.Close()
		}, "a=xy"},
		{"a new directory needs its parent synced", func() {
			os.Mkdir(filepath.Join(d, "sub"), 0o755)
			write(t, filepath.Join(d, "sub", "c"), "c", true)
			syncDir(t, filepath.Join(d, "sub"))
		}, "a=xy"},
		{"and its own entries their directory synced", func() {
			os.Mkdir(filepath.Join(d, "sub"), 0o755)
			write(t, filepath.Join(d, "sub", "c"), "c", true)
			syncDir(t, d)
		}, "a=xy sub/"},
		{"a deletion synced stays", func() {
			os.Remove(filepath.Join(d, "a"))
			syncDir(t, d)
		}, "sub/"},
	}
	for _, c := range cases {
		c.do()
		cut(t, f)
		if got := tree(t, d); got != c.want {
			t.Fatalf("%s: after the cut the directory holds %q, want %q", c.name, got, c.want)
		}
	}
	st := f.Stats()
	if st.FileSyncs == 0 || st.DirSyncs == 0 || st.LostWrites == 0 || st.LostEntries == 0 {
		t.Errorf("stats %+v count nothing of some kind", st)
	}
}

// TestMountAdoptsWhatIsThere: files present before the mount are
// durable, and a cut with nothing done changes nothing.
func TestMountAdoptsWhatIsThere(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "store", "live")
	if err := os.MkdirAll(filepath.Join(live, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(live, "sub", "f"), []byte("kept"), 0o644)
	f, err := Mount(filepath.Join(dir, "store"), filepath.Join(dir, "mnt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cut(t, f)
	if got, want := tree(t, f.Dir()), "sub/ sub/f=kept"; got != want {
		t.Fatalf("after a cut the directory holds %q, want %q", got, want)
	}
}

// TestFailedSyncForgetsTheWrites: after a failed fsync a later one
// succeeds, and a cut loses what the failed one could not write, as on
// Linux, where the failure marks the pages clean.
func TestFailedSyncForgetsTheWrites(t *testing.T) {
	f := ForTest(t)
	p := filepath.Join(f.Dir(), "a")
	write(t, p, "one", true)
	syncDir(t, f.Dir())
	f.FailSyncs(1)
	fh, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	fh.WriteString("two")
	if err := fh.Sync(); err == nil {
		t.Fatal("the fsync asked to fail succeeded")
	}
	if err := fh.Sync(); err != nil {
		t.Fatalf("the fsync after the failed one: %v", err)
	}
	fh.WriteString("three")
	if err := fh.Sync(); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	cut(t, f)
	if got, want := tree(t, f.Dir()), "a=one\x00\x00\x00three"; got != want {
		t.Fatalf("after the cut the directory holds %q, want %q", got, want)
	}
}
