// Package tlsconf turns the TLS settings of a rabbitmq.conf-style file
// (ssl_options.cacertfile, certfile, keyfile, password, verify,
// fail_if_no_peer_cert, depth, versions.N, ciphers.N, honor_cipher_order)
// into a crypto/tls configuration, so that every listener that speaks TLS
// reads the same keys the same way RabbitMQ does.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Options are one listener's TLS settings, as rabbitmq.conf names them.
type Options struct {
	CACertFile string // PEM CA certificates that client certificates must chain to
	CertFile   string // PEM server certificate, with its intermediates
	KeyFile    string // PEM private key of CertFile
	Password   string // of KeyFile, when it is encrypted
	// Verify is "verify_peer" (ask for a client certificate and check it)
	// or "verify_none" (the default: ask for none).
	Verify string
	// FailIfNoPeerCert refuses, with verify_peer, a client that presents
	// no certificate.
	FailIfNoPeerCert bool
	// Depth is the most intermediate certificates allowed between a
	// client's certificate and a trusted CA; negative: no limit beyond
	// the chain's own.
	Depth int
	// Versions are the protocol versions accepted ("tlsv1.3", "tlsv1.2",
	// "tlsv1.1", "tlsv1"); none given means TLS 1.2 and 1.3.
	Versions []string
	// Ciphers are the TLS 1.2 cipher suites accepted, by OpenSSL or IANA
	// name; none given means Go's secure defaults. TLS 1.3's suites are
	// not configurable and always on.
	Ciphers []string
	// Prefix is how the settings are named in messages: "ssl_options."
	// (the default), "management.ssl." or "prometheus.ssl.".
	Prefix string
	// HonorCipherOrder is accepted for compatibility: Go always picks
	// the suite by its own order of preference, which puts AES-GCM first
	// on hardware with AES instructions and ChaCha20 elsewhere.
	HonorCipherOrder bool
}

// Default returns the settings of a file that names none: verify_none,
// no depth limit, TLS 1.2 and 1.3.
func Default() Options { return Options{Verify: "verify_none", Depth: -1} }

// key names one setting in messages.
func (o Options) key(name string) string {
	if o.Prefix == "" {
		return "ssl_options." + name
	}
	return o.Prefix + name
}

// Set applies one setting, named as in rabbitmq.conf after its prefix
// (ssl_options., management.ssl. or prometheus.ssl.): cacertfile,
// certfile, keyfile, password, verify, fail_if_no_peer_cert, depth,
// versions.N, ciphers.N, honor_cipher_order or honor_ecc_order. Versions
// and ciphers keep the order of the file.
func (o *Options) Set(key, val string) error {
	flag := func() (bool, error) {
		b, err := strconv.ParseBool(val)
		if err != nil {
			return false, fmt.Errorf("want true or false, got %q", val)
		}
		return b, nil
	}
	var err error
	switch {
	case key == "cacertfile":
		o.CACertFile = val
	case key == "certfile":
		o.CertFile = val
	case key == "keyfile":
		o.KeyFile = val
	case key == "password":
		o.Password = val
	case key == "verify":
		if val != "verify_peer" && val != "verify_none" {
			return fmt.Errorf("want verify_peer or verify_none, got %q", val)
		}
		o.Verify = val
	case key == "fail_if_no_peer_cert":
		o.FailIfNoPeerCert, err = flag()
	case key == "depth":
		d, perr := strconv.Atoi(val)
		if perr != nil || d < 0 {
			return fmt.Errorf("want a number of intermediate certificates (0 or more), got %q", val)
		}
		o.Depth = d
	case strings.HasPrefix(key, "versions."):
		if err := ParseVersion(val); err != nil {
			return err
		}
		o.Versions = append(o.Versions, val)
	case strings.HasPrefix(key, "ciphers."):
		if _, err := ParseCipher(val); err != nil {
			return err
		}
		o.Ciphers = append(o.Ciphers, val)
	case key == "honor_cipher_order" || key == "honor_ecc_order":
		o.HonorCipherOrder, err = flag()
	default:
		return fmt.Errorf("unknown setting %s", o.key(key))
	}
	return err
}

