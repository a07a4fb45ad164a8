package chaos

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Result is what the checker found in a history.
type Result struct {
	Sent, Acked, Nacked, Unanswered int
	Delivered                       int // distinct messages delivered
	// Lost are messages confirmed and never delivered; Unexpected,
	// delivered and never published. Duplicates counts deliveries
	// beyond the first of each message.
	Lost, Unexpected []string
	Duplicates       int
	// LostAt is when each lost message was confirmed, since the
	// history began, in order.
	LostAt []time.Duration
}

// Check compares what was confirmed with what was delivered.
func Check(h *History) Result {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := Result{Sent: len(h.sent), Acked: len(h.acked), Nacked: len(h.nacked), Delivered: len(h.delivered)}
	for b := range h.sent {
		if !h.acked[b] && !h.nacked[b] {
			r.Unanswered++
		}
	}
	for b := range h.acked {
		if h.delivered[b] == 0 {
			r.Lost = append(r.Lost, fmt.Sprintf("%s (acked at %.1fs)", b, h.ackedAt[b].Seconds()))
			r.LostAt = append(r.LostAt, h.ackedAt[b])
		}
	}
	for b, n := range h.delivered {
		if !h.sent[b] {
			r.Unexpected = append(r.Unexpected, b)
		}
		r.Duplicates += n - 1
	}
	sort.Strings(r.Lost)
	slices.Sort(r.LostAt)
	sort.Strings(r.Unexpected)
	return r
}

// OK reports whether nothing confirmed was lost and nothing unpublished
// appeared.
func (r Result) OK() bool { return len(r.Lost) == 0 && len(r.Unexpected) == 0 }

// String is the result as the report prints it.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "published %d: confirmed %d, nacked %d, unanswered %d\n", r.Sent, r.Acked, r.Nacked, r.Unanswered)
	fmt.Fprintf(&b, "delivered %d distinct messages, %d duplicate deliveries\n", r.Delivered, r.Duplicates)
	fmt.Fprintf(&b, "lost (confirmed, never delivered): %d\n", len(r.Lost))
	fmt.Fprintf(&b, "unexpected (delivered, never published): %d\n", len(r.Unexpected))
	for _, l := range []struct {
		name string
		v    []string
	}{{"lost", r.Lost}, {"unexpected", r.Unexpected}} {
		if len(l.v) > 0 {
			fmt.Fprintf(&b, "  %s, first ones: %s\n", l.name, strings.Join(l.v[:min(len(l.v), 10)], " "))
		}
	}
	return b.String()
}
