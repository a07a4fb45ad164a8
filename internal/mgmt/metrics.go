package mgmt

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/warren-mq/warren/internal/broker"
)

// Metrics serves Prometheus metrics with the names rabbitmq_prometheus
// uses, so that existing dashboards and alerts read them: /metrics sums
// each metric over all objects, /metrics/per-object labels each queue,
// channel and connection. It reads the same counters as the API.
type Metrics struct {
	b       Broker
	version string
}

// NewMetrics returns the metrics handler of a node.
func NewMetrics(b Broker, version string) *Metrics {
	return &Metrics{b: b, version: version}
}

// ServeHTTP implements http.Handler.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var perObject bool
	switch r.URL.Path {
	case "/metrics":
	case "/metrics/per-object":
		perObject = true
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	bw := bufio.NewWriter(w)
	m.write(bw, perObject)
	bw.Flush()
}

// expo writes the Prometheus text format.
type expo struct {
	w *bufio.Writer
}

func (e expo) family(name, typ, help string) {
	fmt.Fprintf(e.w, "# TYPE %s %s\n# HELP %s %s\n", name, typ, name, help)
}

func (e expo) sample(name string, labels []string, v float64) {
	e.w.WriteString(name)
	if len(labels) > 0 {
		e.w.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				e.w.WriteByte(',')
			}
			e.w.WriteString(labels[i])
			e.w.WriteString(`="`)
			e.w.WriteString(escapeLabel(labels[i+1]))
			e.w.WriteByte('"')
		}
		e.w.WriteByte('}')
	}
	e.w.WriteByte(' ')
	e.w.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	e.w.WriteByte('\n')
}

