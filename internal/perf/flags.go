package perf

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DefaultURI is the broker warren-perf connects to when no URI is given.
const DefaultURI = "amqp://guest:guest@localhost:5672/"

// CLI is what the warren-perf command line asks for.
type CLI struct {
	// Config is the run to perform; Progress and Logger are left nil.
	Config Config
	// JSON asks for the result as one JSON line on standard output.
	JSON bool
	// CPUProfile, when set, is a file to write a CPU profile of
	// warren-perf itself to, for finding out what limits the client.
	CPUProfile string
}

// ParseFlags parses warren-perf's arguments (without the program name).
// Flags follow RabbitMQ PerfTest's short names, and each has a long name
// too. Usage and errors go to output. It returns flag.ErrHelp when help was
// asked for.
func ParseFlags(args []string, output io.Writer) (CLI, error) {
	var (
		cli        CLI
		cfg        = &cli.Config
		seconds    float64
		flags      publishFlags
		queueArgs  = queueArgsValue{table: amqp.Table{}}
		autoDelete = true
	)
	fs := flag.NewFlagSet("warren-perf", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprintf(output, "usage: warren-perf [flags]\n\n"+
			"Publishes to and consumes from one queue over AMQP 0-9-1 and reports rates and\n"+
			"publish-to-deliver latency. Flags (-x or --x):\n\n")
		fs.PrintDefaults()
	}
	str := func(p *string, short, long, def, usage string) {
		fs.StringVar(p, short, def, usage)
		fs.StringVar(p, long, def, "same as -"+short)
	}
	num := func(p *int, short, long string, def int, usage string) {
		fs.IntVar(p, short, def, usage)
		fs.IntVar(p, long, def, "same as -"+short)
	}
	boolean := func(p *bool, short, long string, def bool, usage string) {
		fs.BoolVar(p, short, def, usage)
		fs.BoolVar(p, long, def, "same as -"+short)
	}
	str(&cfg.URI, "h", "uri", DefaultURI, "AMQP URI of the broker (amqps:// for TLS)")
	var caFile string
	fs.StringVar(&caFile, "cacert", "", "PEM CA certificates to check an amqps:// broker's certificate with; without it any certificate is accepted, as PerfTest does")
	num(&cfg.Producers, "x", "producers", 1, "number of producers (one connection and channel each)")
	num(&cfg.Consumers, "y", "consumers", 1, "number of consumers (one connection and channel each)")
	num(&cfg.Size, "s", "size", 12, "message size in bytes (at least 8: the send timestamp)")
	num(&cfg.ConfirmWindow, "c", "confirm", 0, "publisher confirms with at most this many unconfirmed messages per producer; 0 disables")
	fs.Var(&flags, "f", `message flag; "persistent" publishes with delivery mode 2 (repeatable)`)
	fs.Var(&flags, "flag", "same as -f")
	num(&cfg.Prefetch, "q", "qos", 0, "consumer prefetch count (basic.qos); 0 sends none")
	boolean(&cfg.AutoAck, "a", "autoack", false, "consume with automatic acknowledgement")
	num(&cfg.MultiAckEvery, "A", "multi-ack-every", 0, "ack with multiple=true every this many messages instead of each one")
	fs.Float64Var(&cfg.Rate, "r", 0, "rate limit per producer in msg/s; 0 means unlimited")
	fs.Float64Var(&cfg.Rate, "rate", 0, "same as -r")
	fs.Float64Var(&seconds, "z", 0, "run duration in seconds; 0 means until -C is reached or interrupted")
	fs.Float64Var(&seconds, "time", 0, "same as -z")
	num(&cfg.MessageCount, "C", "pmessages", 0, "messages per producer, then stop once all are received; 0 means no limit")
	str(&cfg.Queue, "u", "queue", "", "queue name (declared durable); empty means a fresh transient queue")
	fs.Var(&queueArgs, "qa", "queue arguments key=value[,key=value...], e.g. x-queue-type=classic,x-max-length=1000 (repeatable)")
	fs.Var(&queueArgs, "queue-args", "same as -qa")
	boolean(&autoDelete, "ad", "auto-delete", true, "declare the queue auto-delete (use -ad=false to keep it)")
	fs.BoolVar(&cfg.Recover, "recover", false, "connect again after a connection fails (through a load balancer or a failover) instead of ending the run")
	str(&cfg.Label, "id", "label", "", "name of this run in the output")
	fs.StringVar(&cfg.Broker, "broker", "", "name of the broker under test, for the output")
	fs.IntVar(&cfg.BrokerPID, "broker-pid", 0, "pid of the broker; measure the CPU time of its process tree per message")
	fs.StringVar(&cli.CPUProfile, "cpuprofile", "", "write a CPU profile of warren-perf itself to this file")
	fs.BoolVar(&cli.JSON, "json", false, "print the result as one JSON line on stdout (progress and summary go to stderr)")

	if err := fs.Parse(args); err != nil {
		return CLI{}, err
	}
	if fs.NArg() > 0 {
		return CLI{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if seconds < 0 || math.IsNaN(seconds) || math.IsInf(seconds, 0) {
		return CLI{}, fmt.Errorf("-z: duration must be a non-negative number of seconds, got %v", seconds)
	}
	cfg.Duration = time.Duration(seconds * float64(time.Second))
	if caFile != "" {
		tc, err := LoadCA(caFile)
		if err != nil {
			return CLI{}, fmt.Errorf("-cacert: %w", err)
		}
		cfg.TLS = tc
	}
	cfg.Persistent = flags.persistent
	if len(queueArgs.table) > 0 {
		cfg.QueueArgs = queueArgs.table
	}
	cfg.Durable = cfg.Queue != ""
	cfg.KeepQueue = !autoDelete
	if err := cfg.Validate(); err != nil {
		return CLI{}, err
	}
	return cli, nil
}

// publishFlags is the -f flag: PerfTest's message flags. Only
// "persistent" is supported; any other value is an error rather than
// being ignored.
type publishFlags struct{ persistent bool }

func (p *publishFlags) String() string {
	if p != nil && p.persistent {
		return "persistent"
	}
	return ""
}

func (p *publishFlags) Set(s string) error {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "persistent":
		p.persistent = true
		return nil
	default:
		return fmt.Errorf("unsupported message flag %q (supported: persistent)", s)
	}
}

// queueArgsValue is the -qa flag; each use adds to the same table.
type queueArgsValue struct{ table amqp.Table }

func (q *queueArgsValue) String() string {
	if q == nil || len(q.table) == 0 {
		return ""
	}
	return fmt.Sprint(q.table)
}

func (q *queueArgsValue) Set(s string) error {
	t, err := ParseQueueArgs(s)
	if err != nil {
		return err
	}
	for k, v := range t {
		if _, dup := q.table[k]; dup {
			return fmt.Errorf("queue argument %q given twice", k)
		}
		q.table[k] = v
	}
	return nil
}

// ParseQueueArgs parses comma-separated key=value pairs into queue.declare
// arguments. A value that is a decimal integer becomes an int64 (so
// x-max-length=1000 is a number, as brokers require), true/false become
// booleans, and anything else stays a string (x-queue-type=classic). Empty
// input gives an empty table; an item without '=' or with an empty key, or
// a key given twice, is an error.
func ParseQueueArgs(s string) (amqp.Table, error) {
	t := amqp.Table{}
	if strings.TrimSpace(s) == "" {
		return t, nil
	}
	var errs []error
	for item := range strings.SplitSeq(s, ",") {
		key, value, ok := strings.Cut(item, "=")
		key = strings.TrimSpace(key)
		value = strings.TrimSpace(value)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("queue argument %q: want key=value", item))
			continue
		case key == "":
			errs = append(errs, fmt.Errorf("queue argument %q: empty key", item))
			continue
		}
		if _, dup := t[key]; dup {
			errs = append(errs, fmt.Errorf("queue argument %q given twice", key))
			continue
		}
		t[key] = parseArgValue(value)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

func parseArgValue(v string) any {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n
	}
	switch v {
	case "true":
		return true
	case "false":
		return false
	}
	return v
}
