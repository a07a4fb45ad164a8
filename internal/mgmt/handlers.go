package mgmt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/auth"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/defs"
	"github.com/warren-mq/warren/internal/meta"
	"github.com/warren-mq/warren/internal/policy"
)

func (s *Server) routes() {
	h := s.handle
	h("GET /api/overview", anyUser, s.overview)
	h("GET /api/whoami", anyUser, s.whoami)
	h("GET /api/cluster-name", anyUser, s.clusterName)
	h("PUT /api/cluster-name", administrator, s.putClusterName)
	h("GET /api/global-parameters/{name}", administrator, s.getGlobalParameter)
	h("PUT /api/global-parameters/{name}", administrator, s.putGlobalParameter)
	h("DELETE /api/global-parameters/{name}", administrator, s.deleteGlobalParameter)
	h("GET /api/extensions", anyUser, func(w http.ResponseWriter, r *http.Request, u *user) error { return writeJSON(w, []obj{}) })
	h("GET /api/nodes", monitoring, s.listNodes)
	h("GET /api/nodes/{node}", monitoring, s.getNode)

	h("GET /api/vhosts", anyUser, s.listVHosts)
	h("GET /api/vhosts/{vhost}", anyUser, s.getVHost)
	h("PUT /api/vhosts/{vhost}", administrator, s.putVHost)
	h("DELETE /api/vhosts/{vhost}", administrator, s.deleteVHost)
	h("GET /api/vhosts/{vhost}/permissions", administrator, s.vhostPermissions)
	h("GET /api/vhosts/{vhost}/connections", anyUser, s.listConnections)
	h("GET /api/vhosts/{vhost}/channels", anyUser, s.listChannels)

	h("GET /api/users", administrator, s.listUsers)
	h("GET /api/users/without-permissions", administrator, s.usersWithoutPermissions)
	h("GET /api/users/{user}", administrator, s.getUser)
	h("PUT /api/users/{user}", administrator, s.putUser)
	h("DELETE /api/users/{user}", administrator, s.deleteUser)
	h("POST /api/users/bulk-delete", administrator, s.bulkDeleteUsers)
	h("GET /api/users/{user}/permissions", administrator, s.userPermissions)

	h("GET /api/permissions", administrator, s.listPermissions)
	h("GET /api/permissions/{vhost}/{user}", administrator, s.getPermission)
	h("PUT /api/permissions/{vhost}/{user}", administrator, s.putPermission)
	h("DELETE /api/permissions/{vhost}/{user}", administrator, s.deletePermission)

	h("GET /api/global-parameters", administrator, s.listGlobalParameters)
	h("GET /api/vhost-limits", anyUser, s.listVHostLimits)
	h("GET /api/vhost-limits/{vhost}", anyUser, s.listVHostLimits)
	h("PUT /api/vhost-limits/{vhost}/{name}", administrator, s.setVHostLimit)
	h("DELETE /api/vhost-limits/{vhost}/{name}", administrator, s.setVHostLimit)
	h("GET /api/user-limits", administrator, s.listUserLimits)
	h("GET /api/user-limits/{user}", administrator, s.listUserLimits)
	h("PUT /api/user-limits/{user}/{name}", administrator, s.setUserLimit)
	h("DELETE /api/user-limits/{user}/{name}", administrator, s.setUserLimit)
	h("GET /api/topic-permissions", administrator, s.listTopicPermissions(func(meta.TopicPermission, *http.Request) bool { return true }))
	h("GET /api/users/{user}/topic-permissions", administrator, s.listTopicPermissions(func(p meta.TopicPermission, r *http.Request) bool { return p.User == r.PathValue("user") }))
	h("GET /api/vhosts/{vhost}/topic-permissions", administrator, s.listTopicPermissions(func(p meta.TopicPermission, r *http.Request) bool { return p.VHost == r.PathValue("vhost") }))
	h("GET /api/topic-permissions/{vhost}/{user}", administrator, s.getTopicPermissions)
	h("PUT /api/topic-permissions/{vhost}/{user}", administrator, s.putTopicPermission)
	h("DELETE /api/topic-permissions/{vhost}/{user}", administrator, s.deleteTopicPermissions)
	h("DELETE /api/topic-permissions/{vhost}/{user}/{exchange}", administrator, s.deleteTopicPermissions)
	for _, p := range []string{"/api/parameters", "/api/feature-flags", "/api/federation-links"} {
		h("GET "+p, anyUser, s.emptyList)
	}
	h("GET /api/federation-links/{vhost}", anyUser, func(w http.ResponseWriter, r *http.Request, u *user) error {
		if _, err := s.vhostParam(r, u); err != nil {
			return err
		}
		return writeList(w, r, nil)
	})
	// Runtime parameters belong to components (federation, shovel) that
	// this node does not have: none are listed, none found, none stored.
	h("GET /api/parameters/{component}", policymaking, s.emptyList)
	h("GET /api/parameters/{component}/{vhost}", policymaking, func(w http.ResponseWriter, r *http.Request, u *user) error {
		if _, err := s.vhostParam(r, u); err != nil {
			return err
		}
		return writeList(w, r, nil)
	})
	h("GET /api/parameters/{component}/{vhost}/{name}", policymaking, func(w http.ResponseWriter, r *http.Request, u *user) error { return errNotFound() })
	h("DELETE /api/parameters/{component}/{vhost}/{name}", policymaking, func(w http.ResponseWriter, r *http.Request, u *user) error { return errNotFound() })
	h("PUT /api/parameters/{component}/{vhost}/{name}", policymaking, func(w http.ResponseWriter, r *http.Request, u *user) error {
		return errBadRequest("Validation failed\n\ncomponent %s not found", r.PathValue("component"))
	})
	for _, kind := range []struct {
		path     string
		operator bool
	}{{"/api/policies", false}, {"/api/operator-policies", true}} {
		need := policymaking
		if kind.operator {
			need = administrator
		}
		h("GET "+kind.path, policymaking, s.listPolicies(kind.operator))
		h("GET "+kind.path+"/{vhost}", policymaking, s.listPolicies(kind.operator))
		h("GET "+kind.path+"/{vhost}/{name}", policymaking, s.getPolicy(kind.operator))
		h("PUT "+kind.path+"/{vhost}/{name}", need, s.putPolicy(kind.operator))
		h("DELETE "+kind.path+"/{vhost}/{name}", need, s.deletePolicy(kind.operator))
	}

	h("GET /api/exchanges", anyUser, s.listExchanges)
	h("GET /api/exchanges/{vhost}", anyUser, s.listExchanges)
	h("GET /api/exchanges/{vhost}/{name}", anyUser, s.getExchange)
	h("PUT /api/exchanges/{vhost}/{name}", anyUser, s.putExchange)
	h("DELETE /api/exchanges/{vhost}/{name}", anyUser, s.deleteExchange)
	h("POST /api/exchanges/{vhost}/{name}/publish", anyUser, s.publish)
	h("GET /api/exchanges/{vhost}/{name}/bindings/source", anyUser, s.exchangeBindings(true))
	h("GET /api/exchanges/{vhost}/{name}/bindings/destination", anyUser, s.exchangeBindings(false))

	h("GET /api/queues", anyUser, s.listQueues)
	h("GET /api/queues/{vhost}", anyUser, s.listQueues)
	h("GET /api/queues/{vhost}/{name}", anyUser, s.getQueue)
	h("PUT /api/queues/{vhost}/{name}", anyUser, s.putQueue)
	h("DELETE /api/queues/{vhost}/{name}", anyUser, s.deleteQueue)
	h("DELETE /api/queues/{vhost}/{name}/contents", anyUser, s.purgeQueue)
	h("POST /api/queues/{vhost}/{name}/get", anyUser, s.getMessages)
	h("GET /api/queues/{vhost}/{name}/bindings", anyUser, s.queueBindings)
	h("POST /api/queues/{vhost}/{name}/actions", anyUser, s.queueAction)

	h("GET /api/bindings", anyUser, s.listBindings)
	h("GET /api/bindings/{vhost}", anyUser, s.listBindings)
	for _, kind := range []string{"q", "e"} {
		base := "/api/bindings/{vhost}/e/{source}/" + kind + "/{dest}"
		h("GET "+base, anyUser, s.bindingsBetween(kind))
		h("POST "+base, anyUser, s.addBinding(kind))
		h("GET "+base+"/{props}", anyUser, s.getBinding(kind))
		h("DELETE "+base+"/{props}", anyUser, s.deleteBinding(kind))
	}

	h("GET /api/connections", anyUser, s.listConnections)
	h("GET /api/connections/username/{user}", anyUser, s.userConnections)
	h("DELETE /api/connections/username/{user}", anyUser, s.closeUserConnections)
	h("GET /api/connections/{name}", anyUser, s.getConnection)
	h("DELETE /api/connections/{name}", anyUser, s.closeConnection)
	h("GET /api/connections/{name}/channels", anyUser, s.connectionChannels)
	h("GET /api/channels", anyUser, s.listChannels)
	h("GET /api/channels/{name}", anyUser, s.getChannel)
	h("GET /api/consumers", anyUser, s.listConsumers)
	h("GET /api/consumers/{vhost}", anyUser, s.listConsumers)

	h("GET /api/definitions", administrator, s.exportDefinitions)
	h("POST /api/definitions", administrator, s.importDefinitions)
	h("GET /api/definitions/{vhost}", administrator, s.exportDefinitions)
	h("POST /api/definitions/{vhost}", administrator, s.importDefinitions)

	h("GET /api/aliveness-test/{vhost}", anyUser, s.aliveness)
	h("GET /api/health/checks/alarms", anyUser, s.alarmsCheck)
	h("GET /api/health/checks/local-alarms", anyUser, s.alarmsCheck)
	h("GET /api/health/checks/virtual-hosts", anyUser, s.vhostsCheck)
	h("GET /api/health/checks/port-listener/{port}", anyUser, s.portCheck)
	h("GET /api/health/checks/protocol-listener/{protocol}", anyUser, s.protocolCheck)
	h("GET /api/health/checks/node-is-mirror-sync-critical", anyUser, s.mirrorSyncCriticalCheck)
	h("GET /api/health/checks/node-is-quorum-critical", anyUser, s.quorumCriticalCheck)
	h("GET /api/health/checks/certificate-expiration/{within}/{unit}", anyUser, func(w http.ResponseWriter, r *http.Request, u *user) error {
		return writeJSON(w, obj{"status": "ok"})
	})
}

