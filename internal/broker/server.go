// Package broker is the AMQP side of a node: connections, channels,
// exchanges and routing, consumers, confirms and transactions. Definitions
// are read from and written through the meta state machine; messages live
// in queue.Queue values.
//
// A queue lives on one node; clients on other nodes use it over a queue
// link (link*.go): the node a client is on forwards its publishes and
// requests, and the queue's node delivers to a link consumer standing in
// for the client's, under credit.
//
// Lock order: Server.mu, vhost.mu, queue (inside package queue),
// channel.mu or homeLink.mu, outbox.mu or linkConn.omu; peerLink.mu is
// never held while calling out. Meta observer callbacks take vhost.mu and
// never hold it while calling a Queue that could call back.
package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/auth"
	"github.com/warren-mq/warren/internal/meta"
	"github.com/warren-mq/warren/internal/queue"
	"github.com/warren-mq/warren/internal/store"
)

// Config configures a Server. Zero values mean the defaults in each
// field's doc.
type Config struct {
	// NodeName is the node's name, rabbit@host style. Default "warren@localhost".
	NodeName string
	// DataDir keeps the node's state across restarts. Empty keeps
	// everything in memory (tests).
	DataDir string
	// Logger receives the server's log. Default: discard.
	Logger *slog.Logger
	// FrameMax is the largest frame offered in connection.tune. Default 131072.
	FrameMax uint32
	// ChannelMax is the most channels offered per connection. Default 2047.
	ChannelMax uint16
	// Heartbeat is the heartbeat interval offered. Default 60s; negative
	// offers none.
	Heartbeat time.Duration
	// HandshakeTimeout drops a client that has not opened its connection in
	// time. Default 10s.
	HandshakeTimeout time.Duration
	// DefaultUser and DefaultPass create the first user on a new node.
	// Default guest/guest.
	DefaultUser, DefaultPass string
	// DefaultVHost is created on a new node. Default "/".
	DefaultVHost string
	// LoopbackUsers may only connect from a loopback address. Default
	// ["guest"]; an empty non-nil slice lets every user connect from
	// anywhere.
	LoopbackUsers []string
	// AuthMechanisms are the SASL mechanisms offered to clients, in order:
	// PLAIN, AMQPLAIN, EXTERNAL. Default PLAIN and AMQPLAIN.
	AuthMechanisms []string
	// CertLoginFrom is where EXTERNAL takes the user name from in a
	// client's certificate: "distinguished_name" (the default; the
	// subject in RFC 2253 form, "CN=guest,O=example") or "common_name".
	CertLoginFrom string
	// MaxMessageSize refuses larger bodies with 406. Default 128 MiB.
	MaxMessageSize uint64
	// Product is the "product" server property. Default "warren".
	Product string
	// MemoryHighWatermark is the fraction of the machine's memory above
	// which publishers are blocked. Default 0.4, as RabbitMQ's.
	MemoryHighWatermark float64
	// MemoryHighWatermarkAbsolute, if set, is the limit in octets instead.
	MemoryHighWatermarkAbsolute uint64
	// RuntimeMemoryLimit also makes the watermark the Go runtime's soft
	// memory limit (unless GOMEMLIMIT is set), so that the collector works
	// harder before memory use reaches it. For a process that is one node;
	// the limit is process-wide.
	RuntimeMemoryLimit bool
	// MemoryPagingRatio is the fraction of the watermark that ready
	// messages may take in memory; past it, queues keep only their head
	// in memory and the rest in the data directory, as RabbitMQ's
	// vm_memory_high_watermark_paging_ratio. Default 0.5.
	MemoryPagingRatio float64
	// SegmentSize is the size past which the message store starts a new
	// segment file; 0 for the store's default.
	SegmentSize int64
	// MemoryCheckInterval is how often memory use and free disk space are
	// sampled. Default 500ms.
	MemoryCheckInterval time.Duration
	// DiskFreeLimit blocks publishers while the data directory's file
	// system has less free space. Default 50 MB, as RabbitMQ's; no effect
	// without DataDir.
	DiskFreeLimit uint64
	// Network connects the node's definitions to the other members of
	// its cluster. Nil: the node is a cluster of one.
	Network *meta.Network
	// RAM makes the node a RAM node: its definitions are kept in memory
	// and fetched from the cluster on every start.
	RAM bool
	// DialPeer opens a queue link to another node of the cluster (the
	// cluster port's ServiceQueue), so that this node's clients can use
	// queues that live there. Nil: queues of other nodes are unreachable.
	DialPeer func(ctx context.Context, node string) (net.Conn, error)
	// NodeDownAfter is how long another node may leave Raft's heartbeats
	// unanswered before the cluster takes it for down and removes its
	// non-durable queues, as RabbitMQ does when net_ticktime runs out.
	// Default 5s.
	NodeDownAfter time.Duration
	// QueueMasterLocator chooses where new queues live unless their
	// x-queue-master-locator argument or policy says otherwise:
	// client-local (the default), min-masters or random.
	QueueMasterLocator string
}

