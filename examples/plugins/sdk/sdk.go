//go:build wasip1

// Package sdk is the guest SDK for Sentinel WASM plugins written in Go. It
// wraps the host functions of the "sentinel_v1" ABI (see docs/wasm.md).
//
// A plugin is a `package main` built as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm .
//
// and exports its hooks itself with `//go:wasmexport on_request_headers`
// (and optionally `on_request_body`, `on_response_headers`,
// `on_response_body`); a hook takes no
// arguments and returns nothing: it reports its decision with [Block],
// [Redirect] or nothing at all (allow).
package sdk

import (
	"fmt"
	"os"
	"unsafe"

	"github.com/sentinel-proxy/sentinel/agents/sdk/sdkconfig"
)

// Kind selects the header set a header function works on.
type Kind uint32

const (
	// Request is the request's header set.
	Request Kind = 0
	// Response is the response's header set (response phase, or headers
	// added to the proxied response when set in the request phase).
	Response Kind = 1
)

// Log levels for [Log].
const (
	LevelDebug uint32 = 0
	LevelInfo  uint32 = 1
	LevelWarn  uint32 = 2
	LevelError uint32 = 3
)

//go:wasmimport sentinel_v1 get_header
func getHeader(kind uint32, name unsafe.Pointer, nameLen uint32, buf unsafe.Pointer, bufLen uint32) int32

//go:wasmimport sentinel_v1 set_header
func setHeader(kind uint32, name unsafe.Pointer, nameLen uint32, value unsafe.Pointer, valueLen uint32)

//go:wasmimport sentinel_v1 add_header
func addHeader(kind uint32, name unsafe.Pointer, nameLen uint32, value unsafe.Pointer, valueLen uint32)

//go:wasmimport sentinel_v1 remove_header
func removeHeader(kind uint32, name unsafe.Pointer, nameLen uint32)

//go:wasmimport sentinel_v1 get_method
func getMethod(buf unsafe.Pointer, bufLen uint32) int32

//go:wasmimport sentinel_v1 get_path
func getPath(buf unsafe.Pointer, bufLen uint32) int32

//go:wasmimport sentinel_v1 get_raw_path
func getRawPath(buf unsafe.Pointer, bufLen uint32) int32

//go:wasmimport sentinel_v1 get_query
func getQuery(buf unsafe.Pointer, bufLen uint32) int32

//go:wasmimport sentinel_v1 get_client_addr
func getClientAddr(buf unsafe.Pointer, bufLen uint32) int32

//go:wasmimport sentinel_v1 get_client_ip
func getClientIP(buf unsafe.Pointer, bufLen uint32) int32

//go:wasmimport sentinel_v1 get_route_id
func getRouteID(buf unsafe.Pointer, bufLen uint32) int32

//go:wasmimport sentinel_v1 get_tls
func getTLS(field uint32, buf unsafe.Pointer, bufLen uint32) int32

//go:wasmimport sentinel_v1 get_status
func getStatus() int32

//go:wasmimport sentinel_v1 read_body
func readBody(buf unsafe.Pointer, bufLen uint32) int32

//go:wasmimport sentinel_v1 get_config
func getConfig(buf unsafe.Pointer, bufLen uint32) int32

//go:wasmimport sentinel_v1 log
func logMsg(level uint32, msg unsafe.Pointer, msgLen uint32)

//go:wasmimport sentinel_v1 set_decision
func setDecision(kind uint32, status uint32)

//go:wasmimport sentinel_v1 set_body
func setBody(body unsafe.Pointer, bodyLen uint32)

//go:wasmimport sentinel_v1 set_location
func setLocation(loc unsafe.Pointer, locLen uint32)

//go:wasmimport sentinel_v1 add_response_header
func addResponseHeader(name unsafe.Pointer, nameLen uint32, value unsafe.Pointer, valueLen uint32)

func sp(s string) (unsafe.Pointer, uint32) {
	return unsafe.Pointer(unsafe.StringData(s)), uint32(len(s))
}

// buf is reused by the getters: a plugin instance handles one call at a time.
var buf = make([]byte, 512)

// read calls a getter that copies at most len(buf) bytes and returns the
// full length (or -1), growing the buffer and retrying when needed.
func read(get func(unsafe.Pointer, uint32) int32) ([]byte, bool) {
	n := get(unsafe.Pointer(&buf[0]), uint32(len(buf)))
	if n < 0 {
		return nil, false
	}
	if int(n) > len(buf) {
		buf = make([]byte, n)
		n = get(unsafe.Pointer(&buf[0]), uint32(len(buf)))
	}
	return buf[:n], true
}

// GetHeader returns the first value of the named header, and whether it
// is present.
func GetHeader(kind Kind, name string) (string, bool) {
	np, nl := sp(name)
	b, ok := read(func(p unsafe.Pointer, l uint32) int32 { return getHeader(uint32(kind), np, nl, p, l) })
	return string(b), ok
}

