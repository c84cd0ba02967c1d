package agents

import (
	"bytes"
	"errors"
	"io"
	"net/http"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
)

// respWriter is the response side of the agents: it sends the response
// headers and body to the agents that want them, applies their header
// operations and body mutations, and answers for them when they block.
// Without response agents it only applies the header operations decided
// on the request, at WriteHeader.
type respWriter struct {
	w       http.ResponseWriter
	st      *reqState
	hdrRuns []*run
	pl      *bodyPlan

	wroteHeader bool
	status      int
	hijacked    bool  // the proxy answered instead of the upstream
	failure     error // a fail-closed failure replacing the response
	aborted     bool  // an agent stopped a response already under way
	passed      bool  // the real WriteHeader happened
	buffering   bool
	buf         bytes.Buffer
	index       uint32
	sent        int64
	size        int64
}

// wrapResponse returns the writer the rest of the chain writes to.
func (st *reqState) wrapResponse(w http.ResponseWriter) *respWriter {
	rw := &respWriter{w: w, st: st}
	for _, ru := range st.runs {
		if ru.wants(EventResponseHeaders) {
			rw.hdrRuns = append(rw.hdrRuns, ru)
		}
	}
	rw.pl = planBody(st.runs, true)
	return rw
}

// writer is what the next handler writes to.
func (rw *respWriter) writer() http.ResponseWriter {
	if len(rw.hdrRuns) == 0 && rw.pl == nil && len(rw.st.respOps) == 0 {
		return &sizeWriter{ResponseWriter: rw.w, rw: rw}
	}
	return rw
}

// sizeWriter only counts (no response agent, no header operation).
type sizeWriter struct {
	http.ResponseWriter
	rw *respWriter
}

