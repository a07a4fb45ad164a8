// Command warren-vrrp is a VRRP daemon that reads keepalived.conf and shares
// a virtual router with keepalived. Run "warren-vrrp -h" for its options.
package main

import (
	"os"

	"github.com/warren-mq/warren/internal/vrrp"
)

func main() {
	os.Exit(vrrp.Main(os.Args[1:], os.Stdout, os.Stderr))
}
