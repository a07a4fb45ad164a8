package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// testPKI is a certificate authority and the certificates a test signs
// with it, written as PEM files into a directory.
type testPKI struct {
	t    *testing.T
	dir  string
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	next int64
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{t: t, dir: t.TempDir(), pool: x509.NewCertPool(), next: 2}
	p.ca, p.key = p.issue("warren test CA", nil, nil, true)
	p.pool.AddCert(p.ca)
	p.write("ca.pem", "CERTIFICATE", p.ca.Raw)
	return p
}

// issue makes a certificate for cn, signed by parent (self-signed when
// nil), valid for loopback when it is a server's.
func (p *testPKI) issue(cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.next), Subject: pkix.Name{CommonName: cn, Organization: []string{"warren tests"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        isCA, BasicConstraintsValid: true,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	p.next++
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		p.t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		p.t.Fatal(err)
	}
	return c, key
}

func (p *testPKI) write(name, typ string, der []byte) string {
	p.t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// pair issues a leaf certificate for cn (through intermediate, if set)
// and writes it and its key as name.pem and name.key; the certificate
// file carries the intermediate after the leaf.
func (p *testPKI) pair(name, cn string, via *x509.Certificate, viaKey *ecdsa.PrivateKey) (tls.Certificate, string, string) {
	p.t.Helper()
	parent, parentKey := p.ca, p.key
	if via != nil {
		parent, parentKey = via, viaKey
	}
	c, key := p.issue(cn, parent, parentKey, false)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	if via != nil {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: via.Raw})...)
	}
	certPath := filepath.Join(p.dir, name+".pem")
	if err := os.WriteFile(certPath, certPEM, 0o600); err != nil {
		p.t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	keyPath := p.write(name+".key", "EC PRIVATE KEY", kder)
	tc, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		p.t.Fatal(err)
	}
	return tc, certPath, keyPath
}

