package broker

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/meta"
)

// conn is one AMQP connection. Its reader runs in serve, on the goroutine
// the server started; its writer is a second goroutine that serve starts
// and waits for.
type conn struct {
	s   *Server
	nc  net.Conn
	in  io.Reader // nc's input; see socketInput
	id  string
	log *slog.Logger
	fr  *amqp.FrameReader
	out *outbox

	// Set during the handshake, then immutable.
	user       string
	vhostName  string
	vh         *vhost
	frameMax   uint32
	channelMax uint16
	heartbeat  time.Duration
	clientCaps amqp.Table
	// Set before the handshake ends, then immutable; readable by others
	// once info.opened is set (under mu).
	clientProps amqp.Table
	authMech    string
	connectedAt time.Time
	direct      bool // served by ServeConn, not from a listener
	recvOct     atomic.Uint64
	recvCnt     atomic.Uint64
	blocked     atomic.Bool
	infoReady   bool // guarded by mu: the handshake fields may be read

	// channels is written by the reader goroutine under mu; the reader
	// reads it without mu, others with mu.
	channels map[uint16]*channel
	opened   bool // handshake done; reader goroutine only
	released bool // channels and exclusive queues let go; reader only
	// When the read deadline was last moved, and whether it was cleared;
	// reader goroutine only.
	deadlineSet time.Time
	noDeadline  bool

	mu      sync.Mutex // guards closing
	closing bool
	// polite is set once connection.close or close-ok has been sent: the
	// socket then waits for the peer to close first. Reader goroutine only.
	polite    bool
	pending   []*channel // channels with confirms to send; reader only
	batch     *flushSet  // outboxes written to during this batch; reader only
	published bool       // the connection has published; reader only
	exclusive []string   // names of the exclusive queues it declared; reader only
	connName  string
}

func newConn(s *Server, nc net.Conn) *conn {
	id := strconv.FormatUint(s.connSeq.Add(1), 10)
	c := &conn{
		s:           s,
		nc:          nc,
		id:          id,
		channels:    map[uint16]*channel{},
		frameMax:    amqp.FrameMinSize,
		connectedAt: time.Now(),
	}
	c.connName = fmt.Sprintf("%s -> %s", nc.RemoteAddr(), nc.LocalAddr())
	c.log = s.log.With("conn", c.connName)
	c.out = newOutbox(nc)
	c.in = socketInput(nc)
	return c
}

// deadlineReader sets a read deadline before each read, so a silent peer
// is noticed after two missed heartbeats.
type deadlineReader struct {
	c *conn
}

func (r deadlineReader) Read(p []byte) (int, error) {
	r.c.mu.Lock()
	closing := r.c.closing
	r.c.mu.Unlock()
	// During the handshake the deadline set at accept stands. After it, the
	// deadline moves forward at most every quarter heartbeat, not on every
	// read: resetting the timer costs more than a busy connection's reads.
	c := r.c
	if !closing && c.opened {
		if c.heartbeat > 0 {
			now := time.Now()
			if now.Sub(c.deadlineSet) > c.heartbeat/4 {
				c.nc.SetReadDeadline(now.Add(2 * c.heartbeat))
				c.deadlineSet = now
			}
		} else if !c.noDeadline {
			c.nc.SetReadDeadline(time.Time{})
			c.noDeadline = true
		}
	}
	n, err := c.in.Read(p)
	c.recvOct.Add(uint64(n))
	c.recvCnt.Add(1)
	return n, err
}

func (c *conn) serve() {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("connection handler panicked", "panic", r, "stack", string(debug.Stack()))
			c.sendClose(connErr(codeInternalError, "internal error"))
		}
		c.teardown()
	}()
	c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.HandshakeTimeout))
	// One reader from the first octet: a client may send its first channel
	// methods right behind connection.open, in the same segment.
	c.fr = amqp.NewFrameReader(deadlineReader{c})
	if err := c.handshake(); err != nil {
		var ae *amqpError
		if errors.As(err, &ae) {
			c.sendClose(ae)
			c.awaitCloseOk()
		} else if !isCommonNetError(err) {
			c.log.Info("handshake failed", "error", err)
		}
		return
	}
	c.opened = true
	c.batch = &flushSet{}
	c.fr.SetMaxSize(c.frameMax)
	c.out.startWriter(c.heartbeat)
	c.log.Debug("connection open", "user", c.user, "vhost", c.vhostName)
	err := c.readLoop()
	var ae *amqpError
	if errors.As(err, &ae) {
		c.sendClose(ae)
		c.awaitCloseOk()
	} else if err != nil && !isCommonNetError(err) && !errors.Is(err, errClosedByPeer) {
		c.log.Info("connection error", "error", err)
	}
}

