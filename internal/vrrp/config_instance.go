package vrrp

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

const (
	defaultPriority = 100
	maxV2Interval   = 255 * time.Second
	minV3Interval   = 10 * time.Millisecond
	maxV3IntervalD  = 40950 * time.Millisecond
)

// family fixes an instance's address family the way keepalived does: the
// first address-bearing keyword decides (see InstanceConfig.IPv6).
type family struct {
	set  bool
	ipv6 bool
	by   Pos
}

// admit reports whether a fits the family, fixing the family when a is the
// first address seen.
func (f *family) admit(a netip.Addr, pos Pos) bool {
	if !f.set {
		f.set, f.ipv6, f.by = true, a.Is6(), pos
		return true
	}
	return f.ipv6 == a.Is6()
}

// describe names the family and where it was fixed, relative to at.
func (f *family) describe(at Pos) string {
	name := "IPv4"
	if f.ipv6 {
		name = "IPv6"
	}
	if f.by.File == at.File {
		return fmt.Sprintf("%s since line %d", name, f.by.Line)
	}
	return fmt.Sprintf("%s since %s", name, f.by)
}

func (c *configParser) instance(n *node) {
	in := &InstanceConfig{Pos: n.pos, Name: n.args[0], Priority: defaultPriority, AdvertInt: time.Second}
	var fam family
	seen := map[string]Pos{}
	for _, k := range n.block {
		if p, dup := seen[k.keyword]; dup && k.keyword != "include" {
			c.warnf(k.pos, "%s repeated (first at %s); the last one wins", k.keyword, p)
		}
		seen[k.keyword] = k.pos
		switch k.keyword {
		case "state":
			if v, ok := c.oneArg(k); ok {
				switch v {
				case "MASTER":
					in.StartMaster = true
				case "BACKUP":
					in.StartMaster = false
				default:
					c.errorf(k.pos, "state must be MASTER or BACKUP, not %q", v)
				}
			}
		case "interface":
			if v, ok := c.oneArg(k); ok {
				in.Interface = v
			}
		case "virtual_router_id":
			if v, ok := c.intArg(k, 1, 255); ok {
				in.VRID = v
			}
		case "priority":
			if v, ok := c.intArg(k, 1, 255); ok {
				in.Priority = v
			}
		case "advert_int":
			if d, ok := c.seconds(k, minV3Interval, maxV2Interval); ok {
				in.AdvertInt = d
			}
		case "version", "vrrp_version":
			if v, ok := c.intArg(k, 2, 3); ok {
				in.Version, in.versionSet = v, true
			}
		case "native_ipv6":
			if !c.noBlock(k) {
				continue
			}
			if fam.set && !fam.ipv6 {
				c.errorf(k.pos, "native_ipv6 in an IPv4 instance (%s)", fam.describe(k.pos))
				continue
			}
			fam.admit(netip.IPv6Unspecified(), k.pos)
		case "nopreempt":
			in.NoPreempt = c.flag(k)
		case "preempt":
			in.NoPreempt = !c.flag(k)
		case "preempt_delay":
			if d, ok := c.seconds(k, 0, 1000*time.Second); ok {
				in.PreemptDelay = d
			}
		case "unicast_src_ip":
			if v, ok := c.oneArg(k); ok {
				a, err := netip.ParseAddr(v)
				if err != nil || a.Zone() != "" || a.Is4In6() {
					c.errorf(k.pos, "unicast_src_ip %q is not an IP address", v)
					continue
				}
				if !fam.admit(a, k.pos) {
					c.errorf(k.pos, "unicast_src_ip %s is not of the instance's family (%s)", a, fam.describe(k.pos))
					continue
				}
				in.UnicastSrc = a
			}
		case "unicast_peer":
			if !k.hasBlock {
				c.errorf(k.pos, "unicast_peer needs a { } block of addresses")
				continue
			}
			for _, p := range k.block {
				a, err := netip.ParseAddr(p.keyword)
				if err != nil || a.Zone() != "" || a.Is4In6() {
					c.errorf(p.pos, "unicast_peer %q is not an IP address", p.keyword)
					continue
				}
				if !fam.admit(a, p.pos) {
					c.errorf(p.pos, "unicast_peer %s is not of the instance's family (%s)", a, fam.describe(p.pos))
					continue
				}
				if len(p.args) > 0 {
					c.warnf(p.pos, "unicast_peer options %q ignored", strings.Join(p.args, " "))
				}
				in.UnicastPeers = append(in.UnicastPeers, a)
			}
		case "authentication":
			c.auth(k, in)
		case "virtual_ipaddress":
			if !k.hasBlock {
				c.errorf(k.pos, "virtual_ipaddress needs a { } block")
				continue
			}
			for _, v := range k.block {
				vip, ok := c.vip(v)
				if !ok {
					continue
				}
				if !fam.admit(vip.Prefix.Addr(), v.pos) {
					// keepalived: "address family must match VRRP instance - ignoring".
					c.warnf(v.pos, "virtual_ipaddress %s ignored: not of the instance's family (%s); use virtual_ipaddress_excluded for the other family", vip.Prefix, fam.describe(v.pos))
					continue
				}
				in.VIPs = append(in.VIPs, vip)
			}
		case "virtual_ipaddress_excluded":
			if !k.hasBlock {
				c.errorf(k.pos, "virtual_ipaddress_excluded needs a { } block")
				continue
			}
			for _, v := range k.block {
				if vip, ok := c.vip(v); ok {
					in.ExcludedVIPs = append(in.ExcludedVIPs, vip)
				}
			}
		case "virtual_routes", "virtual_rules":
			c.warnf(k.pos, "%s is not supported by warren-vrrp; ignored", k.keyword)
		case "track_script":
			if !k.hasBlock {
				c.errorf(k.pos, "track_script needs a { } block of script names")
				continue
			}
			for _, s := range k.block {
				ts := TrackScript{Pos: s.pos, Name: s.keyword}
				if len(s.args) >= 2 && s.args[0] == "weight" {
					w, err := parseWeight(s.args[1])
					if err != nil {
						c.errorf(s.pos, "track_script %s weight: %v", s.keyword, err)
						continue
					}
					ts.Weight, ts.WeightSet = w, true
					ts.Reverse = len(s.args) == 3 && s.args[2] == "reverse"
				} else if len(s.args) > 0 {
					c.errorf(s.pos, "track_script %s: unexpected %q", s.keyword, strings.Join(s.args, " "))
					continue
				}
				in.TrackScripts = append(in.TrackScripts, ts)
			}
		case "track_interface":
			if !k.hasBlock {
				c.errorf(k.pos, "track_interface needs a { } block of interface names")
				continue
			}
			for _, s := range k.block {
				ti := TrackInterface{Name: s.keyword}
				if len(s.args) >= 2 && s.args[0] == "weight" {
					w, err := parseWeight(s.args[1])
					if err != nil {
						c.errorf(s.pos, "track_interface %s weight: %v", s.keyword, err)
						continue
					}
					ti.Weight = w
				} else if len(s.args) > 0 {
					c.errorf(s.pos, "track_interface %s: unexpected %q", s.keyword, strings.Join(s.args, " "))
					continue
				}
				in.TrackIfaces = append(in.TrackIfaces, ti)
			}
		case "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify":
			c.notify(k, &in.Notify)
		case "smtp_alert":
			in.SMTPAlert = c.flag(k)
		case "check_unicast_src":
			in.CheckUnicastSrc = c.flag(k)
		case "garp_master_delay":
			if v, ok := c.intArg(k, 0, 255); ok {
				in.GARPMasterDelay, in.GARPDelaySet = time.Duration(v)*time.Second, true
			}
		case "garp_master_repeat":
			if v, ok := c.intArg(k, 1, 255); ok {
				in.GARPMasterRepeat = v
			}
		case "debug", "dont_track_primary", "skip_check_adv_addr", "strict_mode", "garp_master_refresh",
			"garp_master_refresh_repeat", "garp_lower_prio_delay", "garp_lower_prio_repeat", "lower_prio_no_advert",
			"higher_prio_send_advert", "kernel_rx_buf_size", "accept", "no_accept":
			c.warnf(k.pos, "%s accepted but has no effect in warren-vrrp", k.keyword)
		default:
			c.errorf(k.pos, "unknown keyword %q in vrrp_instance", k.keyword)
		}
	}
	in.IPv6 = fam.ipv6
	c.cfg.Instances = append(c.cfg.Instances, in)
}

