package lb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/warren-mq/warren/internal/lb/balance"
	"github.com/warren-mq/warren/internal/lb/config"
	"github.com/warren-mq/warren/internal/lb/health"
)

// Options configure an LB.
type Options struct {
	// Logger receives warren-lb's own events (health transitions, errors).
	// Nil means slog.Default().
	Logger *slog.Logger
	// ReusePort sets SO_REUSEPORT on listeners so a new process started
	// with -sf can bind the same addresses before the old one leaves.
	ReusePort bool
	// Version is shown on the stats page and by "show info".
	Version string
}

// LB is a running load balancer. It is safe for concurrent use.
type LB struct {
	log   *slog.Logger
	opts  Options
	start time.Time
	pid   int

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the LB starts

	state atomic.Pointer[state]

	mu        sync.Mutex // guards the fields below
	listeners map[string]*listener
	conns     map[*net.TCPConn]struct{}
	sockets   []net.Listener
	// socketFiles are the stats socket files created by this process;
	// socketKeys names the open stats sockets ("network path").
	socketFiles []socketFile
	socketKeys  map[string]bool
	closed      bool
	httpSrv     *http.Server
	httpLn      *chanListener

	// bufs lends chunk buffers to connections moving small amounts of data.
	bufs sync.Pool

	actConn   atomic.Int64
	totalConn atomic.Int64
	// pendSeq numbers queued connections in order of arrival.
	pendSeq atomic.Uint64
	// work hands accepted connections to idle workers.
	work chan connWork
	logs atomic.Pointer[logSinks]
}

// state is one loaded configuration.
type state struct {
	cfg       *config.Config
	frontends map[string]*Frontend
	backends  map[string]*Backend
	// order lists proxy names in configuration order, for stats.
	order []*config.Proxy
	// global holds one slot per connection accepted under this
	// configuration: the global maxconn. As with HAProxy, where a reload
	// starts a new process, connections accepted before a reload count
	// against the limit they were accepted under, not the new one.
	global chan struct{}
	// replaced is closed when a reload replaces the configuration, to
	// wake accept loops waiting for one of its slots.
	replaced chan struct{}
}

// Frontend is a runtime frontend or the frontend half of a listen section.
type Frontend struct {
	Name string
	cfg  *config.Proxy
	lb   *LB
	// stats is shared with the frontend of the same name after a reload.
	stats *counters
	slots chan struct{} // frontend maxconn
	// st is the configuration the frontend belongs to.
	st *state
	// statsOnly marks a "mode http" proxy with "stats enable": it serves
	// the stats page. Other mode http proxies are forwarded as TCP.
	statsOnly bool
}

// listener is one bound address; its handler is swapped on reload.
type listener struct {
	addr    string
	ln      *net.TCPListener
	handler atomic.Pointer[Frontend]
}

// New validates nothing more than config.Parse did, binds every address of
// cfg and starts serving. Call Close (or Shutdown) to stop.
func New(cfg *config.Config, opts Options) (*LB, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	lb := &LB{
		log:       opts.Logger,
		opts:      opts,
		start:     time.Now(),
		pid:       syscall.Getpid(),
		ctx:       ctx,
		cancel:    cancel,
		listeners: map[string]*listener{},
		conns:     map[*net.TCPConn]struct{}{},
		work:      make(chan connWork),
	}
	lb.bufs.New = func() any {
		b := make([]byte, chunkSize)
		return &b
	}
	lb.httpLn = newChanListener()
	lb.httpSrv = &http.Server{Handler: http.HandlerFunc(lb.serveStats), ReadHeaderTimeout: 10 * time.Second}
	lb.wg.Add(1)
	go func() {
		defer lb.wg.Done()
		_ = lb.httpSrv.Serve(lb.httpLn)
	}()
	if err := lb.apply(cfg); err != nil {
		lb.Close()
		return nil, err
	}
	return lb, nil
}

func (lb *LB) current() *state { return lb.state.Load() }

// Reload switches to a new configuration. Listeners on addresses still
// bound are kept; established connections continue untouched; servers
// with the same backend and name keep their health, counters and queued
// connections. New connections follow the new limits (global and
// frontend maxconn), counted from zero as in a new HAProxy process.
func (lb *LB) Reload(cfg *config.Config) error {
	return lb.apply(cfg)
}

