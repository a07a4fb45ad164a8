package meta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sort"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/warren-mq/warren/internal/cluster"
)

// Member is one node of the definitions group, as its Raft configuration
// holds it.
type Member struct {
	ID   string
	Addr string
	// Voter is true for a disc node and false for a RAM node.
	Voter bool
}

// ErrNoLeader means no majority of the disc nodes can be reached, so
// definitions cannot change.
var ErrNoLeader = errors.New("no majority of the cluster's disc nodes is reachable, so definitions cannot change now; try again when the partition heals or the nodes are back")

// ErrLastDisc refuses to leave the cluster without a disc node.
var ErrLastDisc = errors.New("it is the only disc node of the cluster, and a cluster needs at least one")

// wire is one request or answer of the meta service.
type wire struct {
	Op string `json:"op"`
	// Apply
	Command []byte `json:"command,omitempty"`
	// Membership
	ID    string `json:"id,omitempty"`
	Addr  string `json:"addr,omitempty"`
	Voter bool   `json:"voter,omitempty"`
	// Answers
	Index    uint64    `json:"index,omitempty"`
	Exchange *Exchange `json:"exchange,omitempty"`
	Queue    *Queue    `json:"queue,omitempty"`
	Bool     bool      `json:"bool,omitempty"`
	Err      string    `json:"err,omitempty"`
	ErrKind  string    `json:"err_kind,omitempty"`
	// Leader is the leader's address, when a node that does not lead is
	// asked.
	Leader string `json:"leader,omitempty"`
}

// Meta service operations.
const (
	opApply  = "apply"
	opAdd    = "add"
	opRemove = "remove"
	// opReadIndex: the leader confirms it still leads and answers with
	// its commit index (Raft's read index), writing nothing to the log.
	opReadIndex = "read_index"
)

// Error kinds that keep their sentinel across the wire.
var errKinds = map[string]error{
	"not_found": ErrNotFound, "exists": ErrExists, "no_leader": ErrNoLeader,
	"last_disc": ErrLastDisc, "not_leader": raft.ErrNotLeader, "stale": ErrStale,
}

// remoteError is an error that came back from the leader: its text as
// the leader wrote it, and the sentinel it wrapped.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }

func encodeErr(w *wire, err error) {
	if err == nil {
		return
	}
	w.Err = err.Error()
	for k, sentinel := range errKinds {
		if errors.Is(err, sentinel) {
			w.ErrKind = k
		}
	}
}

func decodeErr(w *wire) error {
	if w.Err == "" {
		return nil
	}
	return &remoteError{msg: w.Err, kind: errKinds[w.ErrKind]}
}

// ServeConn answers requests from other members on one authenticated
// connection of the cluster port, until it closes.
func (n *Node) ServeConn(nc net.Conn, peer string) {
	defer nc.Close()
	for {
		var req wire
		if err := cluster.ReadJSON(nc, &req); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
		resp := n.serve(ctx, &req)
		cancel()
		if err := cluster.WriteJSON(nc, &resp); err != nil {
			return
		}
	}
}

func (n *Node) serve(ctx context.Context, req *wire) wire {
	var resp wire
	if n.raft.State() != raft.Leader {
		addr, id := n.raft.LeaderWithID()
		resp.Leader = string(addr)
		encodeErr(&resp, fmt.Errorf("%w: ask %s", raft.ErrNotLeader, id))
		return resp
	}
	switch req.Op {
	case opApply:
		if len(req.Command) == 0 {
			encodeErr(&resp, errors.New("empty command"))
			return resp
		}
		fut := n.raft.Apply(req.Command, n.cfg.ApplyTimeout)
		if err := fut.Error(); err != nil {
			encodeErr(&resp, err)
			return resp
		}
		n.nudge()
		res := fut.Response().(result)
		resp.Index = fut.Index()
		switch v := res.value.(type) {
		case Exchange:
			resp.Exchange = &v
		case Queue:
			resp.Queue = &v
		case bool:
			resp.Bool = v
		}
		encodeErr(&resp, res.err)
	case opReadIndex:
		resp.Index, resp.Err = n.readIndex()
		if resp.Err != "" {
			resp.ErrKind = "not_leader"
		}
	case opAdd:
		encodeErr(&resp, n.addLocal(req.ID, req.Addr, req.Voter))
	case opRemove:
		encodeErr(&resp, n.removeLocal(req.ID))
	default:
		encodeErr(&resp, fmt.Errorf("unknown meta operation %q", req.Op))
	}
	return resp
}

// leaderWait bounds how long a change waits for a leader to be elected
// before it is refused.
const leaderWait = 5 * time.Second

