package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"
)

// plan is a configuration made ready to run: sockets of new links are
// open, interfaces and addresses resolved, new trackers made, and what
// happens to each running instance decided. Nothing runs and nothing has
// been sent until Run applies it; discard releases what it opened.
type plan struct {
	cfg      *Config
	runner   *scriptRunner
	trackers map[string]*scriptTracker // every tracker of cfg, kept or new
	fresh    []*scriptTracker          // the new ones, to start
	links    map[linkKey]*link         // new links, to start receivers on
	stop     []*instance               // running instances to stop
	update   map[*instance]*instanceSettings
	start    []*instance // new instances, in configuration order
}

func (p *plan) discard(log *slog.Logger) {
	for _, l := range p.links {
		if err := l.sock.close(); err != nil {
			log.Warn("closing socket", "interface", l.key.String(), "err", err)
		}
	}
}

// build makes a plan for cfg against the running set (empty before Run).
// An instance whose name still exists keeps running with the new settings
// unless its interface, family, VRID, version, unicast_src_ip or sync group
// changed: then it is stopped and started again, as are all members of a
// sync group whose definition changed. On error nothing is left open.
func (d *Daemon) build(cfg *Config) (*plan, error) {
	runner, err := newScriptRunner(cfg.Global.ScriptSecurity, cfg.Global.ScriptUser)
	if err != nil {
		return nil, fmt.Errorf("global_defs: %w", err)
	}
	p := &plan{cfg: cfg, runner: runner, trackers: map[string]*scriptTracker{},
		links: map[linkKey]*link{}, update: map[*instance]*instanceSettings{}}
	ok := false
	defer func() {
		if !ok {
			p.discard(d.log)
		}
	}()
	sameRunner := d.cfg != nil && d.cfg.Global.ScriptSecurity == cfg.Global.ScriptSecurity &&
		d.cfg.Global.ScriptUser == cfg.Global.ScriptUser
	for _, sc := range cfg.Scripts {
		if t := d.trackers[sc.Name]; t != nil && sameRunner && sameScript(t.cfg, sc) {
			p.trackers[sc.Name] = t // unchanged: its result carries over
			continue
		}
		t, err := newScriptTracker(sc, runner, d.log)
		if err != nil {
			// keepalived disables a script it cannot run (missing, or
			// insecure under enable_script_security) and carries on.
			d.log.Error("vrrp_script disabled: instances tracking it ignore it", "script", sc.Name, "at", sc.Pos.String(), "err", err)
			continue
		}
		p.trackers[sc.Name] = t
		p.fresh = append(p.fresh, t)
	}

	running := map[string]*instance{}
	for _, in := range d.instances {
		running[in.config().Name] = in
	}
	groupOf := func(c *Config, name string) string {
		for _, g := range c.SyncGroups {
			if g.Name == name {
				a := *g
				a.Pos = Pos{}
				return fmt.Sprintf("%+v", a)
			}
		}
		return ""
	}
	// restart holds the names of instances that cannot change in place,
	// and changedGroups the sync groups whose members must all restart.
	restart := map[string]bool{}
	changedGroups := map[string]bool{}
	// No virtual address may become a source address: neither one of the
	// new configuration nor one a running master still holds (or a killed
	// daemon left behind) until apply removes it.
	virtual := map[netip.Addr]bool{}
	addVirtual := func(ic *InstanceConfig) {
		for _, v := range slices.Concat(ic.VIPs, ic.ExcludedVIPs) {
			virtual[v.Prefix.Addr().WithZone("")] = true
		}
	}
	for _, ic := range cfg.Instances {
		addVirtual(ic)
	}
	for _, in := range d.instances {
		addVirtual(in.config())
	}
	var errs []error
	settings := map[string]*instanceSettings{}
	for _, ic := range cfg.Instances {
		// A kept instance keeps its source address unless unicast_src_ip
		// changed: looking it up again would refuse the reload while an
		// IPv6 interface is down (no link-local address then).
		var keep netip.Addr
		if old := running[ic.Name]; old != nil {
			if o := old.config(); o.Interface == ic.Interface && o.IPv6 == ic.IPv6 && o.UnicastSrc == ic.UnicastSrc {
				keep = old.view.Load().src
			}
		}
		s, err := d.settingsFor(ic, &cfg.Global, p.trackers, virtual, keep)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: vrrp_instance %s: %w", ic.Pos, ic.Name, err))
			continue
		}
		settings[ic.Name] = s
		old := running[ic.Name]
		if old == nil {
			continue
		}
		o := old.config()
		if o.Interface != ic.Interface || o.IPv6 != ic.IPv6 || o.VRID != ic.VRID || o.Version != ic.Version ||
			old.view.Load().src != s.src || o.SyncGroup != ic.SyncGroup ||
			(ic.SyncGroup != "" && groupOf(d.cfg, ic.SyncGroup) != groupOf(cfg, ic.SyncGroup)) {
			restart[ic.Name] = true
			changedGroups[o.SyncGroup] = true
			changedGroups[ic.SyncGroup] = true
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	delete(changedGroups, "")
	for _, in := range d.instances {
		if settings[in.config().Name] == nil || changedGroups[in.config().SyncGroup] {
			restart[in.config().Name] = true
		}
	}
	for _, ic := range cfg.Instances {
		if changedGroups[ic.SyncGroup] {
			restart[ic.Name] = true
		}
	}

	for _, in := range d.instances {
		if restart[in.config().Name] {
			p.stop = append(p.stop, in)
		} else {
			p.update[in] = settings[in.config().Name]
		}
	}
	stopping := map[*instance]bool{}
	for _, in := range p.stop {
		stopping[in] = true
	}
	groups := map[string]*syncGroup{}
	// claimed holds the VRIDs the new instances take on each link: a link's
	// byID knows only the running ones until apply.
	claimed := map[linkKey]map[uint8]string{}
	for _, ic := range cfg.Instances {
		if running[ic.Name] != nil && !restart[ic.Name] {
			continue
		}
		s := settings[ic.Name]
		key := linkKey{name: ic.Interface, ipv6: ic.IPv6}
		l := d.links[key]
		if l == nil {
			l = p.links[key]
		}
		if l == nil {
			ifi, err := net.InterfaceByName(ic.Interface)
			if err != nil {
				return nil, fmt.Errorf("%s: vrrp_instance %s: interface %s: %w", ic.Pos, ic.Name, ic.Interface, err)
			}
			var sock advertConn
			if ic.IPv6 {
				sock, err = openRawSocket6(ifi)
			} else {
				sock, err = openRawSocket(ifi)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: vrrp_instance %s: %w", ic.Pos, ic.Name, err)
			}
			l = &link{name: ic.Interface, key: key, sock: sock, byID: map[uint8]*instance{}, bad: map[DropReason]uint64{}}
			p.links[key] = l
		}
		if o := l.byID[uint8(ic.VRID)]; o != nil && !stopping[o] {
			return nil, fmt.Errorf("%s: vrrp_instance %s: virtual_router_id %d already used on %s by %s", ic.Pos, ic.Name, ic.VRID, key, o.config().Name)
		}
		if claimed[key] == nil {
			claimed[key] = map[uint8]string{}
		}
		if o, dup := claimed[key][uint8(ic.VRID)]; dup {
			return nil, fmt.Errorf("%s: vrrp_instance %s: virtual_router_id %d already used on %s by %s", ic.Pos, ic.Name, ic.VRID, key, o)
		}
		claimed[key][uint8(ic.VRID)] = ic.Name
		in := d.newInstance(s, l)
		if gc := ic.SyncGroup; gc != "" {
			g := groups[gc]
			if g == nil {
				for _, c := range cfg.SyncGroups {
					if c.Name == gc {
						g = newSyncGroup(c, d.notify)
					}
				}
				groups[gc] = g
			}
			g.members = append(g.members, in)
			in.group = g
		}
		p.start = append(p.start, in)
	}
	ok = true
	return p, nil
}

// sameScript reports whether two vrrp_script definitions differ only in
// where they were written.
func sameScript(a, b *ScriptConfig) bool {
	x, y := *a, *b
	x.Pos, y.Pos = Pos{}, Pos{}
	return x == y
}

// settingsFor resolves an instance's configuration against the system:
// interfaces, addresses, its source address and its trackers. The source is
// src when valid, else unicast_src_ip, else looked up on the interface
// and never one of the virtual addresses.
func (d *Daemon) settingsFor(ic *InstanceConfig, g *Global, trackers map[string]*scriptTracker, virtual map[netip.Addr]bool, src netip.Addr) (*instanceSettings, error) {
	if _, err := net.InterfaceByName(ic.Interface); err != nil {
		return nil, fmt.Errorf("interface %s: %w", ic.Interface, err)
	}
	vips, err := resolveVIPs(append(slices.Clone(ic.VIPs), ic.ExcludedVIPs...), ic.Interface)
	if err != nil {
		return nil, err
	}
	s := &instanceSettings{cfg: ic, global: g, vips: vips}
	// The advert lists virtual_ipaddress only (all of the instance's
	// family), not virtual_ipaddress_excluded.
	s.addrs = make([]netip.Addr, 0, len(ic.VIPs))
	for _, v := range ic.VIPs {
		s.addrs = append(s.addrs, v.Prefix.Addr())
	}
	s.src = src
	switch {
	case s.src.IsValid():
	case ic.UnicastSrc.IsValid():
		s.src = ic.UnicastSrc
	case ic.IPv6:
		if s.src, err = linkLocal6(ic.Interface, virtual); err != nil {
			return nil, fmt.Errorf("source address: %w", err)
		}
	default:
		if s.src, err = primaryIPv4(ic.Interface, virtual); err != nil {
			return nil, fmt.Errorf("source address: %w", err)
		}
	}
	s.dsts = []netip.Addr{MulticastGroup}
	if ic.IPv6 {
		s.dsts = []netip.Addr{MulticastGroup6}
	}
	if len(ic.UnicastPeers) > 0 {
		s.dsts = ic.UnicastPeers
	}
	if ic.AuthType == AuthPass {
		s.auth = PassAuthData(ic.AuthPass)
	}
	for _, ts := range ic.TrackScripts {
		t := trackers[ts.Name]
		if t == nil {
			continue // disabled, logged when made
		}
		w, rev := t.cfg.Weight, t.cfg.Reverse
		if ts.WeightSet {
			w, rev = ts.Weight, ts.Reverse
		}
		s.tracks = append(s.tracks, trackRef{t: t, weight: w, reverse: rev})
	}
	// The instance's own interface is always tracked: down means FAULT.
	names := []TrackInterface{{Name: ic.Interface}}
	for _, ti := range ic.TrackIfaces {
		if ti.Name != ic.Interface {
			names = append(names, ti)
		}
	}
	for _, ti := range names {
		if _, err := net.InterfaceByName(ti.Name); err != nil {
			return nil, fmt.Errorf("track_interface %s: %w", ti.Name, err)
		}
		name := ti.Name
		d.ifMu.Lock()
		if _, known := d.ifUp[name]; !known {
			d.ifUp[name] = linkUp(name)
		}
		d.ifMu.Unlock()
		s.ifaces = append(s.ifaces, ifaceRef{name: name, weight: ti.Weight, up: func() bool {
			d.ifMu.Lock()
			defer d.ifMu.Unlock()
			return d.ifUp[name]
		}})
	}
	return s, nil
}

func (d *Daemon) newInstance(s *instanceSettings, l *link) *instance {
	ic := s.cfg
	in := &instance{
		instanceSettings: *s,
		sock:             l.sock,
		origin:           d.started, notify: d.notify,
		log:     d.log.With("instance", ic.Name),
		inbox:   make(chan Event, instanceQueueLen),
		trackCh: make(chan struct{}, 1),
		syncCh:  make(chan struct{}, 1),
		updates: make(chan *instanceUpdate),
		heard:   map[netip.Addr]time.Time{},
		stats:   instanceStats{Bad: map[DropReason]uint64{}, BasePriority: ic.Priority, Priority: ic.Priority, State: StateInit},
	}
	in.publishView()
	in.machine = NewMachine(in.machineConfig())
	return in
}

// apply makes p the running set; Run's goroutine only. Removed (and
// restarted) instances stop first, so a master's priority 0 and address
// removal come before anything new takes the same addresses; then kept
// instances give up the addresses they lose, then take their new settings,
// then new instances start.
func (d *Daemon) apply(ctx context.Context, p *plan) {
	d.mu.Lock()
	for key, l := range p.links {
		d.links[key] = l
	}
	d.cfg = p.cfg
	d.mu.Unlock()
	for _, l := range p.links {
		d.rwg.Add(1)
		go func() { defer d.rwg.Done(); d.receive(l) }()
	}
	for _, t := range p.fresh {
		t.start(context.Background(), &d.twg)
	}
	d.notify.setRunner(p.runner)

	for _, in := range p.stop {
		in.stop()
		d.notify.release(in.config().Name)
		d.linkOf(in).detach(in)
		for _, tr := range in.tracks {
			tr.t.unsubscribe(in)
		}
		d.mu.Lock()
		d.instances = slices.DeleteFunc(d.instances, func(x *instance) bool { return x == in })
		d.mu.Unlock()
	}
	// All kept instances give up their dropped addresses before any adds
	// new ones: an address moving between two of them must end up added.
	for in, s := range p.update {
		in.release(s)
	}
	for in, s := range p.update {
		for _, tr := range in.tracks {
			tr.t.unsubscribe(in)
		}
		for _, tr := range s.tracks {
			tr.t.subscribe(in, func(bool) { in.trackChanged() })
		}
		in.update(s)
	}
	for _, in := range p.start {
		d.linkOf(in).attach(in)
		for _, tr := range in.tracks {
			tr.t.subscribe(in, func(bool) { in.trackChanged() })
		}
		d.mu.Lock()
		d.instances = append(d.instances, in)
		d.mu.Unlock()
	}
	// Start the new ones only once all are registered: a sync group's
	// members may talk to each other from the first step.
	for _, in := range p.start {
		in.start(ctx, &d.iwg)
	}

	for name, t := range d.trackers {
		if p.trackers[name] != t {
			t.stop()
		}
	}
	d.trackers = p.trackers
	d.mu.Lock()
	for key, l := range d.links {
		if l.empty() {
			if err := l.sock.close(); err != nil {
				d.log.Warn("closing socket", "interface", key.String(), "err", err)
			}
			delete(d.links, key)
		}
	}
	d.mu.Unlock()
}

// linkOf returns the link an instance runs on; Run's goroutine only.
func (d *Daemon) linkOf(in *instance) *link {
	return d.links[linkKey{name: in.config().Interface, ipv6: in.config().IPv6}]
}
