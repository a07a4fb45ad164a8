package broker

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/auth"
	"github.com/warren-mq/warren/internal/meta"
	"github.com/warren-mq/warren/internal/queue"
)

// Login errors from Authenticate.
var (
	ErrBadCredentials = errors.New("invalid credentials")
	ErrLoopbackOnly   = errors.New("user can only connect via localhost")
)

// Authenticate checks a password the way an AMQP login is checked,
// loopback_users included, for a client at from. The management API logs
// users in with it so that both doors take the same keys.
func (s *Server) Authenticate(user, pass string, from net.Addr) (meta.User, error) {
	u, ok := s.meta.User(user)
	if !ok || !auth.CheckPassword(u.HashingAlgorithm, u.PasswordHash, pass) {
		return meta.User{}, ErrBadCredentials
	}
	if slices.Contains(s.cfg.LoopbackUsers, user) && !isLoopback(from) {
		return meta.User{}, ErrLoopbackOnly
	}
	return u, nil
}

// authenticateCert checks a login by client certificate (EXTERNAL): the
// user must exist, and loopback_users applies; there is no password.
func (s *Server) authenticateCert(user string, from net.Addr) (meta.User, error) {
	u, ok := s.meta.User(user)
	if !ok {
		return meta.User{}, fmt.Errorf("user '%s' does not exist", user)
	}
	if slices.Contains(s.cfg.LoopbackUsers, user) && !isLoopback(from) {
		return meta.User{}, ErrLoopbackOnly
	}
	return u, nil
}

// mechanisms are the SASL mechanisms this node offers.
func (s *Server) mechanisms() []string {
	if len(s.cfg.AuthMechanisms) == 0 {
		return []string{"PLAIN", "AMQPLAIN"}
	}
	return s.cfg.AuthMechanisms
}

// ServeConn serves one AMQP connection that did not come from a listener,
// such as the in-process connections the management API makes. The server
// owns it from then on: Close closes it. Its peer address decides
// loopback_users, as for any connection.
func (s *Server) ServeConn(nc net.Conn) error {
	if !s.startConn(nc, true) {
		return errors.New("broker: server closed")
	}
	return nil
}

// MessageCounts count what happened to messages on channels, with
// RabbitMQ's message_stats names in the field docs.
type MessageCounts struct {
	Publish          uint64 // publish: messages published
	Confirm          uint64 // confirm: publishes confirmed
	Deliver          uint64 // deliver: deliveries needing an ack
	DeliverNoAck     uint64 // deliver_no_ack
	Get              uint64 // get: basic.get needing an ack
	GetNoAck         uint64 // get_no_ack
	Ack              uint64 // ack
	Redeliver        uint64 // redeliver: deliveries and gets flagged redelivered
	ReturnUnroutable uint64 // return_unroutable: mandatory and unroutable
	DropUnroutable   uint64 // drop_unroutable: unroutable and dropped
}

func (m *MessageCounts) add(o MessageCounts) {
	m.Publish += o.Publish
	m.Confirm += o.Confirm
	m.Deliver += o.Deliver
	m.DeliverNoAck += o.DeliverNoAck
	m.Get += o.Get
	m.GetNoAck += o.GetNoAck
	m.Ack += o.Ack
	m.Redeliver += o.Redeliver
	m.ReturnUnroutable += o.ReturnUnroutable
	m.DropUnroutable += o.DropUnroutable
}

// chanStats is what operators see of a channel. The counters are written
// by the channel's reader and by queues delivering to it.
type chanStats struct {
	confirm, tx         atomic.Bool
	prefetch, consumers atomic.Int32

	publish, confirmed, ack, returned, dropped, redeliver atomic.Uint64
	deliver, get                                          [2]atomic.Uint64 // [0] needing an ack, [1] no-ack
}

// count records one delivery or get (in kind).
func (st *chanStats) count(kind *[2]atomic.Uint64, noAck, redelivered bool) {
	if noAck {
		kind[1].Add(1)
	} else {
		kind[0].Add(1)
	}
	if redelivered {
		st.redeliver.Add(1)
	}
}

func (st *chanStats) counts() MessageCounts {
	return MessageCounts{
		Publish:          st.publish.Load(),
		Confirm:          st.confirmed.Load(),
		Deliver:          st.deliver[0].Load(),
		DeliverNoAck:     st.deliver[1].Load(),
		Get:              st.get[0].Load(),
		GetNoAck:         st.get[1].Load(),
		Ack:              st.ack.Load(),
		Redeliver:        st.redeliver.Load(),
		ReturnUnroutable: st.returned.Load(),
		DropUnroutable:   st.dropped.Load(),
	}
}

