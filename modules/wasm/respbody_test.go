package wasm

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestResponseBodyHook: on_response_body alone (no on_response_headers)
// sees the held body and status and may replace the response; a trap
// there is handled by the failure mode (closed: 503 and none of the
// upstream's headers; open: the upstream's response unchanged).
func TestResponseBodyHook(t *testing.T) {
	for _, mode := range []string{"closed", "open"} {
		t.Run(mode, func(t *testing.T) {
			h, err := provisionHandler(t, mustJSON(t, map[string]any{"plugins": []any{map[string]any{
				"id": "rb", "path": buildPlugin(t, "respbody"), "failure_mode": mode, "timeout": "5s"}}}))
			if err != nil {
				t.Fatal(err)
			}
			rec, _ := serve(t, h, httptest.NewRequest(http.MethodGet, "/x", nil), 202, http.Header{"X-Up": {"1"}})
			if rec.Code != 451 || rec.Body.String() != "len=13 status=202" || rec.Header().Get("X-Up") != "" {
				t.Errorf("replaced: %d %v %q", rec.Code, rec.Header(), rec.Body.String())
			}
			rec, _ = serve(t, h, httptest.NewRequest(http.MethodGet, "/x", nil), 0, nil)
			if rec.Code != 200 || rec.Body.String() != "implicit 200" {
				t.Errorf("allowed: %d %q", rec.Code, rec.Body.String())
			}
			rec, _ = serve(t, h, httptest.NewRequest(http.MethodGet, "/trap", nil), 202, http.Header{"X-Up": {"1"}})
			if mode == "closed" && (rec.Code != 503 || !strings.Contains(rec.Body.String(), `"reason":"trap"`) || rec.Header().Get("X-Up") != "") {
				t.Errorf("trap closed: %d %v %q", rec.Code, rec.Header(), rec.Body.String())
			}
			if mode == "open" && (rec.Code != 202 || rec.Body.String() != "upstream body" || rec.Header().Get("X-Up") != "1") {
				t.Errorf("trap open: %d %v %q", rec.Code, rec.Header(), rec.Body.String())
			}
		})
	}
}
