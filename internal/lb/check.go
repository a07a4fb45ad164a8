package lb

import (
	"context"
	"fmt"
	"net"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/warren-mq/warren/internal/lb/config"
	"github.com/warren-mq/warren/internal/lb/health"
)

// checkResult is the outcome of one health check, with HAProxy's status
// code (L4OK, L4CON, L4TOUT, L7OK, L7RSP, L7TOUT) and description.
type checkResult struct {
	ok     bool
	status string
	code   string // HTTP status of an httpchk, else empty
	desc   string
	info   string
	dur    time.Duration
}

// amqpHeader is the AMQP 0-9-1 protocol header a client sends first.
const amqpHeader = "AMQP\x00\x00\x09\x01"

// startCheckers starts one health checker per server with "check".
// Caller holds lb.mu.
func (lb *LB) startCheckers(st *state) {
	for _, b := range st.backends {
		b.mu.Lock()
		for _, s := range b.servers {
			if !s.config().Check {
				continue
			}
			ctx, cancel := context.WithCancel(lb.ctx)
			done := make(chan struct{})
			s.checkStop = func() { cancel(); <-done }
			lb.wg.Add(1)
			go func(s *Server) {
				defer lb.wg.Done()
				defer close(done)
				lb.runChecker(ctx, b, s)
			}(s)
		}
		b.mu.Unlock()
	}
}

// stopCheckers stops the health checkers of st and waits for them.
func (lb *LB) stopCheckers(st *state) {
	for _, b := range st.backends {
		b.mu.Lock()
		var stops []context.CancelFunc
		for _, s := range b.servers {
			if s.checkStop != nil {
				stops = append(stops, s.checkStop)
				s.checkStop = nil
			}
		}
		b.mu.Unlock()
		for _, stop := range stops {
			stop()
		}
	}
}

// runChecker checks one server until ctx ends. The first check runs after
// a short spread so all servers are not probed at the same instant.
func (lb *LB) runChecker(ctx context.Context, b *Backend, s *Server) {
	sc := s.config()
	first := time.Duration(s.idx()+1) * sc.InterOrDefault() / time.Duration(len(b.servers)+1)
	if first > 500*time.Millisecond {
		first = 500 * time.Millisecond
	}
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		res := lb.safeCheck(ctx, b, s)
		if ctx.Err() != nil {
			return
		}
		b.mu.Lock()
		wait := lb.recordCheckLocked(b, s, res)
		b.mu.Unlock()
		timer.Reset(wait)
	}
}

// safeCheck runs one check; a panic in it counts as a failed check and is
// logged instead of taking the process down.
func (lb *LB) safeCheck(ctx context.Context, b *Backend, s *Server) (res checkResult) {
	defer func() {
		if r := recover(); r != nil {
			lb.log.Error("panic in health check", "backend", b.Name, "server", s.Name, "panic", r, "stack", string(debug.Stack()))
			res = checkResult{status: "L4CON", desc: "Layer4 connection problem", info: "internal error"}
		}
	}()
	return lb.checkOnce(ctx, b, s)
}

// recordCheckLocked applies a check result to the server's state machine,
// logs transitions and returns the delay until the next check.
func (lb *LB) recordCheckLocked(b *Backend, s *Server, res checkResult) time.Duration {
	s.checkStatus, s.checkDesc, s.checkInfo, s.checkDur, s.lastCheck = res.status, res.desc, res.info, res.dur, time.Now()
	var tr health.Transition
	if res.ok {
		tr = s.health.Success()
	} else {
		s.checkFails++
		tr = s.health.Failure()
	}
	if tr != health.Unchanged && s.admin != AdminMaint {
		lb.serverChangedLocked(b, s, tr == health.WentUp, res)
	}
	sc := s.config()
	return s.health.Interval(sc.InterOrDefault(), sc.FastInterOrDefault(), sc.DownInterOrDefault())
}

