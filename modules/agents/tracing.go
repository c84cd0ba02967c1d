package agents

import (
	"context"
	"time"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/modules/tracing"
)

// call sends ev to the agent (send). When the request is traced, the
// call is a span of its own (`agent <id>`, with the event and the
// agent's decision), and the request_headers event carries that span's
// traceparent in its metadata, so that the agent's own spans are its
// children.
func (p *pool) call(ctx context.Context, ev protocol.Event, timeout time.Duration, prefer protocol.Client) callResult {
	ctx, sp := tracing.StartAgent(ctx, p.s.id, eventName(ev.EventType()))
	if sp == nil {
		return p.send(ctx, ev, timeout, prefer)
	}
	if rh, ok := ev.(*protocol.RequestHeaders); ok {
		cp := *rh
		cp.Metadata.Traceparent = tracing.Traceparent(ctx, "")
		ev = &cp
	}
	r := p.send(ctx, ev, timeout, prefer)
	decision := ""
	if r.err == nil && r.resp != nil {
		decision = r.resp.Decision.Kind.String()
	}
	tracing.EndAgent(sp, decision, r.err)
	return r
}
