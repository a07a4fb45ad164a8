package mgmt

import (
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/broker"
)

// rates turns counters sampled at intervals into per-second rates, the
// "_details": {"rate": ...} fields of the API. Sampling reads only the
// broker's counters, so it costs the message path nothing.
type rates struct {
	mu   sync.Mutex // guards below
	prev map[string]map[string]float64
	rate map[string]map[string]float64
	last time.Time
	// history keeps the node's recent samples for the web UI's charts.
	history []point
}

// point is one sample of the node's totals.
type point struct {
	At     time.Time          `json:"at"`
	Values map[string]float64 `json:"values"`
	Rates  map[string]float64 `json:"rates"`
}

// historyLen is how many samples the charts get: ten minutes at the
// default interval.
const historyLen = 120

func newRates() *rates {
	return &rates{prev: map[string]map[string]float64{}, rate: map[string]map[string]float64{}}
}

func countsFields(c broker.MessageCounts) map[string]float64 {
	return map[string]float64{
		"publish":           float64(c.Publish),
		"confirm":           float64(c.Confirm),
		"deliver":           float64(c.Deliver),
		"deliver_no_ack":    float64(c.DeliverNoAck),
		"get":               float64(c.Get),
		"get_no_ack":        float64(c.GetNoAck),
		"deliver_get":       float64(c.Deliver + c.DeliverNoAck + c.Get + c.GetNoAck),
		"ack":               float64(c.Ack),
		"redeliver":         float64(c.Redeliver),
		"return_unroutable": float64(c.ReturnUnroutable),
		"drop_unroutable":   float64(c.DropUnroutable),
	}
}

func queueFields(q broker.QueueInfo) map[string]float64 {
	st := q.Stats
	return map[string]float64{
		"publish":                 float64(st.Published),
		"deliver":                 float64(st.Delivered),
		"get":                     float64(st.Got),
		"deliver_get":             float64(st.Delivered + st.Got),
		"ack":                     float64(st.Settled),
		"redeliver":               float64(st.Redelivered),
		"messages":                float64(st.Ready + st.Unacked),
		"messages_ready":          float64(st.Ready),
		"messages_unacknowledged": float64(st.Unacked),
	}
}

func queueKey(vhost, name string) string { return "q\x00" + vhost + "\x00" + name }

// sample reads every counter now.
func (r *rates) sample(b Broker) {
	cur := map[string]map[string]float64{}
	node := countsFields(b.MessageTotals(""))
	var ready, unacked float64
	for _, q := range b.Queues("") {
		f := queueFields(q)
		cur[queueKey(q.Def.VHost, q.Def.Name)] = f
		ready += f["messages_ready"]
		unacked += f["messages_unacknowledged"]
	}
	node["messages"] = ready + unacked
	node["messages_ready"] = ready
	node["messages_unacknowledged"] = unacked
	cur["node"] = node
	for _, c := range b.Connections() {
		cur["c\x00"+c.Name] = map[string]float64{"recv_oct": float64(c.RecvOct), "send_oct": float64(c.SendOct)}
	}
	for _, v := range b.Meta().Snapshot().VHosts {
		cur["v\x00"+v.Name] = countsFields(b.MessageTotals(v.Name))
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	dt := now.Sub(r.last).Seconds()
	rate := map[string]map[string]float64{}
	for k, f := range cur {
		p, ok := r.prev[k]
		if !ok || dt <= 0 || r.last.IsZero() {
			continue
		}
		rf := map[string]float64{}
		for name, v := range f {
			rf[name] = (v - p[name]) / dt
		}
		rate[k] = rf
	}
	r.prev, r.rate, r.last = cur, rate, now
	r.history = append(r.history, point{At: now, Values: node, Rates: rate["node"]})
	if len(r.history) > historyLen {
		r.history = append(r.history[:0], r.history[len(r.history)-historyLen:]...)
	}
}

// all returns the rates of one key.
func (r *rates) all(key string) map[string]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rate[key]
}

// points returns the node's sample history.
func (r *rates) points() []point {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]point(nil), r.history...)
}

// details is RabbitMQ's {"rate": x} object.
func details(rate float64) obj { return obj{"rate": rate} }

// withSamples adds the node's recent values of field to a details
// object, newest first, as RabbitMQ answers a request with msg_rates_age
// or lengths_age: the web UI draws its charts from them.
func withSamples(d obj, history []point, field string) obj {
	samples := make([]obj, 0, len(history))
	for i := len(history) - 1; i >= 0; i-- {
		samples = append(samples, obj{"timestamp": history[i].At.UnixMilli(), "sample": history[i].Values[field]})
	}
	d["samples"] = samples
	return d
}

// statsObj renders counters and their rates as message_stats.
func statsObj(values, rates map[string]float64, fields []string) obj {
	o := obj{}
	for _, f := range fields {
		v, ok := values[f]
		if !ok {
			continue
		}
		o[f] = uint64(v)
		o[f+"_details"] = details(rates[f])
	}
	return o
}

// channelFields and queueStatFields are the message_stats each object
// reports, as in RabbitMQ.
var (
	channelFields   = []string{"publish", "confirm", "deliver", "deliver_no_ack", "get", "get_no_ack", "deliver_get", "ack", "redeliver", "return_unroutable", "drop_unroutable"}
	queueStatFields = []string{"publish", "deliver", "get", "deliver_get", "ack", "redeliver"}
)
