package grpcweb

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/sentinel-proxy/sentinel/internal/grpcstatus"
)

// Frame flags of the gRPC-Web body.
const (
	flagTrailer    = 0x80
	frameHeaderLen = 5
)

// responseWriter turns the gRPC response the next handler writes into a
// gRPC-Web response. The next handler gets its own header map; the headers
// are copied (and translated) to the real writer when the header is
// written, and the trailers the next handler sets afterwards (declared in
// `Trailer` or prefixed with http.TrailerPrefix, as net/http has them)
// become the trailer frame.
type responseWriter struct {
	w      http.ResponseWriter
	ct     webContentType
	header http.Header

	wroteHeader bool
	translate   bool // the response is gRPC and is being translated
	trailersOK  bool // trailers-only response: status in the headers
	ended       bool // the trailer frame was written
	declared    []string

	// Frame parser state.
	frameHdr  [frameHeaderLen]byte
	hdrN      int    // bytes of frameHdr read
	remaining uint64 // payload bytes left in the current frame
	inPayload bool

	// Base64 state for -text responses: bytes not yet encoded (< 3).
	pending []byte
	encBuf  []byte
}

func newResponseWriter(w http.ResponseWriter, ct webContentType) *responseWriter {
	return &responseWriter{w: w, ct: ct, header: http.Header{}}
}

// Header returns the header map of the next handler.
func (rw *responseWriter) Header() http.Header { return rw.header }

// WriteHeader translates and writes the response header.
func (rw *responseWriter) WriteHeader(code int) {
	if rw.wroteHeader {
		return
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		// Informational responses go through as they are.
		copyHeader(rw.w.Header(), rw.header)
		rw.w.WriteHeader(code)
		return
	}
	rw.wroteHeader = true
	rw.translate = isGRPC(rw.header.Get("Content-Type"))
	for _, v := range rw.header.Values("Trailer") {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				rw.declared = append(rw.declared, http.CanonicalHeaderKey(name))
			}
		}
	}
	out := rw.w.Header()
	for k, vv := range rw.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		if rw.translate && (k == "Trailer" || k == "Content-Length") {
			continue
		}
		out[k] = slices.Clone(vv)
	}
	if rw.translate {
		out.Set("Content-Type", rw.webContentType())
		rw.trailersOK = rw.header.Get("Grpc-Status") != ""
	}
	rw.w.WriteHeader(code)
}

// webContentType is the gRPC-Web Content-Type of the response: the
// codec of the upstream's response, else of the request.
func (rw *responseWriter) webContentType() string {
	base := "application/grpc-web"
	if rw.ct.text {
		base += "-text"
	}
	mt, _, _ := strings.Cut(rw.header.Get("Content-Type"), ";")
	if codec := strings.TrimPrefix(strings.TrimSpace(strings.ToLower(mt)), "application/grpc"); codec != "" {
		return base + codec
	}
	return base + rw.ct.codec
}

// isGRPC tells whether a Content-Type is gRPC (not gRPC-Web).
func isGRPC(v string) bool {
	mt, _, _ := strings.Cut(v, ";")
	mt = strings.TrimSpace(strings.ToLower(mt))
	return mt == "application/grpc" || strings.HasPrefix(mt, "application/grpc+")
}

// Write passes the body on, base64-encoded for -text, and flushes after
// every complete frame.
func (rw *responseWriter) Write(p []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if !rw.translate {
		return rw.w.Write(p)
	}
	total := len(p)
	for len(p) > 0 {
		if !rw.inPayload {
			n := copy(rw.frameHdr[rw.hdrN:], p)
			if err := rw.out(p[:n]); err != nil {
				return total - len(p), err
			}
			rw.hdrN += n
			p = p[n:]
			if rw.hdrN < frameHeaderLen {
				continue
			}
			rw.hdrN = 0
			rw.remaining = uint64(binary.BigEndian.Uint32(rw.frameHdr[1:]))
			rw.inPayload = true
		} else {
			n := int(min(uint64(len(p)), rw.remaining))
			if err := rw.out(p[:n]); err != nil {
				return total - len(p), err
			}
			rw.remaining -= uint64(n)
			p = p[n:]
		}
		if rw.inPayload && rw.remaining == 0 {
			rw.inPayload = false
			if err := rw.frameDone(); err != nil {
				return total - len(p), err
			}
		}
	}
	return total, nil
}

// out writes body bytes, encoding them for -text; up to two bytes are
// kept back so that base64 padding only ends a frame.
func (rw *responseWriter) out(p []byte) error {
	if !rw.ct.text {
		_, err := rw.w.Write(p)
		return err
	}
	if len(rw.pending)+len(p) < 3 {
		rw.pending = append(rw.pending, p...)
		return nil
	}
	if len(rw.pending) > 0 {
		fill := 3 - len(rw.pending)
		rw.pending = append(rw.pending, p[:fill]...)
		p = p[fill:]
		if err := rw.encode(rw.pending); err != nil {
			return err
		}
		rw.pending = rw.pending[:0]
	}
	whole := len(p) / 3 * 3
	if err := rw.encode(p[:whole]); err != nil {
		return err
	}
	rw.pending = append(rw.pending, p[whole:]...)
	return nil
}

