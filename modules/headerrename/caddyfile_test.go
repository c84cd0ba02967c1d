package headerrename

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		input   string
		want    string
		wantErr string
	}{
		{
			input: "header_rename {\n request X-Old X-New\n request X-A X-B\n response Server X-Server\n }",
			want:  `{"request":{"X-A":"X-B","X-Old":"X-New"},"response":{"Server":"X-Server"}}`,
		},
		{input: `header_rename`, want: `{}`},
		{input: `header_rename X-A X-B`, wantErr: "wrong argument count"},
		{input: "header_rename {\n request X-A\n }", wantErr: "wrong argument count"},
		{input: "header_rename {\n response X-A X-B X-C\n }", wantErr: "wrong argument count"},
		{input: "header_rename {\n both X-A X-B\n }", wantErr: "unrecognized header_rename subdirective 'both'"},
		{input: "header_rename {\n request X-A X-B\n request X-A X-C\n }", wantErr: "request header field 'X-A' renamed twice"},
	} {
		t.Run(tc.input, func(t *testing.T) {
			h := new(Rename)
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
			got, _ := json.Marshal(h)
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestParseCaddyfile(t *testing.T) {
	handler, err := parseCaddyfile(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser("header_rename {\n response A B\n }")})
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := handler.(*Rename); !ok || h.Response["A"] != "B" {
		t.Fatalf("got %#v", handler)
	}
	if _, err := parseCaddyfile(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser("header_rename a b")}); err == nil {
		t.Fatal("expected an error")
	}
}
