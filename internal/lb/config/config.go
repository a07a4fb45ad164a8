package config

import "time"

// Config is everything read from one or more haproxy.cfg files.
type Config struct {
	Global Global
	// Proxies holds frontends, backends and listen sections in file order.
	// Defaults sections are folded into them and do not appear here.
	Proxies []*Proxy
}

// Global holds the global section.
type Global struct {
	// MaxConn caps concurrent client connections for the whole process;
	// zero means the default (see MaxConnOrDefault).
	MaxConn int
	// Daemon asks for the process to detach, as -D does.
	Daemon  bool
	PidFile string
	Logs    []LogTarget
	// StatsSockets are the unix sockets serving the runtime API.
	StatsSockets []StatsSocket
}

// MaxConnOrDefault returns the global maxconn, 4096 when unset.
func (g *Global) MaxConnOrDefault() int {
	if g.MaxConn > 0 {
		return g.MaxConn
	}
	return 4096
}

// StatsSocket is a "stats socket" line of the global section.
type StatsSocket struct {
	// Path is the unix socket path, or host:port when Network is "tcp".
	Path    string
	Network string
	// Level is "user" (read only), "operator" (the default: read, and
	// nothing that changes servers in warren-lb) or "admin".
	Level string
	Pos   Pos
}

// LogTarget is one "log" line: where to send logs and at which level.
type LogTarget struct {
	// Address is "host:port" for syslog over UDP, or "stdout" / "stderr".
	Address  string
	Facility int
	// Level is the highest syslog severity sent (7 = debug).
	Level int
	// Format is "rfc3164" (default), "rfc5424", "raw" or "short".
	Format string
}

// ProxyKind says which sort of section a proxy comes from.
type ProxyKind int

// Proxy kinds.
const (
	KindDefaults ProxyKind = iota
	KindFrontend
	KindBackend
	KindListen
)

// String returns the section name as written in the file.
func (k ProxyKind) String() string {
	return [...]string{"defaults", "frontend", "backend", "listen"}[k]
}

// haproxyType names the kind as HAProxy's messages do: a listen section
// is a "proxy".
func (k ProxyKind) haproxyType() string {
	if k == KindListen {
		return "proxy"
	}
	return k.String()
}

// HasFrontend reports whether the section accepts connections.
func (k ProxyKind) HasFrontend() bool { return k == KindFrontend || k == KindListen }

// HasBackend reports whether the section holds servers.
func (k ProxyKind) HasBackend() bool { return k == KindBackend || k == KindListen }

// Timeouts are a proxy's "timeout" settings; zero means unset, and an
// unset timeout is infinite, as in HAProxy: the wait it would bound ends
// only when the kernel or the peer ends it. "timeout queue" falls back to
// "timeout connect" (see QueueOrConnect).
type Timeouts struct {
	Connect, Client, Server, Check, Queue, ClientFin, ServerFin, Tunnel time.Duration
}

// QueueOrConnect returns how long a connection may wait in a queue:
// "timeout queue", else "timeout connect" as in HAProxy, else zero (no
// limit).
func (t Timeouts) QueueOrConnect() time.Duration {
	if t.Queue > 0 {
		return t.Queue
	}
	return t.Connect
}

// Options are the "option" flags warren-lb acts on.
type Options struct {
	TCPLog, HTTPLog, DontLogNull, DontLogNormal, Redispatch, ClientTCPKA, ServerTCPKA, AllBackups, TCPCheck, AMQPCheck bool
	// HTTPCheck is "option httpchk": health checks send an HTTP request.
	HTTPCheck bool
}

// HTTPCheck is the request of "option httpchk" and the "http-check
// expect" rule.
type HTTPCheck struct {
	Method, URI, Version string
	// Expect is "status", "rstatus", "string" or "rstring"; empty means
	// any 2xx or 3xx status.
	Expect string
	// ExpectValue is the status list, pattern or string to expect.
	ExpectValue string
	// ExpectNegate inverts the rule ("http-check expect ! ...").
	ExpectNegate bool
}

// Proxy is a frontend, backend or listen section after defaults were applied.
type Proxy struct {
	Name string
	Kind ProxyKind
	Pos  Pos
	// Mode is "tcp" or "http"; http proxies serve only the stats page.
	Mode     string
	Binds    []Bind
	Balance  string
	Servers  []*Server
	Options  Options
	Retries  int
	MaxConn  int
	Timeouts Timeouts
	// UseBackends are the use_backend rules, checked in order.
	UseBackends    []UseBackend
	DefaultBackend string
	// Logs are the proxy's log targets ("log global" copies the global ones).
	Logs      []LogTarget
	TCPChecks []TCPCheckStep
	HTTPCheck HTTPCheck
	Stats     Stats
	Disabled  bool

	defaultServer ServerParams
	logGlobal     bool
}

