// Package policy checks policy definitions and works out which policy
// applies to a queue or exchange and what its settings come to, with
// RabbitMQ's rules: the highest-priority matching policy applies, an
// operator policy caps it, and a queue's own x-arguments win over a
// policy, except that for numeric limits the lowest value wins.
package policy

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/meta"
)

// Kinds a policy applies to.
const (
	Queues    = "queues"
	Exchanges = "exchanges"
	All       = "all"
)

// validator checks one definition key's value; "" means valid.
type validator func(v any) string

func integer(v any) (int64, bool) {
	switch n := v.(type) {
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return int64(n), true
		}
	case int64:
		return n, true
	case int:
		return int64(n), true
	}
	return 0, false
}

func show(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	if n, ok := integer(v); ok {
		return fmt.Sprint(n)
	}
	return fmt.Sprint(v)
}

func nonNegInt(what string) validator {
	return func(v any) string {
		if n, ok := integer(v); !ok || n < 0 {
			return show(v) + " is not a valid " + what
		}
		return ""
	}
}

func positiveInt(what string) validator {
	return func(v any) string {
		if n, ok := integer(v); !ok || n <= 0 {
			return show(v) + " is not a valid " + what
		}
		return ""
	}
}

func str(what string) validator {
	return func(v any) string {
		if _, ok := v.(string); !ok {
			return show(v) + " is not a valid " + what
		}
		return ""
	}
}

