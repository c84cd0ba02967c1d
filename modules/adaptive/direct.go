package adaptive

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"golang.org/x/net/http/httpguts"
)

// directH1 is the sentinel transport's HTTP/1.1 round trip for plain-HTTP
// upstreams, done in the caller's goroutine: net/http's transport hands
// every request to two goroutines per connection (its write and read
// loops) through channels; this writes the request and reads the
// response head on the proxy's own goroutine, and its body as the proxy
// copies it.
//
// It takes only requests that net/http could retry and that need none of
// its machinery (directH1.eligible): GET, HEAD and OPTIONS without a body,
// without Expect, Upgrade or Connection headers, over plain HTTP to a TCP
// address, with no client trace hook but Got1xxResponse (Caddy's, which
// forwards 1xx responses). Everything else goes through net/http as
// before. It is only built for transports without TLS, h2c, HTTP/3,
// forward proxy, PROXY protocol, connection limit or disabled keep-alives
// (newDirectH1). Caddy's read_timeout and
// write_timeout apply (its dialer wraps the connections).
//
// What it keeps equal to net/http: the bytes of the request (written by
// http.Request.Write, plus the "Accept-Encoding: gzip" net/http adds when
// compression is on and the client asked for no encoding and no range,
// with the response then decompressed transparently); the header checks;
// the response header timeout; the limit of the response heads (1xx
// included); the idle pool's limits (max_idle_conns_per_host,
// max_idle_conns, idle_timeout); one retry on a new connection when a
// reused one fails before any byte of the response; cancellation by the
// request's context, during the body too.
//
// A connection is reused only after a response read completely and
// cleanly: the body read to its end (a Close before it closes the
// connection, unread data is never skipped), no "Connection: close",
// no byte buffered beyond the response, no end of stream seen; and when
// it is taken from the pool, a non-blocking peek checks that the
// upstream neither closed it nor sent anything unsolicited (net/http's
// read loop watches idle connections for the same). A response that
// fails to parse closes its connection.
type directH1 struct {
	dial          func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle       int           // per address
	maxIdleTotal  int           // 0: no limit
	idleTimeout   time.Duration // 0: no limit
	headerTimeout time.Duration
	maxHeader     int64
	readSize      int
	gzip          bool
	// rwTimeouts: the dialer wraps connections in Caddy's read and write
	// timeouts, which set a deadline before each read and write.
	rwTimeouts bool
	// proxy is the transport's proxy function when the environment names
	// an HTTP proxy (HTTP_PROXY): a request it would send through the
	// proxy goes through net/http's transport; loopback and NO_PROXY
	// addresses stay direct.
	proxy func(*http.Request) (*url.URL, error)

	bufs sync.Pool // *reqBuf

	mu     sync.Mutex
	idle   map[directKey][]*directConn
	nidle  int
	sweep  *time.Timer // closes the connections idle for longer than idleTimeout
	closed bool
}

// directKey is a pool's address.
type directKey struct{ network, addr string }

// newDirectH1 returns the direct round trip for the provisioned
// transport h, or nil when its settings need net/http's transport.
func newDirectH1(h *reverseproxy.HTTPTransport) *directH1 {
	rt := h.Transport
	if rt == nil || rt.DialContext == nil || !peekSupported ||
		h.TLS != nil || len(h.Versions) == 0 || !containsVersion(h.Versions, "1.1") ||
		containsVersion(h.Versions, "h2c") || containsVersion(h.Versions, "3") || rt.Protocols != nil ||
		rt.DisableKeepAlives || rt.MaxConnsPerHost > 0 ||
		h.ProxyProtocol != "" ||
		h.ForwardProxyURL != "" || len(h.NetworkProxyRaw) != 0 {
		return nil
	}
	d := &directH1{
		dial:          rt.DialContext,
		maxIdle:       rt.MaxIdleConnsPerHost,
		maxIdleTotal:  rt.MaxIdleConns,
		idleTimeout:   rt.IdleConnTimeout,
		headerTimeout: rt.ResponseHeaderTimeout,
		maxHeader:     rt.MaxResponseHeaderBytes,
		readSize:      rt.ReadBufferSize,
		gzip:          !rt.DisableCompression,
		rwTimeouts:    h.ReadTimeout > 0 || h.WriteTimeout > 0,
		idle:          make(map[directKey][]*directConn),
	}
	if os.Getenv("HTTP_PROXY") != "" || os.Getenv("http_proxy") != "" {
		d.proxy = rt.Proxy
	}
	if d.maxIdle == 0 {
		d.maxIdle = http.DefaultMaxIdleConnsPerHost
	}
	if d.maxHeader == 0 {
		d.maxHeader = 10 << 20 // net/http's default
	}
	if d.readSize <= 0 {
		d.readSize = 4 << 10
	}
	d.bufs.New = func() any { return &reqBuf{b: make([]byte, 0, 1024)} }
	return d
}