// retire keeps a closed channel's counts in its vhost's totals.
func (s *Server) retire(vhost string, st *chanStats) {
	if vhost == "" {
		return
	}
	c := st.counts()
	s.mu.Lock()
	if s.retired == nil {
		s.retired = map[string]*MessageCounts{}
	}
	t := s.retired[vhost]
	if t == nil {
		t = &MessageCounts{}
		s.retired[vhost] = t
	}
	t.add(c)
	s.mu.Unlock()
}

// MessageTotals returns the message counts of a vhost since the node
// started, closed channels included; vhost "" sums every vhost.
func (s *Server) MessageTotals(vhost string) MessageCounts {
	var total MessageCounts
	s.mu.Lock()
	for v, t := range s.retired {
		if vhost == "" || v == vhost {
			total.add(*t)
		}
	}
	conns := s.connList()
	s.mu.Unlock()
	for _, c := range conns {
		if !c.ready() || (vhost != "" && c.vhostName != vhost) {
			continue
		}
		for _, ch := range c.channelList() {
			total.add(ch.stats.counts())
		}
	}
	return total
}

// connList copies the connection set; s.mu held.
func (s *Server) connList() []*conn {
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// homeLinkList is connList for the links of other nodes to this node's
// queues; s.mu held.
func (s *Server) homeLinkList() []*homeLink {
	out := make([]*homeLink, 0, len(s.homeLinks))
	for l := range s.homeLinks {
		out = append(out, l)
	}
	return out
}

// ready reports whether the handshake fields may be read.
func (c *conn) ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.infoReady && c.channels != nil
}

func (c *conn) channelList() []*channel {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*channel, 0, len(c.channels))
	for _, ch := range c.channels {
		out = append(out, ch)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// removeChannel forgets a closed channel, keeping its counts. Reader
// goroutine only.
func (c *conn) removeChannel(ch *channel) {
	c.s.retire(c.vhostName, &ch.stats)
	c.mu.Lock()
	delete(c.channels, ch.id)
	c.mu.Unlock()
}

// ConnectionInfo describes an open client connection for operators.
type ConnectionInfo struct {
	ID               string // unique on its node while it runs
	Node             string // the node the client is connected to
	Name             string // "peer -> local", as RabbitMQ names connections
	Direct           bool   // made in process (management API), not over the network
	User, VHost      string
	Peer, Local      net.Addr
	AuthMechanism    string
	ClientProperties amqp.Table
	ConnectedAt      time.Time
	Channels         int
	FrameMax         uint32
	ChannelMax       uint16
	Heartbeat        time.Duration
	Blocked          bool // publishing stopped by a resource alarm
	RecvOct, RecvCnt uint64
	SendOct, SendCnt uint64
	TLS              *TLSInfo `json:",omitempty"` // nil for a plain connection
}

// TLSInfo describes the TLS session of a connection, as RabbitMQ's ssl_*
// and peer_cert_* fields do.
type TLSInfo struct {
	Protocol  string // "tlsv1.3"
	Cipher    string // the IANA name of the cipher suite
	PeerCert  bool   // the client presented a certificate
	Subject   string // the client certificate's subject, issuer and validity
	Issuer    string
	NotBefore time.Time
	NotAfter  time.Time
}

// Validity is the client certificate's validity as RabbitMQ's
// peer_cert_validity shows it: "from - until", in UTC.
func (t *TLSInfo) Validity() string {
	return t.NotBefore.UTC().Format(time.RFC3339) + " - " + t.NotAfter.UTC().Format(time.RFC3339)
}

// tlsInfo returns the TLS session of nc, or nil if it has none.
func tlsInfo(nc net.Conn) *TLSInfo {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return nil
	}
	st := tc.ConnectionState()
	ti := &TLSInfo{Protocol: tlsVersionName(st.Version), Cipher: tls.CipherSuiteName(st.CipherSuite)}
	if len(st.PeerCertificates) > 0 {
		c := st.PeerCertificates[0]
		ti.PeerCert, ti.Subject, ti.Issuer, ti.NotBefore, ti.NotAfter = true, c.Subject.String(), c.Issuer.String(), c.NotBefore, c.NotAfter
	}
	return ti
}

