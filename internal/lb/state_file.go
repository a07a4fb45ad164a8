package lb

import (
	"bufio"
	"strconv"
	"strings"
)

// ApplyServersState restores server health, administrative state and
// weight from "show servers state" output (for example taken from the
// process being replaced with -sf). Servers are matched by backend and
// server name; unknown ones are skipped. It returns how many were restored.
func (lb *LB) ApplyServersState(text string) int {
	st := lb.current()
	if st == nil {
		return 0
	}
	n := 0
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 13 || strings.HasPrefix(f[0], "#") {
			continue
		}
		b := st.backends[f[1]]
		if b == nil {
			continue
		}
		s := b.server(f[3])
		if s == nil {
			continue
		}
		op, _ := strconv.Atoi(f[5])
		admin, _ := strconv.Atoi(f[6])
		weight, werr := strconv.Atoi(f[7])
		healthVal, herr := strconv.Atoi(f[12])
		b.mu.Lock()
		if herr == nil && s.config().Check {
			s.health.Health = min(max(healthVal, 0), s.health.Rise+s.health.Fall-1)
			if op == 0 {
				s.health.Health = 0
			}
		}
		switch {
		case admin&1 != 0:
			s.admin = AdminMaint
		case admin&8 != 0:
			s.admin = AdminDrain
		default:
			s.admin = AdminReady
		}
		if werr == nil && weight >= 0 && weight <= 256 {
			s.weight = weight
		}
		b.syncServerLocked(s)
		b.mu.Unlock()
		n++
	}
	return n
}