func (lb *LB) apply(cfg *config.Config) error {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.closed {
		return errors.New("lb: closed")
	}
	// Bind new addresses first, so a failure leaves the running
	// configuration untouched.
	var fresh []*listener
	for _, px := range cfg.Proxies {
		if px.Disabled || !px.Kind.HasFrontend() {
			continue
		}
		for _, b := range px.Binds {
			if _, ok := lb.listeners[b.Addr]; ok || hasListener(fresh, b.Addr) {
				continue
			}
			ln, err := lb.listen(b.Addr)
			if err != nil {
				for _, l := range fresh {
					_ = l.ln.Close()
				}
				return fmt.Errorf("%s: %s '%s': cannot bind %s: %w", b.Pos, px.Kind, px.Name, b.Addr, err)
			}
			fresh = append(fresh, &listener{addr: b.Addr, ln: ln})
		}
	}
	old := lb.state.Load()
	if old != nil {
		lb.stopCheckers(old)
	}
	st := &state{cfg: cfg, frontends: map[string]*Frontend{}, backends: map[string]*Backend{},
		global: make(chan struct{}, cfg.Global.MaxConnOrDefault()), replaced: make(chan struct{})}
	wanted := map[string]*Frontend{}
	for _, px := range cfg.Proxies {
		if px.Disabled {
			continue
		}
		st.order = append(st.order, px)
		if px.Kind.HasBackend() {
			var prev *Backend
			if old != nil {
				prev = old.backends[px.Name]
			}
			st.backends[px.Name] = lb.buildBackend(px, prev)
		}
		if px.Kind.HasFrontend() {
			fe := &Frontend{Name: px.Name, cfg: px, lb: lb, st: st, statsOnly: px.Mode == "http" && px.Stats.Enable, stats: &counters{}}
			if old != nil {
				if pf := old.frontends[px.Name]; pf != nil {
					fe.stats = pf.stats // keep counters across reloads
				}
			}
			max := px.MaxConn
			if max <= 0 {
				max = cfg.Global.MaxConnOrDefault()
			}
			fe.slots = make(chan struct{}, max)
			st.frontends[px.Name] = fe
			for _, b := range px.Binds {
				wanted[b.Addr] = fe
			}
		}
	}
	for _, l := range fresh {
		lb.listeners[l.addr] = l
	}
	for addr, l := range lb.listeners {
		fe, ok := wanted[addr]
		if !ok {
			_ = l.ln.Close()
			delete(lb.listeners, addr)
			continue
		}
		l.handler.Store(fe)
	}
	lb.state.Store(st)
	if old != nil {
		for name, b := range old.backends {
			if st.backends[name] == nil {
				b.retire()
			}
		}
		close(old.replaced)
	}
	for _, l := range fresh {
		lb.wg.Add(1)
		go lb.acceptLoop(l)
	}
	lb.startCheckers(st)
	if prev := lb.logs.Swap(newLogSinks(cfg, lb.log)); prev != nil {
		prev.close()
	}
	return lb.startSockets(cfg)
}

func hasListener(ls []*listener, addr string) bool {
	for _, l := range ls {
		if l.addr == addr {
			return true
		}
	}
	return false
}

