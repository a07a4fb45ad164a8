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

// WriteReport writes results as two Markdown tables: every run's figures
// (client CPU per message shows how much of the machine the load generator
// itself took), then, for each scenario (Label) and each broker other than baseline, the
// ratios broker/baseline of receive rate, p99 latency and broker CPU time
// per message. Scenarios and brokers keep the order in which they first
// appear; a broker with no result for a scenario shows "n/a", and when a
// scenario and broker appear twice the later result counts.
func WriteReport(w io.Writer, results []Result, baseline string) error {
	var labels, brokers []string
	byKey := make(map[[2]string]Result)
	for _, r := range results {
		if !slices.Contains(labels, r.Label) {
			labels = append(labels, r.Label)
		}
		if !slices.Contains(brokers, r.Broker) {
			brokers = append(brokers, r.Broker)
		}
		byKey[[2]string{r.Label, r.Broker}] = r
	}
	var b strings.Builder
	b.WriteString("| scenario | broker | sent msg/s | received msg/s | p50 latency | p95 latency | p99 latency | broker CPU/msg | client CPU/msg |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, l := range labels {
		for _, br := range brokers {
			r, ok := byKey[[2]string{l, br}]
			if !ok {
				continue
			}
			cpu, client := "n/a", "n/a"
			if r.BrokerCPUPerMessage > 0 {
				cpu = fmt.Sprintf("%.1f µs", r.BrokerCPUPerMessage)
			}
			if r.Received > 0 && r.ClientCPUSeconds > 0 {
				client = fmt.Sprintf("%.1f µs", r.ClientCPUSeconds*1e6/float64(r.Received))
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f | %.0f | %s | %s | %s | %s | %s |\n", l, br, r.SendRate, r.ReceiveRate,
				fmtMicros(r.Latency.P50), fmtMicros(r.Latency.P95), fmtMicros(r.Latency.P99), cpu, client)
		}
	}
	others := slices.DeleteFunc(slices.Clone(brokers), func(s string) bool { return s == baseline })
	if len(others) > 0 && slices.Contains(brokers, baseline) {
		fmt.Fprintf(&b, "\n| scenario | ratio | receive rate | p99 latency | broker CPU/msg |\n")
		b.WriteString("|---|---|---:|---:|---:|\n")
		for _, l := range labels {
			base, hasBase := byKey[[2]string{l, baseline}]
			for _, br := range others {
				r, ok := byKey[[2]string{l, br}]
				if !hasBase || !ok {
					fmt.Fprintf(&b, "| %s | %s/%s | n/a | n/a | n/a |\n", l, br, baseline)
					continue
				}
				fmt.Fprintf(&b, "| %s | %s/%s | %s | %s | %s |\n", l, br, baseline,
					ratio(r.ReceiveRate, base.ReceiveRate), ratio(r.Latency.P99, base.Latency.P99),
					ratio(r.BrokerCPUPerMessage, base.BrokerCPUPerMessage))
			}
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", a/b)
}
