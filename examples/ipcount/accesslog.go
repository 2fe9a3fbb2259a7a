package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"unicode/utf8"
)

// ipField is the access-log field ClientIP reads, matched exactly (JSON
// escapes decoded, letter case kept).
const ipField = "client_real_ip"

// ClientIP returns the client_real_ip of a JSON access-log line, read
// strictly:
//
//   - the line is UTF-8 text holding exactly one JSON object (RFC 8259),
//     with nothing but JSON whitespace around it;
//   - the field is matched by its exact name: "Client_Real_IP" is another
//     field. Other fields may be anything valid, and their values (numbers
//     included) are not read. client_real_ip appearing twice is malformed,
//     as the two may differ;
//   - its value is a string or null. null and "" mean the line has no
//     address: ok is false, err nil (health checks, internal calls);
//   - the string is an IPv4 address in dotted decimal or an IPv6 address
//     without a zone, as [netip.ParseAddr] reads them. ip is its canonical
//     form (2001:DB8::1 is 2001:db8::1), and an IPv4-mapped IPv6 address
//     (::ffff:192.0.2.1) is the IPv4 address it maps, so one client counts
//     once.
//
// Anything else sets err, one sentence naming what is wrong: the line is
// malformed.
func ClientIP(line []byte) (ip string, ok bool, err error) {
	if !utf8.Valid(line) {
		// encoding/json would turn the bytes into U+FFFD silently.
		return "", false, errors.New("not UTF-8 text")
	}
	// Validate first, so that the walk below only sees well-formed JSON;
	// an invalid line is read again for the scanner's plain error
	// ("unexpected end of JSON input").
	if !json.Valid(line) {
		var whole json.RawMessage
		err := json.Unmarshal(line, &whole)
		return "", false, fmt.Errorf("not a JSON object: %v", err)
	}
	whole := bytes.TrimSpace(line) // valid JSON: only JSON whitespace is around it
	if whole[0] != '{' {
		return "", false, fmt.Errorf("not a JSON object: the line holds a JSON %s", jsonKind(whole))
	}
	raw, err := objectField(whole, ipField)
	if err != nil {
		return "", false, err
	}
	if raw == nil || string(raw) == "null" {
		return "", false, nil
	}
	if raw[0] != '"' {
		return "", false, fmt.Errorf("%s is a JSON %s, not an IP address string", ipField, jsonKind(raw))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, fmt.Errorf("%s: %v", ipField, err)
	}
	if s == "" {
		return "", false, nil
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return "", false, fmt.Errorf("%s %q is not an IP address", ipField, s)
	}
	if addr.Zone() != "" {
		return "", false, fmt.Errorf("%s %q is not an IP address: it has an IPv6 zone", ipField, s)
	}
	return addr.Unmap().String(), true, nil
}

// objectField returns the raw value of field name in the valid JSON object
// obj, nil when obj has no such field. A field given twice is an error. obj
// being valid, the walk only finds where each key and value ends.
func objectField(obj []byte, name string) ([]byte, error) {
	var found []byte
	i := skipSpace(obj, 1) // past the opening brace
	for obj[i] != '}' {
		keyEnd := stringEnd(obj, i)
		key := obj[i:keyEnd]
		i = skipSpace(obj, skipSpace(obj, keyEnd)+1) // past the colon
		valEnd := valueEnd(obj, i)
		if keyIs(key, name) {
			if found != nil {
				return nil, fmt.Errorf("%s appears more than once", name)
			}
			found = obj[i:valEnd]
		}
		if i = skipSpace(obj, valEnd); obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	return found, nil
}

// keyIs reports whether the JSON string raw, quotes included, is name once
// its escapes are decoded.
func keyIs(raw []byte, name string) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1:len(raw)-1]) == name
	}
	var key string
	return json.Unmarshal(raw, &key) == nil && key == name
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the valid JSON string starting at i.
func stringEnd(b []byte, i int) int {
	for j := i + 1; ; j++ {
		switch b[j] {
		case '\\':
			j++ // the escaped byte
		case '"':
			return j + 1
		}
	}
}

// valueEnd returns the index after the valid JSON value starting at i.
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; ; j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
	}
	j := i // a number, true, false or null: up to the next delimiter
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && skipSpace(b, j) == j {
		j++
	}
	return j
}

// jsonKind names the kind of the valid JSON value v.
func jsonKind(v []byte) string {
	switch v[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}
