// Package durable writes small files so that they survive a crash or a
// power loss whole: the node's reserved segment numbers, its cluster
// state.
package durable

import (
	"os"
	"path/filepath"
)

// WriteFile replaces dir/name with data so that a crash leaves
// either the old file or the new one, and the new one once it returns:
// a temporary file, synced, renamed over the old, and the directory
// synced.
func WriteFile(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
