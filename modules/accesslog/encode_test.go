package accesslog

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// entryTime is the time of the test entries.
var entryTime = time.Date(2024, time.March, 5, 14, 7, 9, 123456789, time.UTC)

// newTestEncoder returns a provisioned encoder of the given style.
func newTestEncoder(t *testing.T, style string) *Encoder {
	t.Helper()
	e := &Encoder{Style: style, InstanceID: "sentinel-1"}
	if err := e.Provision(caddy.Context{}); err != nil {
		t.Fatal(err)
	}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	return e
}

// requestField returns the `request` field Caddy logs for a request to
// target from 203.0.113.9:51234, with the given headers (name, value
// pairs). When clientIP is not empty it is set as Caddy's client_ip var.
func requestField(target, clientIP string, headers ...string) zapcore.Field {
	r := httptest.NewRequest("GET", target, nil)
	r.RemoteAddr = "203.0.113.9:51234"
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	vars := map[string]any{}
	if clientIP != "" {
		vars[caddyhttp.ClientIPVarKey] = clientIP
	}
	r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
	return zap.Object("request", caddyhttp.LoggableHTTPRequest{Request: r})
}

// caddyFields returns the fields Caddy's HTTP server adds to an access
// log entry, after the `request` object.
func caddyFields(status, size int, duration time.Duration) []zapcore.Field {
	return []zapcore.Field{
		zap.Int("bytes_read", 0),
		zap.String("user_id", ""),
		zap.Duration("duration", duration),
		zap.Int("size", size),
		zap.Int("status", status),
		zap.Object("resp_headers", caddyhttp.LoggableHTTPHeader{}),
	}
}

// encode encodes an info entry with the encoder and returns the line.
func encode(t *testing.T, e zapcore.Encoder, fields ...zapcore.Field) string {
	t.Helper()
	buf, err := e.EncodeEntry(zapcore.Entry{
		Level:      zapcore.InfoLevel,
		Time:       entryTime,
		LoggerName: "http.log.access.acc",
		Message:    "handled request",
	}, fields)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Free()
	return buf.String()
}

// fullFields is an access log entry with every field the encoder reads.
func fullFields() []zapcore.Field {
	fields := []zapcore.Field{requestField("/api/users?id=7&sort=name", "198.51.100.4",
		"User-Agent", "curl/8.5.0", "Referer", "https://example.org/start")}
	fields = append(fields, caddyFields(200, 42, 12345*time.Microsecond)...)
	return append(fields,
		zap.String("trace_id", "3f2b6f0e-8a4c-4d2e-9b1a-5c7d8e9f0a1b"),
		zap.String("route_id", "api"),
		zap.String("upstream", "backend"),
		zap.String("upstream_addr", "10.0.0.5:8080"),
	)
}

func TestEncodeJSON(t *testing.T) {
	got := encode(t, newTestEncoder(t, StyleJSON), fullFields()...)
	want := `{"timestamp":"2024-03-05T14:07:09.123456789+00:00",` +
		`"trace_id":"3f2b6f0e-8a4c-4d2e-9b1a-5c7d8e9f0a1b","method":"GET","path":"/api/users",` +
		`"query":"id=7&sort=name","protocol":"HTTP/1.1","status":200,"body_bytes":42,"duration_ms":12,` +
		`"client_ip":"198.51.100.4","user_agent":"curl/8.5.0","referer":"https://example.org/start",` +
		`"host":"example.com","route_id":"api","upstream":"backend","upstream_attempts":1,` +
		`"instance_id":"sentinel-1","body_bytes_sent":42,"upstream_addr":"10.0.0.5:8080",` +
		`"connection_reused":false,"rate_limit_hit":false}` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(got), &m); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
}

