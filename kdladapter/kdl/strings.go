package kdl

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// parseQuoted parses a quoted string starting at p.off, which points at
// '"': a single-line or multi-line string in KDL v2, or a v1 string (which
// may span lines and has no dedent rules).
func (p *parser) parseQuoted() (string, error) {
	if !p.v1 && p.at(`"""`) {
		return p.parseMultiline(p.off, 0, false)
	}
	start := p.off
	p.off++
	// Fast path: no escapes.
	i := p.off
	for i < len(p.src) {
		b := p.src[i]
		if b == '"' {
			s := p.str(p.src[p.off:i])
			p.off = i + 1
			return s, nil
		}
		if b == '\\' || (!p.v1 && newlineLen(p.src, i, false) > 0) {
			break
		}
		i++
	}
	buf := append([]byte(nil), p.src[p.off:i]...)
	p.off = i
	for {
		if p.off >= len(p.src) {
			return "", p.errAt(start, "unterminated string: found end of file, expected '\"'")
		}
		b := p.src[p.off]
		switch {
		case b == '"':
			p.off++
			return string(buf), nil
		case b == '\\':
			var msg string
			esc := p.off
			buf, p.off, msg = unescape(buf, p.src, p.off, p.v1)
			if msg != "" {
				return "", p.errAt(esc, "%s", msg)
			}
		case !p.v1 && newlineLen(p.src, p.off, false) > 0:
			return "", p.errAt(p.off, "unexpected newline in a single-line string, expected '\"' (use \"\"\" for multi-line strings, or the \\n escape)")
		default:
			buf = append(buf, b)
			p.off++
		}
	}
}

// unescape decodes the escape sequence at s[i], which is a backslash, and
// appends the result to buf. It returns the index after the escape, or a
// non-empty message when the escape is invalid. In KDL v2 a backslash
// followed by whitespace or newlines removes all of them.
func unescape(buf, s []byte, i int, v1 bool) ([]byte, int, string) {
	i++
	if i >= len(s) {
		return buf, i, "unterminated escape sequence: found end of file after '\\'"
	}
	switch c := s[i]; c {
	case '"', '\\':
		return append(buf, c), i + 1, ""
	case 'b':
		return append(buf, '\b'), i + 1, ""
	case 'f':
		return append(buf, '\f'), i + 1, ""
	case 'n':
		return append(buf, '\n'), i + 1, ""
	case 'r':
		return append(buf, '\r'), i + 1, ""
	case 't':
		return append(buf, '\t'), i + 1, ""
	case 's':
		if !v1 {
			return append(buf, ' '), i + 1, ""
		}
	case '/':
		if v1 {
			return append(buf, '/'), i + 1, ""
		}
	case 'u':
		return unescapeUnicode(buf, s, i+1)
	}
	if !v1 {
		j := i
		for {
			if n := spaceLen(s, j, false); n > 0 {
				j += n
			} else if n := newlineLen(s, j, false); n > 0 {
				j += n
			} else {
				break
			}
		}
		if j > i {
			return buf, j, ""
		}
	}
	r, _ := utf8.DecodeRune(s[i:])
	valid := `\" \\ \b \f \n \r \t \s \u{...} or '\' before whitespace`
	if v1 {
		valid = `\" \\ \/ \b \f \n \r \t \u{...}`
	}
	return buf, i, fmt.Sprintf("invalid escape sequence '\\' followed by %s, expected one of %s", describeRune(r), valid)
}

// unescapeUnicode decodes the "{hex}" part of a \u{…} escape at s[i].
func unescapeUnicode(buf, s []byte, i int) ([]byte, int, string) {
	if i >= len(s) || s[i] != '{' {
		return buf, i, "invalid unicode escape: expected '{' after \\u"
	}
	i++
	start := i
	var r rune
	for i < len(s) && isHexDigit(s[i]) {
		if i-start == 6 {
			return buf, i, "invalid unicode escape: more than 6 hex digits in \\u{…}"
		}
		r = r<<4 | rune(hexValue(s[i]))
		i++
	}
	if i == start {
		return buf, i, "invalid unicode escape: expected 1 to 6 hex digits in \\u{…}"
	}
	if i >= len(s) || s[i] != '}' {
		return buf, i, "invalid unicode escape: expected '}' after the hex digits of \\u{…}"
	}
	if r >= 0xD800 && r <= 0xDFFF {
		return buf, i, fmt.Sprintf("invalid unicode escape: U+%04X is a surrogate, not a Unicode scalar value", r)
	}
	if r > utf8.MaxRune {
		return buf, i, fmt.Sprintf("invalid unicode escape: U+%X is above the maximum U+10FFFF", r)
	}
	return utf8.AppendRune(buf, r), i + 1, ""
}

// isHexDigit reports whether b is a hexadecimal digit.
func isHexDigit(b byte) bool {
	return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F')
}

// hexValue returns the value of the hexadecimal digit b.
func hexValue(b byte) byte {
	switch {
	case b >= '0' && b <= '9':
		return b - '0'
	case b >= 'a' && b <= 'f':
		return b - 'a' + 10
	default:
		return b - 'A' + 10
	}
}

// rawStart reports whether a raw string starts at p.off and, if so, how
// many '#' delimit it and where its opening quote is.
func (p *parser) rawStart() (hashes, quote int, ok bool) {
	i := p.off
	if p.v1 {
		if i >= len(p.src) || p.src[i] != 'r' {
			return 0, 0, false
		}
		i++
	}
	h := i
	for i < len(p.src) && p.src[i] == '#' {
		i++
	}
	if i >= len(p.src) || p.src[i] != '"' || (!p.v1 && i == h) {
		return 0, 0, false
	}
	return i - h, i, true
}

