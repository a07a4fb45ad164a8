package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// globalIgnored lists global keywords that only matter to HAProxy's process
// model or to features outside TCP load balancing: they are accepted and have
// no effect. The value is the minimum number of arguments.
var globalIgnored = map[string]int{
	"nbthread": 1, "uid": 1, "gid": 1, "user": 1, "group": 1, "chroot": 1, "quiet": 0,
	"node": 1, "description": 1, "ulimit-n": 1, "master-worker": 0, "spread-checks": 1,
	"ca-base": 1, "crt-base": 1, "log-tag": 1, "log-send-hostname": 0, "hard-stop-after": 1,
	"noepoll": 0, "nopoll": 0, "nosplice": 0, "noreuseport": 0, "maxconnrate": 1, "maxsessrate": 1,
	"cpu-map": 2, "setenv": 2, "presetenv": 2, "unsetenv": 1, "resetenv": 0, "server-state-file": 1,
	"server-state-base": 1, "localpeer": 1, "expose-experimental-directives": 0,
	"insecure-fork-wanted": 0, "zero-warning": 0, "busy-polling": 0, "pp2-never-send-local": 0,
	"external-check": 0, "unix-bind": 1, "maxpipes": 1, "maxsslconn": 1, "maxcomprate": 1,
	"maxcompcpuusage": 1, "maxzlibmem": 1, "grace": 1, "log-send-hostname ": 0,
	"ssl-default-bind-ciphers": 1, "ssl-default-bind-options": 1, "ssl-default-server-ciphers": 1,
	"ssl-default-server-options": 1, "ssl-server-verify": 1, "ssl-dh-param-file": 1,
	"ssl-default-bind-ciphersuites": 1, "ssl-default-server-ciphersuites": 1, "h1-case-adjust": 2,
	"set-dumpable": 0, "strict-limits": 0, "numa-cpu-mapping": 0, "thread-groups": 1,
}

// globalIgnoredPrefixes are keyword families accepted without effect.
var globalIgnoredPrefixes = []string{"tune.", "ssl-"}

func (p *parser) globalKeyword(w []string) {
	g := &p.cfg.Global
	kw := w[0]
	switch kw {
	case "daemon":
		g.Daemon = true
	case "maxconn":
		// As HAProxy: extra arguments are fatal, a second maxconn is an
		// alert that keeps the first value, and the value is read with
		// atol (so "10k" is 10 and a word is 0) without a warning.
		if len(w) > 2 {
			p.errorf("'%s' cannot handle unexpected argument '%s'.", kw, w[2])
			return
		}
		if g.MaxConn != 0 {
			p.alertf("'%s' already specified. Continuing.", kw)
			return
		}
		if len(w) < 2 {
			p.errorf("'%s' expects an integer argument.", kw)
			return
		}
		g.MaxConn = atol(w[1])
	case "pidfile":
		if len(w) < 2 {
			p.errorf("'%s' expects a file name as an argument.", kw)
			return
		}
		g.PidFile = w[1]
	case "nbproc":
		// HAProxy 2.5+ rejects nbproc; warren-lb accepts it so configs written
		// for older versions keep working, and runs one process regardless.
		if len(w) < 2 {
			p.errorf("'nbproc' expects an integer argument.")
			return
		}
		p.warnf("'nbproc' is ignored: warren-lb always runs one process.")
	case "log":
		if len(w) >= 2 && w[1] == "global" {
			p.errorf("'log global' is not supported in the 'global' section")
			return
		}
		if t, ok := p.logTarget(w); ok {
			g.Logs = append(g.Logs, t)
		}
	case "stats":
		p.globalStats(w)
	default:
		if n, ok := globalIgnored[kw]; ok || hasPrefixAny(kw, globalIgnoredPrefixes...) {
			if len(w)-1 < n {
				p.errorf("'%s' expects %d argument(s).", kw, n)
			}
			return
		}
		p.errorf("unknown keyword '%s' in 'global' section", kw)
	}
}

