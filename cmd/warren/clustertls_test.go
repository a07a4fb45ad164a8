package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestClusterPortOverTLS runs the cluster port with
// cluster.ssl_options: nodes whose certificates the CA signed join and
// talk over TLS, warrenctl presents a certificate too, and a node or a
// warrenctl without a valid certificate is refused, with the reason on
// both sides.
func TestClusterPortOverTLS(t *testing.T) {
	pki := newTestPKI(t)
	rogue := newTestPKI(t) // a CA the nodes do not trust
	ms := newMembers(t, 4, "TLSCOOKIE")
	n1, n2, plain, stranger := ms[0], ms[1], ms[2], ms[3]
	tlsConfig := func(m *member, p *testPKI, name string) {
		_, cert, key := p.pair(name, "localhost", nil, nil)
		m.config = filepath.Join(p.dir, name+".conf")
		writeConfig(t, m.config,
			"cluster.ssl_options.cacertfile = "+filepath.Join(p.dir, "ca.pem"),
			"cluster.ssl_options.certfile = "+cert,
			"cluster.ssl_options.keyfile = "+key)
		m.ctlArgs = []string{"--config", m.config}
	}
	tlsConfig(n1, pki, "n1")
	tlsConfig(n2, pki, "n2")
	tlsConfig(stranger, rogue, "stranger")
	for _, m := range ms {
		m.start(t)
		m.dial(t, "guest", "guest")
	}

	n2.join(t, n1)
	st := n1.status(t)
	if !slices.Contains(st.RunningNodes, n2.name) {
		t.Fatalf("n2 joined over TLS but is not running: %+v", st)
	}
	// Queue traffic crosses the TLS link.
	ch := channel(t, n1.dial(t, "guest", "guest"))
	if _, err := ch.QueueDeclare("over-tls", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	visible(t, n2.dial(t, "guest", "guest"), "over-tls")
	if acked, nacked := confirmAll(t, channel(t, n2.dial(t, "guest", "guest")), "", "over-tls", "m", 20); acked != 20 || nacked != 0 {
		t.Errorf("publishing through n2 to n1's queue over TLS: %d acked, %d nacked", acked, nacked)
	}

	// warrenctl without a certificate is refused, and says why.
	r := runCtl(t, "-n", n1.name, "--cookie-file", n1.cookie, "cluster_status")
	if r.code == 0 || !strings.Contains(r.stderr, "requires TLS") {
		t.Errorf("warrenctl without a certificate: exit %d\n%s", r.code, r.stderr)
	}
	waitFor(t, func() bool {
		return strings.Contains(n1.stderr.String(), "did not use TLS, which this node's cluster port requires")
	})
	// Its own certificate, given on the command line, will do.
	_, cert, key := pki.pair("ctl", "warrenctl", nil, nil)
	runCtl(t, "-n", n1.name, "--cookie-file", n1.cookie, "--cacertfile", filepath.Join(pki.dir, "ca.pem"),
		"--certfile", cert, "--keyfile", key, "cluster_status").ok(t)

	// A node without TLS cannot join; both sides say why.
	plain.ctl(t, "stop_app").ok(t)
	r = plain.ctl(t, "join_cluster", n1.name)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "requires TLS") {
		t.Errorf("join without TLS: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	waitFor(t, func() bool {
		return strings.Contains(n1.stderr.String(), fmt.Sprintf("connection attempt from '%s' refused: it did not use TLS", plain.name))
	})

	// Nor can a node whose certificate another CA signed.
	stranger.ctl(t, "stop_app").ok(t)
	r = stranger.ctl(t, "join_cluster", n1.name)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "TLS handshake") {
		t.Errorf("join with a certificate of another CA: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	waitFor(t, func() bool { return strings.Contains(n1.stderr.String(), "cluster port: TLS handshake failed") })
	if st := n1.status(t); slices.Contains(st.DiskNodes, plain.name) || slices.Contains(st.DiskNodes, stranger.name) {
		t.Errorf("a node without a valid certificate joined: %+v", st)
	}
}
