package defs

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"time"
	"unicode/utf8"

	"github.com/warren-mq/warren/internal/amqp"
)

// JSONValue renders an AMQP field value as the API does: byte strings as
// text, timestamps as seconds, nested tables as objects.
func JSONValue(v any) any {
	switch t := v.(type) {
	case amqp.Table:
		return ArgsJSON(t)
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = JSONValue(x)
		}
		return out
	case []byte:
		if utf8.Valid(t) {
			return string(t)
		}
		return base64.StdEncoding.EncodeToString(t)
	case time.Time:
		return t.Unix()
	case amqp.Decimal:
		return float64(t.Value) / math.Pow10(int(t.Scale))
	}
	return v
}

// ArgsJSON renders an argument table; nil becomes {}.
func ArgsJSON(t amqp.Table) map[string]any {
	out := map[string]any{}
	for k, v := range t {
		out[k] = JSONValue(v)
	}
	return out
}

// AMQPValue turns a decoded JSON value into an AMQP field value: whole
// numbers become longs, as RabbitMQ stores them.
func AMQPValue(v any) any {
	switch t := v.(type) {
	case json.Number:
		if n, err := t.Int64(); err == nil {
			return n
		}
		f, _ := t.Float64()
		return f
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return int64(t)
		}
		return t
	case map[string]any:
		return ArgsTable(t)
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = AMQPValue(x)
		}
		return out
	}
	return v
}

// ArgsTable turns a JSON object into an argument table; empty gives nil.
func ArgsTable(m map[string]any) amqp.Table {
	if len(m) == 0 {
		return nil
	}
	t := amqp.Table{}
	for k, v := range m {
		if v == nil {
			continue
		}
		t[k] = AMQPValue(v)
	}
	return t
}
