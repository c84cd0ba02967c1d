package kdl

import (
	"fmt"
	"math"
	"math/big"
	"unicode/utf8"
)

// maxDepth bounds the nesting of children blocks, so that hostile input
// cannot exhaust the stack of the recursive parser or printer.
const maxDepth = 1000

// parser holds the state of one parse: the source, the read offset and the
// dialect. It reads bytes directly; there is no separate token stream.
type parser struct {
	file string
	src  []byte
	off  int
	// v1 selects the KDL v1 dialect; otherwise KDL v2.
	v1 bool
	// borrow makes the strings written as they are in the source share
	// its memory (Options.ShareSource).
	borrow bool
	// stubSrc is what the stubs of deferred nodes share (see stub).
	stubSrc *stubSource
	// reload is set while Reparser.Load parses a node again: it parsed
	// once, so the hints for errors (suspectOff) are not needed.
	reload bool
	// depth is the current nesting of children blocks.
	depth int
	// args and props collect the entries of the nodes being parsed.
	args  []Value
	props []Prop

	// suspectOff is where a '}' is probably missing (-1: nowhere yet):
	// the first node that starts a line no more indented than the line
	// that opened its block, in a block whose earlier nodes were indented
	// more. suspectOpen is that block's '{'. Used when the file ends with
	// a block still open.
	suspectOff, suspectOpen int

	// The nodes, values and child lists of a document are carved out of
	// larger blocks (see alloc.go): a configuration of 100,000 routes has
	// millions of them.
	nodeSlab  []Node
	valueSlab []Value
	childSlab []*Node
	// propSlab and extraSlab hold the nodes' properties and extra parts
	// (a node with properties has both).
	propSlab  []Prop
	extraSlab []nodeExtra
	// children collects the nodes of the blocks being parsed.
	children []*Node
	// strs interns the short strings (node names, keywords, repeated
	// values).
	strs map[string]string
	// ints shares the small integers (see shareInt).
	ints map[int64]*big.Int

	// Position cache: the line and column of byte offset pcOff. Positions
	// are asked for mostly in source order, so advancing from the last
	// answer keeps position tracking linear overall.
	pcOff, pcLine, pcCol int

	// deferFn is the Defer option (see ParseWith); top is the top-level
	// node whose children block is being parsed.
	deferFn func(Deferral) bool
	top     *Node
}

// newParser prepares a parser for src.
func newParser(file string, src []byte, v1 bool) *parser {
	return &parser{file: file, src: src, v1: v1, pcLine: 1, pcCol: 1, suspectOff: -1}
}

