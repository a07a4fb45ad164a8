package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/warren-mq/warren/internal/cluster"
	"github.com/warren-mq/warren/internal/ctl"
	"github.com/warren-mq/warren/internal/meta"
)

// Identity implements ctl.Clustered.
func (a *app) Identity() cluster.Identity { return a.id }

// Members implements ctl.Clustered: the running definitions' members, or
// while the app is stopped, those the node remembers.
func (a *app) Members() []ctl.Member {
	if m := a.meta.Load(); m != nil {
		var out []ctl.Member
		for _, mem := range m.Members() {
			out = append(out, ctl.Member{Name: mem.ID, Addr: mem.Addr, Disc: mem.Voter})
		}
		return out
	}
	st, _ := cluster.LoadState(a.cfg.DataDir)
	out := []ctl.Member{{Name: a.cfg.NodeName, Addr: a.advertise, Disc: !st.RAM}}
	for _, p := range st.Members {
		// The types of the others are known only to the running cluster.
		out = append(out, ctl.Member{Name: p.Name, Addr: p.Addr, Disc: true})
	}
	return out
}

// appRunning refuses a cluster change while the app runs, as rabbitmqctl
// refuses it while Mnesia runs.
func (a *app) appRunning() error {
	if a.running.Load() != nil {
		return ctl.Refuse(ctl.ExitSoftware, "the broker application is running on node %s: stop it first with \"warrenctl stop_app\"", a.cfg.NodeName)
	}
	return nil
}

// peerAddr resolves a node name given to a cluster command.
func (a *app) peerAddr(ctx context.Context, name string) (cluster.NodeName, string, error) {
	self, _ := cluster.ParseNodeName(a.cfg.NodeName, "")
	n, err := cluster.ParseNodeName(name, self.Host)
	if err != nil {
		return n, "", ctl.Refuse(ctl.ExitUsage, "%v", err)
	}
	if err := n.Resolve(ctx); err != nil {
		return n, "", ctl.Refuse(ctl.ExitUnavailable, "unable to connect to node %s: %v", n, err)
	}
	return n, n.Addr(cluster.DefaultPort), nil
}

// remoteMembers asks a node for its cluster's members.
func (a *app) remoteMembers(ctx context.Context, name cluster.NodeName, addr string) ([]ctl.Member, error) {
	var resp struct {
		JSON  []ctl.Member `json:"json"`
		Error string       `json:"error"`
	}
	err := a.id.Call(ctx, addr, cluster.ServiceCtl, &ctl.Request{Command: "cluster_members"}, &resp)
	switch {
	case errors.Is(err, cluster.ErrBadCookie):
		return nil, ctl.Refuse(ctl.ExitUnavailable, "unable to connect to node %s: its cookie is different from this node's.\n * copy the cookie file of one node to the others (mode 0400) and restart them", name)
	case err != nil:
		return nil, ctl.Refuse(ctl.ExitUnavailable, "unable to connect to node %s at %s: %v\n * is the node running, and is its cluster port reachable from here?", name, addr, err)
	case resp.Error != "":
		return nil, ctl.Refuse(ctl.ExitUnavailable, "node %s: %s", name, resp.Error)
	}
	return resp.JSON, nil
}

// JoinCluster implements ctl.Clustered: like rabbitmqctl join_cluster, it
// resets the node and makes it a member of target's cluster when it
// next starts.
func (a *app) JoinCluster(ctx context.Context, target string, ram bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.appRunning(); err != nil {
		return err
	}
	name, addr, err := a.peerAddr(ctx, target)
	if err != nil {
		return err
	}
	if name.String() == a.cfg.NodeName || addr == a.advertise {
		return ctl.Refuse(ctl.ExitDataErr, "cannot cluster node with itself: %s", a.cfg.NodeName)
	}
	members, err := a.remoteMembers(ctx, name, addr)
	if err != nil {
		return err
	}
	for _, m := range members {
		if m.Name == a.cfg.NodeName {
			a.log.Info("join_cluster: the node is already a member of this cluster", "through", name.String())
			return nil
		}
	}
	if err := a.leaveLocked(ctx, false); err != nil && !errors.Is(err, errNotClustered) {
		return err
	}
	// What the node had is replaced by the cluster's definitions.
	if err := a.wipe(); err != nil {
		return err
	}
	st := cluster.State{RAM: ram}
	for _, m := range members {
		st.Members = append(st.Members, cluster.Peer{Name: m.Name, Addr: m.Addr})
	}
	if err := os.MkdirAll(a.cfg.DataDir, 0o750); err != nil {
		return err
	}
	if err := cluster.SaveState(a.cfg.DataDir, st); err != nil {
		return err
	}
	a.log.Info("node will join the cluster on its next start", "through", name.String(), "members", len(members), "ram", ram)
	return nil
}

