package mgmt_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/meta"
)

// BenchmarkQueuesPage measures what the web UI's queue page costs on a
// node with 10,000 queues and 1,000 connections: one
// GET /api/queues?page=1&page_size=100.
func BenchmarkQueuesPage(b *testing.B) {
	// The default sampling interval, as a node runs.
	n := startNodeSampling(b, 5*time.Second)
	ctx := context.Background()
	for i := range 10000 {
		if _, err := n.srv.Meta().DeclareQueue(ctx, meta.Queue{VHost: "/", Name: fmt.Sprintf("q-%05d", i), Durable: false, Node: "warren@test"}); err != nil {
			b.Fatal(err)
		}
	}
	var conns []*amqp091.Connection
	for range 1000 {
		c, err := amqp091.Dial(n.amqp)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Channel(); err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	client := &http.Client{}
	defer client.CloseIdleConnections()
	get := func(path string) {
		req, _ := http.NewRequest("GET", n.api+path, nil)
		req.SetBasicAuth("guest", "guest")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	for _, path := range []string{"/api/queues?page=1&page_size=100", "/api/overview", "/api/connections?page=1&page_size=100"} {
		b.Run(path, func(b *testing.B) {
			for range b.N {
				get(path)
			}
		})
	}
}
