package vrrp

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Config is a parsed keepalived.conf: the VRRP part of it.
type Config struct {
	Global     Global
	Scripts    []*ScriptConfig
	Instances  []*InstanceConfig
	SyncGroups []*SyncGroupConfig
	// Warnings are problems keepalived also lets pass (it logs them).
	Warnings []Diag
}

// Global is the global_defs section.
type Global struct {
	RouterID         string
	SkipCheckAdvAddr bool
	Strict           bool
	// Version is vrrp_version, the default for every instance; zero means 2.
	Version int
	// GARPInterval is the pause between gratuitous ARPs of one burst.
	GARPInterval time.Duration
	// GNAInterval is the pause between unsolicited neighbour adverts.
	GNAInterval time.Duration
	// GARPMasterDelay is the delay of the second burst after becoming
	// master; zero means none. keepalived's default is 5 s.
	GARPMasterDelay time.Duration
	// GARPMasterRepeat is the number of gratuitous ARPs per burst
	// (keepalived's default 5).
	GARPMasterRepeat int
	ScriptUser       string
	ScriptSecurity   bool
	// CheckUnicastSrc drops unicast adverts from addresses not in
	// unicast_peer (vrrp_check_unicast_src) instead of accepting them.
	CheckUnicastSrc bool
}

// ScriptConfig is one vrrp_script.
type ScriptConfig struct {
	Pos      Pos
	Name     string
	Command  string
	Interval time.Duration // default 1 s
	Timeout  time.Duration // default: the interval
	Weight   int
	Reverse  bool
	Fall     int // default 1
	Rise     int // default 1
	User     string
	InitFail bool
}

// VIP is one virtual_ipaddress line.
type VIP struct {
	Prefix netip.Prefix
	Dev    string // empty: the instance's interface
	Label  string
	Scope  string
}

// TrackScript names a vrrp_script tracked by an instance; Weight overrides
// the script's own weight when WeightSet.
type TrackScript struct {
	Pos       Pos
	Name      string
	Weight    int
	WeightSet bool
	Reverse   bool
}

// TrackInterface is a track_interface entry.
type TrackInterface struct {
	Name   string
	Weight int
}

// Notify holds the notify scripts of an instance or sync group.
type Notify struct {
	Master, Backup, Fault, Stop, Any string
}

// InstanceConfig is one vrrp_instance.
type InstanceConfig struct {
	Pos          Pos
	Name         string
	StartMaster  bool // state MASTER
	Interface    string
	VRID         int
	Priority     int // default 100
	AdvertInt    time.Duration
	Version      int
	NoPreempt    bool
	PreemptDelay time.Duration
	UnicastSrc   netip.Addr
	UnicastPeers []netip.Addr
	AuthType     AuthType
	AuthPass     string
	// VIPs are the virtual_ipaddress lines: addresses of the instance's
	// family only, listed in its adverts.
	VIPs []VIP
	// ExcludedVIPs are virtual_ipaddress_excluded: added and removed with
	// the VIPs, of either family, never listed in adverts.
	ExcludedVIPs []VIP
	// IPv6 is the instance's family: VRRPv3 over IPv6 to ff02::12. As in
	// keepalived, the first of unicast_src_ip, native_ipv6, a unicast_peer
	// or a virtual_ipaddress decides it; later addresses of the other
	// family are refused (unicast) or ignored (virtual_ipaddress).
	IPv6         bool
	TrackScripts []TrackScript
	TrackIfaces  []TrackInterface
	Notify       Notify
	SMTPAlert    bool
	// GARPMasterDelay and GARPMasterRepeat override the global values when set.
	GARPMasterDelay  time.Duration
	GARPDelaySet     bool
	GARPMasterRepeat int
	SyncGroup        string
	// CheckUnicastSrc is check_unicast_src (or the global
	// vrrp_check_unicast_src): drop adverts from unlisted addresses.
	CheckUnicastSrc bool

	versionSet bool // version given in the instance itself
}

// SyncGroupConfig is one vrrp_sync_group.
type SyncGroupConfig struct {
	Pos     Pos
	Name    string
	Members []string
	Notify  Notify
	// TrackingWeight is sync_group_tracking_weight: members keep the
	// weights of their tracked scripts and interfaces.
	TrackingWeight bool
}