var errClosedByPeer = errors.New("closed by peer")

func isCommonNetError(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne *net.OpError
	return errors.As(err, &ne)
}

// sendClose queues connection.close; the writer flushes it.
func (c *conn) sendClose(e *amqpError) {
	c.mu.Lock()
	already := c.closing
	c.closing = true
	c.polite = true
	c.mu.Unlock()
	if already {
		return
	}
	var class, method uint16
	if e.method != nil {
		class, method = e.method.ID()
	}
	c.log.Debug("closing connection", "code", e.code, "text", e.text)
	c.out.append(func(b []byte) []byte {
		return amqp.AppendMethodFrame(b, 0, &amqp.ConnectionClose{ReplyCode: e.code, ReplyText: e.text, ClassID: class, MethodID: method})
	})
	c.out.flushNow()
}

// awaitCloseOk reads until the peer's close-ok (or close), for at most a
// few seconds, discarding everything else as the spec asks.
func (c *conn) awaitCloseOk() {
	c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	fr := amqp.NewFrameReader(c.nc)
	fr.SetMaxSize(0)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		if f.Type == amqp.FrameMethod && f.Channel == 0 {
			if m, err := amqp.DecodeMethod(f.Payload); err == nil {
				switch m.(type) {
				case *amqp.ConnectionCloseOk, *amqp.ConnectionClose:
					return
				}
			}
		}
	}
}

// shutdown closes the connection from another goroutine: it sends
// connection.close and lets the reader finish within a few seconds.
func (c *conn) shutdown(e *amqpError) {
	c.sendClose(e)
	c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
}

func (c *conn) teardown() {
	c.release()
	c.out.stop()
	c.closeSocket()
}

// release closes every channel (requeueing what they had unacked) and
// deletes the connection's exclusive queues. It runs once, before
// close-ok when the client closes, so that a client that has read close-ok
// finds its exclusive queues gone.
func (c *conn) release() {
	if c.released {
		return
	}
	c.released = true
	for _, ch := range c.channels {
		ch.close()
		c.s.retire(c.vhostName, &ch.stats)
	}
	c.mu.Lock()
	c.channels = nil
	c.mu.Unlock()
	c.deleteExclusiveQueues()
}

func (c *conn) setPolite() {
	c.mu.Lock()
	c.polite = true
	c.mu.Unlock()
}

// closeSocket, after a protocol close, lets the peer close first, for up to
// a second: a client that has just read our close-ok closes its socket, and
// closing ours with unread input, or before the client has processed
// close-ok, can reset the connection and make the client report an error
// for a clean close.
func (c *conn) closeSocket() {
	c.mu.Lock()
	polite := c.polite
	c.mu.Unlock()
	if polite {
		c.nc.SetReadDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, io.LimitReader(c.nc, 1<<20))
	}
	c.nc.Close()
}

func (c *conn) deleteExclusiveQueues() {
	if c.vh == nil {
		return
	}
	// Only the queues this connection declared exclusive, and still owns,
	// not a scan of the vhost: closing a connection costs the same with
	// ten queues or a hundred thousand.
	c.vh.mu.RLock()
	var mine []string
	for _, name := range c.exclusive {
		if q := c.vh.queues[name]; q != nil && q.def.Exclusive && q.def.Owner == c.id {
			mine = append(mine, name)
		}
	}
	c.vh.mu.RUnlock()
	for _, name := range mine {
		if _, err := c.s.meta.DeleteQueue(c.s.ctx(), c.vhostName, name); err != nil {
			c.log.Warn("delete exclusive queue", "queue", name, "error", err)
		}
	}
}

