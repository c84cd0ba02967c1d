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
			p.writeDecision(w, &st.d)
			return
		}
		st.body, st.hasBody = nil, false
	}
	p.decisions[decisionAllowIdx].Inc()

	if inst.hooks[phaseResponseHeaders] != nil {
		rw := &responseHook{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, inst: inst, req: r}
		s.next.ServeHTTP(rw, r)
		// A next handler that wrote nothing and returned no error sends an
		// implicit 200: run the hook for it. After an error, Caddy's error
		// handling writes the response (without the hook).
		if !rw.wroteHeader && !nextFailed(r) && !rw.failed {
			rw.WriteHeader(http.StatusOK)
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
func (p *Plugin) writeDecision(w http.ResponseWriter, d *decision) {
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
	if status < 100 || status > 999 {
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
// written. A block or redirect decision (or a closed failure) replaces the
// response: its status and body are written instead, and the next
// handler's body is discarded.
type responseHook struct {
	*caddyhttp.ResponseWriterWrapper
	inst        *instance
	req         *http.Request
	wroteHeader bool
	discard     bool
	failed      bool
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
		rh.discard = true
		rh.Header().Del("Content-Length")
		p.writeDecision(rh.ResponseWriter, &st.d)
		return
	}
	rh.ResponseWriter.WriteHeader(status)
}

// Write writes b, or discards it when the response was replaced.
func (rh *responseHook) Write(b []byte) (int, error) {
	if !rh.wroteHeader {
		rh.WriteHeader(http.StatusOK)
	}
	if rh.discard {
		return len(b), nil
	}
	return rh.ResponseWriter.Write(b)
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
)
