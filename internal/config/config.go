// Package config reads a node's configuration: rabbitmq.conf-style
// "key = value" files layered over embedded defaults, with every problem
// reported as file:line.
package config

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/warren-mq/warren/internal/tlsconf"
)

// Node is a node's configuration. The zero value is not useful; start from
// Defaults.
type Node struct {
	DataDir    string
	NodeName   string
	AMQPListen string
	// AMQPSListen is listeners.ssl.default: where AMQP over TLS is
	// served, beside AMQPListen; empty for nowhere.
	AMQPSListen string
	// SSL is ssl_options: the AMQPS listener's TLS settings.
	SSL tlsconf.Options
	// ClusterSSL is cluster.ssl_options: with its files set, the cluster
	// port takes TLS only, and both ends present certificates of the CA.
	ClusterSSL       tlsconf.Options
	MgmtListen       string
	PrometheusListen string
	// MgmtTLSListen is management.ssl.port (and .ip): where the API and
	// the UI are served over HTTPS, with MgmtSSL; empty for nowhere. Set
	// without management.tcp.port, it turns plain HTTP off, as in
	// RabbitMQ. The same holds for Prometheus's.
	MgmtTLSListen       string
	MgmtSSL             tlsconf.Options
	PrometheusTLSListen string
	PrometheusSSL       tlsconf.Options
	// AuthMechanisms are auth_mechanisms.N: the SASL mechanisms offered
	// (PLAIN, AMQPLAIN, EXTERNAL); empty for PLAIN and AMQPLAIN.
	AuthMechanisms []string
	// CertLoginFrom is ssl_cert_login_from: distinguished_name or
	// common_name, for EXTERNAL.
	CertLoginFrom string
	// While a file is read: what it set, to apply the rule above and the
	// .ip keys once the whole file is known.
	mgmtTCPSet, promTCPSet  bool
	mgmtTLSIP, promTLSIP    string
	ClusterListen           string
	DefaultUser             string
	DefaultPass             string
	DefaultVHost            string
	LoopbackUsers           []string
	MemoryHighWater         float64 // fraction of RAM
	MemoryHighWaterAbsolute uint64  // octets; overrides MemoryHighWater when set
	// MemoryPagingRatio is the fraction of the watermark that queues may
	// hold in memory before they page messages out.
	MemoryPagingRatio float64
	DiskFreeLimit     uint64 // free octets below which publishers block
	// SegmentSize is the size past which the message store starts a new
	// file (msg_store_file_size_limit); 0 for the store's default.
	SegmentSize      int64
	Heartbeat        time.Duration
	FrameMax         uint32
	ChannelMax       uint16
	LogLevel         string
	HandshakeTimeout time.Duration
	// ServerProduct is the "product" server property sent to clients.
	// Some clients and test suites enable RabbitMQ-specific behaviour only
	// when it reads "RabbitMQ"; RabbitMQ itself lets operators override
	// its server properties the same way.
	ServerProduct string
	// FormationNodes are cluster_formation.classic_config's nodes, in the
	// order of their indexes: fresh nodes started with them form one
	// cluster.
	FormationNodes []string
	// FormationNodeType is the type a fresh node joins as: disc or ram.
	FormationNodeType string
	// LoadDefinitions is load_definitions (or definitions.local.path): a
	// definitions file the node imports every time it starts, as
	// RabbitMQ does.
	LoadDefinitions string
	// PartitionHandling is cluster_partition_handling: ignore,
	// pause_minority or autoheal.
	PartitionHandling string
	// QueueMasterLocator is queue_master_locator: where new queues live,
	// client-local, min-masters or random.
	QueueMasterLocator string
	// formationIndex keeps the nodes' indexes while a file is read.
	formationIndex []int
}