func (s *Server) emptyList(w http.ResponseWriter, r *http.Request, u *user) error {
	return writeList(w, r, nil)
}

var exchangeTypes = []obj{
	{"name": "direct", "description": "AMQP direct exchange, as per the AMQP specification", "enabled": true},
	{"name": "fanout", "description": "AMQP fanout exchange, as per the AMQP specification", "enabled": true},
	{"name": "headers", "description": "AMQP headers exchange, as per the AMQP specification", "enabled": true},
	{"name": "topic", "description": "AMQP topic exchange, as per the AMQP specification", "enabled": true},
}

func (s *Server) listenerObjs() []obj {
	var out []obj
	for _, l := range s.cfg.Listeners {
		host, port := splitHostPort(l.Addr)
		out = append(out, obj{"node": s.b.NodeName(), "protocol": l.Protocol, "ip_address": host, "port": port, "socket_opts": obj{}})
	}
	return out
}

func splitHostPort(addr string) (string, int) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return addr, 0
	}
	port, _ := strconv.Atoi(addr[i+1:])
	host := strings.Trim(addr[:i], "[]")
	if host == "" {
		host = "::"
	}
	return host, port
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request, u *user) error {
	var exchanges int
	for vhost, n := range s.b.Meta().ExchangeCounts() {
		if s.canSee(u, vhost) {
			exchanges += n
		}
	}
	var conns, chans int
	for _, c := range s.b.ClusterConnections() {
		if !c.Direct && s.seesConn(u, c.User, c.VHost) {
			conns++
			chans += c.Channels
		}
	}
	node := s.rates.nodeRates()
	values := countsFields(s.b.MessageTotals(""))
	queues, ready, unacked, consumers := s.b.QueueTotals(func(v string) bool { return s.canSee(u, v) })
	ms := statsObj(values, node, channelFields)
	qt := obj{
		"messages":                        ready + unacked,
		"messages_details":                details(node["messages"]),
		"messages_ready":                  ready,
		"messages_ready_details":          details(node["messages_ready"]),
		"messages_unacknowledged":         unacked,
		"messages_unacknowledged_details": details(node["messages_unacknowledged"]),
	}
	if q := r.URL.Query(); q.Has("msg_rates_age") || q.Has("lengths_age") {
		history := s.rates.points()
		for _, f := range channelFields {
			if d, ok := ms[f+"_details"].(obj); ok {
				withSamples(d, history, f)
			}
		}
		for _, f := range []string{"messages", "messages_ready", "messages_unacknowledged"} {
			withSamples(qt[f+"_details"].(obj), history, f)
		}
	}
	return writeJSON(w, obj{
		"management_version":        s.cfg.Version,
		"rates_mode":                "basic",
		"sample_retention_policies": obj{"global": []int{600, 3600, 28800, 86400}, "basic": []int{600, 3600}, "detailed": []int{600}},
		"exchange_types":            exchangeTypes,
		"product_version":           s.cfg.Version,
		"product_name":              s.cfg.Product,
		"rabbitmq_version":          s.cfg.Version,
		"cluster_name":              s.b.ClusterName(),
		"erlang_version":            runtime.Version(),
		"erlang_full_version":       runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		"disable_stats":             false,
		"enable_queue_totals":       false,
		"message_stats":             ms,
		"churn_rates":               obj{},
		"queue_totals":              qt,
		"object_totals":             obj{"channels": chans, "connections": conns, "consumers": consumers, "exchanges": exchanges, "queues": queues},
		"statistics_db_event_queue": 0,
		"node":                      s.b.NodeName(),
		"listeners":                 s.listenerObjs(),
		"contexts":                  []obj{{"node": s.b.NodeName(), "description": "RabbitMQ Management", "path": "/", "port": s.httpPort()}},
	})
}

func (s *Server) httpPort() string {
	for _, l := range s.cfg.Listeners {
		if l.Protocol == "http" {
			_, p := splitHostPort(l.Addr)
			return strconv.Itoa(p)
		}
	}
	return ""
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request, u *user) error {
	tags := u.tags
	if tags == nil {
		tags = []string{}
	}
	return writeJSON(w, obj{"name": u.name, "tags": tags})
}

func (s *Server) clusterName(w http.ResponseWriter, r *http.Request, u *user) error {
	return writeJSON(w, obj{"name": s.b.ClusterName()})
}