// versions maps rabbitmq.conf's version names to Go's.
var versions = map[string]uint16{
	"tlsv1.3": tls.VersionTLS13,
	"tlsv1.2": tls.VersionTLS12,
	"tlsv1.1": tls.VersionTLS11,
	"tlsv1":   tls.VersionTLS10,
}

// ParseVersion checks one versions.N value.
func ParseVersion(v string) error {
	if _, ok := versions[v]; !ok {
		return fmt.Errorf("unknown TLS version %q (want tlsv1.3, tlsv1.2, tlsv1.1 or tlsv1)", v)
	}
	return nil
}

// ParseCipher checks one ciphers.N value, an OpenSSL or IANA suite name,
// and returns Go's suite ID.
func ParseCipher(name string) (uint16, error) {
	if iana, ok := opensslNames[name]; ok {
		name = iana
	}
	for _, list := range [][]*tls.CipherSuite{tls.CipherSuites(), tls.InsecureCipherSuites()} {
		for _, cs := range list {
			if cs.Name == name {
				return cs.ID, nil
			}
		}
	}
	return 0, fmt.Errorf("unknown or unsupported cipher suite %q (OpenSSL names such as ECDHE-RSA-AES256-GCM-SHA384, or IANA names such as TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)", name)
}

// opensslNames maps the OpenSSL names of the suites Go implements, which
// RabbitMQ's ciphers.N take, to their IANA names. (TLS 1.3's suites have
// the same name in both.)
var opensslNames = map[string]string{
	"ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
	"ECDHE-RSA-AES128-GCM-SHA256":   "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	"ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
	"ECDHE-RSA-AES256-GCM-SHA384":   "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
	"ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
	"ECDHE-RSA-CHACHA20-POLY1305":   "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
	"ECDHE-ECDSA-AES128-SHA":        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
	"ECDHE-RSA-AES128-SHA":          "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
	"ECDHE-ECDSA-AES256-SHA":        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
	"ECDHE-RSA-AES256-SHA":          "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
	"ECDHE-ECDSA-AES128-SHA256":     "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
	"ECDHE-RSA-AES128-SHA256":       "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
	"AES128-GCM-SHA256":             "TLS_RSA_WITH_AES_128_GCM_SHA256",
	"AES256-GCM-SHA384":             "TLS_RSA_WITH_AES_256_GCM_SHA384",
	"AES128-SHA":                    "TLS_RSA_WITH_AES_128_CBC_SHA",
	"AES256-SHA":                    "TLS_RSA_WITH_AES_256_CBC_SHA",
	"AES128-SHA256":                 "TLS_RSA_WITH_AES_128_CBC_SHA256",
	"ECDHE-RSA-DES-CBC3-SHA":        "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
	"DES-CBC3-SHA":                  "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
}

// Server returns the configuration of a listener that serves TLS with
// these settings: the certificate and key loaded, client certificates
// asked for and checked as Verify and FailIfNoPeerCert say.
func (o Options) Server() (*tls.Config, error) {
	if o.CertFile == "" || o.KeyFile == "" {
		return nil, fmt.Errorf("%s and %s are required for a TLS listener", o.key("certfile"), o.key("keyfile"))
	}
	cert, err := o.keyPair()
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if len(o.Versions) > 0 {
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS13, tls.VersionTLS10
		for _, v := range o.Versions {
			id, ok := versions[v]
			if !ok {
				return nil, ParseVersion(v)
			}
			cfg.MinVersion, cfg.MaxVersion = min(cfg.MinVersion, id), max(cfg.MaxVersion, id)
		}
	}
	for _, c := range o.Ciphers {
		id, err := ParseCipher(c)
		if err != nil {
			return nil, err
		}
		cfg.CipherSuites = append(cfg.CipherSuites, id)
	}
	switch o.Verify {
	case "", "verify_none":
	case "verify_peer":
		if o.CACertFile == "" {
			return nil, fmt.Errorf("%s = verify_peer needs %s, the CAs that client certificates must chain to", o.key("verify"), o.key("cacertfile"))
		}
		pool, err := loadPool(o.key("cacertfile"), o.CACertFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if o.FailIfNoPeerCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		if o.Depth >= 0 {
			depth, depthKey := o.Depth, o.key("depth")
			cfg.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
				for _, chain := range chains {
					// A chain is the client's certificate, its
					// intermediates and the trusted CA.
					if len(chain)-2 <= depth {
						return nil
					}
				}
				if len(chains) == 0 {
					return nil // no certificate, allowed without fail_if_no_peer_cert
				}
				return fmt.Errorf("client certificate chain has more than %d intermediate certificates (%s)", depth, depthKey)
			}
		}
	default:
		return nil, fmt.Errorf("%s: %q is neither verify_peer nor verify_none", o.key("verify"), o.Verify)
	}
	return cfg, nil
}

