package config

import (
	"net"
	"strconv"
	"strings"
)

// bindAddrs parses "[addr]:port[-port][,...]" and adds each address.
func (p *parser) bindAddrs(spec string) {
	for _, one := range strings.Split(spec, ",") {
		host, ports, err := splitAddr(one)
		if err != nil {
			p.errorf("'bind %s' : %v", spec, err)
			return
		}
		if ports == "" {
			p.errorf("'bind' : missing port specification in '%s'", one)
			return
		}
		lo, hi, err := portRange(ports)
		if err != nil {
			p.errorf("'bind %s' : %v", spec, err)
			return
		}
		if host != "" && net.ParseIP(host) == nil {
			addrs, err := p.resolve(host)
			if err != nil || len(addrs) == 0 {
				p.errorf("'bind %s' : could not resolve address '%s'.", spec, host)
				return
			}
			host = addrs[0]
		}
		for port := lo; port <= hi; port++ {
			p.cur.Binds = append(p.cur.Binds, Bind{Addr: net.JoinHostPort(host, strconv.Itoa(port)), Pos: p.pos})
		}
	}
}

// splitAddr separates host and port from "host:port", "[v6]:port", ":port",
// "*:port" or "ipv4@host:port".
func splitAddr(s string) (host, port string, err error) {
	for _, pfx := range []string{"ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@"} {
		s = strings.TrimPrefix(s, pfx)
	}
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", errf("invalid address '%s'", s)
		}
		host = s[1:end]
		rest := s[end+1:]
		if rest != "" && !strings.HasPrefix(rest, ":") {
			return "", "", errf("invalid address '%s'", s)
		}
		return host, strings.TrimPrefix(rest, ":"), nil
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		host = s
	} else {
		host, port = s[:i], s[i+1:]
	}
	if strings.Count(host, ":") > 0 && net.ParseIP(host) == nil {
		return "", "", errf("invalid address '%s'", s)
	}
	if host == "*" || host == "0.0.0.0" || host == "::" {
		host = ""
	}
	return host, port, nil
}

func portRange(s string) (int, int, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.Atoi(lo)
	if err != nil || a < 1 || a > 65535 {
		return 0, 0, errf("invalid port '%s'", s)
	}
	if !isRange {
		return a, a, nil
	}
	b, err := strconv.Atoi(hi)
	if err != nil || b < a || b > 65535 {
		return 0, 0, errf("invalid port range '%s'", s)
	}
	return a, b, nil
}

// bindParams checks the parameters after "bind addr".
func (p *parser) bindParams(w []string) {
	flags := map[string]bool{"transparent": true, "v4v6": true, "v6only": true, "defer-accept": true, "tfo": true, "accept-proxy": true, "accept-netscaler-cip": false, "ssl": false}
	withArg := map[string]bool{"name": true, "id": true, "interface": true, "maxconn": true, "backlog": true, "process": true, "thread": true, "nice": true, "mss": true, "tcp-ut": true, "uid": true, "gid": true, "mode": true, "user": true, "group": true, "namespace": true, "level": true}
	for i := 2; i < len(w); i++ {
		switch {
		case w[i] == "accept-proxy":
			p.errorf("'bind %s' : 'accept-proxy' is not supported by warren-lb", w[1])
		case flags[w[i]]:
		case withArg[w[i]]:
			if i+1 >= len(w) {
				p.errorf("'bind %s' in section '%s' : '%s' : missing value", w[1], p.section, w[i])
				return
			}
			i++
			if w[i-1] == "maxconn" {
				if n := atol(w[i]); n < 0 {
					p.errorf("'bind %s' in section '%s' : 'maxconn' : invalid value %d, must be >= 0", w[1], p.section, n)
					return
				}
			}
		case w[i] == "ssl" || w[i] == "crt":
			p.errorf("'bind %s' : TLS ('%s') is not supported by warren-lb", w[1], w[i])
			return
		default:
			p.errorf("'bind %s' unknown keyword '%s'.", w[1], w[i])
			return
		}
	}
}

func (p *parser) server(w []string) {
	px := p.cur
	if len(w) < 3 {
		p.errorf("'server' expects <name> and <addr>[:<port>] as arguments.")
		return
	}
	name := w[1]
	if bc := checkName(name); bc != nil {
		p.errorf("character '%c' is not permitted in server name '%s'.", bc.c, name)
		return
	}
	host, port, err := splitAddr(w[2])
	if err != nil {
		p.errorf("'server %s' : %v", name, err)
		return
	}
	if port != "" {
		if n, err := strconv.Atoi(strings.TrimLeft(port, "+-")); err != nil || n > 65535 {
			p.errorf("'server %s' : invalid port in address '%s'", name, w[2])
			return
		}
	}
	if host == "" {
		p.errorf("'server %s' : invalid address: '%s'", name, w[2])
		return
	}
	if net.ParseIP(host) == nil {
		addrs, err := p.resolve(host)
		if err != nil || len(addrs) == 0 {
			p.errorf("'server %s' : could not resolve address '%s'.", name, host)
			return
		}
		host = addrs[0]
	}
	for _, s := range px.Servers {
		if s.Name == name {
			p.errorf("'server %s' : backend '%s' has already a server named '%s' (declared at %s).", name, px.Name, name, s.Pos)
			return
		}
	}
	s := &Server{Name: name, Addr: net.JoinHostPort(host, port), Pos: p.pos, ServerParams: px.defaultServer}
	if port == "" {
		s.Addr = host
	}
	if p.serverParams(w, 3, &s.ServerParams, s) {
		px.Servers = append(px.Servers, s)
	}
}