var errNotClustered = errors.New("not clustered")

// Leave implements ctl.Clustered: reset and force_reset.
func (a *app) Leave(ctx context.Context, force bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.appRunning(); err != nil {
		return err
	}
	if err := a.leaveLocked(ctx, force); err != nil && !errors.Is(err, errNotClustered) {
		return err
	}
	return a.wipe()
}

// leaveLocked has the other members forget this node. It returns
// errNotClustered if there are none.
func (a *app) leaveLocked(ctx context.Context, force bool) error {
	st, err := cluster.LoadState(a.cfg.DataDir)
	if err != nil || len(st.Members) == 0 {
		return errNotClustered
	}
	if force {
		return nil
	}
	err = meta.RemoveRemote(ctx, a.dialMeta, st.Addrs(), a.cfg.NodeName)
	switch {
	case err == nil, errors.Is(err, meta.ErrNotFound):
		return nil
	case errors.Is(err, meta.ErrLastDisc):
		return ctl.Refuse(ctl.ExitSoftware, "%s is the only disc node of its cluster and cannot leave it: make another node a disc node first, or use force_reset", a.cfg.NodeName)
	case meta.IsUnreachable(err):
		return ctl.Refuse(ctl.ExitSoftware, "none of the cluster's other nodes is running, so they cannot be told that %s leaves: start one of them, or use \"warrenctl force_reset\" (the others will still list this node until \"forget_cluster_node\")\n%v", a.cfg.NodeName, err)
	}
	return err
}

