package timeout

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		input   string
		want    time.Duration
		wantErr string
	}{
		{input: `sentinel_timeout 30s`, want: 30 * time.Second},
		{input: `sentinel_timeout 1m30s`, want: 90 * time.Second},
		{input: `sentinel_timeout 2d`, want: 48 * time.Hour},
		{input: `sentinel_timeout`, wantErr: "wrong argument count"},
		{input: `sentinel_timeout 1s 2s`, wantErr: "wrong argument count"},
		{input: `sentinel_timeout soon`, wantErr: `parsing timeout "soon"`},
		{input: "sentinel_timeout 1s {\n timeout 2s\n }", wantErr: "does not take a block"},
	} {
		t.Run(tc.input, func(t *testing.T) {
			h := new(Timeout)
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if time.Duration(h.Timeout) != tc.want {
				t.Errorf("got %s, want %s", time.Duration(h.Timeout), tc.want)
			}
		})
	}
}

func TestParseCaddyfile(t *testing.T) {
	handler, err := parseCaddyfile(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(`sentinel_timeout 5s`)})
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := handler.(*Timeout); !ok || time.Duration(h.Timeout) != 5*time.Second {
		t.Fatalf("got %#v", handler)
	}
	if _, err := parseCaddyfile(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(`sentinel_timeout`)}); err == nil {
		t.Fatal("expected an error")
	}
}
