package lb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
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
	b.wakeAllLocked()
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
			b.Name, s.Name, reason, res.dur.Milliseconds(), act, bck, 0, len(b.queue))
		lb.event(b.cfg, sevNotice, msg)
		return
	}
	running := ""
	if act == 0 && bck > 0 {
		running = " Running on backup."
	}
	msg = fmt.Sprintf("Server %s/%s is DOWN, reason: %s, check duration: %dms. %d active and %d backup servers left.%s %d sessions active, %d requeued, %d remaining in queue.",
		b.Name, s.Name, reason, res.dur.Milliseconds(), act, bck, running, s.stats.cur.Load(), 0, len(b.queue))
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

func l4Failure(err error, dur time.Duration) checkResult {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return checkResult{status: "L4TOUT", desc: "Layer4 timeout", dur: dur}
	}
	info := err.Error()
	var errno syscall.Errno
	if errors.As(err, &errno) {
		info = errnoText(errno)
	}
	return checkResult{status: "L4CON", desc: "Layer4 connection problem", info: info, dur: dur}
}

// errnoText capitalises the C library message as HAProxy prints it.
func errnoText(e syscall.Errno) string {
	s := e.Error()
	if s == "" {
		return s
	}
	return string(s[0]-('a'-'A')*boolToByte(s[0] >= 'a' && s[0] <= 'z')) + s[1:]
}

func boolToByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func l7Read(err error, step int, what string, dur time.Duration) checkResult {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return checkResult{status: "L7TOUT", desc: "Layer7 timeout", info: fmt.Sprintf("at step %d of tcp-check (%s)", step, what), dur: dur}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return checkResult{status: "L7RSP", desc: "Layer7 invalid response", info: fmt.Sprintf("TCPCHK got an empty response at step %d", step), dur: dur}
	}
	return checkResult{status: "L4CON", desc: "Layer4 connection problem", info: fmt.Sprintf("%v at step %d of tcp-check", err, step), dur: dur}
}

// amqpCheck sends the AMQP protocol header and expects a connection.start
// method frame: type 1, channel 0, class 10, method 10. A node whose port
// is open but whose broker application is stopped fails it.
func amqpCheck(conn net.Conn, start time.Time) checkResult {
	if _, err := conn.Write([]byte(amqpHeader)); err != nil {
		return l7Read(err, 1, "send AMQP header", time.Since(start))
	}
	var hdr [11]byte // frame header (7) + class id (2) + method id (2)
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return l7Read(err, 2, "expect connection.start", time.Since(start))
	}
	typ, ch := hdr[0], binary.BigEndian.Uint16(hdr[1:3])
	class, method := binary.BigEndian.Uint16(hdr[7:9]), binary.BigEndian.Uint16(hdr[9:11])
	if typ != 1 || ch != 0 || class != 10 || method != 10 {
		return checkResult{status: "L7RSP", desc: "Layer7 wrong status",
			info: fmt.Sprintf("expected AMQP connection.start, got frame type %d channel %d method %d.%d", typ, ch, class, method), dur: time.Since(start)}
	}
	return checkResult{ok: true, status: "L7OK", desc: "Layer7 check passed", info: "AMQP connection.start", dur: time.Since(start)}
}

