package perf

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// ReadResults reads results written by Result.WriteJSON, one per line,
// skipping blank lines. name is used in errors (name:line).
func ReadResults(r io.Reader, name string) ([]Result, error) {
	return readJSONLines[Result](r, name)
}

// readJSONLines decodes one T per non-blank line, refusing unknown fields.
func readJSONLines[T any](r io.Reader, name string) ([]T, error) {
	var out []T
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var res T
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&res); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		out = append(out, res)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

// WriteReport writes results as two Markdown tables: every scenario's
// figures per broker (client CPU per message shows how much of the
// machine the load generator itself took, host steal how much the
// hypervisor took from it), then, for each scenario (Label)
// and each broker other than baseline, the ratios broker/baseline of
// receive rate, p99 latency and broker CPU time per message. Scenarios and
// brokers keep the order in which they first appear; a broker with no
// result for a scenario shows "n/a". Several results for one scenario and
// broker are rounds of a repeated run: the first table shows the median of
// each figure and the number of rounds, and each ratio is that of the
// medians followed by the lowest and highest ratio of a single round, the
// rounds of the two brokers paired in the order they appear.
func WriteReport(w io.Writer, results []Result, baseline string) error {
	var labels, brokers []string
	rounds := make(map[[2]string][]Result)
	for _, r := range results {
		if !slices.Contains(labels, r.Label) {
			labels = append(labels, r.Label)
		}
		if !slices.Contains(brokers, r.Broker) {
			brokers = append(brokers, r.Broker)
		}
		k := [2]string{r.Label, r.Broker}
		rounds[k] = append(rounds[k], r)
	}
	var b strings.Builder
	b.WriteString("| scenario | broker | rounds | sent msg/s | received msg/s | p50 latency | p95 latency | p99 latency | broker CPU/msg | client CPU/msg | host steal |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, l := range labels {
		for _, br := range brokers {
			rs, ok := rounds[[2]string{l, br}]
			if !ok {
				continue
			}
			cpu, client := "n/a", "n/a"
			if c := medianOf(rs, brokerCPU); c > 0 {
				cpu = fmt.Sprintf("%.1f µs", c)
			}
			if c := medianOf(rs, clientCPU); c > 0 {
				client = fmt.Sprintf("%.1f µs", c)
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %.0f | %.0f | %s | %s | %s | %s | %s | %.1f%% |\n", l, br, len(rs),
				medianOf(rs, sendRate), medianOf(rs, receiveRate),
				fmtMicros(medianOf(rs, p50)), fmtMicros(medianOf(rs, p95)), fmtMicros(medianOf(rs, p99)), cpu, client,
				medianOf(rs, steal))
		}
	}
	others := slices.DeleteFunc(slices.Clone(brokers), func(s string) bool { return s == baseline })
	if len(others) > 0 && slices.Contains(brokers, baseline) {
		fmt.Fprintf(&b, "\n| scenario | ratio | receive rate | p99 latency | broker CPU/msg |\n")
		b.WriteString("|---|---|---:|---:|---:|\n")
		for _, l := range labels {
			base, hasBase := rounds[[2]string{l, baseline}]
			for _, br := range others {
				rs, ok := rounds[[2]string{l, br}]
				if !hasBase || !ok {
					fmt.Fprintf(&b, "| %s | %s/%s | n/a | n/a | n/a |\n", l, br, baseline)
					continue
				}
				fmt.Fprintf(&b, "| %s | %s/%s | %s | %s | %s |\n", l, br, baseline,
					roundRatio(rs, base, receiveRate), roundRatio(rs, base, p99), roundRatio(rs, base, brokerCPU))
			}
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// The figures WriteReport summarizes over rounds.
func sendRate(r Result) float64    { return r.SendRate }
func receiveRate(r Result) float64 { return r.ReceiveRate }
func p50(r Result) float64         { return r.Latency.P50 }
func p95(r Result) float64         { return r.Latency.P95 }
func p99(r Result) float64         { return r.Latency.P99 }
func brokerCPU(r Result) float64   { return r.BrokerCPUPerMessage }
func steal(r Result) float64       { return r.StealPercent }
func clientCPU(r Result) float64 {
	if r.Received <= 0 {
		return 0
	}
	return r.ClientCPUSeconds * 1e6 / float64(r.Received)
}

// medianOf returns the median of figure over rs (the mean of the middle
// two for an even count), or 0 for none.
func medianOf(rs []Result, figure func(Result) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = figure(r)
	}
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// roundRatio formats the ratio of figure's medians over rs and base and,
// when there are several rounds, the range of the ratios of the rounds
// paired in order.
func roundRatio(rs, base []Result, figure func(Result) float64) string {
	med := ratio(medianOf(rs, figure), medianOf(base, figure))
	n := min(len(rs), len(base))
	if n < 2 || med == "n/a" {
		return med
	}
	lo, hi := 0.0, 0.0
	for i := range n {
		a, b := figure(rs[i]), figure(base[i])
		if a <= 0 || b <= 0 {
			return med
		}
		q := a / b
		if i == 0 || q < lo {
			lo = q
		}
		if i == 0 || q > hi {
			hi = q
		}
	}
	return fmt.Sprintf("%s (%.2f–%.2f)", med, lo, hi)
}

func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", a/b)
}
