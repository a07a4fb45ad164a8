package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCookieFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "home", ".warren.cookie")
	if _, err := ReadCookie(path, false); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing cookie without create: %v", err)
	}
	c, err := ReadCookie(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != cookieLen || strings.Trim(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		t.Errorf("new cookie %q", c)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o400 {
		t.Errorf("cookie mode %04o, want 0400", st.Mode().Perm())
	}
	again, err := ReadCookie(path, true)
	if err != nil || again != c {
		t.Errorf("second read = %q, %v; want %q", again, err, c)
	}
	// What some runbooks suggest: it must fail, saying how to fix it.
	if err := os.Chmod(path, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err = ReadCookie(path, true)
	if err == nil || !strings.Contains(err.Error(), "chmod 400 "+path) || !strings.Contains(err.Error(), "0777") {
		t.Errorf("world-readable cookie: %v", err)
	}
}

func startServer(t *testing.T, cookie string) (*Server, string) {
	return startTLSServer(t, cookie, nil)
}

// startTLSServer starts an echoing ServiceCtl on a cluster port that
// takes TLS with cfg (plain TCP if nil).
func startTLSServer(t *testing.T, cookie string, cfg *tls.Config) (*Server, string) {
	t.Helper()
	s := NewServer(cookie, cfg, nil)
	s.Handle(ServiceCtl, func(nc net.Conn, _ string) {
		defer nc.Close()
		io.Copy(nc, nc)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s, l.Addr().String()
}

func TestHandshake(t *testing.T) {
	_, addr := startServer(t, "SECRETCOOKIE")
	nc, err := (Identity{Cookie: "SECRETCOOKIE", Name: "test@here"}).Dial(context.Background(), addr, ServiceCtl)
	if err != nil {
		t.Fatal(err)
	}
	nc.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(nc, buf); err != nil || string(buf) != "ping" {
		t.Errorf("echo: %q %v", buf, err)
	}
	nc.Close()

	_, err = (Identity{Cookie: "WRONG", Name: "test@here"}).Dial(context.Background(), addr, ServiceCtl)
	if !errors.Is(err, ErrBadCookie) || !strings.Contains(err.Error(), "--cookie-file") {
		t.Errorf("wrong cookie: %v", err)
	}
	if _, err = (Identity{Cookie: "SECRETCOOKIE", Name: "test@here"}).Dial(context.Background(), addr, Service(99)); err == nil || !strings.Contains(err.Error(), "not offered") {
		t.Errorf("unknown service: %v", err)
	}
}

// TestServerProvesCookie: a listener that does not know the cookie cannot
// pass for the node, even if it echoes what the client sends.
func TestServerProvesCookie(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		hello := make([]byte, 4+1+nonceLen+1+len("test@here"))
		io.ReadFull(nc, hello)
		nc.Write(append([]byte{statusOK}, make([]byte, nonceLen)...))
		p := make([]byte, 32)
		io.ReadFull(nc, p)
		nc.Write(append([]byte{statusOK}, p...))
	}()
	if _, err := (Identity{Cookie: "SECRETCOOKIE", Name: "test@here"}).Dial(context.Background(), l.Addr().String(), ServiceCtl); !errors.Is(err, ErrBadCookie) {
		t.Errorf("impostor accepted: %v", err)
	}
}

// testCA issues certificates for loopback from a new CA.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	ca := &testCA{pool: x509.NewCertPool()}
	ca.cert, ca.key = ca.issue(t, true)
	ca.pool.AddCert(ca.cert)
	return ca
}

func (ca *testCA) issue(t *testing.T, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "cluster test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        isCA, BasicConstraintsValid: true, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	parent, parentKey := tmpl, key
	if !isCA {
		parent, parentKey = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// ends returns a server and a client configuration, each with its own
// certificate of this CA, each trusting it.
func (ca *testCA) ends(t *testing.T) (server, client *tls.Config) {
	pair := func() tls.Certificate {
		c, k := ca.issue(t, false)
		return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k}
	}
	server = &tls.Config{Certificates: []tls.Certificate{pair()}, ClientCAs: ca.pool, ClientAuth: tls.RequireAndVerifyClientCert}
	client = &tls.Config{Certificates: []tls.Certificate{pair()}, RootCAs: ca.pool}
	return server, client
}

// TestTLSPort: a cluster port with TLS takes clients with certificates
// of its CA, and refuses, saying why, a plain client, a client of
// another CA; a TLS client of a plain port learns it does not use TLS.
func TestTLSPort(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	serverCfg, clientCfg := ca.ends(t)
	_, strangerCfg := other.ends(t)
	_, addr := startTLSServer(t, "SECRETCOOKIE", serverCfg)
	ctx := context.Background()

	nc, err := (Identity{Cookie: "SECRETCOOKIE", Name: "test@here", TLS: clientCfg}).Dial(ctx, addr, ServiceCtl)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := nc.(*tls.Conn); !ok {
		t.Errorf("dialled a %T, want a TLS connection", nc)
	}
	nc.Write([]byte("ping"))
	got := make([]byte, 4)
	if _, err := io.ReadFull(nc, got); err != nil || string(got) != "ping" {
		t.Errorf("echo over TLS: %q %v", got, err)
	}
	nc.Close()

	_, err = (Identity{Cookie: "SECRETCOOKIE", Name: "test@here"}).Dial(ctx, addr, ServiceCtl)
	if !errors.Is(err, ErrNeedTLS) || !strings.Contains(err.Error(), "cluster.ssl_options") {
		t.Errorf("plain client of a TLS port: %v", err)
	}
	_, err = (Identity{Cookie: "SECRETCOOKIE", Name: "test@here", TLS: strangerCfg}).Dial(ctx, addr, ServiceCtl)
	if err == nil || !strings.Contains(err.Error(), "TLS handshake") {
		t.Errorf("client of another CA: %v", err)
	}
	// The right certificate does not replace the cookie.
	_, err = (Identity{Cookie: "WRONG", Name: "test@here", TLS: clientCfg}).Dial(ctx, addr, ServiceCtl)
	if !errors.Is(err, ErrBadCookie) {
		t.Errorf("wrong cookie over TLS: %v", err)
	}

	_, plainAddr := startServer(t, "SECRETCOOKIE")
	_, err = (Identity{Cookie: "SECRETCOOKIE", Name: "test@here", TLS: clientCfg}).Dial(ctx, plainAddr, ServiceCtl)
	if err == nil || !strings.Contains(err.Error(), "does not use TLS") {
		t.Errorf("TLS client of a plain port: %v", err)
	}
}
