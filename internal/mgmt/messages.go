package mgmt

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/defs"
)

func writeJSONBody(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// publishBody is POST /api/exchanges/{vhost}/{name}/publish.
type publishBody struct {
	RoutingKey      string         `json:"routing_key"`
	Payload         string         `json:"payload"`
	PayloadEncoding string         `json:"payload_encoding"`
	Properties      map[string]any `json:"properties"`
}

// publish sends one message, mandatory and confirmed, and answers whether
// it reached a queue.
func (s *Server) publish(w http.ResponseWriter, r *http.Request, u *user) error {
	v, err := s.vhostParam(r, u)
	if err != nil {
		return err
	}
	var body publishBody
	if err := readJSON(r, &body); err != nil {
		return err
	}
	var payload []byte
	switch body.PayloadEncoding {
	case "", "string":
		payload = []byte(body.Payload)
	case "base64":
		if payload, err = base64.StdEncoding.DecodeString(body.Payload); err != nil {
			return errBadRequest("payload is not valid base64")
		}
	default:
		return errBadRequest("invalid payload_encoding '%s' (string or base64)", body.PayloadEncoding)
	}
	msg, err := publishing(body.Properties)
	if err != nil {
		return err
	}
	msg.Body = payload
	name := exchangeName(r)
	routed := false
	err = s.withChannel(u, v, func(ch *amqp091.Channel) error {
		returns := ch.NotifyReturn(make(chan amqp091.Return, 1))
		if err := ch.Confirm(false); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, name, body.RoutingKey, true, false, msg)
		if err != nil {
			return err
		}
		if _, err := dc.WaitContext(ctx); err != nil {
			return err
		}
		// A return comes before the confirm on the wire, and the client
		// hands it over before it reads the confirm.
		select {
		case <-returns:
		default:
			routed = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, obj{"routed": routed})
}

// publishing turns the API's properties object into message properties.
func publishing(p map[string]any) (amqp091.Publishing, error) {
	var m amqp091.Publishing
	str := func(k string) (string, error) {
		v, ok := p[k]
		if !ok {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", errBadRequest("property %s must be a string", k)
		}
		return s, nil
	}
	num := func(k string) (int64, bool, error) {
		v, ok := p[k]
		if !ok {
			return 0, false, nil
		}
		if n, ok := v.(json.Number); ok {
			if i, err := n.Int64(); err == nil {
				return i, true, nil
			}
		}
		if s, ok := v.(string); ok {
			var i int64
			if _, err := fmt.Sscan(s, &i); err == nil {
				return i, true, nil
			}
		}
		return 0, false, errBadRequest("property %s must be an integer", k)
	}
	var err error
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"content_type", &m.ContentType}, {"content_encoding", &m.ContentEncoding},
		{"correlation_id", &m.CorrelationId}, {"reply_to", &m.ReplyTo}, {"expiration", &m.Expiration},
		{"message_id", &m.MessageId}, {"type", &m.Type}, {"user_id", &m.UserId}, {"app_id", &m.AppId},
	} {
		if *f.dst, err = str(f.key); err != nil {
			return m, err
		}
	}
	if n, ok, err := num("delivery_mode"); err != nil {
		return m, err
	} else if ok {
		m.DeliveryMode = uint8(n)
	}
	if n, ok, err := num("priority"); err != nil {
		return m, err
	} else if ok {
		m.Priority = uint8(n)
	}
	if n, ok, err := num("timestamp"); err != nil {
		return m, err
	} else if ok {
		m.Timestamp = time.Unix(n, 0)
	}
	if h, ok := p["headers"]; ok {
		hm, ok := h.(map[string]any)
		if !ok {
			return m, errBadRequest("property headers must be an object")
		}
		m.Headers = amqp091.Table(defs.ArgsTable(hm))
	}
	return m, nil
}

