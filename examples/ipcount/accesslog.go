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
	// Validate first: the scanner's errors are the plain ones
	// ("unexpected end of JSON input"), and the walk below then only sees
	// well-formed JSON.
	var whole json.RawMessage
	if err := json.Unmarshal(line, &whole); err != nil {
		return "", false, fmt.Errorf("not a JSON object: %v", err)
	}
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
// obj, nil when obj has no such field. A field given twice is an error.
func objectField(obj []byte, name string) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil { // the opening brace
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	var found json.RawMessage
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not a JSON object: %v", err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("not a JSON object: %v", err)
		}
		if key, _ := tok.(string); key == name {
			if found != nil {
				return nil, fmt.Errorf("%s appears more than once", name)
			}
			found = v
		}
	}
	return found, nil
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
