// Command warren-lb is an HAProxy-compatible TCP load balancer that reads
// haproxy.cfg. See docs/warren-lb.md.
package main

import (
	"os"

	"github.com/warren-mq/warren/internal/lb/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
