package ctl

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/warren-mq/warren/internal/cluster"
)

// DefaultPort is the cluster port warrenctl contacts unless told
// otherwise, RabbitMQ's distribution port.
const DefaultPort = 25672

// NodeAddr turns a node name (name@host, or a bare name meaning this
// host) and a port into the address of its cluster port.
func NodeAddr(node string, port int) string {
	host := "localhost"
	if _, h, ok := strings.Cut(node, "@"); ok && h != "" {
		host = h
	}
	if self, err := os.Hostname(); err == nil {
		short, _, _ := strings.Cut(self, ".")
		if host == self || host == short {
			host = "localhost"
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// Call sends one request to the node at addr, authenticated with cookie,
// and returns its answer.
func Call(ctx context.Context, addr, cookie string, req *Request) (Response, error) {
	nc, err := cluster.Dial(ctx, addr, cookie, cluster.ServiceCtl)
	if err != nil {
		return Response{}, err
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	if err := writeMsg(nc, req); err != nil {
		return Response{}, fmt.Errorf("send command: %w", err)
	}
	var resp Response
	if err := readMsg(nc, &resp); err != nil {
		if ctx.Err() != nil {
			return Response{}, ctx.Err()
		}
		return Response{}, fmt.Errorf("read answer: %w", err)
	}
	return resp, nil
}
