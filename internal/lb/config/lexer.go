package config

import (
	"fmt"
	"os"
	"strings"
)

// splitLine cuts one configuration line into words the way HAProxy does:
// blanks separate words, '#' starts a comment, a backslash escapes the next
// character (and \t, \n, \r, \xHH are decoded), double quotes group words and
// expand "$VAR" / "${VAR}" environment variables, single quotes group words
// literally.
func splitLine(line string) ([]string, error) {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		quote   byte
		runeLen = len(line)
	)
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < runeLen; i++ {
		c := line[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
				continue
			}
			cur.WriteByte(c)
		case c == '\\':
			if i+1 >= runeLen {
				return nil, fmt.Errorf("truncated escape sequence at end of line")
			}
			i++
			inWord = true
			switch e := line[i]; e {
			case 't':
				cur.WriteByte('\t')
			case 'n':
				cur.WriteByte('\n')
			case 'r':
				cur.WriteByte('\r')
			case 'x':
				if i+2 >= runeLen {
					return nil, fmt.Errorf("truncated or invalid hexadecimal sequence at position %d", i)
				}
				var v byte
				if _, err := fmt.Sscanf(line[i+1:i+3], "%02x", &v); err != nil {
					return nil, fmt.Errorf("truncated or invalid hexadecimal sequence at position %d", i)
				}
				cur.WriteByte(v)
				i += 2
			default:
				cur.WriteByte(e)
			}
		case quote == '"':
			switch c {
			case '"':
				quote = 0
			case '$':
				name, n := envName(line[i+1:])
				if n == 0 {
					cur.WriteByte(c)
					continue
				}
				cur.WriteString(os.Getenv(name))
				i += n
			default:
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
			inWord = true
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			flush()
		case c == '#':
			flush()
			return words, nil
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unmatched quote at end of line")
	}
	flush()
	return words, nil
}

// envName reads a variable name after '$' ("NAME" or "{NAME}") and returns it
// with the number of bytes consumed, or 0 if there is none.
func envName(s string) (string, int) {
	if strings.HasPrefix(s, "{") {
		end := strings.IndexByte(s, '}')
		if end < 2 {
			return "", 0
		}
		return s[1:end], end + 1
	}
	n := 0
	for n < len(s) && (s[n] == '_' || s[n] >= 'a' && s[n] <= 'z' || s[n] >= 'A' && s[n] <= 'Z' || n > 0 && s[n] >= '0' && s[n] <= '9') {
		n++
	}
	return s[:n], n
}
