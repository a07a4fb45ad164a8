package vrrp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// instanceQueueLen bounds the adverts waiting for an instance. A flood of
// valid-looking adverts beyond it is dropped (and counted), never queued
// without end.
const instanceQueueLen = 256

// instance runs one vrrp_instance: its goroutine owns the Machine and carries
// out its actions. Other goroutines talk to it through inbox, trackCh,
// syncCh and updates, and read it through view and stats. The daemon starts
// it with start and ends it with stop.
type instance struct {
	// instanceSettings belong to the instance's goroutine, which replaces
	// them on a reload; other goroutines read view instead.
	instanceSettings
	log     *slog.Logger
	sock    advertConn
	machine *Machine // owned by run
	origin  time.Time
	notify  *notifier
	group   *syncGroup // nil unless in a vrrp_sync_group; fixed for the instance's life

	cancel context.CancelFunc // set by start
	done   chan struct{}      // closed when run returns

	inbox   chan Event
	trackCh chan struct{} // capacity 1: "re-read the trackers"
	syncCh  chan struct{} // capacity 1: "the sync group has an event for you"
	updates chan *instanceUpdate

	// view is what the receiver and the status read of the settings,
	// replaced whole (never modified) when they change.
	view atomic.Pointer[instanceView]

	mu    sync.Mutex
	stats instanceStats // guarded by mu
	// heard records when each unicast peer was last heard; guarded by mu.
	heard map[netip.Addr]time.Time
}

// instanceSettings is an instance's configuration resolved against the
// system. A reload replaces it in place; src never changes (a new source
// address makes a new instance).
type instanceSettings struct {
	cfg    *InstanceConfig
	global *Global
	src    netip.Addr   // source of our adverts
	dsts   []netip.Addr // the multicast group or the unicast peers
	vips   *vipSet      // virtual_ipaddress and virtual_ipaddress_excluded
	addrs  []netip.Addr // virtual_ipaddress: the advert's address list
	auth   [authDataLen]byte
	tracks []trackRef
	ifaces []ifaceRef
}

// instanceView is the part of the settings other goroutines read.
type instanceView struct {
	cfg    *InstanceConfig
	global *Global
	src    netip.Addr
	addrs  []netip.Addr
	auth   [authDataLen]byte
}

// instanceUpdate carries reloaded settings to the instance's goroutine;
// done is closed once they are in effect. With release set only the
// addresses the settings no longer have are given up.
type instanceUpdate struct {
	settings *instanceSettings
	release  bool
	done     chan struct{}
}

type trackRef struct {
	t       *scriptTracker
	weight  int
	reverse bool
}

type ifaceRef struct {
	name   string
	weight int
	up     func() bool
}

// instanceStats is what the status dump shows of an instance.
type instanceStats struct {
	State           State
	BasePriority    int
	Priority        int
	Master          netip.Addr
	MasterPriority  int
	AdvertsSent     uint64
	AdvertsReceived uint64
	Transitions     uint64
	Bad             map[DropReason]uint64
	UnknownPeer     uint64
	OtherMaster     uint64
	PeersUnheard    uint64
	SendErrors      uint64
	QueueOverflow   uint64
	Fault           bool
	Since           time.Time
}

func (in *instance) now() time.Duration { return time.Since(in.origin) }

// config returns the configuration in effect; any goroutine may call it.
func (in *instance) config() *InstanceConfig { return in.view.Load().cfg }

func (in *instance) publishView() {
	in.view.Store(&instanceView{cfg: in.cfg, global: in.global, src: in.src, addrs: in.addrs, auth: in.auth})
}

func (in *instance) machineConfig() MachineConfig {
	ic := in.cfg
	return MachineConfig{
		VRID: uint8(ic.VRID), Version: ic.Version, Priority: uint8(ic.Priority), Interval: ic.AdvertInt,
		NoPreempt: ic.NoPreempt, PreemptDelay: ic.PreemptDelay, LocalAddr: in.src,
		Sync: ic.SyncGroup != "",
	}
}

// start runs the instance on a goroutine counted by wg until stop, or
// until parent is done.
func (in *instance) start(parent context.Context, wg *sync.WaitGroup) {
	ctx, cancel := context.WithCancel(parent)
	in.cancel, in.done = cancel, make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(in.done)
		in.run(ctx)
	}()
}

