package kdladapter

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// TestStreamCloseDelay: upgraded connections outlive a reload by the
// grace period, or 30 s when it is Caddy's eternal one.
func TestStreamCloseDelay(t *testing.T) {
	for grace, want := range map[caddy.Duration]string{
		0:                               "30s",
		caddy.Duration(5 * time.Second): "5s",
		caddy.Duration(2 * time.Minute): "2m0s",
	} {
		if got := streamCloseDelay(grace); got != want {
			t.Errorf("grace %v: %s, want %s", time.Duration(grace), got, want)
		}
	}
}
