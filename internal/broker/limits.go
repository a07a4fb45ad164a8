package broker

import (
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
