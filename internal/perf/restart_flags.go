package perf

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// ProbeCLI is what the warren-perf restart-probe command line asks for.
type ProbeCLI struct {
	// Config is the probe to run; Progress is left nil.
	Config ProbeConfig
	// JSON asks for the result as one JSON line on standard output.
	JSON bool
}

// ParseProbeFlags parses the arguments of warren-perf restart-probe
// (without the subcommand). Usage and errors go to output. It returns
// flag.ErrHelp when help was asked for.
func ParseProbeFlags(args []string, output io.Writer) (ProbeCLI, error) {
	var (
		cli   ProbeCLI
		cfg   = &cli.Config
		start string
	)
	fs := flag.NewFlagSet("warren-perf restart-probe", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprintf(output, "usage: warren-perf restart-probe -start UNIXTIME -u QUEUE [flags]\n\n"+
			"Waits for a broker that was started at UNIXTIME over its old data: connects until an\n"+
			"AMQP handshake succeeds, reads the queue's depth with a passive declare, consumes its\n"+
			"first message and puts it back, and reports each step's time since UNIXTIME.\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.URI, "h", DefaultURI, "AMQP URI of the broker")
	fs.StringVar(&cfg.URI, "uri", DefaultURI, "same as -h")
	fs.StringVar(&cfg.Queue, "u", "", "the durable queue to consume the first message from (required)")
	fs.StringVar(&cfg.Queue, "queue", "", "same as -u")
	fs.StringVar(&start, "start", "", `when the broker process started, Unix seconds with a fraction, e.g. bash's "$EPOCHREALTIME" (required)`)
	fs.Int64Var(&cfg.Expected, "expect", 0, "number of messages the queue should hold, for the report")
	fs.DurationVar(&cfg.Interval, "interval", DefaultProbeInterval, "pause between connection attempts")
	fs.DurationVar(&cfg.Timeout, "timeout", DefaultProbeTimeout, "give up when no message has arrived after this long")
	fs.IntVar(&cfg.BrokerPID, "broker-pid", 0, "pid of the broker: stop waiting if it exits, and read its CPU time and memory")
	fs.StringVar(&cfg.Broker, "broker", "", "name of the broker under test, for the output")
	fs.StringVar(&cfg.Stop, "stop", "", `how the broker was stopped before this start, for the output (e.g. "graceful", "kill")`)
	fs.Float64Var(&cfg.StopSeconds, "stop-seconds", 0, "how long that stop took, measured by the caller, for the output")
	fs.Float64Var(&cfg.PublishRate, "publish-rate", 0, "the rate at which the queue was filled, measured by the caller, for the output")
	fs.BoolVar(&cli.JSON, "json", false, "print the result as one JSON line on stdout (the summary goes to stderr)")
	if err := fs.Parse(args); err != nil {
		return ProbeCLI{}, err
	}
	if fs.NArg() > 0 {
		return ProbeCLI{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if start == "" {
		return ProbeCLI{}, errors.New("-start is required")
	}
	t, err := ParseUnixTime(start)
	if err != nil {
		return ProbeCLI{}, fmt.Errorf("-start: %w", err)
	}
	cfg.Start = t
	if err := cfg.Validate(); err != nil {
		return ProbeCLI{}, err
	}
	return cli, nil
}
