package audit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// httpSink is the HTTP client part shared by the HTTP sinks.
type httpSink struct {
	client *http.Client
	repl   *caddy.Replacer
}

func newHTTPSink() httpSink {
	return httpSink{
		client: &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second}},
		repl:   caddy.NewReplacer(),
	}
}

// secret resolves placeholders ({env.X}) in a configured secret.
func (h httpSink) secret(s string) string { return h.repl.ReplaceAll(s, "") }

// post sends body to url and returns the response body of a 2xx answer.
// Other statuses are errors that name the status only (a destination's
// error body may echo what was sent).
func (h httpSink) post(ctx context.Context, method, url string, hdr http.Header, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return b, &statusError{code: resp.StatusCode, method: method, url: redactURL(req)}
	}
	return b, nil
}

// statusError is a non-2xx answer.
type statusError struct {
	code        int
	method, url string
}

func (e *statusError) Error() string { return fmt.Sprintf("%s %s: status %d", e.method, e.url, e.code) }

// redactURL is the request URL without user info and query (which may
// carry credentials).
func redactURL(r *http.Request) string {
	u := *r.URL
	u.User, u.RawQuery = nil, ""
	return u.String()
}

func (h httpSink) cleanup() {
	if h.client != nil {
		h.client.CloseIdleConnections()
	}
}
