// Command warrenctl manages a warren node the way rabbitmqctl manages a
// RabbitMQ node: the same command names, arguments, output and exit codes.
// It talks to the node's cluster port and proves it knows the node's
// cookie.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/warren-mq/warren/internal/cluster"
	"github.com/warren-mq/warren/internal/config"
	"github.com/warren-mq/warren/internal/ctl"
	"github.com/warren-mq/warren/internal/tlsconf"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// options are the command line, parsed.
type options struct {
	node       string
	port       int
	cookieFile string
	// configFile is a node's configuration file, read for its
	// cluster.ssl_options; tls holds them and the --certfile, --keyfile
	// and --cacertfile that override them.
	configFile string
	tls        tlsconf.Options
	quiet      bool
	silent     bool
	json       bool
	timeout    time.Duration
	req        ctl.Request
}

// valued lists the options that take a value; the rest are flags.
var valued = map[string]string{
	"-n": "node", "--node": "node", "--formatter": "formatter", "--port": "port", "--cookie-file": "cookie-file",
	"-t": "timeout", "--timeout": "timeout", "-p": "vhost", "--vhost": "vhost",
	"--config": "config", "--certfile": "certfile", "--keyfile": "keyfile", "--cacertfile": "cacertfile",
	"--priority": "priority", "--apply-to": "apply-to", "--description": "description", "--tags": "tags",
}

func parse(args []string) (*options, error) {
	o := &options{port: ctl.DefaultPort, cookieFile: cluster.DefaultCookieFile(), timeout: 60 * time.Second,
		configFile: os.Getenv("RABBITMQ_CONFIG_FILE")}
	if host, err := os.Hostname(); err == nil {
		short, _, _ := strings.Cut(host, ".")
		o.node = "warren@" + short
	}
	if v := os.Getenv("WARREN_NODENAME"); v != "" {
		o.node = v
	}
	o.req.Options = map[string]string{}
	var positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" || len(a) == 1 {
			positional = append(positional, a)
			continue
		}
		name, val, hasVal := strings.Cut(a, "=")
		if key, ok := valued[name]; ok {
			if !hasVal {
				if i+1 >= len(args) {
					return nil, fmt.Errorf("option %s needs a value", name)
				}
				i++
				val = args[i]
			}
			if err := o.set(key, val); err != nil {
				return nil, err
			}
			continue
		}
		switch name {
		case "-q", "--quiet":
			o.quiet = true
		case "-s", "--silent":
			o.quiet, o.silent = true, true
		case "-l", "--longnames":
		case "--no-table-headers":
			o.silent = true
			o.req.Options["no-table-headers"] = ""
		default:
			if !strings.HasPrefix(name, "--") {
				return nil, fmt.Errorf("unrecognised option %s", name)
			}
			o.req.Options[strings.TrimPrefix(name, "--")] = ""
		}
	}
	if len(positional) == 0 {
		return o, nil
	}
	o.req.Command, o.req.Args = positional[0], positional[1:]
	return o, nil
}

// clusterTLS is the TLS warrenctl dials the node with: the node's
// cluster.ssl_options from its configuration file, with the files the
// command line names instead; nil (plain TCP) when none is set.
func (o *options) clusterTLS() (*tls.Config, error) {
	opts := tlsconf.Default()
	opts.Prefix = "cluster.ssl_options."
	if o.configFile != "" {
		n := config.Defaults()
		if err := n.LoadFile(o.configFile); err != nil {
			return nil, err
		}
		opts = n.ClusterSSL
	}
	if o.tls.CertFile != "" {
		opts.CertFile = o.tls.CertFile
	}
	if o.tls.KeyFile != "" {
		opts.KeyFile = o.tls.KeyFile
	}
	if o.tls.CACertFile != "" {
		opts.CACertFile = o.tls.CACertFile
	}
	if opts.CertFile == "" && opts.KeyFile == "" && opts.CACertFile == "" {
		return nil, nil
	}
	_, client, err := opts.Mutual()
	return client, err
}

