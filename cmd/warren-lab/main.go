// Command warren-lab runs the runbooks' whole HA stack on one machine, in
// network namespaces that stand for its hosts, so that every failure can
// be tried by hand. Run "warren-lab help" for its commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/warren-mq/warren/internal/lab"
)

const usage = `usage: warren-lab [-dir DIR] [-bin DIR] [-examples DIR] [-name NAME] [-reference] COMMAND [ARGS]

Commands:
  up                      make the hosts and start the stack (3 warren nodes,
                          lb1 and lb2 with warren-lb and warren-vrrp, a client)
  status                  hosts, programs, the virtual IP, the cluster, queues
  kill HOST[:PROGRAM]     SIGKILL a host's programs and pull its cable
                          (or SIGKILL one program: lb1:warren-lb)
  stop HOST[:PROGRAM]     stop a host's programs gracefully (SIGTERM)
  start HOST[:PROGRAM]    plug a host's cable in and start its programs
  freeze HOST[:PROGRAM]   SIGSTOP a host's programs; thaw lets them go on
  partition HOST...       cut hosts off from the others, programs running
  heal                    plug every cable back in
  exec HOST COMMAND...    run a command on a host (the lab's binaries first
                          on PATH), e.g. exec client warren-perf -recover -h amqp://...
  down                    stop everything and remove every namespace and file

Hosts: node1 node2 node3 lb1 lb2 client. Needs root.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// invokedAs is how the user ran this program, for the hints it prints:
// bin/warren-lab from the repository, warren-lab when on PATH.
func invokedAs() string {
	if p, err := exec.LookPath("warren-lab"); err == nil {
		if self, err := os.Executable(); err == nil && p == self {
			return "warren-lab"
		}
	}
	return os.Args[0]
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("warren-lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	self, _ := os.Executable()
	dir := fs.String("dir", "/run/warren-lab", "the lab's state: configuration, data, logs, pid files")
	bin := fs.String("bin", filepath.Dir(self), "where warren, warrenctl, warren-lb and warren-vrrp are")
	examples := fs.String("examples", "examples", "the examples directory the configuration comes from")
	name := fs.String("name", "wlab", "the lab's name, which its namespaces begin with")
	reference := fs.Bool("reference", false, "run Debian's rabbitmq-server, haproxy and keepalived instead, as the reference (up only; later commands read it from the lab)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	absBin, err := filepath.Abs(*bin)
	if err != nil {
		fmt.Fprintln(stderr, "warren-lab:", err)
		return 1
	}
	absEx, err := filepath.Abs(*examples)
	if err != nil {
		fmt.Fprintln(stderr, "warren-lab:", err)
		return 1
	}
	l := &lab.Lab{Dir: *dir, Bin: absBin, Examples: absEx, Prefix: *name, Out: stdout, Reference: *reference, Cmd: invokedAs()}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	if cmd == "help" || cmd == "-h" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "warren-lab: needs root: it makes network namespaces, a bridge and a virtual IP (run it with sudo)")
		return 1
	}
	if cmd != "up" && !l.Open() && cmd != "down" {
		fmt.Fprintf(stderr, "warren-lab: no lab is up in %s (warren-lab up starts one)\n", *dir)
		return 1
	}
	one := func(f func(string) error) error {
		if len(rest) != 1 {
			return fmt.Errorf("%s takes one HOST or HOST:PROGRAM", cmd)
		}
		return f(rest[0])
	}
	switch cmd {
	case "up":
		err = l.Up(ctx)
	case "down":
		err = l.Down()
		if err == nil {
			fmt.Fprintln(stdout, "the lab is down: its namespaces, processes and files are gone")
		}
	case "status":
		err = l.Status(ctx)
	case "kill":
		err = one(l.Kill)
	case "stop":
		err = one(l.Stop)
	case "start":
		err = one(l.Start)
	case "freeze":
		err = one(func(t string) error { return l.Freeze(t, true) })
	case "thaw":
		err = one(func(t string) error { return l.Freeze(t, false) })
	case "partition":
		if len(rest) == 0 {
			err = errors.New("partition takes one or more HOSTs")
		} else {
			err = l.Partition(rest...)
		}
	case "heal":
		err = l.Heal()
	case "exec":
		if len(rest) < 2 {
			err = errors.New("exec takes a HOST and a COMMAND")
			break
		}
		var c *exec.Cmd
		if c, err = l.Command(rest[0], rest[1:]...); err == nil {
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, stdout, stderr
			err = c.Run()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return ee.ExitCode()
			}
		}
	default:
		fmt.Fprintf(stderr, "warren-lab: unknown command %q\n", cmd)
		fmt.Fprint(stderr, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "warren-lab:", err)
		return 1
	}
	return 0
}
