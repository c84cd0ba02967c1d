package routeguard

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/registry"
)

// caddyCut is what Caddy's getModuleNameInline does: decode into a map,
// drop the name, encode the rest.
func caddyCut(t *testing.T, raw string) (string, any) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	name, _ := m["handler"].(string)
	delete(m, "handler")
	return name, any(m)
}

// TestCutModuleName: the scan finds the same name as Caddy's map round
// trip and leaves the same object (decoded alike), whatever the member's
// place, spacing, escapes and nested members named "handler".
func TestCutModuleName(t *testing.T) {
	for _, raw := range []string{
		`{"handler":"reverse_proxy"}`,
		`{"handler":"reverse_proxy","upstreams":[{"dial":"a:1"}]}`,
		`{"upstreams":[{"dial":"a:1","handler":"x"}],"handler":"reverse_proxy"}`,
		` { "a" : 1 , "handler" : "headers" , "b" : {"c":[1,2,{"handler":"no"}]} } `,
		"{\n\t\"s\": \"}{][,\\\"handler\\\":\\\"x\\\"\",\n\t\"handler\": \"static_response\"\n}",
		`{"\u0068andler":"escaped_key","n":1.5e3,"t":true,"f":false,"z":null}`,
		`{"handler":"first","handler":"last"}`,
		`{"a":"<&>","handler":"h","e":{}, "l":[]}`,
	} {
		name, rest, err := cutModuleName(json.RawMessage(raw), "handler")
		if err != nil {
			t.Errorf("%s: %v", raw, err)
			continue
		}
		wantName, wantRest := caddyCut(t, raw)
		var got any
		if err := json.Unmarshal(rest, &got); err != nil {
			t.Errorf("%s: the rest %s is not JSON: %v", raw, rest, err)
			continue
		}
		if name != wantName || !reflect.DeepEqual(got, wantRest) {
			t.Errorf("%s: got %q %s, want %q %v", raw, name, rest, wantName, wantRest)
		}
	}
}

// TestCutModuleNameErrors: what Caddy rejects is rejected, without
// quoting the object (it may hold a secret).
func TestCutModuleNameErrors(t *testing.T) {
	for _, raw := range []string{
		`{"upstreams":[],"secret":"hunter2"}`,
		`{"handler":"","secret":"hunter2"}`,
		`{"handler":7,"secret":"hunter2"}`,
		`{"handler":"x",`,
		`["handler"]`,
		`"handler"`,
		``,
	} {
		_, _, err := cutModuleName(json.RawMessage(raw), "handler")
		if err == nil {
			t.Errorf("%q: no error", raw)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: the error quotes the object: %v", raw, err)
		}
		if strings.Contains(raw, "secret") && !errors.Is(err, errNoModuleName) {
			t.Errorf("%q: %v, want errNoModuleName", raw, err)
		}
	}
}

// TestFoldedHandlerErrors: a folded handler that does not load names the
// route and the handler's position.
func TestFoldedHandlerErrors(t *testing.T) {
	testReg.Reconcile(nil, []string{"folded-err"})
	ctx, cancel := caddy.NewContext(registry.WithRegistry(caddy.Context{Context: t.Context()}, testReg))
	defer cancel()
	for raw, want := range map[string]string{
		`{"handler":"nosuch"}`:                    `position 1: loading module 'nosuch'`,
		`{"status_code":200}`:                     `position 1: module name not specified with key 'handler'`,
		`{"handler":"static_response","bogus":1}`: `position 1: loading module 'static_response'`,
		`{"handler":"authentication","providers":{"http_basic":{"accounts":[{"username":"u","password":"hunter2"}],"hash":{"algorithm":"nosuch"}}}}`: `position 1: loading module 'authentication'`,
	} {
		g := &Guard{Route: "folded-err", HandleRaw: []json.RawMessage{json.RawMessage(`{"handler":"static_response"}`), json.RawMessage(raw)}}
		err := g.Provision(ctx)
		if err == nil || !strings.Contains(err.Error(), `sentinel_route "folded-err"`) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", raw, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error quotes a secret: %v", raw, err)
		}
	}
}

// BenchmarkCutModuleName is the scan of a reverse_proxy handler of the
// adapter's output (compare BenchmarkCaddyModuleName).
func BenchmarkCutModuleName(b *testing.B) {
	raw := json.RawMessage(benchHandler)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := cutModuleName(raw, "handler"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCaddyModuleName is Caddy's way of reading the same name.
func BenchmarkCaddyModuleName(b *testing.B) {
	raw := []byte(benchHandler)
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			b.Fatal(err)
		}
		delete(m, "handler")
		if _, err := json.Marshal(m); err != nil {
			b.Fatal(err)
		}
	}
}

const benchHandler = `{"handler":"reverse_proxy","health_checks":{"active":{"interval":"5s","uri":"/health"}},"load_balancing":{"selection_policy":{"policy":"weighted_round_robin","weights":[2,1,1]}},"transport":{"dial_timeout":"2s","protocol":"http","response_header_timeout":"30s"},"upstreams":[{"dial":"10.0.1.1:8080"},{"dial":"10.0.1.2:8080"},{"dial":"10.0.1.3:8080"}]}`
