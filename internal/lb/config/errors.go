package config

import (
	"fmt"
	"strings"
)

// Pos is a place in a configuration file.
type Pos struct {
	File string
	Line int
}

// String formats the position as file:line, as HAProxy's messages do.
func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Error is one problem found in a configuration file.
type Error struct {
	Pos Pos
	Msg string
}

// Error formats the problem in the shape HAProxy uses: parsing [file:line] : msg.
func (e *Error) Error() string {
	if e.Pos.File == "" {
		return e.Msg
	}
	return fmt.Sprintf("parsing [%s] : %s", e.Pos, e.Msg)
}

// Errors is every problem found while reading a configuration, in file order.
type Errors []*Error

// Error joins all problems, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

var sprintf = fmt.Sprintf
