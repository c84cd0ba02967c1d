package cache

import (
	"context"
	"maps"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// revalidateInBackground refreshes a stale entry served under
// stale-while-revalidate: a copy of r (with the entry's validators) goes
// through next in its own goroutine, detached from the client's request,
// with its own request variables and replacer (the client's request goes
// on using those), bounded by RevalidateTimeout and the config's life.
// One revalidation per key runs at a time.
func (h *Handler) revalidateInBackground(r *http.Request, next caddyhttp.Handler, key string, e *Entry) {
	f, leader := h.shared.join(key)
	if !leader {
		return // already being refreshed
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Duration(h.RevalidateTimeout))
	stop := context.AfterFunc(h.ctx, cancel)
	r2 := r.Clone(ctx)
	r2.Header.Del("If-None-Match")
	r2.Header.Del("If-Modified-Since")
	r2.Header.Del("Cache-Control")
	r2.Header.Del("Pragma")
	if r2.Method == http.MethodHead {
		r2.Method = http.MethodGet // fill the entry's body
	}
	// Fresh per-request state: the client's request keeps its own.
	var vars map[string]any
	if v, ok := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any); ok {
		vars = maps.Clone(v)
	}
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	w := &nopWriter{h: make(http.Header)}
	r2 = caddyhttp.PrepareRequest(r2, caddy.NewReplacer(), w, srv)
	if vars != nil {
		maps.Copy(r2.Context().Value(caddyhttp.VarsCtxKey).(map[string]any), vars)
	}
	go func() {
		defer cancel()
		defer stop()
		defer h.shared.land(key, f)
		defer func() {
			if v := recover(); v != nil {
				h.logger.Error("background revalidation panicked", zap.Any("panic", v))
			}
		}()
		requestTime := h.now()
		cr := conditional(r2, e)
		var fresh freshness
		var reason string
		cw := newCaptureWriter(w, h.MaxEntryBytes, func(status int, hdr http.Header) (bool, bool) {
			if status == http.StatusNotModified {
				return false, true
			}
			fresh, reason = h.storable(r2, status, hdr, nil, h.now(), requestTime)
			return false, reason == ""
		})
		err := next.ServeHTTP(cw, cr)
		now := h.now()
		switch {
		case err != nil || !cw.wrote:
			h.logger.Debug("background revalidation failed", zap.Error(err))
		case cw.status == http.StatusNotModified:
			refreshed, reason := h.refresh(e, cw.snapshot, now, requestTime)
			if reason != "" {
				h.shared.store.Delete(key) // the 304 made it unstorable
				return
			}
			h.shared.store.Set(key, refreshed)
			h.shared.stats.revalidated.Add(1)
		case cw.complete() && reason == "":
			h.store(r2, key, cw.status, cw.snapshot, cw.body, fresh, now)
			h.shared.stats.revalidated.Add(1)
		case cw.status < 500:
			h.shared.store.Delete(key) // replaced by a response that may not be stored
		}
	}()
}
