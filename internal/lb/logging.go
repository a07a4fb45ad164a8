package lb

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/lb/config"
)

// Syslog severities used by warren-lb.
const (
	sevAlert  = 1
	sevNotice = 5
	sevInfo   = 6
)

// logSinks holds the open log destinations of one configuration. Send is
// safe for concurrent use.
type logSinks struct {
	mu    sync.Mutex // guards conns
	conns map[string]net.Conn
	tag   string
	log   *slog.Logger
}

func newLogSinks(cfg *config.Config, log *slog.Logger) *logSinks {
	return &logSinks{conns: map[string]net.Conn{}, tag: filepath.Base(os.Args[0]), log: log}
}

func (ls *logSinks) close() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for k, c := range ls.conns {
		_ = c.Close()
		delete(ls.conns, k)
	}
}

// send writes msg at severity sev to every target of the list whose level
// lets it through.
func (ls *logSinks) send(targets []config.LogTarget, sev int, msg string) {
	if ls == nil {
		return
	}
	now := time.Now()
	for _, t := range targets {
		if sev > t.Level {
			continue
		}
		line := ls.format(t, sev, now, msg)
		switch t.Address {
		case "stdout":
			_, _ = io.WriteString(os.Stdout, line+"\n")
		case "stderr":
			_, _ = io.WriteString(os.Stderr, line+"\n")
		default:
			c, err := ls.conn(t.Address)
			if err != nil {
				continue
			}
			_, _ = c.Write([]byte(line))
		}
	}
}

func (ls *logSinks) conn(addr string) (net.Conn, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if c, ok := ls.conns[addr]; ok {
		return c, nil
	}
	network, dst := "udp", addr
	if strings.HasPrefix(addr, "unix:") {
		network, dst = "unixgram", strings.TrimPrefix(addr, "unix:")
	}
	c, err := net.Dial(network, dst)
	if err != nil {
		return nil, fmt.Errorf("log target %s: %w", addr, err)
	}
	ls.conns[addr] = c
	return c, nil
}

// format renders one syslog line in the target's format.
func (ls *logSinks) format(t config.LogTarget, sev int, now time.Time, msg string) string {
	pri := t.Facility*8 + sev
	switch t.Format {
	case "raw":
		return msg
	case "short":
		return fmt.Sprintf("<%d>%s", pri, msg)
	case "rfc5424":
		host, _ := os.Hostname()
		return fmt.Sprintf("<%d>1 %s %s %s %d - - %s", pri, now.Format(time.RFC3339Nano), host, ls.tag, os.Getpid(), msg)
	}
	return fmt.Sprintf("<%d>%s %s[%d]: %s", pri, now.Format(time.Stamp), ls.tag, os.Getpid(), msg)
}

// logSession writes the session's log line on its frontend's log targets:
// HAProxy's tcplog format with "option tcplog", else its short connect line.
func (lb *LB) logSession(ss *session) {
	fe := ss.fe
	if len(fe.cfg.Logs) == 0 {
		return
	}
	if fe.cfg.Options.DontLogNull && ss.result.toServer == 0 && ss.result.term == "--" {
		return
	}
	if fe.cfg.Options.DontLogNormal && ss.result.term == "--" {
		return
	}
	lb.logs.Load().send(fe.cfg.Logs, sevInfo, formatSession(ss))
}

// formatSession renders a session in HAProxy's tcplog format:
//
//	%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq
func formatSession(ss *session) string {
	ca, _ := ss.client.RemoteAddr().(*net.TCPAddr)
	if !ss.fe.cfg.Options.TCPLog {
		la, _ := ss.client.LocalAddr().(*net.TCPAddr)
		return fmt.Sprintf("Connect from %s to %s (%s/TCP)", ca, la, ss.fe.Name)
	}
	bname, sname := "<NOSRV>", "<NOSRV>"
	if ss.be != nil {
		bname = ss.be.Name
	}
	if ss.srv != nil {
		sname = ss.srv.Name
	}
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	tc := int64(-1)
	if ss.connTime >= 0 {
		tc = ms(ss.connTime)
	}
	tw := ms(ss.waitQueue)
	if ss.result.term == "sQ" || ss.result.term == "SQ" {
		tw = -1
	}
	retries := fmt.Sprint(ss.retries)
	if ss.redispatched {
		retries = "+" + retries
	}
	return fmt.Sprintf("%s:%d [%s] %s %s/%s %d/%d/%d %d %s %d/%d/%d/%d/%s %d/%d",
		ca.IP, ca.Port, ss.accepted.Format("02/Jan/2006:15:04:05.000"), ss.fe.Name, bname, sname,
		tw, tc, ms(time.Since(ss.accepted)), ss.result.toClient, ss.result.term,
		ss.actConn, ss.feConn, ss.beConn, ss.srvConn, retries, ss.srvQueuePos, ss.beQueuePos)
}

// event logs a health or administrative event: on warren-lb's logger, and
// on the proxy's log targets as HAProxy does.
func (lb *LB) event(px *config.Proxy, sev int, msg string) {
	if sev <= sevAlert {
		lb.log.Warn(msg)
	} else {
		lb.log.Info(msg)
	}
	if px != nil {
		lb.logs.Load().send(px.Logs, sev, msg)
	}
}
