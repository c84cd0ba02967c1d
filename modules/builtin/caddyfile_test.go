package builtin

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		input     string
		wantKind  string
		wantRoute string
		wantErr   string
	}{
		{input: `sentinel_builtin health`, wantKind: "health"},
		{input: `sentinel_builtin status r-status`, wantKind: "status", wantRoute: "r-status"},
		{input: "sentinel_builtin {\n kind not_found\n route fallback\n }", wantKind: "not_found", wantRoute: "fallback"},
		{input: "sentinel_builtin health {\n route r\n }", wantKind: "health", wantRoute: "r"},
		{input: `sentinel_builtin`, wantErr: "missing kind"},
		{input: `sentinel_builtin a b c`, wantErr: "wrong argument count"},
		{input: "sentinel_builtin health {\n kind status\n }", wantErr: "kind already specified"},
		{input: "sentinel_builtin health r {\n route s\n }", wantErr: "route already specified"},
		{input: "sentinel_builtin {\n kind\n }", wantErr: "wrong argument count"},
		{input: "sentinel_builtin health {\n route\n }", wantErr: "wrong argument count"},
		{input: "sentinel_builtin health {\n bogus\n }", wantErr: "unrecognized sentinel_builtin subdirective 'bogus'"},
	} {
		t.Run(tc.input, func(t *testing.T) {
			b := new(Builtin)
			err := b.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Kind != tc.wantKind || b.Route != tc.wantRoute {
				t.Errorf("got kind %q route %q, want %q %q", b.Kind, b.Route, tc.wantKind, tc.wantRoute)
			}
		})
	}
}

func TestParseCaddyfile(t *testing.T) {
	h := httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(`sentinel_builtin health`)}
	handler, err := parseCaddyfile(h)
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := handler.(*Builtin); !ok || b.Kind != KindHealth {
		t.Fatalf("got %#v", handler)
	}
	h = httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(`sentinel_builtin`)}
	if _, err := parseCaddyfile(h); err == nil {
		t.Fatal("expected an error for a missing kind")
	}
}
