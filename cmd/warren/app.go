package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/cluster"
	"github.com/warren-mq/warren/internal/config"
	"github.com/warren-mq/warren/internal/ctl"
	"github.com/warren-mq/warren/internal/defs"
	"github.com/warren-mq/warren/internal/durable"
	"github.com/warren-mq/warren/internal/meta"
	"github.com/warren-mq/warren/internal/mgmt"
	"github.com/warren-mq/warren/internal/sockio"
)

// app is the broker application of a node: the AMQP listener, the
// management API and the broker behind them. warrenctl stops and starts it
// while the process, and its cluster port, stay up.
type app struct {
	cfg         config.Node
	configFiles []string
	log         *slog.Logger
	started     time.Time
	clusterAddr string // set before the cluster port serves; immutable after
	// id is how this node introduces itself on other nodes' cluster
	// ports: its cookie, its name and its TLS client settings.
	id cluster.Identity
	// advertise is the cluster port's address as other nodes dial it:
	// the node name's host with the port it listens on.
	advertise string

	stopRequested chan struct{} // closed by Stop
	stopOnce      sync.Once
	failed        chan error // a listener failed while serving; capacity 1

	mu      sync.Mutex                          // serialises start, stop, reset and cluster changes
	running atomic.Pointer[running]             // nil while the app is stopped
	layer   atomic.Pointer[cluster.StreamLayer] // Raft's streams while the app starts or runs
	meta    atomic.Pointer[meta.Node]           // the definitions while the app runs
	paused  atomic.Pointer[pausedNode]          // set while pause_minority holds the app stopped
}

// running is a started app.
type running struct {
	srv       *broker.Server
	listeners []ctl.Listener // where it serves AMQP, HTTP and Prometheus
	http      *http.Server
	prom      *http.Server
	stopAPI   context.CancelFunc
	wg        sync.WaitGroup // serve loops and the rate sampler
	serveErrs chan error     // one per serve loop
	// clients are the AMQP listeners' addresses and TLS settings, to
	// listen again when the node comes out of maintenance.
	clients []clientListener
}

// clientListener is where a client listener listens, and its TLS
// configuration (nil for plain AMQP).
type clientListener struct {
	addr string
	tc   *tls.Config
}

func newApp(cfg config.Node, configFiles []string, log *slog.Logger) *app {
	return &app{cfg: cfg, configFiles: configFiles, log: log, started: time.Now(),
		stopRequested: make(chan struct{}), failed: make(chan error, 1)}
}

// Broker implements ctl.App.
func (a *app) Broker() ctl.Broker {
	if r := a.running.Load(); r != nil {
		return r.srv
	}
	return nil
}

// serveRaft hands a Raft stream from another node to the running meta
// node; none is taken while the app is stopped.
func (a *app) serveRaft(nc net.Conn, peer string) {
	if l := a.layer.Load(); l != nil {
		l.Handoff(nc, peer)
		return
	}
	nc.Close()
}

// serveMeta answers another member's forwarded definition changes and
// membership requests.
func (a *app) serveMeta(nc net.Conn, peer string) {
	if m := a.meta.Load(); m != nil {
		m.ServeConn(nc, peer)
		return
	}
	nc.Close()
}

// dialMeta reaches another member's meta service.
func (a *app) dialMeta(ctx context.Context, addr string) (net.Conn, error) {
	return a.id.Dial(ctx, addr, cluster.ServiceMeta)
}

// serveQueue serves another node's queue link: its clients' use of this
// node's queues. None is taken while the app is stopped.
func (a *app) serveQueue(nc net.Conn, peer string) {
	if r := a.running.Load(); r != nil {
		r.srv.ServeLink(nc, peer)
		return
	}
	nc.Close()
}

// dialQueue opens a queue link to another node, at the address the
// cluster knows it by.
func (a *app) dialQueue(ctx context.Context, node string) (net.Conn, error) {
	addr := ""
	if m := a.meta.Load(); m != nil {
		for _, mem := range m.Members() {
			if mem.ID == node {
				addr = mem.Addr
			}
		}
	}
	if addr == "" {
		n, err := cluster.ParseNodeName(node, "")
		if err != nil {
			return nil, err
		}
		addr = n.Addr(cluster.DefaultPort)
	}
	return a.id.Dial(ctx, addr, cluster.ServiceQueue)
}