// stop ends a started instance gracefully (a master sends priority 0 and
// removes its addresses) and waits for its goroutine.
func (in *instance) stop() {
	in.cancel()
	<-in.done
}

// update hands reloaded settings to the running instance and waits until
// they are in effect, or until the instance has stopped.
func (in *instance) update(s *instanceSettings) {
	in.send(&instanceUpdate{settings: s, done: make(chan struct{})})
}

// release has the running instance give up the addresses s no longer has
// (a master takes them off its interfaces) and waits until it has. A
// reload releases for every kept instance before any adds its new
// addresses, so an address moving from one instance to another is never
// removed after the other added it.
func (in *instance) release(s *instanceSettings) {
	in.send(&instanceUpdate{settings: s, release: true, done: make(chan struct{})})
}

func (in *instance) send(u *instanceUpdate) {
	select {
	case in.updates <- u:
	case <-in.done:
		return
	}
	select {
	case <-u.done:
	case <-in.done:
	}
}

func (in *instance) countBad(r DropReason) {
	in.mu.Lock()
	in.stats.Bad[r]++
	in.mu.Unlock()
}

// deliver hands a validated advert to the instance without blocking.
func (in *instance) deliver(src netip.Addr, p Packet) {
	cfg := in.view.Load().cfg
	in.mu.Lock()
	in.stats.AdvertsReceived++
	if len(cfg.UnicastPeers) > 0 {
		if slices.Contains(cfg.UnicastPeers, src) {
			in.heard[src] = time.Now()
		} else {
			in.stats.UnknownPeer++
			n := in.stats.UnknownPeer
			in.mu.Unlock()
			if n&(n-1) == 0 { // log the 1st, 2nd, 4th, 8th... so a storm stays readable
				in.log.Warn("advert for our VRID from an address not in unicast_peer: check both sides' unicast_peer (split brain risk)",
					"from", src, "count", n, "dropped", cfg.CheckUnicastSrc)
			}
			if cfg.CheckUnicastSrc {
				return
			}
			in.mu.Lock()
		}
	}
	in.mu.Unlock()
	select {
	case in.inbox <- Event{Kind: EventAdvert, From: src, Priority: p.Priority, Interval: p.Interval}:
	default:
		in.mu.Lock()
		in.stats.QueueOverflow++
		in.mu.Unlock()
	}
}

// check applies the per-instance checks of a decoded advert and returns the
// drop reason, or "" when the advert is acceptable.
func (in *instance) check(r received, p Packet) DropReason {
	v := in.view.Load()
	if p.Version != v.cfg.Version {
		return DropWrongVersion
	}
	if len(v.cfg.UnicastPeers) == 0 && r.ttl != TTL {
		return DropTTL
	}
	if p.Version == 2 {
		if p.AuthType != v.cfg.AuthType {
			return DropAuthType
		}
		if p.AuthType == AuthPass && p.AuthData != v.auth {
			return DropAuthPass
		}
		if p.Interval != v.cfg.AdvertInt {
			return DropInterval
		}
	}
	if !v.global.SkipCheckAdvAddr && p.Priority != PriorityStop && !sameAddrs(p.Addrs, v.addrs) {
		return DropAddrList
	}
	return ""
}

func sameAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// effective computes the priority and fault state from the trackers, as
// keepalived does: a weighted tracker adds its weight when up (positive
// weight) or when down (negative weight); an unweighted one that fails puts
// the instance in FAULT.
func (in *instance) effective() (uint8, bool) {
	prio := in.cfg.Priority
	fault := false
	for _, t := range in.tracks {
		ok := t.t.result()
		if t.reverse {
			ok = !ok
		}
		switch {
		case t.weight == 0 && !ok:
			fault = true
		case t.weight > 0 && ok, t.weight < 0 && !ok:
			prio += t.weight
		}
	}
	for _, f := range in.ifaces {
		ok := f.up()
		switch {
		case f.weight == 0 && !ok:
			fault = true
		case f.weight > 0 && ok, f.weight < 0 && !ok:
			prio += f.weight
		}
	}
	if in.group != nil && in.group.setFault(in, fault) {
		fault = true // another member of the sync group is in FAULT
	}
	if in.cfg.Priority == PriorityOwner {
		return PriorityOwner, fault
	}
	return uint8(min(max(prio, 1), 254)), fault
}

