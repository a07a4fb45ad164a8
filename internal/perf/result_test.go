package perf

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleResult(label, broker string, rate, p99, cpu float64) Result {
	return Result{
		Label: label, Broker: broker, Producers: 1, Consumers: 1, Size: 100, ConfirmWindow: 100,
		Prefetch: 100, Queue: "q", Seconds: 15, Sent: int64(rate * 15), Confirmed: int64(rate * 15),
		Received: int64(rate * 15), SendRate: rate, ConfirmRate: rate, ReceiveRate: rate,
		Latency:          LatencySummary{Min: 10, Mean: 100, P50: 90, P95: 200, P99: p99, Max: 1000},
		BrokerCPUSeconds: cpu * rate * 15 / 1e6, BrokerCPUPerMessage: cpu, ClientCPUSeconds: 3,
	}
}

func TestResultJSONRoundTripAndKeys(t *testing.T) {
	in := sampleResult("s1", "rabbitmq", 50000, 2500, 26)
	var buf bytes.Buffer
	if err := in.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 || !strings.HasSuffix(buf.String(), "}\n") {
		t.Fatalf("want exactly one JSON line, got %q", buf.String())
	}
	var raw map[string]any
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"receive_rate", "send_rate", "confirm_rate", "latency_us", "broker_cpu_us_per_msg", "confirm_window", "autoack"} {
		if _, ok := raw[key]; !ok {
			t.Errorf("JSON has no %q key: %s", key, buf.String())
		}
	}
	if lat := raw["latency_us"].(map[string]any); lat["p99"] != 2500.0 {
		t.Errorf("latency_us.p99 = %v, want 2500", lat["p99"])
	}
	out, err := ReadResults(&buf, "results.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || !reflect.DeepEqual(out[0], in) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, in)
	}
}

func TestReadResultsReportsLine(t *testing.T) {
	_, err := ReadResults(strings.NewReader("{\"label\":\"a\"}\n\n{\"label\": 3}\n"), "r.jsonl")
	if err == nil || !strings.HasPrefix(err.Error(), "r.jsonl:3:") {
		t.Fatalf("error %v, want one starting with r.jsonl:3:", err)
	}
	_, err = ReadResults(strings.NewReader(`{"lable":"a"}`), "r.jsonl")
	if err == nil || !strings.Contains(err.Error(), "lable") {
		t.Fatalf("unknown key accepted: %v", err)
	}
}

func TestWriteReportRatios(t *testing.T) {
	results := []Result{
		sampleResult("s1", "rabbitmq", 50000, 2000, 26),
		sampleResult("s1", "warren", 125000, 1000, 6.5),
		sampleResult("s2", "rabbitmq", 20000, 4000, 50),
	}
	var buf bytes.Buffer
	if err := WriteReport(&buf, results, "rabbitmq"); err != nil {
		t.Fatal(err)
	}
	got := buf.String()
	for _, want := range []string{
		"| s1 | rabbitmq | 1 | 50000 | 50000 | 90 µs | 200 µs | 2.00 ms | 26.0 µs | 4.0 µs |",
		"| s1 | warren | 1 | 125000 | 125000 |",
		"| s1 | warren/rabbitmq | 2.50× | 0.50× | 0.25× |",
		"| s2 | warren/rabbitmq | n/a | n/a | n/a |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	// Only the baseline: no ratio table.
	buf.Reset()
	if err := WriteReport(&buf, results[:1], "rabbitmq"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "ratio") {
		t.Errorf("ratio table without a second broker:\n%s", buf.String())
	}
}

func TestWriteReportRounds(t *testing.T) {
	// Three rounds per broker: medians in both tables, and the ratio of
	// each round (warren's i-th against RabbitMQ's i-th) as a range.
	results := []Result{
		sampleResult("s1", "rabbitmq", 50000, 2000, 26),
		sampleResult("s1", "warren", 100000, 1000, 6),
		sampleResult("s1", "rabbitmq", 40000, 3000, 30),
		sampleResult("s1", "warren", 140000, 900, 5),
		sampleResult("s1", "rabbitmq", 60000, 1000, 20),
		sampleResult("s1", "warren", 120000, 2000, 8),
	}
	for i, pct := range []float64{0.5, 2.0, 3.0, 0.1, 1.0, 0.4} {
		results[i].StealPercent = pct
	}
	var buf bytes.Buffer
	if err := WriteReport(&buf, results, "rabbitmq"); err != nil {
		t.Fatal(err)
	}
	got := buf.String()
	for _, line := range strings.Split(got, "\n") {
		// The host's steal, median over the rounds, ends each row.
		if strings.HasPrefix(line, "| s1 | rabbitmq |") && !strings.HasSuffix(line, "| 1.0% |") ||
			strings.HasPrefix(line, "| s1 | warren |") && !strings.HasSuffix(line, "| 0.4% |") {
			t.Errorf("steal median wrong in %q", line)
		}
	}
	for _, want := range []string{
		"| s1 | rabbitmq | 3 | 50000 | 50000 |",
		"| s1 | warren | 3 | 120000 | 120000 |",
		// receive 120000/50000; rounds 2.00, 3.50, 2.00. p99 1000/2000;
		// rounds 0.50, 0.30, 2.00. CPU 6/26; rounds 0.23, 0.17, 0.40.
		"| s1 | warren/rabbitmq | 2.40× (2.00–3.50) | 0.50× (0.30–2.00) | 0.23× (0.17–0.40) |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}

func TestMedianOfEvenCount(t *testing.T) {
	rs := []Result{sampleResult("s", "b", 10, 0, 0), sampleResult("s", "b", 40, 0, 0),
		sampleResult("s", "b", 20, 0, 0), sampleResult("s", "b", 30, 0, 0)}
	if got := medianOf(rs, receiveRate); got != 25 {
		t.Fatalf("median of 10, 40, 20, 30 = %v, want 25", got)
	}
	if got := medianOf(nil, receiveRate); got != 0 {
		t.Fatalf("median of nothing = %v, want 0", got)
	}
}

func TestWriteSummary(t *testing.T) {
	r := sampleResult("s4", "warren", 5000, 1500, 0)
	r.BrokerCPUSeconds = 0
	var buf bytes.Buffer
	if err := r.WriteSummary(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"summary s4 on warren", "received 75000 (5000 msg/s)", "p99 1.50 ms", "cpu: client 3.00 s"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestSummarizeUsesMicroseconds(t *testing.T) {
	var h Histogram
	h.Record(250 * time.Microsecond)
	s := summarize(&h)
	if s.P99 < 250 || s.P99 > 250*65.0/64 || s.Min != 250 {
		t.Fatalf("summary %+v, want 250 µs", s)
	}
}
