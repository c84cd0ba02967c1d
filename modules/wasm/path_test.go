package wasm

import (
	"strings"
	"testing"
)

// bypassPaths are spellings of /api/secret that a plugin comparing the
// raw path would not recognise.
var bypassPaths = []string{"/api/%73ecret", "/api//secret", "/api/./secret", "/api/x/../secret", "/api/%2e/secret", "/api/secret"}

// TestPathIsNormalised: get_path gives the path route matching uses,
// get_raw_path the one received (issue 13.2).
func TestPathIsNormalised(t *testing.T) {
	tester := startProxy(t, plugins{{"id": "paths", "path": buildPlugin(t, "paths")}})
	for _, p := range bypassPaths {
		resp, body := get(t, tester, p)
		if want := "path=/api/secret raw=" + p; resp.StatusCode != 299 || body != want {
			t.Errorf("%s: %d %q, want %q", p, resp.StatusCode, body, want)
		}
	}
	// a trailing slash is kept, like route matching does
	if _, body := get(t, tester, "/api//dir/"); body != "path=/api/dir/ raw=/api//dir/" {
		t.Errorf("trailing slash: %q", body)
	}
}

// TestPathAllowBypass: the pathallow example plugin cannot be passed by
// another spelling of a path it does not allow, and allows by segment.
func TestPathAllowBypass(t *testing.T) {
	tester := startProxy(t, plugins{{
		"id": "paths", "path": buildPlugin(t, "pathallow"),
		"config": map[string]any{"allow": []string{"/public"}},
	}})
	for _, p := range []string{"/public/../admin", "/public/%2e%2e/admin", "/public/./../admin", "/publicity", "/admin"} {
		if resp, body := get(t, tester, p); resp.StatusCode != 403 {
			t.Errorf("%s passed: %d %s", p, resp.StatusCode, body)
		}
	}
	for _, p := range []string{"/public", "/public/x", "/public//x", "/x/../public/y"} {
		if resp, body := get(t, tester, p); resp.StatusCode != 200 {
			t.Errorf("%s refused: %d %s", p, resp.StatusCode, body)
		}
	}
}

// TestPluginConfigErrors: an example plugin given a config it cannot
// use fails the load with the reason, instead of blocking every request
// (issue 13.7): a single string where a list is expected (KDL `allow
// "/api"`), a missing allow list, an unknown key, a wrong type.
func TestPluginConfigErrors(t *testing.T) {
	pathallow, headerinject := buildPlugin(t, "pathallow"), buildPlugin(t, "headerinject")
	for _, tc := range []struct {
		name, path string
		config     any
		want       []string
	}{
		{"one value for a list", pathallow, map[string]any{"allow": "/api"}, []string{`plugin "p"`, `pathallow: config key "allow": a list is expected, got a single string`, `allow (list)"…"`}},
		{"allow missing", pathallow, map[string]any{"redirects": map[string]string{"/a": "/b"}}, []string{`config key "allow" is missing`}},
		{"unknown key", pathallow, map[string]any{"allow": []string{"/a"}, "alow": []string{"/b"}}, []string{`unknown field "alow"`}},
		{"wrong type", headerinject, map[string]any{"request_headers": []string{"x"}}, []string{`headerinject: config key "request_headers": got a list, want a block (object)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := provisionHandler(t, mustJSON(t, map[string]any{"plugins": []any{map[string]any{"id": "p", "path": tc.path, "config": tc.config}}}))
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// and the list form loads
	if _, err := provisionHandler(t, mustJSON(t, map[string]any{"plugins": []any{map[string]any{"path": pathallow, "config": map[string]any{"allow": []string{"/api"}}}}})); err != nil {
		t.Fatal(err)
	}
}
