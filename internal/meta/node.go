package meta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sort"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/warren-mq/warren/internal/durable"
)

// Config configures a Node. Zero values mean the defaults in each field's
// doc.
type Config struct {
	// NodeID is this member's Raft id, the node name (rabbit@host style).
	NodeID string
	// Observer, if set, learns of every applied change.
	Observer Observer
	// Logger, if set, is told of a node that waits long to catch up
	// with the cluster.
	Logger *slog.Logger
	// ApplyTimeout bounds one command when the context has no deadline.
	// Default 10s.
	ApplyTimeout time.Duration
	// Dir holds the Raft log (a bbolt file, fsynced per batch of commands)
	// and snapshots. Empty keeps everything in memory, for tests.
	Dir string
	// RAM makes the node a RAM node: a non-voter whose log and snapshots
	// stay in memory even with Dir, fetched again from the cluster on
	// every start.
	RAM bool
	// Network, if set, connects the node to other members over the
	// cluster port. Without it the node is a cluster of one on an
	// in-memory transport.
	Network *Network
	// PeerDown, if set, is called on the leader when a member has not
	// answered Raft's heartbeats for PeerDownAfter (default 5s), once
	// per outage, so that the cluster can act on the node's loss.
	PeerDown      func(m *Node, node string)
	PeerDownAfter time.Duration
	// DeposedDownAfter, if shorter than PeerDownAfter, is how soon after
	// this node is elected its predecessor is reported down once a
	// heartbeat to it fails. Whatever the deposed leader could do only
	// while a majority followed it (a lease it renewed through Raft)
	// ends that long after the majority moved on, which is before the
	// election ends; a member that was a follower still waits out
	// PeerDownAfter.
	DeposedDownAfter time.Duration
	// Spread, if set, is called after a change made through this node
	// has been applied here, before the change's caller learns that it
	// is done: the broker waits there for the other members to apply it
	// too, so that what one node has answered holds on every node.
	Spread func(m *Node)
}

// Network is how a node reaches the other members.
type Network struct {
	// Layer carries Raft's traffic; its Addr is the address other
	// members dial to reach this node.
	Layer raft.StreamLayer
	// Dial opens a connection to the meta service (ServeConn) of the
	// member at addr.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Join lists the cluster ports of members to ask to add this node
	// when it has no state of its own. Empty: a node without state
	// starts a new cluster with itself as the only voter.
	Join []string
}

// Node is one member of the definitions Raft group. It is safe for
// concurrent use.
type Node struct {
	cfg       Config
	fsm       *fsm
	raft      *raft.Raft
	transport raft.Transport
	closeT    func() error // closes the transport
	closeLogs func() error // closes the on-disk log store; nil in memory
	restored  bool

	// The peer watcher, when PeerDown is set.
	observer    *raft.Observer
	stopWatch   chan struct{}
	watchExited chan struct{}

	// The nudger, with other members: see nudge.
	nudges       chan struct{} // capacity 1
	stopNudge    chan struct{}
	nudgerExited chan struct{}
}

// leaseTimeout is the single voter's leader lease, and its heartbeat and
// election timeouts once it runs.
const leaseTimeout = time.Second

// transportTimeout bounds a Raft RPC's dial and I/O, other than a
// snapshot's (which Raft scales by its size). A heartbeat to a member
// that is cut off fails after this long, and only then does the
// member's PeerDownAfter start to count for a newly elected leader;
// entries are small, so an RPC that takes longer than this is one that
// is not coming.
const transportTimeout = 2 * time.Second