// ParseConfigFile reads a keepalived.conf and the files it includes. It
// returns a *ConfigError listing every error found; warnings come back in
// Config.Warnings. The returned *Config is never nil, even with an error.
func ParseConfigFile(path string) (*Config, error) {
	lx := &lexer{open: map[string]bool{}}
	lx.readFile(path, Pos{}, 0)
	diags := lx.diags
	tree := parseTree(lx.toks, &diags)
	cp := &configParser{cfg: &Config{Global: Global{GARPMasterDelay: 5 * time.Second, GARPMasterRepeat: 5}}}
	cp.errs = diags
	cp.top(tree)
	cp.validate()
	cp.cfg.Warnings = cp.warns
	if len(cp.errs) > 0 {
		return cp.cfg, &ConfigError{Diags: cp.errs}
	}
	return cp.cfg, nil
}

type configParser struct {
	cfg   *Config
	errs  []Diag
	warns []Diag
}

func (c *configParser) errorf(pos Pos, format string, args ...any) {
	c.errs = append(c.errs, Diag{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (c *configParser) warnf(pos Pos, format string, args ...any) {
	c.warns = append(c.warns, Diag{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// ignoredSections are keepalived sections outside VRRP: accepted and skipped
// so one keepalived.conf can serve both, with a warning.
var ignoredSections = map[string]bool{
	"virtual_server": true, "virtual_server_group": true, "static_ipaddress": true,
	"static_routes": true, "static_rules": true, "linkbeat_interfaces": true,
}

func (c *configParser) top(nodes []*node) {
	for _, n := range nodes {
		switch n.keyword {
		case "global_defs":
			if c.needBlock(n) {
				c.global(n.block)
			}
		case "vrrp_script":
			if c.needBlock(n) && c.needName(n) {
				c.script(n)
			}
		case "vrrp_instance":
			if c.needBlock(n) && c.needName(n) {
				c.instance(n)
			}
		case "vrrp_sync_group":
			if c.needBlock(n) && c.needName(n) {
				c.syncGroup(n)
			}
		default:
			if ignoredSections[n.keyword] {
				c.warnf(n.pos, "%s is not a VRRP section; ignored", n.keyword)
				continue
			}
			c.errorf(n.pos, "unknown keyword %q", n.keyword)
		}
	}
}

func (c *configParser) needBlock(n *node) bool {
	if !n.hasBlock {
		c.errorf(n.pos, "%s needs a { } block", n.keyword)
		return false
	}
	return true
}

func (c *configParser) needName(n *node) bool {
	if len(n.args) != 1 {
		c.errorf(n.pos, "%s needs exactly one name", n.keyword)
		return false
	}
	return true
}

// noBlock reports a block where none belongs.
func (c *configParser) noBlock(n *node) bool {
	if n.hasBlock {
		c.errorf(n.pos, "%s takes no { } block", n.keyword)
		return false
	}
	return true
}

func (c *configParser) flag(n *node) bool {
	if !c.noBlock(n) {
		return false
	}
	if len(n.args) > 0 {
		switch strings.ToLower(n.args[0]) {
		case "false", "off", "no", "0":
			return false
		case "true", "on", "yes", "1":
		default:
			c.errorf(n.pos, "%s: unexpected %q", n.keyword, n.args[0])
		}
	}
	return true
}

func (c *configParser) oneArg(n *node) (string, bool) {
	if !c.noBlock(n) {
		return "", false
	}
	if len(n.args) != 1 {
		c.errorf(n.pos, "%s needs one value, got %d", n.keyword, len(n.args))
		return "", false
	}
	return n.args[0], true
}

// command joins a script's words back into one command line.
func (c *configParser) command(n *node) (string, bool) {
	if !c.noBlock(n) {
		return "", false
	}
	if len(n.args) == 0 {
		c.errorf(n.pos, "%s needs a command", n.keyword)
		return "", false
	}
	if len(n.args) == 1 {
		return n.args[0], true
	}
	return joinCommand(n.args), true
}

func (c *configParser) intArg(n *node, min, max int) (int, bool) {
	s, ok := c.oneArg(n)
	if !ok {
		return 0, false
	}
	var v int
	if _, err := fmt.Sscanf(s, "%d", &v); err != nil || fmt.Sprint(v) != strings.TrimPrefix(s, "+") {
		c.errorf(n.pos, "%s: %q is not an integer", n.keyword, s)
		return 0, false
	}
	if v < min || v > max {
		c.errorf(n.pos, "%s %d out of range %d..%d", n.keyword, v, min, max)
		return 0, false
	}
	return v, true
}

// seconds parses a decimal number of seconds ("1", "0.1", "2.5").
func (c *configParser) seconds(n *node, min, max time.Duration) (time.Duration, bool) {
	s, ok := c.oneArg(n)
	if !ok {
		return 0, false
	}
	d, err := parseSeconds(s)
	if err != nil {
		c.errorf(n.pos, "%s: %v", n.keyword, err)
		return 0, false
	}
	if d < min || d > max {
		c.errorf(n.pos, "%s %s out of range %s..%s", n.keyword, s, min, max)
		return 0, false
	}
	return d, true
}

func parseSeconds(s string) (time.Duration, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" {
		whole = "0"
	}
	var w int64
	if _, err := fmt.Sscanf(whole, "%d", &w); err != nil || fmt.Sprint(w) != whole || w < 0 {
		return 0, fmt.Errorf("%q is not a number of seconds", s)
	}
	d := time.Duration(w) * time.Second
	if frac != "" {
		if len(frac) > 6 {
			frac = frac[:6]
		}
		var f int64
		if _, err := fmt.Sscanf(frac, "%d", &f); err != nil || strings.Trim(frac, "0123456789") != "" {
			return 0, fmt.Errorf("%q is not a number of seconds", s)
		}
		for i := len(frac); i < 6; i++ {
			f *= 10
		}
		d += time.Duration(f) * time.Microsecond
	}
	return d, nil
}

func (c *configParser) global(nodes []*node) {
	g := &c.cfg.Global
	for _, n := range nodes {
		switch n.keyword {
		case "router_id":
			if v, ok := c.oneArg(n); ok {
				g.RouterID = v
			}
		case "vrrp_skip_check_adv_addr":
			g.SkipCheckAdvAddr = c.flag(n)
		case "vrrp_strict":
			g.Strict = c.flag(n)
		case "vrrp_version":
			if v, ok := c.intArg(n, 2, 3); ok {
				g.Version = v
			}
		case "vrrp_garp_interval":
			if d, ok := c.seconds(n, 0, time.Second); ok {
				g.GARPInterval = d
			}
		case "vrrp_gna_interval":
			if d, ok := c.seconds(n, 0, time.Second); ok {
				g.GNAInterval = d
			}
		case "vrrp_garp_master_delay":
			if v, ok := c.intArg(n, 0, 255); ok {
				g.GARPMasterDelay = time.Duration(v) * time.Second
			}
		case "vrrp_garp_master_repeat":
			if v, ok := c.intArg(n, 1, 255); ok {
				g.GARPMasterRepeat = v
			}
		case "script_user":
			if c.noBlock(n) && len(n.args) >= 1 && len(n.args) <= 2 {
				g.ScriptUser = n.args[0]
			} else if !n.hasBlock {
				c.errorf(n.pos, "script_user needs a user and optionally a group")
			}
		case "enable_script_security":
			g.ScriptSecurity = c.flag(n)
		case "vrrp_check_unicast_src":
			g.CheckUnicastSrc = c.flag(n)
		case "notification_email":
			if !n.hasBlock {
				c.errorf(n.pos, "notification_email needs a { } block")
			}
		case "notification_email_from", "smtp_server", "smtp_connect_timeout", "smtp_helo_name":
			c.noBlock(n) // accepted; warren-vrrp sends no mail
		case "vrrp_garp_lower_prio_delay", "vrrp_garp_lower_prio_repeat", "vrrp_garp_master_refresh",
			"vrrp_garp_master_refresh_repeat", "vrrp_no_swap", "vrrp_priority", "checker_priority",
			"checker_no_swap", "lvs_flush", "vrrp_iptables", "max_auto_priority":
			c.warnf(n.pos, "%s accepted but has no effect in warren-vrrp", n.keyword)
		default:
			c.errorf(n.pos, "unknown keyword %q in global_defs", n.keyword)
		}
	}
}

func (c *configParser) script(n *node) {
	s := &ScriptConfig{Pos: n.pos, Name: n.args[0], Interval: time.Second, Fall: 1, Rise: 1}
	for _, k := range n.block {
		switch k.keyword {
		case "script":
			if v, ok := c.command(k); ok {
				s.Command = v
			}
		case "interval":
			if d, ok := c.seconds(k, 10*time.Millisecond, 24*time.Hour); ok {
				s.Interval = d
			}
		case "timeout":
			if d, ok := c.seconds(k, 10*time.Millisecond, 24*time.Hour); ok {
				s.Timeout = d
			}
		case "weight":
			if !c.noBlock(k) {
				continue
			}
			if len(k.args) < 1 || len(k.args) > 2 || (len(k.args) == 2 && k.args[1] != "reverse") {
				c.errorf(k.pos, "weight needs a number from -253 to 253, optionally followed by reverse")
				continue
			}
			w, err := parseWeight(k.args[0])
			if err != nil {
				c.errorf(k.pos, "weight: %v", err)
				continue
			}
			s.Weight, s.Reverse = w, len(k.args) == 2
		case "fall":
			if v, ok := c.intArg(k, 1, 1000); ok {
				s.Fall = v
			}
		case "rise":
			if v, ok := c.intArg(k, 1, 1000); ok {
				s.Rise = v
			}
		case "user":
			if c.noBlock(k) && len(k.args) >= 1 && len(k.args) <= 2 {
				s.User = k.args[0]
			} else {
				c.errorf(k.pos, "user needs a user and optionally a group")
			}
		case "init_fail":
			s.InitFail = c.flag(k)
		default:
			c.errorf(k.pos, "unknown keyword %q in vrrp_script", k.keyword)
		}
	}
	if s.Command == "" {
		c.errorf(n.pos, "vrrp_script %s has no script", s.Name)
		return
	}
	if s.Timeout == 0 {
		s.Timeout = s.Interval
	}
	for _, o := range c.cfg.Scripts {
		if o.Name == s.Name {
			c.errorf(n.pos, "vrrp_script %s already defined at %s", s.Name, o.Pos)
			return
		}
	}
	c.cfg.Scripts = append(c.cfg.Scripts, s)
}

func parseWeight(s string) (int, error) {
	var w int
	if _, err := fmt.Sscanf(s, "%d", &w); err != nil || fmt.Sprint(w) != strings.TrimPrefix(s, "+") {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	if w < -253 || w > 253 {
		return 0, fmt.Errorf("%d out of range -253..253", w)
	}
	return w, nil
}

func (c *configParser) syncGroup(n *node) {
	g := &SyncGroupConfig{Pos: n.pos, Name: n.args[0]}
	for _, k := range n.block {
		switch k.keyword {
		case "group":
			if !k.hasBlock {
				c.errorf(k.pos, "group needs a { } block of instance names")
				continue
			}
			for _, m := range k.block {
				g.Members = append(g.Members, m.keyword)
				g.Members = append(g.Members, m.args...)
			}
		case "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify":
			c.notify(k, &g.Notify)
		case "sync_group_tracking_weight":
			c.noBlock(k)
			g.TrackingWeight = true
		case "smtp_alert", "global_tracking":
			c.noBlock(k)
		default:
			c.errorf(k.pos, "unknown keyword %q in vrrp_sync_group", k.keyword)
		}
	}
	c.cfg.SyncGroups = append(c.cfg.SyncGroups, g)
}

func (c *configParser) notify(k *node, nt *Notify) {
	v, ok := c.command(k)
	if !ok {
		return
	}
	switch k.keyword {
	case "notify_master":
		nt.Master = v
	case "notify_backup":
		nt.Backup = v
	case "notify_fault":
		nt.Fault = v
	case "notify_stop":
		nt.Stop = v
	case "notify":
		nt.Any = v
	}
}