// ForgetNode implements ctl.Clustered: forget_cluster_node.
func (a *app) ForgetNode(ctx context.Context, name string, offline bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	n, err := cluster.ParseNodeName(name, "")
	if err != nil {
		return ctl.Refuse(ctl.ExitUsage, "%v", err)
	}
	target := n.String()
	if target == a.cfg.NodeName {
		return ctl.Refuse(ctl.ExitSoftware, "cannot remove node %s: it is the node this command runs on; use \"warrenctl reset\" to leave the cluster", target)
	}
	if offline {
		if a.running.Load() != nil {
			return ctl.Refuse(ctl.ExitUnavailable, "the broker application is running on node %s: --offline is for a node whose app is stopped. Drop --offline, or stop the app first", a.cfg.NodeName)
		}
		st, err := cluster.LoadState(a.cfg.DataDir)
		if err != nil {
			return err
		}
		if st.RAM {
			return ctl.Refuse(ctl.ExitSoftware, "%s is a RAM node: it keeps no membership to rewrite; run forget_cluster_node on a disc node", a.cfg.NodeName)
		}
		found := false
		if _, err := meta.Recover(filepath.Join(a.cfg.DataDir, "meta"), a.cfg.NodeName, func(m meta.Member) bool {
			if m.ID == target {
				found = true
				return false
			}
			return true
		}); err != nil {
			return err
		}
		if !found {
			return ctl.Refuse(ctl.ExitSoftware, "node %s is not a member of the cluster", target)
		}
		var keep []cluster.Peer
		for _, p := range st.Members {
			if p.Name != target {
				keep = append(keep, p)
			}
		}
		st.Members = keep
		return cluster.SaveState(a.cfg.DataDir, st)
	}
	m := a.meta.Load()
	if m == nil {
		return ctl.Refuse(ctl.ExitUnavailable, "the broker application is not running on node %s: start it, or use --offline", a.cfg.NodeName)
	}
	var addr string
	for _, mem := range m.Members() {
		if mem.ID == target {
			addr = mem.Addr
		}
	}
	if addr == "" {
		return ctl.Refuse(ctl.ExitSoftware, "node %s is not a member of the cluster", target)
	}
	var resp struct {
		JSON struct {
			Running bool `json:"running"`
		} `json:"json"`
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err = a.id.Call(cctx, addr, cluster.ServiceCtl, &ctl.Request{Command: "node_status"}, &resp)
	cancel()
	if err == nil && resp.JSON.Running {
		return ctl.Refuse(ctl.ExitSoftware, "node %s is running: stop its app with \"warrenctl -n %s stop_app\" before it can be removed", target, target)
	}
	if err := m.RemoveMember(ctx, target); err != nil {
		if errors.Is(err, meta.ErrLastDisc) {
			return ctl.Refuse(ctl.ExitSoftware, "%v", err)
		}
		if errors.Is(err, meta.ErrNoLeader) && onlyOtherVoter(m.Members(), a.cfg.NodeName, target) {
			return a.forgetLastPeer(ctx, target)
		}
		return err
	}
	return a.rememberMembers(m, false)
}

// onlyOtherVoter reports whether target is the one disc node besides
// self: with it stopped, no majority is left to commit its removal.
func onlyOtherVoter(members []meta.Member, self, target string) bool {
	var voters []string
	for _, m := range members {
		if m.Voter {
			voters = append(voters, m.ID)
		}
	}
	return len(voters) == 2 && slices.Contains(voters, self) && slices.Contains(voters, target)
}

// forgetLastPeer removes the other disc node of a two-disc-node cluster
// while it is stopped. Raft cannot commit that without it, so this node
// restarts its app with the membership rewritten, as
// forget_cluster_node --offline does: what RabbitMQ allows on any node
// of a cluster whose other disc node is down. The forgotten node must be
// reset before it joins again; its old membership is refused.
func (a *app) forgetLastPeer(ctx context.Context, target string) error {
	a.log.Warn("the other disc node is stopped and Raft has no majority to remove it: restarting the app with it removed", "node", target)
	if err := a.stopLocked(ctx); err != nil {
		return err
	}
	if _, err := meta.Recover(filepath.Join(a.cfg.DataDir, "meta"), a.cfg.NodeName, func(m meta.Member) bool { return m.ID != target }); err != nil {
		return err
	}
	st, err := cluster.LoadState(a.cfg.DataDir)
	if err != nil {
		return err
	}
	st.Members = slices.DeleteFunc(st.Members, func(p cluster.Peer) bool { return p.Name == target })
	if err := cluster.SaveState(a.cfg.DataDir, st); err != nil {
		return err
	}
	return a.startLocked(ctx)
}

// ChangeNodeType implements ctl.Clustered: change_cluster_node_type. A
// disc node becomes a RAM node at once (the cluster refuses if it is the
// last disc node) and forgets its log; a RAM node becomes a disc node
// when it next starts, so that the cluster never waits on a stopped voter.
func (a *app) ChangeNodeType(ctx context.Context, ram bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.appRunning(); err != nil {
		return err
	}
	st, err := cluster.LoadState(a.cfg.DataDir)
	if err != nil {
		return err
	}
	if len(st.Members) == 0 {
		return ctl.Refuse(ctl.ExitSoftware, "node %s is not clustered: a node on its own is always a disc node", a.cfg.NodeName)
	}
	if st.RAM == ram {
		return nil
	}
	if ram {
		err := meta.AddRemote(ctx, a.dialMeta, st.Addrs(), a.cfg.NodeName, a.advertise, false)
		if errors.Is(err, meta.ErrLastDisc) {
			return ctl.Refuse(ctl.ExitSoftware, "cannot change the type of node %s to ram: it is the only disc node of the cluster, and a cluster needs at least one", a.cfg.NodeName)
		}
		if err != nil {
			return err
		}
		if err := os.RemoveAll(filepath.Join(a.cfg.DataDir, "meta")); err != nil {
			return err
		}
	}
	st.RAM = ram
	return cluster.SaveState(a.cfg.DataDir, st)
}

// UpdateClusterNodes implements ctl.Clustered: the node learns the
// members from another node, to find them on its next start.
func (a *app) UpdateClusterNodes(ctx context.Context, from string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.appRunning(); err != nil {
		return err
	}
	name, addr, err := a.peerAddr(ctx, from)
	if err != nil {
		return err
	}
	members, err := a.remoteMembers(ctx, name, addr)
	if err != nil {
		return err
	}
	st, err := cluster.LoadState(a.cfg.DataDir)
	if err != nil {
		return err
	}
	st.Members = nil
	for _, m := range members {
		if m.Name != a.cfg.NodeName {
			st.Members = append(st.Members, cluster.Peer{Name: m.Name, Addr: m.Addr})
		}
	}
	return cluster.SaveState(a.cfg.DataDir, st)
}

// ForceBoot implements ctl.Clustered: the node's next start forms a
// cluster with itself and the disc nodes that answer now, when the
// majority is gone for good.
func (a *app) ForceBoot(ctx context.Context) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.appRunning(); err != nil {
		return nil, err
	}
	st, err := cluster.LoadState(a.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if st.RAM {
		return nil, ctl.Refuse(ctl.ExitSoftware, "%s is a RAM node: run force_boot on a disc node", a.cfg.NodeName)
	}
	up := map[string]bool{}
	for _, p := range st.Members {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var resp ctl.Response
		err := a.id.Call(cctx, p.Addr, cluster.ServiceCtl, &ctl.Request{Command: "ping"}, &resp)
		cancel()
		up[p.Name] = err == nil
	}
	kept, err := meta.Recover(filepath.Join(a.cfg.DataDir, "meta"), a.cfg.NodeName, func(m meta.Member) bool { return up[m.ID] })
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range kept {
		names = append(names, m.ID)
	}
	a.log.Warn("force_boot: the next start forms a cluster of " + strings.Join(names, ", "))
	return names, nil
}