// Stop implements ctl.App.
func (a *app) Stop() {
	a.stopOnce.Do(func() { close(a.stopRequested) })
}

// StartApp implements ctl.App: it opens the data directory and starts
// listening for AMQP and HTTP.
func (a *app) StartApp(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.paused.Store(nil)
	return a.startLocked(ctx)
}

// startLocked is StartApp with a.mu held.
func (a *app) startLocked(ctx context.Context) error {
	if a.running.Load() != nil {
		return nil
	}
	cfg := a.cfg
	tlsFor, err := cfg.TLSConfigs()
	if err != nil {
		return err
	}
	if err := durable.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	st, err := cluster.LoadState(cfg.DataDir)
	if err != nil {
		return err
	}
	seeds := st.Addrs()
	if len(seeds) == 0 {
		seeds = a.formationSeeds()
	}
	ram := st.RAM || (len(st.Members) == 0 && cfg.FormationNodeType == "ram")
	layer := cluster.NewStreamLayer(a.advertise, a.id)
	a.layer.Store(layer)
	srv, err := broker.New(ctx, broker.Config{
		Network:                     &meta.Network{Layer: layer, Dial: a.dialMeta, Join: seeds},
		RAM:                         ram,
		DialPeer:                    a.dialQueue,
		QueueMasterLocator:          cfg.QueueMasterLocator,
		NodeName:                    cfg.NodeName,
		DataDir:                     cfg.DataDir,
		Logger:                      a.log,
		FrameMax:                    cfg.FrameMax,
		ChannelMax:                  cfg.ChannelMax,
		Heartbeat:                   cfg.Heartbeat,
		HandshakeTimeout:            cfg.HandshakeTimeout,
		DefaultUser:                 cfg.DefaultUser,
		DefaultPass:                 cfg.DefaultPass,
		DefaultVHost:                cfg.DefaultVHost,
		LoopbackUsers:               cfg.LoopbackUsers,
		AuthMechanisms:              cfg.AuthMechanisms,
		CertLoginFrom:               cfg.CertLoginFrom,
		Product:                     cfg.ServerProduct,
		MemoryHighWatermark:         cfg.MemoryHighWater,
		MemoryHighWatermarkAbsolute: cfg.MemoryHighWaterAbsolute,
		MemoryPagingRatio:           cfg.MemoryPagingRatio,
		RuntimeMemoryLimit:          true,
		DiskFreeLimit:               cfg.DiskFreeLimit,
		SegmentSize:                 cfg.SegmentSize,
	})
	if err != nil {
		a.layer.Store(nil)
		layer.Close()
		return err
	}
	a.meta.Store(srv.Meta())
	if err := a.rememberMembers(srv.Meta(), ram); err != nil {
		a.log.Warn("cannot record the cluster's members", "error", err)
	}
	if cfg.LoadDefinitions != "" {
		if err := loadDefinitions(ctx, srv, cfg.LoadDefinitions); err != nil {
			a.closeBroker(srv)
			return err
		}
		a.log.Info("definitions imported", "file", cfg.LoadDefinitions)
	}
	// Each service listens where the configuration says, plain or over
	// TLS; a failure closes what was opened.
	type service struct {
		protocol string // as RabbitMQ names its listeners
		l        net.Listener
		serve    func(net.Listener) error
	}
	r := &running{srv: srv, serveErrs: make(chan error, 2)}
	var services []service
	open := func(what, protocol, addr string, tc *tls.Config, serve func(net.Listener) error) error {
		if addr == "" {
			return nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, sv := range services {
				sv.l.Close()
			}
			a.closeBroker(srv)
			return fmt.Errorf("listen for %s: %w", what, err)
		}
		if tc != nil {
			l = sockio.TLSListener(l, tc)
		}
		services = append(services, service{protocol, l, serve})
		return nil
	}
	serveHTTP := func(l net.Listener) error { return r.http.Serve(l) }
	serveProm := func(l net.Listener) error { return r.prom.Serve(l) }
	for _, o := range []struct {
		what, protocol, addr string
		tc                   *tls.Config
		serve                func(net.Listener) error
	}{
		{"AMQP", "amqp", cfg.AMQPListen, nil, srv.Serve},
		{"AMQPS", "amqp/ssl", cfg.AMQPSListen, tlsFor.AMQPS, srv.Serve},
		{"management HTTP", "http", cfg.MgmtListen, nil, serveHTTP},
		{"management HTTPS", "https", cfg.MgmtTLSListen, tlsFor.Mgmt, serveHTTP},
		{"Prometheus", "http/prometheus", cfg.PrometheusListen, nil, serveProm},
		{"Prometheus over HTTPS", "https/prometheus", cfg.PrometheusTLSListen, tlsFor.Prometheus, serveProm},
	} {
		if err := open(o.what, o.protocol, o.addr, o.tc, o.serve); err != nil {
			return err
		}
	}
	listeners := []mgmt.Listener{{Protocol: "clustering", Addr: a.clusterAddr}}
	for _, sv := range services {
		switch sv.protocol {
		case "amqp":
			r.clients = append(r.clients, clientListener{addr: sv.l.Addr().String()})
		case "amqp/ssl":
			r.clients = append(r.clients, clientListener{addr: sv.l.Addr().String(), tc: tlsFor.AMQPS})
		}
		r.listeners = append(r.listeners, ctl.Listener{Protocol: sv.protocol, Addr: sv.l.Addr().String()})
		protocol := sv.protocol
		if protocol == "http/prometheus" {
			protocol = "prometheus"
		}
		listeners = append(listeners, mgmt.Listener{Protocol: protocol, Addr: sv.l.Addr().String()})
	}
	api := mgmt.New(mgmt.Config{
		Broker:    srv,
		Logger:    a.log,
		Version:   broker.Version,
		Product:   cfg.ServerProduct,
		Listeners: listeners,
	})
	r.http = &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	r.prom = &http.Server{Handler: mgmt.NewMetrics(srv, broker.Version), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	apiCtx, stopAPI := context.WithCancel(context.Background())
	r.stopAPI = stopAPI
	r.wg.Add(1 + len(services))
	go func() {
		defer r.wg.Done()
		api.Run(apiCtx)
	}()
	for _, sv := range services {
		go func() {
			defer r.wg.Done()
			a.serve(func() error { return sv.serve(sv.l) })
		}()
	}
	a.running.Store(r)
	logArgs := []any{"node", cfg.NodeName}
	for _, l := range r.listeners {
		logArgs = append(logArgs, l.Protocol, l.Addr)
	}
	a.log.Info("node started", append(logArgs, "cluster", a.clusterAddr, "data_dir", cfg.DataDir, "version", broker.Version)...)
	return nil
}

// serve runs a serve loop; an error other than the one a stop causes
// fails the node.
func (a *app) serve(loop func() error) {
	err := loop()
	if err == nil || errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return
	}
	select {
	case a.failed <- err:
	default:
	}
}

