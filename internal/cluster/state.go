package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/warren-mq/warren/internal/durable"
)

// State is what a node remembers of its cluster outside the definitions
// log, in its data directory: where to find the other members, and its own
// type. A RAM node needs it to find the cluster again on every start, and
// reset needs it to tell the others that it leaves while its app is
// stopped.
type State struct {
	// Members are the other members' names and cluster addresses, as last
	// seen.
	Members []Peer `json:"members,omitempty"`
	// RAM is true for a RAM node.
	RAM bool `json:"ram,omitempty"`
}

// Peer is another member of the cluster.
type Peer struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
}

// Addrs returns the members' cluster addresses.
func (s State) Addrs() []string {
	out := make([]string, 0, len(s.Members))
	for _, p := range s.Members {
		out = append(out, p.Addr)
	}
	return out
}

const stateFile = "cluster.json"

// LoadState reads the state in a data directory; a directory without one
// is a node that has never been clustered.
func LoadState(dataDir string) (State, error) {
	var st State
	b, err := os.ReadFile(filepath.Join(dataDir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read cluster state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("read cluster state %s: %w", filepath.Join(dataDir, stateFile), err)
	}
	return st, nil
}

// SaveState writes the state so that a crash leaves the old one or the
// new one.
func SaveState(dataDir string, st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode cluster state: %w", err)
	}
	if err := durable.WriteFile(dataDir, stateFile, append(b, '\n')); err != nil {
		return fmt.Errorf("write cluster state: %w", err)
	}
	return nil
}
