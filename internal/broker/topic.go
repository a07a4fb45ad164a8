package broker

import "strings"

// topicTrie matches routing keys against topic binding patterns word by
// word, so that routing cost grows with the key's length and the patterns
// that share its prefixes, not with the number of bindings.
// Not safe for concurrent use; the vhost lock guards it.
type topicTrie struct {
	root topicNode
}

type topicNode struct {
	words map[string]*topicNode
	star  *topicNode // "*": exactly one word
	hash  *topicNode // "#": zero or more words
	dests map[dest]int
}

func (n *topicNode) child(w string, create bool) *topicNode {
	var p **topicNode
	switch w {
	case "*":
		p = &n.star
	case "#":
		p = &n.hash
	default:
		c := n.words[w]
		if c == nil && create {
			if n.words == nil {
				n.words = map[string]*topicNode{}
			}
			c = &topicNode{}
			n.words[w] = c
		}
		return c
	}
	if *p == nil && create {
		*p = &topicNode{}
	}
	return *p
}

// topicWords splits a routing or binding key into its words, as RabbitMQ
// does: the empty key has no words (so "*" does not match it), and every
// other key has one more word than it has dots, empty words included
// ("a..b" is "a", "", "b").
func topicWords(key string) []string {
	if key == "" {
		return nil
	}
	return strings.Split(key, ".")
}

func (t *topicTrie) add(pattern string, d dest) {
	n := &t.root
	for _, w := range topicWords(pattern) {
		n = n.child(w, true)
	}
	if n.dests == nil {
		n.dests = map[dest]int{}
	}
	n.dests[d]++
}

func (t *topicTrie) remove(pattern string, d dest) {
	n := &t.root
	for _, w := range topicWords(pattern) {
		if n = n.child(w, false); n == nil {
			return
		}
	}
	if n.dests[d] > 1 {
		n.dests[d]--
	} else {
		delete(n.dests, d)
	}
}

// match calls fn for every destination whose pattern matches key.
func (t *topicTrie) match(key string, fn func(dest)) {
	t.root.match(topicWords(key), fn)
}

func (n *topicNode) match(words []string, fn func(dest)) {
	if n.hash != nil {
		// "#" takes zero words, or one more word and stays.
		for i := 0; i <= len(words); i++ {
			n.hash.matchNoHashLoop(words[i:], fn)
		}
	}
	if len(words) == 0 {
		for d := range n.dests {
			fn(d)
		}
		return
	}
	if c := n.words[words[0]]; c != nil {
		c.match(words[1:], fn)
	}
	if n.star != nil {
		n.star.match(words[1:], fn)
	}
}

// matchNoHashLoop matches below a "#" node that has already consumed its
// words; it is match without re-entering the same "#".
func (n *topicNode) matchNoHashLoop(words []string, fn func(dest)) {
	if len(words) == 0 {
		for d := range n.dests {
			fn(d)
		}
		if n.hash != nil {
			n.hash.matchNoHashLoop(nil, fn)
		}
		return
	}
	if c := n.words[words[0]]; c != nil {
		c.match(words[1:], fn)
	}
	if n.star != nil {
		n.star.match(words[1:], fn)
	}
	if n.hash != nil {
		for i := 0; i <= len(words); i++ {
			n.hash.matchNoHashLoop(words[i:], fn)
		}
	}
}