// propertiesObj renders a message's properties, only those set.
func propertiesObj(d amqp091.Delivery) obj {
	o := obj{}
	set := func(k, v string) {
		if v != "" {
			o[k] = v
		}
	}
	set("content_type", d.ContentType)
	set("content_encoding", d.ContentEncoding)
	set("correlation_id", d.CorrelationId)
	set("reply_to", d.ReplyTo)
	set("expiration", d.Expiration)
	set("message_id", d.MessageId)
	set("type", d.Type)
	set("user_id", d.UserId)
	set("app_id", d.AppId)
	if d.DeliveryMode != 0 {
		o["delivery_mode"] = d.DeliveryMode
	}
	if d.Priority != 0 {
		o["priority"] = d.Priority
	}
	if !d.Timestamp.IsZero() {
		o["timestamp"] = d.Timestamp.Unix()
	}
	if len(d.Headers) > 0 {
		h := obj{}
		for k, v := range d.Headers {
			h[k] = defs.JSONValue(v)
		}
		o["headers"] = h
	}
	return o
}

// getBody is POST /api/queues/{vhost}/{name}/get.
type getBody struct {
	Count    flexInt `json:"count"`
	AckMode  string  `json:"ackmode"`
	Encoding string  `json:"encoding"`
	Truncate flexInt `json:"truncate"`
	// Requeue is the pre-3.7 form of ackmode, still sent by old tools.
	Requeue *flexBool `json:"requeue"`
}

// getMessages takes up to count messages with basic.get and then acks,
// rejects or requeues them as ackmode says.
func (s *Server) getMessages(w http.ResponseWriter, r *http.Request, u *user) error {
	v, name, err := s.queueParam(r, u)
	if err != nil {
		return err
	}
	body := getBody{Count: 1, Encoding: "auto"}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body.AckMode == "" && body.Requeue != nil {
		body.AckMode = "ack_requeue_false"
		if *body.Requeue {
			body.AckMode = "ack_requeue_true"
		}
	}
	var ack, requeue bool
	switch body.AckMode {
	case "ack_requeue_true":
		ack, requeue = true, true
	case "ack_requeue_false":
		ack = true
	case "reject_requeue_true":
		requeue = true
	case "reject_requeue_false":
	default:
		return errBadRequest("invalid ackmode '%s' (ack_requeue_true, ack_requeue_false, reject_requeue_true or reject_requeue_false)", body.AckMode)
	}
	if body.Encoding != "auto" && body.Encoding != "base64" {
		return errBadRequest("invalid encoding '%s' (auto or base64)", body.Encoding)
	}
	if body.Count < 1 {
		return errBadRequest("count must be at least 1")
	}
	var out []obj
	err = s.withChannel(u, v, func(ch *amqp091.Channel) error {
		var last uint64
		for i := 0; i < int(body.Count); i++ {
			d, ok, err := ch.Get(name, false)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			last = d.DeliveryTag
			out = append(out, messageObj(d, body.Encoding, int(body.Truncate)))
			if !requeue {
				// Settle at once, so what is dropped never comes back.
				if ack {
					err = ch.Ack(d.DeliveryTag, false)
				} else {
					err = ch.Reject(d.DeliveryTag, false)
				}
				if err != nil {
					return err
				}
			}
		}
		if requeue && last != 0 {
			// Requeue all at the end, or the next get would take the
			// same message again.
			return ch.Nack(last, true, true)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if out == nil {
		out = []obj{}
	}
	return writeJSON(w, out)
}

func messageObj(d amqp091.Delivery, encoding string, truncate int) obj {
	payload := d.Body
	if truncate > 0 && len(payload) > truncate {
		payload = payload[:truncate]
	}
	o := obj{
		"payload_bytes": len(d.Body),
		"redelivered":   d.Redelivered,
		"exchange":      d.Exchange,
		"routing_key":   d.RoutingKey,
		"message_count": d.MessageCount,
		"properties":    propertiesObj(d),
	}
	if encoding == "auto" && utf8.Valid(payload) {
		o["payload"], o["payload_encoding"] = string(payload), "string"
	} else {
		o["payload"], o["payload_encoding"] = base64.StdEncoding.EncodeToString(payload), "base64"
	}
	return o
}
