package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Options configure a Daemon. Zero values mean the defaults given.
type Options struct {
	Config *Config
	// Logger receives the daemon's logs; nil means slog.Default().
	Logger *slog.Logger
	// NotifyGrace is how long notify scripts may finish after a stop
	// (default 5 s).
	NotifyGrace time.Duration
}

// Daemon runs every vrrp_instance of a configuration. Create it with New,
// run it with Run; Status may be called from any goroutine.
type Daemon struct {
	opts      Options
	log       *slog.Logger
	links     map[linkKey]*link
	instances []*instance
	trackers  []*scriptTracker
	notify    *notifier
	started   time.Time

	ifMu sync.Mutex
	ifUp map[string]bool // guarded by ifMu; interface name -> up and running
}

// linkKey names a link: an interface and an address family. IPv4 and IPv6
// instances on one interface have separate sockets and VRID spaces, as in
// keepalived.
type linkKey struct {
	name string
	ipv6 bool
}

// String is how the status dump names the link: "eth0", or "eth0 ipv6".
func (k linkKey) String() string {
	if k.ipv6 {
		return k.name + " ipv6"
	}
	return k.name
}

// link is one interface's raw socket of one family and the instances on it.
type link struct {
	name  string
	key   linkKey
	sock  advertConn
	local []netip.Addr // our own addresses there, to drop our own adverts
	byID  map[uint8]*instance

	mu  sync.Mutex
	bad map[DropReason]uint64 // guarded by mu; drops not tied to an instance
}

