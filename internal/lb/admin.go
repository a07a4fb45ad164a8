package lb

import (
	"fmt"
	"strconv"
	"strings"
)

// findServer resolves "backend/server".
func (lb *LB) findServer(spec string) (*Backend, *Server, error) {
	bname, sname, ok := strings.Cut(spec, "/")
	if !ok {
		return nil, nil, apiError("Require 'backend/server'.")
	}
	st := lb.current()
	if st == nil {
		return nil, nil, apiError("No such backend.")
	}
	b := st.backends[bname]
	if b == nil {
		return nil, nil, apiError("No such backend.")
	}
	s := b.server(sname)
	if s == nil {
		return nil, nil, apiError("No such server.")
	}
	return b, s, nil
}

// SetAdminState puts "backend/server" in ready, drain or maint state.
func (lb *LB) SetAdminState(spec string, state AdminState) error {
	b, s, err := lb.findServer(spec)
	if err != nil {
		return err
	}
	if b = b.lockCurrent(); b == nil {
		return apiError("No such backend.")
	}
	defer b.mu.Unlock()
	if b.server(s.Name) != s {
		return apiError("No such server.") // removed by a reload meanwhile
	}
	if s.admin == state {
		return nil
	}
	prev := s.admin
	s.admin = state
	b.syncServerLocked(s)
	// As in HAProxy, MAINT and DRAIN send the server's own queue back to
	// the balancer with "option redispatch"; READY lets it take queued
	// connections.
	requeued := 0
	if state == AdminReady {
		b.serveQueuesLocked(s)
	} else {
		requeued = b.redistributeLocked(s)
	}
	act, bck := b.countsLocked()
	switch {
	case state == AdminMaint:
		lb.event(b.cfg, sevAlert, fmt.Sprintf("Server %s/%s is going DOWN for maintenance. %d active and %d backup servers left. %d sessions active, %d requeued, %d remaining in queue.",
			b.Name, s.Name, act, bck, s.stats.cur.Load(), requeued, s.queue.len()))
	case prev == AdminMaint:
		lb.event(b.cfg, sevNotice, fmt.Sprintf("Server %s/%s is %s (leaving forced maintenance).", b.Name, s.Name, map[bool]string{true: "UP", false: "DOWN"}[s.health.Up()]))
	case state == AdminDrain:
		lb.event(b.cfg, sevNotice, fmt.Sprintf("Server %s/%s enters drain state.", b.Name, s.Name))
	default:
		lb.event(b.cfg, sevNotice, fmt.Sprintf("Server %s/%s is UP (leaving forced drain).", b.Name, s.Name))
	}
	return nil
}

// SetWeight sets the runtime weight of "backend/server": "N" or "N%" of the
// configured weight.
func (lb *LB) SetWeight(spec, value string) error {
	b, s, err := lb.findServer(spec)
	if err != nil {
		return err
	}
	pct := strings.HasSuffix(value, "%")
	n, err := strconv.Atoi(strings.TrimSuffix(value, "%"))
	if err != nil || n < 0 {
		return apiError(fmt.Sprintf("Invalid weight '%s'.", value))
	}
	if pct {
		n = s.config().WeightOrDefault() * n / 100
	}
	if n > 256 {
		return apiError("Absolute weight can only be between 0 and 256 inclusive.")
	}
	if b = b.lockCurrent(); b == nil {
		return apiError("No such backend.")
	}
	defer b.mu.Unlock()
	if b.server(s.Name) != s {
		return apiError("No such server.") // removed by a reload meanwhile
	}
	s.weight = n
	b.syncServerLocked(s)
	b.serveQueuesLocked(s)
	return nil
}

// apiError is a runtime API error; its text is sent as-is on the socket,
// in HAProxy's wording.
type apiError string

func (e apiError) Error() string { return string(e) }
