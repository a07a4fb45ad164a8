// Command warren runs one message broker node that speaks AMQP 0-9-1 the way
// RabbitMQ does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/config"
	"github.com/warren-mq/warren/internal/mgmt"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "warren:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg := config.Defaults()
	fs := flag.NewFlagSet("warren", flag.ContinueOnError)
	configFile := fs.String("config", os.Getenv("RABBITMQ_CONFIG_FILE"), "rabbitmq.conf-style configuration file")
	dataDir := fs.String("data-dir", "", "data directory (default "+cfg.DataDir+")")
	amqpListen := fs.String("amqp-listen", "", "AMQP listen address (default "+cfg.AMQPListen+")")
	mgmtListen := fs.String("mgmt-listen", "", "management HTTP listen address (default "+cfg.MgmtListen+")")
	clusterListen := fs.String("cluster-listen", "", "cluster listen address (default "+cfg.ClusterListen+")")
	nodeName := fs.String("node-name", "", "node name, name@host (default "+cfg.NodeName+")")
	check := fs.Bool("t", false, "check the configuration and exit")
	cpuProfile := fs.String("cpu-profile", "", "write a CPU profile of the node to this file until it stops")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configFile != "" {
		if err := cfg.LoadFile(*configFile); err != nil {
			return err
		}
	}
	override := func(flagVal string, dst *string) {
		if flagVal != "" {
			*dst = flagVal
		}
	}
	override(*dataDir, &cfg.DataDir)
	override(*amqpListen, &cfg.AMQPListen)
	override(*mgmtListen, &cfg.MgmtListen)
	override(*clusterListen, &cfg.ClusterListen)
	override(*nodeName, &cfg.NodeName)
	if *check {
		fmt.Println("configuration ok")
		return nil
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel(cfg.LogLevel)}))
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	srv, err := broker.New(ctx, broker.Config{
		NodeName:                    cfg.NodeName,
		DataDir:                     cfg.DataDir,
		Logger:                      logger,
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
	api := mgmt.New(mgmt.Config{
		Broker:  srv,
		Logger:  logger,
		Version: broker.Version,
		Product: cfg.ServerProduct,
		Listeners: []mgmt.Listener{
			{Protocol: "amqp", Addr: l.Addr().String()},
			{Protocol: "http", Addr: ml.Addr().String()},
		},
	})
	httpSrv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	logger.Info("node started", "node", cfg.NodeName, "amqp", l.Addr().String(), "http", ml.Addr().String(), "data_dir", cfg.DataDir, "version", broker.Version)

	// The AMQP and HTTP servers and the rate sampler run until a signal or
	// a failure; then everything is stopped and waited for.
	apiCtx, stopAPI := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		api.Run(apiCtx)
	}()
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(l) }()
	go func() { serveErr <- httpSrv.Serve(ml) }()
	select {
	case <-ctx.Done():
		logger.Info("stopping node", "reason", "signal")
	case err = <-serveErr:
	}
	stopAPI()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	httpSrv.Shutdown(shutdownCtx)
	cancel()
	if cerr := srv.Close(); cerr != nil && err == nil {
		err = cerr
	}
	bg.Wait()
	if err == nil {
		err = <-serveErr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = <-serveErr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	logger.Info("node stopped")
	return err
}

func logLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warning":
		return slog.LevelWarn
	case "error", "critical", "none":
		return slog.LevelError
	}
	return slog.LevelInfo
}
