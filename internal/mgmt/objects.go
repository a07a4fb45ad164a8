package mgmt

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/defs"
	"github.com/warren-mq/warren/internal/meta"
)

func hostPort(a net.Addr) (string, any) {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String(), ta.Port
	}
	if a == nil {
		return "", nil
	}
	return a.String(), nil
}

func exchangeObj(x meta.Exchange) obj {
	return obj{
		"name":                      x.Name,
		"vhost":                     x.VHost,
		"type":                      x.Type,
		"durable":                   x.Durable,
		"auto_delete":               x.AutoDelete,
		"internal":                  x.Internal,
		"arguments":                 defs.ArgsJSON(x.Arguments.Table),
		"user_who_performed_action": "",
	}
}

func (s *Server) queueObj(qi broker.QueueInfo, consumers []broker.ConsumerInfo, full bool) obj {
	d, st := qi.Def, qi.Stats
	rates := s.rates.queue(d.VHost, d.Name)
	values := queueFields(qi)
	o := obj{
		"name":                            d.Name,
		"vhost":                           d.VHost,
		"durable":                         d.Durable,
		"auto_delete":                     d.AutoDelete,
		"exclusive":                       d.Exclusive,
		"arguments":                       defs.ArgsJSON(d.Arguments.Table),
		"node":                            d.Node,
		"state":                           queueState(qi),
		"type":                            "classic",
		"consumers":                       st.Consumers,
		"messages":                        st.Ready + st.Unacked,
		"messages_details":                details(rates["messages"]),
		"messages_ready":                  st.Ready,
		"messages_ready_details":          details(rates["messages_ready"]),
		"messages_unacknowledged":         st.Unacked,
		"messages_unacknowledged_details": details(rates["messages_unacknowledged"]),
		"message_bytes":                   st.ReadyBytes,
		"message_bytes_ready":             st.ReadyBytes,
		"policy":                          nullIfEmpty(qi.Policy),
		"operator_policy":                 nullIfEmpty(qi.OperatorPolicy),
		"effective_policy_definition":     qi.Effective,
		"exclusive_consumer_tag":          nil,
		"single_active_consumer_tag":      nil,
		"recoverable_slaves":              nil,
		"message_stats":                   statsObj(values, rates, queueStatFields),
		"consumer_capacity":               capacity(st.Consumers),
		"consumer_utilisation":            capacity(st.Consumers),
		"head_message_timestamp":          nil,
		"messages_ram":                    st.Ready - st.PagedOut + st.Unacked,
		"messages_ready_ram":              st.Ready - st.PagedOut,
		"messages_unacknowledged_ram":     st.Unacked,
		"message_bytes_ram":               st.ReadyBytes - st.PagedOutBytes,
		"messages_paged_out":              st.PagedOut,
		"message_bytes_paged_out":         st.PagedOutBytes,
		"garbage_collection":              obj{},
	}
	if qi.ExclusiveOwner != "" {
		o["owner_pid_details"] = obj{"name": qi.ExclusiveOwner}
	}
	if m := d.Mirroring; m != nil {
		// As RabbitMQ's: present for mirrored queues only.
		o["slave_nodes"] = nonNil(m.Mirrors)
		o["synchronised_slave_nodes"] = nonNil(m.InSync)
	}
	for _, c := range consumers {
		if c.Exclusive {
			o["exclusive_consumer_tag"] = c.Tag
		}
		if c.Active && qi.Def.Arguments.Table["x-single-active-consumer"] == true {
			o["single_active_consumer_tag"] = c.Tag
		}
	}
	if full {
		cd := make([]obj, 0, len(consumers))
		for _, c := range consumers {
			cd = append(cd, s.consumerObj(c))
		}
		o["consumer_details"] = cd
		o["deliveries"] = []obj{}
		o["incoming"] = []obj{}
	}
	return o
}

// capacity is 1 when a queue has consumers to take what arrives; the
// broker delivers as soon as a consumer has room, so there is no idle
// time to report.
func capacity(consumers int) float64 {
	if consumers > 0 {
		return 1
	}
	return 0
}

