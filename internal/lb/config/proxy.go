package config

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// capability bits say in which sections a keyword may appear.
const (
	capDef = 1 << iota
	capFE
	capBE
	capAll = capDef | capFE | capBE
)

func (p *parser) capOf() int {
	switch p.cur.Kind {
	case KindDefaults:
		return capDef | capFE | capBE
	case KindFrontend:
		return capFE
	case KindBackend:
		return capBE
	}
	return capFE | capBE
}

// proxyIgnored are keywords accepted in proxies without effect in warren-lb,
// with the sections allowed and the minimum number of arguments.
var proxyIgnored = map[string]struct{ cap, args int }{
	"description": {capFE | capBE, 1}, "id": {capFE | capBE, 1}, "enabled": {capFE | capBE, 0},
	"transparent": {capAll, 0}, "backlog": {capDef | capFE, 1}, "log-tag": {capAll, 1},
	"grace": {capAll, 1}, "errorfile": {capAll, 2}, "load-server-state-from-file": {capDef | capBE, 1}, "server-state-file-name": {capDef | capBE, 0},
}

// unsupportedProxyKeywords are HAProxy keywords that change behaviour in
// ways warren-lb does not implement; they get a clearer error than an
// unknown keyword.
var unsupportedProxyKeywords = map[string]bool{
	"fullconn": true, "rate-limit": true, "acl": true, "tcp-request": true,
	"tcp-response": true, "http-request": true, "http-response": true, "stick-table": true,
	"stick": true, "capture": true, "monitor-uri": true, "cookie": true, "persist": true,
	"source": true, "dispatch": true, "email-alert": true, "compression": true,
	"filter": true, "redirect": true, "use-server": true, "force-persist": true, "ignore-persist": true,
	"unique-id-format": true, "unique-id-header": true, "log-format": true, "external-check": true,
	"server-template": true, "balance-url-param": true,
}

// notNegatable are options HAProxy refuses after "no".
var notNegatable = map[string]bool{
	"tcplog": true, "tcpka": true, "tcp-check": true, "httplog": true, "forwardfor": true, "amqp-check": true,
}

// optionTakesArgs are options that accept arguments (redispatch's
// interval is accepted; warren-lb always redispatches on the last retry).
var optionTakesArgs = map[string]bool{"redispatch": true, "httplog": true, "forwardfor": true, "httpchk": true}

// optionsIgnored are "option" names accepted without effect (HTTP-mode or
// process-level tuning that does not change TCP proxying).
var optionsIgnored = map[string]int{
	"httplog": capAll, "http-server-close": capAll, "httpclose": capAll, "http-keep-alive": capAll,
	"forwardfor": capAll, "forceclose": capAll, "http-pretend-keepalive": capAll, "http-buffer-request": capAll,
	"log-health-checks": capAll, "splice-auto": capAll, "splice-request": capAll, "splice-response": capAll,
	"tcp-smart-accept": capDef | capFE, "tcp-smart-connect": capDef | capBE, "socket-stats": capDef | capFE,
	"contstats": capAll, "log-separate-errors": capDef | capFE,
	"abortonclose": capDef | capBE, "persist": capDef | capBE, "nolinger": capAll, "independent-streams": capAll,
	"http-no-delay": capAll, "accept-invalid-http-request": capDef | capFE, "accept-invalid-http-response": capDef | capBE,
	"allbackups": capDef | capBE, "prefer-last-server": capDef | capBE, "http-use-htx": capAll,
}

