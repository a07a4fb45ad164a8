package mgmt

import (
	"net/http"
	"net/url"
	"strings"
)

// router matches request paths segment by segment after splitting the
// escaped path, so that an escaped slash stays inside its segment: vhost
// "/" is "%2F" in every URL of the API, and net/http's ServeMux does not
// match such segments against wildcards.
type router struct {
	routes []route
}

type route struct {
	method string
	segs   []string // literal segments, or "{name}" wildcards
	h      http.HandlerFunc
}

// add registers "METHOD /path/{wildcard}". The first matching route wins,
// so literal paths go before wildcards that would also match them.
func (rt *router) add(pattern string, h http.HandlerFunc) {
	method, path, _ := strings.Cut(pattern, " ")
	rt.routes = append(rt.routes, route{method: method, segs: splitPath(path), h: h})
}

func splitPath(p string) []string {
	p = strings.TrimPrefix(p, "/")
	p = strings.TrimSuffix(p, "/")
	return strings.Split(p, "/")
}

// ServeHTTP dispatches to the first route whose segments match.
func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw := splitPath(r.URL.EscapedPath())
	segs := make([]string, len(raw))
	for i, s := range raw {
		u, err := url.PathUnescape(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "malformed path")
			return
		}
		segs[i] = u
	}
	var allowed []string
	for _, rt := range rt.routes {
		vals, ok := rt.match(segs)
		if !ok {
			continue
		}
		if rt.method != r.Method && !(rt.method == http.MethodGet && r.Method == http.MethodHead) {
			allowed = append(allowed, rt.method)
			continue
		}
		for k, v := range vals {
			r.SetPathValue(k, v)
		}
		rt.h(w, r)
		return
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "Method Not Allowed")
		return
	}
	writeError(w, http.StatusNotFound, "Object Not Found", "Not Found")
}

func (rt route) match(segs []string) (map[string]string, bool) {
	if len(segs) != len(rt.segs) {
		return nil, false
	}
	var vals map[string]string
	for i, p := range rt.segs {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			if vals == nil {
				vals = map[string]string{}
			}
			vals[p[1:len(p)-1]] = segs[i]
			continue
		}
		if p != segs[i] {
			return nil, false
		}
	}
	return vals, true
}