func containsVersion(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// eligible reports whether req takes the direct round trip, and the
// address of its connection pool.
func (d *directH1) eligible(req *http.Request) (directKey, bool) {
	if req.URL == nil || req.URL.Scheme != "http" || req.Header == nil || req.Close ||
		req.ContentLength != 0 || (req.Body != nil && req.Body != http.NoBody) ||
		len(req.TransferEncoding) != 0 || len(req.Trailer) != 0 {
		return directKey{}, false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		return directKey{}, false
	}
	h := req.Header
	if len(h["Upgrade"]) != 0 || len(h["Expect"]) != 0 || len(h["Connection"]) != 0 {
		return directKey{}, false
	}
	ctx := req.Context()
	if tr := httptrace.ContextClientTrace(ctx); tr != nil && !onlyGot1xx(tr) {
		return directKey{}, false
	}
	addr := canonicalAddr(req.URL.Host)
	if addr == "" {
		return directKey{}, false
	}
	network := "tcp"
	if di, ok := reverseproxy.GetDialInfo(ctx); ok {
		switch di.Network {
		case "", "tcp", "tcp4", "tcp6":
		default:
			return directKey{}, false
		}
		if di.Network != "" {
			network = di.Network
		}
		if di.Address != "" {
			addr = di.Address
		}
	}
	if d.proxy != nil {
		if u, err := d.proxy(req); u != nil || err != nil {
			return directKey{}, false
		}
	}
	return directKey{network: network, addr: addr}, true
}

// onlyGot1xx reports whether the client trace has no hook but
// Got1xxResponse (Caddy's reverse proxy sets that one on every request).
func onlyGot1xx(t *httptrace.ClientTrace) bool {
	return t.GetConn == nil && t.GotConn == nil && t.PutIdleConn == nil && t.GotFirstResponseByte == nil &&
		t.Got100Continue == nil && t.DNSStart == nil && t.DNSDone == nil && t.ConnectStart == nil &&
		t.ConnectDone == nil && t.TLSHandshakeStart == nil && t.TLSHandshakeDone == nil &&
		t.WroteHeaderField == nil && t.WroteHeaders == nil && t.Wait100Continue == nil && t.WroteRequest == nil
}

// canonicalAddr is host with the default port of http added when it has
// none; "" when it is empty.
func canonicalAddr(host string) string {
	if host == "" {
		return ""
	}
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		return host + ":80"
	}
	return net.JoinHostPort(host, "80")
}

// roundTrip sends req (eligible, to the pool of key) and returns its
// response, as net/http's transport would.
func (d *directH1) roundTrip(req *http.Request, key directKey) (*http.Response, error) {
	if msg := invalidHeader(req.Header); msg != "" {
		return nil, fmt.Errorf("net/http: invalid header %s", msg)
	}
	gz := d.gzip && req.Method != http.MethodHead && req.Header.Get("Accept-Encoding") == "" &&
		req.Header.Get("Range") == ""
	buf := d.bufs.Get().(*reqBuf)
	defer d.putBuf(buf)
	buf.b = buf.b[:0]
	if err := req.Write(buf); err != nil {
		return nil, err
	}
	if !bytes.HasSuffix(buf.b, crlf2) {
		// Not a bodyless request after all (eligible excludes them).
		return nil, errors.New("sentinel transport: direct round trip: request head not terminated")
	}
	if gz {
		// net/http writes its extra headers after the request's, before
		// the blank line that ends the head.
		buf.b = append(buf.b[:len(buf.b)-2], "Accept-Encoding: gzip\r\n\r\n"...)
	}
	ctx := req.Context()
	for fresh := false; ; fresh = true {
		c, reused, err := d.get(ctx, key, fresh)
		if err != nil {
			return nil, err
		}
		res, retry, err := c.roundTrip(req, buf.b, gz)
		if err == nil {
			return res, nil
		}
		if !retry || !reused || fresh || ctx.Err() != nil {
			return nil, err
		}
	}
}

