// Command warren runs one message broker node that speaks AMQP 0-9-1 the way
// RabbitMQ does.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "warren: not yet runnable")
	os.Exit(1)
}
