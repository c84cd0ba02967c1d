package framing

import "bytes"

// verdict is what framer.advance found in the bytes it was given.
type verdict uint8

const (
	// more: d[:n] may go to the HTTP server; d[n:] is an unfinished
	// request head, to be given again with the bytes that follow it.
	more verdict = iota
	// pass: the connection leaves HTTP/1 framing at d[n:] (an HTTP/2
	// preface, or bytes no HTTP/1 request starts with): d[n:] and all
	// that follows pass unchecked.
	pass
	// reject: d[n:] starts a malformed request head. d[:n] goes to the
	// server, then a request line it answers 400 to, then nothing.
	reject
	// broken: the chunked body framing broke at d[n:] (Go's parser fails
	// there too). d[:n] goes to the server, then the end of the stream.
	broken
	// tooLarge: the unfinished head d[n:] exceeds the header limit; all
	// of d goes to the server (which answers 431), then nothing.
	tooLarge
)

// reason says why a request was rejected; it is the metric's label.
type reason uint8

const (
	reasonNone reason = iota
	reasonObsFold
	reasonCLAndTE
	reasonTENotChunked
	reasonTERepeated
	reasonTEHTTP10
	reasonBadCL
	reasonCLMismatch
	reasonBadChunk
	reasonConnect
	numReasons
)

// reasonNames are the reason label values.
var reasonNames = [numReasons]string{
	reasonNone:         "none",
	reasonObsFold:      "obs_fold",
	reasonCLAndTE:      "content_length_and_transfer_encoding",
	reasonTENotChunked: "transfer_encoding_not_chunked",
	reasonTERepeated:   "transfer_encoding_repeated",
	reasonTEHTTP10:     "transfer_encoding_http10",
	reasonBadCL:        "bad_content_length",
	reasonCLMismatch:   "content_length_mismatch",
	reasonBadChunk:     "bad_chunked_body",
	reasonConnect:      "connect",
}

// Parser states.
const (
	stHead      uint8 = iota // at (or inside) a request head
	stBody                   // remain bytes of a Content-Length body
	stChunkLine              // a chunk-size line
	stChunkData              // remain bytes of chunk data
	stChunkCR                // the CR after chunk data
	stChunkLF                // the LF after chunk data
	stTrailer                // the trailer section of a chunked body
)

// Chunk-size line phases.
const (
	phDigits uint8 = iota // hex digits
	phWS                  // trailing whitespace
	phExt                 // a chunk extension
	phCR                  // CR seen, LF expected
)

// Watch requests: what the response to the last accepted request that
// may switch protocols must be for the connection to become a tunnel.
const (
	watchNone     int32 = iota
	watchUpgrade        // 101 Switching Protocols
	watchSwitched       // the connection is a tunnel now
)

// Limits of the chunked body's framing lines. Go's own reader refuses
// chunk lines of 4096 bytes and trailers beyond its 4 KiB buffer, so
// these never refuse what Go would accept.
const (
	maxChunkLine = 4096
	maxTrailer   = 8192
)

// head is the scan state of one request head; offsets are relative to
// the head's first byte.
type head struct {
	line   int // start of the current line
	search int // where the search for the current line's LF resumes
	lines  int // complete lines so far (0: the request line is not)

	http10  bool // HTTP/1.0 (or older): Transfer-Encoding is not allowed
	pri     bool // "PRI * HTTP/2.0", the start of the HTTP/2 preface
	connect bool
	upgrade bool
	te      int // Transfer-Encoding lines
	cl      int // Content-Length lines
	clOff   int // the first Content-Length value
	clLen   int
	clVal   uint64
}

// framer follows the HTTP/1.x request stream of one connection: it
// checks each request head and skips each body, so that it knows where
// the next pipelined request starts. It does no I/O and allocates
// nothing.
type framer struct {
	state  uint8
	phase  uint8  // chunk-size line phase
	digits int    // chunk-size hex digits
	size   uint64 // chunk size being parsed
	remain uint64 // body or chunk bytes left
	n      int    // bytes of the current chunk line or trailer section
	tline  int    // bytes of the current trailer line
	tcr    bool   // the trailer line's last byte was CR

	h      head
	limit  int    // largest unfinished head held
	reason reason // why the last reject or broken verdict
	watch  int32  // set when a request that may switch protocols is accepted
}