// Open starts a Node and waits until the group has a leader and this node
// has applied everything the leader had committed, so that reads are
// current and Apply works as soon as Open returns. A node with no state
// either starts a new group as its only voter or, with Network.Join,
// asks a member to add it.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("meta: NodeID is required")
	}
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	f := newFSM(cfg.Observer)
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	// A single voter's leader lease always holds, so check it rarely. The
	// leader wakes up once per lease to check it, and at 50 ms that was
	// most of what an idle node did. Raft refuses a heartbeat timeout
	// shorter than the lease, so the node starts with a longer one and
	// shortens it at once below, which makes the follower check for a
	// leader immediately and elect itself.
	rc.HeartbeatTimeout = 2 * leaseTimeout
	rc.ElectionTimeout = 2 * leaseTimeout
	rc.LeaderLeaseTimeout = leaseTimeout
	// With other members, the leader sends each of them an AppendEntries
	// every CommitTimeout even when nothing changes, and that is how
	// they learn that an entry has been committed. At 5 ms those
	// messages cost an idle 3-node cluster a fifth of a core; the
	// nudger below tells the followers of a commit at once instead.
	rc.CommitTimeout = 50 * time.Millisecond
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Output: io.Discard, Level: hclog.Off})
	var (
		addr      raft.ServerAddress
		transport raft.Transport
		closeT    func() error
	)
	if cfg.Network == nil {
		a, t := raft.NewInmemTransport(raft.ServerAddress(cfg.NodeID))
		addr, transport, closeT = a, t, t.Close
	} else {
		t := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream: cfg.Network.Layer, MaxPool: 3, Timeout: transportTimeout, Logger: rc.Logger,
		})
		addr, transport, closeT = t.LocalAddr(), t, t.Close
	}
	var (
		logs      raft.LogStore
		stable    raft.StableStore
		snaps     raft.SnapshotStore
		closeLogs func() error
	)
	if cfg.Dir == "" || cfg.RAM {
		mem := raft.NewInmemStore()
		logs, stable, snaps = mem, mem, raft.NewInmemSnapshotStore()
	} else {
		if err := durable.MkdirAll(cfg.Dir, 0o750); err != nil {
			closeT()
			return nil, fmt.Errorf("create meta directory: %w", err)
		}
		bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
		if err != nil {
			closeT()
			return nil, fmt.Errorf("open meta log %s: %w", filepath.Join(cfg.Dir, "raft.db"), err)
		}
		fss, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, rc.Logger)
		if err != nil {
			bolt.Close()
			closeT()
			return nil, fmt.Errorf("open meta snapshots: %w", err)
		}
		// bbolt syncs the log's data but not its name, nor Raft the name
		// of its snapshot directory: without this, a power loss could
		// take the whole log with it.
		if err := durable.SyncDir(cfg.Dir); err != nil {
			bolt.Close()
			closeT()
			return nil, fmt.Errorf("open meta log: %w", err)
		}
		logs, stable, snaps, closeLogs = bolt, bolt, fss, bolt.Close
	}
	fail := func(err error) (*Node, error) {
		if closeLogs != nil {
			closeLogs()
		}
		closeT()
		return nil, err
	}
	existing, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return fail(fmt.Errorf("read meta state: %w", err))
	}
	joining := !existing && cfg.Network != nil && len(cfg.Network.Join) > 0
	if !existing && !joining {
		if cfg.RAM {
			return fail(errors.New("a RAM node cannot start a cluster: there must be at least one disc node"))
		}
		if err := raft.BootstrapCluster(rc, logs, stable, snaps, transport, raft.Configuration{
			Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: addr}},
		}); err != nil {
			return fail(fmt.Errorf("bootstrap meta raft: %w", err))
		}
	}
	r, err := raft.NewRaft(rc, f, logs, stable, snaps, transport)
	if err != nil {
		return fail(fmt.Errorf("start meta raft: %w", err))
	}
	n := &Node{cfg: cfg, fsm: f, raft: r, transport: transport, closeT: closeT, closeLogs: closeLogs, restored: existing}
	short := r.ReloadableConfig()
	short.HeartbeatTimeout, short.ElectionTimeout = leaseTimeout, leaseTimeout
	if err := r.ReloadConfig(short); err != nil {
		n.Close()
		return nil, fmt.Errorf("start meta raft: %w", err)
	}
	if cfg.PeerDown != nil && cfg.Network != nil {
		if n.cfg.PeerDownAfter <= 0 {
			n.cfg.PeerDownAfter = 5 * time.Second
		}
		obs := make(chan raft.Observation, 64)
		n.observer = raft.NewObserver(obs, false, func(o *raft.Observation) bool {
			switch o.Data.(type) {
			case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation:
				return true
			}
			return false
		})
		r.RegisterObserver(n.observer)
		n.stopWatch, n.watchExited = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(n.watchExited)
			n.watchPeers(obs, n.stopWatch)
		}()
	}
	if cfg.Network != nil {
		n.nudges, n.stopNudge, n.nudgerExited = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
		go func() {
			defer close(n.nudgerExited)
			n.runNudger()
		}()
	}
	if joining {
		if err := n.join(ctx, string(addr)); err != nil {
			n.Close()
			return nil, err
		}
	}
	if err := n.catchUp(ctx); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// Applied is the position in the cluster's log up to which this node
