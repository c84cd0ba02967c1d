package adminui

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	h := Handler()
	tests := []struct {
		method, path string
		status       int
		ctype        string
	}{
		{"GET", "/ui/", 200, "text/html; charset=utf-8"},
		{"GET", "/ui/index.html", 200, "text/html; charset=utf-8"},
		{"GET", "/ui/app.js", 200, "text/javascript; charset=utf-8"},
		{"HEAD", "/ui/style.css", 200, "text/css; charset=utf-8"},
		{"GET", "/ui/favicon.svg", 200, "image/svg+xml"},
		{"GET", "/ui", 301, ""},
		{"GET", "/ui/nope.js", 404, ""},
		{"GET", "/ui/../adminui.go", 404, ""},
		{"GET", "/ui/adminui.go", 404, ""},
		{"GET", "/other", 404, ""},
		{"POST", "/ui/", 405, ""},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(tt.method, "/", nil)
		r.URL.Path = tt.path
		h.ServeHTTP(w, r)
		if w.Code != tt.status {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, w.Code, tt.status)
		}
		if tt.ctype != "" && w.Header().Get("Content-Type") != tt.ctype {
			t.Errorf("%s %s: Content-Type %q", tt.method, tt.path, w.Header().Get("Content-Type"))
		}
		if tt.method == "HEAD" && w.Body.Len() != 0 {
			t.Errorf("HEAD %s wrote a body", tt.path)
		}
		if w.Header().Get("Content-Security-Policy") != CSP || w.Header().Get("X-Frame-Options") != "DENY" ||
			w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s: security headers %v", tt.method, tt.path, w.Header())
		}
	}
}

// TestNoInlineScript checks the files the CSP would break: no inline
// script or style in the page, no handler attributes, no remote URL.
func TestNoInlineScript(t *testing.T) {
	for _, name := range []string{"index.html", "app.js", "style.css"} {
		body, err := files.ReadFile("static/" + name)
		if err != nil {
			t.Fatal(err)
		}
		// The SVG namespace is a name, not a URL that is fetched.
		s := strings.ReplaceAll(string(body), `"http://www.w3.org/2000/svg"`, "")
		for _, bad := range []string{"<script>", "<style", " onclick=", " onload=", "style=\"", "http://", "https://", "innerHTML", "eval("} {
			if strings.Contains(s, bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
	}
	if !strings.Contains(CSP, "default-src 'self'") || !strings.Contains(CSP, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", CSP)
	}
}
