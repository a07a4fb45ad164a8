package config

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Result is what Parse returns besides the Config: warnings, and alerts
// that HAProxy reports as such but that do not stop the configuration
// from loading (a second global maxconn).
type Result struct {
	Config   *Config
	Warnings []*Error
	Alerts   []*Error
}

// Resolver turns a host name into addresses, as net.LookupHost does.
type Resolver func(host string) ([]string, error)

// ParseWithResolver is Parse with a chosen resolver for host names in
// bind, server and log lines (tests use one that never leaves the machine).
func ParseWithResolver(name string, data []byte, r Resolver) (*Result, error) {
	p := newParser()
	p.resolve = r
	p.parse(name, data)
	return p.finish()
}

// ParseFiles reads and parses the given files in order, as if they were one
// file, the way haproxy treats several -f arguments. The error, if any, is an
// Errors listing every problem found.
//
// A path that is a directory stands for the files ending in ".cfg" inside
// it, in lexical order, as with haproxy.
func ParseFiles(paths []string) (*Result, error) {
	p := newParser()
	var files []string
	for _, path := range paths {
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			matches, _ := filepath.Glob(filepath.Join(path, "*.cfg"))
			sort.Strings(matches)
			files = append(files, matches...)
			continue
		}
		files = append(files, path)
	}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			p.errs = append(p.errs, &Error{Msg: fmt.Sprintf("could not open configuration file %s : %v", path, err)})
			continue
		}
		p.parse(path, data)
	}
	return p.finish()
}

// Parse parses one configuration held in memory; name is used in messages.
func Parse(name string, data []byte) (*Result, error) {
	p := newParser()
	p.parse(name, data)
	return p.finish()
}

type parser struct {
	cfg      *Config
	errs     Errors
	warnings []*Error
	alerts   []*Error

	pos     Pos
	section string // "", "global", "defaults", "frontend", "backend", "listen", "unsupported"
	cur     *Proxy

	// defaults is the last defaults section; named holds named ones.
	defaults *Proxy
	named    map[string]*Proxy
	// resolve looks host names up; net.LookupHost unless replaced.
	resolve Resolver

	// ignoredBinds counts bind lines in sections without frontend capability.
	ignoredBinds int
}

func newParser() *parser {
	p := &parser{cfg: &Config{}, named: map[string]*Proxy{}, resolve: net.LookupHost}
	p.defaults = newProxy("", KindDefaults, Pos{})
	return p
}

// newProxy returns a proxy holding HAProxy's built-in defaults.
func newProxy(name string, kind ProxyKind, pos Pos) *Proxy {
	return &Proxy{
		Name:          name,
		Kind:          kind,
		Pos:           pos,
		Mode:          "tcp",
		Balance:       "roundrobin",
		Retries:       -1,
		defaultServer: ServerParams{Weight: -1},
	}
}

