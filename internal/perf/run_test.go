package perf

import (
	"context"
	"net"
	"strings"
	"testing"
)

func TestRunRejectsInvalidConfig(t *testing.T) {
	_, err := Run(context.Background(), Config{URI: "amqp://127.0.0.1:1/", Size: 2, Producers: 1})
	if err == nil || !strings.Contains(err.Error(), "invalid config") || !strings.Contains(err.Error(), "at least 8 bytes") {
		t.Fatalf("error %v, want an invalid config error naming the size", err)
	}
}

func TestRunReportsUnreachableBroker(t *testing.T) {
	// A port that was just free: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = Run(context.Background(), Config{URI: "amqp://guest:guest@" + addr + "/", Producers: 1, Consumers: 1})
	if err == nil || !strings.Contains(err.Error(), "setup 0: connect") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("error %v, want a connect error with the cause", err)
	}
}
