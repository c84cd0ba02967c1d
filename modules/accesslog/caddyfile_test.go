package accesslog

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
		{input: `sentinel_access`, want: `{}`},
		{input: `sentinel_access json`, want: `{"style":"json"}`},
		{input: `sentinel_access combined`, want: `{"style":"combined"}`},
		{
			input: "sentinel_access {\n style combined\n instance_id edge-1\n }",
			want:  `{"style":"combined","instance_id":"edge-1"}`,
		},
		{
			input: "sentinel_access combined {\n instance_id edge-2\n }",
			want:  `{"style":"combined","instance_id":"edge-2"}`,
		},
		{input: `sentinel_access common`, wantErr: `unknown sentinel_access style "common"`},
		{input: `sentinel_access json combined`, wantErr: "wrong argument count"},
		{input: "sentinel_access {\n style\n }", wantErr: "wrong argument count"},
		{input: "sentinel_access {\n style xml\n }", wantErr: `unknown sentinel_access style "xml"`},
		{input: "sentinel_access {\n instance_id a b\n }", wantErr: "wrong argument count"},
		{input: "sentinel_access {\n bogus 1\n }", wantErr: "unrecognized sentinel_access subdirective 'bogus'"},
	} {
		t.Run(tc.input, func(t *testing.T) {
			e := new(Encoder)
			err := e.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(e)
			if string(got) != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestCaddyfileLogDirective adapts a site's `log` directive that uses the
// encoder as its format.
func TestCaddyfileLogDirective(t *testing.T) {
	input := ":19159 {\n" +
		"\tlog {\n" +
		"\t\toutput stdout\n" +
		"\t\tformat sentinel_access combined {\n" +
		"\t\t\tinstance_id edge-1\n" +
		"\t\t}\n" +
		"\t}\n" +
		"\trespond \"ok\"\n" +
		"}\n"
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	out, warnings, err := adapter.Adapt([]byte(input), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Errorf("warnings: %v", warnings)
	}
	want := `"encoder":{"format":"sentinel_access","instance_id":"edge-1","style":"combined"}`
	if !strings.Contains(string(out), want) {
		t.Errorf("adapted config %s\ndoes not contain %s", out, want)
	}
}