func (s *sizeWriter) WriteHeader(code int) {
	if code >= 200 && !s.rw.wroteHeader {
		s.rw.wroteHeader, s.rw.status, s.rw.passed = true, code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *sizeWriter) Write(b []byte) (int, error) {
	if !s.rw.wroteHeader {
		s.rw.wroteHeader, s.rw.status, s.rw.passed = true, http.StatusOK, true
	}
	n, err := s.ResponseWriter.Write(b)
	s.rw.size += int64(n)
	return n, err
}

func (s *sizeWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Header implements http.ResponseWriter.
func (rw *respWriter) Header() http.Header { return rw.w.Header() }

// Unwrap gives http.ResponseController the underlying writer.
func (rw *respWriter) Unwrap() http.ResponseWriter { return rw.w }

// wroteAny reports whether anything reached the client.
func (rw *respWriter) wroteAny() bool { return rw.passed || rw.hijacked }

func (rw *respWriter) statusCode() int {
	if rw.status == 0 {
		return http.StatusOK
	}
	return rw.status
}

// WriteHeader sends the response headers to the agents in order.
func (rw *respWriter) WriteHeader(code int) {
	if rw.wroteHeader || rw.hijacked {
		return
	}
	if code < 200 {
		rw.w.WriteHeader(code)
		return
	}
	rw.wroteHeader, rw.status = true, code
	st := rw.st
	if len(rw.hdrRuns) > 0 {
		headers := make(map[string][]string, len(rw.w.Header()))
		for k, v := range rw.w.Header() {
			headers[lower(k)] = v
		}
		for _, ru := range rw.hdrRuns {
			if ru.skip {
				continue
			}
			ev := &protocol.ResponseHeaders{CorrelationID: ru.corr, Status: uint16(code), Headers: headers}
			res := ru.p.call(st.r.Context(), ev, ru.timeout(), ru.client)
			if res.err != nil {
				if ru.failClosed() {
					rw.fail(st.h.fail(ru.f.Agent, EventResponseHeaders, res.err, true))
					return
				}
				st.h.skipAgent(ru, EventResponseHeaders, res.err)
				continue
			}
			if res.resp.Decision.Kind != protocol.Allow {
				d, au := res.resp.Decision, &res.resp.Audit
				ops := append(st.respOps, res.resp.ResponseHeaders...)
				rw.hijack(func(w http.ResponseWriter) { _ = st.h.decide(w, st.r, ru.f.Agent, d, au, ops) })
				return
			}
			st.respOps = append(st.respOps, res.resp.ResponseHeaders...)
		}
	}
	applyOps(rw.w.Header(), st.respOps, st.h.log)
	if rw.pl != nil {
		rw.w.Header().Del("Content-Length")
		if rw.pl.mode != "stream" {
			rw.buffering = true
			return
		}
	}
	rw.pass()
}

// pass sends the status to the client.
func (rw *respWriter) pass() {
	if !rw.passed {
		rw.passed = true
		rw.w.WriteHeader(rw.status)
	}
}

// hijack discards the upstream's response and writes the proxy's own.
func (rw *respWriter) hijack(answer func(http.ResponseWriter)) {
	rw.hijacked, rw.buffering = true, false
	rw.buf.Reset()
	for k := range rw.w.Header() {
		delete(rw.w.Header(), k)
	}
	answer(&sizeWriter{ResponseWriter: rw.w, rw: &respWriter{}})
}

// fail replaces the response with a failure, which the handler returns
// as its error: the server's error routes write it, nothing of the
// upstream's goes out.
func (rw *respWriter) fail(err error) {
	rw.hijack(func(http.ResponseWriter) {})
	rw.failure = err
}

// Write buffers or streams the body through the agents.
func (rw *respWriter) Write(b []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.hijacked {
		return len(b), nil
	}
	if rw.aborted {
		return 0, errStopped
	}
	switch {
	case rw.buffering:
		rw.buf.Write(b)
		if int64(rw.buf.Len()) > rw.bufferLimit() {
			if rw.pl.mode == "hybrid" && int64(rw.buf.Len()) <= rw.pl.limit {
				// hybrid: past the buffer, stream from here on.
				rw.buffering = false
				rw.pass()
				data := append([]byte(nil), rw.buf.Bytes()...)
				rw.buf.Reset()
				if err := rw.chunk(data, false); err != nil {
					return 0, err
				}
				return len(b), nil
			}
			if !rw.tooLarge() {
				return len(b), nil
			}
		}
		return len(b), nil
	case rw.pl != nil && rw.activeBody():
		if err := rw.chunk(b, false); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	n, err := rw.w.Write(b)
	rw.size += int64(n)
	return n, err
}

// ReadFrom keeps io.Copy going through Write.
func (rw *respWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(writerOnly{rw}, r)
}

type writerOnly struct{ io.Writer }

// Flush flushes what is not held back for the agents.
func (rw *respWriter) Flush() {
	if rw.buffering || rw.hijacked {
		return
	}
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
		if rw.buffering || rw.hijacked {
			return
		}
	}
	_ = http.NewResponseController(rw.w).Flush()
}

func (rw *respWriter) bufferLimit() int64 {
	if rw.pl.mode == "hybrid" {
		return min(rw.pl.hybrid, rw.pl.limit)
	}
	return rw.pl.limit
}

// activeBody reports whether a body agent is still in play.
func (rw *respWriter) activeBody() bool {
	for _, ru := range rw.pl.runs {
		if !ru.skip {
			return true
		}
	}
	return false
}

// tooLarge handles a buffered body over the limit: fail-closed agents
// answer 413; fail-open ones are skipped, and when none is left the
// buffer goes out and the rest streams. It reports whether buffering
// continues.
func (rw *respWriter) tooLarge() bool {
	st := rw.st
	for _, ru := range rw.pl.runs {
		if ru.skip || int64(rw.buf.Len()) <= ru.maxBody(true) {
			continue
		}
		if ru.failClosed() {
			rw.fail(st.h.fail(ru.f.Agent, EventResponseBody, errTooLarge, false))
			return false
		}
		st.h.skipAgent(ru, EventResponseBody, errTooLarge)
	}
	if rw.activeBody() {
		return true
	}
	rw.buffering = false
	rw.pass()
	n, _ := rw.w.Write(rw.buf.Bytes())
	rw.size += int64(n)
	rw.buf.Reset()
	return false
}

// chunk sends one response body chunk to the agents in order and writes
// what they let through. After the status went out a block can only
// abort the response.
func (rw *respWriter) chunk(data []byte, last bool) error {
	st := rw.st
	rw.sent += int64(len(data))
	for _, ru := range rw.pl.runs {
		if ru.skip {
			continue
		}
		if rw.sent > ru.maxBody(true) {
			if ru.failClosed() {
				rw.aborted = true
				return errStopped
			}
			st.h.skipAgent(ru, EventResponseBody, errTooLarge)
			continue
		}
		ev := &protocol.ResponseBodyChunk{CorrelationID: ru.corr, Data: data, IsLast: last, ChunkIndex: rw.index, BytesSent: uint64(rw.sent)}
		if last && rw.index == 0 {
			total := uint64(len(data))
			ev.TotalSize = &total
		}
		res := ru.p.call(st.r.Context(), ev, ru.s.chunkTO, ru.client)
		if res.err != nil {
			if ru.failClosed() {
				if !rw.passed {
					rw.fail(st.h.fail(ru.f.Agent, EventResponseBody, res.err, true))
					return nil
				}
				rw.aborted = true
				return errStopped
			}
			st.h.skipAgent(ru, EventResponseBody, res.err)
			continue
		}
		if res.resp.Decision.Kind != protocol.Allow {
			if !rw.passed {
				d, au := res.resp.Decision, &res.resp.Audit
				rw.hijack(func(w http.ResponseWriter) { _ = st.h.decide(w, st.r, ru.f.Agent, d, au, nil) })
				return nil
			}
			rw.aborted = true
			return errStopped
		}
		if m := res.resp.ResponseBodyMutation; m != nil && m.Data != nil {
			data = m.Data
		}
	}
	rw.index++
	rw.pass()
	if len(data) > 0 {
		n, err := rw.w.Write(data)
		rw.size += int64(n)
		if err != nil {
			return err
		}
	}
	return nil
}

// finish ends the body: a buffered body goes to the agents as one chunk,
// a streamed one gets its last (empty) chunk.
func (rw *respWriter) finish() error {
	if !rw.wroteHeader || rw.hijacked || rw.aborted {
		return nil
	}
	if rw.buffering {
		rw.buffering = false
		data := append([]byte(nil), rw.buf.Bytes()...)
		rw.buf.Reset()
		if err := rw.chunk(data, true); err != nil && !errors.Is(err, errStopped) {
			return err
		}
		return nil
	}
	if rw.pl != nil && rw.activeBody() {
		if err := rw.chunk(nil, true); err != nil && !errors.Is(err, errStopped) {
			return err
		}
	}
	return nil
}

func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
