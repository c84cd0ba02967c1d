package wasm

import (
	"bytes"
	"io"
	"net/http"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// sentinelStage runs a Sentinel-ABI plugin, then next.
type sentinelStage struct {
	p    *Plugin
	next http.Handler
}

// ServeHTTP runs the plugin's request hooks, answers the request if the
// plugin decided so, and otherwise passes it on, with the response hook
// installed.
func (s *sentinelStage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := s.p
	if !p.acquire() {
		if !p.fail(r, "unloaded") {
			s.next.ServeHTTP(w, r)
		}
		return
	}
	defer p.release()
	inst, err := p.pool.get(r.Context())
	if err != nil {
		p.logger.Error("instantiating plugin", zap.Error(err))
		if !p.fail(r, "instantiate") {
			s.next.ServeHTTP(w, r)
		}
		return
	}
	healthy, held := true, true
	defer func() {
		switch {
		case !held:
		case healthy:
			p.pool.put(inst)
		default:
			inst.close()
		}
	}()
	st := &inst.state
	st.reset(r, w.Header())

	for _, phase := range [2]int{phaseRequestHeaders, phaseRequestBody} {
		if inst.hooks[phase] == nil {
			continue
		}
		if phase == phaseRequestBody {
			if r.Body == nil || r.Body == http.NoBody {
				continue
			}
			buf, _ := io.ReadAll(io.LimitReader(r.Body, p.MaxBodyBytes))
			r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
			st.body, st.hasBody = buf, true
		}
		if err := inst.call(phase); err != nil {
			healthy = false
			p.logger.Error("plugin failed", zap.Error(err))
			if !p.fail(r, failureReason(err)) {
				s.next.ServeHTTP(w, r)
			}
			return
		}
		if st.d.kind != decisionAllow {
			p.writeDecision(w, r, &st.d)
			return
		}
		st.body, st.hasBody = nil, false
	}
	p.decisions[decisionAllowIdx].Inc()

	if inst.hooks[phaseResponseHeaders] != nil || inst.hooks[phaseResponseBody] != nil {
		rw := &responseHook{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, inst: inst, req: r}
		s.next.ServeHTTP(rw, r)
		// A next handler that wrote nothing and returned no error sends an
		// implicit 200: run the hook for it. After an error, Caddy's error
		// handling writes the response (without the hook).
		failed := nextFailed(r)
		if !rw.wroteHeader && !failed && !rw.failed {
			rw.WriteHeader(http.StatusOK)
		}
		if rw.buffering && !failed {
			rw.finishBody()
		}
		healthy = !rw.failed
		return
	}
	// Without a response hook the instance is returned before proxying,
	// so that the pool holds as many instances as concurrent plugin
	// calls, not concurrent requests.
	held = false
	p.pool.put(inst)
	s.next.ServeHTTP(w, r)
}

// nextFailed reports whether Caddy's next handler returned an error.
func nextFailed(r *http.Request) bool {
	cs, ok := r.Context().Value(chainKey{}).(*chainState)
	return ok && cs.err != nil
}

// failureReason is the short reason of a failure in error responses.
func failureReason(err error) string {
	if bytes.Contains([]byte(err.Error()), []byte("deadline")) {
		return "timeout"
	}
	return "trap"
}

// writeDecision answers a request with a block or redirect decision.
func (p *Plugin) writeDecision(w http.ResponseWriter, r *http.Request, d *decision) {
	if p.audit != nil {
		p.auditDecision(r, d.kind == decisionRedirect, d.status)
	}
	h := w.Header()
	for k, vs := range d.headers {
		h[k] = vs
	}
	status := d.status
	if d.kind == decisionRedirect {
		p.decisions[decisionRedirectIdx].Inc()
		if status < 300 || status > 399 {
			status = http.StatusFound
		}
		h.Set("Location", d.location)
		w.WriteHeader(status)
		return
	}
	p.decisions[decisionBlockIdx].Inc()
	// An informational status is not an answer: 100–199 would send an
	// interim response (and then the body as a 200), 101 would switch
	// the connection's protocol.
	if status < 200 || status > 999 {
		status = http.StatusForbidden
	}
	if len(d.body) > 0 && h.Get("Content-Type") == "" {
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.WriteHeader(status)
	_, _ = w.Write(d.body)
}

// readCloser is a request body read from r and closed by c.
type readCloser struct {
	io.Reader
	io.Closer
}

// responseHook calls on_response_headers when the response header is
// written, and on_response_body with the buffered body. A block or
// redirect decision (or a closed failure) replaces the response: its
// status and body are written instead, and the next handler's body is
// discarded.
//
// With on_response_body, the header and the first max_body_bytes of the
// body are held back until the body ends or exceeds the limit; the hook
// then sees what was buffered and, if it allows, the held response goes
// out and the rest streams through.
type responseHook struct {
	*caddyhttp.ResponseWriterWrapper
	inst        *instance
	req         *http.Request
	wroteHeader bool
	discard     bool
	failed      bool
	// buffering: the header (status) and body are held for
	// on_response_body.
	buffering bool
	status    int
	buf       bytes.Buffer
}

// WriteHeader runs the response hook, then writes the (possibly replaced)
// response header.
func (rh *responseHook) WriteHeader(status int) {
	if rh.wroteHeader {
		return
	}
	if status < 200 {
		rh.ResponseWriter.WriteHeader(status)
		return
	}
	rh.wroteHeader = true
	inst, p := rh.inst, rh.inst.state.plugin
	st := &inst.state
	st.status, st.d = status, decision{}
	if inst.hooks[phaseResponseHeaders] == nil {
		rh.holdBody(status)
		return
	}
	if err := inst.call(phaseResponseHeaders); err != nil {
		rh.failed = true
		p.logger.Error("plugin failed", zap.Error(err))
		if p.closed {
			// The response is replaced by the failure, which the server's
			// error routes write: nothing of the upstream's goes out.
			rh.discard = true
			clear(rh.Header())
			p.fail(rh.req, failureReason(err))
			return
		}
		p.decisions[decisionFailureOpen].Inc()
		rh.ResponseWriter.WriteHeader(status)
		return
	}
	if st.d.kind != decisionAllow {
		// The upstream's response is replaced entirely, as in
		// on_response_body: none of its headers (Set-Cookie,
		// Content-Encoding, Content-Length, …) go out with the decision.
		rh.discard = true
		clear(rh.Header())
		p.writeDecision(rh.ResponseWriter, rh.req, &st.d)
		return
	}
	rh.holdBody(status)
}

// holdBody writes the header, or holds it back for on_response_body.
func (rh *responseHook) holdBody(status int) {
	if rh.inst.hooks[phaseResponseBody] == nil {
		rh.ResponseWriter.WriteHeader(status)
		return
	}
	rh.buffering, rh.status = true, status
}

// Write writes b, or discards it when the response was replaced, or
// buffers it for on_response_body.
func (rh *responseHook) Write(b []byte) (int, error) {
	if !rh.wroteHeader {
		rh.WriteHeader(http.StatusOK)
	}
	if rh.discard {
		return len(b), nil
	}
	if rh.buffering {
		limit := rh.inst.state.plugin.MaxBodyBytes
		if room := limit - int64(rh.buf.Len()); int64(len(b)) <= room {
			return rh.buf.Write(b)
		}
		// Past the limit: the hook judges the first max_body_bytes, then
		// the response streams.
		rh.finishBody()
		if rh.discard {
			return len(b), nil
		}
	}
	return rh.ResponseWriter.Write(b)
}

// Flush is held back while the body is buffered; a flush before the
// header runs the hook first, as the implicit 200 it sends.
func (rh *responseHook) Flush() {
	if !rh.wroteHeader {
		rh.WriteHeader(http.StatusOK)
	}
	if rh.buffering || rh.discard {
		return
	}
	_ = http.NewResponseController(rh.ResponseWriter).Flush()
}

// finishBody runs on_response_body with the buffered body, then writes
// the held response, or the decision (or failure) replacing it.
func (rh *responseHook) finishBody() {
	rh.buffering = false
	inst, p := rh.inst, rh.inst.state.plugin
	st := &inst.state
	limit := int(p.MaxBodyBytes)
	held := rh.buf.Bytes()
	st.body, st.hasBody, st.d = held[:min(len(held), limit)], true, decision{}
	err := inst.call(phaseResponseBody)
	st.body, st.hasBody = nil, false
	if err != nil {
		rh.failed = true
		p.logger.Error("plugin failed", zap.Error(err))
		if p.closed {
			rh.discard = true
			clear(rh.Header())
			p.fail(rh.req, failureReason(err))
			return
		}
		p.decisions[decisionFailureOpen].Inc()
	} else if st.d.kind != decisionAllow {
		// The upstream's response is replaced entirely: none of its
		// headers (Content-Length, Content-Encoding, …) go out.
		rh.discard = true
		clear(rh.Header())
		p.writeDecision(rh.ResponseWriter, rh.req, &st.d)
		return
	}
	rh.ResponseWriter.WriteHeader(rh.status)
	if len(held) > 0 {
		_, _ = rh.ResponseWriter.Write(held)
	}
	rh.buf.Reset()
}

// ReadFrom copies r through Write, so that the hook is not bypassed.
func (rh *responseHook) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{rh}, r)
}

// Interface guards
var (
	_ http.Handler        = (*sentinelStage)(nil)
	_ http.ResponseWriter = (*responseHook)(nil)
	_ io.ReaderFrom       = (*responseHook)(nil)
	_ http.Flusher        = (*responseHook)(nil)
)
