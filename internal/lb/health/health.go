// Package health holds HAProxy's server health state machine: rise and fall
// counting over one health counter, and which check interval applies in
// each state. It does no I/O; the checker that owns a State feeds it check
// results and acts on the transitions it reports.
package health

import (
	"fmt"
	"time"
)

// State tracks one server's health. HAProxy keeps a single counter from 0 to
// rise+fall-1: the server is UP while the counter is at least rise. A failed
// check while UP lowers it by one until it would drop below rise, which
// takes the server DOWN and resets the counter to 0; successes while DOWN
// raise it, and reaching rise brings the server UP at full health.
//
// A new State starts UP with the counter at rise, so one failed check takes
// it DOWN, as HAProxy does at startup. State is not safe for concurrent use.
type State struct {
	Rise, Fall int
	// Health is the counter described above.
	Health int
}

// New returns the startup state for the given rise and fall.
func New(rise, fall int) State {
	return State{Rise: rise, Fall: fall, Health: rise}
}

// Up reports whether the server counts as UP.
func (s *State) Up() bool { return s.Health >= s.Rise }

// Transition is what a check result changed.
type Transition int

// Transitions.
const (
	Unchanged Transition = iota
	WentUp
	WentDown
)

// Success records a passed check.
func (s *State) Success() Transition {
	wasUp := s.Up()
	if s.Health < s.Rise+s.Fall-1 {
		s.Health++
		if s.Health >= s.Rise {
			s.Health = s.Rise + s.Fall - 1
		}
	}
	if !wasUp && s.Up() {
		return WentUp
	}
	return Unchanged
}

// Failure records a failed check.
func (s *State) Failure() Transition {
	if s.Health > s.Rise {
		s.Health--
		return Unchanged
	}
	wasUp := s.Up()
	s.Health = 0
	if wasUp {
		return WentDown
	}
	return Unchanged
}

// SetUp forces full health (UP) or zero health (DOWN), as the runtime API's
// "set server ... health" does and as a reload restores.
func (s *State) SetUp(up bool) {
	if up {
		s.Health = s.Rise + s.Fall - 1
	} else {
		s.Health = 0
	}
}

// Full reports whether the counter sits at one of its ends (UP with full
// health, or DOWN with none).
func (s *State) Full() bool { return s.Health == 0 || s.Health == s.Rise+s.Fall-1 }

// Interval returns the delay before the next check: inter when fully UP,
// downinter when fully DOWN, fastinter while the state is changing.
func (s *State) Interval(inter, fastInter, downInter time.Duration) time.Duration {
	switch {
	case s.Health == s.Rise+s.Fall-1:
		return inter
	case s.Health == 0:
		return downInter
	default:
		return fastInter
	}
}

// Status renders the state the way HAProxy's stats page does: "UP",
// "DOWN", "UP 2/3" (going down: two more failures allowed of three),
// "DOWN 1/2" (going up: one success of the two needed).
func (s *State) Status() string {
	switch {
	case s.Health == s.Rise+s.Fall-1:
		return "UP"
	case s.Health == 0:
		return "DOWN"
	case s.Up():
		return fmt.Sprintf("UP %d/%d", s.Health-s.Rise+1, s.Fall)
	default:
		return fmt.Sprintf("DOWN %d/%d", s.Health, s.Rise)
	}
}