// advance parses d, which continues the stream where the last call
// stopped, except that an unfinished head (more with n < len(d)) is given
// again from its start.
func (f *framer) advance(d []byte) (int, verdict) {
	i := 0
	for i < len(d) {
		switch f.state {
		case stHead:
			end, v := f.scanHead(d[i:])
			if v != more {
				return i, v
			}
			if end < 0 {
				if len(d)-i > f.limit {
					return i, tooLarge
				}
				return i, more
			}
			i += end
		case stBody, stChunkData:
			k := uint64(len(d) - i)
			if k > f.remain {
				k = f.remain
			}
			i += int(k)
			f.remain -= k
			if f.remain == 0 {
				if f.state == stBody {
					f.state = stHead
				} else {
					f.state = stChunkCR
				}
			}
		default:
			for ; i < len(d) && f.state != stHead && f.state != stChunkData; i++ {
				if !f.chunkByte(d[i]) {
					f.reason = reasonBadChunk
					return i, broken
				}
			}
		}
	}
	return i, more
}

// scanHead scans the head that starts at b[0], resuming where the last
// call stopped. It returns the head's length, or -1 if it is unfinished.
func (f *framer) scanHead(b []byte) (int, verdict) {
	h := &f.h
	if h.search == 0 && !isToken(b[0]) {
		// No request line Go accepts starts so (a method is a token):
		// Go answers 400 and closes. Binary tunnel data (WebSocket
		// frames) after a switch seen late also starts so.
		return 0, pass
	}
	for {
		j := bytes.IndexByte(b[h.search:], '\n')
		if j < 0 {
			h.search = len(b)
			return -1, more
		}
		lf := h.search + j
		end := lf
		if end > h.line && b[end-1] == '\r' {
			end--
		}
		if h.lines > 0 && end == h.line {
			if v := f.endHead(); v != more {
				return 0, v
			}
			f.h = head{}
			return lf + 1, more
		}
		// A line is read once the next one's first byte is known: a
		// folded line (RFC 9112 §5.2) is refused before the line it
		// continues is looked at.
		if lf+1 == len(b) {
			h.search = lf
			return -1, more
		}
		if b[lf+1] == ' ' || b[lf+1] == '\t' {
			return 0, f.rejectHead(reasonObsFold)
		}
		var v verdict
		if h.lines == 0 {
			v = f.requestLine(b[h.line:end])
		} else {
			v = f.headerLine(b, h.line, end)
		}
		if v != more {
			return 0, v
		}
		h.lines++
		h.line, h.search = lf+1, lf+1
	}
}

// rejectHead resets the head state and returns reject.
func (f *framer) rejectHead(r reason) verdict {
	f.h = head{}
	f.reason = r
	return reject
}

// requestLine reads what matters of the request line, split as Go
// splits it. A line Go refuses is let through: Go answers it 400.
func (f *framer) requestLine(line []byte) verdict {
	// The common case: method, target and HTTP/1.1 (a target with a
	// space in it leaves Go a version it refuses).
	if len(line) > len(" HTTP/1.1") && string(line[len(line)-len(" HTTP/1.1"):]) == " HTTP/1.1" {
		f.h.connect = line[0] == 'C' && len(line) > len("CONNECT ") && string(line[:len("CONNECT ")]) == "CONNECT "
		return more
	}
	method, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return more
	}
	uri, proto, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return more
	}
	f.h.pri = string(method) == "PRI" && string(uri) == "*" && string(proto) == "HTTP/2.0"
	if major, minor, ok := httpVersion(proto); ok && (major < 1 || major == 1 && minor == 0) {
		f.h.http10 = true
	}
	f.h.connect = string(method) == "CONNECT"
	return more
}

// headerLine checks the header line b[start:end] (without its line end).
func (f *framer) headerLine(b []byte, start, end int) verdict {
	h := &f.h
	// Go trims ASCII space around the line (SP and HT at its start are
	// a fold, refused above; a CR is not).
	for start < end && b[start] == '\r' {
		start++
	}
	// Only three names matter; Go refuses a name with anything between
	// it and the colon, so the colon's place is known. Other lines cost
	// a byte compare.
	var field string
	switch b[start] | 0x20 {
	case 'c':
		field = "content-length"
	case 't':
		field = "transfer-encoding"
	case 'u':
		field = "upgrade"
	default:
		return more
	}
	colon := start + len(field)
	if colon >= end || b[colon] != ':' || !equalFold(b[start:colon], field) {
		return more
	}
	vs, ve := colon+1, end
	for vs < ve && isSpace(b[vs]) {
		vs++
	}
	for ve > vs && isSpace(b[ve-1]) {
		ve--
	}
	value := b[vs:ve]
	switch field[0] {
	case 'c':
		n, ok := parseLength(value)
		if !ok {
			return f.rejectHead(reasonBadCL)
		}
		if h.cl == 0 {
			h.clOff, h.clLen, h.clVal = vs, ve-vs, n
		} else if !bytes.Equal(value, b[h.clOff:h.clOff+h.clLen]) {
			return f.rejectHead(reasonCLMismatch)
		}
		h.cl++
	case 't':
		h.te++
		if h.te > 1 {
			return f.rejectHead(reasonTERepeated)
		}
		if !equalFold(value, "chunked") {
			return f.rejectHead(reasonTENotChunked)
		}
	case 'u':
		h.upgrade = len(value) > 0
	}
	return more
}

