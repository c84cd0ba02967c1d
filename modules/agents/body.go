package agents

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// modeRank orders body modes from the least to the most buffering; the
// agents of one request share the most buffering mode any of them asks.
var modeRank = map[string]int{"stream": 0, "hybrid": 1, "buffer": 2}

// bodyPlan is how one body goes to its agents.
type bodyPlan struct {
	runs   []*run
	mode   string
	hybrid int64 // bytes buffered first in hybrid mode
	limit  int64 // the largest of the agents' limits
	chunk  int64
}

func planBody(runs []*run, response bool) *bodyPlan {
	var pl *bodyPlan
	for _, ru := range runs {
		ev := EventRequestBody
		if response {
			ev = EventResponseBody
		}
		if !ru.wants(ev) {
			continue
		}
		m, hy := ru.bodyMode(response)
		if pl == nil {
			pl = &bodyPlan{mode: m, hybrid: hy, chunk: ru.s.chunk}
		}
		pl.runs = append(pl.runs, ru)
		if modeRank[m] > modeRank[pl.mode] {
			pl.mode = m
		}
		pl.hybrid = min(pl.hybrid, hy)
		pl.limit = max(pl.limit, ru.maxBody(response))
		pl.chunk = min(pl.chunk, ru.s.chunk)
	}
	return pl
}

// readUpTo reads at most n bytes; complete is true when the reader ended
// within them.
func readUpTo(r io.Reader, n int64) (data []byte, complete bool, err error) {
	data, err = io.ReadAll(io.LimitReader(r, n+1))
	if err != nil {
		return data, false, err
	}
	if int64(len(data)) <= n {
		return data, true, nil
	}
	return data, false, nil
}

// prefixBody is data already read followed by the rest of the body.
type prefixBody struct {
	io.Reader
	c io.Closer
}

func (p *prefixBody) Close() error { return p.c.Close() }

// requestBody sends the request body to the agents that want it; it
// reports whether the request was answered. Without such agents the
// body is left alone and streams to the upstream.
func (st *reqState) requestBody(w http.ResponseWriter) (bool, error) {
	r := st.r
	if r.Body == nil || r.Body == http.NoBody {
		return false, nil
	}
	pl := planBody(st.runs, false)
	if pl == nil {
		r.Body = &countingBody{ReadCloser: r.Body, n: &st.reqBytes}
		return false, nil
	}
	orig := r.Body
	switch pl.mode {
	case "buffer", "hybrid":
		n := pl.limit
		if pl.mode == "hybrid" {
			n = min(pl.hybrid, pl.limit)
		}
		data, complete, err := readUpTo(orig, n)
		if err != nil {
			return true, failError(http.StatusBadRequest, fmt.Errorf("reading the request body: %w", err))
		}
		if complete {
			return st.bufferedBody(w, pl, data)
		}
		if pl.mode == "buffer" {
			// Over every agent's limit: too large for all of them.
			for _, ru := range pl.runs {
				if ru.failClosed() {
					return true, st.h.fail(ru.f.Agent, EventRequestBody, errTooLarge, false)
				}
				st.h.skipAgent(ru, EventRequestBody, errTooLarge)
			}
			r.Body = &prefixBody{Reader: io.MultiReader(bytes.NewReader(data), orig), c: orig}
			r.Body = &countingBody{ReadCloser: r.Body, n: &st.reqBytes}
			return false, nil
		}
		// hybrid over its buffer: stream the rest.
		r.Body = &streamBody{st: st, pl: pl, src: io.MultiReader(bytes.NewReader(data), orig), c: orig}
		r.ContentLength = -1
		return false, nil
	}
	r.Body = &streamBody{st: st, pl: pl, src: orig, c: orig}
	r.ContentLength = -1
	return false, nil
}