func (p *parser) errorf(format string, args ...any) {
	p.errs = append(p.errs, &Error{Pos: p.pos, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) warnf(format string, args ...any) {
	p.warnings = append(p.warnings, &Error{Pos: p.pos, Msg: fmt.Sprintf(format, args...)})
}

// alertf records a problem HAProxy reports as an alert without refusing
// the configuration.
func (p *parser) alertf(format string, args ...any) {
	p.alerts = append(p.alerts, &Error{Pos: p.pos, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) parse(name string, data []byte) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		p.pos = Pos{File: name, Line: line}
		words, err := splitLine(sc.Text())
		if err != nil {
			p.errorf("%v", err)
			continue
		}
		if len(words) == 0 {
			continue
		}
		if p.sectionHeader(words) {
			continue
		}
		switch p.section {
		case "":
			p.errorf("unknown keyword '%s' out of section.", words[0])
		case "global":
			p.globalKeyword(words)
		case "unsupported":
			// the section header was already reported
		default:
			p.proxyKeyword(words)
		}
	}
	if err := sc.Err(); err != nil {
		p.errs = append(p.errs, &Error{Pos: p.pos, Msg: fmt.Sprintf("reading file: %v", err)})
	}
	p.endSection()
}

// sectionHeader handles a line opening a section and reports whether it did.
func (p *parser) sectionHeader(words []string) bool {
	switch words[0] {
	case "global":
		p.endSection()
		p.section = "global"
		if len(words) > 1 {
			p.errorf("'global' section does not take any argument")
		}
	case "defaults", "frontend", "backend", "listen":
		p.endSection()
		p.section = words[0]
		p.openProxy(words)
	case "userlist", "peers", "resolvers", "mailers", "program", "http-errors", "ring", "cache", "fcgi-app", "dynamic-update", "crt-store", "traces":
		p.endSection()
		p.section = "unsupported"
		p.errorf("'%s' sections are not supported by warren-lb", words[0])
	default:
		return false
	}
	return true
}

func (p *parser) openProxy(words []string) {
	kind := map[string]ProxyKind{"defaults": KindDefaults, "frontend": KindFrontend, "backend": KindBackend, "listen": KindListen}[words[0]]
	args := words[1:]
	name := ""
	if len(args) > 0 && args[0] != "from" {
		name = args[0]
		args = args[1:]
	}
	if kind != KindDefaults && name == "" {
		p.errorf("'%s' expects <name> as an argument.", words[0])
	}
	if err := checkName(name); err != nil {
		p.errorf("character '%c' is not permitted in '%s' name '%s'.", err.c, words[0], name)
	}
	base := p.defaults
	var listenAddr string
	for len(args) > 0 {
		switch {
		case args[0] == "from" && len(args) >= 2:
			d, ok := p.named[args[1]]
			if !ok {
				p.errorf("defaults section '%s' not found for %s '%s'.", args[1], words[0], name)
			} else {
				base = d
			}
			args = args[2:]
		case args[0] == "from":
			p.errorf("'%s %s' : missing name for defaults section after 'from'.", words[0], name)
			args = nil
		case kind == KindListen && listenAddr == "":
			listenAddr = args[0]
			args = args[1:]
		default:
			p.errorf("'%s %s' : unexpected argument '%s'.", words[0], name, args[0])
			args = nil
		}
	}
	px := base.inherit(name, kind, p.pos)
	p.cur = px
	if kind == KindDefaults {
		p.defaults = px
		if name != "" {
			p.named[name] = px
		}
		return
	}
	for _, other := range p.cfg.Proxies {
		if other.Name != name {
			continue
		}
		if other.Kind == kind || other.Kind == KindListen || kind == KindListen {
			p.errorf("%s '%s' has the same name as %s '%s' declared at %s.", kind, name, other.Kind, other.Name, other.Pos)
		}
	}
	p.cfg.Proxies = append(p.cfg.Proxies, px)
	if listenAddr != "" {
		// HAProxy 2.6 rejects this pre-1.5 form; warren-lb keeps accepting it.
		p.warnf("'listen %s %s' : the address on the 'listen' line is deprecated, use 'bind %s'.", name, listenAddr, listenAddr)
		p.bindAddrs(listenAddr)
	}
}

type badChar struct{ c byte }

func checkName(name string) *badChar {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return &badChar{c}
		}
	}
	return nil
}

// inherit copies a defaults section into a new proxy.
func (d *Proxy) inherit(name string, kind ProxyKind, pos Pos) *Proxy {
	px := *d
	px.Name, px.Kind, px.Pos = name, kind, pos
	px.Binds, px.Servers, px.UseBackends = nil, nil, nil
	px.Logs = append([]LogTarget(nil), d.Logs...)
	px.TCPChecks = append([]TCPCheckStep(nil), d.TCPChecks...)
	px.Stats.Auth = append([]UserPass(nil), d.Stats.Auth...)
	if kind == KindDefaults {
		px.DefaultBackend = d.DefaultBackend
	}
	return &px
}

func (p *parser) endSection() {
	p.cur = nil
	p.section = ""
}

