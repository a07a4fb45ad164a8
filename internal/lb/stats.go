package lb

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// csvColumns are HAProxy 2.6's stats CSV columns, in its order, so tools
// that read HAProxy's CSV read ours. Columns warren-lb has no value for
// are left empty, as HAProxy does for fields that do not apply.
var csvColumns = strings.Split("pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out", ",")

// statRow is one line of statistics: a frontend, a server or a backend.
type statRow map[string]string

// Stat types, as in HAProxy's "type" column.
const (
	typeFrontend = "0"
	typeBackend  = "1"
	typeServer   = "2"
)

func itoa[T int | int64](v T) string { return strconv.FormatInt(int64(v), 10) }

func secsSince(t time.Time) string {
	if t.IsZero() {
		return "-1"
	}
	return itoa(int64(time.Since(t).Seconds()))
}

// statRows returns the statistics of every proxy in configuration order:
// FRONTEND, then each server, then BACKEND, like HAProxy.
func (lb *LB) statRows() []statRow {
	st := lb.current()
	if st == nil {
		return nil
	}
	var rows []statRow
	pid := itoa(lb.pid)
	for iid, px := range st.order {
		iids := itoa(iid + 2)
		if fe := st.frontends[px.Name]; fe != nil {
			c := fe.stats
			rows = append(rows, statRow{
				"pxname": px.Name, "svname": "FRONTEND", "scur": itoa(c.cur.Load()), "smax": itoa(c.max.Load()),
				"slim": itoa(cap(fe.slots)), "stot": itoa(c.total.Load()), "bin": itoa(c.bytesIn.Load()),
				"bout": itoa(c.bytesOut.Load()), "dreq": itoa(c.denied.Load()), "dresp": "0", "ereq": "0",
				"status": "OPEN", "pid": "1", "iid": iids, "sid": "0", "type": typeFrontend,
				"rate": "0", "rate_lim": "0", "rate_max": "0", "mode": px.Mode, "conn_tot": itoa(c.total.Load()),
				"conn_rate": "0", "conn_rate_max": "0",
			})
		}
		b := st.backends[px.Name]
		if b == nil {
			continue
		}
		b.mu.Lock()
		act, bck := b.countsLocked()
		totalWeight := 0
		for sid, s := range b.servers {
			sc := s.config()
			c := &s.stats
			row := statRow{
				"pxname": px.Name, "svname": s.Name, "qcur": itoa(s.queue.len()), "qmax": itoa(c.queueMax.Load()),
				"scur": itoa(c.cur.Load()), "smax": itoa(c.max.Load()), "stot": itoa(c.total.Load()),
				"bin": itoa(c.bytesIn.Load()), "bout": itoa(c.bytesOut.Load()), "dresp": "0",
				"econ": itoa(c.connErrors.Load()), "eresp": itoa(c.respErrors.Load()),
				"wretr": itoa(c.retries.Load()), "wredis": itoa(c.redispatch.Load()),
				"status": s.statusLocked(), "weight": itoa(s.weight), "uweight": itoa(s.weight),
				"act": map[bool]string{true: "0", false: "1"}[sc.Backup], "bck": map[bool]string{true: "1", false: "0"}[sc.Backup],
				"lastchg": secsSince(s.lastChange), "pid": "1", "iid": iids, "sid": itoa(sid + 1),
				"lbtot": itoa(c.lbTotal.Load()), "type": typeServer, "rate": "0", "rate_max": "0",
				"lastsess": secsSince(timeFromNano(c.lastSess.Load())), "addr": sc.Addr, "mode": px.Mode,
				"qtime": "0", "ctime": "0", "rtime": "0", "ttime": "0", "cli_abrt": "0", "srv_abrt": "0",
			}
			if sc.MaxConn > 0 {
				row["slim"] = itoa(sc.MaxConn)
			}
			if sc.MaxQueue > 0 {
				row["qlimit"] = itoa(sc.MaxQueue)
			}
			if sc.Check {
				down := s.downtime
				if !s.downSince.IsZero() {
					down += time.Since(s.downSince)
				}
				row["chkfail"] = itoa(s.checkFails)
				row["chkdown"] = itoa(s.downTrans)
				row["downtime"] = itoa(int64(down.Seconds()))
				row["check_status"] = s.checkStatus
				row["check_duration"] = itoa(s.checkDur.Milliseconds())
				row["check_desc"] = s.checkDesc
				row["check_rise"] = itoa(s.health.Rise)
				row["check_fall"] = itoa(s.health.Fall)
				row["check_health"] = itoa(s.health.Health)
				row["last_chk"] = s.checkInfo
			}
			if s.usableLocked() {
				if sc.Backup == (act == 0) {
					totalWeight += s.weight
				}
			}
			rows = append(rows, row)
		}
		status := "UP"
		if act+bck == 0 && !(len(b.servers) == 0 && px.Stats.Enable) {
			status = "DOWN" // a stats-only proxy has no servers and is up
		}
		down := b.downtime
		if !b.downSince.IsZero() {
			down += time.Since(b.downSince)
		}
		c := b.stats
		rows = append(rows, statRow{
			"pxname": px.Name, "svname": "BACKEND", "qcur": itoa(b.queue.len()), "qmax": itoa(c.queueMax.Load()),
			"scur": itoa(c.cur.Load()), "smax": itoa(c.max.Load()), "slim": itoa(lb.current().cfg.Global.MaxConnOrDefault()),
			"stot": itoa(c.total.Load()), "bin": itoa(c.bytesIn.Load()), "bout": itoa(c.bytesOut.Load()),
			"dreq": "0", "dresp": "0", "econ": itoa(c.connErrors.Load()), "eresp": itoa(c.respErrors.Load()),
			"wretr": itoa(c.retries.Load()), "wredis": itoa(c.redispatch.Load()), "status": status,
			"weight": itoa(totalWeight), "uweight": itoa(totalWeight), "act": itoa(act), "bck": itoa(bck),
			"chkdown": "0", "lastchg": secsSince(b.lastChange), "downtime": itoa(int64(down.Seconds())),
			"pid": "1", "iid": iids, "sid": "0", "lbtot": itoa(c.lbTotal.Load()), "type": typeBackend,
			"rate": "0", "rate_max": "0", "lastsess": secsSince(timeFromNano(c.lastSess.Load())),
			"mode": px.Mode, "algo": px.Balance, "qtime": "0", "ctime": "0", "rtime": "0", "ttime": "0",
			"cli_abrt": "0", "srv_abrt": "0",
		})
		b.mu.Unlock()
	}
	_ = pid
	return rows
}

func timeFromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// writeCSV writes the rows with HAProxy's header line.
func writeCSV(w io.Writer, rows []statRow) error {
	var sb strings.Builder
	sb.WriteString("# ")
	sb.WriteString(strings.Join(csvColumns, ","))
	sb.WriteString(",\n")
	for _, r := range rows {
		for _, c := range csvColumns {
			v := r[c]
			if strings.ContainsAny(v, ",\n\"") {
				v = strconv.Quote(v)
			}
			sb.WriteString(v)
			sb.WriteByte(',')
		}
		sb.WriteByte('\n')
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// jsonField is one value in HAProxy's typed JSON stats layout.
type jsonField struct {
	ObjType string            `json:"objType"`
	ProxyID int               `json:"proxyId"`
	ID      int               `json:"id"`
	Field   jsonFieldName     `json:"field"`
	Process int               `json:"processNum"`
	Value   jsonValue         `json:"value"`
	Tags    map[string]string `json:"tags,omitempty"`
}

type jsonFieldName struct {
	Pos  int    `json:"pos"`
	Name string `json:"name"`
}

type jsonValue struct {
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// writeJSON writes the rows as HAProxy's ";json" output: one array per
// row of typed fields, leaving out empty ones.
func writeJSON(w io.Writer, rows []statRow) error {
	out := make([][]jsonField, 0, len(rows))
	for _, r := range rows {
		obj := map[string]string{typeFrontend: "Frontend", typeBackend: "Backend", typeServer: "Server"}[r["type"]]
		pid, _ := strconv.Atoi(r["iid"])
		sid, _ := strconv.Atoi(r["sid"])
		var fields []jsonField
		for pos, c := range csvColumns {
			v, ok := r[c]
			if !ok || v == "" {
				continue
			}
			val := jsonValue{Type: "str", Value: v}
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && c != "pxname" && c != "svname" {
				val = jsonValue{Type: "u64", Value: n}
				if n < 0 {
					val.Type = "s32"
				}
			}
			fields = append(fields, jsonField{ObjType: obj, ProxyID: pid, ID: sid, Field: jsonFieldName{pos, c}, Process: 1, Value: val})
		}
		out = append(out, fields)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// infoLines returns "show info" as name/value pairs.
func (lb *LB) infoLines() [][2]string {
	st := lb.current()
	up := time.Since(lb.start)
	maxconn := 0
	if st != nil {
		maxconn = st.cfg.Global.MaxConnOrDefault()
	}
	return [][2]string{
		{"Name", "warren-lb"},
		{"Version", lb.opts.Version},
		{"Nbthread", "1"},
		{"Nbproc", "1"},
		{"Process_num", "1"},
		{"Pid", itoa(lb.pid)},
		{"Uptime", fmt.Sprintf("%dd %dh%02dm%02ds", int(up.Hours())/24, int(up.Hours())%24, int(up.Minutes())%60, int(up.Seconds())%60)},
		{"Uptime_sec", itoa(int64(up.Seconds()))},
		{"Maxconn", itoa(maxconn)},
		{"CurrConns", itoa(lb.actConn.Load())},
		{"CumConns", itoa(lb.totalConn.Load())},
	}
}

// serversState renders "show servers state" in HAProxy's format (version 1).
func (lb *LB) serversState(only string) string {
	var sb strings.Builder
	sb.WriteString("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n")
	st := lb.current()
	if st == nil {
		return sb.String()
	}
	for iid, px := range st.order {
		b := st.backends[px.Name]
		if b == nil || (only != "" && only != px.Name) {
			continue
		}
		b.mu.Lock()
		for sid, s := range b.servers {
			sc := s.config()
			host, port, _ := splitHostPortLoose(sc.Addr)
			op := 2 // running
			if !s.health.Up() {
				op = 0 // stopped
			}
			admin := 0
			switch s.admin {
			case AdminMaint:
				admin = 1
			case AdminDrain:
				admin = 8
			}
			chk := 0
			if sc.Check {
				chk = 6 // configured and enabled
			}
			fmt.Fprintf(&sb, "%d %s %d %s %s %d %d %d %d %d %d %d %d %d 0 0 0 - %s - 0 %d - - 0\n",
				iid+2, px.Name, sid+1, s.Name, host, op, admin, s.weight, sc.WeightOrDefault(),
				int64(time.Since(s.lastChange).Seconds()), 1, 2, s.health.Health, chk, port, sc.CheckPort)
		}
		b.mu.Unlock()
	}
	return sb.String()
}

func splitHostPortLoose(addr string) (string, string, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return addr, "0", nil
	}
	return strings.Trim(addr[:i], "[]"), addr[i+1:], nil
}