func (s *Server) nodeObj() obj {
	res := s.b.Resources()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return obj{
		"name":                    s.b.NodeName(),
		"type":                    "disc",
		"running":                 true,
		"being_drained":           false,
		"partitions":              []string{},
		"os_pid":                  strconv.Itoa(os.Getpid()),
		"uptime":                  time.Since(s.b.Started()).Milliseconds(),
		"processors":              runtime.NumCPU(),
		"proc_used":               runtime.NumGoroutine(),
		"mem_used":                res.MemUsed,
		"mem_limit":               res.MemLimit,
		"mem_alarm":               res.MemAlarm,
		"disk_free":               res.DiskFree,
		"disk_free_limit":         res.DiskFreeLimit,
		"disk_free_alarm":         res.DiskAlarm,
		"rates_mode":              "basic",
		"exchange_types":          exchangeTypes,
		"auth_mechanisms":         []obj{{"name": "PLAIN", "description": "SASL PLAIN authentication mechanism", "enabled": true}, {"name": "AMQPLAIN", "description": "QPid AMQPLAIN mechanism", "enabled": true}},
		"applications":            []obj{{"name": "warren", "description": "warren message broker", "version": s.cfg.Version}},
		"contexts":                []obj{{"description": "RabbitMQ Management", "path": "/", "port": s.httpPort()}},
		"cluster_links":           []obj{},
		"gc_num":                  ms.NumGC,
		"run_queue":               0,
		"net_ticktime":            60,
		"enabled_plugins":         []string{"rabbitmq_management"},
		"log_files":               []string{},
		"config_files":            []string{},
		"db_dir":                  "",
		"sockets_used":            len(s.b.Connections()),
		"sockets_total":           socketsTotal(broker.FDLimit()),
		"fd_used":                 broker.OpenFDs(),
		"fd_total":                broker.FDLimit(),
		"metrics_gc_queue_length": obj{},
	}
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request, u *user) error {
	var items []obj
	for _, rep := range s.b.ClusterReports() {
		items = append(items, s.reportObj(rep))
	}
	return writeList(w, r, items)
}

func (s *Server) getNode(w http.ResponseWriter, r *http.Request, u *user) error {
	for _, rep := range s.b.ClusterReports() {
		if rep.Name == r.PathValue("node") {
			return writeOne(w, r, s.reportObj(rep))
		}
	}
	return errNotFound()
}

// reportObj is a node of the cluster as /api/nodes shows it: this node in
// full, another with what it reports, or only its name and type while it
// cannot be asked.
func (s *Server) reportObj(rep broker.NodeReport) obj {
	kind := "disc"
	if rep.RAM {
		kind = "ram"
	}
	parts := rep.Partitions
	if parts == nil {
		parts = []string{}
	}
	if rep.Name == s.b.NodeName() {
		o := s.nodeObj()
		o["type"] = kind
		o["partitions"] = parts
		return o
	}
	if !rep.Running {
		return obj{"name": rep.Name, "type": kind, "running": false, "partitions": parts, "being_drained": false}
	}
	res := rep.Resources
	return obj{
		"name": rep.Name, "type": kind, "running": true, "being_drained": false, "partitions": parts,
		"os_pid": strconv.Itoa(rep.OSPid), "uptime": time.Since(rep.Started).Milliseconds(), "processors": rep.Processors,
		"proc_used": rep.Goroutines, "mem_used": res.MemUsed, "mem_limit": res.MemLimit, "mem_alarm": res.MemAlarm,
		"disk_free": res.DiskFree, "disk_free_limit": res.DiskFreeLimit, "disk_free_alarm": res.DiskAlarm,
		"rates_mode": "basic", "gc_num": rep.GCNum, "run_queue": 0, "net_ticktime": 60, "sockets_used": rep.Sockets,
		"fd_used": rep.FDs, "fd_total": rep.FDLimit, "sockets_total": socketsTotal(rep.FDLimit),
		"enabled_plugins": []string{"rabbitmq_management"}, "exchange_types": exchangeTypes,
	}
}

// socketsTotal is how many client sockets RabbitMQ allows under an open
// files limit: nine tenths of what 100 reserved descriptors leave, less 2.
func socketsTotal(fdLimit uint64) uint64 {
	if fdLimit < 103 {
		return 0
	}
	return (fdLimit-100)*9/10 - 2
}

// ---- vhosts, users, permissions

func (s *Server) listVHosts(w http.ResponseWriter, r *http.Request, u *user) error {
	var items []obj
	for _, v := range s.b.Meta().Snapshot().VHosts {
		if s.canSee(u, v.Name) {
			items = append(items, s.vhostStats(v))
		}
	}
	return writeList(w, r, items)
}

func (s *Server) vhostStats(v meta.VHost) obj {
	o := vhostObj(v, s.b.NodeName())
	var ready, unacked int
	for _, q := range s.b.ClusterQueues(v.Name) {
		ready += q.Stats.Ready
		unacked += q.Stats.Unacked
	}
	rates := s.rates.vhost(v.Name)
	o["messages"] = ready + unacked
	o["messages_ready"] = ready
	o["messages_unacknowledged"] = unacked
	o["messages_details"] = details(0)
	o["messages_ready_details"] = details(0)
	o["messages_unacknowledged_details"] = details(0)
	o["message_stats"] = statsObj(countsFields(s.b.MessageTotals(v.Name)), rates, channelFields)
	return o
}

func (s *Server) getVHost(w http.ResponseWriter, r *http.Request, u *user) error {
	name, err := s.vhostParam(r, u)
	if err != nil {
		return err
	}
	for _, v := range s.b.Meta().Snapshot().VHosts {
		if v.Name == name {
			return writeOne(w, r, s.vhostStats(v))
		}
	}
	return errNotFound()
}

