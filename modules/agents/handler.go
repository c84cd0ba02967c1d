package agents

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/internal/httperr"
	"github.com/sentinel-proxy/sentinel/modules/audit"
	"github.com/sentinel-proxy/sentinel/modules/routematch"
	"github.com/sentinel-proxy/sentinel/modules/tracing"
)

// Handler is `http.handlers.sentinel_agents`: the agent filters of a
// route, in the route's filter order. Request headers go to all of them
// in parallel and the first non-allow decision in filter order wins;
// bodies and responses go to them one after another. Each agent is
// protected by its own queue, breaker and timeouts (see App).
type Handler struct {
	// Route is the route id sent to agents in the request metadata.
	Route string `json:"route,omitempty"`
	// Upstream is the route's upstream id sent in the request metadata.
	Upstream string `json:"upstream,omitempty"`
	// Filters are the agent filters, in order.
	Filters []*Filter `json:"filters"`
	// Challenge is the answer to a challenge decision (default 403 with
	// the challenge as JSON).
	Challenge *ChallengeResponse `json:"challenge,omitempty"`

	app   *App
	audit *audit.App // nil: audit off
	log   *zap.Logger
}

// Filter is one agent filter of a route.
type Filter struct {
	// Agent is the agent id (configured, or live-registered).
	Agent string `json:"agent"`
	// Phase is `request`, `response` or `both` (default): the phases in
	// which the agent's events are sent.
	Phase string `json:"phase,omitempty"`
	// Timeout overrides the agent's call timeout.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// FailureMode overrides the agent's failure mode (`open`, `closed`).
	FailureMode string `json:"failure_mode,omitempty"`
	// InspectBody also sends the body of the filter's phases.
	InspectBody bool `json:"inspect_body,omitempty"`
	// MaxBodyBytes overrides the agent's body limits.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`
	// BodyMode overrides the agent's body modes (`buffer`, `stream`,
	// `hybrid`, `hybrid:<bytes>`).
	BodyMode string `json:"body_mode,omitempty"`

	request, response bool
	failClosed        *bool
	bodyMode          string
	hybrid            int64
}