// Defaults returns the embedded defaults: a node that works on a fresh
// machine with no configuration at all.
func Defaults() Node {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		host = host[:i]
	}
	return Node{
		DataDir:           "warren-data",
		NodeName:          "warren@" + host,
		AMQPListen:        ":5672",
		MgmtListen:        ":15672",
		PrometheusListen:  ":15692",
		ClusterListen:     ":25672",
		DefaultUser:       "guest",
		DefaultPass:       "guest",
		DefaultVHost:      "/",
		LoopbackUsers:     []string{"guest"},
		MemoryHighWater:   0.4,
		MemoryPagingRatio: 0.5,
		Heartbeat:         60 * time.Second,
		FrameMax:          131072,
		ChannelMax:        2047,
		LogLevel:          "info",
		HandshakeTimeout:  10 * time.Second,
		ServerProduct:     "warren",
		FormationNodeType: "disc",
		PartitionHandling: "ignore",
		DiskFreeLimit:     50_000_000,
		SSL:               tlsconf.Default(),
		MgmtSSL:           withPrefix(tlsconf.Default(), "management.ssl."),
		PrometheusSSL:     withPrefix(tlsconf.Default(), "prometheus.ssl."),
		ClusterSSL:        withPrefix(tlsconf.Default(), "cluster.ssl_options."),
	}
}

// Error lists every problem found in a file.
type Error struct {
	Problems []string // each "file:line: what"
}

func (e *Error) Error() string { return strings.Join(e.Problems, "\n") }

// LoadFile applies a rabbitmq.conf-style file to n.
func (n *Node) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	var problems []string
	sc := bufio.NewScanner(f)
	line := 0
	loopbackSet := false
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, val, ok := strings.Cut(text, "=")
		if !ok {
			problems = append(problems, fmt.Sprintf("%s:%d: expected 'key = value', got %q", path, line, text))
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if i := strings.Index(val, " #"); i >= 0 {
			val = strings.TrimSpace(val[:i])
		}
		if err := n.set(key, val, &loopbackSet); err != nil {
			problems = append(problems, fmt.Sprintf("%s:%d: %s: %v", path, line, key, err))
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read config %s: %w", path, err)
	}
	if len(problems) > 0 {
		return &Error{Problems: problems}
	}
	n.MgmtListen, n.MgmtTLSListen = httpsListeners(n.MgmtListen, n.MgmtTLSListen, n.mgmtTCPSet, n.mgmtTLSIP)
	n.PrometheusListen, n.PrometheusTLSListen = httpsListeners(n.PrometheusListen, n.PrometheusTLSListen, n.promTCPSet, n.promTLSIP)
	return nil
}

var errUnknownKey = errors.New("unknown setting")

// setHTTPS applies one setting of an HTTP service's HTTPS listener (the
// part of its key after "management.ssl." or "prometheus.ssl."): port, ip
// or one of the TLS options.
func setHTTPS(key, val string, addr, ip *string, o *tlsconf.Options) error {
	switch key {
	case "port":
		a, err := listenAddr(val)
		if err != nil {
			return err
		}
		*addr = a
	case "ip":
		*ip = val
	default:
		return o.Set(key, val)
	}
	return nil
}

func withPrefix(o tlsconf.Options, prefix string) tlsconf.Options {
	o.Prefix = prefix
	return o
}

// TLSConfigs are the configurations of the listeners that serve TLS; nil
// for a listener that is off.
type TLSConfigs struct {
	AMQPS, Mgmt, Prometheus *tls.Config
	// ClusterServer and ClusterClient are the cluster port's ends when
	// cluster.ssl_options asks for TLS there: the port's, and the one
	// this node (or warrenctl) dials other nodes with.
	ClusterServer, ClusterClient *tls.Config
}

