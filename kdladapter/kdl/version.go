package kdl

import (
	"errors"
	"strconv"
)

// Parse parses src, a KDL document of either version. A leading version
// marker ("/- kdl-version 1" or "/- kdl-version 2") decides the version.
// Without one, the document is parsed as KDL v2 and, if that fails, as
// KDL v1. When both fail, the error of the version that reads further is
// returned: KDL v2's (the main format) alone when it reads at least as
// far, else KDL v1's, noting where KDL v2 failed.
// filename is only used in positions.
func Parse(filename string, src []byte) (*Document, error) {
	return parseVersions(filename, src, Options{})
}

// parseVersions is Parse with options.
func parseVersions(filename string, src []byte, opts Options) (*Document, error) {
	if v, _, ok := versionMarker(src); ok {
		return parse(filename, src, v == 1, opts)
	}
	doc, err := parse(filename, src, false, opts)
	if err == nil {
		return doc, nil
	}
	doc, err1 := parse(filename, src, true, opts)
	if err1 == nil {
		return doc, nil
	}
	var e2, e1 *Error
	if errors.As(err, &e2) && errors.As(err1, &e1) {
		if !posAfter(e1.Pos, e2.Pos) {
			// KDL v2 reads at least as far: the file is v2 (or neither),
			// and KDL v1 would only confuse.
			return nil, e2
		}
		// KDL v1 reads further: the file looks like v1.
		note := func(m2 string) string {
			return " (read as KDL v1, which the file looks like; as KDL v2 it fails earlier, at " +
				strconv.Itoa(int(e2.Pos.Line)) + ":" + strconv.Itoa(int(e2.Pos.Col)) + ": " + m2 + ")"
		}
		e := &Error{Pos: e1.Pos, Msg: e1.Msg + note(e2.Msg)}
		if e2.Plain != "" || e1.Plain != "" {
			e.Plain = e1.PlainMsg() + note(e2.PlainMsg())
		}
		return nil, e
	}
	return nil, err
}

// versionMarker finds a version marker ("/- kdl-version N" on a line of its
// own) at the start of src, after an optional byte order mark, blank lines
// and line comments. It returns the version, the marker's offset and
// whether there is one.
func versionMarker(src []byte) (version, off int, ok bool) {
	p := newParser("", src, false)
	if hasBOM(src) {
		p.off = 3
	}
	for p.off < len(src) {
		if n := p.spaceAt(p.off); n > 0 {
			p.off += n
		} else if n := p.newlineAt(p.off); n > 0 {
			p.off += n
		} else if p.at("//") {
			p.skipLineComment()
		} else {
			break
		}
	}
	off = p.off
	if !p.at("/-") {
		return 0, 0, false
	}
	p.off += 2
	p.skipSpaces()
	if !p.at("kdl-version") {
		return 0, 0, false
	}
	p.off += len("kdl-version")
	if p.skipSpaces() == 0 {
		return 0, 0, false
	}
	start := p.off
	for p.off < len(src) && isDigit(src[p.off]) && p.off-start < 9 {
		p.off++
	}
	if p.off == start {
		return 0, 0, false
	}
	v, _ := strconv.Atoi(string(src[start:p.off]))
	p.skipSpaces()
	if p.off < len(src) && p.newlineAt(p.off) == 0 {
		return 0, 0, false
	}
	return v, off, true
}

// skipSpaces consumes whitespace characters (not comments) and returns how
// many bytes it consumed.
func (p *parser) skipSpaces() int {
	start := p.off
	for {
		n := p.spaceAt(p.off)
		if n == 0 {
			return p.off - start
		}
		p.off += n
	}
}

// posAfter reports whether a comes after b in the same file.
func posAfter(a, b Position) bool {
	return a.Line > b.Line || a.Line == b.Line && a.Col > b.Col
}
