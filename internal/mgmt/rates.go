package mgmt

import (
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/broker"
)

// rates turns counters sampled at intervals into per-second rates, the
// "_details": {"rate": ...} fields of the API. Sampling reads only the
// broker's counters, so it costs the message path nothing; it keeps two
// fixed-size samples per queue and connection, so that it allocates
// nothing per object once they are known.
type rates struct {
	mu      sync.Mutex // guards below
	queues  map[string]*series
	conns   map[string]*series
	vhosts  map[string]*series
	node    *series
	totals  *series   // queue totals of the node
	gen     uint64    // bumped per sample; stale objects are forgotten
	at, was time.Time // times of the last two samples
	// history keeps the node's recent samples for the web UI's charts.
	history []point
}

// Field order of each sample kind.
var (
	queueSampleFields = [...]string{"publish", "deliver", "get", "deliver_get", "ack", "redeliver", "messages", "messages_ready", "messages_unacknowledged"}
	connSampleFields  = [...]string{"recv_oct", "send_oct"}
	countSampleFields = [...]string{"publish", "confirm", "deliver", "deliver_no_ack", "get", "get_no_ack", "deliver_get", "ack", "redeliver", "return_unroutable", "drop_unroutable"}
	totalSampleFields = [...]string{"messages", "messages_ready", "messages_unacknowledged"}
)

type (
	queueSample [len(queueSampleFields)]float64
	connSample  [len(connSampleFields)]float64
	countSample [len(countSampleFields)]float64
	totalSample [len(totalSampleFields)]float64
)

// series is one object's last two samples, allocated once.
type series struct {
	prev, cur []float64
	gen       uint64 // the sample that last saw the object
	fresh     bool   // only one sample so far
}

func newSeries(n int) *series {
	return &series{prev: make([]float64, n), cur: make([]float64, n)}
}

func (s *series) push(v []float64, gen uint64) {
	copy(s.prev, s.cur)
	copy(s.cur, v)
	s.fresh = s.gen == 0
	s.gen = gen
}

// point is one sample of the node's totals.
type point struct {
	At     time.Time
	Values map[string]float64
}

// historyLen is how many samples the charts get: ten minutes at the
// default interval.
const historyLen = 120

func newRates() *rates {
	return &rates{queues: map[string]*series{}, conns: map[string]*series{}, vhosts: map[string]*series{},
		node: newSeries(len(countSampleFields)), totals: newSeries(len(totalSampleFields))}
}

func countsOf(c broker.MessageCounts) countSample {
	return countSample{float64(c.Publish), float64(c.Confirm), float64(c.Deliver), float64(c.DeliverNoAck), float64(c.Get), float64(c.GetNoAck),
		float64(c.Deliver + c.DeliverNoAck + c.Get + c.GetNoAck), float64(c.Ack), float64(c.Redeliver), float64(c.ReturnUnroutable), float64(c.DropUnroutable)}
}

func queueSampleOf(q broker.QueueInfo) queueSample {
	st := q.Stats
	return queueSample{float64(st.Published), float64(st.Delivered), float64(st.Got), float64(st.Delivered + st.Got), float64(st.Settled),
		float64(st.Redelivered), float64(st.Ready + st.Unacked), float64(st.Ready), float64(st.Unacked)}
}

func queueKey(vhost, name string) string { return vhost + "\x00" + name }

// sample reads every counter now.
func (r *rates) sample(b Broker) {
	queues := b.Queues("")
	conns := b.Connections()
	node := countsOf(b.MessageTotals(""))
	vhosts := b.Meta().Snapshot().VHosts
	vcounts := make([]countSample, len(vhosts))
	for i, v := range vhosts {
		vcounts[i] = countsOf(b.MessageTotals(v.Name))
	}
	now := time.Now()

	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	var totals totalSample
	for _, q := range queues {
		key := queueKey(q.Def.VHost, q.Def.Name)
		s := r.queues[key]
		if s == nil {
			s = newSeries(len(queueSampleFields))
			r.queues[key] = s
		}
		v := queueSampleOf(q)
		s.push(v[:], r.gen)
		totals[0] += v[6]
		totals[1] += v[7]
		totals[2] += v[8]
	}
	for _, c := range conns {
		s := r.conns[c.Name]
		if s == nil {
			s = newSeries(len(connSampleFields))
			r.conns[c.Name] = s
		}
		v := connSample{float64(c.RecvOct), float64(c.SendOct)}
		s.push(v[:], r.gen)
	}
	for i, v := range vhosts {
		s := r.vhosts[v.Name]
		if s == nil {
			s = newSeries(len(countSampleFields))
			r.vhosts[v.Name] = s
		}
		s.push(vcounts[i][:], r.gen)
	}
	r.node.push(node[:], r.gen)
	r.totals.push(totals[:], r.gen)
	forget(r.queues, r.gen)
	forget(r.conns, r.gen)
	forget(r.vhosts, r.gen)
	r.was, r.at = r.at, now

	values := map[string]float64{}
	for i, f := range countSampleFields {
		values[f] = node[i]
	}
	for i, f := range totalSampleFields {
		values[f] = totals[i]
	}
	r.history = append(r.history, point{At: now, Values: values})
	if len(r.history) > historyLen {
		r.history = append(r.history[:0], r.history[len(r.history)-historyLen:]...)
	}
}

func forget(m map[string]*series, gen uint64) {
	for k, s := range m {
		if s.gen != gen {
			delete(m, k)
		}
	}
}

// ratesOf works out per-second rates from an object's two samples; nil
// before there are two.
func ratesOf(r *rates, s *series, fields []string) map[string]float64 {
	if s == nil || s.fresh || r.was.IsZero() {
		return nil
	}
	dt := r.at.Sub(r.was).Seconds()
	if dt <= 0 {
		return nil
	}
	out := make(map[string]float64, len(fields))
	for i, f := range fields {
		out[f] = (s.cur[i] - s.prev[i]) / dt
	}
	return out
}

func (r *rates) queue(vhost, name string) map[string]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ratesOf(r, r.queues[queueKey(vhost, name)], queueSampleFields[:])
}

func (r *rates) conn(name string) map[string]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ratesOf(r, r.conns[name], connSampleFields[:])
}

func (r *rates) vhost(name string) map[string]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ratesOf(r, r.vhosts[name], countSampleFields[:])
}

// nodeRates returns the node's message rates and queue-total rates.
func (r *rates) nodeRates() map[string]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]float64{}
	for k, v := range ratesOf(r, r.node, countSampleFields[:]) {
		out[k] = v
	}
	for k, v := range ratesOf(r, r.totals, totalSampleFields[:]) {
		out[k] = v
	}
	return out
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

func countsFields(c broker.MessageCounts) map[string]float64 {
	s := countsOf(c)
	out := make(map[string]float64, len(s))
	for i, f := range countSampleFields {
		out[f] = s[i]
	}
	return out
}

func queueFields(q broker.QueueInfo) map[string]float64 {
	s := queueSampleOf(q)
	out := make(map[string]float64, len(s))
	for i, f := range queueSampleFields {
		out[f] = s[i]
	}
	return out
}

// channelFields and queueStatFields are the message_stats each object
// reports, as in RabbitMQ.
var (
	channelFields   = countSampleFields[:]
	queueStatFields = []string{"publish", "deliver", "get", "deliver_get", "ack", "redeliver"}
)
