package balance

// fwrr is HAProxy's weighted round robin: each server has a next position
// npos on a virtual clock that advances by one per pick; a server of
// effective weight w comes back every total/w ticks. Servers that never ran
// wait in the init list (heaviest first) and join when the clock reaches a
// hole. The resulting order is interleaved but not smoothed: weights 3:1
// give s1 s1 s1 s2.
type fwrr struct {
	srv []fwrrServer
	// currPos is the clock; currWeight the total weight of the current
	// window; nextWeight the total weight of usable servers now.
	currPos, currWeight, nextWeight int
	// curr is ordered by key; init and next by weight, heaviest first.
	// Ties keep insertion order, as HAProxy's trees do.
	curr, init, next []int
	seq              int
}

type fwrrServer struct {
	eweight  int
	usable   bool
	npos, rw int
	// lpos is the position of the server's last pick.
	lpos int
	key  int
	seq  int // insertion order, breaks ties
}

const (
	uweightRange = 256
	eweightMax   = uweightRange * weightScale
)

func newFWRR(n int) *fwrr {
	return &fwrr{srv: make([]fwrrServer, n)}
}

func (g *fwrr) remove(i int) {
	for _, t := range []*[]int{&g.curr, &g.init, &g.next} {
		for k, v := range *t {
			if v == i {
				*t = append((*t)[:k], (*t)[k+1:]...)
				break
			}
		}
	}
}

func (g *fwrr) where(i int) *[]int {
	for _, t := range []*[]int{&g.curr, &g.init, &g.next} {
		for _, v := range *t {
			if v == i {
				return t
			}
		}
	}
	return nil
}

func (g *fwrr) insert(t *[]int, i int, key int) {
	g.seq++
	s := &g.srv[i]
	s.key, s.seq = key, g.seq
	// Keep t ordered by key; a new entry goes after equal keys, so ties
	// keep insertion order as in HAProxy's trees.
	pos := len(*t)
	for pos > 0 && g.srv[(*t)[pos-1]].key > key {
		pos--
	}
	*t = append(*t, 0)
	copy((*t)[pos+1:], (*t)[pos:])
	(*t)[pos] = i
}

func (g *fwrr) queueByWeight(t *[]int, i int) {
	g.insert(t, i, eweightMax-g.srv[i].eweight)
}

// queue places a server that just ran into curr, or into next when its
// position falls outside the window.
func (g *fwrr) queue(i int) {
	s := &g.srv[i]
	if !s.usable || s.eweight == 0 {
		g.remove(i)
		return
	}
	if s.npos >= 2*g.currWeight || s.npos >= g.currWeight+g.nextWeight {
		s.npos -= g.currWeight
		g.queueByWeight(&g.next, i)
		return
	}
	g.insert(&g.curr, i, uweightRange*s.npos+(eweightMax+s.rw-s.eweight)/weightScale)
}

func (g *fwrr) setServer(i int, eweight int, usable bool) {
	s := &g.srv[i]
	wasUsable := s.usable && s.eweight > 0
	nowUsable := usable && eweight > 0
	oldWeight := s.eweight
	s.usable, s.eweight = usable, eweight
	switch {
	case !wasUsable && !nowUsable:
	case wasUsable && !nowUsable:
		// Going down: out of every list, its weight leaves the group.
		g.nextWeight -= oldWeight
		g.remove(i)
	case !wasUsable && nowUsable:
		g.nextWeight += eweight
		if g.currWeight == 0 && len(g.curr) == 0 && len(g.next) == 0 {
			// Nothing ran yet: wait in init like at startup.
			g.queueByWeight(&g.init, i)
			return
		}
		// Coming up: placed a fair distance ahead of the clock.
		s.npos = g.currPos + (g.nextWeight+g.currWeight-g.currPos)/eweight
		g.queue(i)
	default:
		g.nextWeight += eweight - oldWeight
		g.reweight(i)
	}
}

// reweight moves a usable server whose weight changed: it keeps its turn
// if that comes sooner than one step of the new weight after its last
// pick, and never lands right on the clock.
func (g *fwrr) reweight(i int) {
	s := &g.srv[i]
	t := g.where(i)
	switch t {
	case &g.init:
		g.remove(i)
		g.queueByWeight(&g.init, i)
		return
	case &g.next:
		s.npos += g.currWeight
	}
	prev := s.npos
	step := g.nextWeight / s.eweight
	s.npos = s.lpos + step
	s.rw = 0
	if s.npos > prev {
		s.npos = prev
	}
	if s.npos < g.currPos+2 {
		s.npos = g.currPos + step
	}
	g.remove(i)
	g.queue(i)
}

func (g *fwrr) fromGroup() int {
	if len(g.curr) > 0 {
		first := g.curr[0]
		if g.srv[first].npos <= g.currPos || len(g.init) == 0 {
			return first
		}
	}
	if len(g.init) > 0 {
		i := g.init[0]
		g.srv[i].npos, g.srv[i].rw = 0, 0
		return i
	}
	return -1
}

func (g *fwrr) updatePosition(i int) {
	s := &g.srv[i]
	if s.npos == 0 {
		s.npos = g.currPos
	}
	s.lpos = s.npos
	s.npos += g.nextWeight / s.eweight
	s.rw += g.nextWeight % s.eweight
	if s.rw >= s.eweight {
		s.rw -= s.eweight
		s.npos++
	}
}

func (g *fwrr) switchTrees() {
	g.init, g.next = g.next, g.init
	g.currWeight = g.nextWeight
	g.currPos = g.currWeight
}

func (g *fwrr) pick(load Load, avoid int, _ uint32) int {
	if g.nextWeight == 0 {
		return -1
	}
	if g.currWeight == 0 {
		g.currPos, g.currWeight = g.nextWeight, g.nextWeight
	}
	switched := false
	avoided := -1
	var full []int
	chosen := -1
	for chosen < 0 {
		i := g.fromGroup()
		if i < 0 {
			if switched {
				chosen = avoided
				break
			}
			switched = true
			g.switchTrees()
			continue
		}
		g.updatePosition(i)
		g.remove(i)
		g.currPos++
		if load == nil || !load.Full(i) {
			if i != avoid || avoided >= 0 {
				chosen = i
				break
			}
			avoided = i
		}
		full = append(full, i)
	}
	if chosen >= 0 {
		g.queue(chosen)
	}
	for _, i := range full {
		if i == chosen {
			continue
		}
		if switched {
			g.queueByWeight(&g.init, i)
		} else {
			g.queue(i)
		}
	}
	return chosen
}