func (o *options) set(key, val string) error {
	switch key {
	case "node":
		o.node = val
	case "formatter":
		switch val {
		case "json":
			o.json = true
		case "table", "plain", "string":
		default:
			return fmt.Errorf("unknown formatter %q (json or table)", val)
		}
	case "port":
		p, err := strconv.Atoi(val)
		if err != nil || p <= 0 || p > 65535 {
			return fmt.Errorf("invalid --port %q", val)
		}
		o.port = p
	case "cookie-file":
		o.cookieFile = val
	case "config":
		o.configFile = val
	case "certfile":
		o.tls.CertFile = val
	case "keyfile":
		o.tls.KeyFile = val
	case "cacertfile":
		o.tls.CACertFile = val
	case "timeout":
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid --timeout %q: seconds expected", val)
		}
		o.timeout = time.Duration(n) * time.Second
		o.req.Options["timeout"] = val
	case "vhost":
		o.req.VHost = val
	default:
		o.req.Options[key] = val
	}
	return nil
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage\n\nwarrenctl [--node <node>] [--port <port>] [--cookie-file <file>] [--config <file> | --certfile <file> --keyfile <file> --cacertfile <file>] [--timeout <seconds>] [--quiet] [--silent] [--formatter json] <command> [<command options>]\n\nCommands:")
	for _, c := range ctl.Commands() {
		fmt.Fprintln(w, "   "+c)
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "Error (argument validation): %v\n", err)
		return ctl.ExitUsage
	}
	switch o.req.Command {
	case "", "help":
		if len(o.req.Args) == 1 {
			if u := ctl.Usage(o.req.Args[0]); u != "" {
				fmt.Fprintln(stdout, "Usage\n\n"+u)
				return 0
			}
		}
		usage(stdout)
		if o.req.Command == "" {
			return ctl.ExitUsage
		}
		return 0
	}
	// Options given as --name=value for commands that take them.
	if msg := ctl.Check(&o.req); msg != "" {
		fmt.Fprintf(stderr, "Error (argument validation): %s\nArguments given:\n\t%s\n\n", msg, strings.Join(args, " "))
		if u := ctl.Usage(o.req.Command); u != "" {
			fmt.Fprintf(stderr, "Usage\n\n%s\n", u)
		} else {
			usage(stderr)
		}
		return ctl.ExitUsage
	}
	if o.req.Command == "import_definitions" {
		var in []byte
		if o.req.Args[0] == "-" {
			in, err = io.ReadAll(stdin)
		} else {
			in, err = os.ReadFile(o.req.Args[0])
		}
		if err != nil {
			fmt.Fprintf(stderr, "Error:\n%v\n", err)
			return ctl.ExitDataErr
		}
		o.req.Input = in
	}
	if !o.quiet {
		if b := ctl.Banner(o.node, &o.req); b != "" {
			fmt.Fprintln(stdout, b)
		}
	}
	cookie, err := cluster.ReadCookie(o.cookieFile, false)
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return ctl.ExitUnavailable
	}
	clientTLS, err := o.clusterTLS()
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return ctl.ExitConfig
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	addr := ctl.NodeAddr(o.node, o.port)
	resp, err := ctl.Call(ctx, addr, cluster.Identity{Cookie: cookie, Name: ctl.CallerName(), TLS: clientTLS}, &o.req)
	if err != nil {
		return unreachable(stderr, o, addr, err)
	}
	if resp.Error != "" {
		fmt.Fprintf(stderr, "Error:\n%s\n", resp.Error)
		if resp.Code == 0 {
			return ctl.ExitSoftware
		}
		return resp.Code
	}
	if o.req.Command == "export_definitions" && o.req.Args[0] != "-" {
		if err := os.WriteFile(o.req.Args[0], []byte(resp.Text+"\n"), 0o600); err != nil {
			fmt.Fprintf(stderr, "Error:\n%v\n", err)
			return ctl.ExitSoftware
		}
		return 0
	}
	if resp.Columns == nil && o.silent {
		return 0
	}
	fmt.Fprint(stdout, ctl.Render(resp, ctl.Format{JSON: o.json, NoHeaders: o.silent}))
	return 0
}

// unreachable explains why the node could not be asked, as rabbitmqctl's
// diagnostics do, and returns the exit code.
func unreachable(w io.Writer, o *options, addr string, err error) int {
	fmt.Fprintf(w, "Error: unable to perform an operation on node '%s'.\n\n", o.node)
	switch {
	case errors.Is(err, cluster.ErrBadCookie):
		fmt.Fprintf(w, " * warrenctl reached %s but the node refused its cookie (%s): %v\n", addr, o.cookieFile, err)
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintf(w, " * no answer from %s within %s (--timeout)\n", addr, o.timeout)
		return ctl.ExitTempFail
	default:
		fmt.Fprintf(w, " * cannot reach the node's cluster port at %s: %v\n", addr, err)
		fmt.Fprintln(w, " * is the node running? is its cluster port (--cluster-listen, default 25672) this one (--port)?")
	}
	return ctl.ExitUnavailable
}