var crlf2 = []byte("\r\n\r\n")

func (d *directH1) putBuf(b *reqBuf) {
	if cap(b.b) <= 64<<10 {
		d.bufs.Put(b)
	}
}

// invalidHeader is net/http's check of the outgoing header fields: a
// description of the first invalid one, "" when all are valid.
func invalidHeader(h http.Header) string {
	for k, vv := range h {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Sprintf("field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				// Not the value: it may be sensitive.
				return fmt.Sprintf("field value for %q", k)
			}
		}
	}
	return ""
}

// get returns an idle connection of the pool of key that is still open
// (reused), or a new one (always when fresh).
func (d *directH1) get(ctx context.Context, key directKey, fresh bool) (*directConn, bool, error) {
	if !fresh {
		for {
			c := d.takeIdle(key)
			if c == nil {
				break
			}
			if c.alive() {
				return c, true, nil
			}
			_ = c.conn.Close()
		}
	}
	conn, err := d.dial(ctx, key.network, key.addr)
	if err != nil {
		return nil, false, err
	}
	c := &directConn{d: d, key: key, conn: conn, limit: d.maxHeader}
	c.br = bufio.NewReaderSize(c, d.readSize)
	c.cancelFn, c.timeoutFn = c.cancel, c.headerTimedOut
	if err := c.initPeek(); err != nil {
		_ = conn.Close()
		return nil, false, err
	}
	return c, false, nil
}

// takeIdle removes the most recently used idle connection of key from the
// pool; nil when there is none that has not been idle too long.
func (d *directH1) takeIdle(key directKey) *directConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		list := d.idle[key]
		n := len(list)
		if n == 0 {
			return nil
		}
		c := list[n-1]
		list[n-1] = nil
		if n == 1 {
			delete(d.idle, key)
		} else {
			d.idle[key] = list[:n-1]
		}
		d.nidle--
		if d.idleTimeout > 0 && time.Since(c.idleSince) > d.idleTimeout {
			_ = c.conn.Close()
			continue
		}
		return c
	}
}

// put returns c to its pool, or closes it when the pool is full or
// closed.
func (d *directH1) put(c *directConn) {
	d.mu.Lock()
	list := d.idle[c.key]
	if d.closed || len(list) >= d.maxIdle || (d.maxIdleTotal > 0 && d.nidle >= d.maxIdleTotal) {
		d.mu.Unlock()
		_ = c.conn.Close()
		return
	}
	c.idleSince = time.Now()
	d.idle[c.key] = append(list, c)
	d.nidle++
	if d.idleTimeout > 0 && d.sweep == nil {
		d.sweep = time.AfterFunc(d.idleTimeout, d.expire)
	}
	d.mu.Unlock()
}

// expire closes the connections idle for longer than the idle timeout,
// and rearms itself while some remain.
func (d *directH1) expire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sweep = nil
	if d.closed {
		return
	}
	now := time.Now()
	next := time.Duration(-1)
	for key, list := range d.idle {
		kept := list[:0]
		for _, c := range list {
			if left := d.idleTimeout - now.Sub(c.idleSince); left > 0 {
				kept = append(kept, c)
				if next < 0 || left < next {
					next = left
				}
				continue
			}
			_ = c.conn.Close()
			d.nidle--
		}
		clear(list[len(kept):])
		if len(kept) == 0 {
			delete(d.idle, key)
		} else {
			d.idle[key] = kept
		}
	}
	if next >= 0 {
		d.sweep = time.AfterFunc(next, d.expire)
	}
}