func (c *Config) setDefaults() {
	if c.NodeName == "" {
		c.NodeName = "warren@localhost"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.FrameMax == 0 {
		c.FrameMax = 131072
	}
	if c.ChannelMax == 0 {
		c.ChannelMax = 2047
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 60 * time.Second
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.DefaultUser == "" {
		c.DefaultUser, c.DefaultPass = "guest", "guest"
	}
	if c.DefaultVHost == "" {
		c.DefaultVHost = "/"
	}
	if c.LoopbackUsers == nil {
		c.LoopbackUsers = []string{"guest"}
	}
	if c.MemoryPagingRatio == 0 {
		c.MemoryPagingRatio = 0.5
	}
	if c.MemoryHighWatermark == 0 {
		c.MemoryHighWatermark = 0.4
	}
	if c.DiskFreeLimit == 0 {
		c.DiskFreeLimit = 50_000_000
	}
	if c.MemoryCheckInterval == 0 {
		c.MemoryCheckInterval = 500 * time.Millisecond
	}
	if c.Product == "" {
		c.Product = "warren"
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = 128 << 20
	}
}

// Server is a broker node's AMQP service. It is safe for concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	meta    *meta.Node
	store   *store.Store // nil when the node keeps nothing on disk
	matcher *auth.Matcher

	mu        sync.Mutex // guards vhosts, conns, listeners, closing, replies, retired
	vhosts    map[string]*vhost
	retired   map[string]*MessageCounts // closed channels' counts by vhost
	replies   map[string]*replyConsumer // direct reply-to keys
	conns     map[*conn]struct{}
	homeLinks map[*homeLink]struct{} // other nodes' links to this node's queues
	copiesMu  sync.Mutex             // guards copies
	copies    map[string]*mirrorCopy // queue key → this node's copy of a queue led elsewhere
	listeners []net.Listener
	// suspended are listeners Drain closed; draining is maintenance mode.
	suspended map[net.Listener]bool
	draining  bool
	closing   bool

	alarms      *alarms
	memory      queue.Memory // ready messages held in memory, against the paging limit
	tailDir     string       // queues' scratch tail files; "" without a data directory
	deadLetters *deadLetterer
	stop        chan struct{}  // closed by Close: background loops end
	placeNow    chan struct{}  // capacity 1: the placer should look now
	connsGone   chan struct{}  // closed by Close once every connection has ended
	bg          sync.WaitGroup // background work: memory watch, dead letters, queue expiry; added to under mu while not closing
	wg          sync.WaitGroup // accept loops, connections and served queue links
	linkWG      sync.WaitGroup // the goroutines of links dialled to other nodes
	peers       sync.Map       // node name → *peerSlot: links to other nodes' queues
	lagging     sync.Map       // node name → struct{}: not waited for by spread
	metaSet     atomic.Bool    // meta is set: links may use it
	// clock0 and leaseUntil are the confirm lease (lease.go): it runs
	// out leaseUntil nanoseconds after clock0, on the monotonic clock.
	clock0     time.Time
	leaseUntil atomic.Int64
	connSeq    atomic.Uint64
	permGen    atomic.Uint64 // bumped on every user or permission change
	started    time.Time
}

// New starts the definitions state machine and creates the default vhost
// and user on a new node. Serve then accepts AMQP connections.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg.setDefaults()
	s := &Server{
		cfg:         cfg,
		log:         cfg.Logger,
		matcher:     auth.NewMatcher(),
		vhosts:      map[string]*vhost{},
		conns:       map[*conn]struct{}{},
		homeLinks:   map[*homeLink]struct{}{},
		clock0:      time.Now(),
		suspended:   map[net.Listener]bool{},
		copies:      map[string]*mirrorCopy{},
		replies:     map[string]*replyConsumer{},
		started:     time.Now(),
		alarms:      newAlarms(),
		deadLetters: newDeadLetterer(),
		stop:        make(chan struct{}),
		placeNow:    make(chan struct{}, 1),
		connsGone:   make(chan struct{}),
	}
	// The first check comes when the node starts watching.
	if err := s.setMemoryLimit(cfg.MemoryHighWatermark, cfg.MemoryHighWatermarkAbsolute); err != nil {
		return nil, fmt.Errorf("memory high watermark: %w", err)
	}
	s.setDiskLimit(cfg.DiskFreeLimit)
	metaDir := ""
	if cfg.DataDir != "" {
		metaDir = filepath.Join(cfg.DataDir, "meta")
		// Tail files index messages that are in the store anyway; what a
		// previous run left is stale.
		s.tailDir = filepath.Join(cfg.DataDir, "tails")
		if err := os.RemoveAll(s.tailDir); err != nil {
			return nil, fmt.Errorf("clear queue tail files: %w", err)
		}
		if err := os.MkdirAll(s.tailDir, 0o750); err != nil {
			return nil, fmt.Errorf("create queue tail directory: %w", err)
		}
	}
	m, err := meta.Open(ctx, meta.Config{NodeID: cfg.NodeName, Observer: s, Logger: cfg.Logger, Dir: metaDir, Network: cfg.Network, RAM: cfg.RAM, PeerDown: s.nodeDown, PeerDownAfter: cfg.NodeDownAfter,
		DeposedDownAfter: leaseFor + time.Second, Spread: s.spread})
	if err != nil {
		return nil, fmt.Errorf("open definitions: %w", err)
	}
	s.meta = m
	s.metaSet.Store(true)
	for _, v := range m.Snapshot().VHosts {
		s.applyPolicies(v.Name)
	}
	if m.Restored() {
		if err := s.dropTransient(ctx); err != nil {
			m.Close()
			return nil, err
		}
	}
	if err := s.bootstrap(ctx); err != nil {
		m.Close()
		return nil, err
	}
	if err := s.ensureClusterIdentity(ctx); err != nil {
		m.Close()
		return nil, err
	}
	if cfg.DataDir != "" {
		st, err := store.Open(store.Config{Dir: filepath.Join(cfg.DataDir, "msgs"), Logger: cfg.Logger, SegmentSize: cfg.SegmentSize})
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("open message store: %w", err)
		}
		s.store = st
		if err := s.recoverMessages(ctx); err != nil {
			st.Close()
			m.Close()
			return nil, err
		}
	}
	s.bg.Add(2)
	go func() {
		defer s.bg.Done()
		s.watchResources(s.stop)
	}()
	if cfg.Network != nil {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.runLease(s.stop)
		}()
	}
	if cfg.DialPeer != nil {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.watchClusterAlarms(s.stop, 2*cfg.MemoryCheckInterval)
		}()
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.runPlacer(s.stop)
		}()
	}
	go func() {
		defer s.bg.Done()
		s.runDeadLetters(s.connsGone)
	}()
	return s, nil
}