func TestEncodeJSONMinimal(t *testing.T) {
	// no query, headers or log_append fields; no client_ip var, so the
	// remote IP is the client IP; a 429 is a rate limit hit
	fields := append([]zapcore.Field{requestField("/", "")}, caddyFields(429, 0, 0)...)
	fields = append(fields, zap.Reflect("upstream_addr", nil)) // an unknown placeholder
	got := encode(t, newTestEncoder(t, ""), fields...)
	want := `{"timestamp":"2024-03-05T14:07:09.123456789+00:00","trace_id":"","method":"GET","path":"/",` +
		`"protocol":"HTTP/1.1","status":429,"body_bytes":0,"duration_ms":0,"client_ip":"203.0.113.9",` +
		`"host":"example.com","upstream_attempts":0,"instance_id":"sentinel-1","body_bytes_sent":0,` +
		`"connection_reused":false,"rate_limit_hit":true}` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestEncodeCombined(t *testing.T) {
	got := encode(t, newTestEncoder(t, StyleCombined), fullFields()...)
	want := `198.51.100.4 - - [05/Mar/2024:14:07:09 +0000] "GET /api/users?id=7&sort=name HTTP/1.1" 200 42 ` +
		`"https://example.org/start" "curl/8.5.0" 3f2b6f0e-8a4c-4d2e-9b1a-5c7d8e9f0a1b 12ms` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestEncodeCombinedMinimal(t *testing.T) {
	fields := append([]zapcore.Field{requestField("/", "")}, caddyFields(404, 9, 1500*time.Millisecond)...)
	got := encode(t, newTestEncoder(t, StyleCombined), fields...)
	want := `203.0.113.9 - - [05/Mar/2024:14:07:09 +0000] "GET / HTTP/1.1" 404 9 "-" "-" - 1500ms` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestTraceIDFallsBackToUUID(t *testing.T) {
	fields := append([]zapcore.Field{requestField("/", "")}, caddyFields(200, 0, 0)...)
	fields = append(fields, zap.String("uuid", "caddy-request-id"))
	got := encode(t, newTestEncoder(t, StyleJSON), fields...)
	if !strings.Contains(got, `"trace_id":"caddy-request-id",`) {
		t.Errorf("trace_id is not the uuid: %s", got)
	}
	fields = append(fields, zap.String("trace_id", "explicit"))
	got = encode(t, newTestEncoder(t, StyleJSON), fields...)
	if !strings.Contains(got, `"trace_id":"explicit",`) {
		t.Errorf("trace_id is not the explicit one: %s", got)
	}
}

func TestEncodeDurationInSeconds(t *testing.T) {
	// the duration as the JSON encoder writes it: float seconds
	fields := []zapcore.Field{
		requestField("/x", ""),
		zap.Float64("duration", 0.0123),
		zap.Int("size", 42),
		zap.Int("status", 200),
		zap.String("trace_id", "abc"),
		zap.Int("upstream_attempts", 3),
	}
	got := encode(t, newTestEncoder(t, StyleJSON), fields...)
	for _, part := range []string{`"duration_ms":12,`, `"status":200,`, `"body_bytes":42,`, `"trace_id":"abc",`, `"upstream_attempts":3,`} {
		if !strings.Contains(got, part) {
			t.Errorf("%s does not contain %s", got, part)
		}
	}
}

// TestThroughLogger logs the way Caddy's HTTP server does: the `request`
// object is a (lazy) With field of the logger, so it reaches the encoder
// through its ObjectEncoder methods, not EncodeEntry.
func TestThroughLogger(t *testing.T) {
	for _, style := range []string{StyleJSON, StyleCombined} {
		t.Run(style, func(t *testing.T) {
			var out bytes.Buffer
			core := zapcore.NewCore(newTestEncoder(t, style), zapcore.AddSync(&out), zapcore.DebugLevel)
			fields := fullFields()
			accLog := zap.New(core).Named("http.log.access").WithLazy(fields[0]).Named("acc")
			for range 2 {
				accLog.Info("handled request", fields[1:]...)
			}
			// only the timestamps differ from the test's entry time
			sep := `"trace_id"`
			if style == StyleCombined {
				sep = `"GET`
			}
			want := encode(t, newTestEncoder(t, style), fields...)
			want = want[strings.Index(want, sep):]
			lines := strings.SplitAfter(out.String(), "\n")
			if len(lines) != 3 || lines[2] != "" {
				t.Fatalf("want two lines, got %q", out.String())
			}
			for _, line := range lines[:2] {
				if i := strings.Index(line, sep); i < 0 || line[i:] != want {
					t.Errorf("got\n%s\nwant ...%s", line, want)
				}
			}
		})
	}
}

func TestConcurrentEncoding(t *testing.T) {
	var out bytes.Buffer
	ws := zapcore.Lock(zapcore.AddSync(&out))
	core := zapcore.NewCore(newTestEncoder(t, StyleJSON), ws, zapcore.DebugLevel)
	fields := fullFields()
	accLog := zap.New(core).WithLazy(fields[0])
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				accLog.Info("handled request", fields[1:]...)
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 400 {
		t.Fatalf("got %d lines, want 400", len(lines))
	}
	for _, line := range lines {
		if !strings.Contains(line, `"path":"/api/users","query":"id=7&sort=name"`) {
			t.Fatalf("bad line %s", line)
		}
	}
}

// TestNamespacedRequestIsNotAnAccessLogEntry checks that a `request`
// object inside a namespace is not taken for Caddy's.
func TestNamespacedRequestIsNotAnAccessLogEntry(t *testing.T) {
	fields := append([]zapcore.Field{zap.Namespace("inner"), requestField("/", "")}, caddyFields(200, 0, 0)...)
	got := encode(t, newTestEncoder(t, StyleJSON), fields...)
	if !strings.Contains(got, `"inner":{"request":{`) || !strings.Contains(got, `"resp_headers":{}`) {
		t.Errorf("not encoded as plain JSON: %s", got)
	}
}

func TestNotAnAccessLogEntry(t *testing.T) {
	var out bytes.Buffer
	core := zapcore.NewCore(newTestEncoder(t, StyleCombined), zapcore.AddSync(&out), zapcore.DebugLevel)
	logger := zap.New(core).Named("tls").With(zap.String("ctx", "v"))
	logger.Warn("something happened", zap.Int("n", 3), zap.String("request", "not an object"))

	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, out.String())
	}
	want := map[string]any{"level": "warn", "logger": "tls", "msg": "something happened", "ctx": "v", "n": float64(3), "request": "not an object"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v (in %s)", k, m[k], v, out.String())
		}
	}
	if _, ok := m["ts"].(float64); !ok {
		t.Errorf("ts should be Caddy's default (float seconds): %s", out.String())
	}
}