func (p *parser) proxyKeyword(w []string) {
	px := p.cur
	kw := w[0]
	section := p.section
	// HAProxy ignores, with a warning, keywords that do not fit the
	// section's capabilities; only server lines in a frontend are errors.
	allowed := func(c int) bool {
		if p.capOf()&c == 0 {
			p.warnf("'%s' ignored because %s '%s' has no %s capability.", kw, section, px.Name, capName(c))
			return false
		}
		return true
	}
	named := px.Name
	switch kw {
	case "mode":
		if len(w) < 2 {
			p.errorf("'mode' expects one of 'tcp', 'http' or 'health' as argument.")
			return
		}
		switch w[1] {
		case "tcp", "http":
			px.Mode = w[1]
		case "health":
			p.errorf("'mode health' is not supported by warren-lb")
		default:
			p.errorf("unknown proxy mode '%s'.", w[1])
		}
	case "bind":
		if !allowed(capFE) {
			// HAProxy still counts the ignored listener when deciding
			// whether the configuration can start at all.
			p.ignoredBinds++
			return
		}
		if len(w) < 2 {
			p.errorf("'bind' : missing address.")
			return
		}
		p.bindAddrs(w[1])
		p.bindParams(w)
	case "balance":
		if !allowed(capDef | capBE) {
			return
		}
		if len(w) < 2 {
			p.errorf("'balance' requires an algorithm.")
			return
		}
		switch w[1] {
		case "roundrobin", "static-rr", "leastconn", "source", "first":
			px.Balance = w[1]
		case "random", "uri", "url_param", "hdr", "rdp-cookie", "hash":
			p.errorf("'balance %s' is not supported by warren-lb (supported: roundrobin, static-rr, leastconn, source, first).", w[1])
		default:
			p.errorf("'balance' only supports 'roundrobin', 'static-rr', 'leastconn', 'source', 'uri', 'url_param', 'hdr(name)' and 'rdp-cookie(name)' options.")
		}
	case "server":
		if p.capOf()&capBE == 0 {
			p.errorf("'server' not allowed because %s '%s' has no backend capability.", section, px.Name)
			return
		}
		p.server(w)
	case "default-server":
		if p.capOf()&capBE == 0 {
			p.errorf("'default-server' not allowed because %s '%s' has no backend capability.", section, px.Name)
			return
		}
		p.serverParams(w, 1, &px.defaultServer, nil)
	case "option", "no":
		p.option(w)
	case "retries":
		if !allowed(capDef | capBE) {
			return
		}
		if len(w) < 2 {
			p.errorf("'retries' expects an integer value.")
			return
		}
		px.Retries = p.laxInt(kw, w[1])
	case "maxconn":
		// HAProxy warns about a backend's maxconn and then checks the
		// line all the same: no value, or more than one, is fatal.
		capable := p.capOf()&(capDef|capFE) != 0
		if !capable {
			p.warnf("'%s' ignored because %s '%s' has no frontend capability. Maybe you want 'fullconn' instead ?", kw, section, px.Name)
		}
		if len(w) < 2 {
			p.errorf("'%s' expects an integer argument.", kw)
			return
		}
		if len(w) > 2 {
			p.errorf("'%s' cannot handle unexpected argument '%s'.", kw, w[2])
			return
		}
		if capable {
			px.MaxConn = atol(w[1])
		}
	case "timeout":
		p.timeout(w)
	case "contimeout", "clitimeout", "srvtimeout":
		p.errorf("the '%s' directive is not supported anymore since HAProxy 2.1. Use 'timeout %s' instead.", kw, map[string]string{"contimeout": "connect", "clitimeout": "client", "srvtimeout": "server"}[kw])
	case "use_backend":
		if !allowed(capFE) {
			return
		}
		if len(w) < 2 {
			p.errorf("'use_backend' requires a backend name.")
			return
		}
		ub := UseBackend{Backend: w[1], Cond: w[2:], Pos: p.pos}
		if len(ub.Cond) > 0 {
			if !simpleCond(ub.Cond) {
				p.errorf("'use_backend %s' : only the conditions 'if TRUE', 'if FALSE', 'unless TRUE' and 'unless FALSE' are supported by warren-lb", w[1])
				return
			}
		}
		px.UseBackends = append(px.UseBackends, ub)
	case "default_backend":
		if !allowed(capDef | capFE) {
			return
		}
		if len(w) < 2 {
			p.errorf("'default_backend' expects a backend name.")
			return
		}
		px.DefaultBackend = w[1]
	case "log":
		if len(w) == 2 && w[1] == "global" {
			px.logGlobal = true
			return
		}
		if t, ok := p.logTarget(w); ok {
			px.Logs = append(px.Logs, t)
		}
	case "stats":
		p.stats(w)
	case "tcp-check":
		if !allowed(capDef | capBE) {
			return
		}
		p.tcpCheck(w)
	case "http-check":
		if !allowed(capDef | capBE) {
			return
		}
		p.httpCheck(w)
	case "disabled":
		px.Disabled = true
	case "hash-type":
		if !allowed(capDef | capBE) {
			return
		}
		if len(w) < 2 || w[1] != "map-based" {
			p.errorf("'hash-type' : only 'map-based' (the default) is supported by warren-lb.")
		}
	default:
		if ig, ok := proxyIgnored[kw]; ok {
			if !allowed(ig.cap) {
				return
			}
			if len(w)-1 < ig.args {
				p.errorf("'%s' expects an argument.", kw)
			}
			return
		}
		if unsupportedProxyKeywords[kw] {
			p.errorf("'%s' is an HAProxy keyword that warren-lb does not support (in '%s' section)", kw, section)
			return
		}
		p.errorf("unknown keyword '%s' in '%s' section", kw, section)
	}
	_ = named
}

