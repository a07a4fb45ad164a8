package perf

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Result is the outcome of one run. Its JSON form (one object per run, keys
// in snake_case) is what `warren-perf --json` prints and what the benchmark
// report reads back.
type Result struct {
	Label  string `json:"label,omitempty"`
	Broker string `json:"broker,omitempty"`

	Producers     int     `json:"producers"`
	Consumers     int     `json:"consumers"`
	Size          int     `json:"size"`
	ConfirmWindow int     `json:"confirm_window"`
	Persistent    bool    `json:"persistent"`
	Prefetch      int     `json:"prefetch"`
	AutoAck       bool    `json:"autoack"`
	MultiAckEvery int     `json:"multi_ack_every,omitempty"`
	Rate          float64 `json:"rate_limit"`
	Queue         string  `json:"queue"`

	// Seconds is the length of the measurement window.
	Seconds float64 `json:"seconds"`

	Sent      int64 `json:"sent"`
	Confirmed int64 `json:"confirmed"`
	Nacked    int64 `json:"nacked"`
	Received  int64 `json:"received"`
	// Recovered counts the connections made again after a failure
	// (-recover).
	Recovered int64 `json:"recovered,omitempty"`

	SendRate    float64 `json:"send_rate"`
	ConfirmRate float64 `json:"confirm_rate"`
	ReceiveRate float64 `json:"receive_rate"`

	// Latency is the publish-to-deliver latency of the received messages.
	Latency LatencySummary `json:"latency_us"`

	// BrokerCPUSeconds is the CPU time of the broker's process tree over the
	// window; zero when no broker pid was given.
	BrokerCPUSeconds float64 `json:"broker_cpu_seconds,omitempty"`
	// BrokerCPUPerMessage is BrokerCPUSeconds divided by Received, in
	// microseconds.
	BrokerCPUPerMessage float64 `json:"broker_cpu_us_per_msg,omitempty"`
	// ClientCPUSeconds is this process's CPU time over the window.
	ClientCPUSeconds float64 `json:"client_cpu_seconds"`
	// StealPercent is the share of the machine's CPU time (all its CPUs)
	// that the hypervisor took over the window; on a shared virtual
	// machine it tells a disturbed run from a quiet one.
	StealPercent float64 `json:"steal_pct,omitempty"`
}

// LatencySummary holds latency statistics in microseconds.
type LatencySummary struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func summarize(h *Histogram) LatencySummary {
	return LatencySummary{
		Min:  micros(h.Min()),
		Mean: micros(h.Mean()),
		P50:  micros(h.Percentile(50)),
		P95:  micros(h.Percentile(95)),
		P99:  micros(h.Percentile(99)),
		Max:  micros(h.Max()),
	}
}

// WriteJSON writes r as one line of JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}

// WriteSummary writes r for people: rates, then latency percentiles, then
// CPU figures.
func (r *Result) WriteSummary(w io.Writer) error {
	name := r.Label
	if name == "" {
		name = "run"
	}
	if r.Broker != "" {
		name += " on " + r.Broker
	}
	_, err := fmt.Fprintf(w,
		"summary %s: %.1f s, sent %d (%.0f msg/s), confirmed %d (%.0f msg/s), nacked %d, received %d (%.0f msg/s)\n"+
			"latency publish-to-deliver: min %s, p50 %s, p95 %s, p99 %s, max %s, mean %s\n",
		name, r.Seconds, r.Sent, r.SendRate, r.Confirmed, r.ConfirmRate, r.Nacked, r.Received, r.ReceiveRate,
		fmtMicros(r.Latency.Min), fmtMicros(r.Latency.P50), fmtMicros(r.Latency.P95),
		fmtMicros(r.Latency.P99), fmtMicros(r.Latency.Max), fmtMicros(r.Latency.Mean))
	if err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	if r.Recovered > 0 {
		if _, err := fmt.Fprintf(w, "connections made again after a failure: %d\n", r.Recovered); err != nil {
			return fmt.Errorf("write summary: %w", err)
		}
	}
	if r.BrokerCPUSeconds > 0 {
		_, err = fmt.Fprintf(w, "cpu: broker %.2f s (%.1f µs/msg received), client %.2f s, stolen by the host %.1f%%\n",
			r.BrokerCPUSeconds, r.BrokerCPUPerMessage, r.ClientCPUSeconds, r.StealPercent)
	} else {
		_, err = fmt.Fprintf(w, "cpu: client %.2f s, stolen by the host %.1f%%\n", r.ClientCPUSeconds, r.StealPercent)
	}
	if err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}

// fmtMicros formats a microsecond figure with a unit that keeps it short.
func fmtMicros(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2f s", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.2f ms", us/1e3)
	default:
		return fmt.Sprintf("%.0f µs", us)
	}
}