// bootstrap creates the default vhost and user when the node has none.
func (s *Server) bootstrap(ctx context.Context) error {
	if len(s.meta.Snapshot().VHosts) > 0 {
		return nil
	}
	if err := s.meta.PutVHost(ctx, meta.VHost{Name: s.cfg.DefaultVHost}); err != nil {
		return fmt.Errorf("create default vhost: %w", err)
	}
	hash, err := auth.HashPassword(auth.SHA256, s.cfg.DefaultPass)
	if err != nil {
		return err
	}
	if err := s.meta.PutUser(ctx, meta.User{Name: s.cfg.DefaultUser, PasswordHash: hash, HashingAlgorithm: auth.SHA256, Tags: []string{"administrator"}}); err != nil {
		return fmt.Errorf("create default user: %w", err)
	}
	if err := s.meta.SetPermission(ctx, meta.Permission{User: s.cfg.DefaultUser, VHost: s.cfg.DefaultVHost, Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		return fmt.Errorf("set default permissions: %w", err)
	}
	return nil
}

// ensureClusterIdentity gives the cluster a name (the first node's name,
// until an operator sets another) and a permanent id, as RabbitMQ keeps
// them in its cluster_name and internal_cluster_id global parameters.
func (s *Server) ensureClusterIdentity(ctx context.Context) error {
	if _, ok := s.meta.GlobalParameter("cluster_name"); !ok {
		v, _ := json.Marshal(s.cfg.NodeName)
		if err := s.meta.SetGlobalParameter(ctx, meta.GlobalParameter{Name: "cluster_name", Value: v}); err != nil {
			return fmt.Errorf("set cluster name: %w", err)
		}
	}
	if _, ok := s.meta.GlobalParameter("internal_cluster_id"); !ok {
		v, _ := json.Marshal(randomName("warren-cluster-id-"))
		if err := s.meta.SetGlobalParameter(ctx, meta.GlobalParameter{Name: "internal_cluster_id", Value: v}); err != nil {
			return fmt.Errorf("set cluster id: %w", err)
		}
	}
	return nil
}

// ClusterName is the cluster's name: the cluster_name global parameter.
func (s *Server) ClusterName() string {
	var name string
	if p, ok := s.meta.GlobalParameter("cluster_name"); ok && json.Unmarshal(p.Value, &name) == nil && name != "" {
		return name
	}
	return s.cfg.NodeName
}

// dropTransient deletes, after a restart, what did not outlive the node
// that declared it: its non-durable and exclusive queues (their
// connections are gone) and, when it is the only member, non-durable
// exchanges, as RabbitMQ does when a node starts.
func (s *Server) dropTransient(ctx context.Context) error {
	d := s.meta.Snapshot()
	dropped := 0
	for _, q := range d.Queues {
		if !s.homedHere(q) {
			continue
		}
		if !q.Durable || q.Exclusive {
			if _, err := s.meta.DeleteQueue(ctx, q.VHost, q.Name); err != nil {
				return fmt.Errorf("drop transient queue %q: %w", q.Name, err)
			}
			dropped++
		}
	}
	for _, x := range d.Exchanges {
		if !x.Durable && len(s.meta.Members()) == 1 {
			if _, err := s.meta.DeleteExchange(ctx, x.VHost, x.Name); err != nil {
				return fmt.Errorf("drop transient exchange %q: %w", x.Name, err)
			}
			dropped++
		}
	}
	s.log.Info("definitions restored", "queues", len(d.Queues), "exchanges", len(d.Exchanges), "bindings", len(d.Bindings), "transient_dropped", dropped)
	return nil
}

// nodeDown fails over, on the leader, the mirrored queues that a node
// that has stopped answering led, then removes the non-durable and
// exclusive queues left on it: their messages and owners died with it. Their consumers on other nodes have been cancelled as their
// links broke.
func (s *Server) nodeDown(m *meta.Node, node string) {
	s.failOver(m, node)
	s.log.Warn("node down: removing its non-durable queues", "node", node)
	for _, q := range m.Snapshot().Queues {
		if q.Node != node || (q.Durable && !q.Exclusive) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := m.DeleteQueue(ctx, q.VHost, q.Name)
		cancel()
		if err != nil && !errors.Is(err, meta.ErrNotFound) {
			s.log.Warn("cannot remove a queue of a node that is down", "node", node, "queue", q.Name, "vhost", q.VHost, "error", err)
			return
		}
	}
}

// homedHere reports whether a queue's messages live on this node.
func (s *Server) homedHere(q meta.Queue) bool {
	return q.Node == "" || q.Node == s.cfg.NodeName
}

// Meta returns the definitions node, for management and tools.
func (s *Server) Meta() *meta.Node { return s.meta }

// Serve accepts connections on l until Close. It returns nil after Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return errors.New("broker: server closed")
	}
	s.listeners = append(s.listeners, l)
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing || s.suspendedListener(l) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		if !s.startConn(nc, false) {
			return nil
		}
	}
}

