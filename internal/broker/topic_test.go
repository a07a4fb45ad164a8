package broker

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// naiveTopicMatch is the topic rule written the obvious way, as the oracle
// for the trie.
func naiveTopicMatch(pattern, key []string) bool {
	if len(pattern) == 0 {
		return len(key) == 0
	}
	switch pattern[0] {
	case "#":
		for i := 0; i <= len(key); i++ {
			if naiveTopicMatch(pattern[1:], key[i:]) {
				return true
			}
		}
		return false
	case "*":
		return len(key) > 0 && naiveTopicMatch(pattern[1:], key[1:])
	}
	return len(key) > 0 && key[0] == pattern[0] && naiveTopicMatch(pattern[1:], key[1:])
}

func TestTopicTrieMatchesTheRule(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"a", "b", "", "*", "#"}
	var patterns []string
	tr := &topicTrie{}
	for i := range 400 {
		n := rng.IntN(5)
		var p []string
		for range n {
			p = append(p, words[rng.IntN(len(words))])
		}
		pat := strings.Join(p, ".")
		patterns = append(patterns, pat)
		tr.add(pat, dest{name: fmt.Sprint(i)})
	}
	// Removing a pattern added twice keeps the other copy.
	tr.add(patterns[0], dest{name: "0"})
	tr.remove(patterns[0], dest{name: "0"})
	for range 2000 {
		n := rng.IntN(5)
		var k []string
		for range n {
			k = append(k, words[rng.IntN(3)])
		}
		key := strings.Join(k, ".")
		var got []string
		tr.match(key, func(d dest) {
			if !slices.Contains(got, d.name) {
				got = append(got, d.name)
			}
		})
		var want []string
		for i, p := range patterns {
			if naiveTopicMatch(topicWords(p), topicWords(key)) {
				want = append(want, fmt.Sprint(i))
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("key %q: trie %v, rule %v", key, got, want)
		}
	}
}

// BenchmarkTopicRoute100kBindings routes through a topic exchange with
// 100,000 bindings of the shape applications use (service.region.event
// with some wildcards).
func BenchmarkTopicRoute100kBindings(b *testing.B) {
	tr := &topicTrie{}
	for i := range 100000 {
		var pat string
		switch i % 4 {
		case 0:
			pat = fmt.Sprintf("svc%d.eu.order.created", i)
		case 1:
			pat = fmt.Sprintf("svc%d.*.order.*", i)
		case 2:
			pat = fmt.Sprintf("svc%d.us.#", i)
		default:
			pat = fmt.Sprintf("svc%d.#.failed", i)
		}
		tr.add(pat, dest{name: fmt.Sprint(i)})
	}
	tr.add("#", dest{name: "audit"})
	keys := []string{"svc4.eu.order.created", "svc5.ap.order.shipped", "svc6.us.payment.done", "svc7.x.y.failed"}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		tr.match(keys[i%len(keys)], func(dest) { n++ })
	}
	if n < b.N*2 {
		b.Fatalf("matched %d for %d keys: every key should reach its binding and audit", n, b.N)
	}
}