// bufferedBody sends a whole body as one chunk to each agent in order.
func (st *reqState) bufferedBody(w http.ResponseWriter, pl *bodyPlan, data []byte) (bool, error) {
	r := st.r
	var reqOps []protocol.HeaderOp
	for _, ru := range pl.runs {
		if ru.skip {
			continue
		}
		if int64(len(data)) > ru.maxBody(false) {
			if ru.failClosed() {
				return true, st.h.fail(ru.f.Agent, EventRequestBody, errTooLarge, false)
			}
			st.h.skipAgent(ru, EventRequestBody, errTooLarge)
			continue
		}
		total := uint64(len(data))
		ev := &protocol.RequestBodyChunk{CorrelationID: ru.corr, Data: data, IsLast: true, TotalSize: &total, BytesReceived: total}
		res := ru.p.call(r.Context(), ev, ru.s.chunkTO, ru.client)
		if res.err != nil {
			if ru.failClosed() {
				return true, st.h.fail(ru.f.Agent, EventRequestBody, res.err, true)
			}
			st.h.skipAgent(ru, EventRequestBody, res.err)
			continue
		}
		if res.resp.Decision.Kind != protocol.Allow {
			return true, st.h.decide(w, r, ru.f.Agent, res.resp.Decision, &res.resp.Audit, append(st.respOps, res.resp.ResponseHeaders...))
		}
		reqOps = append(reqOps, res.resp.RequestHeaders...)
		st.respOps = append(st.respOps, res.resp.ResponseHeaders...)
		if m := res.resp.RequestBodyMutation; m != nil && m.Data != nil {
			data = m.Data
		}
	}
	applyOps(r.Header, reqOps, st.h.log)
	st.reqBytes.Store(int64(len(data)))
	r.Body = io.NopCloser(bytes.NewReader(data))
	r.ContentLength = int64(len(data))
	r.Header.Set("Content-Length", itoa(len(data)))
	r.TransferEncoding = nil
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	return false, nil
}

// streamBody sends the request body to the agents chunk by chunk as the
// upstream reads it. A chunk is released to the upstream once every
// agent answered it without needs_more; a block or a fail-closed failure
// ends the body with errStopped and the handler answers.
type streamBody struct {
	st      *reqState
	pl      *bodyPlan
	src     io.Reader
	c       io.Closer
	out     []byte
	pending []byte
	index   uint32
	seen    int64
	done    bool
	err     error
}

func (b *streamBody) Close() error { return b.c.Close() }

func (b *streamBody) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		if b.done {
			return 0, io.EOF
		}
		b.next()
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

// next reads one chunk and runs it through the agents.
func (b *streamBody) next() {
	buf := make([]byte, b.pl.chunk)
	n, err := io.ReadFull(b.src, buf)
	last := false
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		last = true
	case err != nil:
		b.err = err
		return
	}
	chunk := buf[:n]
	b.seen += int64(n)
	b.st.reqBytes.Store(b.seen)
	more := false
	for _, ru := range b.pl.runs {
		if ru.skip {
			continue
		}
		if b.seen > ru.maxBody(false) {
			if ru.failClosed() {
				b.stop(&stopAnswer{agent: ru.f.Agent, status: http.StatusRequestEntityTooLarge})
				return
			}
			b.st.h.skipAgent(ru, EventRequestBody, errTooLarge)
			continue
		}
		ev := &protocol.RequestBodyChunk{CorrelationID: ru.corr, Data: chunk, IsLast: last, ChunkIndex: b.index, BytesReceived: uint64(b.seen)}
		res := ru.p.call(b.st.r.Context(), ev, ru.s.chunkTO, ru.client)
		if res.err != nil {
			if ru.failClosed() {
				b.st.h.log.Warn("agent failed (fail-closed)", zapAgent(ru.f.Agent), zapErr(res.err))
				b.stop(&stopAnswer{agent: ru.f.Agent, status: failureStatus(res.err), err: res.err})
				return
			}
			b.st.h.skipAgent(ru, EventRequestBody, res.err)
			continue
		}
		if res.resp.Decision.Kind != protocol.Allow {
			d := res.resp.Decision
			b.stop(&stopAnswer{agent: ru.f.Agent, decision: &d, audit: &res.resp.Audit})
			return
		}
		if m := res.resp.RequestBodyMutation; m != nil && m.Data != nil {
			chunk = m.Data
		}
		more = more || res.resp.NeedsMore
	}
	b.index++
	b.pending = append(b.pending, chunk...)
	if last {
		b.done = true
	}
	if !more || last {
		b.out, b.pending = b.pending, nil
	}
}

func (b *streamBody) stop(a *stopAnswer) {
	b.st.setStop(a)
	b.err = errStopped
}

// countingBody counts the bytes read.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func itoa(i int) string { return strconv.Itoa(i) }
