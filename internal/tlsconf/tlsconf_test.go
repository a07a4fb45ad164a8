package tlsconf

import (
	"crypto/tls"
	"strings"
	"testing"
)

// Every OpenSSL name the table knows is a suite Go implements, under the
// IANA name it maps to.
func TestOpenSSLNamesAreGoSuites(t *testing.T) {
	for openssl, iana := range opensslNames {
		id, err := ParseCipher(openssl)
		if err != nil {
			t.Errorf("%s: %v", openssl, err)
			continue
		}
		if got := tls.CipherSuiteName(id); got != iana {
			t.Errorf("%s is %s, want %s", openssl, got, iana)
		}
	}
	if _, err := ParseCipher("TLS_AES_128_GCM_SHA256"); err != nil {
		t.Errorf("a TLS 1.3 suite by name: %v", err)
	}
	if _, err := ParseCipher("NULL-MD5"); err == nil {
		t.Error("NULL-MD5 accepted")
	}
}

func TestSetReadsRabbitMQKeys(t *testing.T) {
	o := Default()
	for _, kv := range [][2]string{
		{"cacertfile", "/ca.pem"}, {"certfile", "/s.pem"}, {"keyfile", "/s.key"}, {"password", "pw"},
		{"verify", "verify_peer"}, {"fail_if_no_peer_cert", "true"}, {"depth", "2"},
		{"versions.1", "tlsv1.3"}, {"versions.2", "tlsv1.2"},
		{"ciphers.1", "ECDHE-RSA-AES256-GCM-SHA384"}, {"honor_cipher_order", "true"},
	} {
		if err := o.Set(kv[0], kv[1]); err != nil {
			t.Fatalf("%s = %s: %v", kv[0], kv[1], err)
		}
	}
	if o.CACertFile != "/ca.pem" || o.Verify != "verify_peer" || !o.FailIfNoPeerCert || o.Depth != 2 ||
		strings.Join(o.Versions, ",") != "tlsv1.3,tlsv1.2" || len(o.Ciphers) != 1 || !o.HonorCipherOrder {
		t.Errorf("options: %+v", o)
	}
	for _, kv := range [][2]string{
		{"verify", "maybe"}, {"fail_if_no_peer_cert", "sometimes"}, {"depth", "-1"},
		{"versions.1", "sslv3"}, {"ciphers.1", "RC2"}, {"no_such_key", "1"},
	} {
		if err := o.Set(kv[0], kv[1]); err == nil {
			t.Errorf("%s = %s accepted", kv[0], kv[1])
		}
	}
}