func simpleCond(c []string) bool {
	return len(c) == 2 && (c[0] == "if" || c[0] == "unless") && (c[1] == "TRUE" || c[1] == "FALSE")
}

// CondTrue reports whether a use_backend rule applies.
func (u UseBackend) CondTrue() bool {
	if len(u.Cond) != 2 {
		return true
	}
	return (u.Cond[0] == "if") == (u.Cond[1] == "TRUE")
}

func (p *parser) option(w []string) {
	px := p.cur
	negate := false
	if w[0] == "no" {
		if len(w) < 2 || w[1] != "option" {
			p.errorf("'no' only supports 'option' and 'log'.")
			return
		}
		negate = true
		w = w[1:]
	}
	if len(w) < 2 {
		p.errorf("'option' expects an option name.")
		return
	}
	name := w[1]
	if negate && notNegatable[name] {
		p.errorf("negation/default is not supported for option '%s'.", name)
		return
	}
	set := func(b *bool, c int) {
		if p.capOf()&c == 0 {
			p.warnf("'%s' ignored because %s '%s' has no %s capability.", name, p.section, px.Name, capName(c))
			return
		}
		*b = !negate
	}
	switch name {
	case "tcplog":
		set(&px.Options.TCPLog, capDef|capFE)
	case "dontlognull":
		set(&px.Options.DontLogNull, capDef|capFE)
	case "dontlog-normal":
		set(&px.Options.DontLogNormal, capDef|capFE)
	case "redispatch":
		set(&px.Options.Redispatch, capDef|capBE)
	case "tcpka":
		set(&px.Options.ClientTCPKA, capAll)
		set(&px.Options.ServerTCPKA, capAll)
	case "clitcpka":
		set(&px.Options.ClientTCPKA, capDef|capFE)
	case "srvtcpka":
		set(&px.Options.ServerTCPKA, capDef|capBE)
	case "allbackups":
		set(&px.Options.AllBackups, capDef|capBE)
	case "tcp-check":
		set(&px.Options.TCPCheck, capDef|capBE)
		px.Options.AMQPCheck, px.Options.HTTPCheck = false, false
	case "amqp-check":
		set(&px.Options.AMQPCheck, capDef|capBE)
		px.Options.TCPCheck, px.Options.HTTPCheck = false, false
	case "httpchk":
		set(&px.Options.HTTPCheck, capDef|capBE)
		px.Options.TCPCheck, px.Options.AMQPCheck = false, false
		hc := &px.HTTPCheck
		hc.Method, hc.URI, hc.Version = "OPTIONS", "/", "HTTP/1.0"
		switch args := w[2:]; len(args) {
		case 0:
		case 1:
			hc.URI = args[0]
		case 2:
			hc.Method, hc.URI = args[0], args[1]
		default:
			hc.Method, hc.URI, hc.Version = args[0], args[1], strings.Join(args[2:], " ")
		}
	case "httplog":
		set(&px.Options.HTTPLog, capDef|capFE)
	default:
		c, ok := optionsIgnored[name]
		if !ok {
			p.errorf("unknown option '%s'.", name)
			return
		}
		if p.capOf()&c == 0 {
			p.warnf("'%s' ignored because %s '%s' has no %s capability.", name, p.section, px.Name, capName(c))
		}
	}
	if len(w) > 2 && !optionTakesArgs[name] {
		p.errorf("'option %s' cannot handle unexpected argument '%s'.", name, w[2])
	}
}