// RetriesOrDefault returns the number of connection retries, 3 by default.
func (p *Proxy) RetriesOrDefault() int {
	if p.Retries < 0 {
		return 3
	}
	return p.Retries
}

// Bind is one listening address.
type Bind struct {
	Addr string // host:port
	Pos  Pos
}

// UseBackend is a use_backend rule. Conditions are kept as text; warren-lb
// only evaluates rules without a condition, or with "if TRUE" / "unless FALSE".
type UseBackend struct {
	Backend string
	Cond    []string
	Pos     Pos
}

// TCPCheckStep is a "tcp-check" rule.
type TCPCheckStep struct {
	// Action is "connect", "send", "send-binary", "expect" or "comment".
	Action string
	// Negate inverts an expect rule ("expect ! string ...").
	Negate bool
	// Match is "string", "binary", "rstring" or "rbinary" for expect.
	Match string
	// Data is the payload to send or the pattern to expect (decoded for binary).
	Data string
	Port int
	Pos  Pos
}

// Stats holds a proxy's "stats" settings.
type Stats struct {
	Enable      bool
	URI         string
	Refresh     time.Duration
	Realm       string
	Auth        []UserPass
	HideVersion bool
	Admin       bool
}

// UserPass is one "stats auth user:pass" credential.
type UserPass struct{ User, Pass string }

// ServerParams are the settings a "default-server" line or a server line holds.
type ServerParams struct {
	Check                       bool
	Inter, FastInter, DownInter time.Duration
	Rise, Fall                  int
	Weight                      int
	Backup                      bool
	// MaxConn is the most connections the server takes at once; zero means
	// no limit. Connections beyond it wait in a queue.
	MaxConn int
	// MaxQueue is the most connections waiting in the server's own queue;
	// zero means no limit. Beyond it the balancer looks elsewhere
	// (leastconn) or the connection is refused (balance source).
	MaxQueue int
	Disabled bool
	// Port and Addr redirect health checks; zero/empty means the server's own.
	CheckPort   int
	CheckAddr   string
	SendProxy   bool
	SendProxyV2 bool
	// ShutdownOnDown closes the server's sessions when it goes DOWN
	// ("on-marked-down shutdown-sessions").
	ShutdownOnDown bool
	// ShutdownBackupsOnUp closes the backup servers' sessions when this
	// server comes UP ("on-marked-up shutdown-backup-sessions").
	ShutdownBackupsOnUp bool
}

// Server is one "server" line.
type Server struct {
	Name string
	// Addr is host:port of the server.
	Addr string
	Pos  Pos
	ServerParams
}

// InterOrDefault returns the check interval, 2s by default.
func (s *ServerParams) InterOrDefault() time.Duration {
	if s.Inter > 0 {
		return s.Inter
	}
	return 2 * time.Second
}

// FastInterOrDefault returns the interval used while a server changes state.
func (s *ServerParams) FastInterOrDefault() time.Duration {
	if s.FastInter > 0 {
		return s.FastInter
	}
	return s.InterOrDefault()
}

// DownInterOrDefault returns the interval used while a server is down.
func (s *ServerParams) DownInterOrDefault() time.Duration {
	if s.DownInter > 0 {
		return s.DownInter
	}
	return s.InterOrDefault()
}

// RiseOrDefault returns consecutive successes needed to go UP, 2 by default.
func (s *ServerParams) RiseOrDefault() int {
	if s.Rise > 0 {
		return s.Rise
	}
	return 2
}

// FallOrDefault returns consecutive failures needed to go DOWN, 3 by default.
func (s *ServerParams) FallOrDefault() int {
	if s.Fall > 0 {
		return s.Fall
	}
	return 3
}

// WeightOrDefault returns the server weight, 1 by default.
func (s *ServerParams) WeightOrDefault() int {
	if s.Weight >= 0 {
		return s.Weight
	}
	return 1
}

// Proxy returns the named proxy, or nil.
func (c *Config) Proxy(name string) *Proxy {
	for _, p := range c.Proxies {
		if p.Name == name {
			return p
		}
	}
	return nil
}
