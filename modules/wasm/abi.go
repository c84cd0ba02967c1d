package wasm

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"

	"github.com/sentinel-proxy/sentinel/modules/routematch"
)

// The Sentinel ABI, version 1 (docs/wasm.md): import module
// "sentinel_v1", revision 1.2. Revisions only add imports and hooks, so a
// plugin built for an earlier one keeps working; a plugin that uses an
// addition fails to load, with an error naming it, on a Sentinel without.
const (
	// hostModule is the import module of the host functions.
	hostModule = "sentinel_v1"

	hookRequestHeaders  = "on_request_headers"
	hookRequestBody     = "on_request_body"
	hookResponseHeaders = "on_response_headers"
	// hookResponseBody is an addition of revision 1.2.
	hookResponseBody = "on_response_body"

	// header kinds
	kindRequest  = 0
	kindResponse = 1

	// decision kinds
	decisionAllow    = 0
	decisionBlock    = 1
	decisionRedirect = 2

	// fields of get_tls (revision 1.2)
	tlsVersion       = 0
	tlsCipherSuite   = 1
	tlsServerName    = 2
	tlsALPN          = 3
	tlsClientSubject = 4
	tlsClientSHA256  = 5
)

// errOutOfRange is the trap of a host function given a pointer and length
// outside the guest's memory.
var errOutOfRange = errors.New("sentinel_v1: memory access out of range")

// maxHostBytes bounds the bytes a plugin hands the host during one
// request's hooks through the functions whose results the host keeps
// (set_header, add_header, remove_header, add_response_header, log): the
// memory limit bounds the guest's own memory, not the host's copies, and
// a loop of add_header calls with a 16 MiB value piled up hundreds of
// MiB of headers per request within one deadline. A plugin that goes
// over traps (failure_mode applies).
const maxHostBytes = 1 << 20

// errHostBytes is the trap of a plugin that went over maxHostBytes.
var errHostBytes = errors.New("sentinel_v1: more than 1 MiB of header names, values and log messages in one request")

// validHeader returns the header field of a host call, or traps when its
// name is not a token or its value holds a control character (CR, LF,
// NUL): such a field would end the header line where the guest chose
// (response splitting, or request smuggling on the upstream connection)
// on any writer that does not check it. The value is not repeated in
// the error (it may be a credential).
func validHeader(fn string, name, value []byte) (string, string) {
	n, v := string(name), string(value)
	if !httpguts.ValidHeaderFieldName(n) {
		panic(fmt.Errorf("sentinel_v1: %s: header name %q is not a valid field name", fn, n))
	}
	if !httpguts.ValidHeaderFieldValue(v) {
		panic(fmt.Errorf("sentinel_v1: %s: the value of header %q holds a control character (CR, LF, NUL…)", fn, n))
	}
	return n, v
}

// stateKey is the context key of the *callState of a hook call.
type stateKey struct{}

// decision is what a plugin decided during one hook call.
type decision struct {
	kind     int
	status   int
	body     []byte
	location string
	headers  http.Header
}

// callState is the host side of one hook call (or of an instantiation).
type callState struct {
	plugin  *Plugin
	config  []byte
	r       *http.Request
	resp    http.Header
	status  int
	body    []byte
	hasBody bool
	d       decision
	// spent is what the request's hooks handed the host so far (see
	// maxHostBytes).
	spent uint64
}

// spend counts n bytes (lengths given by the guest, before they are
// read) against maxHostBytes, and traps past it.
func (s *callState) spend(lengths ...uint64) {
	for _, n := range lengths {
		s.spent += uint64(uint32(n))
	}
	if s.spent > maxHostBytes {
		panic(errHostBytes)
	}
}

// reset prepares s for the hooks of a new request.
func (s *callState) reset(r *http.Request, resp http.Header) {
	*s = callState{plugin: s.plugin, config: s.config, r: r, resp: resp}
}

func state(ctx context.Context) *callState {
	return ctx.Value(stateKey{}).(*callState)
}

func read(mod api.Module, ptr, n uint64) []byte {
	b, ok := mod.Memory().Read(uint32(ptr), uint32(n))
	if !ok {
		panic(errOutOfRange)
	}
	return b
}

// writeOut copies data to the guest buffer if it fits and returns its
// length, so that the guest can retry with a larger buffer.
func writeOut(mod api.Module, ptr, n uint64, data []byte) uint64 {
	if len(data) <= int(uint32(n)) && len(data) > 0 {
		if !mod.Memory().Write(uint32(ptr), data) {
			panic(errOutOfRange)
		}
	}
	return uint64(uint32(int32(len(data))))
}

