package broker

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/meta"
	"github.com/warren-mq/warren/internal/policy"
	"github.com/warren-mq/warren/internal/queue"
)

// dest is the far end of a binding: a queue or an exchange, by name.
type dest struct {
	name       string
	isExchange bool
}

// exchange is an exchange's routing index, kept in step with its bindings
// by the meta observer. Guarded by its vhost's lock.
type exchange struct {
	def     meta.Exchange
	ae      string // alternate exchange, from the arguments or a policy; guarded by vhost.mu
	direct  map[string]map[dest]int
	fanout  map[dest]int
	topic   *topicTrie
	headers []headersBinding
}

type headersBinding struct {
	d      dest
	key    string // the binding's routing key, to remove the right one
	all    bool
	withX  bool
	args   amqp.Table
	source *meta.Binding
}

func newExchange(def meta.Exchange) *exchange {
	x := &exchange{def: def}
	switch def.Type {
	case "direct":
		x.direct = map[string]map[dest]int{}
	case "fanout":
		x.fanout = map[dest]int{}
	case "topic":
		x.topic = &topicTrie{}
	}
	return x
}

func bindingDest(b *meta.Binding) dest {
	return dest{name: b.Destination, isExchange: b.DestinationType == meta.DestExchange}
}

func (x *exchange) addBinding(b *meta.Binding) {
	d := bindingDest(b)
	switch x.def.Type {
	case "direct":
		m := x.direct[b.RoutingKey]
		if m == nil {
			m = map[dest]int{}
			x.direct[b.RoutingKey] = m
		}
		m[d]++
	case "fanout":
		x.fanout[d]++
	case "topic":
		x.topic.add(b.RoutingKey, d)
	case "headers":
		hb := headersBinding{d: d, key: b.RoutingKey, all: true, args: amqp.Table{}, source: b}
		for k, v := range b.Arguments.Table {
			if k == "x-match" {
				s, _ := v.(string)
				hb.all = s == "all" || s == "all-with-x"
				hb.withX = strings.HasSuffix(s, "-with-x")
				continue
			}
			hb.args[k] = v
		}
		x.headers = append(x.headers, hb)
	}
}

func (x *exchange) removeBinding(b *meta.Binding) {
	d := bindingDest(b)
	switch x.def.Type {
	case "direct":
		if m := x.direct[b.RoutingKey]; m != nil {
			if m[d]--; m[d] <= 0 {
				delete(m, d)
			}
			if len(m) == 0 {
				delete(x.direct, b.RoutingKey)
			}
		}
	case "fanout":
		if x.fanout[d]--; x.fanout[d] <= 0 {
			delete(x.fanout, d)
		}
	case "topic":
		x.topic.remove(b.RoutingKey, d)
	case "headers":
		for i, hb := range x.headers {
			if hb.d == d && hb.key == b.RoutingKey && sameTable(hb.source.Arguments.Table, b.Arguments.Table) {
				x.headers = append(x.headers[:i], x.headers[i+1:]...)
				break
			}
		}
	}
}

func sameTable(a, b amqp.Table) bool {
	return string(amqp.EncodeTable(a)) == string(amqp.EncodeTable(b))
}

// route calls fn for each destination the message goes to from x.
func (x *exchange) route(key string, headers func() amqp.Table, fn func(dest)) {
	switch x.def.Type {
	case "direct":
		for d := range x.direct[key] {
			fn(d)
		}
	case "fanout":
		for d := range x.fanout {
			fn(d)
		}
	case "topic":
		x.topic.match(key, fn)
	case "headers":
		if len(x.headers) == 0 {
			return
		}
		h := headers()
		for _, hb := range x.headers {
			if hb.matches(h) {
				fn(hb.d)
			}
		}
	}
}

func (hb *headersBinding) matches(h amqp.Table) bool {
	for k, want := range hb.args {
		if strings.HasPrefix(k, "x-") && !hb.withX {
			continue
		}
		got, ok := h[k]
		// A void binding value matches on the key's presence alone.
		ok = ok && (want == nil || equalValues(got, want))
		if hb.all && !ok {
			return false
		}
		if !hb.all && ok {
			return true
		}
	}
	return hb.all
}