// TestAMQPSLikeRabbitMQ serves AMQP over TLS beside plain AMQP, configured
// with rabbitmq.conf's keys, and checks what RabbitMQ's verify_peer and
// fail_if_no_peer_cert do, the protocol versions allowed by default, the
// depth of client chains, and the refusals of a broken setup.
func TestAMQPSLikeRabbitMQ(t *testing.T) {
	pki := newTestPKI(t)
	_, serverCert, serverKey := pki.pair("server", "localhost", nil, nil)
	client, _, _ := pki.pair("client", "guest", nil, nil)
	mid, midKey := pki.issue("warren test intermediate", pki.ca, pki.key, true)
	deepClient, _, _ := pki.pair("deep", "deep-client", mid, midKey)
	amqps := freePort(t)
	conf := filepath.Join(pki.dir, "warren.conf")
	write := func(lines ...string) { writeConfig(t, conf, lines...) }
	write("listeners.ssl.default = "+amqps,
		"ssl_options.cacertfile = "+filepath.Join(pki.dir, "ca.pem"),
		"ssl_options.certfile = "+serverCert,
		"ssl_options.keyfile = "+serverKey,
		"ssl_options.verify = verify_peer",
		"ssl_options.fail_if_no_peer_cert = true",
		"ssl_options.depth = 0")
	bin := buildWarren(t)
	n, plain := startNodeWithin(t, bin, t.TempDir(), 10*time.Second, "--config", conf)

	dialTLS := func(cfg *tls.Config) (*amqp091.Connection, error) {
		return amqp091.DialTLS("amqps://guest:guest@"+amqps+"/", cfg)
	}
	base := func() *tls.Config { return &tls.Config{RootCAs: pki.pool, ServerName: "localhost"} }

	// A client with a certificate of the CA: messages go both ways, and
	// both kinds of connection are listed with what they are.
	withCert := base()
	withCert.Certificates = []tls.Certificate{client}
	c, err := dialTLS(withCert)
	if err != nil {
		t.Fatalf("AMQPS with a client certificate: %v\n%s", err, n.stderr.String())
	}
	defer c.Close()
	ch := channel(t, c)
	if _, err := ch.QueueDeclare("over-tls", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := channel(t, plain).Publish("", "over-tls", false, false, amqp091.Publishing{Body: []byte("from plain")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		m, ok, err := ch.Get("over-tls", true)
		return err == nil && ok && string(m.Body) == "from plain"
	})
	out := n.warrenctl(t, "list_connections", "ssl", "ssl_protocol", "peer_cert_subject").ok(t).stdout
	if !strings.Contains(out, "true\ttlsv1.3\tCN=guest,O=warren tests") || !strings.Contains(out, "false\t\t") {
		t.Errorf("list_connections ssl ssl_protocol peer_cert_subject:\n%s", out)
	}
	var conns []struct {
		SSL      bool   `json:"ssl"`
		Protocol any    `json:"ssl_protocol"`
		Subject  any    `json:"peer_cert_subject"`
		Name     string `json:"name"`
	}
	resp := n.apiJSON(t, "/api/connections", &conns)
	tlsSeen := false
	for _, cn := range conns {
		if cn.SSL {
			tlsSeen = cn.Protocol == "tlsv1.3" && cn.Subject == "CN=guest,O=warren tests"
		}
	}
	if !tlsSeen {
		t.Errorf("/api/connections shows no TLS connection with its protocol and subject:\n%s", resp)
	}
	if out := n.warrenctl(t, "status").ok(t).stdout; !strings.Contains(out, "amqp/ssl") {
		t.Errorf("status lists no amqp/ssl listener:\n%s", out)
	}

	// verify_peer with fail_if_no_peer_cert: no certificate, no entry.
	if c, err := dialTLS(base()); err == nil {
		c.Close()
		t.Error("AMQPS without a client certificate was let in despite fail_if_no_peer_cert")
	}
	// depth = 0: a client certificate must be signed by the CA itself.
	deep := base()
	deep.Certificates = []tls.Certificate{deepClient}
	if c, err := dialTLS(deep); err == nil {
		c.Close()
		t.Error("a client chain with an intermediate was let in despite depth = 0")
	}
	// TLS 1.2 and 1.3 only unless versions say otherwise.
	old := base()
	old.Certificates, old.MaxVersion = []tls.Certificate{client}, tls.VersionTLS11
	if c, err := dialTLS(old); err == nil {
		c.Close()
		t.Error("a TLS 1.1 client was let in by default")
	}
	tls12 := base()
	tls12.Certificates, tls12.MaxVersion = []tls.Certificate{client}, tls.VersionTLS12
	if c, err := dialTLS(tls12); err != nil {
		t.Errorf("a TLS 1.2 client was refused: %v", err)
	} else {
		c.Close()
	}

	// Mistakes are refused before the node starts, saying what is wrong.
	for _, tc := range []struct {
		lines []string
		want  string
	}{
		{[]string{"listeners.ssl.default = " + amqps}, "ssl_options.certfile and ssl_options.keyfile are required"},
		{[]string{"listeners.ssl.default = " + amqps, "ssl_options.certfile = " + serverCert, "ssl_options.keyfile = /nonexistent.key"}, "ssl_options.keyfile: open /nonexistent.key"},
		{[]string{"ssl_options.verify = verify_maybe"}, `warren.conf:1: ssl_options.verify: want verify_peer or verify_none, got "verify_maybe"`},
		{[]string{"ssl_options.versions.1 = tlsv1.3", "ssl_options.versions.2 = sslv3"}, `warren.conf:2: ssl_options.versions.2: unknown TLS version "sslv3"`},
		{[]string{"ssl_options.ciphers.1 = ECDHE-RSA-AES256-GCM-SHA384", "ssl_options.ciphers.2 = NULL-MD5"}, `warren.conf:2: ssl_options.ciphers.2: unknown or unsupported cipher suite "NULL-MD5"`},
		{[]string{"listeners.ssl.default = " + amqps, "ssl_options.certfile = " + serverCert, "ssl_options.keyfile = " + serverKey, "ssl_options.verify = verify_peer"}, "verify_peer needs ssl_options.cacertfile"},
	} {
		write(tc.lines...)
		out, err := exec.Command(bin, "-t", "--config", conf).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("warren -t with %q: %v\n%s\nwant %q", tc.lines, err, out, tc.want)
		}
	}
}

// apiJSON gets an API path as guest into v and returns the body.
func (n *node) apiJSON(t *testing.T, path string, v any) string {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+n.mgmt+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %d %v\n%s", path, resp.StatusCode, err, body)
	}
	return string(body)
}