// has applied the definitions (or is about to): a node that has applied
// as far knows every definition this one knows.
func (n *Node) Applied() uint64 {
	return max(n.fsm.appliedIndex(), n.raft.AppliedIndex())
}

// WaitApplied returns once this node has applied the definitions up to
// index, a position another node's Applied gave.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	return n.fsm.waitApplied(ctx, index, n.raft.AppliedIndex)
}

// Restored reports whether the node started from state on disk rather
// than as a new cluster.
func (n *Node) Restored() bool { return n.restored }

// Close stops Raft, waits for its goroutines and closes the log.
func (n *Node) Close() error {
	if n.observer != nil {
		n.raft.DeregisterObserver(n.observer)
		close(n.stopWatch)
	}
	if n.nudges != nil {
		close(n.stopNudge)
	}
	// Raft stops before the watcher and the nudger are waited for: a
	// report or a nudge in progress may be applying a command, which the
	// shutdown ends.
	err := n.raft.Shutdown().Error()
	if n.observer != nil {
		<-n.watchExited
	}
	if n.nudges != nil {
		<-n.nudgerExited
	}
	n.closeT()
	if n.closeLogs != nil {
		if cerr := n.closeLogs(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("shut down meta raft: %w", err)
	}
	return nil
}

func (n *Node) apply(ctx context.Context, t CommandType, c *command) (any, error) {
	v, err := n.applyHere(ctx, t, c)
	if err == nil && ctx.Value(unspreadKey{}) == nil {
		n.Spread()
	}
	return v, err
}

// unspreadKey marks a context of changes that do not wait for the other
// members one by one.
type unspreadKey struct{}

// Unspread returns a context whose changes return once applied on this
// node, without Config.Spread's wait: for a batch of changes, after which
// the caller calls Spread once.
func Unspread(ctx context.Context) context.Context {
	return context.WithValue(ctx, unspreadKey{}, true)
}

// Spread waits, through Config.Spread, for the other members to apply
// every change this node has applied.
func (n *Node) Spread() {
	if n.cfg.Spread != nil {
		n.cfg.Spread(n)
	}
}

// applyHere commits a command and waits until this node has applied it.
func (n *Node) applyHere(ctx context.Context, t CommandType, c *command) (any, error) {
	data, err := encodeCommand(t, c)
	if err != nil {
		return nil, err
	}
	timeout := n.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if n.raft.State() != raft.Leader && n.cfg.Network != nil {
		return n.forward(ctx, t, data)
	}
	fut := n.raft.Apply(data, timeout)
	if err := fut.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) && n.cfg.Network != nil {
			return n.forward(ctx, t, data)
		}
		if errors.Is(err, raft.ErrLeadershipLost) {
			return nil, fmt.Errorf("apply meta command %d: %w (%v)", t, ErrNoLeader, err)
		}
		return nil, fmt.Errorf("apply meta command %d: %w", t, err)
	}
	n.nudge()
	res := fut.Response().(result)
	return res.value, res.err
}

// nudge asks the nudger to tell the followers soon that the leader has
// committed everything it has applied so far. A follower learns of a
// commit only from the next AppendEntries, which without new entries
// waits for CommitTimeout; a follower waiting to read a change it
// forwarded, and a node waiting for a queue declared elsewhere, would
// wait that long.
func (n *Node) nudge() {
	if n.nudges == nil {
		return
	}
	select {
	case n.nudges <- struct{}{}:
	default:
	}
}

// runNudger appends a barrier for each burst of nudges: replicating it
// carries the leader's commit index to every follower at once. Nudges
// that arrive while a barrier is in flight make one more. It returns
// when the node closes.
func (n *Node) runNudger() {
	for {
		select {
		case <-n.stopNudge:
			return
		case <-n.nudges:
		}
		if n.raft.State() != raft.Leader {
			continue
		}
		// Alone, there is nobody to tell: a barrier would only cost a
		// node of one another fsync per change.
		if f := n.raft.GetConfiguration(); f.Error() != nil || len(f.Configuration().Servers) < 2 {
			continue
		}
		// An error means leadership or the node itself went away: nobody
		// to tell, or a new leader that will.
		_ = n.raft.Barrier(n.cfg.ApplyTimeout).Error()
	}
}