// pos returns the position of byte offset off.
func (p *parser) pos(off int) Position {
	if off > len(p.src) {
		off = len(p.src)
	}
	if off < p.pcOff {
		p.pcOff, p.pcLine, p.pcCol = 0, 1, 1
	}
	if p.pcOff == 0 && hasBOM(p.src) && off >= 3 {
		// The byte order mark is not a column.
		p.pcOff = 3
	}
	src, i, line, col := p.src, p.pcOff, p.pcLine, p.pcCol
	for i < off {
		// Runs of printable ASCII: one column a byte.
		j := i
		for j < off && src[j]-0x20 < utf8.RuneSelf-0x20 {
			j++
		}
		col += j - i
		if i = j; i >= off {
			break
		}
		b := src[i]
		if b < utf8.RuneSelf {
			switch {
			case b == '\r' && i+1 < len(src) && src[i+1] == '\n':
				// CRLF is one newline: the LF moves to the next line.
			case b == '\n' || b == '\r' || b == '\f' || (b == '\v' && !p.v1):
				line++
				col = 1
			default:
				col++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(src[i:])
		if r == 0x85 || r == 0x2028 || r == 0x2029 {
			line++
			col = 1
		} else {
			col++
		}
		i += size
	}
	p.pcOff, p.pcLine, p.pcCol = i, line, col
	return Position{File: p.file, Line: clamp32(p.pcLine), Col: clamp32(p.pcCol)}
}

// clamp32 converts a line or column to int32, saturating (a file of 2
// GiB is far above any limit of the adapter).
func clamp32(i int) int32 {
	return int32(min(i, math.MaxInt32))
}

// maxIndentScan bounds the look back for the start of a line, so that
// very long lines keep parsing linear.
const maxIndentScan = 1024

// lineIndent returns the indentation of the line holding off (a tab
// counts 4) when only white space precedes off on that line; first is
// false otherwise.
func (p *parser) lineIndent(off int) (indent int, first bool) {
	i := off
	for i > 0 && (p.src[i-1] == ' ' || p.src[i-1] == '\t') {
		i--
	}
	if i > 0 && p.src[i-1] != '\n' && p.src[i-1] != '\r' {
		return 0, false
	}
	for ; i < off; i++ {
		if p.src[i] == '\t' {
			indent += 4
		} else {
			indent++
		}
	}
	return indent, true
}

// openIndent returns the indentation of the line holding the '{' at
// off, or false when the line's start is too far back.
func (p *parser) openIndent(off int) (int, bool) {
	start := off
	for start > 0 && p.src[start-1] != '\n' && p.src[start-1] != '\r' {
		if off-start >= maxIndentScan {
			return 0, false
		}
		start--
	}
	indent := 0
	for i := start; i < off && (p.src[i] == ' ' || p.src[i] == '\t'); i++ {
		if p.src[i] == '\t' {
			indent += 4
		} else {
			indent++
		}
	}
	return indent, true
}

// errAt returns an *Error at byte offset off.
func (p *parser) errAt(off int, format string, args ...any) *Error {
	return &Error{Pos: p.pos(off), Msg: fmt.Sprintf(format, args...)}
}

// errQuoting returns an *Error at byte offset off whose message quotes
// source text; plain is the same message without it.
func (p *parser) errQuoting(off int, plain, format string, args ...any) *Error {
	e := p.errAt(off, format, args...)
	e.Plain = plain
	return e
}

// unexpected returns an error naming what was found at off and what was
// expected there.
func (p *parser) unexpected(off int, expected string) *Error {
	return p.errAt(off, "unexpected %s, expected %s", p.describe(off), expected)
}

// describe names the character at off for error messages.
func (p *parser) describe(off int) string {
	if off >= len(p.src) {
		return "end of file"
	}
	r, _ := utf8.DecodeRune(p.src[off:])
	return describeRune(r)
}

// describeRune names r for error messages.
func describeRune(r rune) string {
	switch r {
	case '\n', '\r', 0x85, 0x2028, 0x2029:
		return "newline"
	case utf8.RuneError:
		return "invalid UTF-8"
	}
	if r < 0x20 || r == 0x7f || isDisallowed(r) || (r > 0x7f && isUnicodeSpace(r)) {
		return fmt.Sprintf("character U+%04X", r)
	}
	return fmt.Sprintf("'%c'", r)
}

// hasBOM reports whether src starts with a UTF-8 byte order mark.
func hasBOM(src []byte) bool {
	return len(src) >= 3 && src[0] == 0xEF && src[1] == 0xBB && src[2] == 0xBF
}

// isUnicodeSpace reports whether r is KDL whitespace that is not a newline.
func isUnicodeSpace(r rune) bool {
	switch r {
	case '\t', ' ', 0xA0, 0x1680, 0x202F, 0x205F, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

// isDisallowed reports whether r may not appear literally in a KDL v2
// document (the byte order mark is checked separately).
func isDisallowed(r rune) bool {
	switch {
	case r <= 0x08, r >= 0x0E && r <= 0x1F, r == 0x7F:
		return true
	case r >= 0xD800 && r <= 0xDFFF:
		return true
	case r == 0x200E, r == 0x200F:
		return true
	case r >= 0x202A && r <= 0x202E:
		return true
	case r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0xFEFF:
		return true
	}
	return false
}

// newlineAt returns the length in bytes of the newline at off, or 0.
func (p *parser) newlineAt(off int) int { return newlineLen(p.src, off, p.v1) }

// spaceAt returns the length in bytes of the whitespace character at off,
// or 0 when there is none.
func (p *parser) spaceAt(off int) int { return spaceLen(p.src, off, p.v1) }

// newlineLen returns the length in bytes of the newline at s[off], or 0.
// CRLF counts as one newline; KDL v1 does not count vertical tab.
func newlineLen(s []byte, off int, v1 bool) int {
	if off >= len(s) {
		return 0
	}
	switch s[off] {
	case '\n', '\f':
		return 1
	case '\v':
		if v1 {
			return 0
		}
		return 1
	case '\r':
		if off+1 < len(s) && s[off+1] == '\n' {
			return 2
		}
		return 1
	case 0xC2:
		if off+1 < len(s) && s[off+1] == 0x85 {
			return 2
		}
	case 0xE2:
		if off+2 < len(s) && s[off+1] == 0x80 && (s[off+2] == 0xA8 || s[off+2] == 0xA9) {
			return 3
		}
	}
	return 0
}

// spaceLen returns the length in bytes of the whitespace (non-newline)
// character at s[off], or 0. KDL v1 also counts the byte order mark.
func spaceLen(s []byte, off int, v1 bool) int {
	if off >= len(s) {
		return 0
	}
	b := s[off]
	if b == ' ' || b == '\t' {
		return 1
	}
	if b < utf8.RuneSelf {
		return 0
	}
	r, size := utf8.DecodeRune(s[off:])
	if isUnicodeSpace(r) || (v1 && r == 0xFEFF) {
		return size
	}
	return 0
}

// isIdentRune reports whether r may appear in a bare identifier of the
// current dialect.
func (p *parser) isIdentRune(r rune) bool {
	if p.v1 {
		return isIdentRuneV1(r)
	}
	return isIdentRuneV2(r)
}

// isIdentRuneV2 reports whether r may appear in a KDL v2 bare identifier.
func isIdentRuneV2(r rune) bool {
	if r < utf8.RuneSelf {
		if r <= ' ' || r == 0x7F {
			return false
		}
		switch r {
		case '\\', '/', '(', ')', '{', '}', ';', '[', ']', '"', '#', '=':
			return false
		}
		return true
	}
	switch r {
	case 0x85, 0x2028, 0x2029, utf8.RuneError:
		return false
	}
	return !isUnicodeSpace(r) && !isDisallowed(r)
}

// isIdentRuneV1 reports whether r may appear in a KDL v1 bare identifier.
func isIdentRuneV1(r rune) bool {
	if r < utf8.RuneSelf {
		if r <= ' ' || r == 0x7F {
			return false
		}
		switch r {
		case '\\', '/', '(', ')', '{', '}', '<', '>', ';', '[', ']', '=', ',', '"':
			return false
		}
		return true
	}
	switch r {
	case 0x85, 0x2028, 0x2029, 0xFEFF, utf8.RuneError:
		return false
	}
	return !isUnicodeSpace(r)
}

// Bit sets of the ASCII characters allowed in bare identifiers, indexed
// by code point (low word 0x00-0x3F, high word 0x40-0x7F). TestIdentMasks
// checks them against isIdentRuneV1 and isIdentRuneV2.
const (
	identV2Lo uint64 = 0xd7ff7cf200000000
	identV2Hi uint64 = 0x57ffffffc7ffffff
	identV1Lo uint64 = 0x87ff6cfa00000000
	identV1Hi uint64 = 0x57ffffffc7ffffff
)

// identEnd returns the end offset of the run of identifier characters
// starting at off.
func (p *parser) identEnd(off int) int {
	lo, hi := identV2Lo, identV2Hi
	if p.v1 {
		lo, hi = identV1Lo, identV1Hi
	}
	for off < len(p.src) {
		b := p.src[off]
		if b < 64 {
			if lo>>b&1 == 0 {
				return off
			}
			off++
			continue
		}
		if b < utf8.RuneSelf {
			if hi>>(b-64)&1 == 0 {
				return off
			}
			off++
			continue
		}
		r, size := utf8.DecodeRune(p.src[off:])
		if !p.isIdentRune(r) {
			return off
		}
		off += size
	}
	return off
}

// checkSource rejects input that is not UTF-8 and, for KDL v2, literal
// code points the specification disallows (including a byte order mark
// anywhere but at the start).
func (p *parser) checkSource() error {
	src := p.src
	start := 0
	if hasBOM(src) {
		start = 3
	}
	for i := start; i < len(src); {
		b := src[i]
		if b < utf8.RuneSelf {
			if !p.v1 && ((b < 0x20 && (b < '\t' || b > '\r')) || b == 0x7F) {
				return p.errAt(i, "disallowed character U+%04X in KDL document", b)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && size == 1 {
			return p.errAt(i, "invalid UTF-8 byte 0x%02X", b)
		}
		if !p.v1 && isDisallowed(r) {
			if r == 0xFEFF {
				return p.errAt(i, "byte order mark (U+FEFF) is only allowed at the start of the document")
			}
			return p.errAt(i, "disallowed character U+%04X in KDL document", r)
		}
		i += size
	}
	return nil
}

// skipBlockComment consumes a (possibly nested) block comment starting at
// p.off, which must point at "/*".
func (p *parser) skipBlockComment() error {
	start := p.off
	p.off += 2
	depth := 1
	for p.off < len(p.src) {
		switch {
		case p.src[p.off] == '*' && p.off+1 < len(p.src) && p.src[p.off+1] == '/':
			p.off += 2
			depth--
			if depth == 0 {
				return nil
			}
		case p.src[p.off] == '/' && p.off+1 < len(p.src) && p.src[p.off+1] == '*':
			p.off += 2
			depth++
		default:
			p.off++
		}
	}
	return p.errAt(start, "unterminated block comment: found end of file, expected '*/'")
}

// skipLineComment consumes a single-line comment starting at p.off (which
// must point at "//") and the newline that ends it, if any.
func (p *parser) skipLineComment() {
	p.off += 2
	for p.off < len(p.src) {
		if n := p.newlineAt(p.off); n > 0 {
			p.off += n
			return
		}
		p.off++
	}
}

// skipWS consumes whitespace and block comments. It reports whether it
// consumed anything.
func (p *parser) skipWS() (bool, error) {
	start := p.off
	src, off := p.src, p.off
scan:
	for off < len(src) {
		switch b := src[off]; {
		case b == ' ' || b == '\t':
			off++
		case b == '/' && off+1 < len(src) && src[off+1] == '*':
			p.off = off
			if err := p.skipBlockComment(); err != nil {
				return false, err
			}
			off = p.off
		case b >= utf8.RuneSelf:
			n := spaceLen(src, off, p.v1)
			if n == 0 {
				break scan
			}
			off += n
		default:
			break scan
		}
	}
	p.off = off
	return off > start, nil
}

// skipNodeSpace consumes node-space: whitespace, block comments and line
// continuations (a backslash followed by optional whitespace and a line
// comment, a newline or the end of the file). It reports whether it
// consumed anything.
func (p *parser) skipNodeSpace() (bool, error) {
	start := p.off
	for {
		if _, err := p.skipWS(); err != nil {
			return false, err
		}
		if p.off >= len(p.src) || p.src[p.off] != '\\' {
			return p.off > start, nil
		}
		esc := p.off
		p.off++
		if _, err := p.skipWS(); err != nil {
			return false, err
		}
		switch {
		case p.off >= len(p.src):
		case p.at("//"):
			p.skipLineComment()
		case p.newlineAt(p.off) > 0:
			p.off += p.newlineAt(p.off)
		default:
			return false, p.errAt(p.off, "unexpected %s after line continuation '\\' at column %d, expected a newline or a comment",
				p.describe(p.off), p.pos(esc).Col)
		}
	}
}

// skipLineSpace consumes node-space, newlines and line comments.
func (p *parser) skipLineSpace() error {
	for {
		if _, err := p.skipNodeSpace(); err != nil {
			return err
		}
		if n := p.newlineAt(p.off); n > 0 {
			p.off += n
			continue
		}
		if p.at("//") {
			p.skipLineComment()
			continue
		}
		return nil
	}
}

// at reports whether the source at p.off starts with s.
func (p *parser) at(s string) bool {
	return len(p.src)-p.off >= len(s) && string(p.src[p.off:p.off+len(s)]) == s
}
