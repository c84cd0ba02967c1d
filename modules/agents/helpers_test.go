package agents

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/agents/sdk"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/caddy/v2.trapSignalsCrossPlatform.func1"),
	)
}

// scripted is a test agent: fn decides each event; calls are counted.
type scripted struct {
	sdk.Base
	mu       sync.Mutex
	headers  func(*protocol.RequestHeaders) *protocol.Response
	body     func(*protocol.RequestBodyChunk) *protocol.Response
	respHdr  func(*protocol.ResponseHeaders) *protocol.Response
	respBody func(*protocol.ResponseBodyChunk) *protocol.Response
	calls    atomic.Int64
	complete chan *protocol.RequestComplete
	chunks   [][]byte
	config   json.RawMessage
}

func (s *scripted) OnConfigure(_ context.Context, c *protocol.Configure) error {
	s.mu.Lock()
	s.config = c.Config
	s.mu.Unlock()
	return nil
}

func (s *scripted) OnRequestHeaders(_ context.Context, ev *protocol.RequestHeaders) *protocol.Response {
	s.calls.Add(1)
	if s.headers != nil {
		return s.headers(ev)
	}
	return nil
}

func (s *scripted) OnRequestBody(_ context.Context, ev *protocol.RequestBodyChunk) *protocol.Response {
	s.calls.Add(1)
	s.mu.Lock()
	s.chunks = append(s.chunks, append([]byte(nil), ev.Data...))
	s.mu.Unlock()
	if s.body != nil {
		return s.body(ev)
	}
	return nil
}

func (s *scripted) OnResponseHeaders(_ context.Context, ev *protocol.ResponseHeaders) *protocol.Response {
	s.calls.Add(1)
	if s.respHdr != nil {
		return s.respHdr(ev)
	}
	return nil
}

func (s *scripted) OnResponseBody(_ context.Context, ev *protocol.ResponseBodyChunk) *protocol.Response {
	s.calls.Add(1)
	if s.respBody != nil {
		return s.respBody(ev)
	}
	return nil
}

func (s *scripted) OnRequestComplete(_ context.Context, ev *protocol.RequestComplete) {
	if s.complete != nil {
		select {
		case s.complete <- ev:
		default:
		}
	}
}

// sockPath returns a short socket path in a fresh folder.
func sockPath(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, name)
}

// serveAgent runs h over a real Unix socket until the test ends and
// returns the socket path.
func serveAgent(t testing.TB, h sdk.Handler, events ...protocol.EventType) string {
	t.Helper()
	path := sockPath(t, "a.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	if len(events) == 0 {
		events = []protocol.EventType{protocol.EventRequestHeaders}
	}
	go func() {
		defer close(done)
		_ = sdk.ServeUDS(ctx, path, h, sdk.Options{AgentID: "test", Events: events})
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, func() bool { _, err := os.Stat(path); return err == nil })
	return path
}

// waitFor polls cond for up to 10s.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newTestPool starts a pool for cfg and drains it at the end of the test.
func newTestPool(t testing.TB, cfg *AgentConfig) *pool {
	t.Helper()
	s, err := cfg.resolve()
	if err != nil {
		t.Fatal(err)
	}
	p := newPool(s, zap.NewNop(), false)
	p.start()
	t.Cleanup(p.drain)
	return p
}

// testApp builds an App holding pools for the configs (no Caddy context).
func testApp(t testing.TB, cfgs ...*AgentConfig) *App {
	t.Helper()
	a := &App{pools: map[string]*pool{}}
	for _, c := range cfgs {
		p := newTestPool(t, c)
		waitFor(t, func() bool { return p.connected() == p.s.connections })
		a.pools[c.ID] = p
	}
	return a
}

// testHandler builds a handler over app.
func testHandler(t testing.TB, app *App, filters ...*Filter) *Handler {
	t.Helper()
	h := &Handler{Route: "r", Upstream: "u", Filters: filters, app: app, log: zap.NewNop()}
	if err := h.setup(); err != nil {
		t.Fatal(err)
	}
	return h
}

// upstream is the next handler: it echoes the request body and headers.
type upstream struct {
	mu     sync.Mutex
	header http.Header
	body   string
	hits   atomic.Int64
	status int
	reply  string
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	u.hits.Add(1)
	b := new(strings.Builder)
	buf := make([]byte, 1024)
	for {
		n, err := r.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			if err.Error() != "EOF" {
				return caddyhttp.Error(http.StatusBadGateway, err)
			}
			break
		}
	}
	u.mu.Lock()
	u.header, u.body = r.Header.Clone(), b.String()
	u.mu.Unlock()
	w.Header().Set("X-Upstream", "yes")
	w.Header().Set("Content-Type", "text/plain")
	if u.status != 0 {
		w.WriteHeader(u.status)
	}
	reply := u.reply
	if reply == "" {
		reply = "upstream:" + b.String()
	}
	_, _ = w.Write([]byte(reply))
	return nil
}

// serve runs one request through the handler.
func serve(t testing.TB, h *Handler, up caddyhttp.Handler, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	if up == nil {
		up = &upstream{}
	}
	w := httptest.NewRecorder()
	repl := caddy.NewReplacer()
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	func() {
		defer func() {
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				panic(v)
			}
		}()
		if err := h.ServeHTTP(w, r, up); err != nil {
			if he, ok := err.(caddyhttp.HandlerError); ok {
				w.Code = he.StatusCode
			} else {
				w.Code = 599
			}
		}
	}()
	return w
}

func block(status int, body string, headers map[string]string) *protocol.Response {
	r := protocol.BlockResponse(status, body)
	r.Decision.Headers = headers
	return r
}