// ChallengeResponse is how a challenge decision is answered.
type ChallengeResponse struct {
	// Status is the HTTP status (default 403).
	Status int `json:"status,omitempty"`
	// Body is the response body; {agent.challenge.type} and
	// {agent.challenge.param.<name>} are replaced. Default: the
	// challenge as JSON.
	Body string `json:"body,omitempty"`
	// Headers are set on the response (placeholders replaced).
	Headers http.Header `json:"headers,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.sentinel_agents", New: func() caddy.Module { return new(Handler) }}
}

// Provision checks the filters and finds the app.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.log = ctx.Logger()
	if err := h.setup(); err != nil {
		return err
	}
	if err := metrics.register(ctx); err != nil {
		return fmt.Errorf("registering agent metrics: %w", err)
	}
	app, err := ctx.App("sentinel_agents")
	if err != nil {
		return fmt.Errorf("sentinel_agents: loading the app: %w", err)
	}
	h.app = app.(*App)
	if h.audit, err = audit.Lookup(ctx); err != nil {
		return err
	}
	return nil
}

// setup validates the filters.
func (h *Handler) setup() error {
	if len(h.Filters) == 0 {
		return errors.New("sentinel_agents: no filters")
	}
	for i, f := range h.Filters {
		if f == nil || f.Agent == "" {
			return fmt.Errorf("sentinel_agents: filter %d has no agent", i)
		}
		switch strings.ToLower(f.Phase) {
		case "", "both":
			f.request, f.response = true, true
		case "request":
			f.request = true
		case "response":
			f.response = true
		default:
			return fmt.Errorf("sentinel_agents: filter %q: phase %q is not request, response or both", f.Agent, f.Phase)
		}
		if f.FailureMode != "" {
			closed, err := parseFailureMode(f.FailureMode)
			if err != nil {
				return fmt.Errorf("sentinel_agents: filter %q: %w", f.Agent, err)
			}
			f.failClosed = &closed
		}
		if f.BodyMode != "" {
			m, err := parseBodyMode(f.BodyMode, &f.hybrid)
			if err != nil {
				return fmt.Errorf("sentinel_agents: filter %q: %w", f.Agent, err)
			}
			f.bodyMode = m
		}
		if f.Timeout < 0 || f.MaxBodyBytes < 0 {
			return fmt.Errorf("sentinel_agents: filter %q: negative timeout or max_body_bytes", f.Agent)
		}
	}
	return nil
}

// run is one agent filter during one request.
type run struct {
	f      *Filter
	p      *pool
	s      *settings
	client protocol.Client // the connection of the request's headers call
	skip   bool
	// corr is the correlation id of the request for this agent: the
	// request's, with a suffix when a route names one agent twice (one
	// outstanding call per id and connection).
	corr string
}

func (r *run) failClosed() bool {
	if r.f.failClosed != nil {
		return *r.f.failClosed
	}
	return r.s.failClosed
}

func (r *run) timeout() time.Duration {
	if r.f.Timeout > 0 {
		return time.Duration(r.f.Timeout)
	}
	return r.s.timeout
}

// wants reports whether the agent gets an event in this request.
func (r *run) wants(event string) bool {
	if r.skip || r.p == nil {
		return false
	}
	switch event {
	case EventRequestHeaders:
		return r.f.request && r.s.events[event]
	case EventRequestBody:
		return r.f.request && (r.s.events[event] || r.f.InspectBody)
	case EventResponseHeaders:
		return r.f.response && r.s.events[event]
	case EventResponseBody:
		return r.f.response && (r.s.events[event] || r.f.InspectBody)
	}
	return r.s.events[event]
}

func (r *run) maxBody(response bool) int64 {
	if r.f.MaxBodyBytes > 0 {
		return r.f.MaxBodyBytes
	}
	if response {
		return r.s.maxResp
	}
	return r.s.maxReqBody
}

func (r *run) bodyMode(response bool) (string, int64) {
	if r.f.bodyMode != "" {
		if r.f.hybrid > 0 {
			return r.f.bodyMode, r.f.hybrid
		}
		return r.f.bodyMode, r.s.hybridBytes
	}
	if response {
		return r.s.respMode, r.s.hybridBytes
	}
	return r.s.reqMode, r.s.hybridBytes
}

// reqState is the agents' view of one request.
type reqState struct {
	h     *Handler
	r     *http.Request
	corr  string
	runs  []*run
	start time.Time
	// respOps are response header operations decided so far.
	respOps []protocol.HeaderOp
	// stop is set when a body agent decided or failed closed while the
	// body streamed to the upstream; the handler answers with it.
	mu   sync.Mutex
	stop *stopAnswer
	// reqBytes counts the request body bytes seen.
	reqBytes atomic.Int64
}

// stopAnswer is the proxy's own answer to a request.
type stopAnswer struct {
	agent    string
	decision *protocol.Decision // nil: a failure with status
	audit    *protocol.Audit    // the deciding response's audit metadata
	status   int
	err      error
}

func (st *reqState) setStop(a *stopAnswer) {
	st.mu.Lock()
	if st.stop == nil {
		st.stop = a
	}
	st.mu.Unlock()
}

func (st *reqState) stopped() *stopAnswer {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.stop
}

// errStopped ends the body the upstream reads when an agent stopped it.
var errStopped = errors.New("request stopped by an agent")

// ServeHTTP runs the agents around the rest of the chain.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	st := &reqState{h: h, r: r, corr: correlationID(r), start: time.Now()}
	active := false
	seen := map[string]int{}
	for _, f := range h.Filters {
		ru := &run{f: f, p: h.app.pool(f.Agent), corr: st.corr}
		if n := seen[f.Agent]; n > 0 {
			ru.corr = st.corr + "-" + strconv.Itoa(n)
		}
		seen[f.Agent]++
		if ru.p != nil {
			ru.s = ru.p.s
			active = true
		}
		st.runs = append(st.runs, ru)
	}
	// Agents that exist in no pool (a live agent not registered yet)
	// are down: their failure mode decides.
	for _, ru := range st.runs {
		if ru.p == nil {
			if ru.f.failClosed != nil && *ru.f.failClosed {
				return h.fail(ru.f.Agent, EventRequestHeaders, errAgentDown, true)
			}
			metrics.skipped.WithLabelValues(ru.f.Agent, EventRequestHeaders, "failure").Inc()
			ru.skip = true
		}
	}
	if !active {
		return next.ServeHTTP(w, r)
	}
	if done, err := st.requestHeaders(w); done {
		return err
	}
	if done, err := st.requestBody(w); done {
		return err
	}
	rw := st.wrapResponse(w)
	err := next.ServeHTTP(rw.writer(), r)
	if a := st.stopped(); a != nil && !rw.wroteAny() {
		err = st.answer(w, a)
	} else if ferr := rw.finish(); ferr != nil {
		err = ferr
	}
	if rw.failure != nil {
		err = rw.failure
	}
	st.complete(rw)
	if rw.aborted {
		panic(http.ErrAbortHandler)
	}
	return err
}

// answer writes the proxy's own answer.
func (st *reqState) answer(w http.ResponseWriter, a *stopAnswer) error {
	if a.decision != nil {
		return st.h.decide(w, st.r, a.agent, *a.decision, a.audit, st.respOps)
	}
	return failError(a.status, a.err)
}

// requestHeaders fans the request headers out to the agents in parallel;
// it reports whether the request was answered.
func (st *reqState) requestHeaders(w http.ResponseWriter) (bool, error) {
	var runs []*run
	for _, ru := range st.runs {
		if ru.wants(EventRequestHeaders) {
			runs = append(runs, ru)
		}
	}
	if len(runs) == 0 {
		return false, nil
	}
	base := st.headersEvent()
	evs := make([]protocol.Event, len(runs))
	for i, ru := range runs {
		if ru.corr == st.corr {
			evs[i] = base
			continue
		}
		cp := *base
		cp.CorrelationID, cp.Metadata.CorrelationID = ru.corr, ru.corr
		evs[i] = &cp
	}
	results := make([]callResult, len(runs))
	ctx, cancel := context.WithCancel(st.r.Context())
	defer cancel()
	if len(runs) == 1 {
		results[0] = runs[0].p.call(ctx, evs[0], runs[0].timeout(), nil)
	} else {
		done := make([]chan struct{}, len(runs))
		var wg sync.WaitGroup
		for i, ru := range runs {
			done[i] = make(chan struct{})
			if i == 0 {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(done[i])
				results[i] = ru.p.call(ctx, evs[i], ru.timeout(), nil)
			}()
		}
		defer wg.Wait()
		// The first agent's call runs on this goroutine.
		results[0] = runs[0].p.call(ctx, evs[0], runs[0].timeout(), nil)
		close(done[0])
		// In filter order: the first deciding agent ends the wait for
		// the others (their calls are cancelled).
		for i := range runs {
			<-done[i]
			if decisive(runs[i], results[i]) {
				cancel()
				break
			}
		}
	}
	var reqOps []protocol.HeaderOp
	for i, ru := range runs {
		res := results[i]
		ru.client = res.client
		if res.err != nil {
			if ru.failClosed() {
				return true, st.h.fail(ru.f.Agent, EventRequestHeaders, res.err, true)
			}
			st.h.skipAgent(ru, EventRequestHeaders, res.err)
			continue
		}
		if res.resp.Decision.Kind != protocol.Allow {
			return true, st.h.decide(w, st.r, ru.f.Agent, res.resp.Decision, &res.resp.Audit, append(st.respOps, res.resp.ResponseHeaders...))
		}
		reqOps = append(reqOps, res.resp.RequestHeaders...)
		st.respOps = append(st.respOps, res.resp.ResponseHeaders...)
	}
	applyOps(st.r.Header, reqOps, st.h.log)
	return false, nil
}

// decisive reports whether a result ends the fan-out.
func decisive(ru *run, res callResult) bool {
	if res.err != nil {
		return ru.failClosed()
	}
	return res.resp != nil && res.resp.Decision.Kind != protocol.Allow
}

// headersEvent builds the RequestHeaders event.
func (st *reqState) headersEvent() *protocol.RequestHeaders {
	r := st.r
	headers := make(map[string][]string, len(r.Header)+1)
	for k, v := range r.Header {
		headers[strings.ToLower(k)] = v
	}
	if r.Host != "" {
		headers["host"] = []string{r.Host}
	}
	host, port, _ := net.SplitHostPort(r.RemoteAddr)
	if host == "" {
		host = r.RemoteAddr
	}
	p, _ := strconv.Atoi(port)
	md := protocol.RequestMetadata{
		CorrelationID: st.corr,
		RequestID:     randomID(),
		ClientIP:      host,
		ClientPort:    uint16(p),
		ServerName:    protocol.OptString(hostOnly(r.Host)),
		Protocol:      r.Proto,
		RouteID:       protocol.OptString(st.h.Route),
		UpstreamID:    protocol.OptString(st.h.Upstream),
		Timestamp:     time.Now().UTC().Format(time.RFC3339Nano),
		// The request's span when traced (each call gets its own in
		// call), else the client's traceparent as received.
		Traceparent: tracing.Traceparent(r.Context(), r.Header.Get("Traceparent")),
	}
	if r.TLS != nil {
		md.TLSVersion = protocol.OptString(tlsVersion(r.TLS.Version))
	}
	return &protocol.RequestHeaders{CorrelationID: st.corr, Metadata: md, Method: r.Method, URI: normalizedURI(r), RawURI: r.URL.RequestURI(), Headers: headers}
}

// normalizedURI is the request's path as route matching sees it
// (routematch.RequestPath: decoded, dot segments resolved, slashes
// merged), re-encoded canonically, plus the query as received. An agent
// comparing path prefixes cannot be passed by another spelling of the
// path (`/api/%73ecret`, `/api//secret`, `/api/x/../secret`).
func normalizedURI(r *http.Request) string {
	u := url.URL{Path: routematch.RequestPath(r), RawQuery: r.URL.RawQuery}
	return u.RequestURI()
}

// complete sends request_complete to the agents that asked for it, off
// the request's path (Notify never waits for the agent).
func (st *reqState) complete(rw *respWriter) {
	for _, ru := range st.runs {
		if !ru.wants(EventRequestComplete) {
			continue
		}
		ev := &protocol.RequestComplete{
			CorrelationID:    ru.corr,
			Status:           uint16(rw.statusCode()),
			DurationMs:       uint64(time.Since(st.start).Milliseconds()),
			RequestBodySize:  uint64(st.reqBytes.Load()),
			ResponseBodySize: uint64(rw.size),
			UpstreamAttempts: 1,
		}
		ru.p.notify(context.WithoutCancel(st.r.Context()), ev, ru.client)
	}
}

// skipAgent records a fail-open skip.
func (h *Handler) skipAgent(ru *run, event string, err error) {
	ru.skip = true
	reason := "failure"
	if errors.Is(err, errTooLarge) {
		reason = "too_large"
	}
	metrics.skipped.WithLabelValues(ru.f.Agent, event, reason).Inc()
	h.log.Debug("agent skipped (fail-open)", zap.String("agent", ru.f.Agent), zap.String("event", event), zap.Error(err))
}

// failureStatus maps a call failure to the fail-closed status: 504 for
// a timeout, 413 for a body over the limit, 503 otherwise.
func failureStatus(err error) int {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusServiceUnavailable
}

// fail logs a fail-closed failure and returns its error.
func (h *Handler) fail(agent, event string, err error, log bool) error {
	if log {
		h.log.Warn("agent failed (fail-closed)", zap.String("agent", agent), zap.String("event", event), zap.Error(err))
	}
	return failError(failureStatus(err), err)
}

// failError is the handler error of a failure the proxy answers itself
// (no agent decided it): Caddy's logs and error routes see it, and the
// error route of the KDL adapter's listeners answers
// `{"error":"Service unavailable","status":503,…}` (or "Gateway
// timeout", "Payload too large", "Bad request"). The cause is only
// logged.
func failError(status int, cause error) error {
	text := map[int]string{
		http.StatusGatewayTimeout:        "Gateway timeout",
		http.StatusRequestEntityTooLarge: "Payload too large",
		http.StatusBadRequest:            "Bad request",
	}[status]
	if text == "" {
		text = "Service unavailable"
	}
	return caddyhttp.Error(status, &httperr.Public{Message: text, Err: cause})
}

// decide answers a block, redirect or challenge decision, and audits it.
// au is the deciding response's audit metadata (may be nil); ops are the
// response header operations decided so far (applied first).
func (h *Handler) decide(w http.ResponseWriter, r *http.Request, agent string, d protocol.Decision, au *protocol.Audit, ops []protocol.HeaderOp) error {
	h.auditDecision(r, agent, d, au)
	applyOps(w.Header(), ops, h.log)
	switch d.Kind {
	case protocol.Block:
		// Not every transport checks the status (gRPC's is any uint32):
		// what is not a final status (0, 1xx, over 999) blocks with 403
		// rather than panicking in WriteHeader or sending an interim
		// response.
		status := d.Status
		if status < 200 || status > 999 {
			status = http.StatusForbidden
		}
		body := d.Body
		if body == "" {
			body = "Blocked by agent"
		}
		for k, v := range d.Headers {
			op := protocol.HeaderOp{Op: protocol.HeaderSet, Name: k, Value: v}
			if why := validOp(op); why != "" {
				h.log.Warn("agent block header dropped", zap.String("agent", agent), zap.String("header", k), zap.String("reason", why))
				continue
			}
			w.Header().Set(k, v)
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	case protocol.Redirect:
		status := d.Status
		if status < 300 || status > 399 {
			status = http.StatusFound
		}
		if !httpguts.ValidHeaderFieldValue(d.URL) {
			// A Location with a line break: block instead.
			h.log.Warn("agent redirect with an invalid Location: blocked instead", zap.String("agent", agent))
			http.Error(w, "Blocked by agent", http.StatusForbidden)
			break
		}
		w.Header().Set("Location", d.URL)
		w.WriteHeader(status)
	case protocol.Challenge:
		h.challenge(w, r, d)
	}
	h.log.Debug("agent decision", zap.String("agent", agent), zap.String("decision", d.Kind.String()), zap.Int("status", d.Status))
	return nil
}

// challenge answers a challenge decision.
func (h *Handler) challenge(w http.ResponseWriter, r *http.Request, d protocol.Decision) {
	c := h.Challenge
	if c == nil {
		c = &ChallengeResponse{}
	}
	repl := caddy.NewReplacer()
	if rr, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl = rr
	}
	repl.Set("agent.challenge.type", d.ChallengeType)
	for k, v := range d.Params {
		repl.Set("agent.challenge.param."+k, v)
	}
	for k, vs := range c.Headers {
		for _, v := range vs {
			// The agent's parameters may be in the value: a line break
			// in them drops the header.
			if v = repl.ReplaceAll(v, ""); !httpguts.ValidHeaderFieldValue(v) {
				h.log.Warn("challenge header dropped: the agent's parameters put a control character in it", zap.String("header", k))
				continue
			}
			w.Header().Add(k, v)
		}
	}
	status := c.Status
	if status == 0 {
		status = http.StatusForbidden
	}
	body := c.Body
	if body == "" {
		params := d.Params
		if params == nil {
			params = map[string]string{}
		}
		b, _ := jsonMarshal(map[string]any{"challenge": d.ChallengeType, "params": params})
		body = string(b)
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
	} else {
		body = repl.ReplaceAll(body, "")
	}
	if httpguts.ValidHeaderFieldValue(d.ChallengeType) {
		w.Header().Set("X-Sentinel-Challenge", d.ChallengeType)
	} else {
		h.log.Warn("challenge type with a control character: X-Sentinel-Challenge not sent")
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// framingHeader reports whether name (canonical) frames a message or
// manages its connection (RFC 9110 §7.6.1, RFC 9112 §6): the proxy
// writes those, an agent may not set or add them.
func framingHeader(name string) bool {
	switch name {
	case "Content-Length", "Transfer-Encoding", "Host", "Connection", "Keep-Alive",
		"Proxy-Connection", "Te", "Trailer", "Upgrade":
		return true
	}
	return false
}

// validOp reports why an agent's header operation is refused ("" when
// it is not): a name that is not a token, a value with a control
// character (a CR or LF would end the header line where the agent chose
// on any writer that does not check it: response splitting, or request
// smuggling on the upstream connection), or a framing field.
func validOp(op protocol.HeaderOp) string {
	switch {
	case !httpguts.ValidHeaderFieldName(op.Name):
		return "not a valid header name"
	case op.Op == protocol.HeaderRemove:
		return ""
	case !httpguts.ValidHeaderFieldValue(op.Value):
		return "value with a control character (CR, LF, NUL…)"
	case framingHeader(http.CanonicalHeaderKey(op.Name)):
		return "framing or connection header"
	}
	return ""
}

// applyOps applies header operations in order; invalid ones (validOp)
// are dropped and logged with the header's name, never its value.
func applyOps(hdr http.Header, ops []protocol.HeaderOp, log *zap.Logger) {
	for _, op := range ops {
		if op.Name == "" {
			continue
		}
		if why := validOp(op); why != "" {
			log.Warn("agent header operation dropped", zap.String("header", op.Name), zap.String("reason", why))
			continue
		}
		switch op.Op {
		case protocol.HeaderSet:
			hdr.Set(op.Name, op.Value)
		case protocol.HeaderAdd:
			hdr.Add(op.Name, op.Value)
		case protocol.HeaderRemove:
			hdr.Del(op.Name)
		}
	}
}

// correlationID is the request's UUID (the access log's trace_id).
func correlationID(r *http.Request) string {
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		if s, ok := repl.GetString("http.request.uuid"); ok && s != "" {
			return s
		}
	}
	return randomID()
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}

func tlsVersion(v uint16) string {
	switch v {
	case 0x0301:
		return "TLSv1.0"
	case 0x0302:
		return "TLSv1.1"
	case 0x0303:
		return "TLSv1.2"
	case 0x0304:
		return "TLSv1.3"
	}
	return ""
}

func zapAgent(id string) zap.Field { return zap.String("agent", id) }

func zapErr(err error) zap.Field { return zap.Error(err) }

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
