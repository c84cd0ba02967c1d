package headerrename

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/sentinel-proxy/sentinel/internal/headerhook"
)

func provisioned(t *testing.T, config string) *Rename {
	t.Helper()
	h := new(Rename)
	if err := json.Unmarshal([]byte(config), h); err != nil {
		t.Fatalf("decoding %s: %v", config, err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("validating %s: %v", config, err)
	}
	return h
}

// dump renders a header deterministically, keys as stored.
func dump(h http.Header) string {
	var sb strings.Builder
	for _, k := range sortedKeys(toStringMap(h)) {
		fmt.Fprintf(&sb, "%s=%s;", k, strings.Join(h[k], ","))
	}
	return sb.String()
}

func toStringMap(h http.Header) map[string]string {
	m := make(map[string]string, len(h))
	for k := range h {
		m[k] = ""
	}
	return m
}

func TestRenamingApply(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config map[string]string
		header http.Header
		want   string
	}{
		{
			name:   "moves all values",
			config: map[string]string{"X-Old": "X-New"},
			header: http.Header{"X-Old": {"a", "b"}, "X-Other": {"c"}},
			want:   "X-New=a,b;X-Other=c;",
		},
		{
			name:   "absent old field leaves the new one alone",
			config: map[string]string{"X-Old": "X-New"},
			header: http.Header{"X-New": {"keep"}},
			want:   "X-New=keep;",
		},
		{
			name:   "replaces the values of the new field",
			config: map[string]string{"X-Old": "X-New"},
			header: http.Header{"X-Old": {"a"}, "X-New": {"gone"}, "x-new": {"gone too"}},
			want:   "X-New=a;",
		},
		{
			name:   "case-insensitive names, canonical result",
			config: map[string]string{"x-old": "x-new"},
			header: http.Header{"X-Old": {"a"}, "x-old": {"b"}},
			want:   "X-New=a,b;",
		},
		{
			name:   "chains apply at once",
			config: map[string]string{"B": "C", "A": "B"},
			header: http.Header{"A": {"a"}, "B": {"b"}, "C": {"c"}},
			want:   "B=a;C=b;",
		},
		{
			name:   "chain with an absent link",
			config: map[string]string{"B": "C", "A": "B"},
			header: http.Header{"A": {"a"}, "C": {"c"}},
			want:   "B=a;C=c;",
		},
		{
			name:   "swaps",
			config: map[string]string{"X-A": "X-B", "X-B": "X-A"},
			header: http.Header{"X-A": {"a"}, "X-B": {"b"}},
			want:   "X-A=b;X-B=a;",
		},
		{
			name:   "several old fields to one new field, in order of the old names",
			config: map[string]string{"X-Z": "X-New", "X-A": "X-New"},
			header: http.Header{"X-Z": {"z"}, "X-A": {"a"}, "X-New": {"old"}},
			want:   "X-New=a,z;",
		},
		{
			name:   "present but empty old field",
			config: map[string]string{"X-Old": "X-New"},
			header: http.Header{"X-Old": {}, "X-New": {"old"}},
			want:   "X-New=;",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 20; i++ { // map iteration order must not matter
				hdr := tc.header.Clone()
				renameAll(hdr, compile(tc.config))
				if got := dump(hdr); got != tc.want {
					t.Fatalf("got %s, want %s", got, tc.want)
				}
			}
		})
	}
}

func TestServeHTTP(t *testing.T) {
	h := provisioned(t, `{"request":{"X-Old":"X-New"},"response":{"X-Backend":"X-Public","Server":"X-Origin-Server"}}`)
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Add("X-Old", "1")
	req.Header.Add("X-Old", "2")
	rec := httptest.NewRecorder()
	err := h.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if got := strings.Join(r.Header.Values("X-New"), ","); got != "1,2" {
			t.Errorf("request X-New = %q", got)
		}
		if _, ok := r.Header["X-Old"]; ok {
			t.Error("request X-Old is still present")
		}
		w.Header().Set("X-Backend", "b")
		w.Header().Set("Server", "upstream")
		w.WriteHeader(http.StatusAccepted)
		_, err := w.Write([]byte("ok"))
		return err
	}))
	if err != nil {
		t.Fatal(err)
	}
	res := rec.Result()
	if res.StatusCode != http.StatusAccepted || rec.Body.String() != "ok" {
		t.Errorf("got %d %q", res.StatusCode, rec.Body)
	}
	if got := dump(res.Header); got != "X-Origin-Server=upstream;X-Public=b;" {
		t.Errorf("response header %s", got)
	}
}

func TestServeHTTPRequestOnly(t *testing.T) {
	h := provisioned(t, `{"request":{"X-Old":"X-New"}}`)
	rec := httptest.NewRecorder()
	err := h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil), caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		if _, wrapped := w.(*headerhook.Writer); wrapped {
			t.Error("the response writer is wrapped without response renamings")
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
}

func TestServeHTTPError(t *testing.T) {
	h := provisioned(t, `{"response":{"X-Backend":"X-Public"}}`)
	rec := httptest.NewRecorder()
	want := caddyhttp.Error(http.StatusBadGateway, errors.New("upstream down"))
	err := h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil), caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		w.Header().Set("X-Backend", "b")
		return want
	}))
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want the next handler's error", err)
	}
	if got := dump(rec.Header()); got != "X-Public=b;" {
		t.Errorf("header for the error response: %s", got)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		config  string
		wantErr string
	}{
		{`{}`, ""},
		{`{"request":{"X-A":"X-B"},"response":{"x-b":"x-c"}}`, ""},
		{`{"request":{"X-A":""}}`, `request: invalid header field name ""`},
		{`{"response":{"X A":"X-B"}}`, `response: invalid header field name "X A"`},
		{`{"response":{"X-A":"X:B"}}`, `invalid header field name "X:B"`},
		{`{"request":{"host":"X-Host"}}`, `request: header field "host" cannot be renamed (reserved: Connection, Content-Length, Host, Transfer-Encoding)`},
		{`{"response":{"X-Len":"Content-Length"}}`, `header field "Content-Length" cannot be renamed`},
		{`{"request":{"X-A":"x-a"}}`, `request: header field "X-A" is renamed to itself`},
		{`{"request":{"X-A":"X-B","x-a":"X-C"}}`, `request: header field "x-a" is renamed twice (also as "X-A")`},
	} {
		t.Run(tc.config, func(t *testing.T) {
			h := new(Rename)
			if err := json.Unmarshal([]byte(tc.config), h); err != nil {
				t.Fatal(err)
			}
			err := h.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want %q", err, tc.wantErr)
			}
		})
	}
}
