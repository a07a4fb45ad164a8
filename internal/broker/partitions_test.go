package broker

import (
	"reflect"
	"testing"
)

func TestPartitions(t *testing.T) {
	members := []string{"a", "b", "c"}
	cases := []struct {
		name        string
		unreachable map[string][]string
		want        map[string][]string
	}{
		{"all connected", map[string][]string{"a": nil, "b": nil, "c": nil}, map[string][]string{}},
		{"a and c cut, both reach b", map[string][]string{"a": {"c"}, "b": nil, "c": {"a"}},
			map[string][]string{"a": {"c"}, "c": {"a"}}},
		{"c down: nobody reaches it", map[string][]string{"a": {"c"}, "b": {"c"}}, map[string][]string{}},
		{"asked from a, which cannot reach c; b can", map[string][]string{"a": {"c"}, "b": nil},
			map[string][]string{"a": {"c"}}},
		{"c alone, sees nobody", map[string][]string{"c": {"a", "b"}}, map[string][]string{}},
	}
	for _, c := range cases {
		if got := Partitions(members, c.unreachable); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}