// TLSConfigs reads the certificates and keys of every TLS listener the
// configuration asks for, so that a broken one is reported before the
// node starts.
func (n *Node) TLSConfigs() (TLSConfigs, error) {
	var out TLSConfigs
	for _, l := range []struct {
		addr, what string
		o          tlsconf.Options
		dst        **tls.Config
	}{
		{n.AMQPSListen, "AMQPS listener (listeners.ssl.default)", n.SSL, &out.AMQPS},
		{n.MgmtTLSListen, "management HTTPS listener (management.ssl.port)", n.MgmtSSL, &out.Mgmt},
		{n.PrometheusTLSListen, "Prometheus HTTPS listener (prometheus.ssl.port)", n.PrometheusSSL, &out.Prometheus},
	} {
		if l.addr == "" {
			continue
		}
		c, err := l.o.Server()
		if err != nil {
			return TLSConfigs{}, fmt.Errorf("%s: %w", l.what, err)
		}
		*l.dst = c
	}
	if n.ClusterTLS() {
		var err error
		out.ClusterServer, out.ClusterClient, err = n.ClusterSSL.Mutual()
		if err != nil {
			return TLSConfigs{}, fmt.Errorf("cluster port TLS (cluster.ssl_options): %w", err)
		}
	}
	return out, nil
}

// ClusterTLS reports whether the configuration asks for TLS on the
// cluster port: some cluster.ssl_options file is set.
func (n *Node) ClusterTLS() bool {
	o := n.ClusterSSL
	return o.CACertFile != "" || o.CertFile != "" || o.KeyFile != ""
}

// httpsListeners applies a file's HTTPS settings to an HTTP service's
// listeners: the .ssl.ip to the HTTPS address, and no plain listener when
// the file asked for HTTPS but set no plain port, as RabbitMQ does.
func httpsListeners(plain, secure string, plainSet bool, ip string) (string, string) {
	if secure == "" {
		return plain, secure
	}
	if ip != "" {
		_, port, _ := net.SplitHostPort(secure)
		secure = net.JoinHostPort(ip, port)
	}
	if !plainSet {
		plain = ""
	}
	return plain, secure
}