// sendMethod queues a method frame, written at the end of the current
// batch of input. Reader goroutine only.
func (c *conn) sendMethod(ch uint16, m amqp.Method) {
	c.out.appendBatch(c.batch, func(b []byte) []byte { return amqp.AppendMethodFrame(b, ch, m) })
}

func (c *conn) readMethod() (amqp.Method, error) {
	f, err := c.fr.ReadFrame()
	if err != nil {
		return nil, err
	}
	if f.Type == amqp.FrameHeartbeat {
		return c.readMethod()
	}
	if f.Type != amqp.FrameMethod || f.Channel != 0 {
		return nil, connErr(codeCommandInvalid, "expected a connection method frame during the handshake")
	}
	m, err := amqp.DecodeMethod(f.Payload)
	if err != nil {
		return nil, connErr(codeSyntaxError, "%v", err)
	}
	return m, nil
}

func (c *conn) handshake() error {
	h, err := c.fr.ReadProtocolHeader()
	if err != nil {
		return err
	}
	if h != amqp.ProtocolHeader {
		c.nc.Write(amqp.ProtocolHeader[:])
		return fmt.Errorf("bad protocol header %q", h[:])
	}
	c.writeDirect(amqp.AppendMethodFrame(nil, 0, &amqp.ConnectionStart{
		VersionMajor:     0,
		VersionMinor:     9,
		ServerProperties: serverProperties(c.s),
		Mechanisms:       strings.Join(c.s.mechanisms(), " "),
		Locales:          "en_US",
	}))
	m, err := c.readMethod()
	if err != nil {
		return err
	}
	so, ok := m.(*amqp.ConnectionStartOk)
	if !ok {
		return connErr(codeCommandInvalid, "expected connection.start-ok, got %s", m.Name())
	}
	c.clientProps = so.ClientProperties
	c.authMech = so.Mechanism
	if caps, ok := so.ClientProperties["capabilities"].(amqp.Table); ok {
		c.clientCaps = caps
	}
	if name, ok := so.ClientProperties["connection_name"].(string); ok && name != "" {
		c.log = c.log.With("client_name", name)
	}
	if err := c.authenticate(so); err != nil {
		return err
	}
	heartbeat := uint16(0)
	if c.s.cfg.Heartbeat > 0 {
		heartbeat = uint16(c.s.cfg.Heartbeat / time.Second)
	}
	c.writeDirect(amqp.AppendMethodFrame(nil, 0, &amqp.ConnectionTune{ChannelMax: c.s.cfg.ChannelMax, FrameMax: c.s.cfg.FrameMax, Heartbeat: heartbeat}))
	if m, err = c.readMethod(); err != nil {
		return err
	}
	tune, ok := m.(*amqp.ConnectionTuneOk)
	if !ok {
		return connErr(codeCommandInvalid, "expected connection.tune-ok, got %s", m.Name())
	}
	if err := c.applyTune(tune); err != nil {
		return err
	}
	if m, err = c.readMethod(); err != nil {
		return err
	}
	open, ok := m.(*amqp.ConnectionOpen)
	if !ok {
		return connErr(codeCommandInvalid, "expected connection.open, got %s", m.Name())
	}
	if err := c.openVHost(open.VirtualHost); err != nil {
		return err
	}
	// Listed before the client hears it is open: a client may ask the
	// management API about its connection as soon as it is.
	c.mu.Lock()
	c.infoReady = true
	c.mu.Unlock()
	c.writeDirect(amqp.AppendMethodFrame(nil, 0, &amqp.ConnectionOpenOk{}))
	return nil
}

func (c *conn) writeDirect(b []byte) {
	c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.HandshakeTimeout))
	c.nc.Write(b)
}

func (c *conn) applyTune(t *amqp.ConnectionTuneOk) error {
	if t.FrameMax != 0 && t.FrameMax < amqp.FrameMinSize {
		return connErr(codeNotAllowed, "frame_max=%d < %d min size", t.FrameMax, amqp.FrameMinSize)
	}
	if t.FrameMax > c.s.cfg.FrameMax || t.FrameMax == 0 {
		if t.FrameMax != 0 {
			return connErr(codeNotAllowed, "frame_max=%d > %d max size", t.FrameMax, c.s.cfg.FrameMax)
		}
		c.frameMax = c.s.cfg.FrameMax
	} else {
		c.frameMax = t.FrameMax
	}
	if t.ChannelMax > c.s.cfg.ChannelMax {
		return connErr(codeNotAllowed, "channel_max=%d > %d max", t.ChannelMax, c.s.cfg.ChannelMax)
	}
	c.channelMax = t.ChannelMax
	if c.channelMax == 0 {
		c.channelMax = c.s.cfg.ChannelMax
	}
	c.heartbeat = time.Duration(t.Heartbeat) * time.Second
	return nil
}