// trackChanged asks the instance to re-read its trackers; it never blocks.
func (in *instance) trackChanged() {
	select {
	case in.trackCh <- struct{}{}:
	default:
	}
}

// run is the instance's owner loop. It returns after a graceful stop: a
// master sends priority 0 and removes its addresses.
func (in *instance) run(ctx context.Context) {
	in.cleanStale()
	prio, fault := in.effective()
	if fault {
		in.exec(in.machine.Step(in.now(), Event{Kind: EventFault}))
	}
	if prio != in.cfg.BasePriority() {
		in.machine.Step(in.now(), Event{Kind: EventPriority, Priority: prio})
	}
	in.exec(in.machine.Step(in.now(), Event{Kind: EventStart}))
	in.publish()
	defer func() { in.vips.close() }() // the set in use at exit: a reload replaces it

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var garpC <-chan time.Time
	var garpTimer *time.Timer
	stopGARP := func() {
		if garpTimer != nil {
			garpTimer.Stop()
			garpTimer, garpC = nil, nil
		}
	}
	defer stopGARP()
	peerCheck := time.NewTicker(in.peerCheckInterval())
	defer peerCheck.Stop()
	var masterSince time.Time
	warned := map[netip.Addr]bool{}

	for {
		var updated chan struct{}
		wasMaster := in.machine.State() == StateMaster
		if d, ok := in.machine.Deadline(); ok {
			timer.Reset(max(d-in.now(), 0))
		} else {
			timer.Reset(time.Hour)
		}
		var acts []Action
		select {
		case <-ctx.Done():
			in.exec(in.machine.Step(in.now(), Event{Kind: EventStop}))
			in.publish()
			return
		case ev := <-in.inbox:
			acts = in.machine.Step(in.now(), ev)
		case <-in.trackCh:
			prio, fault := in.effective()
			if fault != in.machine.fault {
				k := EventFaultClear
				if fault {
					k = EventFault
				}
				acts = append(acts, in.machine.Step(in.now(), Event{Kind: k})...)
			}
			if prio != in.machine.Priority() {
				in.log.Info("effective priority changed", "from", in.machine.Priority(), "to", prio)
				acts = append(acts, in.machine.Step(in.now(), Event{Kind: EventPriority, Priority: prio})...)
			}
		case <-timer.C:
			// Adverts that arrived before the deadline count first: select
			// picks at random among ready cases, and a master's advert must
			// not lose to our own master down timer.
			for drained := false; !drained; {
				select {
				case ev := <-in.inbox:
					acts = append(acts, in.machine.Step(in.now(), ev)...)
				default:
					drained = true
				}
			}
			acts = append(acts, in.machine.Step(in.now(), Event{Kind: EventTick})...)
		case <-in.syncCh:
			if ev, ok := in.group.take(in); ok {
				acts = in.machine.Step(in.now(), ev)
			}
		case <-garpC:
			garpTimer, garpC = nil, nil
			if in.machine.State() == StateMaster {
				in.garpBurst()
			}
		case <-peerCheck.C:
			if wasMaster {
				in.checkPeers(masterSince, warned)
			}
		case u := <-in.updates:
			if u.release {
				in.releaseVIPs(u.settings)
			} else {
				acts = in.reconfigure(u.settings)
				peerCheck.Reset(in.peerCheckInterval())
			}
			updated = u.done
		}
		in.exec(acts)
		isMaster := in.machine.State() == StateMaster
		if in.group != nil {
			in.group.setReady(in, isMaster || in.machine.WantMaster())
		}
		if isMaster && !wasMaster {
			masterSince = time.Now()
			if d := in.garpMasterDelay(); d > 0 {
				stopGARP()
				garpTimer = time.NewTimer(d)
				garpC = garpTimer.C
			}
		}
		if !isMaster && wasMaster {
			stopGARP()
		}
		in.publish()
		if updated != nil {
			close(updated)
		}
	}
}

// releaseVIPs takes the addresses s does not have out of the running set
// and, on a master, off the interfaces: the set in use holds from then on
// only addresses the instance keeps, whatever state it enters before
// reconfigure.
func (in *instance) releaseVIPs(s *instanceSettings) {
	gone := in.vips.without(s.vips)
	if len(gone.vips) == 0 {
		return
	}
	if in.machine.State() == StateMaster {
		if err := gone.remove(); err != nil {
			in.log.Error("removing virtual addresses", "err", err)
		}
	}
	in.vips.vips = slices.DeleteFunc(in.vips.vips, func(v resolvedVIP) bool {
		return slices.ContainsFunc(gone.vips, func(w resolvedVIP) bool { return w.Prefix == v.Prefix && w.Dev == v.Dev })
	})
}

