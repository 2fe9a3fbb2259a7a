package main

import (
	"strings"
	"unicode"
)

// Words returns the words of line: its whitespace-separated tokens,
// lowercased, with leading and trailing punctuation trimmed. Tokens that
// are only punctuation are dropped. Punctuation inside a token stays
// ("don't", "e.g").
func Words(line string) []string {
	fields := strings.Fields(line)
	out := fields[:0]
	for _, f := range fields {
		w := strings.TrimFunc(f, unicode.IsPunct)
		if w == "" {
			continue
		}
		out = append(out, strings.ToLower(w))
	}
	return out
}
