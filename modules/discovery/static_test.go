package discovery

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/registry"
)

func TestStaticDiscovery(t *testing.T) {
	noLeaks(t)
	st := &Static{Targets: []registry.TargetSpec{{Address: "127.0.0.2:80", Weight: 2}, {Address: "127.0.0.1:80"}}}
	if err := st.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := provision(t, st)
	s := run(t, st)
	s.await(t, "127.0.0.1:80,127.0.0.2:80/2")
	if metric(t, ctx, RefreshName, ResultSuccess) != 1 {
		t.Error("the static set is not counted")
	}
	for _, bad := range []*Static{{}, {Targets: []registry.TargetSpec{{Address: "nope"}}}, {Targets: []registry.TargetSpec{{Address: "a:1", Weight: -1}}}} {
		if err := bad.Validate(); err == nil || !strings.HasPrefix(err.Error(), "static: ") {
			t.Errorf("%+v: %v", bad.Targets, err)
		}
	}
}

// TestMetricsShared: two discoverers of one config share the collectors.
func TestMetricsShared(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	if _, err := newLoop(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := newLoop(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if v, err := newVecs(nil); err != nil || v == nil {
		t.Fatal(err)
	}
}