// New checks the configuration against the system (interfaces, scripts,
// addresses) and opens the sockets. Nothing is sent before Run.
func New(opts Options) (*Daemon, error) {
	if opts.Config == nil {
		return nil, errors.New("vrrp: no configuration")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.NotifyGrace == 0 {
		opts.NotifyGrace = 5 * time.Second
	}
	cfg := opts.Config
	d := &Daemon{opts: opts, log: opts.Logger, links: map[linkKey]*link{}, ifUp: map[string]bool{}, started: time.Now()}
	runner, err := newScriptRunner(cfg.Global.ScriptSecurity, cfg.Global.ScriptUser)
	if err != nil {
		return nil, err
	}
	d.notify = newNotifier(runner, d.log)
	ok := false
	defer func() {
		if !ok {
			d.closeSockets()
			d.notify.close(0)
		}
	}()
	trackers := map[string]*scriptTracker{}
	var errs []error
	for _, sc := range cfg.Scripts {
		t, err := newScriptTracker(sc, runner, d.log)
		if err != nil {
			// keepalived disables a script it cannot run (missing, or
			// insecure under enable_script_security) and carries on.
			d.log.Error("vrrp_script disabled: instances tracking it ignore it", "script", sc.Name, "at", sc.Pos.String(), "err", err)
			continue
		}
		trackers[sc.Name] = t
		d.trackers = append(d.trackers, t)
	}
	for _, ic := range cfg.Instances {
		in, err := d.newInstance(ic, &cfg.Global, trackers)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: vrrp_instance %s: %w", ic.Pos, ic.Name, err))
			continue
		}
		d.instances = append(d.instances, in)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, gc := range cfg.SyncGroups {
		g := newSyncGroup(gc, d.notify)
		for _, in := range d.instances {
			if in.cfg.SyncGroup == gc.Name {
				g.members = append(g.members, in)
				in.group = g
			}
		}
	}
	ok = true
	return d, nil
}

func (d *Daemon) newInstance(ic *InstanceConfig, g *Global, trackers map[string]*scriptTracker) (*instance, error) {
	ifi, err := net.InterfaceByName(ic.Interface)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", ic.Interface, err)
	}
	vips, err := resolveVIPs(append(slices.Clone(ic.VIPs), ic.ExcludedVIPs...), ic.Interface)
	if err != nil {
		return nil, err
	}
	// The advert lists virtual_ipaddress only (all of the instance's
	// family), not virtual_ipaddress_excluded.
	addrs := make([]netip.Addr, 0, len(ic.VIPs))
	for _, v := range ic.VIPs {
		addrs = append(addrs, v.Prefix.Addr())
	}
	src := ic.UnicastSrc
	switch {
	case src.IsValid():
	case ic.IPv6:
		if src, err = linkLocal6(ic.Interface); err != nil {
			return nil, err
		}
	default:
		if src, err = primaryIPv4(ic.Interface, addrs); err != nil {
			return nil, err
		}
	}
	key := linkKey{name: ic.Interface, ipv6: ic.IPv6}
	l := d.links[key]
	if l == nil {
		var sock advertConn
		if ic.IPv6 {
			sock, err = openRawSocket6(ifi)
		} else {
			sock, err = openRawSocket(ifi)
		}
		if err != nil {
			return nil, err
		}
		l = &link{name: ic.Interface, key: key, sock: sock, byID: map[uint8]*instance{}, bad: map[DropReason]uint64{}}
		d.links[key] = l
	}
	l.local = append(l.local, src)
	if _, dup := l.byID[uint8(ic.VRID)]; dup {
		return nil, fmt.Errorf("virtual_router_id %d already used on %s", ic.VRID, key)
	}
	dsts := []netip.Addr{MulticastGroup}
	if ic.IPv6 {
		dsts = []netip.Addr{MulticastGroup6}
	}
	if len(ic.UnicastPeers) > 0 {
		dsts = ic.UnicastPeers
	}
	in := &instance{
		cfg: ic, global: g, sock: l.sock, src: src, dsts: dsts, vips: vips, addrs: addrs,
		origin: d.started, notify: d.notify,
		log:     d.log.With("instance", ic.Name),
		inbox:   make(chan Event, instanceQueueLen),
		trackCh: make(chan struct{}, 1),
		syncCh:  make(chan struct{}, 1),
		heard:   map[netip.Addr]time.Time{},
		stats:   instanceStats{Bad: map[DropReason]uint64{}, BasePriority: ic.Priority, Priority: ic.Priority, State: StateInit},
	}
	if ic.AuthType == AuthPass {
		in.auth = PassAuthData(ic.AuthPass)
	}
	in.machine = NewMachine(MachineConfig{
		VRID: uint8(ic.VRID), Version: ic.Version, Priority: uint8(ic.Priority), Interval: ic.AdvertInt,
		NoPreempt: ic.NoPreempt, PreemptDelay: ic.PreemptDelay, LocalAddr: src,
		Sync: ic.SyncGroup != "",
	})
	for _, ts := range ic.TrackScripts {
		t := trackers[ts.Name]
		if t == nil {
			continue // disabled, logged above
		}
		w, rev := t.cfg.Weight, t.cfg.Reverse
		if ts.WeightSet {
			w, rev = ts.Weight, ts.Reverse
		}
		in.tracks = append(in.tracks, trackRef{t: t, weight: w, reverse: rev})
		t.subscribe(func(bool) { in.trackChanged() })
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
		d.ifUp[name] = linkUp(name)
		d.ifMu.Unlock()
		in.ifaces = append(in.ifaces, ifaceRef{name: name, weight: ti.Weight, up: func() bool {
			d.ifMu.Lock()
			defer d.ifMu.Unlock()
			return d.ifUp[name]
		}})
	}
	l.byID[uint8(ic.VRID)] = in
	return in, nil
}

func linkUp(name string) bool {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return false
	}
	return linkAttrsUp(l.Attrs())
}

func linkAttrsUp(a *netlink.LinkAttrs) bool {
	return a.Flags&net.FlagUp != 0 && a.RawFlags&unix.IFF_RUNNING != 0
}

