package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sluicehq/sluice/examples/internal/exampleutil"
)

// Weights of a behaviour's parts in a page's popularity.
const (
	clickWeight = 0.8
	stayWeight  = 0.8
	likeWeight  = 1.0
)

// Behavior is one user's behaviour on one page.
type Behavior struct {
	Page   string
	Clicks float64
	Stay   float64 // minutes
	Like   float64 // 1 like, 0 no opinion, -1 dislike
}

// Popularity returns what b adds to its page's popularity:
// 0.8·clicks + 0.8·stay + like.
func (b Behavior) Popularity() float64 {
	return clickWeight*b.Clicks + stayWeight*b.Stay + likeWeight*b.Like
}

// ParseBehavior parses pageID|clicks|stayMinutes|like, strictly: the page id
// is UTF-8 text, clicks a whole number of ASCII digits, stay a decimal
// number of minutes >= 0 (digits with an optional fraction and exponent, as
// in 1.5 or 2e3), like one of 1, 0 and -1. Spaces around fields are
// ignored; signs, underscores, hex, Inf and NaN are not numbers here. The
// error says what is wrong, for the malformed count.
func ParseBehavior(line string) (Behavior, error) {
	if !utf8.ValidString(line) {
		return Behavior{}, fmt.Errorf("not UTF-8 text")
	}
	fields := strings.Split(line, "|")
	if len(fields) != 4 {
		return Behavior{}, fmt.Errorf("has %s, want 4: page|clicks|stay|like", exampleutil.Plural(int64(len(fields)), "field", "fields"))
	}
	b := Behavior{Page: strings.TrimSpace(fields[0])}
	if b.Page == "" {
		return Behavior{}, fmt.Errorf("has an empty page id")
	}
	clicks := strings.TrimSpace(fields[1])
	if !isDigits(clicks) {
		return Behavior{}, fmt.Errorf("clicks %q is not a whole number", clicks)
	}
	n, err := strconv.ParseInt(clicks, 10, 64)
	if err != nil {
		return Behavior{}, fmt.Errorf("clicks %q is out of range", clicks)
	}
	b.Clicks = float64(n)
	stay := strings.TrimSpace(fields[2])
	if !isDecimal(stay) {
		return Behavior{}, fmt.Errorf("stay %q is not a number", stay)
	}
	if b.Stay, err = strconv.ParseFloat(stay, 64); err != nil || math.IsInf(b.Stay, 0) {
		return Behavior{}, fmt.Errorf("stay %q is out of range", stay)
	}
	switch like := strings.TrimSpace(fields[3]); like {
	case "1":
		b.Like = 1
	case "0":
		b.Like = 0
	case "-1":
		b.Like = -1
	default:
		return Behavior{}, fmt.Errorf("like %q is not 1, 0 or -1", like)
	}
	if p := b.Popularity(); math.IsNaN(p) || math.IsInf(p, 0) {
		// It would make its page's total infinite for ever, and the
		// --save files cannot hold that.
		return Behavior{}, fmt.Errorf("popularity is not a finite number")
	}
	return b, nil
}

// isDigits reports whether s is one or more ASCII digits.
func isDigits(s string) bool {
	return s != "" && strings.TrimLeft(s, "0123456789") == ""
}

// isDecimal reports whether s is digits[.digits][(e|E)[-+]digits].
func isDecimal(s string) bool {
	mant, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	whole, frac, hasFrac := strings.Cut(mant, ".")
	if !isDigits(whole) || hasFrac && !isDigits(frac) {
		return false
	}
	if hasExp {
		exp = strings.TrimPrefix(strings.TrimPrefix(exp, "-"), "+")
		return isDigits(exp)
	}
	return true
}
