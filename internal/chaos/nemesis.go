package chaos

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Nemesis injects faults into a cluster on its lab and heals them,
// writing what it did to a report.
type Nemesis struct {
	W     Cluster
	Lab   *Lab
	start time.Time

	mu     sync.Mutex
	report strings.Builder
	holds  map[string]bool
}

// NewNemesis returns a nemesis for w.
func NewNemesis(w Cluster, lab *Lab) *Nemesis {
	return &Nemesis{W: w, Lab: lab, start: time.Now(), holds: map[string]bool{}}
}

// logf adds a line to the report.
func (n *Nemesis) logf(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	fmt.Fprintf(&n.report, "%7.1fs  %s\n", time.Since(n.start).Seconds(), fmt.Sprintf(format, args...))
}

// Report is what the nemesis did, line by line.
func (n *Nemesis) Report() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.report.String()
}

// Hold reports whether consumers of queue are held back.
func (n *Nemesis) Hold(queue string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.holds[queue]
}

func (n *Nemesis) setHold(queue string, on bool) {
	n.mu.Lock()
	n.holds[queue] = on
	n.mu.Unlock()
}

// leader is the host leading queue, or a random one if no node can say.
func (n *Nemesis) leader(queue string) int {
	i, err := n.W.Leader(queue)
	if err != nil {
		return rand.IntN(len(n.Lab.Hosts))
	}
	return i
}

// other is a host that is not i.
func (n *Nemesis) other(i int) int {
	return (i + 1 + rand.IntN(len(n.Lab.Hosts)-1)) % len(n.Lab.Hosts)
}

// Heal ends every fault: all nodes running and thawed, cables in, no
// blocked routes; then it waits for the full cluster.
func (n *Nemesis) Heal(timeout time.Duration) error {
	for i, h := range n.Lab.Hosts {
		h.Cable(true)
		for _, o := range n.Lab.Hosts {
			if o != h {
				h.Block(o, false)
			}
		}
		if n.W.Running(i) {
			n.W.Freeze(i, false)
		} else if err := n.W.Start(i); err != nil {
			return err
		}
	}
	for i := range n.Lab.Hosts {
		if err := n.W.Await(i, timeout); err != nil {
			return err
		}
	}
	return nil
}

// KillRestart kills host i's node with SIGKILL and starts it again after
// down.
func (n *Nemesis) KillRestart(i int, down time.Duration, why string) error {
	n.logf("SIGKILL %s (%s); restart after %v", n.W.Node(i), why, down)
	n.W.Kill(i)
	time.Sleep(down)
	return n.W.Start(i)
}

// Freeze stops host i's node with SIGSTOP for d.
func (n *Nemesis) Freeze(i int, d time.Duration, why string) error {
	n.logf("SIGSTOP %s (%s) for %v", n.W.Node(i), why, d)
	if err := n.W.Freeze(i, true); err != nil {
		return err
	}
	time.Sleep(d)
	n.logf("SIGCONT %s", n.W.Node(i))
	return n.W.Freeze(i, false)
}

// Isolate pulls host i's cable for d: the host is cut off from the
// others, a minority of one.
func (n *Nemesis) Isolate(i int, d time.Duration, why string) error {
	n.logf("cut %s off (%s) for %v", n.Lab.Hosts[i].Name, why, d)
	if err := n.Lab.Hosts[i].Cable(false); err != nil {
		return err
	}
	time.Sleep(d)
	n.logf("reconnect %s", n.Lab.Hosts[i].Name)
	return n.Lab.Hosts[i].Cable(true)
}