// startConn serves a connection on a goroutine the server owns and waits
// for in Close. It reports false, closing nc, once the server is closing.
func (s *Server) startConn(nc net.Conn, direct bool) bool {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		nc.Close()
		return false
	}
	c := newConn(s, nc)
	c.direct = direct
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		c.serve()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	return true
}

// Close stops accepting, closes every connection with 320
// CONNECTION_FORCED, waits for their goroutines and stops the definitions
// state machine. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	// A node that stops hands its mirrored queues to in-sync mirrors
	// first, as RabbitMQ's masters do on a controlled shutdown, so that
	// the others need not wait to find it gone.
	if s.metaSet.Load() && len(s.meta.Members()) > 1 {
		ctx, cancel := context.WithTimeout(context.Background(), closeHandOffWait)
		s.handOffAll(ctx, "shutdown")
		cancel()
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	for _, l := range s.listeners {
		l.Close()
	}
	conns := s.connList()
	links := s.homeLinkList()
	s.mu.Unlock()
	for _, l := range links {
		l.end()
	}
	close(s.stop)
	for _, q := range s.localQueues("") {
		q.stopExpiry()
	}
	for _, c := range conns {
		c.shutdown(connErr(codeConnectionForced, "broker forced connection closure with reason 'shutdown'"))
	}
	s.wg.Wait()
	// No client can reject anything more: the dead-letter worker finishes
	// its backlog, and waits for its writes, while the store still runs.
	close(s.connsGone)
	s.bg.Wait()
	s.closePeerLinks()
	for _, q := range s.localQueues("") {
		q.CloseFiles()
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.log.Error("close message store", "error", err)
		}
	}
	return s.meta.Close()
}

