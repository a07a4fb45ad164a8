package chaos

import (
	"slices"
	"strings"
	"testing"
)

func TestCheckerFindsLostUnexpectedAndDuplicated(t *testing.T) {
	h := NewHistory()
	for _, b := range []string{"a", "b", "c", "d", "e"} {
		h.send(b)
	}
	h.answer("a", true)
	h.answer("b", true)
	h.answer("c", true)
	h.answer("d", false)
	// e is never answered.
	h.deliver("a")
	h.deliver("a")
	h.deliver("c")
	h.deliver("d") // nacked, yet delivered: allowed
	h.deliver("e") // unanswered, delivered: allowed
	h.deliver("x") // never published
	r := Check(h)
	if r.Sent != 5 || r.Acked != 3 || r.Nacked != 1 || r.Unanswered != 1 || r.Delivered != 5 {
		t.Errorf("counts: %+v", r)
	}
	if len(r.Lost) != 1 || !strings.HasPrefix(r.Lost[0], "b (acked at ") || !slices.Equal(r.Unexpected, []string{"x"}) || r.Duplicates != 1 {
		t.Errorf("lost %v, unexpected %v, duplicates %d", r.Lost, r.Unexpected, r.Duplicates)
	}
	if r.OK() {
		t.Error("a history with a lost message checks out")
	}
	if s := r.String(); !strings.Contains(s, "lost (confirmed, never delivered): 1") || !strings.Contains(s, "unexpected (delivered, never published): 1") {
		t.Errorf("report:\n%s", s)
	}

	clean := NewHistory()
	clean.send("a")
	clean.answer("a", true)
	clean.deliver("a")
	if r := Check(clean); !r.OK() || r.Duplicates != 0 {
		t.Errorf("a clean history: %+v", r)
	}
}
