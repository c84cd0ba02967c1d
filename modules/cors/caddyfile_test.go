package cors

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
			input: `sentinel_cors https://a.example.com`,
			want:  `{"allowed_origins":["https://a.example.com"]}`,
		},
		{
			input: `sentinel_cors https://a.example.com {
				allowed_origins https://*.example.org *
				allowed_methods GET PUT
				allowed_headers X-A
				allowed_headers X-B
				exposed_headers X-Total
				allow_credentials
				max_age 10m
			}`,
			want: `{"allowed_origins":["https://a.example.com","https://*.example.org","*"],` +
				`"allowed_methods":["GET","PUT"],"allowed_headers":["X-A","X-B"],"exposed_headers":["X-Total"],` +
				`"allow_credentials":true,"max_age":600000000000}`,
		},
		{
			input: "sentinel_cors * {\n allow_credentials false\n }",
			want:  `{"allowed_origins":["*"]}`,
		},
		{input: "sentinel_cors * {\n allow_credentials maybe\n }", wantErr: "allow_credentials"},
		{input: "sentinel_cors * {\n allow_credentials true false\n }", wantErr: "wrong argument count"},
		{input: "sentinel_cors * {\n max_age\n }", wantErr: "wrong argument count"},
		{input: "sentinel_cors * {\n max_age soon\n }", wantErr: "max_age"},
		{input: "sentinel_cors * {\n allowed_methods\n }", wantErr: "wrong argument count"},
		{input: "sentinel_cors * {\n bogus\n }", wantErr: "unrecognized sentinel_cors subdirective 'bogus'"},
	} {
		t.Run(tc.input, func(t *testing.T) {
			c := new(CORS)
			err := c.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(c)
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestParseCaddyfile(t *testing.T) {
	handler, err := parseCaddyfile(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(`sentinel_cors *`)})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := handler.(*CORS); !ok || len(c.AllowedOrigins) != 1 {
		t.Fatalf("got %#v", handler)
	}
	if _, err := parseCaddyfile(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser("sentinel_cors {\n bogus\n }")}); err == nil {
		t.Fatal("expected an error")
	}
}
