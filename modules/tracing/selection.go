package tracing

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

func init() {
	caddy.RegisterModule(new(Selection))
}

// Selection is a selection policy that records each choice of its inner
// policy in a span (`upstream.select`), a child of the request's span:
// the policy, the number of candidates and the target chosen. The proxy
// asks once per attempt, so a retried request has one per attempt. The
// Sentinel adapter wraps the policy of each upstream in it when tracing
// is on.
type Selection struct {
	// Inner is the selection policy (default: random, as Caddy's).
	InnerRaw json.RawMessage `json:"inner,omitempty" caddy:"namespace=http.reverse_proxy.selection_policies inline_key=policy"`

	inner  reverseproxy.Selector
	policy string
}

// CaddyModule returns the Caddy module information.
func (*Selection) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.selection_policies.sentinel_traced",
		New: func() caddy.Module { return new(Selection) },
	}
}

// Provision loads the inner policy.
func (s *Selection) Provision(ctx caddy.Context) error {
	if s.InnerRaw == nil {
		s.InnerRaw = caddyconfig.JSONModuleObject(reverseproxy.RandomSelection{}, "policy", "random", nil)
	}
	s.policy = policyName(s.InnerRaw)
	mod, err := ctx.LoadModule(s, "InnerRaw")
	if err != nil {
		return fmt.Errorf("sentinel_traced: loading the inner selection policy: %w", err)
	}
	s.inner = mod.(reverseproxy.Selector)
	return nil
}

// policyName is the name of the selection policy raw, or of the one it
// wraps when it is sentinel_untried (a wrapper that only skips the
// targets already tried).
func policyName(raw json.RawMessage) string {
	var p struct {
		Policy string          `json:"policy"`
		Inner  json.RawMessage `json:"inner"`
	}
	_ = json.Unmarshal(raw, &p)
	if p.Policy == "sentinel_untried" && p.Inner != nil {
		return policyName(p.Inner)
	}
	return p.Policy
}

// Select lets the inner policy choose, in a span when the request is
// traced.
func (s *Selection) Select(pool reverseproxy.UpstreamPool, r *http.Request, w http.ResponseWriter) *reverseproxy.Upstream {
	tr, ok := tracerOf(r.Context())
	if !ok {
		return s.inner.Select(pool, r, w)
	}
	_, sp := tr.Start(r.Context(), "upstream.select", trace.WithAttributes(
		attribute.String("sentinel.lb.policy", s.policy),
		attribute.Int("sentinel.lb.candidates", len(pool)),
	))
	defer sp.End()
	u := s.inner.Select(pool, r, w)
	if u == nil {
		sp.SetStatus(codes.Error, "no upstream available")
		return nil
	}
	sp.SetAttributes(attribute.String("sentinel.upstream.address", u.Dial))
	return u
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Selection)(nil)
	_ reverseproxy.Selector = (*Selection)(nil)
)