// serverParams parses the parameters of a server or default-server line
// from index start; it reports whether the line was valid.
func (p *parser) serverParams(w []string, start int, sp *ServerParams, srv *Server) bool {
	what := "default-server"
	if srv != nil {
		what = "server " + srv.Name
	}
	ok := true
	for i := start; i < len(w); i++ {
		kw := w[i]
		arg := func() (string, bool) {
			if i+1 >= len(w) {
				p.errorf("'%s' : '%s' expects an argument.", what, kw)
				ok = false
				return "", false
			}
			i++
			return w[i], true
		}
		dur := func(target *int64) {
			a, has := arg()
			if !has {
				return
			}
			d, err := parseTime(a)
			if err != nil || d <= 0 {
				if err == nil {
					p.errorf("'%s' : '%s' expects a positive delay.", what, kw)
				} else {
					p.errorf("'%s' : '%s' : %v", what, kw, err)
				}
				ok = false
				return
			}
			*target = int64(d)
		}
		switch kw {
		case "check":
			sp.Check = true
		case "no-check":
			sp.Check = false
		case "inter":
			dur((*int64)(&sp.Inter))
		case "fastinter":
			dur((*int64)(&sp.FastInter))
		case "downinter":
			dur((*int64)(&sp.DownInter))
		case "rise", "fall":
			if a, has := arg(); has {
				n, err := strconv.Atoi(a)
				if err != nil || n <= 0 {
					p.errorf("'%s' : '%s' has to be > 0.", what, kw)
					ok = false
				}
				if kw == "rise" {
					sp.Rise = n
				} else {
					sp.Fall = n
				}
			}
		case "weight":
			if a, has := arg(); has {
				n := p.laxInt(kw, a)
				if n > 256 {
					p.errorf("'%s' : weight of server is not within 0 and 256 (%d).", what, n)
					ok = false
				}
				sp.Weight = n
			}
		case "backup":
			sp.Backup = true
		case "non-stick", "no-backup":
			sp.Backup = sp.Backup && kw != "no-backup"
		case "maxconn", "maxqueue":
			// HAProxy takes the next word, whatever it is, and reads it
			// with atol: at the end of the line the value is 0 (no
			// limit), and "maxconn check" sets 0 and swallows "check".
			// Neither case is reported.
			var n int
			if i+1 < len(w) {
				i++
				n = atol(w[i])
			}
			if kw == "maxconn" {
				sp.MaxConn = n
			} else {
				sp.MaxQueue = n
			}
		case "disabled":
			sp.Disabled = true
		case "enabled":
			sp.Disabled = false
		case "port":
			if a, has := arg(); has {
				sp.CheckPort = p.laxInt(kw, a) & 0xffff
			}
		case "addr":
			if a, has := arg(); has {
				if net.ParseIP(a) == nil {
					p.errorf("'%s' : invalid address '%s' in 'addr'.", what, a)
					ok = false
				}
				sp.CheckAddr = a
			}
		case "send-proxy":
			sp.SendProxy = true
		case "send-proxy-v2":
			sp.SendProxyV2 = true
		case "no-send-proxy":
			sp.SendProxy = false
		case "no-send-proxy-v2":
			sp.SendProxyV2 = false
		case "id", "cookie", "init-addr", "tcp-ut", "pool-max-conn", "pool-purge-delay", "max-reuse":
			// Identification, HTTP-only or connection-pool settings:
			// accepted without effect.
			arg()
		case "tfo", "no-tfo":
		case "on-marked-down":
			if a, has := arg(); has {
				if a != "shutdown-sessions" {
					p.errorf("'%s' : 'on-marked-down %s' is not supported by warren-lb (only shutdown-sessions).", what, a)
					ok = false
				}
				sp.ShutdownOnDown = true
			}
		case "on-marked-up":
			if a, has := arg(); has {
				if a != "shutdown-backup-sessions" {
					p.errorf("'%s' : 'on-marked-up %s' is not supported by warren-lb (only shutdown-backup-sessions).", what, a)
					ok = false
				}
				sp.ShutdownBackupsOnUp = true
			}
		case "minconn", "slowstart", "observe", "on-error", "error-limit",
			"resolvers", "namespace", "agent-check", "agent-port", "agent-inter", "agent-send",
			"check-send-proxy", "ssl", "check-ssl", "redir", "track", "source", "usesrc":
			p.errorf("'%s' : '%s' is not supported by warren-lb.", what, kw)
			return false
		default:
			p.errorf("'%s' unknown keyword '%s'.", what, kw)
			return false
		}
	}
	return ok
}

type cfgErr string

func (e cfgErr) Error() string { return string(e) }

func errf(format string, args ...any) error {
	return cfgErr(sprintf(format, args...))
}