// errAppStopped refuses maintenance commands while the app is stopped.
var errAppStopped = errors.New("the broker application is not running")

// Drain implements ctl.App: the node goes into maintenance.
func (a *app) Drain(ctx context.Context) ([]meta.Queue, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.running.Load()
	if r == nil {
		return nil, errAppStopped
	}
	return r.srv.Drain(ctx)
}

// Revive implements ctl.App: the node leaves maintenance and listens for
// clients again where it did before.
func (a *app) Revive(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.running.Load()
	if r == nil {
		return errAppStopped
	}
	if !r.srv.Draining() {
		return nil
	}
	r.srv.Revive()
	for _, cl := range r.clients {
		l, err := net.Listen("tcp", cl.addr)
		if err != nil {
			return fmt.Errorf("listen for clients again on %s: %w", cl.addr, err)
		}
		if cl.tc != nil {
			l = sockio.TLSListener(l, cl.tc)
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			a.serve(func() error { return r.srv.Serve(l) })
		}()
	}
	return nil
}

// StopApp implements ctl.App: connections are closed with 320, as on
// SIGTERM, and the data directory is closed; the process stays.
func (a *app) StopApp(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.paused.Store(nil)
	return a.stopLocked(ctx)
}

// stopLocked is StopApp with a.mu held.
func (a *app) stopLocked(ctx context.Context) error {
	r := a.running.Load()
	if r == nil {
		return nil
	}
	a.running.Store(nil)
	r.stopAPI()
	shutdownCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	r.http.Shutdown(shutdownCtx)
	r.prom.Shutdown(shutdownCtx)
	cancel()
	err := a.closeBroker(r.srv)
	r.wg.Wait()
	a.log.Info("broker application stopped", "node", a.cfg.NodeName)
	return err
}