func (c *conn) authenticate(so *amqp.ConnectionStartOk) error {
	if !slices.Contains(c.s.mechanisms(), so.Mechanism) {
		return connErr(codeAccessRefused, "unsupported authentication mechanism '%s'", so.Mechanism)
	}
	var user, pass string
	switch so.Mechanism {
	case "EXTERNAL":
		user, why := certUser(c.nc, c.s.cfg.CertLoginFrom)
		if why != "" {
			return c.refuseLogin(so.Mechanism, "", why)
		}
		if _, err := c.s.authenticateCert(user, c.nc.RemoteAddr()); err != nil {
			return c.refuseLogin(so.Mechanism, user, err.Error())
		}
		c.user = user
		return nil
	case "PLAIN":
		parts := bytes.SplitN([]byte(so.Response), []byte{0}, 3)
		if len(parts) != 3 {
			return c.refuseLogin(so.Mechanism, "", "malformed PLAIN response")
		}
		user, pass = string(parts[1]), string(parts[2])
	case "AMQPLAIN":
		// The response is a field table without its length prefix.
		raw := []byte(so.Response)
		t, err := amqp.DecodeTable(append(bigEndian32(uint32(len(raw))), raw...))
		if err != nil {
			return c.refuseLogin(so.Mechanism, "", "malformed AMQPLAIN response")
		}
		user, _ = t["LOGIN"].(string)
		pass, _ = t["PASSWORD"].(string)
	default:
		return connErr(codeAccessRefused, "unsupported authentication mechanism '%s'", so.Mechanism)
	}
	if _, err := c.s.Authenticate(user, pass, c.nc.RemoteAddr()); err != nil {
		return c.refuseLogin(so.Mechanism, user, err.Error())
	}
	c.user = user
	return nil
}

// certUser is the user a client's verified certificate names, or why
// there is none.
func certUser(nc net.Conn, from string) (user, why string) {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return "", "EXTERNAL needs a TLS connection with a client certificate"
	}
	st := tc.ConnectionState()
	if len(st.PeerCertificates) == 0 || len(st.VerifiedChains) == 0 {
		return "", "no peer certificate (the client presented none, or ssl_options.verify is not verify_peer)"
	}
	subject := st.PeerCertificates[0].Subject
	if from == "common_name" {
		if subject.CommonName == "" {
			return "", "the client certificate has no common name"
		}
		return subject.CommonName, ""
	}
	return subject.String(), ""
}