// tcpCheck runs tcp-check send/expect rules on an open connection.
func tcpCheck(conn net.Conn, steps []config.TCPCheckStep, start time.Time) checkResult {
	var buf []byte
	chunk := make([]byte, 4096)
	for i, st := range steps {
		n := i + 1
		switch st.Action {
		case "send", "send-binary":
			data := st.Data
			if st.Action == "send" {
				data = unescapeCheck(data)
			}
			if _, err := conn.Write([]byte(data)); err != nil {
				return l7Read(err, n, "send", time.Since(start))
			}
		case "expect":
			var re *regexp.Regexp
			if st.Match == "rstring" || st.Match == "rbinary" {
				var err error
				if re, err = regexp.Compile(st.Data); err != nil {
					return checkResult{status: "L7RSP", desc: "Layer7 wrong status", info: err.Error(), dur: time.Since(start)}
				}
			}
			match := func() bool {
				if re != nil {
					return re.Match(buf)
				}
				return bytes.Contains(buf, []byte(st.Data))
			}
			for !match() {
				if st.Negate && len(buf) > 0 {
					break
				}
				m, err := conn.Read(chunk)
				buf = append(buf, chunk[:m]...)
				if err != nil {
					if match() || len(buf) > 0 && errors.Is(err, io.EOF) {
						break // matched, or the answer is complete and wrong
					}
					if st.Negate && errors.Is(err, io.EOF) {
						break
					}
					return l7Read(err, n, fmt.Sprintf("expect %s '%s'", st.Match, st.Data), time.Since(start))
				}
			}
			if match() == st.Negate {
				return checkResult{status: "L7RSP", desc: "Layer7 wrong status",
					info: fmt.Sprintf("TCPCHK did not match content '%s' at step %d", st.Data, n), dur: time.Since(start)}
			}
			buf = buf[:0]
		}
	}
	return checkResult{ok: true, status: "L7OK", desc: "Layer7 check passed", info: "(tcp-check)", dur: time.Since(start)}
}

// unescapeCheck decodes the escapes HAProxy accepts in tcp-check send
// strings (the config lexer already turned \r and \n into bytes).
func unescapeCheck(s string) string { return s }

// httpCheck sends the "option httpchk" request and judges the response:
// by default any 2xx or 3xx status passes; "http-check expect" can ask
// for a status list, a status pattern, or a string or pattern in the body.
func httpCheck(conn net.Conn, hc *config.HTTPCheck, start time.Time) checkResult {
	req := fmt.Sprintf("%s %s %s\r\n", hc.Method, hc.URI, hc.Version)
	if strings.HasPrefix(hc.Version, "HTTP/1.1") && !strings.Contains(strings.ToLower(hc.Version), "host:") {
		req += "Host: localhost\r\n"
	}
	req += "Connection: close\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		return l7Read(err, 1, "send HTTP request", time.Since(start))
	}
	var resp []byte
	chunk := make([]byte, 4096)
	for len(resp) < 16<<10 {
		n, err := conn.Read(chunk)
		resp = append(resp, chunk[:n]...)
		if err != nil {
			if len(resp) == 0 || !errors.Is(err, io.EOF) {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					return checkResult{status: "L7TOUT", desc: "Layer7 timeout", dur: time.Since(start)}
				}
				return checkResult{status: "L7RSP", desc: "Layer7 invalid response", info: "TCPCHK got an empty response", dur: time.Since(start)}
			}
			break
		}
		if hc.Expect != "string" && hc.Expect != "rstring" && bytes.Contains(resp, []byte("\r\n")) {
			break // the status line is enough
		}
	}
	line, _, _ := strings.Cut(string(resp), "\r\n")
	f := strings.SplitN(line, " ", 3)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/") || len(f[1]) != 3 {
		return checkResult{status: "L7RSP", desc: "Layer7 invalid response", info: "invalid HTTP response", dur: time.Since(start)}
	}
	code, reason := f[1], ""
	if len(f) == 3 {
		reason = f[2]
	}
	var ok bool
	switch hc.Expect {
	case "":
		ok = code[0] == '2' || code[0] == '3'
	case "status":
		for _, c := range strings.Split(hc.ExpectValue, ",") {
			if lo, hi, isRange := strings.Cut(c, "-"); isRange {
				ok = ok || code >= lo && code <= hi
			} else {
				ok = ok || code == c
			}
		}
	case "rstatus":
		re, err := regexp.Compile(hc.ExpectValue)
		ok = err == nil && re.MatchString(code)
	case "string":
		ok = bytes.Contains(resp, []byte(hc.ExpectValue))
	case "rstring":
		re, err := regexp.Compile(hc.ExpectValue)
		ok = err == nil && re.Match(resp)
	}
	if hc.ExpectNegate {
		ok = !ok
	}
	if ok {
		return checkResult{ok: true, status: "L7OK", desc: "Layer7 check passed", code: code, info: reason, dur: time.Since(start)}
	}
	return checkResult{status: "L7STS", desc: "Layer7 wrong status", code: code, info: reason, dur: time.Since(start)}
}