// wipe deletes the node's data, so that the next start_app begins as
// a new node. Call with a.mu held and the app stopped.
func (a *app) wipe() error {
	entries, err := os.ReadDir(a.cfg.DataDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reset: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(a.cfg.DataDir, e.Name())); err != nil {
			return fmt.Errorf("reset: %w", err)
		}
	}
	a.log.Info("node reset: data directory emptied", "data_dir", a.cfg.DataDir)
	return nil
}

// Info implements ctl.App.
func (a *app) Info() ctl.NodeInfo {
	info := ctl.NodeInfo{
		Name: a.cfg.NodeName, Version: broker.Version, PID: os.Getpid(), DataDir: a.cfg.DataDir,
		ConfigFiles: a.configFiles, Started: a.started,
		Listeners: []ctl.Listener{{Protocol: "clustering (warrenctl and other nodes)", Addr: a.clusterAddr}},
		Settings: map[string]any{
			"node_name": a.cfg.NodeName, "data_dir": a.cfg.DataDir, "amqp_listen": a.cfg.AMQPListen,
			"management_listen": a.cfg.MgmtListen, "cluster_listen": a.cfg.ClusterListen,
			"default_user": a.cfg.DefaultUser, "default_vhost": a.cfg.DefaultVHost,
			"loopback_users": a.cfg.LoopbackUsers, "heartbeat": int(a.cfg.Heartbeat / time.Second),
			"frame_max": a.cfg.FrameMax, "channel_max": a.cfg.ChannelMax,
			"vm_memory_high_watermark": a.cfg.MemoryHighWater, "disk_free_limit": a.cfg.DiskFreeLimit,
			"log_level": a.cfg.LogLevel,
		},
	}
	if r := a.running.Load(); r != nil {
		info.Listeners = append(info.Listeners, r.listeners...)
	}
	return info
}

// closeBroker stops a broker and the Raft streams it used.
func (a *app) closeBroker(srv *broker.Server) error {
	a.meta.Store(nil)
	err := srv.Close()
	if l := a.layer.Swap(nil); l != nil {
		l.Close()
	}
	return err
}

// formationSeeds are the peers of cluster_formation.classic_config for
// a node that has never been clustered: every listed node but this one.
// The node listed first starts the cluster; the others join it, or any
// member that is up, and wait for one while none is.
func (a *app) formationSeeds() []string {
	nodes := a.cfg.FormationNodes
	if len(nodes) == 0 || nodes[0] == a.cfg.NodeName {
		return nil
	}
	var out []string
	for _, n := range nodes {
		if n == a.cfg.NodeName {
			continue
		}
		nn, err := cluster.ParseNodeName(n, "")
		if err != nil {
			continue
		}
		out = append(out, nn.Addr(cluster.DefaultPort))
	}
	return out
}

// rememberMembers records the other members where the node finds them
// on its next start, and its own type.
func (a *app) rememberMembers(m *meta.Node, ram bool) error {
	st := cluster.State{RAM: ram}
	for _, mem := range m.Members() {
		if mem.ID != a.cfg.NodeName {
			st.Members = append(st.Members, cluster.Peer{Name: mem.ID, Addr: mem.Addr})
		}
	}
	return cluster.SaveState(a.cfg.DataDir, st)
}

// readDefinitions reads and decodes a load_definitions file.
func readDefinitions(path string) (defs.File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return defs.File{}, fmt.Errorf("load_definitions: %w", err)
	}
	f, err := defs.Decode(b)
	if err != nil {
		return defs.File{}, fmt.Errorf("load_definitions %s: %w", path, err)
	}
	return f, nil
}

// loadDefinitions imports a load_definitions file, as RabbitMQ does at
// every start: what it defines is created or updated, nothing else is
// touched, so every node of a cluster may import the same file.
func loadDefinitions(ctx context.Context, srv *broker.Server, path string) error {
	f, err := readDefinitions(path)
	if err != nil {
		return err
	}
	if err := defs.Import(ctx, srv.Meta(), srv.NodeName(), f, ""); err != nil {
		return fmt.Errorf("load_definitions %s: %w", path, err)
	}
	return nil
}
