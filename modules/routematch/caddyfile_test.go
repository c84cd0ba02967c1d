package routematch

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		input   string
		want    string
		wantErr string
	}{
		{
			name: "all subdirectives",
			input: `sentinel {
				path /x /y
				path_prefix /api
				path_prefix /v2
				path_regex \.png$
				host a.com *.b.com
				header X-A v
				header X-B
				method GET POST
				query q 1
				query flag
			}`,
			want: `{"path":["/x","/y"],"path_prefix":["/api","/v2"],"path_regex":["\\.png$"],` +
				`"host":["a.com","*.b.com"],"header":[{"name":"X-A","value":"v"},{"name":"X-B"}],` +
				`"method":["GET","POST"],"query":[{"name":"q","value":"1"},{"name":"flag"}]}`,
		},
		{
			name:  "no block matches everything",
			input: `sentinel`,
			want:  `{}`,
		},
		{
			name: "repeated matchers merge",
			input: `sentinel {
				path /a
			}
			sentinel {
				path /b
			}`,
			want: `{"path":["/a","/b"]}`,
		},
		{name: "inline arguments", input: `sentinel /x`, wantErr: "wrong argument count"},
		{name: "missing list argument", input: "sentinel {\n path\n }", wantErr: "wrong argument count"},
		{name: "header without name", input: "sentinel {\n header\n }", wantErr: "wrong argument count"},
		{name: "header with extra argument", input: "sentinel {\n header a b c\n }", wantErr: "wrong argument count"},
		{name: "query with extra argument", input: "sentinel {\n query a b c\n }", wantErr: "wrong argument count"},
		{name: "unknown subdirective", input: "sentinel {\n bogus x\n }", wantErr: "unrecognized sentinel matcher subdirective 'bogus'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := new(MatchRoute)
			err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			got, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