// TestHTTPSLikeRabbitMQ serves the management API and UI, and Prometheus,
// over HTTPS with management.ssl.* and prometheus.ssl.*: plain HTTP is
// off where only the HTTPS port is set, as in RabbitMQ, and on beside it
// where both are; the node's own rabbitmqadmin speaks HTTPS with -s.
func TestHTTPSLikeRabbitMQ(t *testing.T) {
	pki := newTestPKI(t)
	_, serverCert, serverKey := pki.pair("server", "localhost", nil, nil)
	mgmtTLS, promTLS, promPlain := freePort(t), freePort(t), freePort(t)
	_, mgmtPort, _ := net.SplitHostPort(mgmtTLS)
	conf := filepath.Join(pki.dir, "warren.conf")
	var lines []string
	for _, svc := range []string{"management", "prometheus"} {
		lines = append(lines, svc+".ssl.cacertfile = "+filepath.Join(pki.dir, "ca.pem"),
			svc+".ssl.certfile = "+serverCert, svc+".ssl.keyfile = "+serverKey)
	}
	_, promPort, _ := net.SplitHostPort(promTLS)
	_, promPlainPort, _ := net.SplitHostPort(promPlain)
	lines = append(lines, "management.ssl.port = "+mgmtPort, "management.ssl.ip = 127.0.0.1",
		"prometheus.ssl.port = "+promPort, "prometheus.ssl.ip = 127.0.0.1", "prometheus.tcp.port = "+promPlainPort, "prometheus.tcp.ip = 127.0.0.1")
	writeConfig(t, conf, lines...)
	n := startByLog(t, buildWarren(t), conf, false)
	dir := t.TempDir()
	started := n.stderr.String()
	if !strings.Contains(started, "https="+mgmtTLS) || strings.Contains(started, " http=") {
		t.Errorf("with management.ssl.port alone, want HTTPS and no plain HTTP:\n%s", started)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool}}}
	get := func(url string, user bool) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if user {
			req.SetBasicAuth("guest", "guest")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("https://"+mgmtTLS+"/api/overview", true); code != 200 || !strings.Contains(body, `"protocol":"https"`) {
		t.Errorf("GET /api/overview over HTTPS: %d\n%.300s", code, body)
	}
	if code, body := get("https://"+mgmtTLS+"/", false); code != 200 || !strings.Contains(body, "<title>warren</title>") {
		t.Errorf("the UI over HTTPS: %d\n%.200s", code, body)
	}
	for _, url := range []string{"https://" + promTLS + "/metrics", "http://" + promPlain + "/metrics"} {
		if code, body := get(url, false); code != 200 || !strings.Contains(body, "rabbitmq_") {
			t.Errorf("GET %s: %d\n%.200s", url, code, body)
		}
	}
	code, tool := get("https://"+mgmtTLS+"/cli/rabbitmqadmin", false)
	if code != 200 {
		t.Fatalf("GET /cli/rabbitmqadmin over HTTPS: %d", code)
	}
	admin := filepath.Join(dir, "rabbitmqadmin")
	if err := os.WriteFile(admin, []byte(tool), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(admin, "-s", "--ssl-ca-cert-file", filepath.Join(pki.dir, "ca.pem"), "-H", "localhost", "-P", mgmtPort,
		"declare", "queue", "name=over-https").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "queue declared") {
		t.Errorf("rabbitmqadmin -s: %v\n%s", err, out)
	}
}