func (s *Server) connectionObj(c broker.ConnectionInfo) obj {
	host, port := hostPort(c.Local)
	peerHost, peerPort := hostPort(c.Peer)
	rates := s.rates.conn(c.Name)
	typ := "network"
	if c.Direct {
		typ = "direct"
	}
	state := "running"
	if c.Blocked {
		state = "blocked"
	}
	o := obj{
		"name":                      c.Name,
		"node":                      c.Node,
		"type":                      typ,
		"user":                      c.User,
		"user_who_performed_action": c.User,
		"vhost":                     c.VHost,
		"host":                      host,
		"port":                      port,
		"peer_host":                 peerHost,
		"peer_port":                 peerPort,
		"protocol":                  "AMQP 0-9-1",
		"auth_mechanism":            c.AuthMechanism,
		"client_properties":         defs.ArgsJSON(c.ClientProperties),
		"connected_at":              msTime(c.ConnectedAt),
		"channels":                  c.Channels,
		"frame_max":                 c.FrameMax,
		"channel_max":               c.ChannelMax,
		"timeout":                   int(c.Heartbeat / time.Second),
		"recv_oct":                  c.RecvOct,
		"recv_oct_details":          details(rates["recv_oct"]),
		"recv_cnt":                  c.RecvCnt,
		"send_oct":                  c.SendOct,
		"send_oct_details":          details(rates["send_oct"]),
		"send_cnt":                  c.SendCnt,
		"send_pend":                 0,
		"ssl":                       c.TLS != nil,
		"state":                     state,
		"peer_cert_issuer":          nil,
		"peer_cert_subject":         nil,
		"peer_cert_validity":        nil,
		"ssl_protocol":              nil,
		"ssl_key_exchange":          nil,
		"ssl_cipher":                nil,
		"ssl_hash":                  nil,
		"garbage_collection":        obj{},
	}
	if t := c.TLS; t != nil {
		o["ssl_protocol"], o["ssl_cipher"] = t.Protocol, t.Cipher
		if t.PeerCert {
			o["peer_cert_subject"], o["peer_cert_issuer"] = t.Subject, t.Issuer
			o["peer_cert_validity"] = t.Validity()
		}
	}
	if name, ok := c.ClientProperties["connection_name"].(string); ok {
		o["user_provided_name"] = name
	}
	return o
}

func (s *Server) channelObj(c broker.ChannelInfo) obj {
	peerHost, peerPort := hostPort(c.Peer)
	state := "running"
	return obj{
		"name":                      broker.ChannelName(c.Connection, c.Number),
		"number":                    c.Number,
		"node":                      c.Node,
		"user":                      c.User,
		"user_who_performed_action": c.User,
		"vhost":                     c.VHost,
		"connection_details":        obj{"name": c.Connection, "peer_host": peerHost, "peer_port": peerPort},
		"confirm":                   c.Confirm,
		"transactional":             c.Transactional,
		"prefetch_count":            c.Prefetch,
		"global_prefetch_count":     c.GlobalPrefetch,
		"consumer_count":            c.Consumers,
		"messages_unacknowledged":   c.Unacked,
		"messages_unconfirmed":      c.Unconfirmed,
		"messages_uncommitted":      0,
		"acks_uncommitted":          0,
		"pending_raft_commands":     0,
		"state":                     state,
		"message_stats":             statsObj(countsFields(c.Counts), nil, channelFields),
		"garbage_collection":        obj{},
	}
}

func (s *Server) consumerObj(c broker.ConsumerInfo) obj {
	peerHost, peerPort := hostPort(c.Peer)
	return obj{
		"consumer_tag": c.Tag,
		"queue":        obj{"name": c.Queue, "vhost": c.VHost},
		"channel_details": obj{
			"name":            broker.ChannelName(c.Connection, c.Channel),
			"number":          c.Channel,
			"connection_name": c.Connection,
			"peer_host":       peerHost,
			"peer_port":       peerPort,
			"user":            c.User,
			"node":            c.Node,
		},
		"ack_required":    c.AckRequired,
		"exclusive":       c.Exclusive,
		"prefetch_count":  c.Prefetch,
		"arguments":       defs.ArgsJSON(c.Arguments),
		"active":          c.Active,
		"activity_status": activity(c),
	}
}