func (s *Server) putVHost(w http.ResponseWriter, r *http.Request, u *user) error {
	name := r.PathValue("vhost")
	var body struct {
		Description      string `json:"description"`
		Tags             any    `json:"tags"`
		DefaultQueueType string `json:"default_queue_type"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if t := body.DefaultQueueType; t != "" && t != "classic" {
		return errBadRequest("default queue type '%s' is not supported: this node has classic queues only", t)
	}
	cur, exists := s.b.Meta().VHost(name)
	isNew := !exists
	if err := s.b.Meta().PutVHost(r.Context(), meta.VHost{Name: name, Description: body.Description, Tags: defs.Tags(body.Tags), Limits: cur.Limits}); err != nil {
		return err
	}
	if isNew {
		// As in RabbitMQ, whoever creates a vhost may use it at once.
		if err := s.b.Meta().SetPermission(r.Context(), meta.Permission{User: u.name, VHost: name, Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
			return err
		}
	}
	return created(w, isNew)
}

func (s *Server) deleteVHost(w http.ResponseWriter, r *http.Request, u *user) error {
	return deleted(w, s.b.Meta().DeleteVHost(r.Context(), r.PathValue("vhost")))
}

func (s *Server) permissionItems(keep func(meta.Permission) bool) []obj {
	var items []obj
	for _, p := range s.b.Meta().Snapshot().Permissions {
		if keep(p) {
			items = append(items, permissionObj(p))
		}
	}
	slices.SortFunc(items, func(a, b obj) int {
		return strings.Compare(a["user"].(string)+"\x00"+a["vhost"].(string), b["user"].(string)+"\x00"+b["vhost"].(string))
	})
	return items
}

func (s *Server) vhostPermissions(w http.ResponseWriter, r *http.Request, u *user) error {
	v, err := s.vhostParam(r, u)
	if err != nil {
		return err
	}
	return writeList(w, r, s.permissionItems(func(p meta.Permission) bool { return p.VHost == v }))
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, u *user) error {
	var items []obj
	for _, usr := range s.b.Meta().Snapshot().Users {
		items = append(items, userObj(usr))
	}
	return writeList(w, r, items)
}

func (s *Server) usersWithoutPermissions(w http.ResponseWriter, r *http.Request, u *user) error {
	d := s.b.Meta().Snapshot()
	has := map[string]bool{}
	for _, p := range d.Permissions {
		has[p.User] = true
	}
	var items []obj
	for _, usr := range d.Users {
		if !has[usr.Name] {
			items = append(items, userObj(usr))
		}
	}
	return writeList(w, r, items)
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, u *user) error {
	usr, ok := s.b.Meta().User(r.PathValue("user"))
	if !ok {
		return errNotFound()
	}
	return writeOne(w, r, userObj(usr))
}

func (s *Server) putUser(w http.ResponseWriter, r *http.Request, u *user) error {
	name := r.PathValue("user")
	var body defs.User
	if err := readJSON(r, &body); err != nil {
		return err
	}
	body.Name = name
	cur, exists := s.b.Meta().User(name)
	usr, err := body.ToMeta()
	if err != nil {
		return errBadRequest("%v", err)
	}
	usr.Limits = cur.Limits
	if err := s.b.Meta().PutUser(r.Context(), usr); err != nil {
		return err
	}
	return created(w, !exists)
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, u *user) error {
	return deleted(w, s.b.Meta().DeleteUser(r.Context(), r.PathValue("user")))
}

func (s *Server) bulkDeleteUsers(w http.ResponseWriter, r *http.Request, u *user) error {
	var body struct {
		Users []string `json:"users"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	for _, name := range body.Users {
		if err := s.b.Meta().DeleteUser(r.Context(), name); err != nil && !errors.Is(err, meta.ErrNotFound) {
			return err
		}
	}
	return noContent(w)
}

func (s *Server) userPermissions(w http.ResponseWriter, r *http.Request, u *user) error {
	name := r.PathValue("user")
	if _, ok := s.b.Meta().User(name); !ok {
		return errNotFound()
	}
	return writeList(w, r, s.permissionItems(func(p meta.Permission) bool { return p.User == name }))
}

func (s *Server) listPermissions(w http.ResponseWriter, r *http.Request, u *user) error {
	return writeList(w, r, s.permissionItems(func(meta.Permission) bool { return true }))
}

func (s *Server) getPermission(w http.ResponseWriter, r *http.Request, u *user) error {
	p, ok := s.b.Meta().Permission(r.PathValue("user"), r.PathValue("vhost"))
	if !ok {
		return errNotFound()
	}
	return writeOne(w, r, permissionObj(p))
}

func (s *Server) putPermission(w http.ResponseWriter, r *http.Request, u *user) error {
	vhost, name := r.PathValue("vhost"), r.PathValue("user")
	var body struct {
		Configure *string `json:"configure"`
		Write     *string `json:"write"`
		Read      *string `json:"read"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body.Configure == nil || body.Write == nil || body.Read == nil {
		return errBadRequest("configure, write and read must all be set")
	}
	for _, p := range []string{*body.Configure, *body.Write, *body.Read} {
		if err := auth.ValidPattern(p); err != nil {
			return errBadRequest("%v", err)
		}
	}
	if !s.b.Meta().VHostExists(vhost) {
		return errBadRequest("vhost_not_found: %s", vhost)
	}
	if _, ok := s.b.Meta().User(name); !ok {
		return errBadRequest("user_not_found: %s", name)
	}
	_, exists := s.b.Meta().Permission(name, vhost)
	if err := s.b.Meta().SetPermission(r.Context(), meta.Permission{User: name, VHost: vhost, Configure: *body.Configure, Write: *body.Write, Read: *body.Read}); err != nil {
		return err
	}
	return created(w, !exists)
}

func (s *Server) deletePermission(w http.ResponseWriter, r *http.Request, u *user) error {
	return deleted(w, s.b.Meta().ClearPermission(r.Context(), r.PathValue("user"), r.PathValue("vhost")))
}

// ---- exchanges

// exchangeName maps the URL name of the default exchange.
func exchangeName(r *http.Request) string {
	n := r.PathValue("name")
	if n == "amq.default" {
		return ""
	}
	return n
}

func (s *Server) listExchanges(w http.ResponseWriter, r *http.Request, u *user) error {
	only := ""
	if r.PathValue("vhost") != "" {
		v, err := s.vhostParam(r, u)
		if err != nil {
			return err
		}
		only = v
	}
	var items []obj
	for _, x := range s.b.Meta().Snapshot().Exchanges {
		if (only == "" || x.VHost == only) && s.canSee(u, x.VHost) {
			items = append(items, exchangeObj(x))
		}
	}
	return writeList(w, r, items)
}

func (s *Server) getExchange(w http.ResponseWriter, r *http.Request, u *user) error {
	v, err := s.vhostParam(r, u)
	if err != nil {
		return err
	}
	x, ok := s.b.Meta().Exchange(v, exchangeName(r))
	if !ok {
		return errNotFound()
	}
	o := exchangeObj(x)
	o["incoming"] = []obj{}
	o["outgoing"] = []obj{}
	return writeOne(w, r, o)
}

func (s *Server) putExchange(w http.ResponseWriter, r *http.Request, u *user) error {
	v, err := s.vhostParam(r, u)
	if err != nil {
		return err
	}
	name := exchangeName(r)
	var body struct {
		Type       string         `json:"type"`
		Durable    *flexBool      `json:"durable"`
		AutoDelete flexBool       `json:"auto_delete"`
		Internal   flexBool       `json:"internal"`
		Arguments  map[string]any `json:"arguments"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body.Type == "" {
		body.Type = "direct"
	}
	durable := body.Durable == nil || bool(*body.Durable)
	_, exists := s.b.Meta().Exchange(v, name)
	err = s.withChannel(u, v, func(ch *amqp091.Channel) error {
		return ch.ExchangeDeclare(name, body.Type, durable, bool(body.AutoDelete), bool(body.Internal), false, amqp091.Table(defs.ArgsTable(body.Arguments)))
	})
	if err != nil {
		return err
	}
	return created(w, !exists)
}

func (s *Server) deleteExchange(w http.ResponseWriter, r *http.Request, u *user) error {
	v, err := s.vhostParam(r, u)
	if err != nil {
		return err
	}
	name := exchangeName(r)
	if _, ok := s.b.Meta().Exchange(v, name); !ok {
		return errNotFound()
	}
	ifUnused := r.URL.Query().Get("if-unused") == "true"
	return s.done(w, s.withChannel(u, v, func(ch *amqp091.Channel) error {
		return ch.ExchangeDelete(name, ifUnused, false)
	}))
}

func (s *Server) done(w http.ResponseWriter, err error) error {
	if err != nil {
		return err
	}
	return noContent(w)
}

// ---- queues

func (s *Server) listQueues(w http.ResponseWriter, r *http.Request, u *user) error {
	only := ""
	if r.PathValue("vhost") != "" {
		v, err := s.vhostParam(r, u)
		if err != nil {
			return err
		}
		only = v
	}
	// Names first; a queue's state is read only if it is on the page (or
	// the page is sorted by something else than the name).
	var refs []broker.QueueRef
	var names []string
	for _, q := range s.b.QueueRefs(only) {
		if s.canSee(u, q.VHost) {
			refs = append(refs, q)
			names = append(names, q.Name)
		}
	}
	lengths := r.URL.Query().Has("lengths_age")
	return writeLazyList(w, r, names, func(i int) obj {
		qi, _, ok := s.b.Queue(refs[i].VHost, refs[i].Name)
		if !ok {
			return obj{"name": refs[i].Name, "vhost": refs[i].VHost, "state": "deleted"}
		}
		o := s.queueObj(qi, nil, false)
		if lengths {
			lengthSamples(o)
		}
		return o
	})
}

func (s *Server) getQueue(w http.ResponseWriter, r *http.Request, u *user) error {
	v, err := s.vhostParam(r, u)
	if err != nil {
		return err
	}
	q, consumers, ok := s.b.Queue(v, r.PathValue("name"))
	if !ok {
		return errNotFound()
	}
	o := s.queueObj(q, consumers, true)
	if r.URL.Query().Has("lengths_age") {
		lengthSamples(o)
	}
	return writeOne(w, r, o)
}

func (s *Server) putQueue(w http.ResponseWriter, r *http.Request, u *user) error {
	v, err := s.vhostParam(r, u)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	var body struct {
		Durable    flexBool       `json:"durable"`
		AutoDelete flexBool       `json:"auto_delete"`
		Arguments  map[string]any `json:"arguments"`
		Node       string         `json:"node"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	_, exists := s.b.Meta().Queue(v, name)
	err = s.withChannel(u, v, func(ch *amqp091.Channel) error {
		_, err := ch.QueueDeclare(name, bool(body.Durable), bool(body.AutoDelete), false, false, amqp091.Table(defs.ArgsTable(body.Arguments)))
		return err
	})
	if err != nil {
		return err
	}
	return created(w, !exists)
}

func (s *Server) deleteQueue(w http.ResponseWriter, r *http.Request, u *user) error {
	v, name, err := s.queueParam(r, u)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	ifUnused, ifEmpty := q.Get("if-unused") == "true", q.Get("if-empty") == "true"
	return s.done(w, s.withChannel(u, v, func(ch *amqp091.Channel) error {
		_, err := ch.QueueDelete(name, ifUnused, ifEmpty, false)
		return err
	}))
}

func (s *Server) purgeQueue(w http.ResponseWriter, r *http.Request, u *user) error {
	v, name, err := s.queueParam(r, u)
	if err != nil {
		return err
	}
	return s.done(w, s.withChannel(u, v, func(ch *amqp091.Channel) error {
		_, err := ch.QueuePurge(name, false)
		return err
	}))
}

// ---- bindings

func (s *Server) visibleBindings(u *user, vhost string) []meta.Binding {
	d := s.b.Meta().Snapshot()
	var out []meta.Binding
	for _, q := range d.Queues {
		if (vhost == "" || q.VHost == vhost) && s.canSee(u, q.VHost) {
			out = append(out, defaultBinding(q))
		}
	}
	for _, b := range d.Bindings {
		if (vhost == "" || b.VHost == vhost) && s.canSee(u, b.VHost) {
			out = append(out, b)
		}
	}
	return out
}

func bindingItems(bs []meta.Binding, keep func(meta.Binding) bool) []obj {
	var items []obj
	for _, b := range bs {
		if keep(b) {
			items = append(items, bindingObj(b))
		}
	}
	return items
}

func (s *Server) listBindings(w http.ResponseWriter, r *http.Request, u *user) error {
	only := ""
	if r.PathValue("vhost") != "" {
		v, err := s.vhostParam(r, u)
		if err != nil {
			return err
		}
		only = v
	}
	return writeList(w, r, bindingItems(s.visibleBindings(u, only), func(meta.Binding) bool { return true }))
}

func (s *Server) exchangeBindings(source bool) handler {
	return func(w http.ResponseWriter, r *http.Request, u *user) error {
		v, err := s.vhostParam(r, u)
		if err != nil {
			return err
		}
		name := exchangeName(r)
		if _, ok := s.b.Meta().Exchange(v, name); !ok {
			return errNotFound()
		}
		return writeList(w, r, bindingItems(s.visibleBindings(u, v), func(b meta.Binding) bool {
			if source {
				return b.Source == name
			}
			return b.DestinationType == meta.DestExchange && b.Destination == name
		}))
	}
}

func (s *Server) queueBindings(w http.ResponseWriter, r *http.Request, u *user) error {
	v, name, err := s.queueParam(r, u)
	if err != nil {
		return err
	}
	return writeList(w, r, bindingItems(s.visibleBindings(u, v), func(b meta.Binding) bool {
		return b.DestinationType == meta.DestQueue && b.Destination == name
	}))
}

// bindingEnds reads and checks the source and destination of a binding
// URL.
func (s *Server) bindingEnds(r *http.Request, u *user, kind string) (vhost, source, dest, destType string, err error) {
	if vhost, err = s.vhostParam(r, u); err != nil {
		return
	}
	source, dest, destType = r.PathValue("source"), r.PathValue("dest"), meta.DestQueue
	if source == "amq.default" {
		source = ""
	}
	if _, ok := s.b.Meta().Exchange(vhost, source); !ok {
		err = errNotFound()
		return
	}
	if kind == "e" {
		destType = meta.DestExchange
		if _, ok := s.b.Meta().Exchange(vhost, dest); !ok {
			err = errNotFound()
		}
	} else if _, ok := s.b.Meta().Queue(vhost, dest); !ok {
		err = errNotFound()
	}
	return
}

func (s *Server) bindingsBetween(kind string) handler {
	return func(w http.ResponseWriter, r *http.Request, u *user) error {
		v, src, dst, typ, err := s.bindingEnds(r, u, kind)
		if err != nil {
			return err
		}
		return writeList(w, r, bindingItems(s.visibleBindings(u, v), func(b meta.Binding) bool {
			return b.Source == src && b.Destination == dst && b.DestinationType == typ
		}))
	}
}

func (s *Server) findBinding(r *http.Request, u *user, kind string) (meta.Binding, error) {
	v, src, dst, typ, err := s.bindingEnds(r, u, kind)
	if err != nil {
		return meta.Binding{}, err
	}
	props := r.PathValue("props")
	for _, b := range s.visibleBindings(u, v) {
		if b.Source == src && b.Destination == dst && b.DestinationType == typ && propertiesKey(b.RoutingKey, b.Arguments.Table) == props {
			return b, nil
		}
	}
	return meta.Binding{}, errNotFound()
}

func (s *Server) getBinding(kind string) handler {
	return func(w http.ResponseWriter, r *http.Request, u *user) error {
		b, err := s.findBinding(r, u, kind)
		if err != nil {
			return err
		}
		return writeOne(w, r, bindingObj(b))
	}
}

func (s *Server) addBinding(kind string) handler {
	return func(w http.ResponseWriter, r *http.Request, u *user) error {
		v, src, dst, _, err := s.bindingEnds(r, u, kind)
		if err != nil {
			return err
		}
		var body struct {
			RoutingKey string         `json:"routing_key"`
			Arguments  map[string]any `json:"arguments"`
		}
		if err := readJSON(r, &body); err != nil {
			return err
		}
		args := defs.ArgsTable(body.Arguments)
		err = s.withChannel(u, v, func(ch *amqp091.Channel) error {
			if kind == "e" {
				return ch.ExchangeBind(dst, body.RoutingKey, src, false, amqp091.Table(args))
			}
			return ch.QueueBind(dst, body.RoutingKey, src, false, amqp091.Table(args))
		})
		if err != nil {
			return err
		}
		// Location names the new binding, as RabbitMQ's answer does.
		// Relative to the request, each segment escaped again, as
		// RabbitMQ's Location reads: destination/properties-key.
		w.Header().Set("Location", url.QueryEscape(dst)+"/"+url.QueryEscape(propertiesKey(body.RoutingKey, args)))
		w.WriteHeader(http.StatusCreated)
		return nil
	}
}

func (s *Server) deleteBinding(kind string) handler {
	return func(w http.ResponseWriter, r *http.Request, u *user) error {
		b, err := s.findBinding(r, u, kind)
		if err != nil {
			return err
		}
		return s.done(w, s.withChannel(u, b.VHost, func(ch *amqp091.Channel) error {
			if kind == "e" {
				return ch.ExchangeUnbind(b.Destination, b.RoutingKey, b.Source, false, amqp091.Table(b.Arguments.Table))
			}
			return ch.QueueUnbind(b.Destination, b.RoutingKey, b.Source, amqp091.Table(b.Arguments.Table))
		}))
	}
}

// ---- connections, channels, consumers

// seesConn reports whether u may see a connection: its own, or any for
// monitoring users.
func (s *Server) seesConn(u *user, owner, vhost string) bool {
	return u.monitor() || owner == u.name
}

func (s *Server) listConnections(w http.ResponseWriter, r *http.Request, u *user) error {
	only := ""
	if r.PathValue("vhost") != "" {
		v, err := s.vhostParam(r, u)
		if err != nil {
			return err
		}
		only = v
	}
	var cs []broker.ConnectionInfo
	var names []string
	for _, c := range s.b.ClusterConnections() {
		if c.Direct || (only != "" && c.VHost != only) || !s.seesConn(u, c.User, c.VHost) {
			continue
		}
		cs = append(cs, c)
		names = append(names, c.Name)
	}
	return writeLazyList(w, r, names, func(i int) obj { return s.connectionObj(cs[i]) })
}

func (s *Server) getConnection(w http.ResponseWriter, r *http.Request, u *user) error {
	name := r.PathValue("name")
	for _, c := range s.b.ClusterConnections() {
		if c.Name == name && s.seesConn(u, c.User, c.VHost) {
			return writeOne(w, r, s.connectionObj(c))
		}
	}
	return errNotFound()
}

func (s *Server) closeConnection(w http.ResponseWriter, r *http.Request, u *user) error {
	name := r.PathValue("name")
	for _, c := range s.b.ClusterConnections() {
		if c.Name != name {
			continue
		}
		if !u.admin() && c.User != u.name {
			return errNotAuthorised("Not administrator user")
		}
		reason := r.Header.Get("X-Reason")
		if reason == "" {
			reason = "Closed via management plugin"
		}
		if s.b.CloseConnectionOn(c.Node, c.ID, reason) {
			return noContent(w)
		}
	}
	return errNotFound()
}

func (s *Server) connectionChannels(w http.ResponseWriter, r *http.Request, u *user) error {
	name := r.PathValue("name")
	found := false
	for _, c := range s.b.ClusterConnections() {
		if c.Name == name && s.seesConn(u, c.User, c.VHost) {
			found = true
		}
	}
	if !found {
		return errNotFound()
	}
	var items []obj
	for _, c := range s.b.ClusterChannels() {
		if c.Connection == name {
			items = append(items, s.channelObj(c))
		}
	}
	return writeList(w, r, items)
}

func (s *Server) listChannels(w http.ResponseWriter, r *http.Request, u *user) error {
	only := ""
	if r.PathValue("vhost") != "" {
		v, err := s.vhostParam(r, u)
		if err != nil {
			return err
		}
		only = v
	}
	direct := map[string]bool{}
	for _, c := range s.b.ClusterConnections() {
		if c.Direct {
			direct[c.Name] = true
		}
	}
	var chans []broker.ChannelInfo
	var names []string
	for _, c := range s.b.ClusterChannels() {
		if direct[c.Connection] || (only != "" && c.VHost != only) || !s.seesConn(u, c.User, c.VHost) {
			continue
		}
		chans = append(chans, c)
		names = append(names, broker.ChannelName(c.Connection, c.Number))
	}
	return writeLazyList(w, r, names, func(i int) obj { return s.channelObj(chans[i]) })
}

func (s *Server) getChannel(w http.ResponseWriter, r *http.Request, u *user) error {
	name := r.PathValue("name")
	for _, c := range s.b.ClusterChannels() {
		if s.seesConn(u, c.User, c.VHost) && name == channelNameOf(c.Connection, c.Number) {
			return writeOne(w, r, s.channelObj(c))
		}
	}
	return errNotFound()
}

func channelNameOf(conn string, n uint16) string {
	return conn + " (" + strconv.Itoa(int(n)) + ")"
}

func (s *Server) listConsumers(w http.ResponseWriter, r *http.Request, u *user) error {
	only := ""
	if r.PathValue("vhost") != "" {
		v, err := s.vhostParam(r, u)
		if err != nil {
			return err
		}
		only = v
	}
	var items []obj
	for _, c := range s.b.ClusterConsumers(only) {
		if s.canSee(u, c.VHost) {
			items = append(items, s.consumerObj(c))
		}
	}
	return writeList(w, r, items)
}

// ---- health

func (s *Server) aliveness(w http.ResponseWriter, r *http.Request, u *user) error {
	v, err := s.vhostParam(r, u)
	if err != nil {
		return err
	}
	// As RabbitMQ: declare aliveness-test, publish to it and get the
	// message back.
	const q = "aliveness-test"
	err = s.withChannel(u, v, func(ch *amqp091.Channel) error {
		if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := ch.PublishWithContext(ctx, "", q, false, false, amqp091.Publishing{Body: []byte("test_message")}); err != nil {
			return err
		}
		for i := 0; i < 50; i++ {
			d, ok, err := ch.Get(q, true)
			if err != nil {
				return err
			}
			if ok && string(d.Body) == "test_message" {
				return nil
			}
			time.Sleep(10 * time.Millisecond)
		}
		return errors.New("aliveness test message did not come back")
	})
	if err != nil {
		return &apiError{http.StatusServiceUnavailable, "failed", err.Error()}
	}
	return writeJSON(w, obj{"status": "ok"})
}

func healthFailed(w http.ResponseWriter, body obj) error {
	body["status"] = "failed"
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	return writeJSONBody(w, body)
}

func (s *Server) alarmsCheck(w http.ResponseWriter, r *http.Request, u *user) error {
	res := s.b.Resources()
	var alarms []obj
	if res.MemAlarm {
		alarms = append(alarms, obj{"node": s.b.NodeName(), "resource": "memory"})
	}
	if res.DiskAlarm {
		alarms = append(alarms, obj{"node": s.b.NodeName(), "resource": "disk"})
	}
	if len(alarms) > 0 {
		return healthFailed(w, obj{"reason": "There are alarms in effect in the cluster", "alarms": alarms})
	}
	return writeJSON(w, obj{"status": "ok"})
}

func (s *Server) vhostsCheck(w http.ResponseWriter, r *http.Request, u *user) error {
	return writeJSON(w, obj{"status": "ok"})
}

func (s *Server) portCheck(w http.ResponseWriter, r *http.Request, u *user) error {
	port, err := strconv.Atoi(r.PathValue("port"))
	if err != nil {
		return errBadRequest("invalid port: %s", r.PathValue("port"))
	}
	var ports []int
	for _, l := range s.cfg.Listeners {
		_, p := splitHostPort(l.Addr)
		if p == port {
			return writeJSON(w, obj{"status": "ok", "port": port})
		}
		ports = append(ports, p)
	}
	return healthFailed(w, obj{"reason": "No active listener", "missing": port, "ports": ports})
}

func (s *Server) protocolCheck(w http.ResponseWriter, r *http.Request, u *user) error {
	proto := strings.ToLower(r.PathValue("protocol"))
	var protos []string
	for _, l := range s.cfg.Listeners {
		if strings.EqualFold(l.Protocol, proto) || (proto == "amqp091" || proto == "amqp0.9.1" || proto == "amqp0-9-1") && l.Protocol == "amqp" {
			return writeJSON(w, obj{"status": "ok", "protocol": proto})
		}
		protos = append(protos, l.Protocol)
	}
	return healthFailed(w, obj{"reason": "No active listener", "missing": proto, "protocols": protos})
}

func (s *Server) singleNodeCheck(w http.ResponseWriter, r *http.Request, u *user) error {
	return writeJSON(w, obj{"status": "ok", "reason": "single node cluster"})
}

// mirrorSyncCriticalCheck answers 503, with RabbitMQ's text, when this
// node leads mirrored queues that have no in-sync mirror online.
func (s *Server) mirrorSyncCriticalCheck(w http.ResponseWriter, r *http.Request, u *user) error {
	if len(s.b.Meta().Members()) < 2 {
		return s.singleNodeCheck(w, r, u)
	}
	qs := s.b.MirrorSyncCritical()
	if len(qs) == 0 {
		return writeJSON(w, obj{"status": "ok"})
	}
	list := make([]obj, 0, len(qs))
	for _, q := range qs {
		list = append(list, obj{"readable_name": fmt.Sprintf("queue '%s' in vhost '%s'", q.Name, q.VHost), "name": q.Name, "virtual_host": q.VHost, "type": "classic"})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	return json.NewEncoder(w).Encode(obj{"status": "failed", "reason": "There are classic mirrored queues without online synchronised mirrors", "queues": list})
}

// quorumCriticalCheck answers 503 when stopping this node would leave
// the disc nodes, and so every definition change, without a majority.
func (s *Server) quorumCriticalCheck(w http.ResponseWriter, r *http.Request, u *user) error {
	if len(s.b.Meta().Members()) < 2 {
		return s.singleNodeCheck(w, r, u)
	}
	critical, down := s.b.QuorumCritical()
	if critical {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		return json.NewEncoder(w).Encode(obj{"status": "failed",
			"reason": fmt.Sprintf("stopping node %s would leave the cluster's disc nodes without a majority (down: %s)", s.b.NodeName(), strings.Join(down, ", ")),
			"queues": []obj{{"name": "definitions (Raft)", "virtual_host": "", "type": "raft"}}})
	}
	return writeJSON(w, obj{"status": "ok"})
}

// ---- definitions

func (s *Server) exportDefinitions(w http.ResponseWriter, r *http.Request, u *user) error {
	vhost := r.PathValue("vhost")
	if vhost != "" {
		if _, err := s.vhostParam(r, u); err != nil {
			return err
		}
	}
	if name := r.URL.Query().Get("download"); name != "" {
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	}
	return writeJSON(w, defs.Export(s.b.Meta(), defs.Source{Product: s.cfg.Product, Version: s.cfg.Version}, vhost))
}

func (s *Server) importDefinitions(w http.ResponseWriter, r *http.Request, u *user) error {
	vhost := r.PathValue("vhost")
	if vhost != "" {
		if _, err := s.vhostParam(r, u); err != nil {
			return err
		}
	}
	var raw io.Reader = r.Body
	// The web UI uploads the file as a form.
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "multipart/form-data" {
		f, _, err := r.FormFile("file")
		if err != nil {
			return errBadRequest("definitions upload: %v", err)
		}
		defer f.Close()
		raw = f
	}
	dec := json.NewDecoder(io.LimitReader(raw, 64<<20))
	dec.UseNumber()
	var d defs.File
	if err := dec.Decode(&d); err != nil {
		return errBadRequest("not_json: %v", err)
	}
	if err := defs.Import(r.Context(), s.b.Meta(), s.b.NodeName(), d, vhost); err != nil {
		return errBadRequest("%v", err)
	}
	return noContent(w)
}

// ---- policies

func (s *Server) listPolicies(operator bool) handler {
	return func(w http.ResponseWriter, r *http.Request, u *user) error {
		only := ""
		if r.PathValue("vhost") != "" {
			v, err := s.vhostParam(r, u)
			if err != nil {
				return err
			}
			only = v
		}
		var items []obj
		for _, p := range s.b.Meta().Policies(only) {
			if p.Operator == operator && s.canSee(u, p.VHost) {
				items = append(items, policyObj(p))
			}
		}
		return writeList(w, r, items)
	}
}

func (s *Server) findPolicy(r *http.Request, u *user, operator bool) (meta.Policy, error) {
	v, err := s.vhostParam(r, u)
	if err != nil {
		return meta.Policy{}, err
	}
	for _, p := range s.b.Meta().Policies(v) {
		if p.Operator == operator && p.Name == r.PathValue("name") {
			return p, nil
		}
	}
	return meta.Policy{}, errNotFound()
}

func (s *Server) getPolicy(operator bool) handler {
	return func(w http.ResponseWriter, r *http.Request, u *user) error {
		p, err := s.findPolicy(r, u, operator)
		if err != nil {
			return err
		}
		return writeOne(w, r, policyObj(p))
	}
}

func (s *Server) putPolicy(operator bool) handler {
	return func(w http.ResponseWriter, r *http.Request, u *user) error {
		v, err := s.vhostParam(r, u)
		if err != nil {
			return err
		}
		var body struct {
			Pattern    *string        `json:"pattern"`
			Definition map[string]any `json:"definition"`
			Priority   flexInt        `json:"priority"`
			ApplyTo    string         `json:"apply-to"`
		}
		if err := readJSON(r, &body); err != nil {
			return err
		}
		if body.Pattern == nil {
			return errBadRequest("pattern is required")
		}
		if body.ApplyTo == "" {
			body.ApplyTo = policy.All
		}
		p := meta.Policy{VHost: v, Name: r.PathValue("name"), Pattern: *body.Pattern, ApplyTo: body.ApplyTo,
			Definition: defs.NumbersAsFloat(body.Definition), Priority: int(body.Priority), Operator: operator}
		if err := policy.Validate(p); err != nil {
			return errBadRequest("%v", err)
		}
		_, err = s.findPolicy(r, u, operator)
		exists := err == nil
		if err := s.b.Meta().SetPolicy(r.Context(), p); err != nil {
			return err
		}
		return created(w, !exists)
	}
}

func (s *Server) deletePolicy(operator bool) handler {
	return func(w http.ResponseWriter, r *http.Request, u *user) error {
		p, err := s.findPolicy(r, u, operator)
		if err != nil {
			return err
		}
		if err := s.b.Meta().ClearPolicy(r.Context(), p.VHost, p.Name, operator); err != nil {
			return err
		}
		return noContent(w)
	}
}

// userConnections lists a user's connections, as RabbitMQ's tracking does:
// name, vhost, user and node.
func (s *Server) userConnections(w http.ResponseWriter, r *http.Request, u *user) error {
	name := r.PathValue("user")
	if !u.monitor() && name != u.name {
		return errNotAuthorised("Not monitor user")
	}
	var items []obj
	for _, c := range s.b.ClusterConnections() {
		if !c.Direct && c.User == name {
			items = append(items, obj{"name": c.Name, "vhost": c.VHost, "user": c.User, "node": c.Node})
		}
	}
	return writeList(w, r, items)
}

// closeUserConnections closes every connection of a user.
func (s *Server) closeUserConnections(w http.ResponseWriter, r *http.Request, u *user) error {
	name := r.PathValue("user")
	if !u.admin() && name != u.name {
		return errNotAuthorised("Not administrator user")
	}
	reason := r.Header.Get("X-Reason")
	if reason == "" {
		reason = "Closed via management plugin"
	}
	for _, c := range s.b.ClusterConnections() {
		if !c.Direct && c.User == name {
			s.b.CloseConnectionOn(c.Node, c.ID, reason)
		}
	}
	return noContent(w)
}

// queueAction runs a queue action. sync and cancel_sync start and stop
// synchronising a mirrored queue's followers; a queue without followers
// has nothing to synchronise, as in RabbitMQ.
func (s *Server) queueAction(w http.ResponseWriter, r *http.Request, u *user) error {
	if _, _, err := s.queueParam(r, u); err != nil {
		return err
	}
	var body struct {
		Action string `json:"action"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	switch body.Action {
	case "sync", "cancel_sync":
		return noContent(w)
	}
	return errBadRequest("unknown action '%s' (sync or cancel_sync)", body.Action)
}

// lengthSamples adds samples of a queue's lengths, as RabbitMQ answers a
// request with lengths_age. Queues keep no history of their lengths, so
// the one sample is the length now.
func lengthSamples(o obj) {
	now := time.Now().UnixMilli()
	for _, f := range []string{"messages", "messages_ready", "messages_unacknowledged"} {
		d, ok := o[f+"_details"].(obj)
		if !ok {
			continue
		}
		v := o[f]
		d["samples"] = []obj{{"timestamp": now, "sample": v}}
		d["avg"] = v
		d["avg_rate"] = 0.0
	}
}

// ---- global parameters and the cluster name

func globalObj(p meta.GlobalParameter) obj {
	var v any
	json.Unmarshal(p.Value, &v)
	return obj{"name": p.Name, "value": v}
}

func (s *Server) listGlobalParameters(w http.ResponseWriter, r *http.Request, u *user) error {
	var items []obj
	for _, p := range s.b.Meta().Snapshot().Global {
		items = append(items, globalObj(p))
	}
	return writeList(w, r, items)
}

func (s *Server) getGlobalParameter(w http.ResponseWriter, r *http.Request, u *user) error {
	p, ok := s.b.Meta().GlobalParameter(r.PathValue("name"))
	if !ok {
		return errNotFound()
	}
	return writeOne(w, r, globalObj(p))
}

func (s *Server) putGlobalParameter(w http.ResponseWriter, r *http.Request, u *user) error {
	var body struct {
		Value json.RawMessage `json:"value"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if len(body.Value) == 0 {
		return errBadRequest("value is required")
	}
	name := r.PathValue("name")
	_, exists := s.b.Meta().GlobalParameter(name)
	if err := s.b.Meta().SetGlobalParameter(r.Context(), meta.GlobalParameter{Name: name, Value: body.Value}); err != nil {
		return err
	}
	return created(w, !exists)
}

func (s *Server) deleteGlobalParameter(w http.ResponseWriter, r *http.Request, u *user) error {
	return deleted(w, s.b.Meta().ClearGlobalParameter(r.Context(), r.PathValue("name")))
}

func (s *Server) putClusterName(w http.ResponseWriter, r *http.Request, u *user) error {
	var body struct {
		Name string `json:"name"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body.Name == "" {
		return errBadRequest("name is required")
	}
	v, _ := json.Marshal(body.Name)
	if err := s.b.Meta().SetGlobalParameter(r.Context(), meta.GlobalParameter{Name: "cluster_name", Value: v}); err != nil {
		return err
	}
	return noContent(w)
}

// ---- topic permissions

func topicObj(p meta.TopicPermission) obj {
	return obj{"user": p.User, "vhost": p.VHost, "exchange": p.Exchange, "write": p.Write, "read": p.Read}
}

func (s *Server) listTopicPermissions(keep func(meta.TopicPermission, *http.Request) bool) handler {
	return func(w http.ResponseWriter, r *http.Request, u *user) error {
		var items []obj
		for _, p := range s.b.Meta().Snapshot().Topics {
			if keep(p, r) {
				items = append(items, topicObj(p))
			}
		}
		return writeList(w, r, items)
	}
}

func (s *Server) getTopicPermissions(w http.ResponseWriter, r *http.Request, u *user) error {
	var items []obj
	for _, p := range s.b.Meta().Snapshot().Topics {
		if p.VHost == r.PathValue("vhost") && p.User == r.PathValue("user") {
			items = append(items, topicObj(p))
		}
	}
	if len(items) == 0 {
		return errNotFound()
	}
	return writeList(w, r, items)
}

func (s *Server) putTopicPermission(w http.ResponseWriter, r *http.Request, u *user) error {
	vhost, name := r.PathValue("vhost"), r.PathValue("user")
	var body struct {
		Exchange *string `json:"exchange"`
		Write    *string `json:"write"`
		Read     *string `json:"read"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body.Exchange == nil || body.Write == nil || body.Read == nil {
		return errBadRequest("exchange, write and read must all be set")
	}
	for _, p := range []string{*body.Write, *body.Read} {
		if err := auth.ValidPattern(p); err != nil {
			return errBadRequest("%v", err)
		}
	}
	if !s.b.Meta().VHostExists(vhost) {
		return errBadRequest("vhost_not_found: %s", vhost)
	}
	if _, ok := s.b.Meta().User(name); !ok {
		return errBadRequest("user_not_found: %s", name)
	}
	_, exists := s.b.Meta().TopicPermission(name, vhost, *body.Exchange)
	p := meta.TopicPermission{User: name, VHost: vhost, Exchange: *body.Exchange, Write: *body.Write, Read: *body.Read}
	if err := s.b.Meta().SetTopicPermission(r.Context(), p); err != nil {
		return err
	}
	return created(w, !exists)
}

func (s *Server) deleteTopicPermissions(w http.ResponseWriter, r *http.Request, u *user) error {
	return deleted(w, s.b.Meta().ClearTopicPermissions(r.Context(), r.PathValue("user"), r.PathValue("vhost"), r.PathValue("exchange")))
}

// ---- vhost and user limits

// limitNames are the limits each kind of object takes.
var limitNames = map[string][]string{"vhost": {"max-connections", "max-queues"}, "user": {"max-connections", "max-channels"}}

func (s *Server) listVHostLimits(w http.ResponseWriter, r *http.Request, u *user) error {
	only := ""
	if r.PathValue("vhost") != "" {
		v, err := s.vhostParam(r, u)
		if err != nil {
			return err
		}
		only = v
	}
	var items []obj
	for _, v := range s.b.Meta().Snapshot().VHosts {
		if (only == "" || v.Name == only) && s.canSee(u, v.Name) && len(v.Limits) > 0 {
			items = append(items, obj{"vhost": v.Name, "value": v.Limits})
		}
	}
	return writeList(w, r, items)
}

// limitValue reads a PUT's {"value": n} for a known limit, or nil for a
// DELETE.
func limitValue(r *http.Request, kind string) (*int64, error) {
	name := r.PathValue("name")
	if !slices.Contains(limitNames[kind], name) {
		return nil, errBadRequest("unknown %s limit '%s' (known: %s)", kind, name, strings.Join(limitNames[kind], ", "))
	}
	if r.Method == http.MethodDelete {
		return nil, nil
	}
	var body struct {
		Value *int64 `json:"value"`
	}
	if err := readJSON(r, &body); err != nil {
		return nil, err
	}
	if body.Value == nil {
		return nil, errBadRequest("value is required")
	}
	return body.Value, nil
}

func withLimit(limits map[string]int64, name string, v *int64) map[string]int64 {
	out := map[string]int64{}
	for k, x := range limits {
		out[k] = x
	}
	if v == nil {
		delete(out, name)
	} else {
		out[name] = *v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func (s *Server) setVHostLimit(w http.ResponseWriter, r *http.Request, u *user) error {
	v, ok := s.b.Meta().VHost(r.PathValue("vhost"))
	if !ok {
		return errNotFound()
	}
	val, err := limitValue(r, "vhost")
	if err != nil {
		return err
	}
	v.Limits = withLimit(v.Limits, r.PathValue("name"), val)
	if err := s.b.Meta().PutVHost(r.Context(), v); err != nil {
		return err
	}
	return noContent(w)
}

func (s *Server) listUserLimits(w http.ResponseWriter, r *http.Request, u *user) error {
	only := r.PathValue("user")
	var items []obj
	for _, usr := range s.b.Meta().Snapshot().Users {
		if (only == "" || usr.Name == only) && len(usr.Limits) > 0 {
			items = append(items, obj{"user": usr.Name, "value": usr.Limits})
		}
	}
	return writeList(w, r, items)
}

func (s *Server) setUserLimit(w http.ResponseWriter, r *http.Request, u *user) error {
	usr, ok := s.b.Meta().User(r.PathValue("user"))
	if !ok {
		return errNotFound()
	}
	val, err := limitValue(r, "user")
	if err != nil {
		return err
	}
	usr.Limits = withLimit(usr.Limits, r.PathValue("name"), val)
	if err := s.b.Meta().PutUser(r.Context(), usr); err != nil {
		return err
	}
	return noContent(w)
}
