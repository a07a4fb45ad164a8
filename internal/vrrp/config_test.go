package vrrp

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/seeds"
	"github.com/warren-mq/warren/internal/seeds/seedstest"
)

// seedFile writes the runbook configuration called name to a temporary
// file and returns its path.
func seedFile(t *testing.T, name string) string {
	t.Helper()
	p, err := seeds.WriteFile(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseSeedConfigs(t *testing.T) {
	seedstest.Need(t)
	var files []string
	for _, n := range seeds.NamesWithSuffix(".conf") {
		files = append(files, seedFile(t, n))
	}
	if len(files) != 6 {
		t.Fatalf("want 6 seed configs, found %d", len(files))
	}
	for _, f := range files {
		cfg, err := ParseConfigFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(cfg.Instances) == 0 {
			t.Fatalf("%s: no instances", f)
		}
		for _, in := range cfg.Instances {
			if len(in.VIPs) == 0 || in.VRID == 0 || in.Interface == "" {
				t.Fatalf("%s: incomplete instance %+v", f, in)
			}
		}
	}
	cfg, err := ParseConfigFile(seedFile(t, "000_haproxy01.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Instances) != 2 || len(cfg.Scripts) != 2 {
		t.Fatalf("000: %d instances %d scripts", len(cfg.Instances), len(cfg.Scripts))
	}
	in := cfg.Instances[1]
	want := netip.MustParseAddr("192.168.1.44")
	if in.Name != "kevin_rabbitMQ_GATEWAY" || in.VRID != 111 || in.Priority != 199 || in.StartMaster ||
		in.UnicastSrc != netip.MustParseAddr("192.168.1.43") || len(in.UnicastPeers) != 1 || in.UnicastPeers[0] != want ||
		in.AuthType != AuthPass || in.AuthPass != "123456" || in.VIPs[0].Prefix != netip.MustParsePrefix("192.168.1.46/32") ||
		in.Notify.Any != "/usr/local/bin/keepalived_notify_for_haproxy.sh notify" || !in.SMTPAlert ||
		len(in.TrackScripts) != 1 || in.TrackScripts[0].Name != "chk_haproxy" {
		t.Fatalf("000 instance 2: %+v", in)
	}
	s := cfg.Scripts[1]
	if s.Command != "killall -0 haproxy" || s.Interval != time.Second || s.Weight != 2 || s.Fall != 2 || s.Rise != 1 {
		t.Fatalf("000 script: %+v", s)
	}
	cfg, err = ParseConfigFile(seedFile(t, "003_node1.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Global.SkipCheckAdvAddr || cfg.Global.Strict || cfg.Global.RouterID != "node1" || cfg.Scripts[0].Weight != 10 {
		t.Fatalf("003 global: %+v", cfg.Global)
	}
}

func writeConf(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "keepalived.conf")
}

const goodInstance = `vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        10.0.0.100/24 dev eth0 label eth0:vip
    }
}
`

func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		name, conf string
		want       []string // substrings of the error, each with its file:line
	}{
		{"unknown keyword", "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n colour blue\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n",
			[]string{`keepalived.conf:4: unknown keyword "colour" in vrrp_instance`}},
		{"unknown top", "vrrp_instanse X {\n}\n", []string{`keepalived.conf:1: unknown keyword "vrrp_instanse"`}},
		{"no vrid", "vrrp_instance A {\n interface eth0\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n",
			[]string{"keepalived.conf:1: vrrp_instance A: virtual_router_id is not set"}},
		{"vrid range", "vrrp_instance A {\n interface eth0\n virtual_router_id 256\n}\n",
			[]string{"keepalived.conf:3: virtual_router_id 256 out of range 1..255"}},
		{"strict auth", "global_defs {\n vrrp_strict\n}\n" + strings.Replace(goodInstance, "advert_int 1", "authentication {\n auth_type PASS\n auth_pass x\n }", 1),
			[]string{"keepalived.conf:4: vrrp_instance VI_1: authentication is not allowed with vrrp_strict"}},
		{"bad peer", strings.Replace(goodInstance, "advert_int 1", "unicast_peer {\n 10.0.0.300\n }", 1),
			[]string{`keepalived.conf:7: unicast_peer "10.0.0.300" is not an IP address`}},
		{"bad vip", strings.Replace(goodInstance, "10.0.0.100/24", "10.0.0/24", 1),
			[]string{`keepalived.conf:8: virtual_ipaddress "10.0.0/24" is not an address`}},
		{"unknown script", strings.Replace(goodInstance, "advert_int 1", "track_script {\n nope\n }", 1),
			[]string{"keepalived.conf:7: vrrp_instance VI_1: track_script nope is not a vrrp_script"}},
		{"v3 interval", strings.Replace(goodInstance, "advert_int 1", "version 3\n advert_int 0.005", 1),
			[]string{"keepalived.conf:7: advert_int 0.005 out of range"}},
		{"missing brace", "vrrp_instance A {\n interface eth0\n", []string{"keepalived.conf:2: missing '}'"}},
		{"quote", "global_defs {\n router_id \"x\n}\n", []string{"keepalived.conf:2: unterminated quoted string"}},
		{"dup vrid", goodInstance + strings.Replace(goodInstance, "VI_1", "VI_2", 1),
			[]string{"keepalived.conf:11: vrrp_instance VI_2: virtual_router_id 51 on eth0 already used by VI_1"}},
		{"dup vrid across versions", goodInstance + strings.Replace(strings.Replace(goodInstance, "VI_1", "VI_2", 1), "advert_int 1", "version 3\n advert_int 1", 1),
			[]string{"keepalived.conf:11: vrrp_instance VI_2: virtual_router_id 51 on eth0 already used by VI_1"}},
		{"many at once", "global_defs {\n bogus\n}\nvrrp_script s {\n interval x\n}\n",
			[]string{`keepalived.conf:2: unknown keyword "bogus"`, `keepalived.conf:5: interval: "x" is not`, "keepalived.conf:4: vrrp_script s has no script"}},
		{"missing include", "include nothere.conf\n", []string{"keepalived.conf:1: include nothere.conf: no such file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfigFile(writeConf(t, map[string]string{"keepalived.conf": c.conf}))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestParseConfigKeepalivedLenient covers configurations keepalived 2.2.7
// runs, so warren-vrrp must too: the instance is accepted, and where
// keepalived warns, the warning names file:line.
func TestParseConfigKeepalivedLenient(t *testing.T) {
	cases := []struct {
		name, conf string
		warn       string // a warning, with its file:line; "" for none
		check      func(*Config) error
	}{
		{"nopreempt master", strings.Replace(goodInstance, "state BACKUP", "state MASTER\n nopreempt", 1),
			"keepalived.conf:1: vrrp_instance VI_1: nopreempt will not work with initial state MASTER - clearing",
			func(c *Config) error {
				if in := c.Instances[0]; in.NoPreempt || !in.StartMaster {
					return fmt.Errorf("nopreempt=%v start master=%v, want false, true", in.NoPreempt, in.StartMaster)
				}
				return nil
			}},
		{"strict unicast", "global_defs {\n vrrp_strict\n}\n" + strings.Replace(goodInstance, "advert_int 1", "unicast_peer {\n 10.0.0.2\n }", 1),
			"",
			func(c *Config) error {
				if !c.Global.Strict || len(c.Instances[0].UnicastPeers) != 1 {
					return fmt.Errorf("strict=%v peers=%v", c.Global.Strict, c.Instances[0].UnicastPeers)
				}
				return nil
			}},
		{"sync group drops weighted scripts", "vrrp_script w {\n script /bin/true\n weight -20\n}\nvrrp_script z {\n script /bin/true\n}\n" +
			"vrrp_sync_group G {\n group {\n VI_1\n }\n}\n" +
			strings.Replace(goodInstance, "advert_int 1", "track_script {\n w\n z\n z weight 5\n }\n track_interface {\n eth1 weight 10\n }", 1),
			"keepalived.conf:19: vrrp_instance VI_1: ignoring tracked script w with weights due to sync group G",
			func(c *Config) error {
				in := c.Instances[0]
				if len(in.TrackScripts) != 1 || in.TrackScripts[0].Name != "z" || in.TrackScripts[0].WeightSet {
					return fmt.Errorf("track scripts %+v, want only unweighted z", in.TrackScripts)
				}
				if len(in.TrackIfaces) != 1 || in.TrackIfaces[0].Weight != 0 {
					return fmt.Errorf("track interfaces %+v, want eth1 with weight 0", in.TrackIfaces)
				}
				return nil
			}},
		{"sync group tracking weight", "vrrp_script w {\n script /bin/true\n weight -20\n}\n" +
			"vrrp_sync_group G {\n group {\n VI_1\n }\n sync_group_tracking_weight\n}\n" +
			strings.Replace(goodInstance, "advert_int 1", "track_script {\n w\n }", 1),
			"keepalived.conf:5: vrrp_sync_group G has only 1 instance",
			func(c *Config) error {
				if len(c.Instances[0].TrackScripts) != 1 {
					return fmt.Errorf("track scripts %+v, want w kept", c.Instances[0].TrackScripts)
				}
				return nil
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ParseConfigFile(writeConf(t, map[string]string{"keepalived.conf": c.conf}))
			if err != nil {
				t.Fatalf("keepalived accepts this configuration; got %v", err)
			}
			all := warningsText(cfg)
			if c.warn != "" && !strings.Contains(all, c.warn) {
				t.Errorf("warnings lack %q:\n%s", c.warn, all)
			}
			if c.warn == "" && len(cfg.Warnings) > 0 {
				t.Errorf("unexpected warnings:\n%s", all)
			}
			if err := c.check(cfg); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestParseConfigInclude(t *testing.T) {
	path := writeConf(t, map[string]string{
		"keepalived.conf": "global_defs {\n router_id r1\n}\ninclude conf.d/*.conf\n",
		"conf.d/a.conf":   goodInstance,
		"conf.d/b.conf":   "vrrp_instance VI_2 {\n interface eth0\n virtual_router_id 52\n bad_kw\n}\n",
	})
	_, err := ParseConfigFile(path)
	if err == nil || !strings.Contains(err.Error(), "conf.d/b.conf:4: unknown keyword \"bad_kw\"") {
		t.Fatalf("want the error in the included file, got %v", err)
	}
	loop := writeConf(t, map[string]string{"keepalived.conf": "include keepalived.conf\n"})
	if _, err := ParseConfigFile(loop); err == nil || !strings.Contains(err.Error(), "include loop") {
		t.Fatalf("include loop: %v", err)
	}
}

func TestParseConfigValues(t *testing.T) {
	conf := `global_defs {
  vrrp_version 3
  vrrp_garp_master_delay 1
  vrrp_garp_master_repeat 3
  enable_script_security
  script_user nobody
}
vrrp_script chk { script "/bin/check --flag 'a b'"
  interval 2
  timeout 1
  weight -20
  fall 3
  rise 2
  user root
}
vrrp_instance V
{
  interface eth1
  virtual_router_id 9
  priority 150
  advert_int 0.1
  nopreempt
  preempt_delay 5
  garp_master_delay 2
  unicast_src_ip 10.1.1.1
  unicast_peer { 10.1.1.2
    10.1.1.3 }
  virtual_ipaddress {
    10.1.1.100/24 dev eth1 label eth1:0
    10.1.1.101
  }
  track_script {
    chk weight 30
  }
  track_interface {
    eth2 weight -10
  }
  notify "/usr/bin/notify me"
}
vrrp_sync_group G {
  group {
    V
  }
  notify_master /bin/true
  sync_group_tracking_weight
}
`
	cfg, err := ParseConfigFile(writeConf(t, map[string]string{"keepalived.conf": conf}))
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Global
	if g.Version != 3 || g.GARPMasterDelay != time.Second || g.GARPMasterRepeat != 3 || !g.ScriptSecurity || g.ScriptUser != "nobody" {
		t.Fatalf("global %+v", g)
	}
	s := cfg.Scripts[0]
	if s.Command != "/bin/check --flag 'a b'" || s.Interval != 2*time.Second || s.Timeout != time.Second || s.Weight != -20 || s.Fall != 3 || s.Rise != 2 {
		t.Fatalf("script %+v", s)
	}
	in := cfg.Instances[0]
	if in.Version != 3 || in.AdvertInt != 100*time.Millisecond || !in.NoPreempt || in.PreemptDelay != 5*time.Second ||
		len(in.UnicastPeers) != 2 || len(in.VIPs) != 2 || in.VIPs[0].Label != "eth1:0" || in.VIPs[1].Prefix.Bits() != 32 ||
		!in.TrackScripts[0].WeightSet || in.TrackScripts[0].Weight != 30 || in.TrackIfaces[0].Weight != -10 ||
		in.Notify.Any != "/usr/bin/notify me" || in.SyncGroup != "G" || !cfg.SyncGroups[0].TrackingWeight || !in.GARPDelaySet || in.GARPMasterDelay != 2*time.Second {
		t.Fatalf("instance %+v", in)
	}
}

// FuzzParseConfig feeds random text, whole and split in two files joined by
// include, to the parser: it must never panic, and the split form must
// report an error exactly when the whole one does (unless the cut falls
// inside a line, which changes the text).
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{goodInstance, "global_defs {\n router_id x\n}\n", "vrrp_script s {\n script \"a b\"\n}\n"} {
		f.Add(seed, len(seed)/2)
	}
	f.Fuzz(func(t *testing.T, text string, cut int) {
		dir := t.TempDir()
		whole := filepath.Join(dir, "whole.conf")
		if err := os.WriteFile(whole, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		_, errWhole := ParseConfigFile(whole)
		if cut < 0 || cut > len(text) {
			cut = len(text) / 2
		}
		// Cut at a line boundary so both forms hold the same lines.
		if i := strings.LastIndexByte(text[:cut], '\n'); i >= 0 {
			cut = i + 1
		} else {
			cut = 0
		}
		first, second := filepath.Join(dir, "a.conf"), filepath.Join(dir, "b.conf")
		if err := os.WriteFile(first, []byte(text[:cut]+"include b.conf\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(second, []byte(text[cut:]), 0o644); err != nil {
			t.Fatal(err)
		}
		_, errSplit := ParseConfigFile(first)
		if (errWhole == nil) != (errSplit == nil) && !strings.Contains(text, "include") {
			t.Fatalf("whole: %v\nsplit: %v", errWhole, errSplit)
		}
	})
}

// warningsText returns cfg's warnings, one a line, for tests to search.
func warningsText(cfg *Config) string {
	var warns []string
	for _, w := range cfg.Warnings {
		warns = append(warns, w.String())
	}
	return strings.Join(warns, "\n")
}