// close closes the idle connections; the connections in use are closed
// when their response ends.
func (d *directH1) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if d.sweep != nil {
		d.sweep.Stop()
		d.sweep = nil
	}
	for key, list := range d.idle {
		for _, c := range list {
			_ = c.conn.Close()
		}
		delete(d.idle, key)
	}
	d.nidle = 0
}

// idleCount is the number of idle connections (tests).
func (d *directH1) idleCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nidle
}

// reqBuf collects a request head. It is an io.ByteWriter, so that
// http.Request.Write does not wrap it in a bufio.Writer of its own.
type reqBuf struct{ b []byte }

func (w *reqBuf) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *reqBuf) WriteString(s string) (int, error) {
	w.b = append(w.b, s...)
	return len(s), nil
}

func (w *reqBuf) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

// directConn is a connection of the direct round trip. It is used by one
// request at a time.
type directConn struct {
	d         *directH1
	key       directKey
	conn      net.Conn
	br        *bufio.Reader
	idleSince time.Time
	peekState

	// Per request.
	ctx       context.Context
	limit     int64 // bytes the response head may still take
	nread     int64 // bytes read for this request
	sawEOF    bool
	canceled  atomic.Bool
	timedOut  atomic.Bool
	stop      func() bool
	cancelFn  func()
	timeoutFn func()
}

// Read reads from the connection for br, within the limit of the
// response head (net/http's persistConn.Read).
func (c *directConn) Read(p []byte) (int, error) {
	if c.limit <= 0 {
		return 0, fmt.Errorf("read limit of %d bytes exhausted", c.d.maxHeader)
	}
	if int64(len(p)) > c.limit {
		p = p[:c.limit]
	}
	n, err := c.conn.Read(p)
	if err == io.EOF {
		c.sawEOF = true
	}
	c.limit -= int64(n)
	c.nread += int64(n)
	return n, err
}

// cancel closes the connection when the request's context ends: its
// reads and writes fail at once (a deadline would not do: Caddy's read
// and write timeouts set their own before each call). Such a connection
// is never reused.
func (c *directConn) cancel() {
	c.canceled.Store(true)
	_ = c.conn.Close()
}

// headerTimedOut closes the connection when the response header timeout
// expires.
func (c *directConn) headerTimedOut() {
	c.timedOut.Store(true)
	_ = c.conn.Close()
}

// errHeaderTimeout is net/http's error when the response header timeout
// expires.
var errHeaderTimeout error = headerTimeoutError{}

type headerTimeoutError struct{}

func (headerTimeoutError) Error() string   { return "net/http: timeout awaiting response headers" }
func (headerTimeoutError) Timeout() bool   { return true }
func (headerTimeoutError) Temporary() bool { return true }

