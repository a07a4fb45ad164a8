// Command warren-perf generates AMQP 0-9-1 load against warren or RabbitMQ
// and reports send and receive rates and publish-to-deliver latency, like
// RabbitMQ's PerfTest.
//
//	warren-perf -h amqp://guest:guest@127.0.0.1:5672/ -x 1 -y 1 -s 100 -a -z 15
//	warren-perf report [-baseline rabbitmq] results.jsonl...
//	warren-perf idle -h URI -connections 10000 -queues 100000 -broker-pid PID
//	warren-perf restart-probe -h URI -u QUEUE -start "$EPOCHREALTIME" -expect N
//	warren-perf restart-report [-baseline rabbitmq] probes.jsonl...
//
// The second form turns the JSON lines of earlier runs into comparison
// tables; the third measures the broker's memory with many idle
// connections and empty queues. The fourth waits for a broker that was just
// restarted over a filled durable queue and measures how long after its
// start it accepts an AMQP connection and delivers the queue's first
// message; the fifth turns its JSON lines into comparison tables.
//
// To fill a queue for restart-probe, publish a fixed count of persistent
// messages without consumers:
//
//	warren-perf -x 1 -y 0 -C 1000000 -s 1024 -c 1000 -f persistent -u q -ad=false
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/warren-mq/warren/internal/perf"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// gcPercent is the garbage collector target used unless GOGC is set: the
// client allocates for every message but keeps little alive, so collecting
// less often leaves more of the shared CPU to the broker under test.
const gcPercent = 400

func run(args []string) int {
	if len(args) > 0 && args[0] == "report" {
		return reportFiles("warren-perf report", args[1:], perf.ReadResults, perf.WriteReport)
	}
	if len(args) > 0 && args[0] == "idle" {
		return idle(args[1:])
	}
	if len(args) > 0 && args[0] == "restart-probe" {
		return restartProbe(args[1:])
	}
	if len(args) > 0 && args[0] == "restart-report" {
		return reportFiles("warren-perf restart-report", args[1:], perf.ReadProbeResults, perf.WriteRestartReport)
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	cli, err := perf.ParseFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "warren-perf: %v\n", err)
		return 2
	}
	human := io.Writer(os.Stdout)
	if cli.JSON {
		human = os.Stderr
	}
	cfg := cli.Config
	cfg.Progress = human

	if cli.CPUProfile != "" {
		f, err := os.Create(cli.CPUProfile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "warren-perf: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "warren-perf: cpu profile: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := perf.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "warren-perf: %v\n", err)
		return 1
	}
	return emit("warren-perf", &res, human, cli.JSON)
}

// outcome is what a run or a probe reports.
type outcome interface {
	WriteSummary(io.Writer) error
	WriteJSON(io.Writer) error
}

// emit writes res for people to human and, with asJSON, as a JSON line to
// standard output; it returns the exit code.
func emit(cmd string, res outcome, human io.Writer, asJSON bool) int {
	if err := res.WriteSummary(human); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", cmd, err)
		return 1
	}
	if asJSON {
		if err := res.WriteJSON(os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", cmd, err)
			return 1
		}
	}
	return 0
}

// readFiles reads results from every named file with read.
func readFiles[T any](cmd string, names []string, read func(io.Reader, string) ([]T, error)) ([]T, bool) {
	var all []T
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", cmd, err)
			return nil, false
		}
		results, err := read(f, name)
		f.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", cmd, err)
			return nil, false
		}
		all = append(all, results...)
	}
	return all, true
}

// reportFiles runs a report subcommand: it reads the result files named
// in args with read and writes the table with write, ratios relative to
// -baseline.
func reportFiles[T any](cmd string, args []string, read func(io.Reader, string) ([]T, error), write func(io.Writer, []T, string) error) int {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	baseline := fs.String("baseline", "rabbitmq", "broker the ratios are relative to")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	all, ok := readFiles(cmd, fs.Args(), read)
	if !ok {
		return 1
	}
	if err := write(os.Stdout, all, *baseline); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", cmd, err)
		return 1
	}
	return 0
}

func idle(args []string) int {
	fs := flag.NewFlagSet("warren-perf idle", flag.ContinueOnError)
	uri := fs.String("h", "amqp://guest:guest@localhost:5672/", "AMQP URI of the broker")
	conns := fs.Int("connections", 10000, "idle connections to open, each with one channel")
	queues := fs.Int("queues", 100000, "empty queues to declare")
	pid := fs.Int("broker-pid", 0, "pid of the broker whose memory is measured")
	jsonOut := fs.Bool("json", false, "print the result as one JSON line")
	hold := fs.Bool("hold", false, "keep the connections open after measuring, until interrupted")
	caFile := fs.String("cacert", "", "PEM CA certificates to check an amqps:// broker's certificate with; without it any is accepted")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var tc *tls.Config
	if *caFile != "" {
		var err error
		if tc, err = perf.LoadCA(*caFile); err != nil {
			fmt.Fprintf(os.Stderr, "warren-perf idle: -cacert: %v\n", err)
			return 2
		}
	}
	if *pid == 0 {
		fmt.Fprintln(os.Stderr, "warren-perf idle: -broker-pid is required")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := perf.Idle(ctx, perf.IdleConfig{URI: *uri, TLS: tc, Connections: *conns, Queues: *queues, BrokerPID: *pid, Progress: os.Stderr, Hold: *hold})
	if err != nil {
		fmt.Fprintf(os.Stderr, "warren-perf idle: %v\n", err)
		return 1
	}
	if *jsonOut {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
		return 0
	}
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	fmt.Printf("broker RSS: %.1f MiB at start, %.1f MiB with %d connections, %.1f MiB with %d queues more\n",
		mib(res.RSSBefore), mib(res.RSSConnections), res.Connections, mib(res.RSSQueues), res.Queues)
	return 0
}

func restartProbe(args []string) int {
	cli, err := perf.ParseProbeFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "warren-perf restart-probe: %v\n", err)
		return 2
	}
	human := io.Writer(os.Stdout)
	if cli.JSON {
		human = os.Stderr
	}
	cfg := cli.Config
	cfg.Progress = human
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := perf.Probe(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "warren-perf restart-probe: %v\n", err)
		return 1
	}
	return emit("warren-perf restart-probe", &res, human, cli.JSON)
}
