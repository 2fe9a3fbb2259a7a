package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"unicode/utf8"
)

// ClientIP returns the client_real_ip of a JSON access-log line. ok is
// false when the line has no such field, or it is null or empty. err is set
// when the line is not a JSON object or the field is not an IP address
// string, or the line is not UTF-8 text: the line is malformed.
func ClientIP(line []byte) (ip string, ok bool, err error) {
	if !utf8.Valid(line) {
		// encoding/json would turn the bytes into U+FFFD silently.
		return "", false, fmt.Errorf("not UTF-8 text")
	}
	var entry *struct {
		ClientRealIP *string `json:"client_real_ip"`
	}
	if err := json.Unmarshal(line, &entry); err != nil {
		return "", false, fmt.Errorf("not a JSON object: %v", err)
	}
	if entry == nil {
		return "", false, fmt.Errorf("not a JSON object: null")
	}
	if entry.ClientRealIP == nil || *entry.ClientRealIP == "" {
		return "", false, nil
	}
	addr, err := netip.ParseAddr(*entry.ClientRealIP)
	if err != nil {
		return "", false, fmt.Errorf("client_real_ip %q is not an IP address", *entry.ClientRealIP)
	}
	return addr.String(), true, nil
}
