package ctl

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/warren-mq/warren/internal/cluster"
)

// DefaultPort is the cluster port warrenctl contacts unless told
// otherwise, RabbitMQ's distribution port.
const DefaultPort = cluster.DefaultPort

// NodeAddr turns a node name (name@host, name@host:port, or a bare name
// meaning this host) and a port into the address of its cluster port; a
// port in the name wins.
func NodeAddr(node string, port int) string {
	n, err := cluster.ParseNodeName(node, "localhost")
	if err != nil {
		n = cluster.NodeName{Name: node, Host: "localhost"}
	}
	if self, err := os.Hostname(); err == nil {
		short, _, _ := strings.Cut(self, ".")
		if n.Host == self || n.Host == short {
			n.Host = "localhost"
		}
	}
	return n.Addr(port)
}

// CallerName is how warrenctl names itself to a node, as rabbitmqctl's
// temporary Erlang nodes are named.
func CallerName() string {
	host, _ := os.Hostname()
	short, _, _ := strings.Cut(host, ".")
	return fmt.Sprintf("warrenctl-%d@%s", os.Getpid(), short)
}

// Call sends one request to the node at addr, introduced as id, and
// returns its answer.
func Call(ctx context.Context, addr string, id cluster.Identity, req *Request) (Response, error) {
	var resp Response
	if err := id.Call(ctx, addr, cluster.ServiceCtl, req, &resp); err != nil {
		return Response{}, err
	}
	return resp, nil
}
