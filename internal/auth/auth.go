// Package auth hashes passwords the way RabbitMQ stores them and checks
// permissions the way RabbitMQ defines them, so that users and their
// definitions move between warren and RabbitMQ unchanged.
package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"regexp"
	"sync"
)

// Hashing algorithm names, as RabbitMQ writes them in definitions.
const (
	SHA256 = "rabbit_password_hashing_sha256"
	SHA512 = "rabbit_password_hashing_sha512"
)

// ErrUnknownAlgorithm is returned for a hashing algorithm warren cannot
// check (RabbitMQ's legacy MD5 is one).
var ErrUnknownAlgorithm = errors.New("auth: unknown password hashing algorithm")

func newHash(algorithm string) (hash.Hash, error) {
	switch algorithm {
	case SHA256, "":
		return sha256.New(), nil
	case SHA512:
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownAlgorithm, algorithm)
}

// HashPassword returns RabbitMQ's stored form of password: base64 of a
// random 4-octet salt followed by the hash of salt+password.
func HashPassword(algorithm, password string) (string, error) {
	var salt [4]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return hashWithSalt(algorithm, salt[:], password)
}

func hashWithSalt(algorithm string, salt []byte, password string) (string, error) {
	h, err := newHash(algorithm)
	if err != nil {
		return "", err
	}
	h.Write(salt)
	h.Write([]byte(password))
	return base64.StdEncoding.EncodeToString(h.Sum(bytes.Clone(salt))), nil
}

// CheckPassword reports whether password matches a stored hash. An empty
// stored hash never matches (RabbitMQ's passwordless users cannot log in
// with a password).
func CheckPassword(algorithm, stored, password string) bool {
	raw, err := base64.StdEncoding.DecodeString(stored)
	if err != nil || len(raw) < 5 {
		return false
	}
	want, err := hashWithSalt(algorithm, raw[:4], password)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(stored)) == 1
}

// Matcher compiles permission patterns once and caches them. It is safe for
// concurrent use.
type Matcher struct {
	mu    sync.Mutex
	cache map[string]*regexp.Regexp
}

// NewMatcher returns an empty Matcher.
func NewMatcher() *Matcher { return &Matcher{cache: map[string]*regexp.Regexp{}} }

// Match reports whether resource is allowed by pattern. As in RabbitMQ,
// the empty pattern allows nothing, and a pattern is matched anywhere in the
// name unless anchored (users write "^amq\.gen.*$" or ".*").
func (m *Matcher) Match(pattern, resource string) bool {
	if pattern == "" {
		return false
	}
	m.mu.Lock()
	re, ok := m.cache[pattern]
	if !ok {
		var err error
		re, err = regexp.Compile(pattern)
		if err != nil {
			re = nil
		}
		if len(m.cache) > 4096 {
			clear(m.cache)
		}
		m.cache[pattern] = re
	}
	m.mu.Unlock()
	return re != nil && re.MatchString(resource)
}

// ValidPattern checks that a permission pattern compiles.
func ValidPattern(pattern string) error {
	if _, err := regexp.Compile(pattern); err != nil {
		return fmt.Errorf("invalid permission pattern %q: %w", pattern, err)
	}
	return nil
}
