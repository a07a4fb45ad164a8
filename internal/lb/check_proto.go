package lb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/warren-mq/warren/internal/lb/config"
)

// This file holds the check protocols: layer 4 results, tcp-check rules,
// the AMQP handshake and HTTP requests.

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
			// The config lexer already decoded \r, \n and \xHH escapes.
			if _, err := conn.Write([]byte(st.Data)); err != nil {
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