// buildBackend creates the runtime backend for px. Servers of prev that
// keep their name are carried over as the same objects, so their health,
// administrative state, counters and queues continue; prev's own queue
// moves to the new backend, and prev retires. The caller has stopped
// prev's health checkers.
func (lb *LB) buildBackend(px *config.Proxy, prev *Backend) *Backend {
	b := newBackend(lb, px)
	b.balancer = balance.New(px.Balance, len(px.Servers), px.Options.AllBackups)
	if prev != nil {
		// Lock order: the old backend, then the new one; only a reload
		// holds two backends' locks.
		prev.mu.Lock()
		defer prev.mu.Unlock()
		b.stats = prev.stats
		b.lastChange, b.downSince, b.downtime = prev.lastChange, prev.downSince, prev.downtime
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, sc := range px.Servers {
		var s *Server
		if prev != nil {
			if ps := prev.server(sc.Name); ps != nil {
				s = ps
				if ps.config().Weight != sc.Weight {
					s.weight = sc.WeightOrDefault() // the new config sets a new weight
				}
			}
		}
		if s == nil {
			s = &Server{Name: sc.Name, lastChange: time.Now(), weight: sc.WeightOrDefault()}
			s.health = health.New(sc.RiseOrDefault(), sc.FallOrDefault())
			if sc.Disabled {
				s.admin = AdminMaint
			}
		}
		s.index.Store(int64(i))
		s.conf.Store(sc)
		s.health.Rise, s.health.Fall = sc.RiseOrDefault(), sc.FallOrDefault()
		if s.health.Health > s.health.Rise+s.health.Fall-1 {
			s.health.Health = s.health.Rise + s.health.Fall - 1
		}
		s.backend.Store(b)
		b.servers = append(b.servers, s)
		b.syncServerLocked(s)
	}
	if prev != nil {
		// The backend's queue moves over; the queues of servers that go
		// away are placed again, in the new backend.
		b.queue, prev.queue = prev.queue, pendQueue{}
		prev.retired, prev.next = true, b
		for _, s := range prev.servers {
			if s.backend.Load() == prev {
				for _, p := range s.queue.takeAll() {
					b.replaceLocked(p)
				}
			}
		}
		// The new configuration may have room for queued connections.
		for _, s := range b.servers {
			b.serveQueuesLocked(s)
		}
	}
	return b
}

// retire marks a backend that a reload removed: the connections queued on
// it fail.
func (b *Backend) retire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.retired = true
	fail := b.queue.takeAll()
	for _, s := range b.servers {
		fail = append(fail, s.queue.takeAll()...)
	}
	for _, p := range fail {
		p.ready <- queueOutcome{err: errNoServer}
	}
}

// listen binds addr. With ReusePort it sets SO_REUSEPORT so a process
// taking over with -sf can bind next to the old one; Linux refuses such a
// bind while a TIME_WAIT connection still uses the port, so it then
// retries without the option.
func (lb *LB) listen(addr string) (*net.TCPListener, error) {
	ln, err := lb.listenOpt(addr, lb.opts.ReusePort)
	if err != nil && lb.opts.ReusePort && errors.Is(err, syscall.EADDRINUSE) {
		ln, err = lb.listenOpt(addr, false)
	}
	return ln, err
}

