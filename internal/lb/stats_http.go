package lb

import (
	"crypto/subtle"
	"fmt"
	"html"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// chanListener hands connections accepted by the LB's own accept loops to
// the stats HTTP server.
type chanListener struct {
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		_ = c.Close()
	}
}

// Accept returns the next stats connection.
func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept.
func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is not meaningful for this listener.
func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// acceptedOn reports whether a connection whose local address is local
// came through a listener bound to bound: the same address, or the same
// port on a wildcard bind (":8100" accepts on every address).
func acceptedOn(bound, local net.Addr) bool {
	if bound.String() == local.String() {
		return true
	}
	b, ok1 := bound.(*net.TCPAddr)
	l, ok2 := local.(*net.TCPAddr)
	return ok1 && ok2 && b.IP.IsUnspecified() && b.Port == l.Port
}

// serveStats serves HAProxy's stats page on "mode http" proxies with
// "stats enable": HTML, ";csv" and ";json".
func (lb *LB) serveStats(w http.ResponseWriter, r *http.Request) {
	la, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	var fe *Frontend
	lb.mu.Lock()
	for _, l := range lb.listeners {
		if la != nil && acceptedOn(l.ln.Addr(), la) {
			fe = l.handler.Load()
		}
	}
	lb.mu.Unlock()
	if fe == nil || !fe.cfg.Stats.Enable {
		http.Error(w, "503 Service Unavailable\nNo server is available to handle this request.", http.StatusServiceUnavailable)
		return
	}
	st := fe.cfg.Stats
	uri := st.URI
	if uri == "" {
		uri = "/haproxy?stats"
	}
	full := r.URL.RequestURI()
	if !strings.HasPrefix(full, uri) {
		http.Error(w, "503 Service Unavailable\nNo server is available to handle this request.", http.StatusServiceUnavailable)
		return
	}
	if len(st.Auth) > 0 {
		user, pass, ok := r.BasicAuth()
		good := false
		for _, a := range st.Auth {
			if ok && subtle.ConstantTimeCompare([]byte(a.User), []byte(user)) == 1 && subtle.ConstantTimeCompare([]byte(a.Pass), []byte(pass)) == 1 {
				good = true
			}
		}
		if !good {
			realm := st.Realm
			if realm == "" {
				realm = "HAProxy Statistics"
			}
			w.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", realm))
			http.Error(w, "401 Unauthorized\nYou need a valid user and password to access this content.", http.StatusUnauthorized)
			return
		}
	}
	rest := full[len(uri):]
	if r.Method == http.MethodPost {
		lb.statsAdmin(w, r, fe, uri)
		return
	}
	rows := lb.statRows()
	switch {
	case strings.Contains(rest, ";csv"):
		w.Header().Set("Content-Type", "text/plain")
		_ = writeCSV(w, rows)
	case strings.Contains(rest, ";json"):
		w.Header().Set("Content-Type", "application/json")
		_ = writeJSON(w, rows)
	default:
		if st.Refresh > 0 && !strings.Contains(rest, ";norefresh") {
			w.Header().Set("Refresh", fmt.Sprint(int(st.Refresh.Seconds())))
		}
		w.Header().Set("Content-Type", "text/html")
		lb.writeHTML(w, fe, rows, uri)
	}
}

// statsAdmin applies the stats page's admin form ("stats admin if TRUE"):
// fields b (backend), s (servers, repeated) and action (ready, drain,
// maint), as HAProxy's form posts them; then it redirects to the page.
func (lb *LB) statsAdmin(w http.ResponseWriter, r *http.Request, fe *Frontend, uri string) {
	if !fe.cfg.Stats.Admin {
		http.Error(w, "403 Forbidden\nRequest forbidden by administrative rules.", http.StatusForbidden)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "400 Bad request", http.StatusBadRequest)
		return
	}
	states := map[string]AdminState{"ready": AdminReady, "drain": AdminDrain, "maint": AdminMaint}
	st, ok := states[r.PostForm.Get("action")]
	result := "DONE"
	if !ok {
		result = "ERRP"
	}
	for _, srv := range r.PostForm["s"] {
		if !ok {
			break
		}
		if err := lb.SetAdminState(r.PostForm.Get("b")+"/"+srv, st); err != nil {
			result = "NOSRV"
		}
	}
	http.Redirect(w, r, uri+";st="+result, http.StatusSeeOther)
}

// Row colours follow HAProxy's legend.
var statusColours = map[string]string{
	"UP": "#c0ffc0", "DOWN": "#ff9090", "MAINT": "#c07820", "DRAIN": "#b0d0ff", "no check": "#e0e0e0",
	"backup": "#c0c0ff", "going-down": "#ffffa0", "going-up": "#ffd020", "OPEN": "#c0ffc0",
}