func (s *Server) vhost(name string) *vhost {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vhosts[name]
}

// Changed implements meta.Observer: it keeps the routing indexes and local
// queues in step with the definitions.
func (s *Server) Changed(e meta.Event) {
	switch e.Kind {
	case meta.VHostAdded:
		s.mu.Lock()
		s.vhosts[e.VHost] = newVHost(e.VHost)
		s.mu.Unlock()
		return
	case meta.VHostDeleted:
		s.mu.Lock()
		delete(s.vhosts, e.VHost)
		s.mu.Unlock()
		return
	case meta.UserChanged, meta.UserDeleted, meta.PermissionChanged:
		s.permGen.Add(1)
		return
	case meta.PolicyChanged:
		s.applyPolicies(e.VHost)
		s.placeSoon()
		return
	case meta.StateReset:
		s.rebuild(e.Definitions)
		return
	}
	v := s.vhost(e.VHost)
	if v == nil {
		return
	}
	var deleted *localQueue // deleted, or led from another node now
	moved := false          // deleted is led from another node
	var placed *localQueue  // led here: its replication follows the placement
	v.mu.Lock()
	switch e.Kind {
	case meta.ExchangeAdded:
		x := newExchange(*e.Exchange)
		x.ae = exchangeAE(x.def, s.policies(e.VHost))
		v.exchanges[e.Exchange.Name] = x
	case meta.ExchangeDeleted:
		delete(v.exchanges, e.Name)
	case meta.QueueAdded:
		if s.homedHere(*e.Queue) {
			placed = s.newLocalQueue(*e.Queue, s.policies(e.VHost))
			v.queues[e.Queue.Name] = placed
		} else {
			v.remote[e.Queue.Name] = &remoteQueue{def: *e.Queue}
		}
		s.placeSoon()
	case meta.QueuePlaced:
		q := *e.Queue
		if s.homedHere(q) {
			placed = v.queues[q.Name]
			if placed == nil {
				// Promoted: the queue starts from this node's copy, if
				// it has one, before any client can reach it.
				placed = s.newLocalQueue(q, s.policies(e.VHost))
				n := s.promote(placed)
				s.log.Info("mirrored queue: this node leads it now", "queue", q.Name, "vhost", q.VHost, "epoch", placementEpoch(q), "messages", n)
				v.queues[q.Name] = placed
				delete(v.remote, q.Name)
			}
		} else {
			deleted, moved = v.queues[q.Name], true
			delete(v.queues, q.Name)
			v.remote[q.Name] = &remoteQueue{def: q}
			s.copyPlaced(q)
		}
	case meta.QueueDeleted:
		deleted = v.queues[e.Name]
		delete(v.queues, e.Name)
		delete(v.remote, e.Name)
		s.dropCopyAt(queueKey(e.VHost, e.Name))
	case meta.BindingAdded:
		if x := v.exchanges[e.Binding.Source]; x != nil {
			x.addBinding(e.Binding)
		}
	case meta.BindingRemoved:
		if x := v.exchanges[e.Binding.Source]; x != nil {
			x.removeBinding(e.Binding)
		}
	}
	v.mu.Unlock()
	if deleted != nil {
		s.queueGone(deleted, moved)
	}
	if placed != nil {
		s.replicate(placed, *e.Queue)
	}
}

