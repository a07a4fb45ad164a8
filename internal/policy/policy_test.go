package policy

import (
	"strings"
	"testing"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/meta"
)

func pol(name, pattern string, prio int, def map[string]any) meta.Policy {
	return meta.Policy{VHost: "/", Name: name, Pattern: pattern, ApplyTo: All, Definition: def, Priority: prio}
}

func TestValidate(t *testing.T) {
	good := []map[string]any{
		{"ha-mode": "all"},
		{"ha-mode": "all", "ha-sync-mode": "automatic"},
		{"ha-mode": "exactly", "ha-params": 2.0, "ha-sync-mode": "automatic"},
		{"ha-mode": "nodes", "ha-params": []any{"rabbit@a", "rabbit@b"}},
		{"max-length": 10.0, "overflow": "reject-publish", "dead-letter-exchange": "dlx", "message-ttl": 0.0},
		{"alternate-exchange": "ae", "queue-mode": "lazy"},
	}
	for _, d := range good {
		if err := Validate(pol("p", ".*", 0, d)); err != nil {
			t.Errorf("%v: %v", d, err)
		}
	}
	// The problems RabbitMQ 3.10 reports, in words.
	bad := []struct {
		def  map[string]any
		want string
	}{
		{map[string]any{"ha-mode": "bogus"}, `"bogus" is not a valid ha-mode value`},
		{map[string]any{"ha-mode": "exactly"}, `ha-mode="exactly" takes an integer, none given`},
		{map[string]any{"ha-mode": "exactly", "ha-params": "two"}, `ha-mode="exactly" takes an integer, "two" given`},
		{map[string]any{"ha-mode": "nodes", "ha-params": "a"}, `ha-mode="nodes" takes a list, "a" given`},
		{map[string]any{"ha-sync-mode": "automatic"}, "ha-mode must be specified to specify ha-params, ha-sync-mode or ha-promote-on-shutdown"},
		{map[string]any{"max-length": -1.0}, "-1 is not a valid maximum length"},
		{map[string]any{"message-ttl": "x"}, `"x" is not a valid message TTL`},
		{map[string]any{"overflow": "x"}, `"x" is not a valid overflow value`},
		{map[string]any{"dead-letter-exchange": 5.0}, "5 is not a valid dead letter exchange name"},
		{map[string]any{"foo": 1.0}, `["foo"] are not recognised policy settings`},
		{map[string]any{"expires": 0.0}, "0 is not a valid queue expiry"},
	}
	for _, tc := range bad {
		err := Validate(pol("p", ".*", 0, tc.def))
		if err == nil || !strings.HasPrefix(err.Error(), "Validation failed\n\n") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.def, err, tc.want)
		}
	}
	if err := Validate(pol("p", "(", 0, map[string]any{"max-length": 1.0})); err == nil || !strings.Contains(err.Error(), "pattern should be regular expression") {
		t.Errorf("bad pattern: %v", err)
	}
	p := pol("p", ".*", 0, map[string]any{"max-length": 1.0})
	p.ApplyTo = "foo"
	if err := Validate(p); err == nil || !strings.Contains(err.Error(), "apply-to 'foo' unrecognised") {
		t.Errorf("bad apply-to: %v", err)
	}
	p = pol("op", ".*", 0, map[string]any{"ha-mode": "all"})
	p.Operator = true
	if err := Validate(p); err == nil || !strings.Contains(err.Error(), "not recognised operator policy settings") {
		t.Errorf("ha-mode in an operator policy: %v", err)
	}
}

func TestMatchPicksHighestPriority(t *testing.T) {
	pols := []meta.Policy{
		pol("all", ".*", 0, map[string]any{"max-length": 100.0}),
		pol("orders", "^orders\\.", 5, map[string]any{"max-length": 10.0}),
		pol("exchanges-only", ".*", 9, map[string]any{"alternate-exchange": "ae"}),
	}
	pols[2].ApplyTo = Exchanges
	if p, _ := Match(pols, Queues, "orders.new"); p == nil || p.Name != "orders" {
		t.Errorf("orders.new -> %v", p)
	}
	if p, _ := Match(pols, Queues, "billing"); p == nil || p.Name != "all" {
		t.Errorf("billing -> %v", p)
	}
	if p, _ := Match(pols, Exchanges, "x"); p == nil || p.Name != "exchanges-only" {
		t.Errorf("exchange x -> %v", p)
	}
}

func TestEffective(t *testing.T) {
	p := pol("p", ".*", 0, map[string]any{"max-length": 5.0, "message-ttl": 1000.0, "dead-letter-exchange": "from-policy", "ha-mode": "all"})
	// Numeric limits: the lower of argument and policy.
	got := Effective(amqp.Table{"x-max-length": int32(10), "x-dead-letter-exchange": "from-arg"}, &p, nil)
	if got["x-max-length"] != int64(5) || got["x-message-ttl"] != int64(1000) || got["x-dead-letter-exchange"] != "from-arg" {
		t.Errorf("effective = %v", got)
	}
	if _, ok := got["x-ha-mode"]; ok {
		t.Errorf("ha-mode leaked into arguments: %v", got)
	}
	got = Effective(amqp.Table{"x-max-length": int32(3)}, &p, nil)
	if got["x-max-length"] != int32(3) {
		t.Errorf("argument below policy: %v", got)
	}
	op := pol("cap", ".*", 0, map[string]any{"max-length": 4.0})
	op.Operator = true
	got = Effective(amqp.Table{"x-max-length": int32(10)}, &p, &op)
	if got["x-max-length"] != int64(4) {
		t.Errorf("operator cap: %v", got)
	}
	if d := Definition(&p, &op); d["max-length"] != 4.0 || d["ha-mode"] != "all" {
		t.Errorf("definition = %v", d)
	}
}
