package config

import (
	"fmt"
	"strconv"
	"time"
)

// parseTime reads an HAProxy time value: a number followed by an optional
// unit (us, ms, s, m, h, d); no unit means milliseconds.
func parseTime(s string) (time.Duration, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid time value '%s'", s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("timer overflow in argument '%s'", s)
	}
	var unit time.Duration
	switch s[i:] {
	case "", "ms":
		unit = time.Millisecond
	case "us":
		unit = time.Microsecond
	case "s":
		unit = time.Second
	case "m":
		unit = time.Minute
	case "h":
		unit = time.Hour
	case "d":
		unit = 24 * time.Hour
	default:
		return 0, fmt.Errorf("unexpected character '%c' in argument '%s'", s[i], s)
	}
	d := time.Duration(n) * unit
	if d/unit != time.Duration(n) || d > time.Duration(1<<31-1)*time.Millisecond {
		return 0, fmt.Errorf("timer overflow in argument '%s' to '%s' (maximum value is 2147483647 ms or ~24.8 days)", s, s)
	}
	return d, nil
}

// parseInt reads a non-negative decimal integer.
func parseInt(kw, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("'%s' expects an integer argument, got '%s'", kw, s)
	}
	return n, nil
}

// atol reads an integer the way C's atol does, as HAProxy reads most
// numeric keywords: leading blanks, an optional sign, then as many digits
// as there are. Anything else ends the number, so "" and "check" are 0
// and "10k" is 10. The result is clamped to the range of a C int.
func atol(s string) int {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] >= '\t' && s[i] <= '\r') {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	n := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if n < 1<<31 {
			n = n*10 + int(s[i]-'0')
		}
	}
	if neg {
		return max(-n, -1<<31)
	}
	return min(n, 1<<31-1)
}
