// Package cli is warren-lb's command line: haproxy-compatible flags
// (-f, -c, -D, -db, -p, -sf, -st, -q, -v), signal handling and reloads.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/warren-mq/warren/internal/lb"
	"github.com/warren-mq/warren/internal/lb/config"
	"github.com/warren-mq/warren/internal/sdnotify"
)

// Version is reported by -v and on the stats page.
const Version = "warren-lb 0.1 (haproxy 2.6 configuration compatible)"

// daemonEnv marks the re-executed child of -D.
const daemonEnv = "WARREN_LB_DAEMON_CHILD"

// Flags are the parsed command line.
type Flags struct {
	Files      []string
	Check      bool
	Daemon     bool
	Foreground bool
	PidFile    string
	SoftStop   []int // -sf
	HardStop   []int // -st
	Quiet      bool
}

// ParseArgs reads haproxy-style arguments: -sf and -st take every
// following numeric argument.
func ParseArgs(args []string) (*Flags, error) {
	f := &Flags{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("option %s expects an argument", a)
			}
			i++
			return args[i], nil
		}
		switch a {
		case "-f":
			v, err := next()
			if err != nil {
				return nil, err
			}
			f.Files = append(f.Files, v)
		case "-c":
			f.Check = true
		case "-D":
			f.Daemon = true
		case "-db":
			f.Foreground = true
		case "-q":
			f.Quiet = true
		case "-p":
			v, err := next()
			if err != nil {
				return nil, err
			}
			f.PidFile = v
		case "-sf", "-st":
			for i+1 < len(args) {
				pid, err := strconv.Atoi(args[i+1])
				if err != nil {
					break
				}
				i++
				if a == "-sf" {
					f.SoftStop = append(f.SoftStop, pid)
				} else {
					f.HardStop = append(f.HardStop, pid)
				}
			}
		case "-v", "-vv", "-V":
		default:
			return nil, fmt.Errorf("unknown option '%s'", a)
		}
	}
	if len(f.Files) == 0 {
		return nil, errors.New("no configuration file specified (use -f)")
	}
	return f, nil
}

// Main runs warren-lb and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-v" || args[0] == "-vv") {
		fmt.Fprintln(stdout, Version)
		return 0
	}
	flags, err := ParseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "[ALERT] %v\nUsage: warren-lb -f <cfgfile> [-f ...] [-c] [-D | -db] [-p <pidfile>] [-sf|-st <pid>*] [-q]\n", err)
		return 1
	}
	res, err := config.ParseFiles(flags.Files)
	if res != nil && !flags.Quiet {
		for _, w := range res.Warnings {
			fmt.Fprintf(stderr, "[WARNING] config : %s\n", w.Error())
		}
		for _, a := range res.Alerts {
			fmt.Fprintf(stderr, "[ALERT] config : %s\n", a.Error())
		}
	}
	if err != nil {
		var es config.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				fmt.Fprintf(stderr, "[ALERT] config : %s\n", e.Error())
			}
		} else {
			fmt.Fprintf(stderr, "[ALERT] config : %v\n", err)
		}
		fmt.Fprintln(stderr, "[ALERT] config : Fatal errors found in configuration.")
		return 1
	}
	cfg := res.Config
	if flags.Check {
		if !flags.Quiet {
			if len(res.Warnings) > 0 {
				fmt.Fprintln(stdout, "Warnings were found.")
			}
			fmt.Fprintln(stdout, "Configuration file is valid")
		}
		return 0
	}
	daemon := (flags.Daemon || cfg.Global.Daemon) && !flags.Foreground
	if daemon && os.Getenv(daemonEnv) == "" {
		return spawnDaemon(args, stderr)
	}
	return run(flags, cfg, stderr)
}

// spawnDaemon re-executes warren-lb detached and waits until the child
// reports that it is serving (or why it is not).
func spawnDaemon(args []string, stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "[ALERT] cannot daemonize: %v\n", err)
		return 1
	}
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(stderr, "[ALERT] cannot daemonize: %v\n", err)
		return 1
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), daemonEnv+"=1")
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "[ALERT] cannot daemonize: %v\n", err)
		return 1
	}
	_ = w.Close()
	msg, _ := io.ReadAll(r)
	_ = r.Close()
	if string(msg) != "ok\n" {
		fmt.Fprintf(stderr, "%s", msg)
		return 1
	}
	_ = cmd.Process.Release()
	return 0
}

