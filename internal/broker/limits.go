package broker

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/queue"
)

// queueLimits reads x-max-length, x-max-length-bytes and x-overflow from
// a queue's arguments. A value RabbitMQ would refuse is an error naming
// the argument.
func queueLimits(args amqp.Table) (queue.Limits, string, bool) {
	l := queue.NoLimits()
	for _, a := range []struct {
		key string
		dst *int64
	}{{"x-max-length", &l.MaxLen}, {"x-max-length-bytes", &l.MaxBytes}} {
		v, ok := args[a.key]
		if !ok {
			continue
		}
		n, isNum := number(v)
		if !isNum || n < 0 || n != math.Trunc(n) {
			return l, a.key, false
		}
		*a.dst = int64(n)
	}
	if v, ok := args["x-message-ttl"]; ok {
		n, isNum := number(v)
		if !isNum || n < 0 || n != math.Trunc(n) || n > float64(math.MaxInt64/int64(time.Millisecond)) {
			return l, "x-message-ttl", false
		}
		l.MessageTTL = time.Duration(n) * time.Millisecond
	}
	if n, ok := amqp.Int(args["x-max-priority"]); ok && n > 0 {
		l.MaxPriority = uint8(min(n, 255))
	}
	if b, ok := args["x-single-active-consumer"].(bool); ok {
		l.SingleActive = b
	}
	l.Lazy = args["x-queue-mode"] == "lazy"
	if v, ok := args["x-overflow"]; ok {
		s, _ := v.(string)
		switch s {
		case "drop-head":
		case "reject-publish", "reject-publish-dlx":
			l.RejectPublish = true
		default:
			return l, "x-overflow", false
		}
	}
	return l, "", true
}

// limitsOf is queueLimits for definitions already accepted.
func limitsOf(args amqp.Table) queue.Limits {
	l, _, ok := queueLimits(args)
	if !ok {
		return queue.NoLimits()
	}
	return l
}

// messageTTL reads a message's expiration property: milliseconds as a
// decimal string; absent means none (-1).
func messageTTL(expiration []byte) (time.Duration, bool) {
	if expiration == nil {
		return -1, true
	}
	n, err := strconv.ParseUint(string(expiration), 10, 63)
	if err != nil || n > math.MaxInt64/uint64(time.Millisecond) {
		return -1, false
	}
	return time.Duration(n) * time.Millisecond, true
}

// queueArgProblem checks a queue's arguments the way RabbitMQ 3.10 does on
// queue.declare, in its order, and returns the reply text for the first
// one it would refuse, or "" if it would accept them all.
func queueArgProblem(name, vhost string, args amqp.Table) string {
	invalid := func(key, why string) string {
		return fmt.Sprintf("invalid arg '%s' for queue '%s' in vhost '%s': %s", key, name, vhost, why)
	}
	badType := func(key string, v any) string {
		return fmt.Sprintf("invalid type '%s' for arg '%s' in queue '%s' in vhost '%s'", fieldTypeName(v), key, name, vhost)
	}
	intArg := func(key string, positive bool, max int64) string {
		v, ok := args[key]
		if !ok {
			return ""
		}
		n, ok := amqp.Int(v)
		switch {
		case !ok:
			return invalid(key, fmt.Sprintf("\"expected integer, got %s\"", fieldTypeName(v)))
		case n < 0:
			return invalid(key, fmt.Sprintf("{value_negative,%d}", n))
		case n == 0 && positive:
			return invalid(key, "{value_zero,0}")
		case max > 0 && n > max:
			return invalid(key, fmt.Sprintf("{max_value_exceeded,%d}", n))
		}
		return ""
	}
	strArg := func(key string) (string, string) {
		v, ok := args[key]
		if !ok {
			return "", ""
		}
		switch s := v.(type) {
		case string:
			return s, ""
		case []byte:
			return string(s), ""
		}
		return "", badType(key, v)
	}
	if p := intArg("x-expires", true, 0); p != "" {
		return p
	}
	if p := intArg("x-message-ttl", false, 0); p != "" {
		return p
	}
	if _, p := strArg("x-dead-letter-exchange"); p != "" {
		return p
	}
	if _, p := strArg("x-dead-letter-routing-key"); p != "" {
		return p
	}
	if _, ok := args["x-dead-letter-routing-key"]; ok {
		if _, dlx := args["x-dead-letter-exchange"]; !dlx {
			return invalid("x-dead-letter-routing-key", "routing_key_but_no_dlx_defined")
		}
	}
	if p := intArg("x-max-length", false, 0); p != "" {
		return p
	}
	if p := intArg("x-max-length-bytes", false, 0); p != "" {
		return p
	}
	if p := intArg("x-max-priority", false, 255); p != "" {
		return p
	}
	if s, p := strArg("x-overflow"); p != "" {
		return p
	} else if _, ok := args["x-overflow"]; ok && s != "drop-head" && s != "reject-publish" && s != "reject-publish-dlx" {
		return invalid("x-overflow", "invalid_overflow")
	}
	if s, p := strArg("x-queue-mode"); p != "" {
		return p
	} else if _, ok := args["x-queue-mode"]; ok && s != "default" && s != "lazy" {
		return invalid("x-queue-mode", fmt.Sprintf("\"unsupported queue mode '%s'\"", s))
	}
	if s, p := strArg("x-queue-type"); p != "" {
		return p
	} else if _, ok := args["x-queue-type"]; ok && s != "classic" {
		return invalid("x-queue-type", fmt.Sprintf("\"unsupported queue type '%s'\"", s))
	}
	if s, p := strArg("x-queue-master-locator"); p != "" {
		return p
	} else if _, ok := args["x-queue-master-locator"]; ok && !validLocator(s) {
		return invalid("x-queue-master-locator", "invalid_queue_locator_arg")
	}
	if v, ok := args["x-single-active-consumer"]; ok {
		if _, isBool := v.(bool); !isBool {
			return invalid("x-single-active-consumer", fmt.Sprintf("{unacceptable_type,%s}", fieldTypeName(v)))
		}
	}
	return ""
}