func oneOf(what string, values ...string) validator {
	return func(v any) string {
		s, ok := v.(string)
		if !ok || !contains(values, s) {
			return show(v) + " is not a valid " + what + " value"
		}
		return ""
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Keys a policy may set, with their checks. The ha-* keys are stored and
// shown now; queue mirroring acts on them once nodes form a cluster.
func keys(operator bool) map[string]validator {
	if operator {
		// Operator policies cap numeric settings only, as in RabbitMQ.
		return map[string]validator{
			"expires":          positiveInt("queue expiry"),
			"delivery-limit":   nonNegInt("delivery limit"),
			"message-ttl":      nonNegInt("message TTL"),
			"max-length":       nonNegInt("maximum length"),
			"max-length-bytes": nonNegInt("maximum length in bytes"),
		}
	}
	return map[string]validator{
		"alternate-exchange":      str("alternate exchange name"),
		"dead-letter-exchange":    str("dead letter exchange name"),
		"dead-letter-routing-key": str("dead letter exchange routing key"),
		"message-ttl":             nonNegInt("message TTL"),
		"expires":                 positiveInt("queue expiry"),
		"delivery-limit":          nonNegInt("delivery limit"),
		"max-length":              nonNegInt("maximum length"),
		"max-length-bytes":        nonNegInt("maximum length in bytes"),
		"overflow":                oneOf("overflow", "drop-head", "reject-publish", "reject-publish-dlx"),
		"queue-mode":              oneOf("queue-mode", "default", "lazy"),
		"queue-master-locator":    oneOf("queue-master-locator", "client-local", "min-masters", "random"),
		"ha-mode":                 oneOf("ha-mode", "all", "exactly", "nodes"),
		"ha-params":               func(any) string { return "" }, // checked with ha-mode
		"ha-sync-mode":            oneOf("ha-sync-mode", "manual", "automatic"),
		"ha-sync-batch-size":      positiveInt("ha-sync-batch-size value"),
		"ha-promote-on-shutdown":  oneOf("ha-promote-on-shutdown", "when-synced", "always"),
		"ha-promote-on-failure":   oneOf("ha-promote-on-failure", "when-synced", "always"),
	}
}

// Validate checks a policy as RabbitMQ does before storing it. The error
// text starts with "Validation failed", as RabbitMQ's does.
func Validate(p meta.Policy) error {
	var problems []string
	if _, err := regexp.Compile(p.Pattern); err != nil {
		problems = append(problems, fmt.Sprintf("pattern should be regular expression but is invalid: %v", err))
	}
	if p.ApplyTo != Queues && p.ApplyTo != Exchanges && p.ApplyTo != All {
		problems = append(problems, fmt.Sprintf("apply-to '%s' unrecognised; should be 'queues', 'exchanges' or 'all'", p.ApplyTo))
	}
	if len(p.Definition) == 0 {
		problems = append(problems, "the definition is empty")
	}
	known := keys(p.Operator)
	var unknown []string
	for _, k := range sortedKeys(p.Definition) {
		check, ok := known[k]
		if !ok {
			unknown = append(unknown, fmt.Sprintf("%q", k))
			continue
		}
		if msg := check(p.Definition[k]); msg != "" {
			problems = append(problems, msg)
		}
	}
	if len(unknown) > 0 {
		kind := "policy"
		if p.Operator {
			kind = "operator policy"
		}
		problems = append(problems, fmt.Sprintf("[%s] are not recognised %s settings", strings.Join(unknown, ", "), kind))
	}
	if msg := checkHA(p.Definition); msg != "" {
		problems = append(problems, msg)
	}
	if len(problems) > 0 {
		return errors.New("Validation failed\n\n" + strings.Join(problems, "\n"))
	}
	return nil
}

func checkHA(d map[string]any) string {
	mode, hasMode := d["ha-mode"].(string)
	params, hasParams := d["ha-params"]
	if !hasMode {
		for _, k := range []string{"ha-params", "ha-sync-mode", "ha-promote-on-shutdown", "ha-promote-on-failure", "ha-sync-batch-size"} {
			if _, ok := d[k]; ok {
				return "ha-mode must be specified to specify ha-params, ha-sync-mode or ha-promote-on-shutdown"
			}
		}
		return ""
	}
	switch mode {
	case "all":
		if hasParams {
			return "ha-mode=\"all\" does not take parameters, " + show(params) + " given"
		}
	case "exactly":
		if !hasParams {
			return "ha-mode=\"exactly\" takes an integer, none given"
		}
		if n, ok := integer(params); !ok || n < 1 {
			return "ha-mode=\"exactly\" takes an integer, " + show(params) + " given"
		}
	case "nodes":
		list, ok := params.([]any)
		if !hasParams {
			return "ha-mode=\"nodes\" takes a list, none given"
		}
		if !ok || len(list) == 0 {
			return "ha-mode=\"nodes\" takes a list, " + show(params) + " given"
		}
		for _, n := range list {
			if _, ok := n.(string); !ok {
				return "ha-mode=\"nodes\" takes a list of strings, " + show(params) + " given"
			}
		}
	}
	return ""
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Match returns the policy and the operator policy that apply to a queue
// or exchange (kind Queues or Exchanges) named name, from a vhost's
// policies; nil where none does. Among matching policies the highest
// priority wins; equal priorities go to the name that sorts last, so the
// choice is the same on every node.
func Match(policies []meta.Policy, kind, name string) (pol, op *meta.Policy) {
	for i := range policies {
		p := &policies[i]
		if p.ApplyTo != All && p.ApplyTo != kind {
			continue
		}
		if p.Operator && kind != Queues {
			continue
		}
		re, err := regexp.Compile(p.Pattern)
		if err != nil || !re.MatchString(name) {
			continue
		}
		best := &pol
		if p.Operator {
			best = &op
		}
		if *best == nil || p.Priority > (*best).Priority || p.Priority == (*best).Priority && p.Name > (*best).Name {
			*best = p
		}
	}
	return pol, op
}

// minKeys are the settings where the lowest of argument, policy and
// operator policy wins.
var minKeys = map[string]bool{"message-ttl": true, "expires": true, "max-length": true, "max-length-bytes": true}

// Effective returns the x-arguments a queue or exchange runs with: its own
// arguments, completed by the policy and capped by the operator policy.
// The result is a new table; args is not changed.
func Effective(args amqp.Table, pol, op *meta.Policy) amqp.Table {
	if pol == nil && op == nil {
		return args
	}
	out := amqp.Table{}
	for k, v := range args {
		out[k] = v
	}
	apply := func(p *meta.Policy, operator bool) {
		if p == nil {
			return
		}
		for k, v := range p.Definition {
			if strings.HasPrefix(k, "ha-") {
				continue
			}
			key := "x-" + k
			if k == "alternate-exchange" {
				key = k
			}
			cur, has := out[key]
			if minKeys[k] {
				n, ok := integer(v)
				if !ok {
					continue
				}
				if c, cok := number(cur); has && cok && c <= n {
					continue
				}
				out[key] = n
				continue
			}
			if has || operator {
				continue
			}
			out[key] = v
		}
	}
	apply(pol, false)
	apply(op, true)
	return out
}

// number reads an argument's value: an AMQP integer, or a float64 from
// JSON.
func number(v any) (int64, bool) {
	if f, ok := v.(float64); ok {
		return int64(f), true
	}
	return amqp.Int(v)
}

// Definition merges what a policy and an operator policy set, as the API
// shows it in effective_policy_definition.
func Definition(pol, op *meta.Policy) map[string]any {
	out := map[string]any{}
	if pol != nil {
		for k, v := range pol.Definition {
			out[k] = v
		}
	}
	if op != nil {
		for k, v := range op.Definition {
			cur, has := out[k]
			if c, ok := integer(cur); has && ok {
				if n, ok := integer(v); ok && c <= n {
					continue
				}
			}
			out[k] = v
		}
	}
	return out
}
