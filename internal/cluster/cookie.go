// Package cluster is what nodes and tools share on a node's cluster port:
// the cookie, the challenge-response handshake that proves both ends know
// it without sending it, and the listener that hands authenticated
// connections to the service they asked for.
package cluster

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/warren-mq/warren/internal/durable"
)

// DefaultCookieFile is where the cookie lives unless told otherwise:
// $HOME/.warren.cookie, as Erlang keeps $HOME/.erlang.cookie.
func DefaultCookieFile() string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = "/"
	}
	return filepath.Join(home, ".warren.cookie")
}

// cookieLen is the length of a new cookie: 20 upper-case letters, as
// Erlang makes them.
const cookieLen = 20

// ReadCookie returns the cookie in path. With create, a missing file is
// made with a new random cookie and mode 0400. A cookie that group or
// others may read is refused: anyone who reads it controls the node.
func ReadCookie(path string, create bool) (string, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return "", fmt.Errorf("cookie file %s does not exist: start the node first, or point --cookie-file at the node's cookie", path)
		}
		return newCookie(path)
	}
	if err != nil {
		return "", fmt.Errorf("cookie file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("cookie file %s must be accessible by its owner only (its mode is %04o): run chmod 400 %s", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read cookie file: %w", err)
	}
	c := strings.TrimSpace(string(b))
	if c == "" {
		return "", fmt.Errorf("cookie file %s is empty", path)
	}
	return c, nil
}

func newCookie(path string) (string, error) {
	var raw [cookieLen]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("make cookie: %w", err)
	}
	for i := range raw {
		raw[i] = 'A' + raw[i]%26
	}
	if err := durable.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("create cookie file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process made it meanwhile: use theirs.
			return ReadCookie(path, false)
		}
		return "", fmt.Errorf("create cookie file: %w", err)
	}
	if _, err := f.Write(raw[:]); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("write cookie file: %w", err)
	}
	// Synced, name and all: a node that came back from a power loss
	// with a new cookie could not talk to its cluster.
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("write cookie file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("write cookie file: %w", err)
	}
	if err := durable.SyncDir(filepath.Dir(path)); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("write cookie file: %w", err)
	}
	return string(raw[:]), nil
}
