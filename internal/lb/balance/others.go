package balance

// mapGroup serves static-rr and source: a table of total-weight slots
// filled by spreading each server in proportion to its weight. static-rr
// walks the table in order; source indexes it by the address hash.
type mapGroup struct {
	weight []int // user weights
	usable []bool
	table  []int
	pos    int
	hash   bool
	dirty  bool
}

func newMapGroup(n int, hash bool) *mapGroup {
	return &mapGroup{weight: make([]int, n), usable: make([]bool, n), hash: hash}
}

func (g *mapGroup) setServer(i, eweight int, usable bool) {
	g.weight[i], g.usable[i], g.dirty = eweight/weightScale, usable && eweight > 0, true
}

// rebuild fills the table as HAProxy does: weights are divided by their
// greatest common divisor and scaled; at each slot every usable server
// earns its weight, the first server with the highest (score+total)/total
// takes the slot and pays the total. Equal weights therefore keep the
// declaration order.
func (g *mapGroup) rebuild() {
	g.dirty = false
	div := 0
	for _, w := range g.weight {
		if w > 0 {
			div = gcd(div, w)
		}
	}
	if div == 0 {
		div = 1
	}
	total := 0
	eweight := make([]int, len(g.weight))
	for i, w := range g.weight {
		eweight[i] = (w*weightScale + div - 1) / div
		if g.usable[i] {
			total += eweight[i]
		}
	}
	g.table = g.table[:0]
	score := make([]int, len(g.weight))
	for slot := 0; slot < total; slot++ {
		best, bestV := -1, 0
		for i := range eweight {
			if !g.usable[i] {
				continue
			}
			score[i] += eweight[i]
			if v := (score[i] + total) / total; best < 0 || v > bestV {
				best, bestV = i, v
			}
		}
		g.table = append(g.table, best)
		score[best] -= total
	}
	if g.pos >= len(g.table) {
		g.pos = 0
	}
}

func (g *mapGroup) usableCount() int {
	n := 0
	for _, u := range g.usable {
		if u {
			n++
		}
	}
	return n
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (g *mapGroup) pick(load Load, avoid int, key uint32) int {
	if g.dirty {
		g.rebuild()
	}
	n := len(g.table)
	if n == 0 {
		return -1
	}
	if g.hash {
		if g.usableCount() == 1 {
			key = 0 // HAProxy does not hash when one server is left
		}
		return g.table[key%uint32(n)]
	}
	avoided := -1
	for tries := 0; tries < n; tries++ {
		i := g.table[g.pos]
		g.pos = (g.pos + 1) % n
		if load != nil && load.Full(i) {
			continue
		}
		if i == avoid && avoided < 0 {
			avoided = i
			continue
		}
		return i
	}
	return avoided
}

// leastConnGroup picks the usable server with the fewest connections
// (served and queued) per unit of weight; among equals, the one picked
// least recently. Servers that do not accept more are skipped.
type leastConnGroup struct {
	eweight []int
	usable  []bool
	last    []uint64
	clock   uint64
}

func newLeastConnGroup(n int) *leastConnGroup {
	return &leastConnGroup{eweight: make([]int, n), usable: make([]bool, n), last: make([]uint64, n)}
}

func (g *leastConnGroup) setServer(i, eweight int, usable bool) {
	g.eweight[i], g.usable[i] = eweight, usable && eweight > 0
}

func (g *leastConnGroup) pick(load Load, avoid int, _ uint32) int {
	best, bestKey := -1, 0
	avoided := -1
	for i, ok := range g.usable {
		if !ok || (load != nil && !load.Accepts(i)) {
			continue
		}
		if i == avoid {
			avoided = i
			continue
		}
		conns := 0
		if load != nil {
			conns = load.Conns(i)
		}
		key := (conns + 1) * eweightMax / g.eweight[i]
		if best < 0 || key < bestKey || key == bestKey && g.last[i] < g.last[best] {
			best, bestKey = i, key
		}
	}
	if best < 0 {
		best = avoided
	}
	if best >= 0 {
		g.clock++
		g.last[best] = g.clock
	}
	return best
}

// firstGroup picks the first usable server, in declaration order, that has
// not reached its maxconn.
type firstGroup struct {
	usable []bool
}

func newFirstGroup(n int) *firstGroup { return &firstGroup{usable: make([]bool, n)} }

func (g *firstGroup) setServer(i, eweight int, usable bool) {
	g.usable[i] = usable && eweight > 0
}

func (g *firstGroup) pick(load Load, avoid int, _ uint32) int {
	avoided := -1
	for i, ok := range g.usable {
		if !ok || (load != nil && load.Full(i)) {
			continue
		}
		if i == avoid {
			avoided = i
			continue
		}
		return i
	}
	return avoided
}