// parseRaw parses a raw string starting at p.off (v2 #"…"#, #"""…"""#, or
// v1 r"…", r#"…"#).
func (p *parser) parseRaw() (string, error) {
	start := p.off
	hashes, quote, _ := p.rawStart()
	p.off = quote
	if !p.v1 && p.at(`"""`) {
		return p.parseMultiline(start, hashes, true)
	}
	p.off++
	for i := p.off; i < len(p.src); i++ {
		if p.src[i] == '"' && closesRaw(p.src, i+1, hashes) {
			s := string(p.src[p.off:i])
			p.off = i + 1 + hashes
			return s, nil
		}
		if !p.v1 && newlineLen(p.src, i, false) > 0 {
			return "", p.errAt(i, "unexpected newline in a single-line raw string, expected '\"%s' (use #\"\"\" for multi-line raw strings)", strings.Repeat("#", hashes))
		}
	}
	return "", p.errAt(start, "unterminated raw string: found end of file, expected '\"%s'", strings.Repeat("#", hashes))
}

// closesRaw reports whether s[i:] starts with n '#' characters.
func closesRaw(s []byte, i, n int) bool {
	if len(s)-i < n {
		return false
	}
	for k := 0; k < n; k++ {
		if s[i+k] != '#' {
			return false
		}
	}
	return true
}

// parseMultiline parses a KDL v2 multi-line string whose opening """ is at
// p.off; start is where the whole literal starts (its first '#' for raw
// strings). The first newline is dropped, the last line (which must be
// whitespace only) gives the indentation removed from every other line,
// whitespace-only lines become empty, and newlines become "\n". For
// escaped strings, whitespace escapes are applied before the dedent and
// the other escapes after it.
func (p *parser) parseMultiline(start, hashes int, raw bool) (string, error) {
	p.off += 3
	n := p.newlineAt(p.off)
	if n == 0 {
		return "", p.errAt(p.off, "unexpected %s after the opening \"\"\" of a multi-line string, expected a newline", p.describe(p.off))
	}
	p.off += n
	closing := `"""` + strings.Repeat("#", hashes)
	var body []byte
	lineOffs := []int{p.off}
	closed := false
	for p.off < len(p.src) {
		b := p.src[p.off]
		if b == '"' && p.at(closing) {
			p.off += len(closing)
			closed = true
			break
		}
		if n := p.newlineAt(p.off); n > 0 {
			body = append(body, '\n')
			p.off += n
			lineOffs = append(lineOffs, p.off)
			continue
		}
		if b == '\\' && !raw {
			if p.off+1 >= len(p.src) {
				break
			}
			next := p.off + 1
			if spaceLen(p.src, next, false) > 0 || newlineLen(p.src, next, false) > 0 {
				// Whitespace escape: drop the backslash and all the
				// whitespace and newlines after it.
				var msg string
				body, p.off, msg = unescape(body, p.src, p.off, false)
				if msg != "" {
					return "", p.errAt(next, "%s", msg)
				}
				continue
			}
			// Keep other escapes for later, but step over the escaped
			// byte so that \" cannot close the string.
			body = append(body, b, p.src[next])
			p.off += 2
			continue
		}
		body = append(body, b)
		p.off++
	}
	if !closed {
		return "", p.errAt(start, "unterminated multi-line string: found end of file, expected '%s'", closing)
	}
	lines := strings.Split(string(body), "\n")
	// Lines joined by whitespace escapes share a source line; lineOffs
	// has one entry per kept newline, so it matches lines one to one.
	last := len(lines) - 1
	prefix := lines[last]
	if !isSpaceOnly(prefix) {
		return "", p.errAt(lineOffs[last], "multi-line string: the closing %s must be on its own line, preceded only by whitespace", closing)
	}
	if last == 0 {
		return "", nil
	}
	var out []byte
	for i, line := range lines[:last] {
		if i > 0 {
			out = append(out, '\n')
		}
		if isSpaceOnly(line) {
			continue
		}
		if !strings.HasPrefix(line, prefix) {
			return "", p.errAt(lineOffs[i], "multi-line string: line does not start with the indentation of the closing line (%s)", describeIndent(prefix))
		}
		line = line[len(prefix):]
		if raw {
			out = append(out, line...)
			continue
		}
		lb := []byte(line)
		for j := 0; j < len(lb); {
			if lb[j] != '\\' {
				out = append(out, lb[j])
				j++
				continue
			}
			var msg string
			out, j, msg = unescape(out, lb, j, false)
			if msg != "" {
				return "", p.errAt(lineOffs[i], "%s", msg)
			}
		}
	}
	return string(out), nil
}

// isSpaceOnly reports whether s consists of whitespace only.
func isSpaceOnly(s string) bool {
	for _, r := range s {
		if !isUnicodeSpace(r) {
			return false
		}
	}
	return true
}

// describeIndent describes an indentation string for error messages.
func describeIndent(s string) string {
	if s == "" {
		return "no indentation"
	}
	var parts []string
	for _, r := range s {
		switch r {
		case ' ':
			parts = append(parts, "space")
		case '\t':
			parts = append(parts, "tab")
		default:
			parts = append(parts, fmt.Sprintf("U+%04X", r))
		}
	}
	return strings.Join(parts, ", ")
}