// TestExternalLoginLikeRabbitMQ logs in with client certificates through
// the EXTERNAL mechanism, as rabbitmq_auth_mechanism_ssl does: offered only
// where auth_mechanisms lists it, the user named by the certificate's
// subject (ssl_cert_login_from), no password, and RabbitMQ's refusal, with
// the reason in the node's log, for an unknown user or no certificate.
func TestExternalLoginLikeRabbitMQ(t *testing.T) {
	pki := newTestPKI(t)
	_, serverCert, serverKey := pki.pair("server", "localhost", nil, nil)
	guestCert, _, _ := pki.pair("guest", "guest", nil, nil)
	nobodyCert, _, _ := pki.pair("nobody", "nobody", nil, nil)
	bin := buildWarren(t)
	start := func(extra ...string) (*node, string) {
		amqps := freePort(t)
		conf := filepath.Join(t.TempDir(), "warren.conf")
		lines := append([]string{"listeners.ssl.default = " + amqps,
			"ssl_options.cacertfile = " + filepath.Join(pki.dir, "ca.pem"),
			"ssl_options.certfile = " + serverCert, "ssl_options.keyfile = " + serverKey,
			"ssl_options.verify = verify_peer", "ssl_options.fail_if_no_peer_cert = false"}, extra...)
		writeConfig(t, conf, lines...)
		// Started by its log: with EXTERNAL alone, a password login
		// cannot tell when the node is up.
		n := startByLog(t, bin, conf, true)
		return n, amqps
	}
	external := func(amqps string, cert *tls.Certificate) (*amqp091.Connection, error) {
		cfg := &tls.Config{RootCAs: pki.pool, ServerName: "localhost"}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		return amqp091.DialTLS_ExternalAuth("amqps://"+amqps+"/", cfg)
	}
	// amqp091-go reports a 403 during the handshake as its own
	// ErrCredentials, without the server's text; the node's log has the
	// reason.
	refused := func(n *node, err error, reason string) {
		t.Helper()
		var ae *amqp091.Error
		if !errors.As(err, &ae) || ae.Code != 403 {
			t.Errorf("want 403 ACCESS_REFUSED for EXTERNAL, got %v", err)
		}
		waitFor(t, func() bool {
			return strings.Contains(n.stderr.String(), `mechanism=EXTERNAL reason="`+reason)
		})
	}

	// Not offered unless configured.
	plainOnly, amqps := start()
	if c, err := external(amqps, &guestCert); err == nil {
		c.Close()
		t.Error("EXTERNAL accepted by a node whose auth_mechanisms do not list it")
	} else if !errors.Is(err, amqp091.ErrSASL) {
		t.Errorf("EXTERNAL on a node without it: %v, want the client to find no common mechanism", err)
	}
	_ = plainOnly

	// The default: the user is the subject's distinguished name.
	n, amqps := start("auth_mechanisms.1 = EXTERNAL", "auth_mechanisms.2 = PLAIN")
	dn := "CN=guest,O=warren tests"
	n.warrenctl(t, "add_user", dn, "unused-password").ok(t)
	n.warrenctl(t, "set_permissions", "-p", "/", dn, ".*", ".*", ".*").ok(t)
	c, err := external(amqps, &guestCert)
	if err != nil {
		t.Fatalf("EXTERNAL as %q: %v\n%s", dn, err, n.stderr.String())
	}
	if _, err := channel(t, c).QueueDeclare("by-certificate", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if out := n.warrenctl(t, "list_connections", "user", "auth_mechanism").ok(t).stdout; !strings.Contains(out, dn+"\tEXTERNAL") {
		t.Errorf("list_connections user auth_mechanism:\n%s", out)
	}
	c.Close()
	_, err = external(amqps, &nobodyCert)
	refused(n, err, `user 'CN=nobody,O=warren tests' does not exist`)
	_, err = external(amqps, nil)
	refused(n, err, "no peer certificate")
	// PLAIN stays on where it is listed.
	if c, err := amqp091.DialTLS("amqps://guest:guest@"+amqps+"/", &tls.Config{RootCAs: pki.pool, ServerName: "localhost"}); err != nil {
		t.Errorf("PLAIN over TLS beside EXTERNAL: %v", err)
	} else {
		c.Close()
	}

	// ssl_cert_login_from = common_name: the user is the CN; EXTERNAL
	// alone refuses PLAIN.
	n2, amqps2 := start("auth_mechanisms.1 = EXTERNAL", "ssl_cert_login_from = common_name")
	if c, err := external(amqps2, &guestCert); err != nil {
		t.Errorf("EXTERNAL as guest by common name: %v\n%s", err, n2.stderr.String())
	} else {
		c.Close()
	}
	if c, err := amqp091.DialTLS("amqps://guest:guest@"+amqps2+"/", &tls.Config{RootCAs: pki.pool, ServerName: "localhost"}); err == nil {
		c.Close()
		t.Error("PLAIN accepted where auth_mechanisms lists EXTERNAL only")
	}
}

// writeConfig writes a configuration file of lines.
func writeConfig(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startByLog starts a node with a configuration file and waits for its
// "node started" line: for nodes whose AMQP a password login cannot
// reach, or whose HTTP ports the file decides (plainHTTP false).
func startByLog(t *testing.T, bin, conf string, plainHTTP bool) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{addr: freePort(t), mgmt: freePort(t), cluster: freePort(t), cookie: filepath.Join(dir, "cookie"), stderr: &lockedBuffer{}}
	args := []string{"--config", conf, "--data-dir", filepath.Join(dir, "data"), "--amqp-listen", n.addr,
		"--cluster-listen", n.cluster, "--cookie-file", n.cookie}
	if plainHTTP {
		args = append(args, "--mgmt-listen", n.mgmt, "--prometheus-listen", "127.0.0.1:0")
	}
	n.cmd = exec.Command(bin, args...)
	n.cmd.Stderr = n.stderr
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.cmd.Process.Kill(); n.cmd.Wait() })
	waitFor(t, func() bool { return strings.Contains(n.stderr.String(), "node started") })
	return n
}
