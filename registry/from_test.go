package registry

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestFrom: a context made with WithRegistry gives its registry; a config
// context asks its sentinel app, and says so when there is none (this
// test binary does not link modules/sentinelapp).
func TestFrom(t *testing.T) {
	r := New()
	got, err := From(WithRegistry(caddy.Context{}, r))
	if err != nil || got != r {
		t.Fatalf("From(WithRegistry) = %p, %v; want %p", got, err, r)
	}
	ctx, err := caddy.ProvisionContext(&caddy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := From(ctx); err == nil || !strings.Contains(err.Error(), "sentinel app") {
		t.Errorf("From without a sentinel module: %v", err)
	}
}

// TestAttached: one value per key, made once even when asked
// concurrently.
func TestAttached(t *testing.T) {
	r := New()
	type key struct{}
	var made atomic.Int32
	var wg sync.WaitGroup
	vals := make([]any, 8)
	for i := range vals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vals[i] = r.Attached(key{}, func() any { made.Add(1); return new(int) })
		}()
	}
	wg.Wait()
	if made.Load() != 1 {
		t.Errorf("made %d values", made.Load())
	}
	for _, v := range vals {
		if v != vals[0] {
			t.Fatal("two values for one key")
		}
	}
	if New().Attached(key{}, func() any { return new(int) }) == vals[0] {
		t.Error("two registries share an attached value")
	}
}
