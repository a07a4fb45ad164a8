package auth

import "testing"

func TestRabbitPasswordHash(t *testing.T) {
	// The worked example of RabbitMQ's password documentation: salt
	// 90 8D C6 0A, password "test12", SHA-256.
	const stored = "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
	if !CheckPassword(SHA256, stored, "test12") {
		t.Fatal("RabbitMQ's documented hash does not check")
	}
	if CheckPassword(SHA256, stored, "test13") {
		t.Fatal("wrong password accepted")
	}
	h, err := HashPassword(SHA512, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !CheckPassword(SHA512, h, "s3cret") || CheckPassword(SHA256, h, "s3cret") {
		t.Fatal("own sha512 hash does not round trip")
	}
	if CheckPassword(SHA256, "", "") {
		t.Fatal("empty hash matched")
	}
}

func TestMatcher(t *testing.T) {
	m := NewMatcher()
	for _, c := range []struct {
		pattern, name string
		want          bool
	}{
		{".*", "anything", true},
		{"", "anything", false},
		{"^amq\\.gen-.*", "amq.gen-abc", true},
		{"^amq\\.gen-.*", "q", false},
		{"foo", "xfooy", true},
		{"(", "x", false},
	} {
		if got := m.Match(c.pattern, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v", c.pattern, c.name, got)
		}
	}
}
