package ctl

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/warren-mq/warren/internal/amqp"
)

// Format says how to print a listing.
type Format struct {
	JSON      bool // --formatter json
	NoHeaders bool // --silent or --no-table-headers
}

// Render prints a response's table or text as rabbitmqctl does:
// tab-separated rows under a header row, or a JSON array of objects.
func Render(r Response, f Format) string {
	if r.Columns == nil {
		if f.JSON && r.JSON != nil {
			js, err := json.MarshalIndent(r.JSON, "", "  ")
			if err == nil {
				return string(js) + "\n"
			}
		}
		if r.Text == "" {
			return ""
		}
		return r.Text + "\n"
	}
	var b strings.Builder
	if f.JSON {
		b.WriteString("[\n")
		for i, row := range r.Rows {
			o := make(map[string]any, len(row))
			for j, c := range r.Columns {
				o[c] = jsonValue(row[j])
			}
			js, _ := json.Marshal(o)
			if i > 0 {
				b.WriteString(",")
			}
			b.Write(js)
			b.WriteString("\n")
		}
		b.WriteString("]\n")
		return b.String()
	}
	if !f.NoHeaders {
		b.WriteString(strings.Join(r.Columns, "\t") + "\n")
	}
	for _, row := range r.Rows {
		cells := make([]string, len(row))
		for i, v := range row {
			cells[i] = formatValue(v)
		}
		b.WriteString(strings.Join(cells, "\t") + "\n")
	}
	return b.String()
}

// formatValue writes a value as rabbitmqctl's tables do: lists in
// brackets, argument tables as Erlang-style tuples.
func formatValue(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case []string:
		return "[" + strings.Join(t, ", ") + "]"
	case []any:
		parts := make([]string, len(t))
		for i, x := range t {
			parts[i] = formatValue(x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case amqp.Table:
		return formatTable(t)
	case map[string]any:
		return formatTable(t)
	case float64:
		if t == float64(int64(t)) {
			return fmt.Sprint(int64(t))
		}
		return fmt.Sprint(t)
	}
	return fmt.Sprint(v)
}

func formatTable(t map[string]any) string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := t[k]
		if s, ok := v.(string); ok {
			v = fmt.Sprintf("%q", s)
		} else {
			v = formatValue(v)
		}
		parts[i] = fmt.Sprintf("{%q,%v}", k, v)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// jsonValue prepares a cell for JSON output.
func jsonValue(v any) any {
	switch t := v.(type) {
	case amqp.Table:
		out := map[string]any{}
		for k, x := range t {
			out[k] = jsonValue(x)
		}
		return out
	case []byte:
		return string(t)
	case nil:
		return ""
	}
	return v
}
