package vrrp

import (
	"fmt"
	"strings"
	"testing"
)

// v6Instance renders an instance whose body lines are given; the header
// takes lines 1-5.
func v6Instance(body string) string {
	return "vrrp_instance VI_6 {\n state BACKUP\n interface eth0\n virtual_router_id 51\n priority 100\n" + body + "}\n"
}

// TestParseConfigFamilies checks keepalived 2.2.7's rules for address
// families, each seen by running Debian's keepalived on the same text in a
// network namespace: the first address-bearing keyword decides; IPv6
// instances run version 3 whatever vrrp_version says; virtual addresses of
// the other family are ignored with a warning, unicast ones refused;
// virtual_ipaddress_excluded takes either family; an IPv6 instance needs a
// virtual address, and its first one should be link-local.
func TestParseConfigFamilies(t *testing.T) {
	cases := []struct {
		name, conf string
		err        string // an error with its file:line; "" when valid
		warn       string // a warning with its file:line; "" for none
		check      func(*InstanceConfig) error
	}{
		{"ipv6 only", v6Instance(" virtual_ipaddress {\n  fe80::100/64\n  fd00::100/64\n }\n"), "", "",
			func(in *InstanceConfig) error {
				if !in.IPv6 || in.Version != 3 || len(in.VIPs) != 2 {
					return fmt.Errorf("ipv6=%t version=%d vips=%v", in.IPv6, in.Version, in.VIPs)
				}
				return nil
			}},
		{"global version 2 is silent", "global_defs {\n vrrp_version 2\n}\n" + v6Instance(" virtual_ipaddress {\n  fe80::100/64\n }\n"), "", "",
			func(in *InstanceConfig) error {
				if in.Version != 3 {
					return fmt.Errorf("version %d, want 3", in.Version)
				}
				return nil
			}},
		{"instance version 2", v6Instance(" version 2\n virtual_ipaddress {\n  fe80::100/64\n }\n"), "",
			"keepalived.conf:1: vrrp_instance VI_6: VRRPv2 cannot carry IPv6; using version 3",
			func(in *InstanceConfig) error {
				if in.Version != 3 {
					return fmt.Errorf("version %d, want 3", in.Version)
				}
				return nil
			}},
		{"first not link-local", v6Instance(" virtual_ipaddress {\n  fd00::100/64\n }\n"), "",
			"keepalived.conf:1: vrrp_instance VI_6: the first IPv6 virtual_ipaddress should be link-local", nil},
		{"strict first not link-local", "global_defs {\n vrrp_strict\n}\n" + v6Instance(" virtual_ipaddress {\n  fd00::100/64\n }\n"),
			"keepalived.conf:4: vrrp_instance VI_6: vrrp_strict: the first IPv6 virtual_ipaddress must be link-local", "", nil},
		{"mixed, IPv4 first", v6Instance(" virtual_ipaddress {\n  10.0.0.100/24\n  fd00::100/64\n }\n"), "",
			"keepalived.conf:8: virtual_ipaddress fd00::100/64 ignored: not of the instance's family (IPv4 since line 7)",
			func(in *InstanceConfig) error {
				if in.IPv6 || len(in.VIPs) != 1 || !in.VIPs[0].Prefix.Addr().Is4() {
					return fmt.Errorf("ipv6=%t vips=%v", in.IPv6, in.VIPs)
				}
				return nil
			}},
		{"mixed, IPv6 first", v6Instance(" virtual_ipaddress {\n  fe80::100/64\n  10.0.0.100/24\n }\n"), "",
			"keepalived.conf:8: virtual_ipaddress 10.0.0.100/24 ignored: not of the instance's family (IPv6 since line 7)",
			func(in *InstanceConfig) error {
				if !in.IPv6 || len(in.VIPs) != 1 {
					return fmt.Errorf("ipv6=%t vips=%v", in.IPv6, in.VIPs)
				}
				return nil
			}},
		{"excluded holds both", v6Instance(" virtual_ipaddress {\n  10.0.0.100/24\n }\n virtual_ipaddress_excluded {\n  fd00::100/64\n  10.0.0.200\n }\n"), "", "",
			func(in *InstanceConfig) error {
				if in.IPv6 || len(in.VIPs) != 1 || len(in.ExcludedVIPs) != 2 || in.ExcludedVIPs[0].Prefix.Bits() != 64 {
					return fmt.Errorf("ipv6=%t vips=%v excluded=%v", in.IPv6, in.VIPs, in.ExcludedVIPs)
				}
				return nil
			}},
		{"unicast_src_ip decides", v6Instance(" unicast_src_ip fd00::1\n unicast_peer {\n  fd00::2\n }\n virtual_ipaddress {\n  fe80::100/64\n }\n"), "", "",
			func(in *InstanceConfig) error {
				if !in.IPv6 || in.UnicastSrc.String() != "fd00::1" || len(in.UnicastPeers) != 1 {
					return fmt.Errorf("ipv6=%t src=%s peers=%v", in.IPv6, in.UnicastSrc, in.UnicastPeers)
				}
				return nil
			}},
		{"unicast IPv6 then IPv4 VIPs only", v6Instance(" unicast_src_ip fd00::1\n virtual_ipaddress {\n  10.0.0.100/24\n }\n"),
			"keepalived.conf:1: vrrp_instance VI_6: an IPv6 instance needs at least one virtual_ipaddress",
			"keepalived.conf:8: virtual_ipaddress 10.0.0.100/24 ignored", nil},
		{"unicast peer of the other family", v6Instance(" virtual_ipaddress {\n  10.0.0.100/24\n }\n unicast_peer {\n  fd00::2\n }\n"),
			"keepalived.conf:10: unicast_peer fd00::2 is not of the instance's family (IPv4 since line 7)", "", nil},
		{"native_ipv6 after IPv4", v6Instance(" virtual_ipaddress {\n  10.0.0.100/24\n }\n native_ipv6\n"),
			"keepalived.conf:9: native_ipv6 in an IPv4 instance", "", nil},
		{"native_ipv6 without addresses", v6Instance(" native_ipv6\n"),
			"keepalived.conf:1: vrrp_instance VI_6: an IPv6 instance needs at least one virtual_ipaddress", "", nil},
		{"same VRID in both families", v6Instance(" virtual_ipaddress {\n  fe80::100/64\n }\n") +
			strings.Replace(v6Instance(" virtual_ipaddress {\n  10.0.0.100/24\n }\n"), "VI_6", "VI_4", 1), "", "", nil},
		{"same VRID twice in IPv6", v6Instance(" virtual_ipaddress {\n  fe80::100/64\n }\n") +
			strings.Replace(v6Instance(" virtual_ipaddress {\n  fe80::200/64\n }\n"), "VI_6", "VI_7", 1),
			"keepalived.conf:10: vrrp_instance VI_7: virtual_router_id 51 on eth0 already used by VI_6", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ParseConfigFile(writeConf(t, map[string]string{"keepalived.conf": c.conf}))
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("keepalived runs this configuration; got %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("want error %q, got %v", c.err, err)
			}
			all := warningsText(cfg)
			if c.warn != "" && !strings.Contains(all, c.warn) {
				t.Errorf("warnings lack %q:\n%s", c.warn, all)
			}
			if c.warn == "" && c.err == "" && len(cfg.Warnings) > 0 {
				t.Errorf("unexpected warnings:\n%s", all)
			}
			if c.check != nil {
				if err := c.check(cfg.Instances[0]); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
