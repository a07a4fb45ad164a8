package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// DefaultPort is the cluster port of a node whose name does not give one,
// as RabbitMQ's inter-node port is 25672.
const DefaultPort = 25672

// NodeName is a node's name: NAME@HOST, where HOST is resolved by the
// system resolver (the runbooks' /etc/hosts entries), or NAME@HOST:PORT so
// that several nodes can share a host.
type NodeName struct {
	Name string
	Host string
	// Port is the cluster port; 0 when the name does not give one.
	Port int
}

// ParseNodeName parses NAME@HOST or NAME@HOST:PORT. A bare NAME is on
// defaultHost, as rabbitmqctl completes "-n rabbit" with the local host.
func ParseNodeName(s, defaultHost string) (NodeName, error) {
	name, host, ok := strings.Cut(s, "@")
	if !ok {
		host = defaultHost
	}
	if name == "" {
		return NodeName{}, fmt.Errorf("node name %q: the part before '@' is empty", s)
	}
	if host == "" {
		return NodeName{}, fmt.Errorf("node name %q: the host after '@' is empty", s)
	}
	n := NodeName{Name: name, Host: host}
	if h, p, err := net.SplitHostPort(host); err == nil {
		port, err := strconv.Atoi(p)
		if err != nil || port <= 0 || port > 65535 {
			return NodeName{}, fmt.Errorf("node name %q: port %q is not a number from 1 to 65535", s, p)
		}
		n.Host, n.Port = h, port
	}
	return n, nil
}

// String is the name as written: NAME@HOST or NAME@HOST:PORT.
func (n NodeName) String() string {
	if n.Port == 0 {
		return n.Name + "@" + n.Host
	}
	return n.Name + "@" + net.JoinHostPort(n.Host, strconv.Itoa(n.Port))
}

// Addr is the node's cluster port address; defaultPort stands in when the
// name gives none.
func (n NodeName) Addr(defaultPort int) string {
	p := n.Port
	if p == 0 {
		p = defaultPort
	}
	return net.JoinHostPort(n.Host, strconv.Itoa(p))
}

// ErrHostUnknown means a node name's host does not resolve.
var ErrHostUnknown = errors.New("host does not resolve")

// Resolve checks that the node's host resolves, and says so in the
// words an operator needs when it does not.
func (n NodeName) Resolve(ctx context.Context) error {
	if _, err := net.DefaultResolver.LookupHost(ctx, n.Host); err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return fmt.Errorf("node %s: %w: '%s' is not a known host name (add it to /etc/hosts or DNS on this machine)", n, ErrHostUnknown, n.Host)
		}
		return fmt.Errorf("node %s: cannot resolve host '%s': %w", n, n.Host, err)
	}
	return nil
}