// SetHeader replaces the named header.
func SetHeader(kind Kind, name, value string) {
	np, nl := sp(name)
	vp, vl := sp(value)
	setHeader(uint32(kind), np, nl, vp, vl)
}

// AddHeader adds a value to the named header.
func AddHeader(kind Kind, name, value string) {
	np, nl := sp(name)
	vp, vl := sp(value)
	addHeader(uint32(kind), np, nl, vp, vl)
}

// RemoveHeader removes the named header.
func RemoveHeader(kind Kind, name string) {
	np, nl := sp(name)
	removeHeader(uint32(kind), np, nl)
}

// Method returns the request method.
func Method() string {
	b, _ := read(getMethod)
	return string(b)
}

// Path returns the request's normalised path, the one route matching
// evaluates: percent-decoded, `.` and `..` segments resolved, repeated
// slashes merged (`/api/%73ecret`, `/api//secret`, `/api/x/../secret` are
// all `/api/secret`). Judge paths by it.
func Path() string {
	b, _ := read(getPath)
	return string(b)
}

// RawPath returns the path as received (still percent-encoded, not
// normalised), as the upstream gets it: use it to refuse ambiguous
// spellings, not to match. It needs a Sentinel whose sentinel_v1 has
// get_raw_path; on an older one a plugin that calls it fails to load.
func RawPath() string {
	b, _ := read(getRawPath)
	return string(b)
}

// Query returns the raw query string, without "?" (revision 1.2: a
// plugin that calls it needs a Sentinel with sentinel_v1 1.2).
func Query() string {
	b, _ := read(getQuery)
	return string(b)
}

// ClientAddr returns the connection's peer, "ip:port" (revision 1.2).
func ClientAddr() string {
	b, _ := read(getClientAddr)
	return string(b)
}

// ClientIP returns the client's IP as the server determined it: the
// peer's, or the one a trusted proxy forwarded (revision 1.2).
func ClientIP() string {
	b, _ := read(getClientIP)
	return string(b)
}

// RouteID returns the id of the route the handler serves, and false
// when it is unknown (revision 1.2).
func RouteID() (string, bool) {
	b, ok := read(getRouteID)
	return string(b), ok
}

// TLS fields for [TLSFact].
const (
	TLSVersion       uint32 = 0
	TLSCipherSuite   uint32 = 1
	TLSServerName    uint32 = 2
	TLSALPN          uint32 = 3
	TLSClientSubject uint32 = 4
	TLSClientSHA256  uint32 = 5
)

// TLSFact returns a fact of the connection's TLS, and false on plain
// HTTP (or, for the client certificate fields, without one) (revision
// 1.2).
func TLSFact(field uint32) (string, bool) {
	b, ok := read(func(p unsafe.Pointer, l uint32) int32 { return getTLS(field, p, l) })
	return string(b), ok
}

// Status returns the response status (0 before the response phase).
func Status() int { return int(getStatus()) }

// Body returns the buffered request body (in on_request_body) or
// response body (in on_response_body, revision 1.2), and false when no
// body is available.
func Body() ([]byte, bool) {
	b, ok := read(readBody)
	if !ok {
		return nil, false
	}
	return append([]byte(nil), b...), true
}

// Config returns the plugin's JSON configuration; it is available from
// the first call, including package init functions.
func Config() []byte {
	b, _ := read(getConfig)
	return append([]byte(nil), b...)
}

// DecodeConfig decodes the plugin's JSON configuration into v strictly:
// unknown keys and values of the wrong type are errors naming the key,
// and a single value where a list is expected says how to write a
// one-element list in KDL (`allow (list)"/api"`). Call it from init and
// pass a non-nil error to Fail, so that a bad config fails the load
// instead of, say, blocking every request.
func DecodeConfig(v any) error {
	return sdkconfig.Decode(Config(), v)
}

// Fail ends the plugin with err: the message goes to stderr, which
// Sentinel puts into the error of the instantiation, and the plugin
// exits. Called from init (a bad config), it makes the config load fail
// with the message; during a request, the plugin's failure mode applies.
func Fail(err error) {
	fmt.Fprintf(os.Stderr, "%v\n", err)
	os.Exit(1)
}

// Log writes a message to Sentinel's log at the given level.
func Log(level uint32, msg string) {
	p, l := sp(msg)
	logMsg(level, p, l)
}

// Allow lets the request continue (the default when a hook decides nothing).
func Allow() { setDecision(0, 0) }

// Block answers the request with status and body, instead of passing it on.
func Block(status int, body string) {
	setDecision(1, uint32(status))
	p, l := sp(body)
	setBody(p, l)
}

// Redirect answers the request with a redirect to location (status 0
// means 302).
func Redirect(status int, location string) {
	setDecision(2, uint32(status))
	p, l := sp(location)
	setLocation(p, l)
}

// AddResponseHeader adds a header to the response of a Block or Redirect.
func AddResponseHeader(name, value string) {
	np, nl := sp(name)
	vp, vl := sp(value)
	addResponseHeader(np, nl, vp, vl)
}
