package vrrp

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Pos is a place in a configuration file.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Diag is one configuration error or warning, with where it was found.
type Diag struct {
	Pos Pos
	Msg string
}

func (d Diag) String() string { return d.Pos.String() + ": " + d.Msg }

// ConfigError lists every problem found in a configuration, not only the first.
type ConfigError struct {
	Diags []Diag
}

func (e *ConfigError) Error() string {
	lines := make([]string, len(e.Diags))
	for i, d := range e.Diags {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// node is one statement of keepalived.conf: a keyword, its words on the same
// line, and the block that follows it, if any.
type node struct {
	pos      Pos
	keyword  string
	args     []string
	block    []*node
	hasBlock bool
}

// token is a word, "{" or "}" with its position; eol marks the end of a line.
type token struct {
	pos  Pos
	text string
	eol  bool
}

const maxIncludeDepth = 16

// lexer turns files into tokens, following include statements.
type lexer struct {
	toks  []token
	diags []Diag
	// open holds the files being read, to refuse include loops.
	open map[string]bool
}

func (l *lexer) errorf(pos Pos, format string, args ...any) {
	l.diags = append(l.diags, Diag{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// readFile tokenises path. from is where the include came from (zero for the
// main file).
func (l *lexer) readFile(path string, from Pos, depth int) {
	if depth > maxIncludeDepth {
		l.errorf(from, "include nested deeper than %d files", maxIncludeDepth)
		return
	}
	abs, err := filepath.Abs(path)
	if err == nil && l.open[abs] {
		l.errorf(from, "include loop: %s includes itself", path)
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if from.File == "" {
			l.diags = append(l.diags, Diag{Pos: Pos{File: path}, Msg: err.Error()})
		} else {
			l.errorf(from, "include %s: %v", path, err)
		}
		return
	}
	l.open[abs] = true
	defer delete(l.open, abs)
	for i, line := range strings.Split(string(data), "\n") {
		pos := Pos{File: path, Line: i + 1}
		words, err := splitLine(line)
		if err != nil {
			l.errorf(pos, "%v", err)
			continue
		}
		if len(words) > 0 && words[0] == "include" {
			l.include(pos, words[1:], filepath.Dir(path), depth)
			continue
		}
		for _, w := range words {
			l.toks = append(l.toks, token{pos: pos, text: w})
		}
		if len(words) > 0 {
			l.toks = append(l.toks, token{pos: pos, eol: true})
		}
	}
}

func (l *lexer) include(pos Pos, args []string, dir string, depth int) {
	if len(args) != 1 {
		l.errorf(pos, "include needs exactly one file name or pattern")
		return
	}
	pattern := args[0]
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(dir, pattern)
	}
	matches, err := filepath.Glob(pattern)
	if err != nil {
		l.errorf(pos, "include %s: %v", args[0], err)
		return
	}
	if len(matches) == 0 {
		if strings.ContainsAny(args[0], "*?[") {
			return // an empty conf.d is fine, as with keepalived
		}
		l.errorf(pos, "include %s: no such file", args[0])
		return
	}
	sort.Strings(matches)
	for _, m := range matches {
		l.readFile(m, pos, depth+1)
	}
}

var errUnterminatedQuote = errors.New("unterminated quoted string")

// splitLine splits one line into words. "#" and "!" start a comment outside
// quotes, "{" and "}" are words of their own, and a double-quoted string is
// one word without its quotes.
func splitLine(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '"':
			end := strings.IndexByte(line[i+1:], '"')
			if end < 0 {
				return nil, errUnterminatedQuote
			}
			cur.WriteString(line[i+1 : i+1+end])
			inWord = true
			i += end + 1
		case c == '#' || c == '!':
			flush()
			return words, nil
		case c == '{' || c == '}':
			flush()
			words = append(words, string(c))
		case c == ' ' || c == '\t' || c == '\r':
			flush()
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words, nil
}

// parseTree builds statements from tokens. A block may open on the keyword's
// line or on the next line, and may close on the line of its last value.
func parseTree(toks []token, diags *[]Diag) []*node {
	p := &treeParser{toks: toks, diags: diags}
	nodes := p.statements(false)
	return nodes
}

type treeParser struct {
	toks  []token
	i     int
	diags *[]Diag
}

func (p *treeParser) peek() (token, bool) {
	if p.i >= len(p.toks) {
		return token{}, false
	}
	return p.toks[p.i], true
}

func (p *treeParser) statements(inBlock bool) []*node {
	var out []*node
	for {
		t, ok := p.peek()
		if !ok {
			if inBlock && len(p.toks) > 0 {
				*p.diags = append(*p.diags, Diag{Pos: p.toks[len(p.toks)-1].pos, Msg: "missing '}' at end of file"})
			}
			return out
		}
		if t.eol {
			p.i++
			continue
		}
		if t.text == "}" {
			p.i++
			if !inBlock {
				*p.diags = append(*p.diags, Diag{Pos: t.pos, Msg: "unexpected '}'"})
				continue
			}
			return out
		}
		if t.text == "{" {
			*p.diags = append(*p.diags, Diag{Pos: t.pos, Msg: "'{' without a keyword"})
			p.i++
			p.statements(true)
			continue
		}
		n := &node{pos: t.pos, keyword: t.text}
		p.i++
		for {
			t, ok := p.peek()
			if !ok || t.eol || t.text == "}" {
				break
			}
			p.i++
			if t.text == "{" {
				n.hasBlock = true
				n.block = p.statements(true)
				break
			}
			n.args = append(n.args, t.text)
		}
		if !n.hasBlock {
			// "keyword\n{" opens the block on the next line.
			j := p.i
			for j < len(p.toks) && p.toks[j].eol {
				j++
			}
			if j < len(p.toks) && p.toks[j].text == "{" {
				p.i = j + 1
				n.hasBlock = true
				n.block = p.statements(true)
			}
		}
		out = append(out, n)
	}
}