func run(flags *Flags, cfg *config.Config, stderr io.Writer) int {
	var ready *os.File
	if os.Getenv(daemonEnv) != "" {
		ready = os.NewFile(3, "ready")
		devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err == nil {
			stderr = devnull
		}
	}
	fail := func(format string, a ...any) int {
		msg := fmt.Sprintf("[ALERT] "+format+"\n", a...)
		fmt.Fprint(stderr, msg)
		if ready != nil {
			_, _ = ready.WriteString(msg)
			_ = ready.Close()
		}
		return 1
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// State from the process being replaced, read before we take over its
	// stats socket.
	var oldState string
	if len(flags.SoftStop)+len(flags.HardStop) > 0 {
		oldState = fetchServersState(cfg)
	}
	l, err := lb.New(cfg, lb.Options{Logger: logger, ReusePort: true, Version: Version})
	if err != nil {
		return fail("%v", err)
	}
	if oldState != "" {
		n := l.ApplyServersState(oldState)
		logger.Info("restored server state from previous process", "servers", n)
	}
	pidFile := flags.PidFile
	if pidFile == "" && os.Getenv(daemonEnv) != "" {
		pidFile = cfg.Global.PidFile
	}
	if pidFile != "" {
		if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			l.Close()
			return fail("cannot write pidfile %s: %v", pidFile, err)
		}
		defer os.Remove(pidFile)
	}
	for _, pid := range flags.SoftStop {
		_ = syscall.Kill(pid, syscall.SIGUSR1)
	}
	for _, pid := range flags.HardStop {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	if ready != nil {
		_, _ = ready.WriteString("ok\n")
		_ = ready.Close()
	}
	// Under systemd (Type=notify), start returns now: the listeners are
	// bound.
	if _, err := sdnotify.Notify("READY=1"); err != nil {
		logger.Warn("cannot tell systemd warren-lb is ready", "error", err)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for sig := range sigs {
		switch sig {
		case syscall.SIGUSR2:
			sdnotify.Notify(sdnotify.Reloading()...)
			res, err := config.ParseFiles(flags.Files)
			if res != nil && !flags.Quiet {
				// HAProxy's new worker prints its warnings at a reload too.
				for _, w := range res.Warnings {
					logger.Warn("config: " + w.Error())
				}
				for _, a := range res.Alerts {
					logger.Error("config: " + a.Error())
				}
			}
			if err == nil {
				err = l.Reload(res.Config)
			}
			// Ready again either way: a failed reload keeps serving.
			sdnotify.Notify("READY=1")
			if err != nil {
				logger.Error("reload failed, keeping the running configuration", "error", err)
				continue
			}
			logger.Info("configuration reloaded", "files", strings.Join(flags.Files, ","))
		case syscall.SIGUSR1:
			sdnotify.Notify("STOPPING=1")
			logger.Info("soft stop: no longer accepting connections, waiting for active ones", "active", l.ActiveConns())
			_ = l.Shutdown(context.Background())
			return 0
		case syscall.SIGHUP:
			logger.Info("state", "active_connections", l.ActiveConns())
		default:
			sdnotify.Notify("STOPPING=1")
			l.Close()
			return 0
		}
	}
	return 0
}

// fetchServersState asks the running process, through the first stats
// socket of cfg, for its servers' state.
func fetchServersState(cfg *config.Config) string {
	for _, s := range cfg.Global.StatsSockets {
		network := s.Network
		if network == "" {
			network = "unix"
		}
		c, err := net.DialTimeout(network, s.Path, time.Second)
		if err != nil {
			continue
		}
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = c.Write([]byte("show servers state\n"))
		out, _ := io.ReadAll(c)
		_ = c.Close()
		return string(out)
	}
	return ""
}