// Mutual returns the two ends of a link on which both sides present a
// certificate that the other verifies against CACertFile: the server's
// configuration (client certificates required) and the client's (the
// server's certificate must chain to the CAs and name the host dialled).
// Versions and Ciphers apply to both; Verify, FailIfNoPeerCert and Depth
// do not: verification is never optional here.
func (o Options) Mutual() (server, client *tls.Config, err error) {
	if o.CACertFile == "" || o.CertFile == "" || o.KeyFile == "" {
		return nil, nil, fmt.Errorf("%s, %s and %s are all required: each end presents a certificate and verifies the other's", o.key("cacertfile"), o.key("certfile"), o.key("keyfile"))
	}
	o.Verify, o.FailIfNoPeerCert, o.Depth = "verify_peer", true, -1
	server, err = o.Server()
	if err != nil {
		return nil, nil, err
	}
	client = &tls.Config{
		Certificates: server.Certificates,
		RootCAs:      server.ClientCAs,
		MinVersion:   server.MinVersion,
		MaxVersion:   server.MaxVersion,
		CipherSuites: server.CipherSuites,
	}
	return server, client, nil
}

// keyPair loads the certificate and its key, decrypting the key with
// Password when it is encrypted.
func (o Options) keyPair() (tls.Certificate, error) {
	certPEM, err := os.ReadFile(o.CertFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: %w", o.key("certfile"), err)
	}
	keyPEM, err := os.ReadFile(o.KeyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: %w", o.key("keyfile"), err)
	}
	if block, _ := pem.Decode(keyPEM); block != nil {
		switch {
		case block.Type == "ENCRYPTED PRIVATE KEY":
			return tls.Certificate{}, fmt.Errorf("%s %s: an encrypted PKCS#8 key is not supported; store it unencrypted (mode 0600) or in the traditional PEM encryption (openssl rsa -aes256 -traditional)", o.key("keyfile"), o.KeyFile)
		case isEncryptedPEM(block):
			if o.Password == "" {
				return tls.Certificate{}, fmt.Errorf("%s %s is encrypted: set %s", o.key("keyfile"), o.KeyFile, o.key("password"))
			}
			der, err := decryptPEM(block, o.Password)
			if err != nil {
				return tls.Certificate{}, fmt.Errorf("%s %s: decrypt with %s: %w", o.key("keyfile"), o.KeyFile, o.key("password"), err)
			}
			keyPEM = pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: der})
		}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s %s and keyfile %s: %w", o.key("certfile"), o.CertFile, o.KeyFile, err)
	}
	return cert, nil
}

// loadPool reads PEM CA certificates.
func loadPool(key, path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", key, path)
	}
	return pool, nil
}

// isEncryptedPEM and decryptPEM handle keys in the traditional PEM
// encryption ("Proc-Type: 4,ENCRYPTED"), which RabbitMQ's password setting
// is for. Go deprecates it as insecure by design (no integrity check), but
// it is what operators' existing key files use.
func isEncryptedPEM(b *pem.Block) bool {
	//lint:ignore SA1019 reading operators' existing encrypted key files
	return x509.IsEncryptedPEMBlock(b)
}

func decryptPEM(b *pem.Block, password string) ([]byte, error) {
	//lint:ignore SA1019 reading operators' existing encrypted key files
	return x509.DecryptPEMBlock(b, []byte(password))
}