// roundTrip writes head (req's) and reads the response. retry is set when
// the connection failed before any byte of a response: the request may
// be sent again on another connection.
func (c *directConn) roundTrip(req *http.Request, head []byte, gz bool) (_ *http.Response, retry bool, _ error) {
	ctx := req.Context()
	c.ctx, c.limit, c.nread, c.sawEOF = ctx, c.d.maxHeader, 0, false
	c.canceled.Store(false)
	c.timedOut.Store(false)
	c.stop = context.AfterFunc(ctx, c.cancelFn)
	var timer *time.Timer
	fail := func(err error, retry bool) (*http.Response, bool, error) {
		c.stop()
		if timer != nil {
			timer.Stop()
		}
		_ = c.conn.Close()
		switch {
		case c.canceled.Load():
			return nil, false, context.Cause(ctx)
		case c.timedOut.Load():
			return nil, false, errHeaderTimeout
		}
		return nil, retry, err
	}
	if _, err := c.conn.Write(head); err != nil {
		return fail(err, true)
	}
	if c.d.headerTimeout > 0 {
		// From the end of the write, as net/http's timer.
		timer = time.AfterFunc(c.d.headerTimeout, c.timeoutFn)
	}
	var res *http.Response
	for {
		var err error
		res, err = http.ReadResponse(c.br, req)
		if err != nil {
			return fail(err, c.nread == 0)
		}
		code := res.StatusCode
		if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
			if tr := httptrace.ContextClientTrace(ctx); tr != nil && tr.Got1xxResponse != nil {
				if err := tr.Got1xxResponse(code, textproto.MIMEHeader(res.Header)); err != nil {
					return fail(err, false)
				}
				c.limit = c.d.maxHeader
			}
			continue
		}
		break
	}
	if timer != nil && !timer.Stop() {
		return fail(errHeaderTimeout, false)
	}
	c.limit = 1<<63 - 1
	if res.StatusCode == http.StatusSwitchingProtocols {
		// Not asked for (upgrades go through net/http), but handed over
		// as net/http does: the body is the connection, never reused.
		if !c.stop() {
			_ = c.conn.Close()
			return nil, false, context.Cause(ctx)
		}
		res.Body = &switchedBody{br: c.br, conn: c.conn}
		return res, false, nil
	}
	reusable := !res.Close && !req.Close && res.StatusCode > 199
	if req.Method == http.MethodHead || res.ContentLength == 0 {
		// No body: the connection is free now.
		c.release(reusable)
		return res, false, nil
	}
	// A body delimited by the end of the stream is not reusable.
	delimited := res.ContentLength > 0 || len(res.TransferEncoding) > 0
	body := &directBody{c: c, body: res.Body, reusable: reusable && delimited}
	res.Body = body
	if gz && strings.EqualFold(res.Header.Get("Content-Encoding"), "gzip") {
		res.Body = &gunzipBody{body: body}
		res.Header.Del("Content-Encoding")
		res.Header.Del("Content-Length")
		res.ContentLength = -1
		res.Uncompressed = true
	}
	return res, false, nil
}

// release ends the connection's request: back to the pool when reusable
// and clean, closed otherwise.
func (c *directConn) release(reusable bool) {
	c.ctx = nil
	if c.stop() && reusable && !c.sawEOF && c.br.Buffered() == 0 {
		c.d.put(c)
		return
	}
	_ = c.conn.Close()
}

// directBody is a response body of the direct round trip: at its end, the
// connection goes back to the pool; closed before, the connection is
// closed.
type directBody struct {
	c        *directConn
	body     io.ReadCloser
	reusable bool

	mu   sync.Mutex
	done bool
	err  error // after done: what Read returns
}

// Read reads the body; its end releases the connection.
func (b *directBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.done {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	b.mu.Unlock()
	n, err := b.body.Read(p)
	if err == nil {
		return n, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return n, b.err
	}
	b.done = true
	if err == io.EOF {
		b.err = io.EOF
		b.c.release(b.reusable)
		return n, io.EOF
	}
	canceled := b.c.canceled.Load()
	b.c.stop()
	_ = b.c.conn.Close()
	if canceled {
		err = context.Cause(b.c.ctx)
	}
	b.err = err
	return n, err
}

// Close closes the body; before its end, it closes the connection (the
// rest is not read).
func (b *directBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return nil
	}
	b.done, b.err = true, errReadOnClosedBody
	b.c.stop()
	_ = b.c.conn.Close()
	return nil
}

// errReadOnClosedBody is net/http's error for a read after Close.
var errReadOnClosedBody = errors.New("http: read on closed response body")

// gunzipBody decompresses a gzip body that net/http's transport would
// have decompressed (it asked for gzip on its own).
type gunzipBody struct {
	body *directBody
	zr   *gzip.Reader
	zerr error
}

func (g *gunzipBody) Read(p []byte) (int, error) {
	if g.zr == nil && g.zerr == nil {
		g.zr, g.zerr = gzip.NewReader(g.body)
	}
	if g.zerr != nil {
		return 0, g.zerr
	}
	return g.zr.Read(p)
}

func (g *gunzipBody) Close() error { return g.body.Close() }

// switchedBody is the connection of a 101 response.
type switchedBody struct {
	br   *bufio.Reader
	conn net.Conn
}

func (s *switchedBody) Read(p []byte) (int, error) {
	if s.br != nil {
		if s.br.Buffered() > 0 {
			return s.br.Read(p)
		}
		s.br = nil
	}
	return s.conn.Read(p)
}

func (s *switchedBody) Write(p []byte) (int, error) { return s.conn.Write(p) }
func (s *switchedBody) Close() error                { return s.conn.Close() }
