package vrrp

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// WriteStatus writes the status dump, keepalived's /tmp/keepalived.data
// equivalent: one block per instance with its state, priorities, master and
// counters, as "key=value" lines that scripts can grep.
func (d *Daemon) WriteStatus(w io.Writer) error {
	insts, links := d.Status()
	pr := &errWriter{w: w}
	pr.printf("warren-vrrp status pid=%d time=%s uptime=%s\n", os.Getpid(),
		time.Now().UTC().Format(time.RFC3339), time.Since(d.started).Round(time.Second))
	for _, s := range insts {
		master := "none"
		if s.Master.IsValid() {
			master = s.Master.String()
		}
		pr.printf("instance %s\n", s.Name)
		pr.printf("  state=%s interface=%s vrid=%d version=%d source=%s\n", s.State, s.Interface, s.VRID, s.Version, s.Src)
		pr.printf("  priority=%d effective_priority=%d fault=%t advert_int=%s\n", s.BasePriority, s.Priority, s.Fault, s.AdvertInt)
		pr.printf("  master=%s master_priority=%d\n", master, s.MasterPriority)
		if !s.Since.IsZero() {
			pr.printf("  last_transition=%s\n", s.Since.UTC().Format(time.RFC3339Nano))
		}
		pr.printf("  adverts_sent=%d adverts_received=%d transitions=%d send_errors=%d queue_overflow=%d\n",
			s.AdvertsSent, s.AdvertsReceived, s.Transitions, s.SendErrors, s.QueueOverflow)
		pr.printf("  unknown_peer=%d other_master=%d peers_unheard=%d\n", s.UnknownPeer, s.OtherMaster, s.PeersUnheard)
		pr.printf("  bad_packets=%d%s\n", sum(s.Bad), reasons(s.Bad))
	}
	for _, name := range slices.Sorted(maps.Keys(links)) {
		pr.printf("interface %s\n  bad_packets=%d%s\n", name, sum(links[name]), reasons(links[name]))
	}
	return pr.err
}

// WriteStatusFile writes the dump to path atomically (a temporary file then
// a rename), so a reader never sees half a dump. The dump is a report, not
// state: it is not synced, and after a power cut it may be missing or old.
func (d *Daemon) WriteStatusFile(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".warren-vrrp-status-*")
	if err != nil {
		return fmt.Errorf("vrrp: status dump: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := d.WriteStatus(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("vrrp: status dump: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("vrrp: status dump: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("vrrp: status dump: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("vrrp: status dump: %w", err)
	}
	return nil
}

func sum(m map[DropReason]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

func reasons(m map[DropReason]uint64) string {
	var s string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		s += fmt.Sprintf(" %s=%d", k, m[k])
	}
	return s
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