// placementEpoch is the epoch of a queue's leader; 0 before it is
// mirrored.
func placementEpoch(q meta.Queue) uint64 {
	if q.Mirroring == nil {
		return 0
	}
	return q.Mirroring.Epoch
}

// queueGone ends a deleted queue: its messages are released and its
// consumers cancelled. When the queue may have moved to another node
// rather than gone, consumers of a mirrored queue follow it there
// instead.
func (s *Server) queueGone(q *localQueue, moved bool) {
	q.stopExpiry()
	if lg := q.repl.Swap(nil); lg != nil {
		q.SetJournal(nil)
		lg.close(errNotHere)
	}
	dropped, consumers := q.Delete()
	s.releaseAll(q.key, dropped)
	for _, c := range consumers {
		switch k := c.(type) {
		case *consumer:
			if !moved || !s.followFailover(k) {
				k.ch.queueDeleted(k)
			}
		case *linkConsumer:
			k.queueCancelled()
		}
	}
}

// newLocalQueue makes the runtime queue for a definition. Messages that
// leave it undelivered (length limit, expiry) give back their stored copy.
func (s *Server) newLocalQueue(def meta.Queue, pols []meta.Policy) *localQueue {
	lq := &localQueue{def: def, srv: s, key: queueKey(def.VHost, def.Name)}
	drop := func(e queue.Entry, why queue.DropReason) {
		if args := lq.args(); wantsDeadLetter(args) {
			// The dead-letter worker releases the stored copy once the
			// dead letter is safe.
			s.deadLetters.add(deadLetter{vhost: def.VHost, queue: def.Name, key: lq.key, loc: e.Loc, args: args, msg: e.Msg, reason: string(why)})
			return
		}
		s.releaseAt(lq.key, e.Loc)
	}
	lim := queue.NoLimits()
	if n, ok := amqp.Int(def.Arguments.Table["x-max-priority"]); ok && n > 0 {
		lim.MaxPriority = uint8(min(n, 255))
	}
	lq.Queue = queue.New(def.VHost, def.Name, lim, s.paging(def), drop)
	lq.applyPolicies(pols)
	return lq
}

