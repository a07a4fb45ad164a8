package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/config"
	"github.com/warren-mq/warren/internal/ctl"
	"github.com/warren-mq/warren/internal/mgmt"
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

	stopRequested chan struct{} // closed by Stop
	stopOnce      sync.Once
	failed        chan error // a listener failed while serving; capacity 1

	mu      sync.Mutex // guards running and serialises start, stop and reset
	running *running
}

// running is a started app.
type running struct {
	srv       *broker.Server
	amqp      net.Listener
	http      *http.Server
	httpAddr  string
	prom      *http.Server
	promAddr  string
	stopAPI   context.CancelFunc
	wg        sync.WaitGroup // serve loops and the rate sampler
	serveErrs chan error     // one per serve loop
}

func newApp(cfg config.Node, configFiles []string, log *slog.Logger) *app {
	return &app{cfg: cfg, configFiles: configFiles, log: log, started: time.Now(),
		stopRequested: make(chan struct{}), failed: make(chan error, 1)}
}

// Broker implements ctl.App.
func (a *app) Broker() ctl.Broker {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running == nil {
		return nil
	}
	return a.running.srv
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
	if a.running != nil {
		return nil
	}
	cfg := a.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	srv, err := broker.New(ctx, broker.Config{
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
		Product:                     cfg.ServerProduct,
		MemoryHighWatermark:         cfg.MemoryHighWater,
		MemoryHighWatermarkAbsolute: cfg.MemoryHighWaterAbsolute,
		MemoryPagingRatio:           cfg.MemoryPagingRatio,
		RuntimeMemoryLimit:          true,
		DiskFreeLimit:               cfg.DiskFreeLimit,
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.AMQPListen)
	if err != nil {
		srv.Close()
		return fmt.Errorf("listen for AMQP: %w", err)
	}
	ml, err := net.Listen("tcp", cfg.MgmtListen)
	if err != nil {
		l.Close()
		srv.Close()
		return fmt.Errorf("listen for management HTTP: %w", err)
	}
	pl, err := net.Listen("tcp", cfg.PrometheusListen)
	if err != nil {
		ml.Close()
		l.Close()
		srv.Close()
		return fmt.Errorf("listen for Prometheus: %w", err)
	}
	api := mgmt.New(mgmt.Config{
		Broker:  srv,
		Logger:  a.log,
		Version: broker.Version,
		Product: cfg.ServerProduct,
		Listeners: []mgmt.Listener{
			{Protocol: "amqp", Addr: l.Addr().String()},
			{Protocol: "http", Addr: ml.Addr().String()},
			{Protocol: "clustering", Addr: a.clusterAddr},
			{Protocol: "prometheus", Addr: pl.Addr().String()},
		},
	})
	r := &running{
		srv: srv, amqp: l, httpAddr: ml.Addr().String(), serveErrs: make(chan error, 2),
		http:     &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)},
		prom:     &http.Server{Handler: mgmt.NewMetrics(srv, broker.Version), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)},
		promAddr: pl.Addr().String(),
	}
	apiCtx, stopAPI := context.WithCancel(context.Background())
	r.stopAPI = stopAPI
	r.wg.Add(4)
	go func() {
		defer r.wg.Done()
		api.Run(apiCtx)
	}()
	go func() {
		defer r.wg.Done()
		a.serve(func() error { return srv.Serve(l) })
	}()
	go func() {
		defer r.wg.Done()
		a.serve(func() error { return r.http.Serve(ml) })
	}()
	go func() {
		defer r.wg.Done()
		a.serve(func() error { return r.prom.Serve(pl) })
	}()
	a.running = r
	a.log.Info("node started", "node", cfg.NodeName, "amqp", l.Addr().String(), "http", r.httpAddr, "prometheus", r.promAddr, "cluster", a.clusterAddr, "data_dir", cfg.DataDir, "version", broker.Version)
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

// StopApp implements ctl.App: connections are closed with 320, as on
// SIGTERM, and the data directory is closed; the process stays.
func (a *app) StopApp(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.running
	if r == nil {
		return nil
	}
	a.running = nil
	r.stopAPI()
	shutdownCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	r.http.Shutdown(shutdownCtx)
	r.prom.Shutdown(shutdownCtx)
	cancel()
	err := r.srv.Close()
	r.wg.Wait()
	a.log.Info("broker application stopped", "node", a.cfg.NodeName)
	return err
}

// Reset implements ctl.App: it deletes the node's data, so that the next
// start_app begins as a new node. Like RabbitMQ's, it refuses while the
// app runs.
func (a *app) Reset(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running != nil {
		return fmt.Errorf("the broker application is running on node %s: stop it first with \"warrenctl stop_app\"", a.cfg.NodeName)
	}
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
	a.mu.Lock()
	defer a.mu.Unlock()
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
	if r := a.running; r != nil {
		info.Listeners = append(info.Listeners,
			ctl.Listener{Protocol: "amqp", Addr: r.amqp.Addr().String()},
			ctl.Listener{Protocol: "http", Addr: r.httpAddr},
			ctl.Listener{Protocol: "http/prometheus", Addr: r.promAddr})
	}
	return info
}
