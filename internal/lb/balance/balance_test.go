package balance

import (
	"fmt"
	"strings"
	"testing"
)

func sequence(b *Balancer, names []string, n int) string {
	var out []string
	for k := 0; k < n; k++ {
		i := b.Pick(nil, -1, 0)
		if i < 0 {
			out = append(out, "-")
			continue
		}
		out = append(out, names[i])
	}
	return strings.Join(out, " ")
}

func TestRoundRobinOrder(t *testing.T) {
	cases := []struct {
		weights []int
		want    string
	}{
		{[]int{3, 1}, "s1 s1 s1 s2 s1 s1 s1 s2"},
		{[]int{1, 1, 1}, "s1 s2 s3 s1 s2 s3"},
	}
	for _, c := range cases {
		b := New(RoundRobin, len(c.weights), false)
		var names []string
		for i, w := range c.weights {
			b.SetServer(i, w, true, false)
			names = append(names, fmt.Sprintf("s%d", i+1))
		}
		if got := sequence(b, names, len(strings.Fields(c.want))); got != c.want {
			t.Errorf("weights %v: got %q, want %q", c.weights, got, c.want)
		}
	}
}

func TestBackupSelection(t *testing.T) {
	names := []string{"a1", "b1", "b2"}
	b := New(RoundRobin, 3, false)
	b.SetServer(0, 1, true, false)
	b.SetServer(1, 1, true, true)
	b.SetServer(2, 1, true, true)
	if got := sequence(b, names, 3); got != "a1 a1 a1" {
		t.Fatalf("active up: %q", got)
	}
	b.SetServer(0, 1, false, false)
	if got := sequence(b, names, 3); got != "b1 b1 b1" {
		t.Fatalf("first backup only: %q", got)
	}
	ab := New(RoundRobin, 3, true)
	ab.SetServer(0, 1, false, false)
	ab.SetServer(1, 1, true, true)
	ab.SetServer(2, 1, true, true)
	if got := sequence(ab, names, 4); got != "b1 b2 b1 b2" {
		t.Fatalf("allbackups: %q", got)
	}
}

func TestSkipsDownServer(t *testing.T) {
	names := []string{"s1", "s2", "s3"}
	b := New(RoundRobin, 3, false)
	for i := 0; i < 3; i++ {
		b.SetServer(i, 1, true, false)
	}
	sequence(b, names, 3)
	b.SetServer(1, 1, false, false)
	if got := sequence(b, names, 4); strings.Contains(got, "s2") {
		t.Fatalf("down server picked: %q", got)
	}
	b.SetServer(1, 1, true, false)
	if got := sequence(b, names, 6); strings.Count(got, "s2") != 2 {
		t.Fatalf("server back up not used evenly: %q", got)
	}
}

func TestStaticRRAndFirst(t *testing.T) {
	names := []string{"s1", "s2"}
	b := New(StaticRR, 2, false)
	b.SetServer(0, 2, true, false)
	b.SetServer(1, 1, true, false)
	if got := sequence(b, names, 6); strings.Count(got, "s1") != 4 {
		t.Fatalf("static-rr 2:1: %q", got)
	}
	f := New(First, 2, false)
	f.SetServer(0, 1, true, false)
	f.SetServer(1, 1, true, false)
	if got := sequence(f, names, 3); got != "s1 s1 s1" {
		t.Fatalf("first: %q", got)
	}
}

type fakeLoad map[int]int

func (l fakeLoad) Conns(i int) int    { return l[i] }
func (l fakeLoad) Full(i int) bool    { return false }
func (l fakeLoad) Accepts(i int) bool { return true }

func TestLeastConn(t *testing.T) {
	b := New(LeastConn, 3, false)
	for i := 0; i < 3; i++ {
		b.SetServer(i, 1, true, false)
	}
	if got := b.Pick(fakeLoad{0: 5, 1: 2, 2: 7}, -1, 0); got != 1 {
		t.Fatalf("leastconn picked %d", got)
	}
	if got := b.Pick(fakeLoad{0: 5, 1: 2, 2: 7}, 1, 0); got != 0 {
		t.Fatalf("leastconn avoiding 1 picked %d", got)
	}
}