// policies returns a vhost's policies; none while the definitions are
// being replayed at start (New applies them once replay is done).
func (s *Server) policies(vhost string) []meta.Policy {
	if !s.metaSet.Load() {
		return nil
	}
	return s.meta.Policies(vhost)
}

// applyPolicies brings a vhost's queues and exchanges in line with its
// policies after one changed. While the definitions are replayed at
// start it does nothing: New applies every vhost's policies once replay
// is done.
func (s *Server) applyPolicies(vhost string) {
	v := s.vhost(vhost)
	if v == nil || !s.metaSet.Load() {
		return
	}
	pols := s.meta.Policies(vhost)
	v.mu.Lock()
	for _, x := range v.exchanges {
		x.ae = exchangeAE(x.def, pols)
	}
	qs := make([]*localQueue, 0, len(v.queues))
	for _, q := range v.queues {
		qs = append(qs, q)
	}
	v.mu.Unlock()
	for _, q := range qs {
		q.applyPolicies(pols)
	}
}

// rebuild replaces every runtime view after a snapshot restore, which a
// member that fell behind receives while it runs: queues that still
// exist keep their messages and consumers, and those that are gone are
// deleted as if their deletion had been applied.
func (s *Server) rebuild(d *meta.Definitions) {
	s.mu.Lock()
	old := s.vhosts
	s.mu.Unlock()
	vhosts := map[string]*vhost{}
	for _, vd := range d.VHosts {
		vhosts[vd.Name] = newVHost(vd.Name)
	}
	pols := map[string][]meta.Policy{}
	for _, p := range d.Policies {
		pols[p.VHost] = append(pols[p.VHost], p)
	}
	for _, x := range d.Exchanges {
		if v := vhosts[x.VHost]; v != nil {
			nx := newExchange(x)
			nx.ae = exchangeAE(x, pols[x.VHost])
			v.exchanges[x.Name] = nx
		}
	}
	kept := map[*localQueue]bool{}
	for _, q := range d.Queues {
		v := vhosts[q.VHost]
		switch {
		case v == nil:
		case !s.homedHere(q):
			v.remote[q.Name] = &remoteQueue{def: q}
		default:
			if ov := old[q.VHost]; ov != nil {
				ov.mu.RLock()
				lq := ov.queues[q.Name]
				ov.mu.RUnlock()
				if lq != nil {
					v.queues[q.Name] = lq
					kept[lq] = true
					lq.applyPolicies(pols[q.VHost])
					continue
				}
			}
			lq := s.newLocalQueue(q, pols[q.VHost])
			s.promote(lq)
			v.queues[q.Name] = lq
		}
	}
	for i := range d.Bindings {
		b := &d.Bindings[i]
		if v := vhosts[b.VHost]; v != nil {
			if x := v.exchanges[b.Source]; x != nil {
				x.addBinding(b)
			}
		}
	}
	s.mu.Lock()
	s.vhosts = vhosts
	s.mu.Unlock()
	s.permGen.Add(1)
	for _, ov := range old {
		ov.mu.RLock()
		var gone []*localQueue
		for _, lq := range ov.queues {
			if !kept[lq] {
				gone = append(gone, lq)
			}
		}
		ov.mu.RUnlock()
		for _, lq := range gone {
			s.queueGone(lq, true)
		}
	}
	for _, q := range d.Queues {
		v := vhosts[q.VHost]
		if v == nil {
			continue
		}
		if lq := v.queues[q.Name]; lq != nil {
			s.replicate(lq, q)
			continue
		}
		s.copyPlaced(q)
	}
}