// PutVHost creates a vhost, with its built-in exchanges, or updates its
// description and tags.
func (n *Node) PutVHost(ctx context.Context, v VHost) error {
	_, err := n.apply(ctx, CmdPutVHost, &command{VHost: &v})
	return err
}

// DeleteVHost deletes a vhost and everything in it.
func (n *Node) DeleteVHost(ctx context.Context, name string) error {
	_, err := n.apply(ctx, CmdDeleteVHost, &command{Target: name})
	return err
}

// PutUser creates or replaces a user.
func (n *Node) PutUser(ctx context.Context, u User) error {
	_, err := n.apply(ctx, CmdPutUser, &command{User: &u})
	return err
}

// DeleteUser deletes a user and its permissions.
func (n *Node) DeleteUser(ctx context.Context, name string) error {
	_, err := n.apply(ctx, CmdDeleteUser, &command{Target: name})
	return err
}

// SetPermission sets a user's permissions in a vhost.
func (n *Node) SetPermission(ctx context.Context, p Permission) error {
	_, err := n.apply(ctx, CmdSetPermission, &command{Permission: &p})
	return err
}

// ClearPermission removes a user's permissions in a vhost.
func (n *Node) ClearPermission(ctx context.Context, user, vhost string) error {
	_, err := n.apply(ctx, CmdClearPermission, &command{Target: user, VHostName: vhost})
	return err
}

// DeclareExchange creates an exchange. If one of that name exists it is
// returned with ErrExists, unchanged, for the caller to compare.
func (n *Node) DeclareExchange(ctx context.Context, x Exchange) (Exchange, error) {
	v, err := n.apply(ctx, CmdDeclareExchange, &command{Exchange: &x})
	cur, _ := v.(Exchange)
	return cur, err
}

// DeleteExchange deletes an exchange and its bindings; it reports whether
// the exchange existed.
func (n *Node) DeleteExchange(ctx context.Context, vhost, name string) (bool, error) {
	v, err := n.apply(ctx, CmdDeleteExchange, &command{Target: name, VHostName: vhost})
	ok, _ := v.(bool)
	return ok, err
}

// DeclareQueue creates a queue. If one of that name exists it is returned
// with ErrExists, unchanged, for the caller to compare.
func (n *Node) DeclareQueue(ctx context.Context, q Queue) (Queue, error) {
	v, err := n.apply(ctx, CmdDeclareQueue, &command{Queue: &q})
	cur, _ := v.(Queue)
	return cur, err
}

// DeleteQueue deletes a queue and its bindings; it reports whether the
// queue existed.
func (n *Node) DeleteQueue(ctx context.Context, vhost, name string) (bool, error) {
	v, err := n.apply(ctx, CmdDeleteQueue, &command{Target: name, VHostName: vhost})
	ok, _ := v.(bool)
	return ok, err
}

// SetPlacement moves a queue's leader and mirrors. It is refused with
// ErrStale unless the queue's placement is still at version p.Expect and
// p's version is newer; it returns the queue as it then is.
func (n *Node) SetPlacement(ctx context.Context, p Placement) (Queue, error) {
	v, err := n.apply(ctx, CmdSetPlacement, &command{Placement: &p})
	q, _ := v.(Queue)
	return q, err
}

// Bind adds a binding; adding one that exists does nothing.
func (n *Node) Bind(ctx context.Context, b Binding) error {
	_, err := n.apply(ctx, CmdBind, &command{Binding: &b})
	return err
}

// Unbind removes a binding and reports whether it existed.
func (n *Node) Unbind(ctx context.Context, b Binding) (bool, error) {
	v, err := n.apply(ctx, CmdUnbind, &command{Binding: &b})
	ok, _ := v.(bool)
	return ok, err
}

// SetPolicy creates or replaces a policy (or operator policy).
func (n *Node) SetPolicy(ctx context.Context, p Policy) error {
	_, err := n.apply(ctx, CmdSetPolicy, &command{Policy: &p})
	return err
}

// ClearPolicy removes a policy (or operator policy).
func (n *Node) ClearPolicy(ctx context.Context, vhost, name string, operator bool) error {
	_, err := n.apply(ctx, CmdClearPolicy, &command{VHostName: vhost, Target: name, Operator: operator})
	return err
}

