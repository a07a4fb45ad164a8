// Command warren runs one message broker node that speaks AMQP 0-9-1 the way
// RabbitMQ does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/warren-mq/warren/internal/cluster"
	"github.com/warren-mq/warren/internal/config"
	"github.com/warren-mq/warren/internal/ctl"
	"github.com/warren-mq/warren/internal/sdnotify"
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
	amqpsListen := fs.String("amqps-listen", "", "AMQP over TLS listen address, as listeners.ssl.default (default none; needs ssl_options.certfile and keyfile)")
	mgmtListen := fs.String("mgmt-listen", "", "management HTTP listen address (default "+cfg.MgmtListen+")")
	promListen := fs.String("prometheus-listen", "", "Prometheus metrics listen address (default "+cfg.PrometheusListen+")")
	clusterListen := fs.String("cluster-listen", "", "cluster listen address, for warrenctl and other nodes (default "+cfg.ClusterListen+")")
	nodeName := fs.String("node-name", os.Getenv("WARREN_NODENAME"), "node name, name@host or name@host:port (default "+cfg.NodeName+"; also WARREN_NODENAME)")
	cookieFile := fs.String("cookie-file", cluster.DefaultCookieFile(), "the cookie shared with warrenctl and other nodes; created with mode 0400 if missing")
	check := fs.Bool("t", false, "check the configuration and exit")
	cpuProfile := fs.String("cpu-profile", "", "write a CPU profile of the node to this file until it stops")
	detached := fs.Bool("detached", false, "run in the background, as rabbitmq-server -detached: the log goes to DATA-DIR.log")
	pidFile := fs.String("pid-file", os.Getenv("RABBITMQ_PID_FILE"), "write the process id here while the node runs (default DATA-DIR.pid)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var configFiles []string
	if *configFile != "" {
		if err := cfg.LoadFile(*configFile); err != nil {
			return err
		}
		configFiles = append(configFiles, *configFile)
	}
	override := func(flagVal string, dst *string) {
		if flagVal != "" {
			*dst = flagVal
		}
	}
	override(*dataDir, &cfg.DataDir)
	override(*amqpListen, &cfg.AMQPListen)
	override(*amqpsListen, &cfg.AMQPSListen)
	override(*mgmtListen, &cfg.MgmtListen)
	override(*promListen, &cfg.PrometheusListen)
	override(*clusterListen, &cfg.ClusterListen)
	override(*nodeName, &cfg.NodeName)
	self, err := cluster.ParseNodeName(cfg.NodeName, "")
	if err != nil {
		return err
	}
	if self.Port != 0 && *clusterListen == "" {
		// warren@host:25673 listens on 25673 unless told otherwise.
		cfg.ClusterListen = ":" + strconv.Itoa(self.Port)
	}
	// Certificates and keys are read now, so that -t and a detached start
	// report a bad one before anything runs.
	tlsFor, err := cfg.TLSConfigs()
	if err != nil {
		return err
	}
	if cfg.LoadDefinitions != "" {
		if _, err := readDefinitions(cfg.LoadDefinitions); err != nil {
			return err
		}
	}
	if *check {
		fmt.Println("configuration ok")
		return nil
	}
	if *pidFile == "" {
		*pidFile = filepath.Clean(cfg.DataDir) + ".pid"
	}
	if *detached {
		return detach(args, cfg.NodeName, *pidFile, filepath.Clean(cfg.DataDir)+".log")
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
	cookie, err := cluster.ReadCookie(*cookieFile, true)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if err := self.Resolve(ctx); err != nil {
		return fmt.Errorf("node name %s: %w", cfg.NodeName, err)
	}
	a := newApp(cfg, configFiles, logger)
	a.id = cluster.Identity{Cookie: cookie, Name: cfg.NodeName, TLS: tlsFor.ClusterClient}
	// The cluster port stays open while the app is stopped, so that
	// warrenctl can start it again.
	cl, err := net.Listen("tcp", cfg.ClusterListen)
	if err != nil {
		return fmt.Errorf("listen for the cluster port: %w", err)
	}
	a.clusterAddr = cl.Addr().String()
	a.advertise = self.Addr(cl.Addr().(*net.TCPAddr).Port)
	cs := cluster.NewServer(cookie, tlsFor.ClusterServer, logger)
	cs.Handle(cluster.ServiceCtl, ctl.NewServer(a, logger).ServeConn)
	cs.Handle(cluster.ServiceRaft, a.serveRaft)
	cs.Handle(cluster.ServiceMeta, a.serveMeta)
	cs.Handle(cluster.ServiceQueue, a.serveQueue)
	clusterErr := make(chan error, 1)
	go func() { clusterErr <- cs.Serve(cl) }()
	if err := os.WriteFile(*pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		cs.Close()
		<-clusterErr
		return fmt.Errorf("write pid file: %w", err)
	}
	defer os.Remove(*pidFile)

	if err := a.StartApp(ctx); err != nil {
		cs.Close()
		<-clusterErr
		return err
	}
	// Under systemd (Type=notify), start returns now: the node serves.
	if _, err := sdnotify.Notify("READY=1", "STATUS=serving AMQP"); err != nil {
		logger.Warn("cannot tell systemd the node is ready", "error", err)
	}
	stopWatch := func() {}
	if cfg.PartitionHandling == "pause_minority" {
		watchCtx, cancel := context.WithCancel(ctx)
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			a.watchPartitions(watchCtx)
		}()
		stopWatch = func() {
			cancel()
			<-watched
		}
	}
	select {
	case <-ctx.Done():
		logger.Info("stopping node", "reason", "signal")
	case <-a.stopRequested:
		logger.Info("stopping node", "reason", "warrenctl stop")
	case err = <-a.failed:
		logger.Error("stopping node", "reason", err)
	case err = <-clusterErr:
		logger.Error("stopping node", "reason", err)
	}
	sdnotify.Notify("STOPPING=1")
	stopWatch()
	if serr := a.StopApp(context.Background()); serr != nil && err == nil {
		err = serr
	}
	cs.Close()
	logger.Info("node stopped")
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
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

// detach starts the node again in the background, in a session of its
// own with its log in logFile, and returns once it has written its pid
// file, as rabbitmq-server -detached does; if it stops first, the end of
// its log says why.
func detach(args []string, node, pidFile, logFile string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	var childArgs []string
	for _, a := range args {
		switch strings.TrimLeft(a, "-") {
		case "detached", "detached=true":
			continue
		}
		childArgs = append(childArgs, a)
	}
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("detach: open log: %w", err)
	}
	defer log.Close()
	os.Remove(pidFile)
	cmd := exec.Command(self, childArgs...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	want := strconv.Itoa(cmd.Process.Pid)
	logStart, _ := log.Seek(0, io.SeekEnd)
	// Wait for the pid file, then for the app to start: a node that waits
	// for the rest of its cluster may take longer, and is left to it.
	deadline, hasPid := time.Now().Add(30*time.Second), false
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logFile)
			tail := string(b[min(int(logStart), len(b)):])
			return fmt.Errorf("node %s stopped at start (%v); its log (%s) says:\n%s", node, err, logFile, tail)
		case <-time.After(50 * time.Millisecond):
		}
		if !hasPid {
			if b, err := os.ReadFile(pidFile); err == nil && strings.TrimSpace(string(b)) == want {
				hasPid, deadline = true, time.Now().Add(10*time.Second)
			}
			continue
		}
		if b, err := os.ReadFile(logFile); err == nil && strings.Contains(string(b[min(int(logStart), len(b)):]), "msg=\"node started\"") {
			fmt.Printf("warren: node %s running in the background, pid %s (pid file %s, log %s)\n", node, want, pidFile, logFile)
			return nil
		}
	}
	if hasPid {
		fmt.Printf("warren: node %s running in the background, pid %s, still starting (waiting for its cluster?); see %s\n", node, want, logFile)
		return nil
	}
	return fmt.Errorf("node %s (pid %s) has not written %s after 30s; see %s", node, want, pidFile, logFile)
}
