package integration

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestReadmeExample runs examples/sentinel.kdl (the README's first
// config) and the README's /config PATCH of its API upstreams.
func TestReadmeExample(t *testing.T) {
	src, err := os.ReadFile("../examples/sentinel.kdl")
	if err != nil {
		t.Fatal(err)
	}
	site, err := filepath.Abs("../examples/site")
	if err != nil {
		t.Fatal(err)
	}
	b1, b2, b3 := startBackend(t, "b1"), startBackend(t, "b2"), startBackend(t, "b3")
	listen, metrics := testutil.FreeAddr(t), testutil.FreeAddr(t)
	kdl := strings.NewReplacer(`"127.0.0.1:8080"`, `"`+listen+`"`, `"127.0.0.1:9090"`, `"`+metrics+`"`,
		`"127.0.0.1:3001"`, `"`+b1.addr+`"`, `"127.0.0.1:3002"`, `"`+b2.addr+`"`, `"./examples/site"`, `"`+site+`"`).Replace(string(src))
	loadKDL(t, kdl)
	c := client()

	status, body, _ := get(t, c, "GET", "http://"+listen+"/", nil)
	if status != 200 || !strings.Contains(body, "Hello from Sentinel") {
		t.Fatalf("static site: %d %q", status, body)
	}
	status, body, _ = get(t, c, "GET", "http://"+listen+"/some/page", nil)
	if status != 200 || !strings.Contains(body, "Hello from Sentinel") {
		t.Fatalf("SPA fallback: %d %q", status, body)
	}
	for i := 0; i < 3; i++ {
		if status, body, _ := get(t, c, "GET", "http://"+listen+"/api/x", nil); status != 200 || !strings.HasPrefix(body, "b") {
			t.Fatalf("api: %d %q", status, body)
		}
	}
	if b1.hits.Load() != 2 || b2.hits.Load() != 1 {
		t.Errorf("weights 2:1 → got %d:%d", b1.hits.Load(), b2.hits.Load())
	}

	// The README's PATCH: replace the api upstream's targets.
	url := fmt.Sprintf("http://localhost:%d/config/apps/sentinel/upstreams/0/targets", adminPort)
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(cur), b1.addr) {
		t.Fatalf("the README's path does not hold the API upstreams: %s", cur)
	}
	req, _ := http.NewRequest("PATCH", url, bytes.NewReader([]byte(`[{"address":"`+b3.addr+`"}]`)))
	req.Header.Set("Content-Type", "application/json")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("PATCH: %d", res.StatusCode)
	}
	if status, body, _ := get(t, c, "GET", "http://"+listen+"/api/y", nil); status != 200 || body != "b3 /api/y" {
		t.Errorf("after PATCH: %d %q", status, body)
	}
}