// Policies returns a vhost's policies and operator policies, or every
// vhost's when vhost is empty.
func (n *Node) Policies(vhost string) []Policy {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	var out []Policy
	for _, vn := range sortedKeys(n.fsm.st.vhosts) {
		if vhost != "" && vn != vhost {
			continue
		}
		v := n.fsm.st.vhosts[vn]
		start := len(out)
		for _, p := range v.policies {
			out = append(out, *p)
		}
		sort.Slice(out[start:], func(i, j int) bool {
			a, b := out[start+i], out[start+j]
			if a.Operator != b.Operator {
				return !a.Operator
			}
			return a.Name < b.Name
		})
	}
	return out
}

// SetTopicPermission sets a user's topic permission on one exchange.
func (n *Node) SetTopicPermission(ctx context.Context, p TopicPermission) error {
	_, err := n.apply(ctx, CmdSetTopicPermission, &command{Topic: &p})
	return err
}

// ClearTopicPermissions removes a user's topic permission on one exchange
// of a vhost, or on all of them when exchange is empty.
func (n *Node) ClearTopicPermissions(ctx context.Context, user, vhost, exchange string) error {
	_, err := n.apply(ctx, CmdClearTopicPermission, &command{Target: user, VHostName: vhost, Topic: &TopicPermission{Exchange: exchange}})
	return err
}

// TopicPermission returns a user's topic permission on an exchange.
func (n *Node) TopicPermission(user, vhost, exchange string) (TopicPermission, bool) {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	p, ok := n.fsm.st.topics[[3]string{user, vhost, exchange}]
	if !ok {
		return TopicPermission{}, false
	}
	return *p, true
}

// SetGlobalParameter creates or replaces a global parameter.
func (n *Node) SetGlobalParameter(ctx context.Context, p GlobalParameter) error {
	_, err := n.apply(ctx, CmdSetGlobalParameter, &command{Global: &p})
	return err
}

// ClearGlobalParameter removes a global parameter.
func (n *Node) ClearGlobalParameter(ctx context.Context, name string) error {
	_, err := n.apply(ctx, CmdClearGlobalParameter, &command{Target: name})
	return err
}

// GlobalParameter returns a global parameter by name.
func (n *Node) GlobalParameter(name string) (GlobalParameter, bool) {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	p, ok := n.fsm.st.global[name]
	return p, ok
}

// ExchangeCounts returns how many exchanges each vhost has.
func (n *Node) ExchangeCounts() map[string]int {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	out := make(map[string]int, len(n.fsm.st.vhosts))
	for name, v := range n.fsm.st.vhosts {
		out[name] = len(v.exchanges)
	}
	return out
}

// User returns a user by name.
func (n *Node) User(name string) (User, bool) {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	u, ok := n.fsm.st.users[name]
	if !ok {
		return User{}, false
	}
	return *u, true
}

// Permission returns a user's permissions in a vhost.
func (n *Node) Permission(user, vhost string) (Permission, bool) {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	p, ok := n.fsm.st.perms[[2]string{user, vhost}]
	if !ok {
		return Permission{}, false
	}
	return *p, true
}

// VHost returns a vhost's definition.
func (n *Node) VHost(name string) (VHost, bool) {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	v, ok := n.fsm.st.vhosts[name]
	if !ok {
		return VHost{}, false
	}
	return v.def, true
}

// VHostExists reports whether a vhost exists.
func (n *Node) VHostExists(name string) bool {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	_, ok := n.fsm.st.vhosts[name]
	return ok
}

// Exchange returns an exchange's definition.
func (n *Node) Exchange(vhost, name string) (Exchange, bool) {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	if v, ok := n.fsm.st.vhosts[vhost]; ok {
		if x, ok := v.exchanges[name]; ok {
			return *x, true
		}
	}
	return Exchange{}, false
}

// Queue returns a queue's definition.
func (n *Node) Queue(vhost, name string) (Queue, bool) {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	if v, ok := n.fsm.st.vhosts[vhost]; ok {
		if q, ok := v.queues[name]; ok {
			return *q, true
		}
	}
	return Queue{}, false
}

// Definitions is a copy of the whole state, sorted by name.
type Definitions = snapshotData

// Snapshot returns a copy of every definition.
func (n *Node) Snapshot() *Definitions {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	return n.fsm.st.export()
}
