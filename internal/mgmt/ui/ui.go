// Package ui is the management web UI: a single-page application in plain
// HTML, CSS and JavaScript, embedded in the node binary and served beside
// the management HTTP API. The page logs in with the same Basic
// credentials as the API and reads and changes everything through it, so
// the API's access rules are the UI's.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// static holds the page, its scripts and its style sheet. It is read only.
//
//go:embed static
var static embed.FS

// contentType is the type of a file the UI ships, fixed here rather than
// taken from the host's MIME tables so that every node answers alike; ""
// for a kind of file the UI does not ship.
func contentType(name string) string {
	if name == adminTool {
		return "text/x-python; charset=utf-8"
	}
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	return ""
}

// adminTool is the command-line client that runbooks fetch from a node
// (wget http://NODE:15672/cli/rabbitmqadmin): rabbitmqadmin's commands
// and options, in Python 3 with its standard library only.
const adminTool = "cli/rabbitmqadmin"

// securityPolicy lets the page load only its own files and talk only to
// its own node, and keeps it out of other sites' frames.
const securityPolicy = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the UI's files: the page at "/" and its assets by name.
// Its zero value is ready to use; it holds no state, so one may be made
// per request.
type Handler struct{}

// ServeHTTP answers GET and HEAD with an embedded file, 404 for a name
// the UI does not have and 405 for other methods.
func (Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, body, err := file(r.URL.Path)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType(name))
	// The files change with the binary: browsers revalidate each time,
	// and the tag of the content lets an unchanged file answer 304.
	h.Set("Cache-Control", "no-cache")
	sum := sha256.Sum256(body)
	h.Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", securityPolicy)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
}

// file returns the embedded file a URL path names: "/" is the page.
func file(urlPath string) (string, []byte, error) {
	name := strings.TrimPrefix(path.Clean("/"+urlPath), "/")
	switch name {
	case "":
		name = "index.html"
	case "cli":
		name = "cli/index.html"
	}
	if contentType(name) == "" {
		return "", nil, fmt.Errorf("%s: not a file of the web UI: %w", name, fs.ErrNotExist)
	}
	body, err := fs.ReadFile(static, "static/"+name)
	if err != nil {
		return "", nil, fmt.Errorf("read %s: %w", name, err)
	}
	return name, body, nil
}