// encode writes p base64-encoded (with padding if len(p) is not a
// multiple of 3).
func (rw *responseWriter) encode(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	n := base64.StdEncoding.EncodedLen(len(p))
	if cap(rw.encBuf) < n {
		rw.encBuf = make([]byte, n)
	}
	buf := rw.encBuf[:n]
	base64.StdEncoding.Encode(buf, p)
	_, err := rw.w.Write(buf)
	return err
}

// frameDone ends a frame: the pending base64 bytes are written with
// padding and the response is flushed.
func (rw *responseWriter) frameDone() error {
	if err := rw.encode(rw.pending); err != nil {
		return err
	}
	rw.pending = rw.pending[:0]
	return rw.FlushError()
}

// FlushError flushes the response (http.ResponseController uses it).
func (rw *responseWriter) FlushError() error {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(rw.w).Flush()
}

// Flush implements http.Flusher.
func (rw *responseWriter) Flush() { _ = rw.FlushError() }

// Unwrap returns the underlying writer, for http.ResponseController.
func (rw *responseWriter) Unwrap() http.ResponseWriter { return rw.w }

// trailers returns the trailers the next handler set.
func (rw *responseWriter) trailers() http.Header {
	t := http.Header{}
	for k, vv := range rw.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			t[http.CanonicalHeaderKey(name)] = append(t[http.CanonicalHeaderKey(name)], vv...)
		}
	}
	for _, k := range rw.declared {
		if vv := rw.header[k]; len(vv) > 0 {
			t[k] = append(t[k], vv...)
		}
	}
	return t
}

// canEnd tells whether a trailer frame can still end the response: it is
// being translated, has not ended, and no frame is cut off.
func (rw *responseWriter) canEnd() bool {
	return rw.wroteHeader && rw.translate && !rw.trailersOK && !rw.ended && !rw.inPayload && rw.hdrN == 0
}

// finish completes the response after the next handler returned.
func (rw *responseWriter) finish() error {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	t := rw.trailers()
	if !rw.translate {
		// Pass the trailers on as net/http has them: declared ones by
		// name, others with the prefix.
		for k, vv := range t {
			if slices.Contains(rw.declared, k) {
				rw.w.Header()[k] = vv
			} else {
				rw.w.Header()[http.TrailerPrefix+k] = vv
			}
		}
		return nil
	}
	if rw.trailersOK || rw.ended {
		return nil
	}
	if !rw.canEnd() {
		// The upstream ended inside a frame: the framing is broken and
		// no trailer frame can be parsed after it.
		panic(http.ErrAbortHandler)
	}
	if t.Get("Grpc-Status") == "" {
		t = statusTrailer(grpcstatus.Internal, "upstream response had no grpc-status trailer (it must be gRPC over HTTP/2)")
	}
	return rw.end(t)
}

// end writes the trailer frame and flushes.
func (rw *responseWriter) end(t http.Header) error {
	rw.ended = true
	frame := trailerFrame(t)
	var err error
	if rw.ct.text {
		err = rw.encode(frame)
	} else {
		_, err = rw.w.Write(frame)
	}
	if err != nil {
		return err
	}
	return rw.FlushError()
}

// trailersOnly answers with a trailers-only gRPC-Web response: HTTP 200
// with the status in the headers and an empty body.
func (rw *responseWriter) trailersOnly(code int, msg string) error {
	h := rw.w.Header()
	h.Set("Content-Type", rw.webContentType())
	h.Set("Grpc-Status", strconv.Itoa(code))
	h.Set("Grpc-Message", grpcstatus.EncodeMessage(msg))
	rw.wroteHeader, rw.translate, rw.trailersOK = true, true, true
	rw.w.WriteHeader(http.StatusOK)
	return nil
}

// trailerFrame encodes trailers as a gRPC-Web trailer frame: flag 0x80,
// big-endian length, then `name: value\r\n` lines with lower-case names,
// grpc-status and grpc-message first.
func trailerFrame(t http.Header) []byte {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	rank := func(k string) int {
		switch strings.ToLower(k) {
		case "grpc-status":
			return 0
		case "grpc-message":
			return 1
		}
		return 2
	}
	slices.SortFunc(keys, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(strings.ToLower(a), strings.ToLower(b))
	})
	var b bytes.Buffer
	b.Write(make([]byte, frameHeaderLen))
	for _, k := range keys {
		for _, v := range t[k] {
			b.WriteString(strings.ToLower(k))
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteString("\r\n")
		}
	}
	frame := b.Bytes()
	frame[0] = flagTrailer
	binary.BigEndian.PutUint32(frame[1:], uint32(len(frame)-frameHeaderLen))
	return frame
}

// copyHeader adds the values of src to dst.
func copyHeader(dst, src http.Header) {
	for k, vv := range src {
		dst[k] = append(dst[k], vv...)
	}
}
