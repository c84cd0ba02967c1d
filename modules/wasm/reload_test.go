package wasm

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReloadInFlight reloads the config while requests are in flight: no
// request fails, the compiled module is reused, and the new config is
// delivered to the new instances.
func TestReloadInFlight(t *testing.T) {
	path := buildPlugin(t, "headerinject")
	backend := newBackend(t)
	cfg := func(v string) string {
		return proxyConfig(t, backend.Listener.Addr().String(), plugins{{
			"id": "inject", "path": path,
			"config": map[string]any{"response_headers": map[string]string{"X-Version": v}},
		}})
	}
	tester := startProxy(t, plugins{{"id": "inject", "path": path,
		"config": map[string]any{"response_headers": map[string]string{"X-Version": "v0"}}}})
	compiledBefore := compiles.Load()
	// Transport errors (EOF) happen during Caddy reloads with or without
	// this handler (measured: 1–2 per ~800 requests over 3 reloads of a
	// config with no plugin); they are counted apart and only bounded.
	// Any answered request must be a 200: a plugin failure would be 503.
	client := tester.Client
	var transportErrs atomic.Int64

	var stop atomic.Bool
	var failures, total atomic.Int64
	var wg sync.WaitGroup
	versions := sync.Map{}
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				resp, err := client.Get(url("/r"))
				total.Add(1)
				if err != nil {
					transportErrs.Add(1)
					t.Log(err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
					t.Logf("status %d", resp.StatusCode)
				}
				versions.Store(resp.Header.Get("X-Version"), true)
			}
		}()
	}
	for i := 1; i <= 3; i++ {
		time.Sleep(100 * time.Millisecond)
		resp, err := http.Post(fmt.Sprintf("http://localhost:%d/load", adminPort), "application/json", bytes.NewBufferString(cfg(fmt.Sprintf("v%d", i))))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("reload %d: %d %s", i, resp.StatusCode, b)
		}
	}
	time.Sleep(100 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if failures.Load() > 0 {
		t.Errorf("%d of %d requests failed during reloads", failures.Load(), total.Load())
	}
	if n := transportErrs.Load(); n*100 > total.Load() {
		t.Errorf("%d of %d requests had transport errors", n, total.Load())
	}
	if _, ok := versions.Load("v3"); !ok {
		t.Error("the last config's plugin config was never seen")
	}
	if n := compiles.Load() - compiledBefore; n != 0 {
		t.Errorf("module compiled %d more times on reload; want reuse", n)
	}
	resp, body := get(t, tester, "/after")
	if resp.StatusCode != 200 || resp.Header.Get("X-Version") != "v3" {
		t.Errorf("after reloads: %d %q %s", resp.StatusCode, resp.Header.Get("X-Version"), body)
	}
	t.Logf("%d requests during 3 reloads", total.Load())

	// metrics are registered on Caddy's registry, served by the admin API
	mresp, err := tester.Client.Get(fmt.Sprintf("http://localhost:%d/metrics", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{
		`sentinel_wasm_plugin_calls_total{phase="request_headers",plugin="inject"}`,
		`sentinel_wasm_plugin_calls_total{phase="response_headers",plugin="inject"}`,
		`sentinel_wasm_plugin_decisions_total{decision="allow",plugin="inject"}`,
		`sentinel_wasm_plugin_call_duration_seconds_bucket{phase="request_headers",plugin="inject"`,
		`sentinel_wasm_plugin_traps_total{plugin="inject"} 0`,
		`sentinel_wasm_plugin_timeouts_total{plugin="inject"} 0`,
	} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