func (c *configParser) auth(k *node, in *InstanceConfig) {
	if !k.hasBlock {
		c.errorf(k.pos, "authentication needs a { } block")
		return
	}
	typeSet := false
	for _, a := range k.block {
		switch a.keyword {
		case "auth_type":
			v, ok := c.oneArg(a)
			if !ok {
				continue
			}
			switch v {
			case "PASS":
				in.AuthType, typeSet = AuthPass, true
			case "AH":
				c.errorf(a.pos, "auth_type AH is not supported (it is obsolete and keepalived's AH does not interoperate); use PASS or none")
			default:
				c.errorf(a.pos, "auth_type must be PASS or AH, not %q", v)
			}
		case "auth_pass":
			v, ok := c.oneArg(a)
			if !ok {
				continue
			}
			if len(v) > 8 {
				c.warnf(a.pos, "auth_pass longer than 8 characters is truncated to %q", v[:8])
				v = v[:8]
			}
			in.AuthPass = v
		default:
			c.errorf(a.pos, "unknown keyword %q in authentication", a.keyword)
		}
	}
	if typeSet && in.AuthPass == "" {
		c.errorf(k.pos, "authentication: auth_type PASS needs auth_pass")
	}
}

// vip parses "ADDR[/PREFIX] [dev IF] [label L] [brd B] [scope S]".
func (c *configParser) vip(n *node) (VIP, bool) {
	var v VIP
	s := n.keyword
	if !strings.Contains(s, "/") {
		s += "/32"
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() && !p.Addr().Is6() {
		c.errorf(n.pos, "virtual_ipaddress %q is not an address", n.keyword)
		return v, false
	}
	if p.Addr().Is6() && !strings.Contains(n.keyword, "/") {
		p = netip.PrefixFrom(p.Addr(), 128)
	}
	v.Prefix = p
	args := n.args
	for len(args) > 0 {
		if len(args) < 2 {
			c.errorf(n.pos, "virtual_ipaddress %s: %q needs a value", n.keyword, args[0])
			return v, false
		}
		switch args[0] {
		case "dev":
			v.Dev = args[1]
		case "label":
			v.Label = args[1]
		case "scope":
			v.Scope = args[1]
		case "brd", "broadcast":
			// The broadcast address follows from the prefix; accepted.
		default:
			c.errorf(n.pos, "virtual_ipaddress %s: unknown option %q", n.keyword, args[0])
			return v, false
		}
		args = args[2:]
	}
	if v.Label != "" && len(v.Label) > 15 {
		c.errorf(n.pos, "virtual_ipaddress %s: label %q longer than 15 characters", n.keyword, v.Label)
		return v, false
	}
	return v, true
}

// validate applies keepalived's cross-keyword rules once everything is read.
func (c *configParser) validate() {
	cfg := c.cfg
	scripts := map[string]*ScriptConfig{}
	for _, s := range cfg.Scripts {
		scripts[s.Name] = s
	}
	// keepalived refuses a VRID used twice on one interface and family,
	// whatever the versions: both instances would receive the same adverts.
	type key struct {
		iface string
		vrid  int
		ipv6  bool
	}
	vrids := map[key]*InstanceConfig{}
	names := map[string]*InstanceConfig{}
	for _, in := range cfg.Instances {
		if o, dup := names[in.Name]; dup {
			c.errorf(in.Pos, "vrrp_instance %s already defined at %s", in.Name, o.Pos)
		}
		names[in.Name] = in
		if in.Version == 0 {
			in.Version = cfg.Global.Version
		}
		in.CheckUnicastSrc = in.CheckUnicastSrc || cfg.Global.CheckUnicastSrc
		if in.Version == 0 {
			in.Version = 2
		}
		if in.IPv6 && in.Version != 3 {
			// keepalived's IPv6 instances always run version 3; say so when
			// the instance itself asked for 2 (a global default is silent).
			if in.versionSet {
				c.warnf(in.Pos, "vrrp_instance %s: VRRPv2 cannot carry IPv6; using version 3", in.Name)
			}
			in.Version = 3
		}
		if in.Interface == "" {
			c.errorf(in.Pos, "vrrp_instance %s: no interface", in.Name)
		}
		if in.VRID == 0 {
			c.errorf(in.Pos, "vrrp_instance %s: virtual_router_id is not set", in.Name)
		}
		k := key{in.Interface, in.VRID, in.IPv6}
		if o, dup := vrids[k]; dup && in.VRID != 0 {
			c.errorf(in.Pos, "vrrp_instance %s: virtual_router_id %d on %s already used by %s", in.Name, in.VRID, in.Interface, o.Name)
		}
		vrids[k] = in
		if in.NoPreempt && in.StartMaster {
			// keepalived 2.2.7 warns and clears nopreempt.
			c.warnf(in.Pos, "vrrp_instance %s: nopreempt will not work with initial state MASTER - clearing (nopreempt needs state BACKUP)", in.Name)
			in.NoPreempt = false
		}
		if in.PreemptDelay > 0 && in.NoPreempt {
			c.warnf(in.Pos, "vrrp_instance %s: preempt_delay has no effect with nopreempt", in.Name)
		}
		if in.Priority == PriorityOwner && !in.StartMaster {
			c.warnf(in.Pos, "vrrp_instance %s: priority 255 is the address owner; it starts as MASTER", in.Name)
		}
		switch in.Version {
		case 2:
			if in.AdvertInt%time.Second != 0 {
				rounded := (in.AdvertInt + time.Second/2) / time.Second * time.Second
				if rounded == 0 {
					rounded = time.Second
				}
				c.warnf(in.Pos, "vrrp_instance %s: VRRPv2 advert_int must be whole seconds; %s rounded to %s", in.Name, in.AdvertInt, rounded)
				in.AdvertInt = rounded
			}
		case 3:
			if in.AdvertInt > maxV3IntervalD {
				c.errorf(in.Pos, "vrrp_instance %s: VRRPv3 advert_int %s above 40.95s", in.Name, in.AdvertInt)
			}
			if in.AdvertInt%(10*time.Millisecond) != 0 {
				c.errorf(in.Pos, "vrrp_instance %s: VRRPv3 advert_int %s is not a multiple of 0.01s", in.Name, in.AdvertInt)
			}
			if in.AuthType != AuthNone {
				c.warnf(in.Pos, "vrrp_instance %s: VRRPv3 has no authentication; authentication ignored", in.Name)
				in.AuthType, in.AuthPass = AuthNone, ""
			}
		}
		if cfg.Global.Strict {
			if in.AuthType != AuthNone {
				c.errorf(in.Pos, "vrrp_instance %s: authentication is not allowed with vrrp_strict", in.Name)
			}
			if in.NoPreempt {
				c.errorf(in.Pos, "vrrp_instance %s: nopreempt is not allowed with vrrp_strict", in.Name)
			}
			if len(in.VIPs) == 0 {
				c.errorf(in.Pos, "vrrp_instance %s: vrrp_strict needs at least one virtual_ipaddress", in.Name)
			}
		}
		switch {
		case len(in.VIPs) == 0 && in.IPv6:
			// keepalived refuses to run an IPv6 instance without one.
			c.errorf(in.Pos, "vrrp_instance %s: an IPv6 instance needs at least one virtual_ipaddress", in.Name)
		case len(in.VIPs) == 0:
			c.warnf(in.Pos, "vrrp_instance %s: no virtual_ipaddress", in.Name)
		case in.IPv6 && !in.VIPs[0].Prefix.Addr().IsLinkLocalUnicast():
			// RFC 5798 section 5.2.9: the first IPv6 address is the
			// virtual router's link-local one. keepalived warns, and
			// refuses it under vrrp_strict.
			if cfg.Global.Strict {
				c.errorf(in.Pos, "vrrp_instance %s: vrrp_strict: the first IPv6 virtual_ipaddress must be link-local (fe80::/10)", in.Name)
			} else {
				c.warnf(in.Pos, "vrrp_instance %s: the first IPv6 virtual_ipaddress should be link-local (fe80::/10)", in.Name)
			}
		}
		if in.UnicastSrc.IsValid() && len(in.UnicastPeers) == 0 {
			c.warnf(in.Pos, "vrrp_instance %s: unicast_src_ip without unicast_peer; adverts go to the multicast group", in.Name)
		}
		for _, ts := range in.TrackScripts {
			if scripts[ts.Name] == nil {
				c.errorf(ts.Pos, "vrrp_instance %s: track_script %s is not a vrrp_script", in.Name, ts.Name)
			}
		}
	}
	for _, g := range cfg.SyncGroups {
		if len(g.Members) == 1 {
			c.warnf(g.Pos, "vrrp_sync_group %s has only 1 instance - this probably isn't what you want", g.Name)
		}
		for _, m := range g.Members {
			in := names[m]
			switch {
			case in == nil:
				c.errorf(g.Pos, "vrrp_sync_group %s: no vrrp_instance %s", g.Name, m)
			case in.SyncGroup != "":
				c.errorf(g.Pos, "vrrp_sync_group %s: instance %s already in group %s", g.Name, m, in.SyncGroup)
			default:
				in.SyncGroup = g.Name
				if !g.TrackingWeight {
					c.dropSyncWeights(in, g, scripts)
				}
			}
		}
	}
}

// dropSyncWeights applies keepalived's rule for members of a sync group
// without sync_group_tracking_weight: weighted tracking would give the
// members differing priorities, so a weighted track_script is ignored and a
// tracked interface's weight is set to 0 (down means FAULT), each with a
// warning.
func (c *configParser) dropSyncWeights(in *InstanceConfig, g *SyncGroupConfig, scripts map[string]*ScriptConfig) {
	kept := in.TrackScripts[:0]
	for _, ts := range in.TrackScripts {
		w := ts.Weight
		if !ts.WeightSet {
			if s := scripts[ts.Name]; s != nil {
				w = s.Weight
			}
		}
		if w != 0 {
			c.warnf(ts.Pos, "vrrp_instance %s: ignoring tracked script %s with weights due to sync group %s (as keepalived does; set sync_group_tracking_weight to keep it)", in.Name, ts.Name, g.Name)
			continue
		}
		kept = append(kept, ts)
	}
	in.TrackScripts = kept
	for i, ti := range in.TrackIfaces {
		if ti.Weight != 0 {
			c.warnf(in.Pos, "vrrp_instance %s: ignoring weight of tracked interface %s due to sync group %s: down means FAULT", in.Name, ti.Name, g.Name)
			in.TrackIfaces[i].Weight = 0
		}
	}
}

// joinCommand rebuilds a command line from words, quoting words with spaces.
func joinCommand(words []string) string {
	var sb strings.Builder
	for i, w := range words {
		if i > 0 {
			sb.WriteByte(' ')
		}
		if strings.ContainsAny(w, " \t'") {
			fmt.Fprintf(&sb, "\"%s\"", w)
		} else {
			sb.WriteString(w)
		}
	}
	return sb.String()
}
