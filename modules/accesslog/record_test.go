package accesslog

import (
	"encoding/json"
	"errors"
	"math"
	"net"
	"testing"
	"time"

	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
)

func TestSplitURI(t *testing.T) {
	for _, tc := range []struct{ uri, path, query string }{
		{"/", "/", ""},
		{"/a/b", "/a/b", ""},
		{"/a/b?", "/a/b", ""},
		{"/a%20b?x=1&y=%2F", "/a%20b", "x=1&y=%2F"},
		{"/a?b?c", "/a", "b?c"},
		{"http://example.com/p?q=1", "/p", "q=1"},
		{"http://example.com", "/", ""},
		{"*", "*", ""},
		{"example.com:443", "example.com:443", ""},
		{"", "", ""},
	} {
		path, query := splitURI(tc.uri)
		if path != tc.path || query != tc.query {
			t.Errorf("splitURI(%q) = %q, %q; want %q, %q", tc.uri, path, query, tc.path, tc.query)
		}
	}
}

func TestHeader(t *testing.T) {
	headers := map[string]any{
		"User-Agent": []any{"first", "second"},
		"referer":    []string{"lower"},
		"X-String":   "plain",
		"X-Empty":    []any{},
		"X-Empty2":   []string{},
	}
	for name, want := range map[string]string{
		"User-Agent": "first",
		"Referer":    "lower",
		"X-String":   "plain",
		"X-Empty":    "",
		"X-Empty2":   "",
		"X-Missing":  "",
	} {
		if got := header(headers, name); got != want {
			t.Errorf("header(%s) = %q, want %q", name, got, want)
		}
	}
}

func TestText(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{nil, ""},
		{"s", "s"},
		{[]byte("b"), "b"},
		{net.ParseIP("192.0.2.1"), "192.0.2.1"},
		{errors.New("e"), "e"},
		{true, "true"},
		{42, "42"},
		{uint16(7), "7"},
		{1.5, "1.5"},
		{float32(0.25), "0.25"},
		{map[string]any{"a": 1}, ""},
		{[]any{"a"}, ""},
	} {
		if got := text(tc.v); got != tc.want {
			t.Errorf("text(%#v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestInteger(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want int64
	}{
		{int(1), 1}, {int8(2), 2}, {int16(3), 3}, {int32(4), 4}, {int64(5), 5},
		{uint(6), 6}, {uint8(7), 7}, {uint16(8), 8}, {uint32(9), 9}, {uint64(10), 10},
		{11.9, 11}, {float32(12.5), 12}, {"13", 13}, {"x", 0}, {nil, 0}, {true, 0},
		{math.NaN(), 0}, {math.Inf(1), 0}, {-1e300, 0},
	} {
		if got := integer(tc.v); got != tc.want {
			t.Errorf("integer(%#v) = %d, want %d", tc.v, got, tc.want)
		}
	}
}

func TestMilliseconds(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want int64
	}{
		{12345 * time.Microsecond, 12},
		{0.0123, 12},
		{float32(1.5), 1500},
		{"250ms", 250},
		{"bogus", 0},
		{int64(5), 0},
		{nil, 0},
	} {
		if got := milliseconds(tc.v); got != tc.want {
			t.Errorf("milliseconds(%#v) = %d, want %d", tc.v, got, tc.want)
		}
	}
}

func TestNewRecordNeedsRequestObject(t *testing.T) {
	for _, fields := range []map[string]any{
		{},
		{"request": "GET /"},
		{"status": 200},
	} {
		if _, ok := newRecord(zapcore.Entry{}, fields, "i"); ok {
			t.Errorf("newRecord(%v) reported an access log entry", fields)
		}
	}
}

func TestAppendTimestamp(t *testing.T) {
	base := time.Date(2024, time.December, 31, 23, 59, 59, 0, time.UTC)
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{base, "2024-12-31T23:59:59+00:00"},
		{base.Add(120 * time.Millisecond), "2024-12-31T23:59:59.120+00:00"},
		{base.Add(120300 * time.Nanosecond), "2024-12-31T23:59:59.000120300+00:00"},
		{base.Add(120 * time.Microsecond), "2024-12-31T23:59:59.000120+00:00"},
		{base.Add(7), "2024-12-31T23:59:59.000000007+00:00"},
		// other zones are converted to UTC
		{time.Date(2025, time.January, 1, 1, 59, 59, 5e8, time.FixedZone("EET", 2*3600)), "2024-12-31T23:59:59.500+00:00"},
	} {
		buf := buffer.NewPool().Get()
		appendTimestamp(buf, tc.t)
		if got := buf.String(); got != tc.want {
			t.Errorf("appendTimestamp(%v) = %s, want %s", tc.t, got, tc.want)
		}
		if _, err := time.Parse(time.RFC3339Nano, buf.String()); err != nil {
			t.Errorf("not RFC 3339: %v", err)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " and backslash \`, "new\nline\r\ttab", "\x00\x01\x1f\x7f",
		"héllo wörld ✓ 🚀", "bad \xff utf-8 \xc3", "</script>&", "\u2028",
	} {
		buf := buffer.NewPool().Get()
		appendJSONString(buf, s)
		var got string
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Errorf("%q: %s is not a JSON string: %v", s, buf.String(), err)
			continue
		}
		// encoding/json replaces invalid UTF-8 too, so the round trip
		// must give what it gives
		want, _ := json.Marshal(s)
		var wantStr string
		_ = json.Unmarshal(want, &wantStr)
		if got != wantStr {
			t.Errorf("%q round-tripped to %q, want %q", s, got, wantStr)
		}
	}
	buf := buffer.NewPool().Get()
	appendJSONString(buf, "a\"b\\c\nd\x01")
	if got, want := buf.String(), `"a\"b\\c\nd\u0001"`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestAppendCombinedText(t *testing.T) {
	buf := buffer.NewPool().Get()
	appendCombinedText(buf, "Mozilla \"quoted\" \\ tab\t nl\n del\x7f ünï")
	if got, want := buf.String(), `Mozilla \x22quoted\x22 \x5c tab\x09 nl\x0a del\x7f ünï`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestCombinedEscapesFields(t *testing.T) {
	rec := record{
		time:       time.Date(2024, time.January, 2, 3, 4, 5, 0, time.UTC),
		method:     "GET",
		path:       `/a"b`,
		query:      "q=1",
		protocol:   "HTTP/2.0",
		status:     502,
		bodyBytes:  7,
		durationMS: 3,
		clientIP:   "2001:db8::1",
		userAgent:  `evil" 200 0 "x`,
		traceID:    "t-1",
	}
	buf := buffer.NewPool().Get()
	rec.appendCombined(buf)
	want := `2001:db8::1 - - [02/Jan/2024:03:04:05 +0000] "GET /a\x22b?q=1 HTTP/2.0" 502 7 "-" "evil\x22 200 0 \x22x" t-1 3ms`
	if got := buf.String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
