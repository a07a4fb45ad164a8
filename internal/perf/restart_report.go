package perf

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// WriteJSON writes r as one line of JSON.
func (r *ProbeResult) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode probe result: %w", err)
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write probe result: %w", err)
	}
	return nil
}

// WriteSummary writes r for people, on one line.
func (r *ProbeResult) WriteSummary(w io.Writer) error {
	name := r.Broker
	if name == "" {
		name = "broker"
	}
	if r.Stop != "" {
		name += " after " + r.Stop + " stop"
	}
	_, err := fmt.Fprintf(w, "restart %s: AMQP handshake at %s (%d attempts), first message at %s, depth %d (then %d), %s\n",
		name, fmtSeconds(r.ConnectSeconds), r.ConnectAttempts, fmtSeconds(r.FirstDeliverySeconds),
		r.Depth, r.DepthAfter, depthVerdict(r))
	if err != nil {
		return fmt.Errorf("write probe summary: %w", err)
	}
	return nil
}

// ReadProbeResults reads results written by ProbeResult.WriteJSON, one per
// line, skipping blank lines. name is used in errors (name:line).
func ReadProbeResults(r io.Reader, name string) ([]ProbeResult, error) {
	return readJSONLines[ProbeResult](r, name)
}

// WriteRestartReport writes probe results as two Markdown tables: every
// restart's figures, then for each stop mode and each broker other than
// baseline the ratios broker/baseline of the time to the first AMQP
// handshake and to the first delivered message (below 1 is faster). Stop
// modes and brokers keep the order in which they first appear; when a stop
// mode and broker appear twice the later result counts.
func WriteRestartReport(w io.Writer, results []ProbeResult, baseline string) error {
	var stops, brokers []string
	byKey := make(map[[2]string]ProbeResult)
	for _, r := range results {
		if !slices.Contains(stops, r.Stop) {
			stops = append(stops, r.Stop)
		}
		if !slices.Contains(brokers, r.Broker) {
			brokers = append(brokers, r.Broker)
		}
		byKey[[2]string{r.Stop, r.Broker}] = r
	}
	var b strings.Builder
	b.WriteString("| stop | broker | messages | publish msg/s | stop took | start → AMQP handshake | start → first message | broker CPU by then | broker RSS by then | depth after restart |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, s := range stops {
		for _, br := range brokers {
			r, ok := byKey[[2]string{s, br}]
			if !ok {
				continue
			}
			publish, stopTook, cpu, rss := "n/a", "n/a", "n/a", "n/a"
			if r.PublishRate > 0 {
				publish = fmt.Sprintf("%.0f", r.PublishRate)
			}
			if r.StopSeconds > 0 {
				stopTook = fmtSeconds(r.StopSeconds)
			}
			if r.BrokerCPUSeconds > 0 {
				cpu = fmtSeconds(r.BrokerCPUSeconds)
			}
			if r.BrokerRSS > 0 {
				rss = fmt.Sprintf("%.0f MiB", float64(r.BrokerRSS)/(1<<20))
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %d (%s) |\n", s, br, r.Expected, publish, stopTook,
				fmtSeconds(r.ConnectSeconds), fmtSeconds(r.FirstDeliverySeconds), cpu, rss, r.Depth, depthVerdict(&r))
		}
	}
	others := slices.DeleteFunc(slices.Clone(brokers), func(s string) bool { return s == baseline })
	if len(others) > 0 && slices.Contains(brokers, baseline) {
		b.WriteString("\n| stop | ratio | start → AMQP handshake | start → first message |\n")
		b.WriteString("|---|---|---:|---:|\n")
		for _, s := range stops {
			base, hasBase := byKey[[2]string{s, baseline}]
			for _, br := range others {
				r, ok := byKey[[2]string{s, br}]
				if !hasBase || !ok {
					fmt.Fprintf(&b, "| %s | %s/%s | n/a | n/a |\n", s, br, baseline)
					continue
				}
				fmt.Fprintf(&b, "| %s | %s/%s | %s | %s |\n", s, br, baseline,
					ratio(r.ConnectSeconds, base.ConnectSeconds), ratio(r.FirstDeliverySeconds, base.FirstDeliverySeconds))
			}
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write restart report: %w", err)
	}
	return nil
}

// depthVerdict says whether the queue held every expected message after the
// restart, both when first declared and once the probe's message was back.
func depthVerdict(r *ProbeResult) string {
	switch {
	case r.Expected == 0:
		return "nothing expected"
	case r.Depth == r.Expected && r.DepthAfter == r.Expected:
		return "all there"
	case r.Depth < r.Expected || r.DepthAfter < r.Expected:
		return fmt.Sprintf("%d MISSING", r.Expected-min(r.Depth, r.DepthAfter))
	default:
		return fmt.Sprintf("%d EXTRA", max(r.Depth, r.DepthAfter)-r.Expected)
	}
}

// fmtSeconds formats a time in seconds with a unit that keeps it short.
func fmtSeconds(s float64) string {
	return fmtMicros(s * 1e6)
}
