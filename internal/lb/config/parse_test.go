package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/seeds"
	"github.com/warren-mq/warren/internal/seeds/seedstest"
)

func TestParseValues(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "oracle", "ok_frontend_backend.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Parse("ok.cfg", data)
	if err != nil {
		t.Fatal(err)
	}
	c := res.Config
	fe, be := c.Proxy("fe"), c.Backend("be")
	if fe == nil || be == nil {
		t.Fatalf("proxies: %+v", c.Proxies)
	}
	if got := len(fe.Binds); got != 5 {
		t.Errorf("binds = %d, want 5 (two listed, one range of three)", got)
	}
	if fe.Binds[4].Addr != "127.0.0.1:31012" {
		t.Errorf("last bind = %s", fe.Binds[4].Addr)
	}
	if fe.DefaultBackend != "be" || fe.MaxConn != 50 || !fe.Options.TCPLog || !fe.Options.DontLogNull {
		t.Errorf("frontend = %+v", fe)
	}
	if be.Balance != "leastconn" || be.Retries != 2 || !be.Options.Redispatch || !be.Options.AllBackups {
		t.Errorf("backend = %+v", be)
	}
	if be.Timeouts.Connect != time.Second || be.Timeouts.Queue != 2*time.Second || be.Timeouts.Tunnel != time.Hour {
		t.Errorf("timeouts = %+v", be.Timeouts)
	}
	s1, s2, s3 := be.Servers[0], be.Servers[1], be.Servers[2]
	if !s1.Check || s1.Weight != 3 || s1.MaxConn != 10 || s1.Inter != time.Second || s1.FastInter != 500*time.Millisecond || s1.DownInter != 3*time.Second || s1.Rise != 2 || s1.Fall != 3 {
		t.Errorf("s1 = %+v", s1)
	}
	if s2.CheckPort != 32005 || s2.CheckAddr != "127.0.0.1" || !s2.SendProxy || s2.WeightOrDefault() != 1 {
		t.Errorf("s2 = %+v", s2)
	}
	if !s3.Backup || !s3.Disabled || !s3.SendProxyV2 || s3.Check {
		t.Errorf("s3 = %+v", s3)
	}
	if s1.Pos.Line != 25 {
		t.Errorf("s1 line = %d", s1.Pos.Line)
	}
}

func TestParseListsEveryError(t *testing.T) {
	_, err := Parse("x.cfg", []byte("global\n  bogus 1\nlisten l\n  bind 127.0.0.1:1\n  balanse x\n  server s 127.0.0.1:2 wieght 2\n  option nope\n"))
	es, ok := err.(Errors)
	if !ok || len(es) != 4 {
		t.Fatalf("want 4 errors, got %v", err)
	}
	want := []int{2, 5, 6, 7}
	for i, e := range es {
		if e.Pos.Line != want[i] || e.Pos.File != "x.cfg" {
			t.Errorf("error %d at %s, want line %d", i, e.Pos, want[i])
		}
	}
}

func TestSplitLine(t *testing.T) {
	cases := map[string][]string{
		`stats realm Haproxy\ Statistics`: {"stats", "realm", "Haproxy Statistics"},
		`tcp-check send "PING\r\n" # c`:   {"tcp-check", "send", "PING\r\n"},
		`description 'a "b" c'`:           {"description", `a "b" c`},
		"  \tbind :80#x":                  {"bind", ":80"},
	}
	for in, want := range cases {
		got, err := splitLine(in)
		if err != nil || len(got) != len(want) {
			t.Errorf("%q: %q %v", in, got, err)
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%q: word %d = %q, want %q", in, i, got[i], want[i])
			}
		}
	}
}

// FuzzParse feeds arbitrary text to the parser, whole and split into two
// files, and checks it never panics and that errors carry positions. It
// starts from the oracle corpus and the runbooks' haproxy.cfg files.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "oracle", "*.cfg"))
	for _, fn := range files {
		if data, err := os.ReadFile(fn); err == nil {
			f.Add(data)
		}
	}
	if seedstest.Found(f) {
		for _, n := range seeds.NamesWithSuffix(".cfg") {
			text, err := seeds.Config(n)
			if err != nil {
				f.Fatal(err)
			}
			f.Add([]byte(text))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParseWithResolver("f.cfg", data, loopbackOnly); err != nil {
			for _, e := range err.(Errors) {
				if e.Msg == "" {
					t.Fatalf("empty error message")
				}
			}
		}
		half := len(data) / 2
		p := newParser()
		p.resolve = loopbackOnly
		p.parse("a.cfg", data[:half])
		p.parse("b.cfg", data[half:])
		_, _ = p.finish()
	})
}

// loopbackOnly resolves "localhost" and nothing else, so tests never send
// DNS queries off the machine.
func loopbackOnly(host string) ([]string, error) {
	if host == "localhost" {
		return []string{"127.0.0.1"}, nil
	}
	return nil, fmt.Errorf("lookup %s: no such host", host)
}

func TestUnresolvableServer(t *testing.T) {
	_, err := ParseWithResolver("x.cfg", []byte("listen l\n  bind 127.0.0.1:1\n  server s nosuchhost:2\n  server t localhost:3\n"), loopbackOnly)
	es, ok := err.(Errors)
	if !ok || len(es) != 1 || es[0].Pos.Line != 3 || !strings.Contains(es[0].Msg, "could not resolve address 'nosuchhost'") {
		t.Fatalf("got %v", err)
	}
}