const absent = uint64(0xFFFFFFFF) // -1 as i32

// headers returns the header set of kind.
func (s *callState) headers(kind uint64) http.Header {
	if uint32(kind) == kindResponse {
		return s.resp
	}
	return s.r.Header
}

// instantiateHostModule links the "sentinel_v1" host functions into rt
// and returns their names.
func instantiateHostModule(ctx context.Context, rt wazero.Runtime) (map[string]bool, error) {
	names := make(map[string]bool, 32)
	i32 := api.ValueTypeI32
	b := rt.NewHostModuleBuilder(hostModule)
	fn := func(name string, f api.GoModuleFunc, params []api.ValueType, results ...api.ValueType) {
		names[name] = true
		b.NewFunctionBuilder().WithGoModuleFunction(f, params, results).Export(name)
	}
	p := func(ts ...api.ValueType) []api.ValueType { return ts }

	// get_header(kind, name_ptr, name_len, buf_ptr, buf_len) -> len | -1
	fn("get_header", func(ctx context.Context, mod api.Module, st []uint64) {
		s := state(ctx)
		vs := s.headers(st[0])[http.CanonicalHeaderKey(string(read(mod, st[1], st[2])))]
		if len(vs) == 0 {
			st[0] = absent
			return
		}
		st[0] = writeOut(mod, st[3], st[4], []byte(vs[0]))
	}, p(i32, i32, i32, i32, i32), i32)
	// set_header(kind, name_ptr, name_len, value_ptr, value_len)
	fn("set_header", func(ctx context.Context, mod api.Module, st []uint64) {
		s := state(ctx)
		s.spend(st[2], st[4])
		s.headers(st[0]).Set(validHeader("set_header", read(mod, st[1], st[2]), read(mod, st[3], st[4])))
	}, p(i32, i32, i32, i32, i32))
	// add_header(kind, name_ptr, name_len, value_ptr, value_len)
	fn("add_header", func(ctx context.Context, mod api.Module, st []uint64) {
		s := state(ctx)
		s.spend(st[2], st[4])
		s.headers(st[0]).Add(validHeader("add_header", read(mod, st[1], st[2]), read(mod, st[3], st[4])))
	}, p(i32, i32, i32, i32, i32))
	// remove_header(kind, name_ptr, name_len)
	fn("remove_header", func(ctx context.Context, mod api.Module, st []uint64) {
		s := state(ctx)
		s.spend(st[2])
		s.headers(st[0]).Del(string(read(mod, st[1], st[2])))
	}, p(i32, i32, i32))
	// get_method(buf_ptr, buf_len) -> len
	fn("get_method", func(ctx context.Context, mod api.Module, st []uint64) {
		st[0] = writeOut(mod, st[0], st[1], []byte(state(ctx).r.Method))
	}, p(i32, i32), i32)
	// get_path(buf_ptr, buf_len) -> len: the normalised path, the one
	// route matching evaluates (decoded, dot segments resolved, repeated
	// slashes merged)
	fn("get_path", func(ctx context.Context, mod api.Module, st []uint64) {
		st[0] = writeOut(mod, st[0], st[1], []byte(routematch.RequestPath(state(ctx).r)))
	}, p(i32, i32), i32)
	// get_raw_path(buf_ptr, buf_len) -> len: the path as received (still
	// percent-encoded, not normalised), as the upstream gets it; added
	// to sentinel_v1 without breaking plugins that do not import it
	fn("get_raw_path", func(ctx context.Context, mod api.Module, st []uint64) {
		st[0] = writeOut(mod, st[0], st[1], []byte(state(ctx).r.URL.EscapedPath()))
	}, p(i32, i32), i32)
	// Revision 1.2: the query string, the client, the route, TLS.

	// get_query(buf_ptr, buf_len) -> len: the raw query string, without
	// the "?" (still percent-encoded; 0 when none)
	fn("get_query", func(ctx context.Context, mod api.Module, st []uint64) {
		st[0] = writeOut(mod, st[0], st[1], []byte(state(ctx).r.URL.RawQuery))
	}, p(i32, i32), i32)
	// get_client_addr(buf_ptr, buf_len) -> len: the connection's peer,
	// "ip:port"
	fn("get_client_addr", func(ctx context.Context, mod api.Module, st []uint64) {
		st[0] = writeOut(mod, st[0], st[1], []byte(state(ctx).r.RemoteAddr))
	}, p(i32, i32), i32)
	// get_client_ip(buf_ptr, buf_len) -> len: the client's IP as the
	// server determined it (the peer's, or the one a trusted proxy
	// forwarded)
	fn("get_client_ip", func(ctx context.Context, mod api.Module, st []uint64) {
		st[0] = writeOut(mod, st[0], st[1], []byte(clientIP(state(ctx).r)))
	}, p(i32, i32), i32)
	// get_route_id(buf_ptr, buf_len) -> len | -1: the id of the route
	// the handler serves (the KDL adapter sets it), -1 when unknown
	fn("get_route_id", func(ctx context.Context, mod api.Module, st []uint64) {
		s := state(ctx)
		if s.plugin.route == "" {
			st[0] = absent
			return
		}
		st[0] = writeOut(mod, st[0], st[1], []byte(s.plugin.route))
	}, p(i32, i32), i32)
	// get_tls(field, buf_ptr, buf_len) -> len | -1: a fact of the
	// connection's TLS (-1 on plain HTTP, or for a client certificate
	// field without a client certificate)
	fn("get_tls", func(ctx context.Context, mod api.Module, st []uint64) {
		v, ok := tlsFact(state(ctx).r.TLS, uint32(st[0]))
		if !ok {
			st[0] = absent
			return
		}
		st[0] = writeOut(mod, st[1], st[2], []byte(v))
	}, p(i32, i32, i32), i32)
	// get_status() -> status (0 before the response phase)
	fn("get_status", func(ctx context.Context, mod api.Module, st []uint64) {
		st[0] = uint64(state(ctx).status)
	}, nil, i32)
	// read_body(buf_ptr, buf_len) -> len | -1: the buffered request body
	// in on_request_body, the buffered response body in on_response_body
	// (revision 1.2), -1 elsewhere
	fn("read_body", func(ctx context.Context, mod api.Module, st []uint64) {
		s := state(ctx)
		if !s.hasBody {
			st[0] = absent
			return
		}
		st[0] = writeOut(mod, st[0], st[1], s.body)
	}, p(i32, i32), i32)
	// get_config(buf_ptr, buf_len) -> len
	fn("get_config", func(ctx context.Context, mod api.Module, st []uint64) {
		st[0] = writeOut(mod, st[0], st[1], state(ctx).config)
	}, p(i32, i32), i32)
	// log(level, msg_ptr, msg_len)
	fn("log", func(ctx context.Context, mod api.Module, st []uint64) {
		s := state(ctx)
		s.spend(st[2])
		msg := string(read(mod, st[1], st[2]))
		switch uint32(st[0]) {
		case 0:
			s.plugin.logger.Debug(msg)
		case 1:
			s.plugin.logger.Info(msg)
		case 2:
			s.plugin.logger.Warn(msg)
		default:
			s.plugin.logger.Error(msg, zap.String("source", "plugin"))
		}
	}, p(i32, i32, i32))
	// set_decision(kind, status)
	fn("set_decision", func(ctx context.Context, mod api.Module, st []uint64) {
		s := state(ctx)
		k := int(uint32(st[0]))
		if k > decisionRedirect {
			k = decisionBlock
		}
		s.d.kind, s.d.status = k, int(uint32(st[1]))
	}, p(i32, i32))
	// set_body(ptr, len): the body of a block response
	fn("set_body", func(ctx context.Context, mod api.Module, st []uint64) {
		state(ctx).d.body = append([]byte(nil), read(mod, st[0], st[1])...)
	}, p(i32, i32))
	// set_location(ptr, len): the target of a redirect
	fn("set_location", func(ctx context.Context, mod api.Module, st []uint64) {
		_, state(ctx).d.location = validHeader("set_location", []byte("Location"), read(mod, st[0], st[1]))
	}, p(i32, i32))
	// add_response_header(name_ptr, name_len, value_ptr, value_len): a
	// header of the block or redirect response
	fn("add_response_header", func(ctx context.Context, mod api.Module, st []uint64) {
		s := state(ctx)
		s.spend(st[1], st[3])
		if s.d.headers == nil {
			s.d.headers = make(http.Header)
		}
		s.d.headers.Add(validHeader("add_response_header", read(mod, st[0], st[1]), read(mod, st[2], st[3])))
	}, p(i32, i32, i32, i32))

	_, err := b.Instantiate(ctx)
	return names, err
}
