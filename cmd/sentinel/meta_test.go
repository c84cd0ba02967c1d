package main

import (
	"bytes"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestWithoutMetaFields: a config with "@id" fields loses them as with
// caddy.RemoveMetaFields; one without is returned as it is, without
// running Caddy's regular expression (half a second on 10,000 routes).
func TestWithoutMetaFields(t *testing.T) {
	with := []byte(`{"apps":{"http":{"servers":{"a":{"@id":"main","listen":[":1"]}}}}}`)
	if got, want := withoutMetaFields(with), caddy.RemoveMetaFields(with); !bytes.Equal(got, want) || bytes.Contains(got, []byte("@id")) {
		t.Errorf("with @id: %s, want %s", got, want)
	}
	if err := validateJSON([]byte(`{"apps":{"http":{"servers":{"a":{"@id":"main","listen":["127.0.0.1:0"]}}}}}`)); err != nil {
		t.Errorf("a config with @id does not validate: %v", err)
	}
	without := []byte(`{"apps":{"http":{"servers":{"a":{"listen":[":1"]}}}}}`)
	if got := withoutMetaFields(without); &got[0] != &without[0] {
		t.Error("a config without @id was rewritten")
	}
}