// equalValues compares field values across integer and float widths, as
// RabbitMQ compares header values by value.
func equalValues(a, b any) bool {
	if fa, ok := number(a); ok {
		fb, ok := number(b)
		return ok && fa == fb
	}
	switch av := a.(type) {
	case []byte:
		bv, ok := b.([]byte)
		return ok && string(av) == string(bv)
	case string:
		if bv, ok := b.([]byte); ok {
			return av == string(bv)
		}
	}
	return fmt.Sprint(a) == fmt.Sprint(b) && fmt.Sprintf("%T", a) == fmt.Sprintf("%T", b)
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int8:
		return float64(n), true
	case uint8:
		return float64(n), true
	case int16:
		return float64(n), true
	case uint16:
		return float64(n), true
	case int32:
		return float64(n), true
	case uint32:
		return float64(n), true
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case float32:
		return float64(n), true
	case float64:
		if math.IsNaN(n) {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// vhost is a virtual host's runtime view: exchanges with their routing
// indexes and the queues that live on this node.
type vhost struct {
	name string

	mu        sync.RWMutex // guards exchanges, queues and remote
	exchanges map[string]*exchange
	queues    map[string]*localQueue
	// remote holds the queues whose messages live on other nodes.
	remote map[string]*remoteQueue
}

// localQueue is a queue's runtime state beside its definition.
type localQueue struct {
	*queue.Queue
	def     meta.Queue
	srv     *Server
	key     string                        // the store's key for the queue, queueKey(vhost, name)
	applied atomic.Pointer[appliedPolicy] // never nil once the queue is made
	expiry  queueExpiry
	repl    atomic.Pointer[leaderLog] // the journal while the queue has mirrors
}

// appliedPolicy is what a queue runs with after policies: its effective
// arguments and the policies they came from.
type appliedPolicy struct {
	args             amqp.Table
	policy, operator string // names; "" if none applies
	definition       map[string]any
}

// args returns the queue's effective arguments.
func (q *localQueue) args() amqp.Table { return q.applied.Load().args }

// applyPolicies works out the queue's settings from the vhost's policies
// and applies its limits.
func (q *localQueue) applyPolicies(pols []meta.Policy) {
	pol, op := policy.Match(pols, policy.Queues, q.def.Name)
	a := &appliedPolicy{args: policy.Effective(q.def.Arguments.Table, pol, op), definition: policy.Definition(pol, op)}
	if pol != nil {
		a.policy = pol.Name
	}
	if op != nil {
		a.operator = op.Name
	}
	q.applied.Store(a)
	q.SetLimits(limitsOf(a.args))
	q.setExpires(expiresOf(a.args))
}

// exchangeAE is an exchange's alternate exchange: its argument, or else
// the policy's.
func exchangeAE(def meta.Exchange, pols []meta.Policy) string {
	if ae, ok := def.Arguments.Table["alternate-exchange"].(string); ok {
		return ae
	}
	pol, _ := policy.Match(pols, policy.Exchanges, def.Name)
	if pol != nil {
		ae, _ := pol.Definition["alternate-exchange"].(string)
		return ae
	}
	return ""
}

func newVHost(name string) *vhost {
	return &vhost{name: name, exchanges: map[string]*exchange{}, queues: map[string]*localQueue{}, remote: map[string]*remoteQueue{}}
}

// maxRouteDepth bounds exchange-to-exchange hops, so a cycle of bindings
// ends.
const maxRouteDepth = 16

// route appends to out the queues on this node a message published to
// exchange xname with key reaches, and to remote those on other nodes,
// each once. ok is false when the exchange does not exist.
func (v *vhost) route(xname, key string, headers func() amqp.Table, out []*localQueue, remote []*remoteQueue) (_ []*localQueue, _ []*remoteQueue, ok bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if xname == "" {
		if q := v.queues[key]; q != nil {
			out = append(out, q)
		} else if rq := v.remote[key]; rq != nil {
			remote = append(remote, rq)
		}
		return out, remote, true
	}
	x := v.exchanges[xname]
	if x == nil {
		return out, remote, false
	}
	var seenX map[string]bool
	var walk func(x *exchange, depth int)
	walk = func(x *exchange, depth int) {
		x.route(key, headers, func(d dest) {
			if !d.isExchange {
				if q := v.queues[d.name]; q != nil {
					for _, o := range out {
						if o == q {
							return
						}
					}
					out = append(out, q)
				} else if rq := v.remote[d.name]; rq != nil {
					for _, o := range remote {
						if o == rq {
							return
						}
					}
					remote = append(remote, rq)
				}
				return
			}
			if depth >= maxRouteDepth {
				return
			}
			if seenX == nil {
				seenX = map[string]bool{x.def.Name: true}
			}
			if seenX[d.name] {
				return
			}
			seenX[d.name] = true
			if nx := v.exchanges[d.name]; nx != nil {
				walk(nx, depth+1)
			}
		})
	}
	walk(x, 0)
	// Unroutable: hand to the alternate exchange, and its alternate in
	// turn, as RabbitMQ does.
	for hops := 0; len(out) == 0 && len(remote) == 0 && hops < maxRouteDepth; hops++ {
		ae := x.ae
		if ae == "" || seenX[ae] {
			break
		}
		if seenX == nil {
			seenX = map[string]bool{x.def.Name: true}
		}
		seenX[ae] = true
		if x = v.exchanges[ae]; x == nil {
			break
		}
		walk(x, 0)
	}
	return out, remote, true
}