// reconfigure puts reloaded settings in effect, keeping the state. A master
// removes the addresses no longer configured, adds the new ones and, when
// there are new ones, announces them all, as keepalived does after a
// reload; then it advertises at once (the returned actions). The trackers
// and priorities are re-read.
func (in *instance) reconfigure(s *instanceSettings) []Action {
	old := in.instanceSettings
	master := in.machine.State() == StateMaster
	var added bool
	if master {
		if err := old.vips.without(s.vips).remove(); err != nil {
			in.log.Error("removing virtual addresses", "err", err)
		}
		fresh := s.vips.without(old.vips)
		added = len(fresh.vips) > 0
		if err := s.vips.add(); err != nil {
			in.log.Error("adding virtual addresses", "err", err)
		}
	}
	old.vips.close()
	in.instanceSettings = *s
	in.publishView()
	in.mu.Lock()
	in.stats.BasePriority = s.cfg.Priority
	in.mu.Unlock()
	if added {
		in.garpBurst()
	}
	prio, fault := in.effective()
	var acts []Action
	if fault && !in.machine.fault {
		acts = in.machine.Step(in.now(), Event{Kind: EventFault})
	}
	acts = append(acts, in.machine.Reconfigure(in.now(), in.machineConfig(), prio)...)
	// Leaving FAULT after the new settings: the backup timer it starts
	// uses the new interval and priority.
	if !fault && in.machine.fault {
		acts = append(acts, in.machine.Step(in.now(), Event{Kind: EventFaultClear})...)
	}
	in.log.Info("settings reloaded", "state", in.machine.State().String(), "priority", prio)
	return acts
}

// BasePriority is the configured priority as a uint8.
func (c *InstanceConfig) BasePriority() uint8 { return uint8(c.Priority) }

func (in *instance) peerCheckInterval() time.Duration {
	return max(3*in.cfg.AdvertInt, 100*time.Millisecond)
}

