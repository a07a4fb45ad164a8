package vrrp

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/warren-mq/warren/internal/sdnotify"
)

// Defaults of the command line, as keepalived's.
const (
	DefaultConfigFile = "/etc/keepalived/keepalived.conf"
	DefaultPidFile    = "/run/warren-vrrp.pid"
	DefaultStatusFile = "/tmp/warren-vrrp.data"
)

// Main is the warren-vrrp command: it parses the command line, and either
// checks a configuration (-t), prints a running daemon's status ("status"),
// or runs the daemon. It returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "status" {
		return statusCommand(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("warren-vrrp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		file, pidFile, statusFile string
		test, dontFork, console   bool
		detail, vrrpOnly          bool
	)
	for _, n := range []string{"f", "use-file"} {
		fs.StringVar(&file, n, DefaultConfigFile, "configuration file (keepalived.conf)")
	}
	for _, n := range []string{"t", "config-test"} {
		fs.BoolVar(&test, n, false, "check the configuration and exit")
	}
	for _, n := range []string{"n", "dont-fork"} {
		fs.BoolVar(&dontFork, n, false, "stay in the foreground")
	}
	for _, n := range []string{"l", "log-console"} {
		fs.BoolVar(&console, n, false, "log to the console instead of syslog")
	}
	for _, n := range []string{"D", "log-detail"} {
		fs.BoolVar(&detail, n, false, "detailed (debug) logging")
	}
	for _, n := range []string{"p", "pid", "r", "vrrp_pid"} {
		fs.StringVar(&pidFile, n, DefaultPidFile, "pid file")
	}
	for _, n := range []string{"P", "vrrp"} {
		fs.BoolVar(&vrrpOnly, n, false, "accepted for keepalived compatibility: warren-vrrp only does VRRP")
	}
	fs.StringVar(&statusFile, "status-file", DefaultStatusFile, "where SIGUSR1 writes the status dump")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := ParseConfigFile(file)
	if test {
		for _, w := range cfg.Warnings {
			fmt.Fprintf(stderr, "%s: warning: %s\n", w.Pos, w.Msg)
		}
		// As keepalived -t: a missing interface is worth a warning (it may
		// appear later), not a failed check.
		for _, in := range cfg.Instances {
			if _, ierr := net.InterfaceByName(in.Interface); in.Interface != "" && ierr != nil {
				fmt.Fprintf(stderr, "%s: warning: interface %s for vrrp_instance %s does not exist here\n", in.Pos, in.Interface, in.Name)
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			fmt.Fprintf(stderr, "configuration %s has errors\n", file)
			return 1
		}
		fmt.Fprintf(stdout, "configuration %s is valid: %d instance(s), %d script(s)\n", file, len(cfg.Instances), len(cfg.Scripts))
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if !dontFork {
		return daemonize(args, stderr)
	}
	log := newLogger(console, detail, stderr)
	for _, w := range cfg.Warnings {
		log.Warn("config: "+w.Msg, "at", w.Pos.String())
	}
	// Catch the signals before the pid file tells anyone where to send them:
	// SIGUSR1's default action would kill the process.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := writePidFile(pidFile); err != nil {
		log.Error("pid file", "err", err)
		return 1
	}
	defer os.Remove(pidFile)
	d, err := New(Options{Config: cfg, Logger: log})
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	// Under systemd (Type=notify), start returns now.
	if _, err := sdnotify.Notify("READY=1"); err != nil {
		log.Warn("cannot tell systemd warren-vrrp is ready", "err", err)
	}
	done := ctx.Done()
	for {
		select {
		case <-done:
			sdnotify.Notify("STOPPING=1")
			done = nil // Run returns on errc
		case err := <-errc:
			if done != nil && ctx.Err() != nil {
				// The stop and Run's return arrived together, and the
				// select took the return first.
				sdnotify.Notify("STOPPING=1")
			}
			if err != nil {
				log.Error("stopped", "err", err)
				return 1
			}
			return 0
		case s := <-sigs:
			if s == syscall.SIGHUP {
				sdnotify.Notify(sdnotify.Reloading()...)
				reload(d, file, log)
				sdnotify.Notify("READY=1")
				continue
			}
			if err := d.WriteStatusFile(statusFile); err != nil {
				log.Error("status dump", "err", err)
			} else {
				log.Info("status dump written", "file", statusFile)
			}
		}
	}
}

// reload re-reads the configuration (with its includes) and applies it, as
// keepalived does on SIGHUP. A configuration with errors, or one that
// cannot run here, is logged with every problem and its file:line, and the
// running configuration stays.
func reload(d *Daemon, file string, log *slog.Logger) {
	log.Info("reloading", "file", file)
	cfg, err := ParseConfigFile(file)
	var ce *ConfigError
	if errors.As(err, &ce) {
		for _, e := range ce.Diags {
			log.Error("reload: config: "+e.Msg, "at", e.Pos.String())
		}
	}
	if err != nil {
		if ce == nil {
			log.Error("reload: config", "err", err)
		}
		log.Error("reload refused: the configuration has errors; keeping the running one", "file", file)
		return
	}
	for _, w := range cfg.Warnings {
		log.Warn("config: "+w.Msg, "at", w.Pos.String())
	}
	if err := d.Reload(cfg); err != nil {
		log.Error("reload refused; keeping the running configuration", "err", err)
	}
}

func newLogger(console, detail bool, stderr io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if detail {
		level = slog.LevelDebug
	}
	var w io.Writer = stderr
	if !console {
		if sl, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "warren-vrrp"); err == nil {
			w = sl
		}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// daemonize starts a copy of the command in the background, in its own
// session, with -n added, and returns at once (Go cannot fork).
func daemonize(args []string, stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "warren-vrrp:", err)
		return 1
	}
	cmd := exec.Command(exe, append([]string{"-n"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "warren-vrrp:", err)
		return 1
	}
	return 0
}

func writePidFile(path string) error {
	if b, err := os.ReadFile(path); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid != os.Getpid() {
			if syscall.Kill(pid, 0) == nil {
				return fmt.Errorf("%s: warren-vrrp already running as pid %d", path, pid)
			}
		}
	}
	return os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
}

// statusCommand asks the daemon named by the pid file for a dump (SIGUSR1)
// and prints it.
func statusCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("warren-vrrp status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pidFile := fs.String("p", DefaultPidFile, "pid file of the running daemon")
	statusFile := fs.String("status-file", DefaultStatusFile, "status dump file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	b, err := os.ReadFile(*pidFile)
	if err != nil {
		fmt.Fprintln(stderr, "warren-vrrp status: is it running?", err)
		return 1
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		fmt.Fprintf(stderr, "warren-vrrp status: bad pid file %s\n", *pidFile)
		return 1
	}
	var before time.Time
	if fi, err := os.Stat(*statusFile); err == nil {
		before = fi.ModTime()
	}
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		fmt.Fprintf(stderr, "warren-vrrp status: signal pid %d: %v\n", pid, err)
		return 1
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if fi, err := os.Stat(*statusFile); err == nil && fi.ModTime().After(before) {
			data, err := os.ReadFile(*statusFile)
			if err == nil {
				_, _ = stdout.Write(data)
				return 0
			}
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Fprintf(stderr, "warren-vrrp status: no dump in %s from pid %d\n", *statusFile, pid)
	return 1
}