// TestContextFields adds a field of each kind to the encoder, as a
// logger's With fields, and checks that they are encoded.
func TestContextFields(t *testing.T) {
	e := newTestEncoder(t, StyleJSON)
	clone := e.Clone().(*Encoder)
	b := []byte("bytes")
	enc := zapcore.ObjectEncoder(clone)
	_ = enc.AddArray("array", zapcore.ArrayMarshalerFunc(func(ae zapcore.ArrayEncoder) error {
		ae.AppendString("x")
		return nil
	}))
	_ = enc.AddObject("object", zapcore.ObjectMarshalerFunc(func(oe zapcore.ObjectEncoder) error {
		oe.AddString("k", "v")
		return nil
	}))
	enc.AddBinary("binary", b)
	enc.AddByteString("bytestring", b)
	b[0] = 'X' // the encoder must have copied it
	enc.AddBool("bool", true)
	enc.AddComplex128("complex128", 1+2i)
	enc.AddComplex64("complex64", 1+2i)
	enc.AddDuration("duration", time.Second)
	enc.AddFloat64("float64", 1.5)
	enc.AddFloat32("float32", 2.5)
	enc.AddInt("int", -1)
	enc.AddInt64("int64", -64)
	enc.AddInt32("int32", -32)
	enc.AddInt16("int16", -16)
	enc.AddInt8("int8", -8)
	enc.AddString("string", "s")
	enc.AddTime("time", entryTime)
	enc.AddUint("uint", 1)
	enc.AddUint64("uint64", 64)
	enc.AddUint32("uint32", 32)
	enc.AddUint16("uint16", 16)
	enc.AddUint8("uint8", 8)
	enc.AddUintptr("uintptr", 7)
	_ = enc.AddReflected("reflected", map[string]int{"a": 1})
	enc.OpenNamespace("ns")
	enc.AddString("inner", "i")

	got := encode(t, clone, zap.String("field", "f"))
	for _, part := range []string{
		`"array":["x"]`, `"object":{"k":"v"}`, `"binary":"Ynl0ZXM="`, `"bytestring":"bytes"`,
		`"bool":true`, `"complex128":"1+2i"`, `"complex64":"1+2i"`, `"duration":1`,
		`"float64":1.5`, `"float32":2.5`, `"int":-1`, `"int64":-64`, `"int32":-32`,
		`"int16":-16`, `"int8":-8`, `"string":"s"`, `"time":1709647629.1234567`,
		`"uint":1`, `"uint64":64`, `"uint32":32`, `"uint16":16`, `"uint8":8`,
		`"uintptr":7`, `"reflected":{"a":1}`, `"ns":{"inner":"i","field":"f"}`,
	} {
		if !strings.Contains(got, part) {
			t.Errorf("%s does not contain %s", got, part)
		}
	}

	// the original encoder did not get the clone's fields
	if got := encode(t, e); strings.Contains(got, "string") {
		t.Errorf("the clone's fields leaked into the original: %s", got)
	}
}

func TestCloneIsIndependent(t *testing.T) {
	e := newTestEncoder(t, StyleJSON)
	e.AddString("a", "1")
	c1 := e.Clone().(*Encoder)
	c2 := e.Clone().(*Encoder)
	c1.AddString("b", "2")
	c2.AddString("c", "3")
	if got := encode(t, c2); !strings.Contains(got, `"a":"1","c":"3"`) || strings.Contains(got, `"b"`) {
		t.Errorf("clone 2: %s", got)
	}
	if got := encode(t, e); strings.Contains(got, `"b"`) || strings.Contains(got, `"c"`) {
		t.Errorf("original: %s", got)
	}
}

func TestProvisionDefaults(t *testing.T) {
	e := new(Encoder)
	if err := e.Provision(caddy.Context{}); err != nil {
		t.Fatal(err)
	}
	if e.Style != StyleJSON {
		t.Errorf("style = %q, want json", e.Style)
	}
	if e.InstanceID == "" || e.InstanceID != defaultInstanceID() {
		t.Errorf("instance id = %q, want the host name %q", e.InstanceID, defaultInstanceID())
	}
	if err := (&Encoder{Style: "common"}).Validate(); err == nil || !strings.Contains(err.Error(), `"common"`) {
		t.Errorf("Validate of an unknown style: %v", err)
	}
}

func TestModuleInfo(t *testing.T) {
	info := Encoder{}.CaddyModule()
	if info.ID != "caddy.logging.encoders.sentinel_access" {
		t.Errorf("id = %s", info.ID)
	}
	if _, ok := info.New().(*Encoder); !ok {
		t.Errorf("New returned %T", info.New())
	}
	mod, err := caddy.GetModule("caddy.logging.encoders.sentinel_access")
	if err != nil || mod.ID != info.ID {
		t.Errorf("module not registered: %v", err)
	}
}
