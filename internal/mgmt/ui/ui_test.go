package ui_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/mgmt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// node is a broker with its management API and UI, both on loopback.
type node struct {
	srv  *broker.Server
	url  string // base URL of the HTTP server
	amqp string // AMQP URL for guest
}

func startNode(t *testing.T) *node {
	t.Helper()
	srv, err := broker.New(context.Background(), broker.Config{NodeName: "warren@ui-test"})
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for AMQP: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	api := mgmt.New(mgmt.Config{Broker: srv, Version: broker.Version, SampleInterval: 200 * time.Millisecond,
		Listeners: []mgmt.Listener{{Protocol: "amqp", Addr: l.Addr().String()}}})
	ctx, cancel := context.WithCancel(context.Background())
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		api.Run(ctx)
	}()
	hs := httptest.NewServer(api)
	t.Cleanup(func() {
		hs.Close()
		cancel()
		<-sampled
		srv.Close()
		if err := <-served; err != nil {
			t.Errorf("serve AMQP: %v", err)
		}
	})
	return &node{srv: srv, url: hs.URL, amqp: "amqp://guest:guest@" + l.Addr().String() + "/"}
}

// fetch GETs or HEADs path (or sends method) and returns the answer with
// its body read.
func fetch(t *testing.T, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, string(body)
}

// fetchIfNoneMatch GETs url as a browser revalidating its copy does.
func fetchIfNoneMatch(t *testing.T, url, etag string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	req.Header.Set("If-None-Match", etag)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp
}

// TestServesFiles checks what the node's HTTP port answers outside the
// API: the page and its assets with their types, 404 for anything else,
// and the API's own JSON 404 for unknown API paths.
func TestServesFiles(t *testing.T) {
	n := startNode(t)
	for _, tc := range []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", "<title>warren</title>"},
		{"/index.html", "text/html; charset=utf-8", `src="js/app.js"`},
		{"/style.css", "text/css; charset=utf-8", ".panel"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
		{"/js/app.js", "text/javascript; charset=utf-8", "refreshNow"},
		{"/js/pages/overview.js", "text/javascript; charset=utf-8", "export function overviewPage"},
	} {
		resp, body := fetch(t, http.MethodGet, n.url+tc.path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d", tc.path, resp.StatusCode)
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if !strings.Contains(body, tc.contains) {
			t.Errorf("GET %s: body lacks %q", tc.path, tc.contains)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", tc.path, csp)
		}
	}
	for _, p := range []string{"/nope.html", "/js/", "/js", "/static/index.html", "/ui.go", "/../ui.go", "/api"} {
		if resp, _ := fetch(t, http.MethodGet, n.url+p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, resp.StatusCode)
		}
	}
	if resp, _ := fetch(t, http.MethodPost, n.url+"/"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", resp.StatusCode)
	}
	resp, body := fetch(t, http.MethodHead, n.url+"/")
	if resp.StatusCode != http.StatusOK || body != "" {
		t.Errorf("HEAD /: status %d, body %q", resp.StatusCode, body)
	}
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Errorf("GET /: no ETag")
	}
	if resp := fetchIfNoneMatch(t, n.url+"/", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("GET / with If-None-Match %s: status %d, want 304", etag, resp.StatusCode)
	}
	resp, body = fetch(t, http.MethodGet, n.url+"/api/no-such-thing")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, `"error":"Object Not Found"`) {
		t.Errorf("GET /api/no-such-thing: %d %s, want the API's JSON 404", resp.StatusCode, body)
	}
}
