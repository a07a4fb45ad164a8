package mirror

import (
	"slices"
)

// Mode is a policy's ha-mode.
type Mode uint8

// The ha-mode values.
const (
	None    Mode = iota // no ha-mode: the queue is not mirrored
	All                 // a copy on every member
	Exactly             // Count copies in all, the leader's included
	Nodes               // copies on the nodes named
)

// DefaultBatchSize is how many messages a synchronisation copies at a
// time without ha-sync-batch-size, as in RabbitMQ.
const DefaultBatchSize = 4096

// Policy is what a queue's effective policy says about mirroring.
type Policy struct {
	Mode  Mode
	Count int      // Exactly: copies in all, the leader's included
	Nodes []string // Nodes: the nodes named, in the policy's order
	// Automatic is ha-sync-mode "automatic": a new mirror copies the
	// backlog by itself. With "manual" it takes new messages only.
	Automatic bool
	BatchSize int // ha-sync-batch-size
	// PromoteOnShutdown and PromoteOnFailure are ha-promote-on-shutdown
	// and ha-promote-on-failure "always": consent to promote a mirror
	// that is not in sync, losing what it lacks, rather than leave the
	// queue without a leader. Both default to "when-synced". (RabbitMQ's
	// ha-promote-on-failure defaults to "always".)
	PromoteOnShutdown bool
	PromoteOnFailure  bool
}

// Mirrored reports whether the policy mirrors queues.
func (p Policy) Mirrored() bool { return p.Mode != None }

// FromDefinition reads the ha-* keys of a policy definition, already
// validated (package policy). Keys it does not know are ignored.
func FromDefinition(def map[string]any) Policy {
	p := Policy{BatchSize: DefaultBatchSize}
	switch def["ha-mode"] {
	case "all":
		p.Mode = All
	case "exactly":
		if n, ok := number(def["ha-params"]); ok && n >= 1 {
			p.Mode, p.Count = Exactly, n
		}
	case "nodes":
		if list, ok := def["ha-params"].([]any); ok {
			for _, v := range list {
				if s, ok := v.(string); ok && !slices.Contains(p.Nodes, s) {
					p.Nodes = append(p.Nodes, s)
				}
			}
		}
		if len(p.Nodes) > 0 {
			p.Mode = Nodes
		}
	}
	p.Automatic = def["ha-sync-mode"] == "automatic"
	if n, ok := number(def["ha-sync-batch-size"]); ok && n > 0 {
		p.BatchSize = n
	}
	p.PromoteOnShutdown = def["ha-promote-on-shutdown"] == "always"
	p.PromoteOnFailure = def["ha-promote-on-failure"] == "always"
	return p
}

func number(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case float64:
		if n == float64(int(n)) {
			return int(n), true
		}
	}
	return 0, false
}

// Placement is where a mirrored queue's copies are, as the meta group
// committed it.
type Placement struct {
	Leader string
	// Mirrors are the other nodes that keep a copy, oldest first.
	Mirrors []string
	// InSync are the mirrors that hold every message the leader has
	// confirmed, oldest first; a subset of Mirrors.
	InSync []string
	// Epoch grows by one with every change of leader.
	Epoch uint64
	// Version grows by one with every change; a change names the version
	// it replaces (invariant 1).
	Version uint64
}

// Equal reports whether a and b place the queue alike, epoch and version
// included.
func (a Placement) Equal(b Placement) bool {
	return a.Leader == b.Leader && a.Epoch == b.Epoch && a.Version == b.Version &&
		slices.Equal(a.Mirrors, b.Mirrors) && slices.Equal(a.InSync, b.InSync)
}

// Synchronised reports whether node is the leader or an in-sync mirror.
func (a Placement) Synchronised(node string) bool {
	return node == a.Leader || slices.Contains(a.InSync, node)
}

func (a Placement) clone() Placement {
	a.Mirrors = slices.Clone(a.Mirrors)
	a.InSync = slices.Clone(a.InSync)
	return a
}

// Cluster is what the rules need to know of the cluster's members.
type Cluster struct {
	// Members are every member's name, in the order they joined.
	Members []string
	// Running reports whether a member's node is up and reachable.
	Running func(node string) bool
	// Load is how many queue copies (leaders and mirrors) each node
	// holds; new mirrors go to the least loaded nodes first. Nil: in
	// member order.
	Load map[string]int
}

func (c Cluster) running(node string) bool {
	return c.Running == nil || c.Running(node)
}

// Want returns the mirrors the policy wants for a queue led from pl's
// leader: the existing ones kept where the policy allows, oldest first,
// then new ones.
func Want(p Policy, pl Placement, c Cluster) []string {
	member := func(n string) bool { return n != pl.Leader && slices.Contains(c.Members, n) }
	var want []string
	switch p.Mode {
	case All:
		for _, n := range pl.Mirrors {
			if member(n) {
				want = append(want, n)
			}
		}
		for _, n := range c.Members {
			if member(n) && !slices.Contains(want, n) {
				want = append(want, n)
			}
		}
	case Nodes:
		for _, n := range pl.Mirrors {
			if member(n) && slices.Contains(p.Nodes, n) {
				want = append(want, n)
			}
		}
		for _, n := range p.Nodes {
			if member(n) && !slices.Contains(want, n) {
				want = append(want, n)
			}
		}
	case Exactly:
		need := p.Count - 1
		// Running mirrors stay; then new ones on running nodes; then
		// mirrors on stopped nodes, which may come back with their copy.
		for _, n := range pl.Mirrors {
			if len(want) < need && member(n) && c.running(n) {
				want = append(want, n)
			}
		}
		for _, n := range c.byLoad() {
			if len(want) < need && member(n) && c.running(n) && !slices.Contains(pl.Mirrors, n) {
				want = append(want, n)
			}
		}
		for _, n := range pl.Mirrors {
			if len(want) < need && member(n) && !slices.Contains(want, n) {
				want = append(want, n)
			}
		}
	}
	return want
}