// call sends a request to the leader, following leadership as it moves,
// until ctx ends.
func (n *Node) call(ctx context.Context, req *wire) (wire, error) {
	var last error
	deadline := time.Now().Add(leaderWait)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				if last == nil {
					last = ctx.Err()
				}
				return wire{}, last
			case <-time.After(min(time.Duration(attempt)*20*time.Millisecond, 200*time.Millisecond)):
			}
		}
		if n.raft.State() == raft.Leader {
			return n.serve(ctx, req), nil
		}
		addr, _ := n.raft.LeaderWithID()
		if addr == "" {
			last = ErrNoLeader
			if time.Now().After(deadline) {
				return wire{}, ErrNoLeader
			}
			continue
		}
		resp, err := n.callAt(ctx, string(addr), req)
		if err != nil {
			last = fmt.Errorf("%w (the leader %s: %v)", ErrNoLeader, addr, err)
			if time.Now().After(deadline) {
				return wire{}, last
			}
			continue
		}
		if resp.ErrKind == "not_leader" {
			last = ErrNoLeader
			continue
		}
		return resp, nil
	}
}

func (n *Node) callAt(ctx context.Context, addr string, req *wire) (wire, error) {
	return callAt(ctx, n.cfg.Network.Dial, addr, req)
}

// Dialer opens a connection to the meta service of the member at addr.
type Dialer func(ctx context.Context, addr string) (net.Conn, error)

func callAt(ctx context.Context, dial Dialer, addr string, req *wire) (wire, error) {
	nc, err := dial(ctx, addr)
	if err != nil {
		return wire{}, err
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	if err := cluster.WriteJSON(nc, req); err != nil {
		return wire{}, err
	}
	var resp wire
	if err := cluster.ReadJSON(nc, &resp); err != nil {
		return wire{}, err
	}
	return resp, nil
}

// errUnreachable wraps the failure to reach any member, as opposed to a
// member's refusal.
var errUnreachable = errors.New("no member of the cluster could be reached")

// callMembers asks the members at addrs in turn, following a redirect to
// the leader, until one answers. A refusal is returned as the error.
func callMembers(ctx context.Context, dial Dialer, addrs []string, req *wire) error {
	var errs []error
	for _, addr := range addrs {
		cctx, cancel := context.WithTimeout(ctx, leaderWait+5*time.Second)
		resp, err := callAt(cctx, dial, addr, req)
		if err == nil && resp.ErrKind == "not_leader" && resp.Leader != "" {
			resp, err = callAt(cctx, dial, resp.Leader, req)
		}
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		if resp.ErrKind == "not_leader" {
			errs = append(errs, fmt.Errorf("%s: %w", addr, ErrNoLeader))
			continue
		}
		return decodeErr(&resp)
	}
	return fmt.Errorf("%w: %w", errUnreachable, errors.Join(errs...))
}

// RemoveRemote asks the cluster, through the members at addrs, to remove
// the member id; it is how a node whose app is stopped leaves.
func RemoveRemote(ctx context.Context, dial Dialer, addrs []string, id string) error {
	return callMembers(ctx, dial, addrs, &wire{Op: opRemove, ID: id})
}

// forward has the leader apply a command, then waits until this node has
// applied it too, so that the caller reads its own write.
func (n *Node) forward(ctx context.Context, t CommandType, data []byte) (any, error) {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	resp, err := n.call(ctx, &wire{Op: opApply, Command: data})
	if err != nil {
		return nil, fmt.Errorf("apply meta command %d: %w", t, err)
	}
	if resp.Index > 0 {
		if err := n.fsm.waitApplied(ctx, resp.Index, n.raft.AppliedIndex); err != nil {
			return nil, fmt.Errorf("apply meta command %d: wait for this node to apply it: %w", t, err)
		}
	}
	var v any
	switch {
	case resp.Exchange != nil:
		v = *resp.Exchange
	case resp.Queue != nil:
		v = *resp.Queue
	case t == CmdDeleteExchange || t == CmdDeleteQueue || t == CmdUnbind:
		v = resp.Bool
	}
	return v, decodeErr(&resp)
}

// bound gives ctx the apply timeout unless it has a deadline.
func (n *Node) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, n.cfg.ApplyTimeout)
}

// catchUpReport is how often a node that waits to catch up says so.
const catchUpReport = 10 * time.Second