func (p *parser) timeout(w []string) {
	px := p.cur
	if len(w) < 2 {
		p.errorf("'timeout' expects 'client', 'http-keep-alive', 'http-request', 'server', 'connect', 'check', 'queue', 'tarpit', 'tunnel', 'client-fin' or 'server-fin'.")
		return
	}
	var target *int64
	t := &px.Timeouts
	c := capAll
	switch w[1] {
	case "connect":
		target, c = (*int64)(&t.Connect), capDef|capBE
	case "client":
		target, c = (*int64)(&t.Client), capDef|capFE
	case "server":
		target, c = (*int64)(&t.Server), capDef|capBE
	case "check":
		target, c = (*int64)(&t.Check), capDef|capBE
	case "queue":
		target, c = (*int64)(&t.Queue), capDef|capBE
	case "client-fin":
		target, c = (*int64)(&t.ClientFin), capDef|capFE
	case "server-fin":
		target, c = (*int64)(&t.ServerFin), capDef|capBE
	case "tunnel":
		target, c = (*int64)(&t.Tunnel), capDef|capBE
	case "http-request", "http-keep-alive":
		c = capDef | capFE | capBE
	case "tarpit":
	default:
		p.errorf("'timeout' supports 'client', 'server', 'connect', 'check', 'queue', 'http-keep-alive', 'http-request', 'tunnel', 'tarpit', 'client-fin' and 'server-fin' (got '%s')", w[1])
		return
	}
	if len(w) < 3 {
		p.errorf("'timeout %s' expects an integer value (in milliseconds)", w[1])
		return
	}
	d, err := parseTime(w[2])
	if err != nil {
		p.errorf("'timeout %s' : %v", w[1], err)
		return
	}
	if len(w) > 3 {
		p.errorf("'timeout %s' : unexpected extra argument '%s'", w[1], w[3])
		return
	}
	if p.capOf()&c == 0 {
		p.warnf("'timeout %s' will be ignored because %s '%s' has no %s capability", w[1], p.section, px.Name, capName(c))
		return
	}
	if target != nil {
		*target = int64(d)
	}
}

func (p *parser) stats(w []string) {
	px := p.cur
	if len(w) < 2 {
		p.errorf("'stats' expects 'admin', 'auth', 'enable', 'hide-version', 'realm', 'refresh', 'uri' ...")
		return
	}
	if p.section == "backend" && w[1] != "enable" {
		// Stats are served from the frontend part; HAProxy accepts them in
		// backends too (served through use_backend), and so do we.
	}
	st := &px.Stats
	need := func(n int, what string) bool {
		if len(w) < n+2 {
			p.errorf("'stats %s' needs %s.", w[1], what)
			return false
		}
		return true
	}
	switch w[1] {
	case "enable":
		st.Enable = true
	case "uri":
		if need(1, "an URI prefix") {
			st.URI, st.Enable = w[2], true
		}
	case "refresh":
		if need(1, "a refresh delay") {
			d, err := parseTime(w[2])
			if err != nil {
				p.errorf("'stats refresh' : %v", err)
				return
			}
			st.Refresh, st.Enable = d, true
		}
	case "realm":
		if need(1, "a realm") {
			st.Realm, st.Enable = w[2], true
		}
	case "auth":
		if need(1, "a user:password") {
			user, pass, ok := strings.Cut(w[2], ":")
			if !ok {
				p.warnf("'stats auth %s' : no ':' separating user and password; using an empty password.", w[2])
			}
			st.Auth, st.Enable = append(st.Auth, UserPass{user, pass}), true
		}
	case "hide-version":
		st.HideVersion, st.Enable = true, true
	case "admin":
		if len(w) < 4 || (w[2] != "if" && w[2] != "unless") {
			p.errorf("'stats admin' requires either 'if' or 'unless' followed by a condition.")
			return
		}
		if !simpleCond(w[2:4]) {
			p.errorf("'stats admin' : only 'if TRUE' / 'unless FALSE' conditions are supported by warren-lb")
			return
		}
		st.Admin = UseBackend{Cond: w[2:4]}.CondTrue()
	case "show-legends", "show-node", "show-desc", "show-modules", "scope":
		st.Enable = true
	case "socket", "timeout", "maxconn", "bind-process":
		p.errorf("'stats %s' is only allowed in 'global' section", w[1])
	default:
		p.errorf("'stats' expects 'admin', 'auth', 'enable', 'hide-version', 'http-request', 'realm', 'refresh', 'scope', 'show-desc', 'show-legends', 'show-node', 'socket', 'uri' (got '%s')", w[1])
	}
}