// byLoad is the members, least loaded first, in member order among equals.
func (c Cluster) byLoad() []string {
	ns := slices.Clone(c.Members)
	if c.Load != nil {
		slices.SortStableFunc(ns, func(a, b string) int { return c.Load[a] - c.Load[b] })
	}
	return ns
}

// Reconcile applies the policy to a placement after a change of policy
// or of members: mirrors are added and removed as Want says, and a
// leader whose node the policy no longer names hands over to the oldest
// running in-sync mirror it names, if there is one (until then it stays,
// so that nothing is lost). It reports whether anything changed; the
// result's version is then pl's plus one.
func Reconcile(p Policy, pl Placement, c Cluster) (Placement, bool) {
	next := pl.clone()
	if p.Mode == Nodes && !slices.Contains(p.Nodes, pl.Leader) {
		for _, n := range pl.InSync {
			if slices.Contains(p.Nodes, n) && slices.Contains(c.Members, n) && c.running(n) {
				next = handOver(next, n)
				break
			}
		}
	}
	// Until a named mirror is in sync, a leader the policy does not name
	// stays, with the named mirrors it is to hand over to.
	next.Mirrors = Want(p, next, c)
	next.InSync = slices.DeleteFunc(next.InSync, func(n string) bool { return !slices.Contains(next.Mirrors, n) })
	if next.Leader == pl.Leader && slices.Equal(next.Mirrors, pl.Mirrors) && slices.Equal(next.InSync, pl.InSync) {
		return pl, false
	}
	next.Version = pl.Version + 1
	return next, true
}

// handOver makes the in-sync mirror n the leader, in a new epoch; the old
// leader is no longer part of the placement. The other mirrors leave the
// in-sync set: they followed the old leader's stream, each as far as it
// got, and join again once the new leader has brought them up to date.
func handOver(pl Placement, n string) Placement {
	pl.Leader = n
	pl.Mirrors = slices.DeleteFunc(pl.Mirrors, func(m string) bool { return m == n })
	pl.InSync = nil
	pl.Epoch++
	return pl
}

// Outcome says what Failover did.
type Outcome uint8

// Failover's outcomes.
const (
	// Promoted: an in-sync mirror leads; nothing confirmed is lost.
	Promoted Outcome = iota + 1
	// PromotedUnsynced: no in-sync mirror was running and the policy
	// consented to promote one that is not in sync; what it lacks is lost.
	PromotedUnsynced
	// Unavailable: no mirror may lead; the queue waits for its leader or
	// an in-sync mirror to return.
	Unavailable
)

// Failover chooses a new leader for a queue whose leader's node has
// died or been cut off (shutdown false), or is stopping (shutdown true):
// the oldest running in-sync mirror, else, with the policy's consent for
// that cause, the oldest running mirror. The old leader leaves the
// placement; Reconcile adds it back as a mirror if the policy wants one
// there. On Unavailable, pl is returned unchanged.
func Failover(p Policy, pl Placement, c Cluster, shutdown bool) (Placement, Outcome) {
	for _, n := range pl.InSync {
		if n != pl.Leader && c.running(n) {
			next := handOver(pl.clone(), n)
			next.Version = pl.Version + 1
			return next, Promoted
		}
	}
	consent := p.PromoteOnFailure
	if shutdown {
		consent = p.PromoteOnShutdown
	}
	if consent {
		for _, n := range pl.Mirrors {
			if n != pl.Leader && c.running(n) {
				next := handOver(pl.clone(), n)
				next.Version = pl.Version + 1
				return next, PromotedUnsynced
			}
		}
	}
	return pl, Unavailable
}

// Shrink takes node out of the in-sync set: the leader has lost touch
// with it, or it fell behind. It reports false if node was not in it.
func Shrink(pl Placement, node string) (Placement, bool) {
	if !slices.Contains(pl.InSync, node) {
		return pl, false
	}
	next := pl.clone()
	next.InSync = slices.DeleteFunc(next.InSync, func(m string) bool { return m == node })
	next.Version++
	return next, true
}

// Expand puts the mirror node into the in-sync set, keeping the set in
// the mirrors' order (oldest first). It reports false if node is no
// mirror or already in sync.
func Expand(pl Placement, node string) (Placement, bool) {
	if !slices.Contains(pl.Mirrors, node) || slices.Contains(pl.InSync, node) {
		return pl, false
	}
	next := pl.clone()
	next.InSync = nil
	for _, m := range pl.Mirrors {
		if m == node || slices.Contains(pl.InSync, m) {
			next.InSync = append(next.InSync, m)
		}
	}
	next.Version++
	return next, true
}

// Critical reports whether stopping node would leave the queue without
// an in-sync copy on a running node: node holds the only one.
func Critical(pl Placement, node string, c Cluster) bool {
	if !pl.Synchronised(node) {
		return false
	}
	for _, n := range append([]string{pl.Leader}, pl.InSync...) {
		if n != node && c.running(n) {
			return false
		}
	}
	return true
}
