package kdladapter

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"

	"github.com/sentinel-proxy/sentinel/modules/agents"
	"github.com/sentinel-proxy/sentinel/modules/routematch"
)

// sortedJSON is v as encoding/json writes it with every object's keys
// sorted (decoded into maps and encoded again).
func sortedJSON(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(m)
	return out
}

// TestModuleJSONMatchesEncodingJSON: the planned encoder writes what
// encoding/json writes (embedded pointers, omitempty, maps, pointers to
// strings, Marshalers, raw messages, nil slices), with the keys sorted,
// plus the inline key.
func TestModuleJSONMatchesEncodingJSON(t *testing.T) {
	v := "x"
	m := routematch.MatchRoute{Path: []string{"/a", "/b"}, Host: []string{"h<&>"}, Header: []routematch.HeaderMatch{{Name: "A", Value: &v}, {Name: "B"}}, SkipWhenDisabled: "r"}
	if got, want := newModuleJSON[routematch.MatchRoute]("", "").raw(&m), sortedJSON(t, m); !bytes.Equal(got, want) {
		t.Errorf("matcher\n got %s\nwant %s", got, want)
	}
	h := headers.Handler{Response: &headers.RespHeaderOps{HeaderOps: &headers.HeaderOps{Set: http.Header{"B": {"1"}, "A": {"2", "3"}}, Delete: []string{"X"}}, Deferred: true}}
	got := newModuleJSON[headers.Handler]("handler", "headers").raw(&h)
	want := []byte(`{"handler":"headers","response":{"deferred":true,"delete":["X"],"set":{"A":["2","3"],"B":["1"]}}}`)
	if !bytes.Equal(got, want) {
		t.Errorf("headers\n got %s\nwant %s", got, want)
	}
	// Embedded nil pointer: its fields are absent.
	h = headers.Handler{Response: &headers.RespHeaderOps{Deferred: true}}
	if got := newModuleJSON[headers.Handler]("", "").raw(&h); string(got) != `{"response":{"deferred":true}}` {
		t.Errorf("nil embedded: %s", got)
	}
	sr := caddyhttp.StaticResponse{StatusCode: "302", Headers: http.Header{"Location": {"/x"}}}
	if got := newModuleJSON[caddyhttp.StaticResponse]("handler", "static_response").raw(&sr); string(got) != `{"handler":"static_response","headers":{"Location":["/x"]},"status_code":302}` {
		t.Errorf("static response: %s", got)
	}
	// Durations as strings, at any depth; a field without omitempty is
	// written when empty (null for a nil slice).
	a := agents.App{Agents: []*agents.AgentConfig{{ID: "a", Timeout: caddy.Duration(1500 * time.Millisecond), CircuitBreaker: &agents.BreakerConfig{Timeout: caddy.Duration(30 * time.Second)}, Config: json.RawMessage(`{"k":1}`)}}}
	if got := newModuleJSON[agents.App]("", "").raw(&a); string(got) != `{"agents":[{"circuit_breaker":{"timeout":"30s"},"config":{"k":1},"id":"a","timeout":"1.5s"}]}` {
		t.Errorf("agents: %s", got)
	}
	if got := newModuleJSON[agents.Handler]("handler", "sentinel_agents").raw(&agents.Handler{}); string(got) != `{"filters":null,"handler":"sentinel_agents"}` {
		t.Errorf("handler: %s", got)
	}
}

func TestModuleJSONRefusesNonStruct(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for a non-struct")
		}
	}()
	newModuleJSON[int]("", "")
}
