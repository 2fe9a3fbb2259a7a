package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
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

// ParseBehavior parses pageID|clicks|stayMinutes|like. Spaces around fields
// are ignored. The error says what is wrong, for the malformed count.
func ParseBehavior(line string) (Behavior, error) {
	fields := strings.Split(line, "|")
	if len(fields) != 4 {
		return Behavior{}, fmt.Errorf("has %d fields, want 4: page|clicks|stay|like", len(fields))
	}
	b := Behavior{Page: strings.TrimSpace(fields[0])}
	if b.Page == "" {
		return Behavior{}, fmt.Errorf("has an empty page id")
	}
	for i, dst := range []*float64{&b.Clicks, &b.Stay, &b.Like} {
		s := strings.TrimSpace(fields[i+1])
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return Behavior{}, fmt.Errorf("%s %q is not a number", [...]string{"clicks", "stay", "like"}[i], s)
		}
		*dst = v
	}
	if p := b.Popularity(); math.IsNaN(p) || math.IsInf(p, 0) {
		// It would make its page's total infinite for ever, and the
		// --save files cannot hold that.
		return Behavior{}, fmt.Errorf("popularity is not a finite number")
	}
	return b, nil
}
