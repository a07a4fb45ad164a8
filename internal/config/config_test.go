package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rabbitmq.conf")
	os.WriteFile(path, []byte(`# a comment
listeners.tcp.default = 127.0.0.1:5680
default_user = admin
default_pass = s3cret
loopback_users.guest = false
vm_memory_high_watermark.relative = 0.6
heartbeat = 30
frame_max = 65536
channel_max = 100
log.level = debug
msg_store_file_size_limit = 16MiB
`), 0o644)
	n := Defaults()
	if err := n.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if n.AMQPListen != "127.0.0.1:5680" || n.DefaultUser != "admin" || n.DefaultPass != "s3cret" ||
		len(n.LoopbackUsers) != 0 || n.MemoryHighWater != 0.6 || n.Heartbeat != 30*time.Second ||
		n.FrameMax != 65536 || n.ChannelMax != 100 || n.LogLevel != "debug" || n.SegmentSize != 16<<20 {
		t.Fatalf("loaded %+v", n)
	}
}

func TestLoadFileReportsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(path, []byte("heartbeat = soon\nno equals sign\nlisteners.tcp.default = 5672\nfrobnicate = 1\nmsg_store_file_size_limit = 100\n"), 0o644)
	n := Defaults()
	err := n.LoadFile(path)
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 4 {
		t.Fatalf("err = %v", err)
	}
	for i, want := range []string{"bad.conf:1: heartbeat", "bad.conf:2: expected", "bad.conf:4: frobnicate: unknown setting", "bad.conf:5: msg_store_file_size_limit: want a size"} {
		if !strings.Contains(ce.Problems[i], want) {
			t.Errorf("problem %d = %q, want it to contain %q", i, ce.Problems[i], want)
		}
	}
	if !slices.Equal(Defaults().LoopbackUsers, []string{"guest"}) {
		t.Fatal("defaults changed")
	}
}

// HTTPS for an HTTP service: .ip may come before .port, and without a
// plain port in the file the plain listener is off, as in RabbitMQ; with
// one, both serve.
func TestHTTPSListeners(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rabbitmq.conf")
	os.WriteFile(path, []byte("management.ssl.ip = 127.0.0.1\nmanagement.ssl.port = 15671\nmanagement.ssl.certfile = /c.pem\n"+
		"prometheus.tcp.port = 15692\nprometheus.ssl.port = 15691\nauth_mechanisms.1 = EXTERNAL\nauth_mechanisms.2 = PLAIN\n"), 0o644)
	n := Defaults()
	if err := n.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if n.MgmtListen != "" || n.MgmtTLSListen != "127.0.0.1:15671" || n.MgmtSSL.CertFile != "/c.pem" {
		t.Errorf("management: plain %q, TLS %q, %+v", n.MgmtListen, n.MgmtTLSListen, n.MgmtSSL)
	}
	if n.PrometheusListen != ":15692" || n.PrometheusTLSListen != ":15691" {
		t.Errorf("prometheus: plain %q, TLS %q", n.PrometheusListen, n.PrometheusTLSListen)
	}
	if strings.Join(n.AuthMechanisms, " ") != "EXTERNAL PLAIN" {
		t.Errorf("auth_mechanisms: %v", n.AuthMechanisms)
	}
	os.WriteFile(path, []byte("auth_mechanisms.1 = KERBEROS\nmanagement.ssl.verify = always\n"), 0o644)
	bad := Defaults()
	err := bad.LoadFile(path)
	for _, want := range []string{`rabbitmq.conf:1: auth_mechanisms.1: want PLAIN, AMQPLAIN or EXTERNAL, got "KERBEROS"`,
		`rabbitmq.conf:2: management.ssl.verify: want verify_peer or verify_none, got "always"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}

// TestClusterTLS reads cluster.ssl_options, and refuses a cluster port
// TLS setting that lacks one of its three files, naming the keys.
func TestClusterTLS(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rabbitmq.conf")
	os.WriteFile(path, []byte("cluster.ssl_options.certfile = /n.pem\ncluster.ssl_options.keyfile = /n.key\n"+
		"cluster.ssl_options.versions.1 = tlsv1.3\n"), 0o644)
	n := Defaults()
	if err := n.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if !n.ClusterTLS() || n.ClusterSSL.CertFile != "/n.pem" || n.ClusterSSL.KeyFile != "/n.key" || len(n.ClusterSSL.Versions) != 1 {
		t.Fatalf("cluster.ssl_options: %+v", n.ClusterSSL)
	}
	_, err := n.TLSConfigs()
	want := "cluster port TLS (cluster.ssl_options): cluster.ssl_options.cacertfile, cluster.ssl_options.certfile and cluster.ssl_options.keyfile are all required"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("without a CA file: %v, want %q", err, want)
	}
	if d := Defaults(); d.ClusterTLS() {
		t.Error("the defaults ask for TLS on the cluster port")
	}
	os.WriteFile(path, []byte("cluster.ssl_options.verify = sometimes\n"), 0o644)
	bad := Defaults()
	if err := bad.LoadFile(path); err == nil || !strings.Contains(err.Error(), "rabbitmq.conf:1: cluster.ssl_options.verify") {
		t.Errorf("bad cluster.ssl_options line: %v", err)
	}
}
