package mgmt

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// obj is one JSON object of the API.
type obj = map[string]any

// maxPageSize is the largest page_size RabbitMQ accepts.
const maxPageSize = 500

// writeList answers a GET of a collection, applying the query parameters
// RabbitMQ's API takes: name (with use_regex), sort and sort_reverse,
// page and page_size (which switch to the paginated envelope), and
// columns.
func writeList(w http.ResponseWriter, r *http.Request, items []obj) error {
	names := make([]string, len(items))
	for i, it := range items {
		names[i], _ = it["name"].(string)
	}
	return writeLazyList(w, r, names, func(i int) obj { return items[i] })
}

// writeLazyList is writeList for collections whose items cost something
// to build: names[i] names item i, and build makes it. Filtering by name,
// sorting by name and paging happen before anything is built, so a page
// of 100 queues out of 10,000 builds 100; sorting by another column
// builds them all.
func writeLazyList(w http.ResponseWriter, r *http.Request, names []string, build func(i int) obj) error {
	q := r.URL.Query()
	total := len(names)
	idx := make([]int, 0, total)
	if name := q.Get("name"); name != "" {
		match := func(s string) bool { return strings.Contains(s, name) }
		if q.Get("use_regex") == "true" {
			re, err := regexp.Compile(name)
			if err != nil {
				return errBadRequest("invalid regular expression %q: %v", name, err)
			}
			match = re.MatchString
		}
		for i, n := range names {
			if match(n) {
				idx = append(idx, i)
			}
		}
	} else {
		for i := range names {
			idx = append(idx, i)
		}
	}
	var built map[int]obj
	switch key := q.Get("sort"); key {
	case "":
	case "name":
		sort.SliceStable(idx, func(a, b int) bool { return names[idx[a]] < names[idx[b]] })
	default:
		built = make(map[int]obj, len(idx))
		for _, i := range idx {
			built[i] = build(i)
		}
		path := strings.Split(key, ".")
		sort.SliceStable(idx, func(a, b int) bool { return less(lookup(built[idx[a]], path), lookup(built[idx[b]], path)) })
	}
	if q.Get("sort_reverse") == "true" {
		for i, j := 0, len(idx)-1; i < j; i, j = i+1, j-1 {
			idx[i], idx[j] = idx[j], idx[i]
		}
	}
	get := func(i int) obj {
		if built != nil {
			return built[i]
		}
		return build(i)
	}
	cols := columns(q.Get("columns"))
	if q.Get("page") == "" {
		items := make([]obj, len(idx))
		for k, i := range idx {
			items[k] = get(i)
		}
		return writeJSON(w, project(items, cols))
	}
	page, err := strconv.Atoi(q.Get("page"))
	if err != nil || page < 1 {
		return errBadRequest("page must be a positive integer")
	}
	size := 100
	if ps := q.Get("page_size"); ps != "" {
		if size, err = strconv.Atoi(ps); err != nil || size < 1 {
			return errBadRequest("page_size must be a positive integer")
		}
		if size > maxPageSize {
			return errBadRequest("Page size cannot exceed %d", maxPageSize)
		}
	}
	filtered := len(idx)
	pages := (filtered + size - 1) / size
	if page > pages && filtered > 0 {
		return errBadRequest("page out of range")
	}
	lo := min((page-1)*size, filtered)
	hi := min(lo+size, filtered)
	items := make([]obj, 0, hi-lo)
	for _, i := range idx[lo:hi] {
		items = append(items, get(i))
	}
	return writeJSON(w, obj{
		"filtered_count": filtered,
		"item_count":     hi - lo,
		"items":          project(items, cols),
		"page":           page,
		"page_count":     pages,
		"page_size":      size,
		"total_count":    total,
	})
}

// writeOne answers a GET of one object, with columns applied.
func writeOne(w http.ResponseWriter, r *http.Request, o obj) error {
	cols := columns(r.URL.Query().Get("columns"))
	if cols == nil {
		return writeJSON(w, o)
	}
	return writeJSON(w, projectOne(o, cols))
}

func columns(s string) [][]string {
	if s == "" {
		return nil
	}
	var out [][]string
	for _, c := range strings.Split(s, ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, strings.Split(c, "."))
		}
	}
	return out
}

func project(items []obj, cols [][]string) []obj {
	if items == nil {
		items = []obj{}
	}
	if cols == nil {
		return items
	}
	out := make([]obj, len(items))
	for i, it := range items {
		out[i] = projectOne(it, cols)
	}
	return out
}

// projectOne keeps the named columns; a dotted column keeps one field of
// a nested object.
func projectOne(o obj, cols [][]string) obj {
	out := obj{}
	for _, path := range cols {
		v, ok := o[path[0]]
		if !ok {
			continue
		}
		if len(path) == 1 {
			out[path[0]] = v
			continue
		}
		inner, ok := v.(obj)
		if !ok {
			continue
		}
		sub, _ := out[path[0]].(obj)
		if sub == nil {
			sub = obj{}
			out[path[0]] = sub
		}
		for k, v := range projectOne(inner, [][]string{path[1:]}) {
			sub[k] = v
		}
	}
	return out
}

func lookup(o obj, path []string) any {
	var v any = o
	for _, p := range path {
		m, ok := v.(obj)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// less orders values of one column: missing first, numbers by value,
// everything else by its text.
func less(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b != nil
	}
	fa, aok := toFloat(a)
	fb, bok := toFloat(b)
	if aok && bok {
		return fa < fb
	}
	return fmt.Sprint(a) < fmt.Sprint(b)
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}