// endHead checks the complete head and sets the body's state.
func (f *framer) endHead() verdict {
	h := &f.h
	if h.pri && h.lines == 1 {
		// The HTTP/2 connection preface (h2c; h2 after TLS is known from
		// ALPN): Go serves HTTP/2 or, if "SM" does not follow, closes
		// after answering it.
		return pass
	}
	switch {
	case h.te > 0 && h.cl > 0:
		return f.rejectHead(reasonCLAndTE)
	case h.te > 0 && h.http10:
		// RFC 9112 §6.1: faulty framing (Go ignores the header).
		return f.rejectHead(reasonTEHTTP10)
	case h.connect:
		// A tunnel request: Caddy's reverse proxy never tunnels an
		// HTTP/1.x CONNECT (it answers it and Go's server goes on
		// reading requests from the connection), so a route would only
		// send the upstream an authority the client chose.
		return f.rejectHead(reasonConnect)
	}
	if h.upgrade {
		f.watch = watchUpgrade
	}
	switch {
	case h.te > 0:
		f.state, f.phase, f.digits, f.size, f.n = stChunkLine, phDigits, 0, 0, 0
	case h.clVal > 0:
		f.state, f.remain = stBody, h.clVal
	}
	return more
}

// chunkByte advances the chunked-body framing by one byte; it reports
// false where Go's chunked reader fails.
func (f *framer) chunkByte(c byte) bool {
	switch f.state {
	case stChunkLine:
		if c == '\n' {
			if f.phase != phCR {
				return false // bare LF
			}
			if f.size == 0 {
				f.state, f.n, f.tline, f.tcr = stTrailer, 0, 0, false
			} else {
				f.state, f.remain = stChunkData, f.size
			}
			return true
		}
		if f.phase == phCR {
			return false // CR not before LF
		}
		if c == '\r' {
			f.phase = phCR
			return f.digits > 0
		}
		if f.n++; f.n >= maxChunkLine {
			return false
		}
		switch f.phase {
		case phDigits:
			if v, ok := unhex(c); ok {
				if f.digits == 16 {
					return false
				}
				f.size = f.size<<4 | uint64(v)
				f.digits++
				return true
			}
			switch {
			case f.digits == 0:
				return false
			case c == ';':
				f.phase = phExt
			case c == ' ' || c == '\t':
				f.phase = phWS
			default:
				return false
			}
		case phWS:
			return c == ' ' || c == '\t'
		}
		return true // extension bytes
	case stChunkCR:
		f.state = stChunkLF
		return c == '\r'
	case stChunkLF:
		f.state, f.phase, f.digits, f.size, f.n = stChunkLine, phDigits, 0, 0, 0
		return c == '\n'
	case stTrailer:
		if f.n++; f.n > maxTrailer {
			return false
		}
		if c == '\n' {
			if f.tline == 0 || f.tline == 1 && f.tcr {
				f.state = stHead // the empty line ends the trailers
			}
			f.tline, f.tcr = 0, false
			return true
		}
		f.tline++
		f.tcr = c == '\r'
		return true
	}
	return false
}

// httpVersion parses "HTTP/x.y" as Go's http.ParseHTTPVersion does.
func httpVersion(v []byte) (major, minor int, ok bool) {
	switch string(v) {
	case "HTTP/1.1":
		return 1, 1, true
	case "HTTP/1.0":
		return 1, 0, true
	}
	if len(v) != len("HTTP/x.y") || string(v[:5]) != "HTTP/" || v[6] != '.' ||
		v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9' {
		return 0, 0, false
	}
	return int(v[5] - '0'), int(v[7] - '0'), true
}

// parseLength parses a Content-Length value as Go does (decimal digits,
// below 2^63).
func parseLength(v []byte) (uint64, bool) {
	if len(v) == 0 || len(v) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, n < 1<<63
}

// unhex is the value of a hex digit.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// isSpace is textproto's ASCII space.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n'
}

// equalFold compares b with the lower-case ASCII s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// isToken reports whether c may appear in a token (RFC 9110 §5.6.2).
func isToken(c byte) bool {
	return tokenTable[c]
}

// tokenTable marks the token bytes.
var tokenTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