// checkPeers warns, once per peer and process, about unicast peers never
// heard since start while we have been master for a while: with a wrong
// unicast_peer on their side (or ours) they cannot hear us either, and both
// sides end up master. A healthy peer that has only ever been backup is
// silent too, so this is a hint to check, counted in peers_unheard.
func (in *instance) checkPeers(since time.Time, warned map[netip.Addr]bool) {
	if len(in.cfg.UnicastPeers) == 0 || time.Since(since) < 3*in.machine.MasterDownInterval() {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, p := range in.cfg.UnicastPeers {
		if _, ok := in.heard[p]; ok || warned[p] {
			continue
		}
		warned[p] = true
		in.stats.PeersUnheard++
		in.log.Warn("unicast peer never heard while we are master: if it runs, its unicast_peer, VRID or auth may not match ours (split brain risk)",
			"peer", p)
	}
}

func (in *instance) garpMasterDelay() time.Duration {
	if in.cfg.GARPDelaySet {
		return in.cfg.GARPMasterDelay
	}
	return in.global.GARPMasterDelay
}

func (in *instance) garpRepeat() int {
	if in.cfg.GARPMasterRepeat > 0 {
		return in.cfg.GARPMasterRepeat
	}
	return max(in.global.GARPMasterRepeat, 1)
}

// garpBurst sends the configured number of gratuitous ARPs, and of
// unsolicited neighbour adverts for IPv6 VIPs. The pauses between them
// (vrrp_garp_interval, vrrp_gna_interval) are at most a second, so the
// burst runs inline; with no pause it takes microseconds.
func (in *instance) garpBurst() {
	for i := range in.garpRepeat() {
		if i > 0 && in.global.GARPInterval > 0 {
			time.Sleep(in.global.GARPInterval)
		}
		if err := in.vips.sendGARP(); err != nil {
			in.log.Warn("gratuitous ARP failed", "err", err)
			break
		}
	}
	if !in.vips.hasIPv6() {
		return
	}
	for i := range in.garpRepeat() {
		if i > 0 && in.global.GNAInterval > 0 {
			time.Sleep(in.global.GNAInterval)
		}
		if err := in.vips.sendNA(); err != nil {
			in.log.Warn("unsolicited neighbour advert failed", "err", err)
			return
		}
	}
}

// cleanStale removes copies of our VIPs left on the interfaces, typically by
// a daemon that was SIGKILLed while master, before we join as BACKUP.
func (in *instance) cleanStale() {
	present, err := in.vips.present()
	if err != nil {
		in.log.Warn("cannot list addresses", "err", err)
		return
	}
	if len(present) == 0 {
		return
	}
	in.log.Warn("removing stale virtual addresses left on the interface", "vips", fmt.Sprint(present))
	if err := in.vips.remove(); err != nil {
		in.log.Error("removing stale virtual addresses", "err", err)
	}
}

func (in *instance) exec(acts []Action) {
	for _, a := range acts {
		switch a.Kind {
		case ActSendAdvert:
			in.sendAdvert(a.Priority)
		case ActAddVIPs:
			if err := in.vips.add(); err != nil {
				in.log.Error("adding virtual addresses", "err", err)
			}
		case ActRemoveVIPs:
			if err := in.vips.remove(); err != nil {
				in.log.Error("removing virtual addresses", "err", err)
			}
		case ActGARP:
			in.garpBurst()
		case ActTransition:
			in.transition(a)
		case ActWantMaster:
			in.log.Debug("master down timer ran out; waiting for the sync group", "group", in.cfg.SyncGroup)
		case ActOtherMaster:
			in.mu.Lock()
			in.stats.OtherMaster++
			in.mu.Unlock()
			in.log.Warn("another master with lower priority for our VRID: check its config (split brain)",
				"peer", a.Peer, "peer_priority", a.PeerPrio, "priority", in.machine.Priority())
		}
	}
}

func (in *instance) sendAdvert(prio uint8) {
	p := Packet{Version: in.cfg.Version, VRID: uint8(in.cfg.VRID), Priority: prio,
		Interval: in.cfg.AdvertInt, AuthType: in.cfg.AuthType, AuthData: in.auth, Addrs: in.addrs}
	var buf [512]byte
	for _, dst := range in.dsts {
		msg, err := p.Marshal(buf[:0], in.src, dst)
		if err == nil {
			err = in.sock.send(in.src, dst, msg)
		}
		in.mu.Lock()
		if err != nil {
			in.stats.SendErrors++
		} else {
			in.stats.AdvertsSent++
		}
		n := in.stats.SendErrors
		in.mu.Unlock()
		if err != nil && n&(n-1) == 0 {
			in.log.Warn("sending advert", "err", err, "count", n)
		}
	}
}

func (in *instance) transition(a Action) {
	prio := in.machine.Priority()
	in.log.Info("entering "+a.To.String()+" state", "from", a.From.String(), "priority", prio)
	in.mu.Lock()
	in.stats.Transitions++
	in.stats.Since = time.Now()
	in.mu.Unlock()
	in.notify.run(in.cfg.Name, []string{notifyFor(in.cfg.Notify, a.To), in.cfg.Notify.Any},
		[][]string{nil, {"INSTANCE", in.cfg.Name, a.To.String(), fmt.Sprint(prio)}})
	if in.group != nil {
		in.group.memberState(in, a.From, a.To)
	}
}

// publish copies the machine's view into the status.
func (in *instance) publish() {
	addr, mprio := in.machine.Master()
	in.mu.Lock()
	in.stats.State = in.machine.State()
	in.stats.Priority = int(in.machine.Priority())
	in.stats.Master, in.stats.MasterPriority = addr, int(mprio)
	in.stats.Fault = in.machine.fault
	in.mu.Unlock()
}

// snapshot returns a copy of the status.
func (in *instance) snapshot() InstanceStatus {
	in.mu.Lock()
	defer in.mu.Unlock()
	v := in.view.Load()
	cfg := v.cfg
	s := InstanceStatus{Name: cfg.Name, Interface: cfg.Interface, VRID: cfg.VRID,
		Version: cfg.Version, Src: v.src, AdvertInt: cfg.AdvertInt, instanceStats: in.stats}
	s.Bad = make(map[DropReason]uint64, len(in.stats.Bad))
	for k, v := range in.stats.Bad {
		s.Bad[k] = v
	}
	return s
}
