package broker

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/amqp"
)

// What an opAdmin request asks another node for.
const (
	adminConnections = 1 // its client connections
	adminChannels    = 2 // their channels
	adminConsumers   = 3 // the consumers of its queues in a vhost ("" for all)
	adminClose       = 4 // to close a connection (name or ID, reason)
	adminSync        = 5 // to start or stop synchronising a queue (vhost, name, "sync" or "cancel")
)

// gatherWait bounds how long a cluster-wide listing waits for each other
// node: one that does not answer in time is left out, as the management
// plugin leaves out a node it cannot reach.
const gatherWait = 2 * time.Second

// askNode sends one opAdmin request to node and returns its JSON answer.
func (s *Server) askNode(node string, kind byte, args ...string) ([]byte, error) {
	link, err := s.peerLink(node)
	if err != nil {
		return nil, err
	}
	r, err := link.call(opAdmin, func(w *frameWriter) {
		w.b = append(w.b, kind)
		w.uint(uint64(len(args)))
		for _, a := range args {
			w.str(a)
		}
	})
	if err != nil {
		return nil, err
	}
	if err := r.error(); err != nil {
		return nil, err
	}
	js := r.r.bytes()
	return js, r.r.err
}

// askMembers sends an opAdmin request to every other member at once and
// returns the answers that came within gatherWait.
func (s *Server) askMembers(kind byte, args ...string) [][]byte {
	if s.cfg.DialPeer == nil {
		return nil
	}
	var mu sync.Mutex
	answers := map[string][]byte{}
	done, _ := s.fanOut(s.otherMembers(s.meta), gatherWait, func(node string) bool {
		js, err := s.askNode(node, kind, args...)
		if err != nil {
			s.log.Debug("cluster listing: node left out", "node", node, "error", err)
			return false
		}
		mu.Lock()
		answers[node] = js
		mu.Unlock()
		return true
	})
	var out [][]byte
	mu.Lock()
	defer mu.Unlock()
	for node := range done {
		out = append(out, answers[node])
	}
	return out
}

// gather adds to mine what every other member answers to an opAdmin
// request, decoded.
func gather[T any](s *Server, mine []T, kind byte, args ...string) []T {
	for _, js := range s.askMembers(kind, args...) {
		var theirs []T
		if err := json.Unmarshal(js, &theirs); err != nil {
			s.log.Warn("cluster listing: bad answer", "error", err)
			continue
		}
		mine = append(mine, theirs...)
	}
	return mine
}

// ClusterConnections lists the client connections of every running node,
// by name.
func (s *Server) ClusterConnections() []ConnectionInfo {
	out := gather(s, s.Connections(), adminConnections)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ClusterChannels lists the channels of every running node, by
// connection and number.
func (s *Server) ClusterChannels() []ChannelInfo {
	out := gather(s, s.Channels(), adminChannels)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Connection != out[j].Connection {
			return out[i].Connection < out[j].Connection
		}
		return out[i].Number < out[j].Number
	})
	return out
}

// ClusterConsumers lists the consumers of every queue of the cluster, or
// of one vhost's queues when vhost is not empty; each queue's node lists
// its consumers, those of clients on other nodes included.
func (s *Server) ClusterConsumers(vhost string) []ConsumerInfo {
	out := gather(s, s.Consumers(vhost), adminConsumers, vhost)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].VHost != out[j].VHost {
			return out[i].VHost < out[j].VHost
		}
		return out[i].Queue < out[j].Queue
	})
	return out
}

// CloseConnectionOn closes a connection of node (this one or another)
// by name or ID, as CloseConnection does; it reports whether the
// connection was found.
func (s *Server) CloseConnectionOn(node, name, reason string) bool {
	if node == "" || node == s.cfg.NodeName {
		return s.CloseConnection(name, reason)
	}
	js, err := s.askNode(node, adminClose, name, reason)
	if err != nil {
		s.log.Warn("closing a connection on another node", "node", node, "connection", name, "error", err)
		return false
	}
	var found bool
	return json.Unmarshal(js, &found) == nil && found
}

// answerAdmin answers an opAdmin request of another node.
func (s *Server) answerAdmin(kind byte, args []string) (any, error) {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	switch kind {
	case adminConnections:
		return s.Connections(), nil
	case adminChannels:
		return s.Channels(), nil
	case adminConsumers:
		return s.Consumers(arg(0)), nil
	case adminClose:
		return s.CloseConnection(arg(0), arg(1)), nil
	case adminSync:
		return true, s.syncHere(arg(0), arg(1), arg(2))
	}
	return nil, fmt.Errorf("unknown admin request %d", kind)
}

// The operators' views of connections, channels and consumers cross the
// cluster as JSON. Their addresses and AMQP tables are interfaces and
// typed values that JSON cannot carry as they are: addresses go as
// text and tables in AMQP's own encoding.

// textAddr is an address known only as text.
type textAddr string

func (a textAddr) Network() string { return "" }
func (a textAddr) String() string  { return string(a) }

func addrText(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func parseAddr(s string) net.Addr {
	if s == "" {
		return nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return textAddr(s)
}

func decodeTable(b []byte) (amqp.Table, error) {
	if len(b) == 0 {
		return nil, nil
	}
	t, err := amqp.DecodeTable(b)
	if err != nil {
		return nil, fmt.Errorf("decode table: %w", err)
	}
	return t, nil
}

// MarshalJSON implements json.Marshaler.
func (c ConnectionInfo) MarshalJSON() ([]byte, error) {
	type plain ConnectionInfo
	return json.Marshal(struct {
		plain
		Peer, Local      string
		ClientProperties []byte
	}{plain(c), addrText(c.Peer), addrText(c.Local), amqp.EncodeTable(c.ClientProperties)})
}

// UnmarshalJSON implements json.Unmarshaler.
func (c *ConnectionInfo) UnmarshalJSON(b []byte) error {
	type plain ConnectionInfo
	var w struct {
		plain
		Peer, Local      string
		ClientProperties []byte
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	props, err := decodeTable(w.ClientProperties)
	if err != nil {
		return err
	}
	*c = ConnectionInfo(w.plain)
	c.Peer, c.Local, c.ClientProperties = parseAddr(w.Peer), parseAddr(w.Local), props
	return nil
}

// MarshalJSON implements json.Marshaler.
func (c ChannelInfo) MarshalJSON() ([]byte, error) {
	type plain ChannelInfo
	return json.Marshal(struct {
		plain
		Peer string
	}{plain(c), addrText(c.Peer)})
}

// UnmarshalJSON implements json.Unmarshaler.
func (c *ChannelInfo) UnmarshalJSON(b []byte) error {
	type plain ChannelInfo
	var w struct {
		plain
		Peer string
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = ChannelInfo(w.plain)
	c.Peer = parseAddr(w.Peer)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (c ConsumerInfo) MarshalJSON() ([]byte, error) {
	type plain ConsumerInfo
	return json.Marshal(struct {
		plain
		Peer      string
		Arguments []byte
	}{plain(c), addrText(c.Peer), amqp.EncodeTable(c.Arguments)})
}

// UnmarshalJSON implements json.Unmarshaler.
func (c *ConsumerInfo) UnmarshalJSON(b []byte) error {
	type plain ConsumerInfo
	var w struct {
		plain
		Peer      string
		Arguments []byte
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	args, err := decodeTable(w.Arguments)
	if err != nil {
		return err
	}
	*c = ConsumerInfo(w.plain)
	c.Peer, c.Arguments = parseAddr(w.Peer), args
	return nil
}
