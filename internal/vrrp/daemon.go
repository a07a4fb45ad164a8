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

// Daemon runs every vrrp_instance of a configuration and applies reloaded
// ones. Create it with New and run it with Run; Status and Reload may be
// called from any goroutine while it runs.
//
// The goroutine running Run owns the running set (instances, links,
// trackers): it starts them, stops them, and changes the set on Reload.
// Other goroutines read the set under mu. Lock order: mu, then a link's mu
// or ifMu; an instance's mu is never held while taking another lock.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	notify  *notifier
	started time.Time

	initial *plan              // built by New, applied by Run
	reloads chan reloadRequest // served by Run
	done    chan struct{}      // closed when Run returns

	// Owned by Run's goroutine.
	trackers map[string]*scriptTracker // the running trackers by script name
	iwg      sync.WaitGroup            // instance goroutines
	twg      sync.WaitGroup            // tracker goroutines
	rwg      sync.WaitGroup            // receiver goroutines

	mu        sync.Mutex
	cfg       *Config           // guarded by mu; the configuration running
	links     map[linkKey]*link // guarded by mu
	instances []*instance       // guarded by mu

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
// Its receiver goroutine runs until the socket is closed.
type link struct {
	name string
	key  linkKey
	sock advertConn

	mu    sync.Mutex
	local []netip.Addr          // guarded by mu; our own addresses there, to drop our own adverts
	byID  map[uint8]*instance   // guarded by mu
	bad   map[DropReason]uint64 // guarded by mu; drops not tied to an instance
}

// lookup returns the instance for vrid and whether src is one of ours.
func (l *link) lookup(vrid uint8, src netip.Addr) (*instance, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byID[vrid], slices.Contains(l.local, src)
}

// attach and detach register an instance on the link; Run's goroutine only.
func (l *link) attach(in *instance) {
	l.mu.Lock()
	l.byID[uint8(in.config().VRID)] = in
	l.local = append(l.local, in.src)
	l.mu.Unlock()
}

func (l *link) detach(in *instance) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byID[uint8(in.config().VRID)] == in {
		delete(l.byID, uint8(in.config().VRID))
	}
	if i := slices.Index(l.local, in.src); i >= 0 {
		l.local = slices.Delete(l.local, i, i+1)
	}
}

func (l *link) empty() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byID) == 0
}

type reloadRequest struct {
	cfg  *Config
	errc chan error
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
	d := &Daemon{opts: opts, log: opts.Logger, links: map[linkKey]*link{}, ifUp: map[string]bool{},
		started: time.Now(), reloads: make(chan reloadRequest), done: make(chan struct{}),
		trackers: map[string]*scriptTracker{}}
	// Instances and sync groups keep the notifier; apply gives it the
	// plan's script runner.
	d.notify = newNotifier(nil, d.log)
	p, err := d.build(opts.Config)
	if err != nil {
		d.notify.close(0)
		return nil, err
	}
	d.initial = p
	return d, nil
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
// NotifyGrace to finish. Between, it applies the configurations passed to
// Reload. Run may be called once.
func (d *Daemon) Run(ctx context.Context) error {
	defer close(d.done)
	updates := make(chan netlink.LinkUpdate, 64)
	subDone := make(chan struct{})
	if err := netlink.LinkSubscribeWithOptions(updates, subDone, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case <-subDone: // closing the subscription makes its last read fail
			default:
				d.log.Warn("link watch", "err", err)
			}
		},
	}); err != nil {
		close(subDone)
		d.initial.discard(d.log)
		d.notify.close(0)
		return fmt.Errorf("vrrp: watch interfaces: %w", err)
	}
	var wg sync.WaitGroup
	wctx, wcancel := context.WithCancel(context.Background())
	wg.Add(1)
	go func() { defer wg.Done(); d.watchLinks(wctx, updates, subDone) }()

	d.apply(ctx, d.initial)
	d.initial = nil
	d.log.Info("started", "instances", len(d.instances))
	for {
		select {
		case req := <-d.reloads:
			req.errc <- d.reload(ctx, req.cfg)
			continue
		case <-ctx.Done():
		}
		break
	}
	// The instances stop on ctx. Receivers run until their socket closes,
	// which happens only after the instances stopped, so a master's last
	// advert goes out on an open socket.
	d.iwg.Wait()
	for _, t := range d.trackers {
		t.stop()
	}
	d.twg.Wait()
	wcancel()
	wg.Wait()
	d.mu.Lock()
	for key, l := range d.links {
		if err := l.sock.close(); err != nil {
			d.log.Warn("closing socket", "interface", key.String(), "err", err)
		}
	}
	d.mu.Unlock()
	d.rwg.Wait()
	d.notify.close(d.opts.NotifyGrace)
	d.log.Info("stopped")
	return nil
}

// Reload applies cfg to the running daemon, as keepalived does on SIGHUP:
// instances that keep their name keep their state and take the new
// settings (a master adjusts its addresses: removed ones deleted, added ones
// added and announced), removed instances stop (priority 0 if master, their
// addresses removed), new ones start, and changed scripts, priorities and
// intervals take effect. If cfg cannot run here (a missing interface, an
// address that cannot be resolved) nothing changes and the error says why.
// Reload waits for Run to take the request; after Run returned it fails.
func (d *Daemon) Reload(cfg *Config) error {
	req := reloadRequest{cfg: cfg, errc: make(chan error, 1)}
	select {
	case d.reloads <- req:
	case <-d.done:
		return errors.New("vrrp: reload: the daemon is not running")
	}
	return <-req.errc
}

func (d *Daemon) reload(ctx context.Context, cfg *Config) error {
	p, err := d.build(cfg)
	if err != nil {
		return fmt.Errorf("vrrp: reload: %w", err)
	}
	d.apply(ctx, p)
	d.log.Info("configuration reloaded", "kept", len(p.update), "stopped", len(p.stop), "started", len(p.start))
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
			// Every instance re-reads its trackers; those not tracking
			// this interface find nothing changed.
			d.mu.Lock()
			for _, in := range d.instances {
				in.trackChanged()
			}
			d.mu.Unlock()
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
			d.log.Debug("read", "interface", l.key.String(), "err", err)
			l.countBad(DropMalformed)
			continue
		}
		var vrid uint8
		if len(r.payload) >= 2 {
			vrid = r.payload[1]
		}
		in, own := l.lookup(vrid, r.src)
		if own {
			continue // our own advert, looped back
		}
		if len(r.payload) < 2 {
			in = nil
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
	AdvertInt time.Duration
	instanceStats
}

// Status returns a snapshot of every instance and of the per-interface
// counters of packets that matched no instance.
func (d *Daemon) Status() ([]InstanceStatus, map[string]map[DropReason]uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
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