// catchUp waits for a leader and applies everything it has committed.
func (n *Node) catchUp(ctx context.Context) error {
	// A wait longer than an election or two is worth a word in the log:
	// the node is cut off, or the leader does not reach it.
	began, said := time.Now(), time.Now()
	var lastErr error
	for {
		if time.Since(said) >= catchUpReport && n.cfg.Logger != nil {
			said = time.Now()
			addr, id := n.raft.LeaderWithID()
			n.cfg.Logger.Warn("meta: still waiting to catch up with the cluster's leader", "waited", time.Since(began).Round(time.Second),
				"state", n.raft.State().String(), "leader", string(id), "leader_addr", string(addr), "applied", n.raft.AppliedIndex(), "last_error", lastErr)
		}
		if n.raft.State() == raft.Leader {
			// Apply everything the log holds before anyone reads the state.
			if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err == nil {
				return nil
			} else if !errors.Is(err, raft.ErrLeadershipLost) && !errors.Is(err, raft.ErrNotLeader) {
				return fmt.Errorf("replay meta log: %w", err)
			}
		} else if addr, _ := n.raft.LeaderWithID(); addr != "" && n.cfg.Network != nil {
			data, _ := encodeCommand(CmdSync, &command{})
			cctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
			resp, err := n.callAt(cctx, string(addr), &wire{Op: opApply, Command: data})
			if err == nil && resp.Err == "" {
				err = n.fsm.waitApplied(cctx, resp.Index, n.raft.AppliedIndex)
				cancel()
				if err == nil {
					return nil
				}
				lastErr = fmt.Errorf("apply up to %d: %w", resp.Index, err)
			} else {
				cancel()
				if err == nil {
					err = errors.New(resp.Err)
				}
				lastErr = fmt.Errorf("ask the leader: %w", err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for a majority of the cluster's disc nodes: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// readIndex is the leader's commit index once it has confirmed, with a
// round of heartbeats, that it still leads; the error text otherwise.
func (n *Node) readIndex() (uint64, string) {
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return 0, err.Error()
	}
	return n.raft.CommitIndex(), ""
}

// Confirm returns once this node has applied everything the cluster's
// majority had committed when it was called: its definitions are then at
// least as new as any decision made before the call. A node cut off from
// the majority, or whose log the leader cannot reach, cannot confirm.
// It writes nothing to the log.
func (n *Node) Confirm(ctx context.Context) error {
	var index uint64
	if n.raft.State() == raft.Leader || n.cfg.Network == nil {
		i, msg := n.readIndex()
		if msg != "" {
			return fmt.Errorf("confirm leadership: %s", msg)
		}
		index = i
	} else {
		addr, _ := n.raft.LeaderWithID()
		if addr == "" {
			return ErrNoLeader
		}
		resp, err := n.callAt(ctx, string(addr), &wire{Op: opReadIndex})
		if err != nil {
			return fmt.Errorf("ask the leader: %w", err)
		}
		if resp.Err != "" {
			return fmt.Errorf("the leader: %s", resp.Err)
		}
		index = resp.Index
	}
	return n.fsm.waitApplied(ctx, index, n.raft.AppliedIndex)
}

// join asks the members named in Network.Join to add this node, until
// one does, one refuses, or ctx ends: members may still be starting.
func (n *Node) join(ctx context.Context, self string) error {
	req := &wire{Op: opAdd, ID: n.cfg.NodeID, Addr: self, Voter: !n.cfg.RAM}
	for {
		err := callMembers(ctx, n.cfg.Network.Dial, n.cfg.Network.Join, req)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errUnreachable) {
			return fmt.Errorf("join the cluster: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("join the cluster: %w", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Members returns the group's members, as this node last heard of them,
// sorted by name.
func (n *Node) Members() []Member {
	fut := n.raft.GetConfiguration()
	if fut.Error() != nil {
		return nil
	}
	var out []Member
	for _, s := range fut.Configuration().Servers {
		out = append(out, Member{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// InMajority reports whether this node is in touch with a majority of
// the disc nodes: it leads, or it has heard from the leader within the
// last few heartbeat timeouts.
func (n *Node) InMajority() bool {
	if n.raft.State() == raft.Leader {
		return true
	}
	if _, id := n.raft.LeaderWithID(); id == "" {
		return false
	}
	return time.Since(n.raft.LastContact()) < 3*leaseTimeout
}

// Leader returns the name of the member that leads, or "" if none is
// known.
func (n *Node) Leader() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// AddMember adds a node as a disc node (voter) or RAM node, or changes
// the type of a member.
func (n *Node) AddMember(ctx context.Context, id, addr string, voter bool) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	resp, err := n.call(ctx, &wire{Op: opAdd, ID: id, Addr: addr, Voter: voter})
	if err != nil {
		return err
	}
	return decodeErr(&resp)
}

// RemoveMember removes a node from the group; the last disc node cannot
// be removed.
func (n *Node) RemoveMember(ctx context.Context, id string) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	resp, err := n.call(ctx, &wire{Op: opRemove, ID: id})
	if err != nil {
		return err
	}
	return decodeErr(&resp)
}

func (n *Node) voters(except string) int {
	c := 0
	for _, m := range n.Members() {
		if m.Voter && m.ID != except {
			c++
		}
	}
	return c
}

func (n *Node) addLocal(id, addr string, voter bool) error {
	if id == "" || addr == "" {
		return errors.New("a member needs a name and an address")
	}
	var f raft.IndexFuture
	if voter {
		f = n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, n.cfg.ApplyTimeout)
	} else {
		for _, m := range n.Members() {
			if m.ID == id && m.Voter {
				if n.voters(id) == 0 {
					return fmt.Errorf("node %s cannot become a RAM node: %w", id, ErrLastDisc)
				}
				if err := n.raft.DemoteVoter(raft.ServerID(id), 0, n.cfg.ApplyTimeout).Error(); err != nil {
					return fmt.Errorf("make %s a RAM node: %w", id, err)
				}
				return nil
			}
		}
		f = n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, n.cfg.ApplyTimeout)
	}
	if err := f.Error(); err != nil {
		return fmt.Errorf("add %s to the cluster: %w", id, err)
	}
	return nil
}

func (n *Node) removeLocal(id string) error {
	found := false
	for _, m := range n.Members() {
		if m.ID == id {
			found = true
			if m.Voter && n.voters(id) == 0 {
				return fmt.Errorf("node %s cannot be removed: %w", id, ErrLastDisc)
			}
		}
	}
	if !found {
		return fmt.Errorf("%w: node %s is not a member of the cluster", ErrNotFound, id)
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("remove %s from the cluster: %w", id, err)
	}
	return nil
}

// Compact takes a Raft snapshot now, so that the log before it can be
// dropped; Raft also does so by itself as the log grows.
func (n *Node) Compact() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("snapshot the definitions: %w", err)
	}
	return nil
}

// AddRemote asks the cluster, through the members at addrs, to add the
// member id or change its type; it is how a node whose app is stopped
// changes its type.
func AddRemote(ctx context.Context, dial Dialer, addrs []string, id, addr string, voter bool) error {
	return callMembers(ctx, dial, addrs, &wire{Op: opAdd, ID: id, Addr: addr, Voter: voter})
}

// IsUnreachable reports whether err means that no member could be asked,
// as opposed to a member's refusal.
func IsUnreachable(err error) bool { return errors.Is(err, errUnreachable) }

// Recover rewrites, offline, the membership that a disc node's log in dir
// holds, keeping only the members for which keep is true: how a node
// forgets members that are gone for good (forget_cluster_node --offline,
// force_boot). The node must not be running. It returns the members
// kept.
func Recover(dir, nodeID string, keep func(Member) bool) ([]Member, error) {
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("open meta log: %w", err)
	}
	defer bolt.Close()
	logger := hclog.New(&hclog.LoggerOptions{Name: "raft", Output: io.Discard, Level: hclog.Off})
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, logger)
	if err != nil {
		return nil, fmt.Errorf("open meta snapshots: %w", err)
	}
	current, err := latestConfiguration(bolt, snaps)
	if err != nil {
		return nil, err
	}
	var next raft.Configuration
	var kept []Member
	for _, s := range current.Servers {
		m := Member{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter}
		if m.ID == nodeID || keep(m) {
			next.Servers = append(next.Servers, s)
			kept = append(kept, m)
		}
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(nodeID)
	rc.Logger = logger
	_, transport := raft.NewInmemTransport("")
	defer transport.Close()
	if err := raft.RecoverCluster(rc, newFSM(nil), bolt, bolt, snaps, transport, next); err != nil {
		return nil, fmt.Errorf("rewrite the cluster's members: %w", err)
	}
	return kept, nil
}

// latestConfiguration finds the last membership in a stopped node's log
// or, failing that, its newest snapshot.
func latestConfiguration(logs raft.LogStore, snaps raft.SnapshotStore) (raft.Configuration, error) {
	last, err := logs.LastIndex()
	if err != nil {
		return raft.Configuration{}, fmt.Errorf("read meta log: %w", err)
	}
	first, err := logs.FirstIndex()
	if err != nil {
		return raft.Configuration{}, fmt.Errorf("read meta log: %w", err)
	}
	for i := last; i >= first && i > 0; i-- {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			continue
		}
		if l.Type == raft.LogConfiguration {
			return raft.DecodeConfiguration(l.Data), nil
		}
	}
	metas, err := snaps.List()
	if err != nil {
		return raft.Configuration{}, fmt.Errorf("read meta snapshots: %w", err)
	}
	if len(metas) == 0 {
		return raft.Configuration{}, errors.New("this node has no cluster membership on disk")
	}
	return metas[0].Configuration, nil
}
