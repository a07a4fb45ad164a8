package health

import (
	"testing"
	"time"
)

func TestStartsUpAndOneFailureTakesDown(t *testing.T) {
	s := New(2, 3)
	if !s.Up() {
		t.Fatal("new state should be UP")
	}
	if tr := s.Failure(); tr != WentDown || s.Status() != "DOWN" {
		t.Fatalf("first failure: %v %s", tr, s.Status())
	}
}

func TestRiseAndFall(t *testing.T) {
	s := New(2, 3)
	s.SetUp(false)
	steps := []struct {
		ok     bool
		tr     Transition
		status string
	}{
		{true, Unchanged, "DOWN 1/2"},
		{true, WentUp, "UP"},
		{false, Unchanged, "UP 2/3"},
		{false, Unchanged, "UP 1/3"},
		{true, Unchanged, "UP"}, // one success restores full health
		{false, Unchanged, "UP 2/3"},
		{false, Unchanged, "UP 1/3"},
		{false, WentDown, "DOWN"},
		{false, Unchanged, "DOWN"},
		{true, Unchanged, "DOWN 1/2"},
		{false, Unchanged, "DOWN"},
	}
	for i, st := range steps {
		var tr Transition
		if st.ok {
			tr = s.Success()
		} else {
			tr = s.Failure()
		}
		if tr != st.tr || s.Status() != st.status {
			t.Fatalf("step %d: got %v %q, want %v %q", i, tr, s.Status(), st.tr, st.status)
		}
	}
}

func TestInterval(t *testing.T) {
	s := New(2, 3)
	s.SetUp(true)
	in, fast, down := time.Second, 100*time.Millisecond, 5*time.Second
	if s.Interval(in, fast, down) != in {
		t.Fatal("full health should use inter")
	}
	s.Failure()
	if s.Interval(in, fast, down) != fast {
		t.Fatal("going down should use fastinter")
	}
	s.SetUp(false)
	if s.Interval(in, fast, down) != down {
		t.Fatal("down should use downinter")
	}
}