// Run runs the instances until ctx is done, then stops them gracefully:
// masters send priority 0 and remove their addresses, and notify scripts get
// NotifyGrace to finish. Run may be called once.
func (d *Daemon) Run(ctx context.Context) error {
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	if err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case <-done: // closing the subscription makes its last read fail
			default:
				d.log.Warn("link watch", "err", err)
			}
		},
	}); err != nil {
		close(done)
		d.closeSockets()
		d.notify.close(0)
		return fmt.Errorf("vrrp: watch interfaces: %w", err)
	}
	// Receivers run until their socket closes, which happens only after the
	// instances stopped, so a master's last advert goes out on an open socket.
	var rwg sync.WaitGroup
	for _, l := range d.links {
		rwg.Add(1)
		go func() { defer rwg.Done(); d.receive(l) }()
	}
	var wg sync.WaitGroup
	tctx, tcancel := context.WithCancel(context.Background())
	for _, t := range d.trackers {
		wg.Add(1)
		go func() { defer wg.Done(); t.run(tctx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); d.watchLinks(tctx, updates, done) }()

	var iwg sync.WaitGroup
	for _, in := range d.instances {
		iwg.Add(1)
		go func() { defer iwg.Done(); in.run(ctx) }()
	}
	d.log.Info("started", "instances", len(d.instances))
	<-ctx.Done()
	iwg.Wait()
	tcancel()
	wg.Wait()
	d.closeSockets()
	rwg.Wait()
	d.notify.close(d.opts.NotifyGrace)
	d.log.Info("stopped")
	return nil
}

func (d *Daemon) watchLinks(ctx context.Context, updates chan netlink.LinkUpdate, done chan struct{}) {
	defer func() {
		close(done)
		for range updates { // netlink closes updates once done is seen
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case u, ok := <-updates:
			if !ok {
				return
			}
			a := u.Attrs()
			up := linkAttrsUp(a) && u.Header.Type != unix.RTM_DELLINK
			d.ifMu.Lock()
			was, tracked := d.ifUp[a.Name]
			if tracked {
				d.ifUp[a.Name] = up
			}
			d.ifMu.Unlock()
			if !tracked || was == up {
				continue
			}
			d.log.Warn("tracked interface changed", "interface", a.Name, "up", up)
			for _, in := range d.instances {
				for _, f := range in.ifaces {
					if f.name == a.Name {
						in.trackChanged()
					}
				}
			}
		}
	}
}

func (d *Daemon) closeSockets() {
	for _, l := range d.links {
		if err := l.sock.close(); err != nil {
			d.log.Warn("closing socket", "interface", l.name, "err", err)
		}
	}
}

func (l *link) countBad(r DropReason) {
	l.mu.Lock()
	l.bad[r]++
	l.mu.Unlock()
}

// receive reads adverts on one interface until its socket is closed,
// validates them and hands them to their instance. All checks happen here,
// on the receiver's goroutine, so a flood of bad packets never reaches the
// instances' loops.
func (d *Daemon) receive(l *link) {
	buf := make([]byte, 65536)
	for {
		r, err := l.sock.read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			d.log.Debug("read", "interface", l.name, "err", err)
			l.countBad(DropMalformed)
			continue
		}
		if slices.Contains(l.local, r.src) {
			continue // our own advert, looped back
		}
		var in *instance
		if len(r.payload) >= 2 {
			in = l.byID[r.payload[1]]
		}
		p, err := Decode(r.payload, r.src, r.dst)
		if err != nil {
			if in != nil {
				in.countBad(ReasonOf(err))
			} else {
				l.countBad(ReasonOf(err))
			}
			continue
		}
		if in == nil {
			l.countBad(DropVRID)
			continue
		}
		if reason := in.check(r, p); reason != "" {
			in.countBad(reason)
			continue
		}
		in.deliver(r.src, p)
	}
}

// InstanceStatus is one instance's state and counters, as the status dump
// shows them.
type InstanceStatus struct {
	Name      string
	Interface string
	VRID      int
	Version   int
	Src       netip.Addr
	instanceStats
}

// Status returns a snapshot of every instance and of the per-interface
// counters of packets that matched no instance.
func (d *Daemon) Status() ([]InstanceStatus, map[string]map[DropReason]uint64) {
	out := make([]InstanceStatus, 0, len(d.instances))
	for _, in := range d.instances {
		out = append(out, in.snapshot())
	}
	links := map[string]map[DropReason]uint64{}
	for key, l := range d.links {
		l.mu.Lock()
		m := map[DropReason]uint64{}
		for k, v := range l.bad {
			m[k] = v
		}
		l.mu.Unlock()
		links[key.String()] = m
	}
	return out, links
}