func escapeLabel(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// objMetric is one per-object metric: a value for each object.
type objMetric struct {
	name, typ, help string
	value           func(i int) float64
}

// series writes a family either summed (aggregated) or per object.
func (e expo) series(perObject bool, n int, labels func(i int) []string, ms []objMetric) {
	for _, m := range ms {
		e.family(m.name, m.typ, m.help)
		if !perObject {
			sum := 0.0
			for i := 0; i < n; i++ {
				sum += m.value(i)
			}
			e.sample(m.name, nil, sum)
			continue
		}
		for i := 0; i < n; i++ {
			e.sample(m.name, labels(i), m.value(i))
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (m *Metrics) write(w *bufio.Writer, perObject bool) {
	e := expo{w}
	node := m.b.NodeName()
	res := m.b.Resources()
	conns := m.b.Connections()
	var network []broker.ConnectionInfo
	ids := map[string]string{}
	for _, c := range conns {
		if !c.Direct {
			network = append(network, c)
			ids[c.Name] = c.ID
		}
	}
	var chans []broker.ChannelInfo
	for _, c := range m.b.Channels() {
		if _, ok := ids[c.Connection]; ok {
			chans = append(chans, c)
		}
	}
	queues := m.b.Queues("")
	consumers := m.b.Consumers("")
	totals := m.b.MessageTotals("")

	e.family("rabbitmq_build_info", "untyped", "warren and Go version info")
	e.sample("rabbitmq_build_info", []string{"rabbitmq_version", m.version, "prometheus_plugin_version", m.version, "prometheus_client_version", m.version, "erlang_version", runtime.Version()}, 1)
	e.family("rabbitmq_identity_info", "untyped", "Node and cluster names")
	e.sample("rabbitmq_identity_info", []string{"rabbitmq_node", node, "rabbitmq_cluster", m.b.ClusterName(), "rabbitmq_cluster_permanent_id", clusterID(m.b)}, 1)

	gauges := []struct {
		name, help string
		v          float64
	}{
		{"rabbitmq_connections", "Connections currently open", float64(len(network))},
		{"rabbitmq_channels", "Channels currently open", float64(len(chans))},
		{"rabbitmq_consumers", "Consumers currently connected", float64(len(consumers))},
		{"rabbitmq_queues", "Queues available", float64(len(queues))},
		{"rabbitmq_process_resident_memory_bytes", "Memory used in bytes", float64(res.MemUsed)},
		{"rabbitmq_resident_memory_limit_bytes", "Memory high watermark in bytes", float64(res.MemLimit)},
		{"rabbitmq_disk_space_available_bytes", "Disk space available in bytes", float64(res.DiskFree)},
		{"rabbitmq_disk_space_available_limit_bytes", "Free disk space low watermark in bytes", float64(res.DiskFreeLimit)},
		{"rabbitmq_process_open_fds", "Open file descriptors", float64(broker.OpenFDs())},
		{"rabbitmq_process_max_fds", "Open file descriptors limit", float64(broker.FDLimit())},
		{"rabbitmq_process_open_tcp_sockets", "Open TCP sockets", float64(len(network))},
		{"rabbitmq_erlang_uptime_seconds", "Node uptime", nodeUptime(m.b)},
		{"rabbitmq_global_consumers", "Current number of consumers", float64(len(consumers))},
	}
	for _, g := range gauges {
		e.family(g.name, "gauge", g.help)
		e.sample(g.name, nil, g.v)
	}
	e.family("rabbitmq_alarms_memory_used_watermark", "untyped", "is 1 if the memory watermark alarm is in effect")
	e.sample("rabbitmq_alarms_memory_used_watermark", nil, b2f(res.MemAlarm))
	e.family("rabbitmq_alarms_free_disk_space_watermark", "untyped", "is 1 if the free disk space alarm is in effect")
	e.sample("rabbitmq_alarms_free_disk_space_watermark", nil, b2f(res.DiskAlarm))
	e.family("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch in seconds")
	e.sample("process_start_time_seconds", nil, float64(m.b.Started().Unix()))

	global := []struct {
		name, help string
		v          uint64
	}{
		{"rabbitmq_global_messages_received_total", "Total number of messages received from publishers", totals.Publish},
		{"rabbitmq_global_messages_confirmed_total", "Total number of messages confirmed to publishers", totals.Confirm},
		{"rabbitmq_global_messages_routed_total", "Total number of messages routed to queues", totals.Publish - min(totals.Publish, totals.DropUnroutable+totals.ReturnUnroutable)},
		{"rabbitmq_global_messages_unroutable_dropped_total", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", totals.DropUnroutable},
		{"rabbitmq_global_messages_unroutable_returned_total", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", totals.ReturnUnroutable},
		{"rabbitmq_global_messages_delivered_total", "Total number of messages delivered to consumers", totals.Deliver + totals.DeliverNoAck + totals.Get + totals.GetNoAck},
		{"rabbitmq_global_messages_delivered_consume_manual_ack_total", "Total number of messages delivered to consumers using basic.consume with manual acknowledgment", totals.Deliver},
		{"rabbitmq_global_messages_delivered_consume_auto_ack_total", "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment", totals.DeliverNoAck},
		{"rabbitmq_global_messages_delivered_get_manual_ack_total", "Total number of messages delivered to consumers using basic.get with manual acknowledgment", totals.Get},
		{"rabbitmq_global_messages_delivered_get_auto_ack_total", "Total number of messages delivered to consumers using basic.get with automatic acknowledgment", totals.GetNoAck},
		{"rabbitmq_global_messages_acknowledged_total", "Total number of message acknowledgements received from consumers", totals.Ack},
		{"rabbitmq_global_messages_redelivered_total", "Total number of messages redelivered to consumers", totals.Redeliver},
	}
	for _, g := range global {
		e.family(g.name, "counter", g.help)
		e.sample(g.name, []string{"protocol", "amqp091"}, float64(g.v))
	}

	e.series(perObject, len(queues), func(i int) []string {
		return []string{"vhost", queues[i].Def.VHost, "queue", queues[i].Def.Name}
	}, []objMetric{
		{"rabbitmq_queue_messages_ready", "gauge", "Messages ready to be delivered to consumers", func(i int) float64 { return float64(queues[i].Stats.Ready) }},
		{"rabbitmq_queue_messages_unacked", "gauge", "Messages delivered to consumers but not yet acknowledged", func(i int) float64 { return float64(queues[i].Stats.Unacked) }},
		{"rabbitmq_queue_messages", "gauge", "Sum of ready and unacknowledged messages - total queue depth", func(i int) float64 {
			return float64(queues[i].Stats.Ready + queues[i].Stats.Unacked)
		}},
		{"rabbitmq_queue_messages_ready_bytes", "gauge", "Size in bytes of ready messages", func(i int) float64 { return float64(queues[i].Stats.ReadyBytes) }},
		{"rabbitmq_queue_messages_ram", "gauge", "Ready and unacknowledged messages stored in memory", func(i int) float64 {
			return float64(queues[i].Stats.Ready - queues[i].Stats.PagedOut + queues[i].Stats.Unacked)
		}},
		{"rabbitmq_queue_messages_ram_bytes", "gauge", "Size in bytes of ready and unacknowledged messages stored in memory", func(i int) float64 {
			return float64(queues[i].Stats.ReadyBytes - queues[i].Stats.PagedOutBytes)
		}},
		{"rabbitmq_queue_messages_paged_out", "gauge", "Messages paged out to disk", func(i int) float64 { return float64(queues[i].Stats.PagedOut) }},
		{"rabbitmq_queue_messages_paged_out_bytes", "gauge", "Size in bytes of messages paged out to disk", func(i int) float64 { return float64(queues[i].Stats.PagedOutBytes) }},
		{"rabbitmq_queue_consumers", "gauge", "Consumers on a queue", func(i int) float64 { return float64(queues[i].Stats.Consumers) }},
		{"rabbitmq_queue_messages_published_total", "counter", "Total number of messages published to queues", func(i int) float64 { return float64(queues[i].Stats.Published) }},
		{"warren_queue_mirrors", "gauge", "Mirrors of a queue led from this node", func(i int) float64 {
			if m := queues[i].Def.Mirroring; m != nil {
				return float64(len(m.Mirrors))
			}
			return 0
		}},
		{"warren_queue_mirrors_in_sync", "gauge", "Mirrors of a queue led from this node that hold every message it has confirmed", func(i int) float64 {
			if m := queues[i].Def.Mirroring; m != nil {
				return float64(len(m.InSync))
			}
			return 0
		}},
	})
	e.series(perObject, len(network), func(i int) []string {
		return []string{"channel", "<" + node + "." + network[i].ID + ">"}
	}, []objMetric{
		{"rabbitmq_connection_incoming_bytes_total", "counter", "Total number of bytes received on a connection", func(i int) float64 { return float64(network[i].RecvOct) }},
		{"rabbitmq_connection_outgoing_bytes_total", "counter", "Total number of bytes sent on a connection", func(i int) float64 { return float64(network[i].SendOct) }},
		{"rabbitmq_connection_incoming_packets_total", "counter", "Total number of packets received on a connection", func(i int) float64 { return float64(network[i].RecvCnt) }},
		{"rabbitmq_connection_outgoing_packets_total", "counter", "Total number of packets sent on a connection", func(i int) float64 { return float64(network[i].SendCnt) }},
		{"rabbitmq_connection_channels", "gauge", "Channels on a connection", func(i int) float64 { return float64(network[i].Channels) }},
	})
	e.series(perObject, len(chans), func(i int) []string {
		return []string{"channel", "<" + node + "." + ids[chans[i].Connection] + "." + strconv.Itoa(int(chans[i].Number)) + ">"}
	}, []objMetric{
		{"rabbitmq_channel_consumers", "gauge", "Consumers on a channel", func(i int) float64 { return float64(chans[i].Consumers) }},
		{"rabbitmq_channel_messages_unacked", "gauge", "Delivered but not yet acknowledged messages", func(i int) float64 { return float64(chans[i].Unacked) }},
		{"rabbitmq_channel_messages_unconfirmed", "gauge", "Published but not yet confirmed messages", func(i int) float64 { return float64(chans[i].Unconfirmed) }},
		{"rabbitmq_channel_prefetch", "gauge", "Total limit of unacknowledged messages for all consumers on a channel", func(i int) float64 { return float64(chans[i].GlobalPrefetch) }},
		{"rabbitmq_channel_messages_published_total", "counter", "Total number of messages published into an exchange on a channel", func(i int) float64 { return float64(chans[i].Counts.Publish) }},
		{"rabbitmq_channel_messages_confirmed_total", "counter", "Total number of messages published into an exchange and confirmed on the channel", func(i int) float64 { return float64(chans[i].Counts.Confirm) }},
		{"rabbitmq_channel_messages_unroutable_returned_total", "counter", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", func(i int) float64 { return float64(chans[i].Counts.ReturnUnroutable) }},
		{"rabbitmq_channel_messages_unroutable_dropped_total", "counter", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", func(i int) float64 { return float64(chans[i].Counts.DropUnroutable) }},
		{"rabbitmq_channel_messages_delivered_total", "counter", "Total number of messages delivered to consumers in automatic acknowledgement mode", func(i int) float64 { return float64(chans[i].Counts.DeliverNoAck) }},
		{"rabbitmq_channel_messages_delivered_ack_total", "counter", "Total number of messages delivered to consumers in manual acknowledgement mode", func(i int) float64 { return float64(chans[i].Counts.Deliver) }},
		{"rabbitmq_channel_messages_redelivered_total", "counter", "Total number of messages redelivered to consumers", func(i int) float64 { return float64(chans[i].Counts.Redeliver) }},
		{"rabbitmq_channel_messages_acked_total", "counter", "Total number of messages acknowledged by consumers", func(i int) float64 { return float64(chans[i].Counts.Ack) }},
		{"rabbitmq_channel_get_ack_total", "counter", "Total number of messages fetched with basic.get in manual acknowledgement mode", func(i int) float64 { return float64(chans[i].Counts.Get) }},
		{"rabbitmq_channel_get_total", "counter", "Total number of messages fetched with basic.get in automatic acknowledgement mode", func(i int) float64 { return float64(chans[i].Counts.GetNoAck) }},
	})
	sort.Slice(consumers, func(i, j int) bool { return consumers[i].Tag < consumers[j].Tag })
	e.series(perObject, len(consumers), func(i int) []string {
		c := consumers[i]
		return []string{"vhost", c.VHost, "queue", c.Queue, "channel", "<" + node + "." + ids[c.Connection] + "." + strconv.Itoa(int(c.Channel)) + ">", "consumer_tag", c.Tag}
	}, []objMetric{
		{"rabbitmq_consumer_prefetch", "gauge", "Limit of unacknowledged messages for each consumer", func(i int) float64 { return float64(consumers[i].Prefetch) }},
	})
}

func nodeUptime(b Broker) float64 {
	return float64(int64(time.Since(b.Started()).Seconds()))
}

// clusterID is the cluster's permanent id, the internal_cluster_id global
// parameter.
func clusterID(b Broker) string {
	var id string
	if p, ok := b.Meta().GlobalParameter("internal_cluster_id"); ok {
		json.Unmarshal(p.Value, &id)
	}
	return id
}
