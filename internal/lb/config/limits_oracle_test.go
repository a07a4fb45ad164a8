package config

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// haproxyDiag matches one of haproxy -c's per-line diagnostics.
var haproxyDiag = regexp.MustCompile(`(?m)^\[(WARNING|ALERT)\]\s+\(\d+\) : config : parsing \[([^\]]+)\] : (.*)$`)

// limitCases are the places where maxconn and maxqueue can appear, with
// and without a value, with a word or trailing characters for a value, and
// with too many values. want* are the values warren-lb must read from an
// accepted file: haproxy's own, as its stats page shows (slim, qlimit and
// check_status of "show stat").
var limitCases = []struct {
	name, global, defaults, proxy string
	wantGlobal, wantProxy         int
	wantServer                    *ServerParams
}{
	{name: "global no value", global: "    maxconn"},
	{name: "global word", global: "    maxconn lots"},
	{name: "global trailing", global: "    maxconn 10abc", wantGlobal: 10},
	{name: "global two values", global: "    maxconn 10 20"},
	{name: "global twice", global: "    maxconn 10\n    maxconn 20", wantGlobal: 10},
	{name: "global zero then value", global: "    maxconn 0\n    maxconn 20", wantGlobal: 20},
	{name: "stats maxconn no value", global: "    stats maxconn"},
	{name: "stats maxconn trailing", global: "    stats maxconn 5x"},
	{name: "stats maxconn zero", global: "    stats maxconn 0"},
	{name: "defaults no value", defaults: "    maxconn"},
	{name: "defaults value", defaults: "    maxconn 30", wantProxy: 30},
	{name: "listen no value", proxy: "listen l\n    bind 127.0.0.1:31401\n    maxconn\n    server s1 127.0.0.1:32401"},
	{name: "listen trailing", proxy: "listen l\n    bind 127.0.0.1:31401\n    maxconn 10abc\n    server s1 127.0.0.1:32401", wantProxy: 10},
	{name: "listen negative", proxy: "listen l\n    bind 127.0.0.1:31401\n    maxconn -5\n    server s1 127.0.0.1:32401", wantProxy: -5},
	{name: "listen two values", proxy: "listen l\n    bind 127.0.0.1:31401\n    maxconn 10 20\n    server s1 127.0.0.1:32401"},
	{name: "frontend no value", proxy: "frontend l\n    bind 127.0.0.1:31401\n    maxconn\n    default_backend b\nbackend b\n    server s1 127.0.0.1:32401"},
	{name: "backend no value", proxy: "frontend l\n    bind 127.0.0.1:31401\n    default_backend b\nbackend b\n    maxconn\n    server s1 127.0.0.1:32401"},
	{name: "backend value", proxy: "frontend l\n    bind 127.0.0.1:31401\n    default_backend b\nbackend b\n    maxconn 10\n    server s1 127.0.0.1:32401"},
	{name: "bind no value", proxy: "listen l\n    bind 127.0.0.1:31401 maxconn\n    server s1 127.0.0.1:32401"},
	{name: "bind negative", proxy: "listen l\n    bind 127.0.0.1:31401 maxconn -1\n    server s1 127.0.0.1:32401"},
	{name: "server maxconn at end", proxy: "listen l\n    bind 127.0.0.1:31401\n    server s1 127.0.0.1:32401 maxconn",
		wantServer: &ServerParams{}},
	{name: "server maxqueue at end", proxy: "listen l\n    bind 127.0.0.1:31401\n    server s1 127.0.0.1:32401 maxconn 4 maxqueue",
		wantServer: &ServerParams{MaxConn: 4}},
	{name: "server values swallow keywords", proxy: "listen l\n    bind 127.0.0.1:31401\n    server s1 127.0.0.1:32401 maxqueue check maxconn weight",
		wantServer: &ServerParams{}},
	{name: "server trailing and negative", proxy: "listen l\n    bind 127.0.0.1:31401\n    server s1 127.0.0.1:32401 maxconn 7x maxqueue -2",
		wantServer: &ServerParams{MaxConn: 7, MaxQueue: -2}},
	{name: "default-server at end", defaults: "    default-server maxconn 3 maxqueue",
		proxy: "listen l\n    bind 127.0.0.1:31401\n    default-server maxconn\n    server s1 127.0.0.1:32401", wantServer: &ServerParams{}},
	{name: "default-server values carry", defaults: "    default-server maxconn 3 maxqueue 9",
		proxy: "listen l\n    bind 127.0.0.1:31401\n    server s1 127.0.0.1:32401", wantServer: &ServerParams{MaxConn: 3, MaxQueue: 9}},
}

// TestOracleLimitKeywords checks maxconn and maxqueue in every section
// against haproxy -c: the same files are accepted, with the same warnings
// and alerts, word for word, on the same lines.
func TestOracleLimitKeywords(t *testing.T) {
	bin := haproxyBinary(t)
	for _, tc := range limitCases {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if tc.global != "" {
				b.WriteString("global\n" + tc.global + "\n")
			}
			b.WriteString("defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 5s\n    timeout server 5s\n")
			if tc.defaults != "" {
				b.WriteString(tc.defaults + "\n")
			}
			proxy := tc.proxy
			if proxy == "" {
				proxy = "listen l\n    bind 127.0.0.1:31401\n    server s1 127.0.0.1:32401"
			}
			b.WriteString(proxy + "\n")
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "limits.cfg"), []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			hpOK, _, hpOut := haproxyCheck(t, bin, dir, "limits.cfg")
			var theirs []string
			for _, m := range haproxyDiag.FindAllStringSubmatch(hpOut, -1) {
				theirs = append(theirs, m[1]+" ["+m[2]+"] "+m[3])
			}
			res, err := ParseWithResolver("limits.cfg", []byte(b.String()), loopbackOnly)
			var ours []string
			add := func(level string, es []*Error) {
				for _, e := range es {
					ours = append(ours, level+" ["+e.Pos.String()+"] "+e.Msg)
				}
			}
			if res != nil {
				add("WARNING", res.Warnings)
				add("ALERT", res.Alerts)
			}
			if es, ok := err.(Errors); ok {
				add("ALERT", es)
			} else if err != nil {
				t.Fatalf("unexpected error type: %v", err)
			}
			slices.Sort(theirs)
			slices.Sort(ours)
			if hpOK != (err == nil) || !slices.Equal(theirs, ours) {
				t.Fatalf("haproxy accepted=%v:\n  %s\nwarren-lb accepted=%v:\n  %s\nconfig:\n%s",
					hpOK, strings.Join(theirs, "\n  "), err == nil, strings.Join(ours, "\n  "), b.String())
			}
			if err != nil {
				return
			}
			c := res.Config
			if c.Global.MaxConn != tc.wantGlobal {
				t.Errorf("global maxconn = %d, want %d", c.Global.MaxConn, tc.wantGlobal)
			}
			fe := c.Proxy("l")
			if fe.MaxConn != tc.wantProxy {
				t.Errorf("proxy maxconn = %d, want %d", fe.MaxConn, tc.wantProxy)
			}
			if w := tc.wantServer; w != nil {
				s := c.Proxy("l").Servers[0]
				if s.MaxConn != w.MaxConn || s.MaxQueue != w.MaxQueue || s.Check {
					t.Errorf("server maxconn=%d maxqueue=%d check=%v, want %d %d false", s.MaxConn, s.MaxQueue, s.Check, w.MaxConn, w.MaxQueue)
				}
			}
		})
	}
}
