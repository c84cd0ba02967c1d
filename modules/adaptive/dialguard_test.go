package adaptive

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/registry"
)

// TestGuardDials: the dials of an API host-name target that reach a
// refused address fail as dial errors (plain and TLS dials), other
// targets and dials through a forward proxy pass, dial errors pass
// through.
func TestGuardDials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	reg := registry.New()
	reg.Reconcile([]registry.UpstreamSpec{{ID: "u", Targets: []registry.TargetSpec{{Address: "cfg.test:80"}}}}, nil)
	if _, err := reg.AddTarget("u", registry.Target{Address: "api.test:80", Weight: 1}, 0); err != nil {
		t.Fatal(err)
	}
	// Every dial reaches the loopback listener, whatever the name.
	var d net.Dialer
	loop := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, ln.Addr().String())
	}
	tr := &http.Transport{DialContext: loop, DialTLSContext: loop}
	guardDials(tr, reg, zap.NewNop())
	guardDials(nil, reg, zap.NewNop())
	ctx := context.Background()
	for name, dial := range map[string]func(context.Context, string, string) (net.Conn, error){"plain": tr.DialContext, "tls": tr.DialTLSContext} {
		_, err := dial(ctx, "tcp", "api.test:80")
		// A dial error (Caddy's DialError does not unwrap).
		var de reverseproxy.DialError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), "refused by the target policy") {
			t.Errorf("%s: API target rebound to loopback: %v", name, err)
		}
		// The dial info's address is the target's (the URL's may differ).
		dctx := context.WithValue(ctx, caddy.CtxKey("reverse_proxy.dial_info"), reverseproxy.DialInfo{Network: "tcp", Address: "api.test:80"})
		if _, err := dial(dctx, "tcp", "other:80"); err == nil || !strings.Contains(err.Error(), "api.test:80") {
			t.Errorf("%s: dial info's address: %v", name, err)
		}
		conn, err := dial(ctx, "tcp", "cfg.test:80")
		if err != nil {
			t.Errorf("%s: config target: %v", name, err)
		} else {
			conn.Close()
		}
		// Through a forward proxy, which resolves the name itself.
		pctx := context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{forwardProxyVar: &url.URL{Host: "proxy:3128"}})
		conn, err = dial(pctx, "tcp", "api.test:80")
		if err != nil {
			t.Errorf("%s: through a forward proxy: %v", name, err)
		} else {
			conn.Close()
		}
	}
	if n := reg.DialsRefused(); n != 4 {
		t.Errorf("DialsRefused = %d, want 4", n)
	}
	// A failed dial stays the dial's error.
	down := &http.Transport{
		DialContext:    func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("down") },
		DialTLSContext: func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("down") },
	}
	guardDials(down, reg, zap.NewNop())
	if _, err := down.DialContext(ctx, "tcp", "api.test:80"); err == nil || err.Error() != "down" {
		t.Errorf("failed dial: %v", err)
	}
	if _, err := down.DialTLSContext(ctx, "tcp", "api.test:80"); err == nil || err.Error() != "down" {
		t.Errorf("failed TLS dial: %v", err)
	}
}