func (p *parser) globalStats(w []string) {
	if len(w) < 2 {
		p.errorf("'stats' expects 'socket', 'maxconn', 'timeout' or 'bind-process'.")
		return
	}
	switch w[1] {
	case "socket":
		if len(w) < 3 {
			p.errorf("'stats socket' expects an address or a unix socket path.")
			return
		}
		// Parameters (uid, gid, mode, level, user, group, expose-fd ...) set
		// permissions only; each takes one value except the flag ones.
		flags := map[string]bool{"expose-fd": true, "transparent": true, "v4v6": true, "v6only": true, "defer-accept": true}
		withArg := map[string]bool{"uid": true, "gid": true, "mode": true, "level": true, "user": true, "group": true, "name": true, "id": true, "maxconn": true, "backlog": true, "severity-output": true, "process": true, "thread": true, "interface": true, "nice": true}
		level := "operator" // HAProxy's default
		for i := 3; i < len(w); i++ {
			switch {
			case flags[w[i]]:
				if w[i] == "expose-fd" {
					i++
				}
			case withArg[w[i]]:
				if i+1 >= len(w) {
					p.errorf("'stats socket %s' : '%s' : missing value.", w[2], w[i])
					return
				}
				if w[i] == "level" {
					if w[i+1] != "user" && w[i+1] != "operator" && w[i+1] != "admin" {
						p.errorf("'stats socket %s' : 'level' only supports 'user', 'operator', and 'admin'", w[2])
					}
					level = w[i+1]
				}
				i++
			default:
				p.errorf("'stats socket %s' : unknown keyword '%s'.", w[2], w[i])
				return
			}
		}
		path, network := w[2], "unix"
		switch {
		case strings.HasPrefix(path, "unix@"):
			path = strings.TrimPrefix(path, "unix@")
		case strings.HasPrefix(path, "/") || strings.HasPrefix(path, "."):
		default:
			network = "tcp"
			path = strings.TrimPrefix(strings.TrimPrefix(path, "ipv4@"), "ipv6@")
			host, port, err := splitAddr(path)
			if err != nil || port == "" {
				p.errorf("'stats socket %s' : expects a unix socket path or an address:port", w[2])
				return
			}
			path = net.JoinHostPort(host, port)
		}
		p.cfg.Global.StatsSockets = append(p.cfg.Global.StatsSockets, StatsSocket{Path: path, Network: network, Level: level, Pos: p.pos})
	case "timeout":
		if len(w) < 3 {
			p.errorf("'stats timeout' expects a timeout value")
			return
		}
		if _, err := parseTime(w[2]); err != nil {
			p.errorf("'stats timeout' : %v", err)
		}
	case "maxconn":
		// HAProxy reads the value with atol: a missing or non-numeric
		// value is 0, which it refuses, and "5x" is 5.
		if len(w) < 3 || atol(w[2]) <= 0 {
			p.errorf("'stats maxconn' expects a positive value")
		}
	case "bind-process":
	default:
		p.errorf("'stats' only supports 'socket', 'maxconn', 'bind-process' and 'timeout' (got '%s').", w[1])
	}
}

var facilities = []string{"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "auth2", "ftp", "ntp", "audit", "alert", "cron2",
	"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"}

var levels = []string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// logTarget parses "log <addr> [len <n>] [format <f>] [sample <r>:<s>] <facility> [<level> [<minlevel>]]".
func (p *parser) logTarget(w []string) (LogTarget, bool) {
	if len(w) < 3 {
		p.errorf("'log' expects either <address[:port]> and <facility> or 'global' as arguments.")
		return LogTarget{}, false
	}
	t := LogTarget{Level: 7, Format: "rfc3164"}
	addr := w[1]
	args := w[2:]
	for len(args) >= 2 && (args[0] == "len" || args[0] == "format" || args[0] == "sample") {
		switch args[0] {
		case "len":
			if _, err := parseInt("len", args[1]); err != nil {
				p.errorf("'log' : invalid 'len' value '%s'", args[1])
				return t, false
			}
		case "format":
			switch args[1] {
			case "rfc3164", "rfc5424", "raw", "short", "local", "priority", "timed", "iso":
				t.Format = args[1]
			default:
				p.errorf("unknown log format '%s'", args[1])
				return t, false
			}
		}
		args = args[2:]
	}
	if len(args) == 0 {
		p.errorf("'log' expects <facility> as an argument.")
		return t, false
	}
	t.Facility = indexOf(facilities, args[0])
	if t.Facility < 0 {
		p.errorf("unknown log facility '%s'", args[0])
		return t, false
	}
	if len(args) > 1 {
		if t.Level = indexOf(levels, args[1]); t.Level < 0 {
			p.errorf("unknown optional log level '%s'", args[1])
			return t, false
		}
	}
	if len(args) > 2 {
		if indexOf(levels, args[2]) < 0 {
			p.errorf("unknown optional minimum log level '%s'", args[2])
			return t, false
		}
	}
	if len(args) > 3 {
		p.errorf("'log' : too many arguments")
		return t, false
	}
	switch {
	case addr == "stdout" || addr == "stderr":
		t.Address = addr
	case strings.HasPrefix(addr, "/"):
		t.Address = "unix:" + addr
	default:
		a := strings.TrimPrefix(strings.TrimPrefix(addr, "udp@"), "ipv4@")
		host, port := a, "514"
		if h, pt, err := net.SplitHostPort(a); err == nil {
			host, port = h, pt
		}
		if _, err := strconv.Atoi(port); err != nil {
			p.errorf("'log' : invalid port in address '%s'", addr)
			return t, false
		}
		if net.ParseIP(host) == nil {
			if _, err := p.resolve(host); err != nil {
				p.errorf("'log' : could not resolve address '%s'", addr)
				return t, false
			}
		}
		t.Address = net.JoinHostPort(host, port)
	}
	return t, true
}

var _ = fmt.Sprintf