func bigEndian32(n uint32) []byte {
	return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

func (c *conn) refuseLogin(mech, user, why string) error {
	c.log.Warn("login refused", "user", user, "mechanism", mech, "reason", why)
	if b, _ := c.clientCaps["authentication_failure_close"].(bool); !b {
		// Without the capability the client only understands a closed
		// socket, as RabbitMQ does for such clients.
		return fmt.Errorf("login refused for user %q: %s", user, why)
	}
	return connErr(codeAccessRefused, "Login was refused using authentication mechanism %s. For details see the broker logfile.", mech)
}

func (c *conn) openVHost(name string) error {
	v := c.s.vhost(name)
	if v == nil {
		return connErr(codeNotAllowed, "vhost %s not found", name)
	}
	if _, ok := c.s.meta.Permission(c.user, name); !ok {
		return connErr(codeNotAllowed, "access to vhost '%s' refused for user '%s'", name, c.user)
	}
	if def, ok := c.s.meta.VHost(name); ok {
		if max, ok := meta.Limit(def.Limits, "max-connections"); ok && int64(c.s.countConns(func(o *conn) bool { return o.vhostName == name })) >= max {
			return connErr(codeNotAllowed, "access to vhost '%s' refused for user '%s': connection limit (%d) is reached", name, c.user, max)
		}
	}
	if u, ok := c.s.meta.User(c.user); ok {
		if max, ok := meta.Limit(u.Limits, "max-connections"); ok && int64(c.s.countConns(func(o *conn) bool { return o.user == c.user })) >= max {
			return connErr(codeNotAllowed, "connection refused for user '%s': user connection limit (%d) is reached", c.user, max)
		}
	}
	c.vhostName, c.vh = name, v
	return nil
}

func serverProperties(s *Server) amqp.Table {
	return amqp.Table{
		"product":      s.cfg.Product,
		"version":      Version,
		"platform":     "Go",
		"cluster_name": s.ClusterName(),
		"copyright":    "warren authors",
		"information":  "AMQP 0-9-1 broker compatible with RabbitMQ",
		"capabilities": amqp.Table{
			"publisher_confirms":           true,
			"exchange_exchange_bindings":   true,
			"basic.nack":                   true,
			"consumer_cancel_notify":       true,
			"connection.blocked":           true,
			"consumer_priorities":          true,
			"authentication_failure_close": true,
			"per_consumer_qos":             true,
			"direct_reply_to":              true,
		},
	}
}

// Version is the broker's version, reported to clients.
const Version = "0.1.0"

// readLoop reads frames until the connection closes. It acts once per
// batch of frames that arrived together: confirms go out when the reader
// has nothing more buffered.
func (c *conn) readLoop() error {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			if errors.Is(err, amqp.ErrFrameTooLarge) || errors.Is(err, amqp.ErrMalformed) {
				return connErr(codeFrameError, "%v", err)
			}
			return err
		}
		c.mu.Lock()
		closing := c.closing
		c.mu.Unlock()
		if closing {
			if f.Type == amqp.FrameMethod && f.Channel == 0 {
				if m, err := amqp.DecodeMethod(f.Payload); err == nil {
					switch m.(type) {
					case *amqp.ConnectionCloseOk:
						return errClosedByPeer
					case *amqp.ConnectionClose:
						c.sendMethod(0, &amqp.ConnectionCloseOk{})
						c.out.flushNow()
						c.setPolite()
						return errClosedByPeer
					}
				}
			}
			continue
		}
		if err := c.handleFrame(f); err != nil {
			return err
		}
		if c.fr.Buffered() == 0 {
			c.flushConfirms()
			c.batch.flush()
			if c.published {
				if err := c.waitWhileBlocked(); err != nil {
					return err
				}
			}
		}
	}
}

func (c *conn) handleFrame(f amqp.Frame) error {
	switch f.Type {
	case amqp.FrameHeartbeat:
		if f.Channel != 0 {
			return connErr(codeUnexpectedFrame, "heartbeat frame on channel %d", f.Channel)
		}
		return nil
	case amqp.FrameMethod:
		m, err := c.decodeMethod(f)
		if err != nil {
			var um *amqp.UnknownMethodError
			if errors.As(err, &um) {
				return connErr(codeNotImplemented, "unknown method %d.%d", um.Class, um.Method)
			}
			return connErr(codeFrameError, "cannot decode method: %v", err)
		}
		if f.Channel == 0 {
			return c.handleConnMethod(m)
		}
		return c.handleChannelMethod(f.Channel, m)
	case amqp.FrameHeader, amqp.FrameBody:
		ch := c.channels[f.Channel]
		if ch == nil || f.Channel == 0 {
			return connErr(codeChannelError, "expected 'channel.open'")
		}
		if ch.closing {
			return nil
		}
		var m amqp.Method
		if ch.publishing != nil {
			m = ch.publishing.method
		}
		return c.channelResult(ch, m, ch.handleContent(f))
	default:
		return connErr(codeFrameError, "unknown frame type %d", f.Type)
	}
}

// decodeMethod decodes a method frame: into the channel's own values for
// the methods channel.decodeReused covers, when the channel is open and
// not assembling a publish, else into a new value.
func (c *conn) decodeMethod(f amqp.Frame) (amqp.Method, error) {
	if ch := c.channels[f.Channel]; ch != nil && f.Channel != 0 && ch.publishing == nil {
		if m, err := ch.decodeReused(f.Payload); m != nil {
			return m, err
		}
	}
	return amqp.DecodeMethod(f.Payload)
}