func (p *parser) tcpCheck(w []string) {
	px := p.cur
	if len(w) < 2 {
		p.errorf("'tcp-check' expects 'comment', 'connect', 'send', 'send-binary', 'expect' or 'set-var'.")
		return
	}
	step := TCPCheckStep{Action: w[1], Pos: p.pos}
	switch w[1] {
	case "connect":
		for i := 2; i < len(w); i++ {
			switch w[i] {
			case "port":
				if i+1 >= len(w) {
					p.errorf("'tcp-check connect' : 'port' expects a port number")
					return
				}
				n, err := parseInt("port", w[i+1])
				if err != nil || n > 65535 {
					p.errorf("'tcp-check connect' : invalid port '%s'", w[i+1])
					return
				}
				step.Port = n
				i++
			case "send-proxy", "linger":
			default:
				p.errorf("'tcp-check connect' : unsupported parameter '%s'", w[i])
				return
			}
		}
	case "send", "send-binary":
		if len(w) < 3 {
			p.errorf("'tcp-check %s' expects a string as argument.", w[1])
			return
		}
		step.Data = w[2]
		if w[1] == "send-binary" {
			b, err := decodeHex(w[2])
			if err != nil {
				p.errorf("'tcp-check send-binary' : %v", err)
				return
			}
			step.Data = b
		}
	case "expect":
		args := w[2:]
		if len(args) > 0 && args[0] == "!" {
			step.Negate = true
			args = args[1:]
		}
		if len(args) == 1 {
			p.errorf("'tcp-check expect' : '%s' expects a <pattern> as argument.", args[0])
			return
		}
		if len(args) < 2 {
			p.errorf("'tcp-check expect' expects 'string', 'rstring', 'binary' or 'rbinary' followed by a pattern.")
			return
		}
		step.Match = args[0]
		step.Data = args[1]
		switch args[0] {
		case "string", "rstring", "rbinary":
		case "binary":
			b, err := decodeHex(args[1])
			if err != nil {
				p.errorf("'tcp-check expect binary' : %v", err)
				return
			}
			step.Data = b
		default:
			p.errorf("'tcp-check expect' only supports 'string', 'rstring', 'binary' and 'rbinary' in warren-lb (got '%s')", args[0])
			return
		}
	case "comment":
	default:
		p.errorf("'tcp-check' only supports 'comment', 'connect', 'send', 'send-binary' or 'expect' in warren-lb (got '%s')", w[1])
		return
	}
	px.TCPChecks = append(px.TCPChecks, step)
}

func decodeHex(s string) (string, error) {
	out, err := hex.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("'%s' invalid binary string (%v)", s, err)
	}
	return string(out), nil
}

func capName(c int) string {
	if c&capFE != 0 {
		return "frontend"
	}
	return "backend"
}

// laxInt reads an integer the way HAProxy's atol does: leading digits count,
// anything after them is ignored. warren-lb warns about the ignored part.
func (p *parser) laxInt(kw, s string) int {
	n, rest := 0, s
	for len(rest) > 0 && rest[0] >= '0' && rest[0] <= '9' {
		n = n*10 + int(rest[0]-'0')
		if n > 1<<31-1 {
			n = 1<<31 - 1
		}
		rest = rest[1:]
	}
	if rest != "" {
		p.warnf("'%s %s' : trailing characters '%s' ignored, using %d.", kw, s, rest, n)
	}
	return n
}

// httpCheck parses "http-check expect [!] status|rstatus|string|rstring <value>".
func (p *parser) httpCheck(w []string) {
	hc := &p.cur.HTTPCheck
	if len(w) < 2 || w[1] != "expect" {
		arg := ""
		if len(w) > 1 {
			arg = w[1]
		}
		p.errorf("'http-check %s' is not supported by warren-lb (only 'http-check expect').", arg)
		return
	}
	args := w[2:]
	negate := false
	if len(args) > 0 && args[0] == "!" {
		negate, args = true, args[1:]
	}
	if len(args) < 2 {
		p.errorf("'http-check expect' expects 'status', 'rstatus', 'string' or 'rstring' followed by a value.")
		return
	}
	switch args[0] {
	case "status", "rstatus", "string", "rstring":
	default:
		p.errorf("'http-check expect' only supports 'status', 'rstatus', 'string' and 'rstring' in warren-lb (got '%s')", args[0])
		return
	}
	hc.Expect, hc.ExpectValue, hc.ExpectNegate = args[0], args[1], negate
}