func (n *Node) set(key, val string, loopbackSet *bool) error {
	switch {
	case key == "listeners.tcp.default" || strings.HasPrefix(key, "listeners.tcp."):
		addr, err := listenAddr(val)
		if err != nil {
			return err
		}
		n.AMQPListen = addr
	case key == "listeners.ssl.default" || strings.HasPrefix(key, "listeners.ssl."):
		addr, err := listenAddr(val)
		if err != nil {
			return err
		}
		n.AMQPSListen = addr
	case strings.HasPrefix(key, "ssl_options."):
		return n.SSL.Set(strings.TrimPrefix(key, "ssl_options."), val)
	case strings.HasPrefix(key, "cluster.ssl_options."):
		return n.ClusterSSL.Set(strings.TrimPrefix(key, "cluster.ssl_options."), val)
	case key == "management.tcp.port" || key == "management.listener.port":
		addr, err := listenAddr(val)
		if err != nil {
			return err
		}
		n.MgmtListen = addr
		n.mgmtTCPSet = true
	case strings.HasPrefix(key, "auth_mechanisms."):
		switch val {
		case "PLAIN", "AMQPLAIN", "EXTERNAL":
		default:
			return fmt.Errorf("want PLAIN, AMQPLAIN or EXTERNAL, got %q", val)
		}
		if !slices.Contains(n.AuthMechanisms, val) {
			n.AuthMechanisms = append(n.AuthMechanisms, val)
		}
	case key == "ssl_cert_login_from":
		if val != "distinguished_name" && val != "common_name" {
			return fmt.Errorf("want distinguished_name or common_name, got %q", val)
		}
		n.CertLoginFrom = val
	case strings.HasPrefix(key, "management.ssl."):
		return setHTTPS(strings.TrimPrefix(key, "management.ssl."), val, &n.MgmtTLSListen, &n.mgmtTLSIP, &n.MgmtSSL)
	case strings.HasPrefix(key, "prometheus.ssl."):
		return setHTTPS(strings.TrimPrefix(key, "prometheus.ssl."), val, &n.PrometheusTLSListen, &n.promTLSIP, &n.PrometheusSSL)
	case key == "management.tcp.ip":
		_, port, _ := net.SplitHostPort(n.MgmtListen)
		n.MgmtListen = net.JoinHostPort(val, port)
	case key == "prometheus.tcp.port":
		addr, err := listenAddr(val)
		if err != nil {
			return err
		}
		n.PrometheusListen = addr
		n.promTCPSet = true
	case key == "prometheus.tcp.ip":
		_, port, _ := net.SplitHostPort(n.PrometheusListen)
		n.PrometheusListen = net.JoinHostPort(val, port)
	case key == "default_user":
		n.DefaultUser = val
	case key == "default_pass":
		n.DefaultPass = val
	case key == "default_vhost":
		n.DefaultVHost = val
	case key == "loopback_users" && val == "none":
		n.LoopbackUsers = []string{}
	case strings.HasPrefix(key, "loopback_users."):
		b, err := strconv.ParseBool(val)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", val)
		}
		if !*loopbackSet {
			n.LoopbackUsers = nil
			*loopbackSet = true
		}
		if b {
			n.LoopbackUsers = append(n.LoopbackUsers, strings.TrimPrefix(key, "loopback_users."))
		}
		if n.LoopbackUsers == nil {
			n.LoopbackUsers = []string{}
		}
	case key == "vm_memory_high_watermark.relative":
		f, err := strconv.ParseFloat(val, 64)
		if err != nil || f <= 0 || f > 1 {
			return fmt.Errorf("want a fraction between 0 and 1, got %q", val)
		}
		n.MemoryHighWater = f
	case key == "vm_memory_high_watermark_paging_ratio":
		f, err := strconv.ParseFloat(val, 64)
		if err != nil || f <= 0 || f > 1 {
			return fmt.Errorf("want a fraction between 0 and 1, got %q", val)
		}
		n.MemoryPagingRatio = f
	case key == "vm_memory_high_watermark.absolute":
		v, err := ParseBytes(val)
		if err != nil {
			return err
		}
		n.MemoryHighWaterAbsolute = v
	case key == "msg_store_file_size_limit":
		v, err := ParseBytes(val)
		if err != nil {
			return err
		}
		if v < 4096 || v > 1<<40 {
			return fmt.Errorf("want a size from 4096 octets to 1TiB, got %q", val)
		}
		n.SegmentSize = int64(v)
	case key == "disk_free_limit.absolute":
		v, err := ParseBytes(val)
		if err != nil {
			return err
		}
		n.DiskFreeLimit = v
	case key == "heartbeat":
		s, err := strconv.ParseUint(val, 10, 16)
		if err != nil {
			return fmt.Errorf("want seconds (0-65535), got %q", val)
		}
		n.Heartbeat = time.Duration(s) * time.Second
		if s == 0 {
			n.Heartbeat = -1
		}
	case key == "frame_max":
		s, err := strconv.ParseUint(val, 10, 32)
		if err != nil || (s != 0 && s < 4096) {
			return fmt.Errorf("want octets, at least 4096, got %q", val)
		}
		n.FrameMax = uint32(s)
	case key == "channel_max":
		s, err := strconv.ParseUint(val, 10, 16)
		if err != nil {
			return fmt.Errorf("want a count (0-65535), got %q", val)
		}
		n.ChannelMax = uint16(s)
	case key == "handshake_timeout":
		ms, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return fmt.Errorf("want milliseconds, got %q", val)
		}
		n.HandshakeTimeout = time.Duration(ms) * time.Millisecond
	case key == "log.level" || key == "log.console.level" || key == "log.file.level":
		switch val {
		case "debug", "info", "warning", "error", "critical", "none":
			n.LogLevel = val
		default:
			return fmt.Errorf("want debug, info, warning, error, critical or none, got %q", val)
		}
	case key == "log.console" || key == "log.file" || key == "log.console.formatter":
		// Logs always go to standard error; accepted for compatibility.
	case key == "server_properties.product":
		if val == "" {
			return errors.New("want a product name")
		}
		n.ServerProduct = val
	case key == "data_dir":
		n.DataDir = val
	case key == "node_name" || key == "nodename":
		n.NodeName = val
	case key == "cluster_formation.peer_discovery_backend":
		switch val {
		case "classic_config", "rabbit_peer_discovery_classic_config":
		default:
			return fmt.Errorf("only classic_config peer discovery is supported, got %q", val)
		}
	case strings.HasPrefix(key, "cluster_formation.classic_config.nodes."):
		idx, err := strconv.Atoi(strings.TrimPrefix(key, "cluster_formation.classic_config.nodes."))
		if err != nil || idx < 0 {
			return fmt.Errorf("want cluster_formation.classic_config.nodes.<number>, got %q", key)
		}
		if !strings.Contains(val, "@") || strings.HasPrefix(val, "@") || strings.HasSuffix(val, "@") {
			return fmt.Errorf("want a node name such as warren@node1, got %q", val)
		}
		n.addFormationNode(idx, val)
	case key == "cluster_formation.node_type":
		switch val {
		case "disc", "disk":
			n.FormationNodeType = "disc"
		case "ram":
			n.FormationNodeType = "ram"
		default:
			return fmt.Errorf("want disc or ram, got %q", val)
		}
	case key == "queue_master_locator":
		return oneOf(&n.QueueMasterLocator, val, "client-local", "min-masters", "random")
	case key == "load_definitions" || key == "definitions.local.path":
		n.LoadDefinitions = val
	case key == "definitions.import_backend":
		if val != "local_filesystem" {
			return fmt.Errorf("want local_filesystem (the only backend warren has), got %q", val)
		}
	case key == "cluster_partition_handling":
		return oneOf(&n.PartitionHandling, val, "ignore", "pause_minority", "autoheal")
	default:
		return errUnknownKey
	}
	return nil
}