func rowColour(r statRow) string {
	s := r["status"]
	switch {
	case s == "MAINT":
		return statusColours["MAINT"]
	case strings.HasPrefix(s, "DOWN "):
		return statusColours["going-up"]
	case strings.HasPrefix(s, "UP "):
		return statusColours["going-down"]
	case s == "DOWN":
		return statusColours["DOWN"]
	case r["bck"] == "1" && r["type"] == typeServer && s != "no check":
		return statusColours["backup"]
	}
	if c, ok := statusColours[s]; ok {
		return c
	}
	return "#e0e0e0"
}

func (lb *LB) writeHTML(w http.ResponseWriter, fe *Frontend, rows []statRow, uri string) {
	var sb strings.Builder
	version := lb.opts.Version
	if fe.cfg.Stats.HideVersion {
		version = ""
	}
	fmt.Fprintf(&sb, `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Statistics Report for warren-lb</title>
<style>body{font-family:arial,helvetica,sans-serif;font-size:12px}table{border-collapse:collapse;margin-bottom:1em}
th,td{border:1px solid #999;padding:1px 4px;text-align:right}th{background:#20a0ff;color:#fff}
td.n{text-align:left;font-weight:bold}.px{background:#4060a0;color:#fff;text-align:left;font-weight:bold}</style></head><body>
<h1>warren-lb %s</h1><h3>Statistics Report for pid %d</h3>
<p>Uptime: %s &mdash; current connections: %d &mdash; <a href="%s;csv">CSV export</a> &mdash; <a href="%s;json">JSON export</a></p>
<p>Legend: <span style="background:%s">active UP</span> <span style="background:%s">backup UP</span> <span style="background:%s">active or backup DOWN</span> <span style="background:%s">active or backup SOFT STOPPED / MAINT</span> <span style="background:%s">going down</span> <span style="background:%s">going up</span></p>
`, html.EscapeString(version), lb.pid, time.Since(lb.start).Truncate(time.Second), lb.actConn.Load(),
		html.EscapeString(uri), html.EscapeString(uri), statusColours["UP"], statusColours["backup"], statusColours["DOWN"], statusColours["MAINT"], statusColours["going-down"], statusColours["going-up"])
	cols := []struct{ title, key string }{
		{"Queue Cur", "qcur"}, {"Queue Max", "qmax"}, {"Queue Limit", "qlimit"}, {"Sessions Cur", "scur"}, {"Sessions Max", "smax"}, {"Limit", "slim"},
		{"Total", "stot"}, {"LbTot", "lbtot"}, {"Last", "lastsess"}, {"Bytes In", "bin"}, {"Bytes Out", "bout"},
		{"Denied", "dreq"}, {"Errors Conn", "econ"}, {"Errors Resp", "eresp"}, {"Retr", "wretr"}, {"Redis", "wredis"},
		{"Status", "status"}, {"LastChk", "check_desc"}, {"Wght", "weight"}, {"Act", "act"}, {"Bck", "bck"},
		{"Chk", "chkfail"}, {"Dwn", "chkdown"}, {"Dwntme", "downtime"},
	}
	admin := fe.cfg.Stats.Admin
	current := ""
	closeTable := func() {
		sb.WriteString("</table>\n")
		if admin {
			fmt.Fprintf(&sb, `<input type="hidden" name="b" value="%s">Selected servers: <select name="action"><option value="ready">Set state to READY</option><option value="drain">Set state to DRAIN</option><option value="maint">Set state to MAINT</option></select> <input type="submit" value="Apply"></form>`+"\n", html.EscapeString(current))
		}
	}
	for _, r := range rows {
		if r["pxname"] != current {
			if current != "" {
				closeTable()
			}
			if admin {
				fmt.Fprintf(&sb, `<form method="post" action="%s">`, html.EscapeString(uri))
			}
			current = r["pxname"]
			fmt.Fprintf(&sb, `<table><tr><th class="px" colspan="%d">%s</th></tr><tr><th></th>`, len(cols)+1, html.EscapeString(current))
			for _, c := range cols {
				fmt.Fprintf(&sb, "<th>%s</th>", c.title)
			}
			sb.WriteString("</tr>\n")
		}
		box := ""
		if admin && r["type"] == typeServer {
			box = fmt.Sprintf(`<input type="checkbox" name="s" value="%s"> `, html.EscapeString(r["svname"]))
		}
		fmt.Fprintf(&sb, `<tr style="background:%s"><td class="n">%s%s</td>`, rowColour(r), box, html.EscapeString(r["svname"]))
		for _, c := range cols {
			v := r[c.key]
			if c.key == "check_desc" && v != "" {
				v = fmt.Sprintf("%s in %sms", r["check_status"], r["check_duration"])
			}
			if c.key == "downtime" && v != "" {
				v = (timeSeconds(v)).String()
			}
			fmt.Fprintf(&sb, "<td>%s</td>", html.EscapeString(v))
		}
		sb.WriteString("</tr>\n")
	}
	if current != "" {
		closeTable()
	}
	sb.WriteString("</body></html>\n")
	_, _ = w.Write([]byte(sb.String()))
}

func timeSeconds(v string) time.Duration {
	d, _ := time.ParseDuration(v + "s")
	return d
}
