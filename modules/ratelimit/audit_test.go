package ratelimit

import (
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/modules/audit"
	"github.com/sentinel-proxy/sentinel/modules/audit/audittest"
)

// TestAuditRejections: a rejected request is audited with its zone,
// client and status, without the bucket key (an API key here); admitted
// and log-only requests are not.
func TestAuditRejections(t *testing.T) {
	h := provision(t, &Handler{Zone: "route:api/filter:rl", MaxRPS: 1, Burst: 1, Key: "header:x-api-key"})
	au, read := audittest.Start(t)
	h.audit = au
	for range 3 {
		do(t, h, "198.51.100.4", "/x", map[string]string{"X-Api-Key": "key-s3cr3t"})
	}
	lo := provision(t, &Handler{Zone: "lo", MaxRPS: 1, Burst: 1, OnLimit: "log_only"})
	lo.audit = au
	do(t, lo, "198.51.100.5", "/y", nil)
	do(t, lo, "198.51.100.5", "/y", nil)
	time.Sleep(100 * time.Millisecond)
	ev := read(2)
	if len(ev) != 2 {
		t.Fatalf("%d events, want 2", len(ev))
	}
	for _, e := range ev {
		if e.Kind != audit.KindRateLimit || e.Action != "reject" || e.Actor != "route:api/filter:rl" || e.Client != "198.51.100.4" || e.Status != 429 || e.Path != "/x" {
			t.Fatalf("event %+v", e)
		}
	}
}