// addFormationNode places a classic_config node by its index.
func (n *Node) addFormationNode(idx int, name string) {
	i := 0
	for i < len(n.formationIndex) && n.formationIndex[i] < idx {
		i++
	}
	if i < len(n.formationIndex) && n.formationIndex[i] == idx {
		n.FormationNodes[i] = name
		return
	}
	n.formationIndex = slices.Insert(n.formationIndex, i, idx)
	n.FormationNodes = slices.Insert(n.FormationNodes, i, name)
}

// listenAddr accepts "5672", ":5672" or "host:port".
func listenAddr(val string) (string, error) {
	if p, err := strconv.ParseUint(val, 10, 16); err == nil {
		return fmt.Sprintf(":%d", p), nil
	}
	if _, _, err := net.SplitHostPort(val); err != nil {
		return "", fmt.Errorf("want a port or host:port, got %q", val)
	}
	return val, nil
}

// ParseBytes reads an amount of memory the way rabbitmq.conf writes it:
// octets, or a number with a unit (KB, MB, GB as powers of ten; KiB, MiB,
// GiB as powers of two).
func ParseBytes(val string) (uint64, error) {
	units := []struct {
		suffix string
		mult   uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"kB", 1e3}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}}
	mult := uint64(1)
	num := val
	for _, u := range units {
		if strings.HasSuffix(val, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(val, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseUint(num, 10, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("want an amount of memory such as 1073741824, 1024MiB or 2GB, got %q", val)
	}
	return v * mult, nil
}

// oneOf sets *dst to val if val is one of the allowed values.
func oneOf(dst *string, val string, allowed ...string) error {
	if !slices.Contains(allowed, val) {
		return fmt.Errorf("want %s or %s, got %q", strings.Join(allowed[:len(allowed)-1], ", "), allowed[len(allowed)-1], val)
	}
	*dst = val
	return nil
}