// tlsVersionName names a TLS version as RabbitMQ does.
func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "tlsv1.3"
	case tls.VersionTLS12:
		return "tlsv1.2"
	case tls.VersionTLS11:
		return "tlsv1.1"
	case tls.VersionTLS10:
		return "tlsv1"
	}
	return fmt.Sprintf("0x%04x", v)
}

// Connections lists the open connections that finished their handshake,
// by name.
func (s *Server) Connections() []ConnectionInfo {
	s.mu.Lock()
	conns := s.connList()
	s.mu.Unlock()
	out := make([]ConnectionInfo, 0, len(conns))
	for _, c := range conns {
		if !c.ready() {
			continue
		}
		out = append(out, c.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (c *conn) info() ConnectionInfo {
	c.mu.Lock()
	nch := len(c.channels)
	c.mu.Unlock()
	return ConnectionInfo{
		ID: c.id, Node: c.s.cfg.NodeName, Name: c.connName, Direct: c.direct, User: c.user, VHost: c.vhostName,
		Peer: c.nc.RemoteAddr(), Local: c.nc.LocalAddr(),
		AuthMechanism: c.authMech, ClientProperties: c.clientProps, ConnectedAt: c.connectedAt,
		Channels: nch, FrameMax: c.frameMax, ChannelMax: c.channelMax, Heartbeat: c.heartbeat,
		Blocked: c.blocked.Load(),
		RecvOct: c.recvOct.Load(), RecvCnt: c.recvCnt.Load(),
		SendOct: c.out.sendOct.Load(), SendCnt: c.out.sendCnt.Load(),
		TLS: tlsInfo(c.nc),
	}
}

// CloseConnection closes the connection with this name or ID with 320
// CONNECTION_FORCED and reason as the reply text. It reports whether the
// connection was found.
func (s *Server) CloseConnection(name, reason string) bool {
	s.mu.Lock()
	conns := s.connList()
	s.mu.Unlock()
	for _, c := range conns {
		if c.ready() && (c.connName == name || c.id == name) {
			c.log.Info("closing connection on request", "reason", reason)
			c.shutdown(connErr(codeConnectionForced, "%s", reason))
			return true
		}
	}
	return false
}

// ChannelInfo describes an open channel for operators.
type ChannelInfo struct {
	Node           string // the node of its connection
	Connection     string // the connection's name
	Number         uint16
	User, VHost    string
	Peer           net.Addr
	Confirm        bool
	Transactional  bool
	Prefetch       int // per consumer (basic.qos global=false)
	GlobalPrefetch int // per channel (basic.qos global=true)
	Consumers      int
	Unacked        int
	Unconfirmed    uint64
	Counts         MessageCounts
}

// Channels lists the open channels, by connection and number.
func (s *Server) Channels() []ChannelInfo {
	var out []ChannelInfo
	s.mu.Lock()
	conns := s.connList()
	s.mu.Unlock()
	for _, c := range conns {
		if !c.ready() {
			continue
		}
		for _, ch := range c.channelList() {
			out = append(out, ch.info())
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Connection != out[j].Connection {
			return out[i].Connection < out[j].Connection
		}
		return out[i].Number < out[j].Number
	})
	return out
}

func (ch *channel) info() ChannelInfo {
	c := ch.c
	ci := ChannelInfo{
		Node: c.s.cfg.NodeName, Connection: c.connName, Number: ch.id, User: c.user, VHost: c.vhostName, Peer: c.nc.RemoteAddr(),
		Confirm: ch.stats.confirm.Load(), Transactional: ch.stats.tx.Load(),
		Prefetch: int(ch.stats.prefetch.Load()), Consumers: int(ch.stats.consumers.Load()),
		Counts: ch.stats.counts(),
	}
	ch.mu.Lock()
	ci.GlobalPrefetch = ch.prefetchGlobal
	for i := range ch.unacked {
		if !ch.unacked[i].done {
			ci.Unacked++
		}
	}
	ch.mu.Unlock()
	ch.cf.mu.Lock()
	if ch.cf.published > ch.cf.answered {
		ci.Unconfirmed = ch.cf.published - ch.cf.answered
	}
	ch.cf.mu.Unlock()
	return ci
}

// ChannelName is how RabbitMQ names a channel: its connection's name and
// its number.
func ChannelName(conn string, number uint16) string {
	return fmt.Sprintf("%s (%d)", conn, number)
}

// ConsumerInfo describes a consumer for operators.
type ConsumerInfo struct {
	Tag   string
	VHost string
	Queue string
	// Node, ConnectionID, Connection and Channel name the client's
	// channel: on another node for a client that consumes over the
	// cluster.
	Node         string
	ConnectionID string
	Connection   string
	Channel      uint16
	User         string
	Peer         net.Addr
	AckRequired  bool
	Exclusive    bool
	Active       bool // false while waiting behind a single active consumer
	Prefetch     int
	Arguments    amqp.Table
}

// Consumers lists the consumers of this node's queues, or of one vhost's
// when vhost is not empty: those of clients on other nodes included.
func (s *Server) Consumers(vhost string) []ConsumerInfo {
	var out []ConsumerInfo
	for _, q := range s.localQueues(vhost) {
		out = append(out, q.consumerInfos()...)
	}
	return out
}

func (q *localQueue) consumerInfos() []ConsumerInfo {
	var out []ConsumerInfo
	for _, k := range q.Consumers() {
		switch cons := k.(type) {
		case *consumer:
			c := cons.ch.c
			out = append(out, ConsumerInfo{
				Tag: cons.tag, VHost: q.VHost, Queue: q.Name,
				Node: c.s.cfg.NodeName, ConnectionID: c.id, Connection: c.connName, Channel: cons.ch.id,
				User: c.user, Peer: c.nc.RemoteAddr(), AckRequired: !cons.noAck, Exclusive: cons.exclusive, Active: q.Active(k),
				Prefetch: cons.prefetch, Arguments: cons.args,
			})
		case *linkConsumer:
			cl := cons.client
			out = append(out, ConsumerInfo{
				Tag: cons.tag, VHost: q.VHost, Queue: q.Name,
				Node: cons.l.peer, ConnectionID: cl.connID, Connection: cl.connName, Channel: cl.channel,
				User: cl.user, Peer: parseAddr(cl.peer), AckRequired: !cons.noAck, Exclusive: cons.exclusive, Active: q.Active(k),
				Prefetch: cons.prefetch, Arguments: cons.args,
			})
		}
	}
	return out
}

// localQueues returns the runtime queues of a vhost, or of all when vhost
// is empty, sorted by vhost and name.
func (s *Server) localQueues(vhostName string) []*localQueue {
	s.mu.Lock()
	var vhs []*vhost
	for name, v := range s.vhosts {
		if vhostName == "" || name == vhostName {
			vhs = append(vhs, v)
		}
	}
	s.mu.Unlock()
	var out []*localQueue
	for _, v := range vhs {
		v.mu.RLock()
		for _, q := range v.queues {
			out = append(out, q)
		}
		v.mu.RUnlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].VHost != out[j].VHost {
			return out[i].VHost < out[j].VHost
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// QueueInfo is a queue's definition and state.
type QueueInfo struct {
	Def   meta.Queue
	Stats queue.Stats
	// ExclusiveOwner names the connection that owns an exclusive queue.
	ExclusiveOwner string
	// Policy and OperatorPolicy name the policies that apply, if any;
	// Effective is what they set, after the operator policy's caps.
	Policy, OperatorPolicy string
	Effective              map[string]any
	// Down is set for a queue whose node could not be asked: only its
	// definition is known.
	Down bool
}

func (q *localQueue) info() QueueInfo {
	a := q.applied.Load()
	qi := QueueInfo{Def: q.def, Stats: q.Stats(), Policy: a.policy, OperatorPolicy: a.operator, Effective: a.definition}
	if lg := q.repl.Load(); lg != nil {
		// The placement the queue's replication follows now.
		lg.mu.Lock()
		pl := lg.pl
		lg.mu.Unlock()
		qi.Def.Mirroring = &meta.Mirroring{Mirrors: pl.Mirrors, InSync: pl.InSync, Epoch: pl.Epoch, Version: pl.Version}
	}
	return qi
}

// Queues returns the state of every queue, or of one vhost's queues when
// vhost is not empty, sorted by vhost and name.
func (s *Server) Queues(vhost string) []QueueInfo {
	qs := s.localQueues(vhost)
	owners := map[string]string{}
	s.mu.Lock()
	for c := range s.conns {
		owners[c.id] = c.connName
	}
	s.mu.Unlock()
	out := make([]QueueInfo, 0, len(qs))
	for _, q := range qs {
		qi := q.info()
		qi.ExclusiveOwner = owners[q.def.Owner]
		out = append(out, qi)
	}
	return out
}

// ClusterQueues returns the state of every queue of the cluster, or of
// one vhost's, sorted by vhost and name: this node's, and each other
// node's as that node reports it (Down, with the definition only, when it
// cannot be asked).
func (s *Server) ClusterQueues(vhost string) []QueueInfo {
	out := s.Queues(vhost)
	byNode := map[string][]meta.Queue{}
	for _, q := range s.meta.Snapshot().Queues {
		if (vhost == "" || q.VHost == vhost) && !s.homedHere(q) {
			byNode[q.Node] = append(byNode[q.Node], q)
		}
	}
	for node, defs := range byNode {
		infos, err := s.remoteQueues(node, vhost, "")
		if err != nil {
			for _, d := range defs {
				out = append(out, QueueInfo{Def: d, Down: true})
			}
			continue
		}
		out = append(out, infos...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Def.VHost != out[j].Def.VHost {
			return out[i].Def.VHost < out[j].Def.VHost
		}
		return out[i].Def.Name < out[j].Def.Name
	})
	s.withPlacements(out)
	return out
}

// withPlacements sets each queue's mirrors as the definitions last
// committed them: a queue's own copy of its definition keeps the
// placement it was made with.
func (s *Server) withPlacements(qs []QueueInfo) {
	for i := range qs {
		if q, ok := s.meta.Queue(qs[i].Def.VHost, qs[i].Def.Name); ok {
			qs[i].Def.Mirroring = q.Mirroring
		}
	}
}

// remoteQueues asks node for the state of its queues in vhost (every
// vhost if empty), or of one queue.
func (s *Server) remoteQueues(node, vhost, name string) ([]QueueInfo, error) {
	link, err := s.peerLink(node)
	if err != nil {
		return nil, err
	}
	r, err := link.call(opList, func(w *frameWriter) {
		w.str(vhost)
		w.str(name)
	})
	if err != nil {
		return nil, err
	}
	if err := r.error(); err != nil {
		return nil, err
	}
	var infos []QueueInfo
	if err := json.Unmarshal(r.r.bytes(), &infos); err != nil {
		return nil, fmt.Errorf("queues of node %s: %w", node, err)
	}
	return infos, r.r.err
}

// Queue returns one queue's state and consumers; for a queue of another
// node, as that node reports them.
func (s *Server) Queue(vhost, name string) (QueueInfo, []ConsumerInfo, bool) {
	qi, consumers, ok := s.queueInfo(vhost, name)
	if ok {
		one := []QueueInfo{qi}
		s.withPlacements(one)
		qi = one[0]
	}
	return qi, consumers, ok
}

func (s *Server) queueInfo(vhost, name string) (QueueInfo, []ConsumerInfo, bool) {
	v := s.vhost(vhost)
	if v == nil {
		return QueueInfo{}, nil, false
	}
	v.mu.RLock()
	q := v.queues[name]
	rq := v.remote[name]
	v.mu.RUnlock()
	if q == nil && rq != nil {
		infos, err := s.remoteQueues(rq.def.Node, vhost, name)
		if err != nil || len(infos) != 1 {
			return QueueInfo{Def: rq.def, Down: true}, nil, true
		}
		var consumers []ConsumerInfo
		if js, err := s.askNode(rq.def.Node, adminConsumers, vhost); err == nil {
			var all []ConsumerInfo
			if json.Unmarshal(js, &all) == nil {
				for _, c := range all {
					if c.Queue == name {
						consumers = append(consumers, c)
					}
				}
			}
		}
		return infos[0], consumers, true
	}
	if q == nil {
		return QueueInfo{}, nil, false
	}
	qi := q.info()
	if q.def.Owner != "" {
		s.mu.Lock()
		for c := range s.conns {
			if c.id == q.def.Owner {
				qi.ExclusiveOwner = c.connName
			}
		}
		s.mu.Unlock()
	}
	return qi, q.consumerInfos(), true
}

// NodeName is the node's name.
func (s *Server) NodeName() string { return s.cfg.NodeName }

// Started is when the node started.
func (s *Server) Started() time.Time { return s.started }

// Errors of the operator's queue commands.
var (
	ErrNoQueue       = errors.New("broker: no such queue")
	ErrQueueInUse    = errors.New("broker: queue in use")
	ErrQueueNotEmpty = errors.New("broker: queue not empty")
)

// findQueue finds a queue of this node.
func (s *Server) findQueue(vhost, name string) *localQueue {
	v := s.vhost(vhost)
	if v == nil {
		return nil
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.queues[name]
}

// PurgeQueue drops a queue's ready messages and returns how many, for
// operators (no permission checks: the caller is trusted).
func (s *Server) PurgeQueue(vhost, name string) (int, error) {
	q := s.findQueue(vhost, name)
	if q == nil {
		return 0, ErrNoQueue
	}
	dropped, n := q.Purge()
	s.releaseAll(q.key, dropped)
	return n, nil
}

// DeleteQueue deletes a queue for an operator, refusing as queue.delete
// does when ifUnused or ifEmpty says so. It returns the ready messages
// the queue had.
func (s *Server) DeleteQueue(ctx context.Context, vhost, name string, ifUnused, ifEmpty bool) (int, error) {
	q := s.findQueue(vhost, name)
	if q == nil {
		return 0, ErrNoQueue
	}
	if ifUnused && q.ConsumerCount() > 0 {
		return 0, ErrQueueInUse
	}
	n := q.Len()
	if ifEmpty && n > 0 {
		return 0, ErrQueueNotEmpty
	}
	if _, err := s.meta.DeleteQueue(ctx, vhost, name); err != nil {
		return 0, fmt.Errorf("delete queue: %w", err)
	}
	return n, nil
}

// Config returns the configuration the server runs with.
func (s *Server) Config() Config { return s.cfg }

// QueueRef names a queue.
type QueueRef struct {
	VHost, Name string
}

// QueueRefs lists the queues of the cluster in a vhost, or in all when
// vhost is empty, sorted by vhost and name, without reading their state.
func (s *Server) QueueRefs(vhost string) []QueueRef {
	var out []QueueRef
	for _, q := range s.meta.Snapshot().Queues {
		if vhost == "" || q.VHost == vhost {
			out = append(out, QueueRef{q.VHost, q.Name})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].VHost != out[j].VHost {
			return out[i].VHost < out[j].VHost
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// QueueTotals sums the state of the cluster's queues that keep says to
// count, this node's and those the other nodes report: how many, their
// ready and unacked messages and their consumers. It allocates nothing
// per queue of this node.
func (s *Server) QueueTotals(keep func(vhost string) bool) (queues, ready, unacked, consumers int) {
	s.mu.Lock()
	vhs := make([]*vhost, 0, len(s.vhosts))
	for name, v := range s.vhosts {
		if keep(name) {
			vhs = append(vhs, v)
		}
	}
	s.mu.Unlock()
	for _, v := range vhs {
		v.mu.RLock()
		for _, q := range v.queues {
			r, u, c := q.Summary()
			queues++
			ready += r
			unacked += u
			consumers += c
		}
		v.mu.RUnlock()
	}
	// The other nodes' queues, as each reports them; a node that cannot
	// be asked adds its queues' count from the definitions.
	var defs []meta.Queue // read once, if a node cannot be asked
	for _, m := range s.meta.Members() {
		if m.ID == s.cfg.NodeName {
			continue
		}
		infos, err := s.remoteQueues(m.ID, "", "")
		if err != nil {
			if defs == nil {
				defs = s.meta.Snapshot().Queues
			}
			for _, q := range defs {
				if q.Node == m.ID && keep(q.VHost) {
					queues++
				}
			}
			continue
		}
		for _, qi := range infos {
			if keep(qi.Def.VHost) {
				queues++
				ready += qi.Stats.Ready
				unacked += qi.Stats.Unacked
				consumers += qi.Stats.Consumers
			}
		}
	}
	return
}

// countConns counts the open connections that keep says to; used only to
// enforce limits, when one is set.
func (s *Server) countConns(keep func(*conn) bool) int {
	s.mu.Lock()
	conns := s.connList()
	s.mu.Unlock()
	n := 0
	for _, c := range conns {
		if c.ready() && !c.direct && keep(c) {
			n++
		}
	}
	return n
}

// countChannels counts a user's open channels across its connections.
func (s *Server) countChannels(user string) int {
	s.mu.Lock()
	conns := s.connList()
	s.mu.Unlock()
	n := 0
	for _, c := range conns {
		if c.ready() && c.user == user {
			c.mu.Lock()
			n += len(c.channels)
			c.mu.Unlock()
		}
	}
	return n
}