// Bridge cuts hosts a and c off from each other for d; both still see
// the third.
func (n *Nemesis) Bridge(a, c int, d time.Duration) error {
	ha, hc := n.Lab.Hosts[a], n.Lab.Hosts[c]
	n.logf("bridge partition: %s and %s cannot see each other, both see the third, for %v", ha.Name, hc.Name, d)
	if err := ha.Block(hc, true); err != nil {
		return err
	}
	if err := hc.Block(ha, true); err != nil {
		return err
	}
	time.Sleep(d)
	n.logf("heal the bridge partition")
	if err := ha.Block(hc, false); err != nil {
		return err
	}
	return hc.Block(ha, false)
}

// KillDuringSync lets queue's backlog grow while its consumers are held,
// restarts one of its mirrors so that it synchronises the backlog, and
// kills the leader while it does.
func (n *Nemesis) KillDuringSync(queue string, backlog time.Duration) error {
	n.logf("hold the consumers of %s for a backlog", queue)
	n.setHold(queue, true)
	defer func() {
		n.setHold(queue, false)
		n.logf("release the consumers of %s", queue)
	}()
	time.Sleep(backlog)
	l := n.leader(queue)
	m := n.other(l)
	if err := n.KillRestart(m, 500*time.Millisecond, "a mirror of "+queue+", to synchronise it again"); err != nil {
		return err
	}
	// The mirror starts synchronising as soon as it serves again.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if n.W.Ready(m) {
			break
		}
	}
	time.Sleep(200 * time.Millisecond)
	return n.KillRestart(l, 3*time.Second, "the leader of "+queue+", during the synchronisation")
}

// KillLeaderWhileMirrorFrozen freezes a mirror of queue, kills the
// queue's leader while the mirror is frozen, then thaws the mirror: a
// leader that confirmed what the frozen mirror lacks would lose it if
// that mirror took over.
func (n *Nemesis) KillLeaderWhileMirrorFrozen(queue string, frozen time.Duration) error {
	l := n.leader(queue)
	m := n.other(l)
	n.logf("SIGSTOP %s (a mirror of %s)", n.W.Node(m), queue)
	if err := n.W.Freeze(m, true); err != nil {
		return err
	}
	time.Sleep(frozen)
	n.logf("SIGKILL %s (the leader of %s) while the mirror is frozen", n.W.Node(l), queue)
	n.W.Kill(l)
	time.Sleep(time.Second)
	n.logf("SIGCONT %s", n.W.Node(m))
	if err := n.W.Freeze(m, false); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	n.logf("restart %s", n.W.Node(l))
	return n.W.Start(l)
}

// KillLeaderWhileMirrorCut cuts the link between queue's leader and one
// of its mirrors (both still see the third node), kills the leader while
// it is cut, then heals the link: a leader that confirmed what the cut
// mirror never received would lose it if that mirror took over.
func (n *Nemesis) KillLeaderWhileMirrorCut(queue string, cut time.Duration) error {
	l := n.leader(queue)
	m := n.other(l)
	hl, hm := n.Lab.Hosts[l], n.Lab.Hosts[m]
	n.logf("cut %s (the leader of %s) and %s (a mirror) off from each other", hl.Name, queue, hm.Name)
	if err := hl.Block(hm, true); err != nil {
		return err
	}
	if err := hm.Block(hl, true); err != nil {
		return err
	}
	time.Sleep(cut)
	n.logf("SIGKILL %s (the leader of %s) while it is cut off from the mirror", n.W.Node(l), queue)
	n.W.Kill(l)
	time.Sleep(time.Second)
	hl.Block(hm, false)
	hm.Block(hl, false)
	n.logf("heal the cut; restart %s after 3s", n.W.Node(l))
	time.Sleep(3 * time.Second)
	return n.W.Start(l)
}

// Drain puts host i's node into maintenance (warrenctl drain) for d and
// revives it.
func (n *Nemesis) Drain(i int, d time.Duration, why string) error {
	n.logf("drain %s (%s) for %v", n.W.Node(i), why, d)
	if err := n.W.Drain(i); err != nil {
		return err
	}
	time.Sleep(d)
	n.logf("revive %s", n.W.Node(i))
	return n.W.Revive(i)
}