func bindingObj(b meta.Binding) obj {
	return obj{
		"source":           b.Source,
		"vhost":            b.VHost,
		"destination":      b.Destination,
		"destination_type": b.DestinationType,
		"routing_key":      b.RoutingKey,
		"arguments":        defs.ArgsJSON(b.Arguments.Table),
		"properties_key":   propertiesKey(b.RoutingKey, b.Arguments.Table),
	}
}

// defaultBinding is the binding RabbitMQ shows from the default exchange
// to every queue, under the queue's name.
func defaultBinding(q meta.Queue) meta.Binding {
	return meta.Binding{VHost: q.VHost, Destination: q.Name, DestinationType: meta.DestQueue, RoutingKey: q.Name}
}

// propertiesKey names a binding among those between the same two ends, in
// the form RabbitMQ uses in URLs: the escaped routing key, then "~" and a
// hash of the arguments if there are any; "~" alone for an empty key.
func propertiesKey(key string, args amqp.Table) string {
	if key == "" && len(args) == 0 {
		return "~"
	}
	k := strings.ReplaceAll(url.QueryEscape(key), "~", "%7E")
	if len(args) == 0 {
		return k
	}
	h := fnv.New32a()
	h.Write(amqp.EncodeTable(args))
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], h.Sum32())
	return k + "~" + base64.RawURLEncoding.EncodeToString(sum[:])
}

func vhostObj(v meta.VHost, node string) obj {
	tags := v.Tags
	if tags == nil {
		tags = []string{}
	}
	return obj{
		"name":               v.Name,
		"description":        v.Description,
		"tags":               tags,
		"metadata":           obj{"description": v.Description, "tags": tags},
		"tracing":            false,
		"default_queue_type": "classic",
		"cluster_state":      obj{node: "running"},
	}
}

func userObj(u meta.User) obj {
	tags := u.Tags
	if tags == nil {
		tags = []string{}
	}
	return obj{
		"name":              u.Name,
		"password_hash":     u.PasswordHash,
		"hashing_algorithm": u.HashingAlgorithm,
		"tags":              tags,
		"limits":            limitsObj(u.Limits),
	}
}

func permissionObj(p meta.Permission) obj {
	return obj{"user": p.User, "vhost": p.VHost, "configure": p.Configure, "write": p.Write, "read": p.Read}
}

// flexBool accepts true/false as JSON booleans or as strings, as
// RabbitMQ's API does: rabbitmqadmin sends "durable": "false".
type flexBool bool

// UnmarshalJSON implements json.Unmarshaler.
func (b *flexBool) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	switch t := v.(type) {
	case bool:
		*b = flexBool(t)
		return nil
	case string:
		switch strings.ToLower(t) {
		case "true":
			*b = true
			return nil
		case "false", "":
			*b = false
			return nil
		}
	case nil:
		*b = false
		return nil
	}
	return fmt.Errorf("expected a boolean, got %s", data)
}

// flexInt accepts a whole number as a JSON number or a string.
type flexInt int

// UnmarshalJSON implements json.Unmarshaler.
func (n *flexInt) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	switch t := v.(type) {
	case float64:
		*n = flexInt(t)
		return nil
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(t))
		if err != nil {
			return fmt.Errorf("expected an integer, got %q", t)
		}
		*n = flexInt(i)
		return nil
	}
	return fmt.Errorf("expected an integer, got %s", data)
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func policyObj(p meta.Policy) obj {
	return obj{"vhost": p.VHost, "name": p.Name, "pattern": p.Pattern, "apply-to": p.ApplyTo, "definition": p.Definition, "priority": p.Priority}
}

func activity(c broker.ConsumerInfo) string {
	if c.Active {
		return "up"
	}
	return "waiting"
}

func limitsObj(l map[string]int64) obj {
	out := obj{}
	for k, v := range l {
		out[k] = v
	}
	return out
}

// queueState is a queue's state as RabbitMQ names it: "down" when its
// node cannot be reached.
func queueState(qi broker.QueueInfo) string {
	if qi.Down {
		return "down"
	}
	return "running"
}

// nonNil is ss, or an empty list for JSON's sake.
func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}