func (lb *LB) listenOpt(addr string, reusePort bool) (*net.TCPListener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	if reusePort {
		lc.Control = func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	ln, err := lc.Listen(lb.ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

// acceptLoop accepts connections on l until it is closed.
func (lb *LB) acceptLoop(l *listener) {
	defer lb.wg.Done()
	for {
		c, err := l.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			lb.log.Warn("accept failed", "addr", l.addr, "error", err)
			select {
			case <-time.After(50 * time.Millisecond):
				continue
			case <-lb.ctx.Done():
				return
			}
		}
		fe := l.handler.Load()
		if fe == nil {
			_ = c.Close()
			continue
		}
		if fe.statsOnly {
			lb.httpLn.push(c)
			continue
		}
		// maxconn: hold the accept loop until a slot frees, leaving further
		// clients in the kernel's backlog as HAProxy does.
		if fe = lb.reserve(l, fe); fe == nil {
			_ = c.Close()
			if lb.ctx.Err() != nil {
				return
			}
			continue
		}
		if !lb.track(c) {
			fe.unreserve()
			_ = c.Close()
			return
		}
		fe.stats.enter()
		lb.actConn.Add(1)
		lb.totalConn.Add(1)
		lb.dispatch(connWork{fe, c})
	}
}

// workerIdle is how long a connection worker waits for another connection
// before it ends.
const workerIdle = 2 * time.Second

// connWork is an accepted connection for a worker to serve.
type connWork struct {
	fe *Frontend
	c  *net.TCPConn
}

// dispatch hands an accepted connection to an idle worker, or to a new
// one. Workers serve one connection after another, so the stack a worker
// grew while connecting to a server serves the next connection too,
// instead of every connection growing a fresh goroutine's stack from the
// minimum again (a tenth of warren-lb's CPU time per short connection
// went there). The caller is the accept loop, itself counted in lb.wg.
func (lb *LB) dispatch(w connWork) {
	select {
	case lb.work <- w:
	default:
		lb.wg.Add(1)
		go lb.worker(w)
	}
}

// worker serves w, then the connections dispatch hands it, until it has
// served none for a whole workerIdle period or the LB closes. The idle
// timer runs freely, one tick per period, rather than being reset after
// every connection: a busy worker then costs no timer update per
// connection, and an idle one ends within two periods.
func (lb *LB) worker(w connWork) {
	defer lb.wg.Done()
	idle := time.NewTicker(workerIdle)
	defer idle.Stop()
	for {
		w.fe.serve(lb.ctx, w.c, w.finish)
		served := true
		for received := false; !received; {
			select {
			case w = <-lb.work:
				received = true
			case <-idle.C:
				if !served {
					return
				}
				served = false
			case <-lb.ctx.Done():
				return
			}
		}
	}
}

// finish releases what the accept loop took for the connection, once it
// is over.
func (w connWork) finish() {
	w.fe.lb.untrack(w.c)
	w.fe.unreserve()
}

// reserve takes a global and a frontend connection slot for a connection
// accepted on l for fe, waiting while either limit is reached. A reload
// while it waits starts it over under the new configuration's limits,
// with the listener's new frontend. It returns the frontend the slots
// belong to, or nil when the LB is closing or a reload dropped the
// listener.
func (lb *LB) reserve(l *listener, fe *Frontend) *Frontend {
	for {
		select {
		case fe.st.global <- struct{}{}:
			select {
			case fe.slots <- struct{}{}:
				return fe
			case <-fe.st.replaced:
				<-fe.st.global
			case <-lb.ctx.Done():
				<-fe.st.global
				return nil
			}
		case <-fe.st.replaced:
		case <-lb.ctx.Done():
			return nil
		}
		next := l.handler.Load()
		if next == fe || next.statsOnly {
			return nil
		}
		fe = next
	}
}

// unreserve gives back the slots reserve took.
func (fe *Frontend) unreserve() {
	<-fe.slots
	<-fe.st.global
}

// track registers a client connection; it refuses once Close has begun.
func (lb *LB) track(c *net.TCPConn) bool {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.closed {
		return false
	}
	lb.conns[c] = struct{}{}
	return true
}

func (lb *LB) untrack(c *net.TCPConn) {
	lb.mu.Lock()
	delete(lb.conns, c)
	lb.mu.Unlock()
}

// StopListening closes every listener (and the runtime sockets) but lets
// established connections run: the first step of a soft stop.
func (lb *LB) StopListening() {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for addr, l := range lb.listeners {
		_ = l.ln.Close()
		delete(lb.listeners, addr)
	}
	for _, s := range lb.sockets {
		_ = s.Close()
	}
	lb.sockets = nil
	lb.socketKeys = nil
}

// Shutdown stops listening and waits for established connections to end or
// ctx to expire, then closes everything. HAProxy's soft stop (SIGUSR1).
func (lb *LB) Shutdown(ctx context.Context) error {
	lb.StopListening()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for lb.actConn.Load() > 0 {
		select {
		case <-ctx.Done():
			lb.Close()
			return ctx.Err()
		case <-tick.C:
		}
	}
	lb.Close()
	return nil
}

// Close stops everything at once: listeners, connections, checkers. It is
// idempotent and returns once every goroutine has ended.
func (lb *LB) Close() {
	lb.StopListening()
	lb.mu.Lock()
	if !lb.closed {
		lb.closed = true
		lb.cancel()
		lb.removeOwnSocketsLocked()
		for c := range lb.conns {
			_ = c.Close()
		}
		if st := lb.state.Load(); st != nil {
			lb.stopCheckers(st)
		}
		_ = lb.httpSrv.Close()
		lb.httpLn.Close()
	}
	lb.mu.Unlock()
	lb.wg.Wait()
	if prev := lb.logs.Swap(nil); prev != nil {
		prev.close()
	}
}

// Addrs returns the bound listener addresses, for tests and logs.
func (lb *LB) Addrs() []string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	var out []string
	for _, l := range lb.listeners {
		out = append(out, l.ln.Addr().String())
	}
	return out
}

// ActiveConns returns the number of proxied client connections.
func (lb *LB) ActiveConns() int64 { return lb.actConn.Load() }