// finish runs the checks that need the whole configuration.
func (p *parser) finish() (*Result, error) {
	c := p.cfg
	for _, px := range c.Proxies {
		if px.logGlobal {
			px.Logs = append(append([]LogTarget(nil), c.Global.Logs...), px.Logs...)
		}
		if px.Kind.HasFrontend() && len(px.Binds) == 0 && px.Kind == KindFrontend {
			p.warnings = append(p.warnings, &Error{Pos: px.Pos, Msg: fmt.Sprintf("%s '%s' has no 'bind' directive. Please declare it as a backend if this was intended.", px.Kind, px.Name)})
		}
		if px.Kind.HasFrontend() {
			for _, ub := range px.UseBackends {
				p.checkBackendRef(px, ub.Backend, "use_backend", ub.Pos)
			}
			if px.DefaultBackend != "" {
				p.checkBackendRef(px, px.DefaultBackend, "default_backend", px.Pos)
			}
		}
		if px.Mode == "tcp" && px.Stats.Enable {
			p.warnings = append(p.warnings, &Error{Pos: px.Pos, Msg: fmt.Sprintf("'stats' statement ignored for %s '%s' as it requires HTTP mode.", px.Kind, px.Name)})
		}
	}
	for _, px := range c.Proxies {
		if missingTimeouts(px) {
			p.warnings = append(p.warnings, &Error{Msg: fmt.Sprintf("missing timeouts for %s '%s'.\n"+
				"   | While not properly invalid, you will certainly encounter various problems\n"+
				"   | with such a configuration. To fix this, please ensure that all following\n"+
				"   | timeouts are set to a non-zero value: 'client', 'connect', 'server'.", px.Kind.haproxyType(), px.Name)})
		}
	}
	listeners := p.ignoredBinds
	for _, px := range c.Proxies {
		if px.Kind.HasFrontend() && !px.Disabled {
			listeners += len(px.Binds)
		}
	}
	if listeners == 0 && len(p.errs) == 0 && len(c.Proxies) > 0 {
		p.errs = append(p.errs, &Error{Msg: "configuration file has no error but will not start (no listener)"})
	}
	if len(p.errs) > 0 {
		return &Result{Config: c, Warnings: p.warnings, Alerts: p.alerts}, p.errs
	}
	return &Result{Config: c, Warnings: p.warnings, Alerts: p.alerts}, nil
}

// missingTimeouts reports whether HAProxy 2.6 warns that px lacks
// timeouts: a frontend without "timeout client", or a backend with servers
// without "timeout connect" or without "timeout server" (which "timeout
// tunnel" replaces in TCP mode). Disabled proxies are not checked.
func missingTimeouts(px *Proxy) bool {
	if px.Disabled {
		return false
	}
	t := px.Timeouts
	if px.Kind.HasFrontend() && t.Client == 0 {
		return true
	}
	return px.Kind.HasBackend() && len(px.Servers) > 0 &&
		(t.Connect == 0 || t.Server == 0 && (px.Mode == "http" || t.Tunnel == 0))
}

func (p *parser) checkBackendRef(px *Proxy, name, kw string, pos Pos) {
	be := p.cfg.backend(name)
	switch {
	case be == nil:
		p.errs = append(p.errs, &Error{Pos: pos, Msg: fmt.Sprintf("Proxy '%s': unable to find required %s: '%s'.", px.Name, kw, name)})
	case be == px:
		p.errs = append(p.errs, &Error{Pos: pos, Msg: fmt.Sprintf("Proxy '%s': %s cannot point to itself.", px.Name, kw)})
	}
}

// backend returns the proxy with backend capability of that name, or nil.
func (c *Config) backend(name string) *Proxy {
	for _, px := range c.Proxies {
		if px.Name == name && px.Kind.HasBackend() {
			return px
		}
	}
	return nil
}

// Backend returns the backend or listen section of that name, or nil.
func (c *Config) Backend(name string) *Proxy { return c.backend(name) }

func hasPrefixAny(s string, prefixes ...string) bool {
	for _, pr := range prefixes {
		if strings.HasPrefix(s, pr) {
			return true
		}
	}
	return false
}