func (c *conn) handleConnMethod(m amqp.Method) error {
	switch m := m.(type) {
	case *amqp.ConnectionClose:
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		c.release()
		c.sendMethod(0, &amqp.ConnectionCloseOk{})
		c.out.flushNow()
		c.setPolite()
		return errClosedByPeer
	case *amqp.ConnectionCloseOk:
		return errClosedByPeer
	case *amqp.ConnectionUpdateSecret:
		c.sendMethod(0, &amqp.ConnectionUpdateSecretOk{})
		return nil
	case *amqp.ConnectionBlocked, *amqp.ConnectionUnblocked:
		return nil
	default:
		e := connErr(codeChannelError, "unexpected method %s on channel 0", m.Name())
		e.method = m
		return e
	}
}

func (c *conn) handleChannelMethod(id uint16, m amqp.Method) error {
	ch := c.channels[id]
	if _, ok := m.(*amqp.ChannelOpen); ok {
		if ch != nil {
			e := connErr(codeChannelError, "second 'channel.open' seen")
			e.method = m
			return e
		}
		if id > c.channelMax {
			e := connErr(codeNotAllowed, "channel number %d is above the negotiated channel_max %d", id, c.channelMax)
			e.method = m
			return e
		}
		if u, ok := c.s.meta.User(c.user); ok {
			if max, ok := meta.Limit(u.Limits, "max-channels"); ok && int64(c.s.countChannels(c.user)) >= max {
				e := connErr(codeNotAllowed, "number of channels opened for user '%s' has reached the maximum allowed user limit of (%d)", c.user, max)
				e.method = m
				return e
			}
		}
		ch := newChannel(c, id)
		c.mu.Lock()
		c.channels[id] = ch
		c.mu.Unlock()
		c.sendMethod(id, &amqp.ChannelOpenOk{})
		return nil
	}
	if ch == nil {
		e := connErr(codeChannelError, "expected 'channel.open'")
		e.method = m
		return e
	}
	if ch.closing {
		// After sending channel.close, only close-ok and close count.
		switch m.(type) {
		case *amqp.ChannelCloseOk:
			ch.close()
			c.removeChannel(ch)
		case *amqp.ChannelClose:
			c.sendMethod(id, &amqp.ChannelCloseOk{})
		}
		return nil
	}
	return c.channelResult(ch, m, ch.handleMethod(m))
}

// channelResult turns what a channel method returned into the protocol's
// answer: nil goes on, a channel error closes the channel, anything else
// closes the connection.
func (c *conn) channelResult(ch *channel, m amqp.Method, err error) error {
	if err == nil {
		return nil
	}
	var ae *amqpError
	if !errors.As(err, &ae) {
		c.log.Error("channel method failed", "channel", ch.id, "error", err)
		ae = connErr(codeInternalError, "%v", err)
	}
	if ae.method == nil && m != nil {
		ae.method = m
	}
	if ae.hard {
		return ae
	}
	ch.fail(ae)
	return nil
}

// waitWhileBlocked stops reading a publishing connection while a resource
// alarm is on, telling clients that understand connection.blocked.
func (c *conn) waitWhileBlocked() error {
	cleared, reason := c.s.alarms.wait()
	if cleared == nil {
		return nil
	}
	notify, _ := c.clientCaps["connection.blocked"].(bool)
	if notify {
		c.sendMethod(0, &amqp.ConnectionBlocked{Reason: reason})
		c.batch.flush()
	}
	c.log.Info("connection blocked", "reason", reason)
	c.blocked.Store(true)
	defer c.blocked.Store(false)
	select {
	case <-cleared:
	case <-c.s.stop:
		return connErr(codeConnectionForced, "broker forced connection closure with reason 'shutdown'")
	}
	if notify {
		c.sendMethod(0, &amqp.ConnectionUnblocked{})
		c.batch.flush()
	}
	c.log.Info("connection unblocked")
	return nil
}

// flushConfirms sends the confirms that a batch of publishes earned.
func (c *conn) flushConfirms() {
	for _, ch := range c.pending {
		ch.flushConfirms()
	}
	c.pending = c.pending[:0]
}