// serverChangedLocked updates the balancer and logs the transition in
// HAProxy's words.
func (lb *LB) serverChangedLocked(b *Backend, s *Server, up bool, res checkResult) {
	now := time.Now()
	s.lastChange = now
	if up {
		if !s.downSince.IsZero() {
			s.downtime += now.Sub(s.downSince)
			s.downSince = time.Time{}
		}
	} else {
		s.downSince = now
		s.downTrans++
	}
	b.syncServerLocked(s)
	sc := s.config()
	killed := 0
	switch {
	case !up && sc.ShutdownOnDown:
		killed = s.shutdownSessions()
	case up && sc.ShutdownBackupsOnUp && !sc.Backup:
		for _, o := range b.servers {
			if o.config().Backup {
				killed += o.shutdownSessions()
			}
		}
	}
	if killed > 0 {
		b.lb.log.Info("sessions shut down on server state change", "backend", b.Name, "server", s.Name, "sessions", killed)
	}
	// Like HAProxy: a server coming UP takes what it can from the queues;
	// one going DOWN sends its own queue back to the balancer with
	// "option redispatch".
	var requeued int
	if up {
		requeued = b.serveQueuesLocked(s)
	} else {
		requeued = b.redistributeLocked(s)
	}
	act, bck := b.countsLocked()
	reason := res.desc
	switch {
	case res.code != "":
		reason += ", code: " + res.code
	case res.status == "L7OK":
		reason += ", code: 0"
	}
	if res.info != "" {
		reason += fmt.Sprintf(", info: \"%s\"", res.info)
	}
	var msg string
	if up {
		msg = fmt.Sprintf("Server %s/%s is UP, reason: %s, check duration: %dms. %d active and %d backup servers online. %d sessions requeued, %d total in queue.",
			b.Name, s.Name, reason, res.dur.Milliseconds(), act, bck, requeued, s.queue.len())
		lb.event(b.cfg, sevNotice, msg)
		return
	}
	running := ""
	if act == 0 && bck > 0 {
		running = " Running on backup."
	}
	msg = fmt.Sprintf("Server %s/%s is DOWN, reason: %s, check duration: %dms. %d active and %d backup servers left.%s %d sessions active, %d requeued, %d remaining in queue.",
		b.Name, s.Name, reason, res.dur.Milliseconds(), act, bck, running, s.stats.cur.Load(), requeued, s.queue.len())
	lb.event(b.cfg, sevAlert, msg)
	if act+bck == 0 {
		lb.event(b.cfg, sevAlert, fmt.Sprintf("backend %s has no server available!", b.Name))
	}
}

// checkOnce runs the server's check: a TCP connect by default, the
// tcp-check rules with "option tcp-check", the AMQP handshake with
// "option amqp-check".
func (lb *LB) checkOnce(ctx context.Context, b *Backend, s *Server) checkResult {
	sc := s.config()
	start := time.Now()
	inter := sc.InterOrDefault()
	connectTimeout := inter
	if t := b.cfg.Timeouts.Connect; t > 0 && t < connectTimeout {
		connectTimeout = t
	}
	readTimeout := inter
	if t := b.cfg.Timeouts.Check; t > 0 {
		readTimeout = t
	}
	addr := checkAddr(sc, 0)
	var steps []config.TCPCheckStep
	if b.cfg.Options.TCPCheck {
		steps = b.cfg.TCPChecks
	}
	if len(steps) > 0 && steps[0].Action == "connect" && steps[0].Port > 0 {
		addr = checkAddr(sc, steps[0].Port)
	}
	d := net.Dialer{Timeout: connectTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return l4Failure(err, time.Since(start))
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(readTimeout))
	switch {
	case b.cfg.Options.AMQPCheck:
		return amqpCheck(conn, start)
	case b.cfg.Options.HTTPCheck:
		return httpCheck(conn, &b.cfg.HTTPCheck, start)
	case len(steps) > 0:
		return tcpCheck(conn, steps, start)
	}
	return checkResult{ok: true, status: "L4OK", desc: "Layer4 check passed", dur: time.Since(start)}
}

func checkAddr(sc *config.Server, port int) string {
	host, p, err := net.SplitHostPort(sc.Addr)
	if err != nil {
		host, p = sc.Addr, ""
	}
	if sc.CheckAddr != "" {
		host = sc.CheckAddr
	}
	if sc.CheckPort > 0 {
		p = strconv.Itoa(sc.CheckPort)
	}
	if port > 0 {
		p = strconv.Itoa(port)
	}
	return net.JoinHostPort(host, p)
}
