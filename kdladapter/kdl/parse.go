package kdl

import "strconv"

// ParseV2 parses src as a KDL 2.0.0 document. filename is only used in
// positions. Errors are of type *Error.
func ParseV2(filename string, src []byte) (*Document, error) {
	return parse(filename, src, false, Options{})
}

// ParseV1 parses src as a KDL 1.0.0 document: keywords are bare (true,
// false, null), raw strings are r"…" and r#"…"#, string values must be
// quoted, and no whitespace is allowed inside type annotations or around
// a property's '='. filename is only used in positions. Errors are of
// type *Error.
func ParseV1(filename string, src []byte) (*Document, error) {
	return parse(filename, src, true, Options{})
}

// parse parses a whole document in the given dialect.
func parse(filename string, src []byte, v1 bool, opts Options) (*Document, error) {
	p := newParser(filename, src, v1)
	p.deferFn = opts.Defer
	p.borrow = opts.ShareSource
	version := 2
	if v1 {
		version = 1
	}
	if err := p.checkSource(); err != nil {
		return nil, err
	}
	if v, off, ok := versionMarker(src); ok && v != version {
		if v == 1 || v == 2 {
			return nil, p.errAt(off, "the document declares kdl-version %d but is being parsed as KDL v%d", v, version)
		}
		return nil, p.errAt(off, "unsupported kdl-version %d, expected 1 or 2", v)
	}
	if hasBOM(src) {
		p.off = 3
	}
	nodes, err := p.parseNodes(-1)
	if err != nil {
		return nil, err
	}
	return &Document{Nodes: nodes, Version: version}, nil
}

// parseNodes parses nodes up to the end of the input or, inside a children
// block opened at byte offset open (>= 0), up to the closing '}', which is
// left unconsumed.
func (p *parser) parseNodes(open int) ([]*Node, error) {
	// The nodes are collected in p.children (the blocks inside this one
	// use it above them) and copied out once complete.
	base := len(p.children)
	defer func() { p.children = p.children[:base] }()
	done := func() []*Node {
		if len(p.children) == base {
			return nil
		}
		return p.copyNodes(p.children[base:])
	}
	openIndent, indented, known := 0, false, false
	if open >= 0 && !p.reload {
		openIndent, known = p.openIndent(open)
	}
	for {
		if err := p.skipLineSpace(); err != nil {
			return nil, err
		}
		if p.off >= len(p.src) {
			if open >= 0 {
				return nil, p.unclosed(open)
			}
			return done(), nil
		}
		if p.src[p.off] == '}' {
			if open >= 0 {
				return done(), nil
			}
			return nil, p.errAt(p.off, "unexpected '}' outside of a children block, expected a node")
		}
		if p.at("/-") {
			p.off += 2
			if err := p.skipLineSpace(); err != nil {
				return nil, err
			}
			if p.off >= len(p.src) || p.src[p.off] == '}' {
				return nil, p.unexpected(p.off, "a node after slashdash '/-'")
			}
			if _, err := p.parseNode(); err != nil {
				return nil, err
			}
			continue
		}
		if known && p.suspectOff < 0 {
			// A node that starts a line no deeper than the block's
			// opening line, after deeper ones: the block was probably
			// meant to end before it.
			if ind, first := p.lineIndent(p.off); first && ind > openIndent {
				indented = true
			} else if first && indented {
				p.suspectOff, p.suspectOpen = p.off, open
			}
		}
		if p.depth == 1 && p.deferFn != nil {
			n, err := p.parseDeferrable()
			if err != nil {
				return nil, err
			}
			p.children = append(p.children, n)
			continue
		}
		n, err := p.parseNode()
		if err != nil {
			return nil, err
		}
		p.children = append(p.children, n)
	}
}

// parseDeferrable parses a node of a top-level node's children block and
// returns it, or its stub when the Defer option says so.
func (p *parser) parseDeferrable() (*Node, error) {
	start := p.off
	pos := p.pos(start)
	nodes, values, children := p.nodeSlab, p.valueSlab, p.childSlab
	props, extras := p.propSlab, p.extraSlab
	n, err := p.parseNode()
	if err != nil {
		return nil, err
	}
	version := 2
	if p.v1 {
		version = 1
	}
	stub := p.stub(n, start, pos)
	if p.deferFn(Deferral{Parent: p.top, Node: n, Stub: stub, Version: version}) {
		release(n)
		p.nodeSlab = reuse(nodes, p.nodeSlab)
		p.valueSlab = reuse(values, p.valueSlab)
		p.childSlab = reuse(children, p.childSlab)
		p.propSlab = reuse(props, p.propSlab)
		p.extraSlab = reuse(extras, p.extraSlab)
		return stub, nil
	}
	return n, nil
}

// reuse gives back the part of an allocation block a deferred node
// used (nothing refers to it once the node is released): before is the
// block as it was when the node started, after as it is now. The next
// node is parsed into the same memory, cleared, instead of new blocks.
// When the node started a new block, all of it is the node's.
func reuse[T any](before, after []T) []T {
	if cap(before) > 0 && cap(after) == cap(before) && len(after) >= len(before) && &after[:1][0] == &before[:1][0] {
		clear(after[len(before):])
		return after[:len(before)]
	}
	clear(after)
	return after[:0]
}

// release clears a deferred node and its tree. They are parts of larger
// blocks (alloc.go) that the collector scans whole while any node of
// theirs is in use: a dead node still pointing at its children would keep
// the blocks of the nodes after it alive, one block to the next, and so
// the whole document.
func release(n *Node) {
	for _, c := range n.Children {
		release(c)
	}
	clear(n.Children)
	*n = Node{}
}

// unclosed reports a children block opened at open that never closes.
// Where the indentation shows the '}' that is missing (see suspectOff),
// the error is there rather than at the end of the file, which may be
// far from it.
func (p *parser) unclosed(open int) *Error {
	at := p.pos(open)
	if p.suspectOff >= 0 {
		sus := p.pos(p.suspectOpen)
		end := p.pos(len(p.src) - 1) // the last line, not the one after a final newline
		return p.errAt(p.suspectOff, "missing '}' before this line, to close the children block opened at line %d, column %d (going by the indentation: the file ends at line %d with the block opened at line %d, column %d still open)", sus.Line, sus.Col, end.Line, at.Line, at.Col)
	}
	return p.errAt(len(p.src), "unexpected end of file, expected '}' to close the children block opened at line %d, column %d", at.Line, at.Col)
}

// parseNode parses one node: an optional type annotation, its name, its
// arguments and properties, its children block and its terminator (which
// is consumed, except for a '}' ending a children block).
func (p *parser) parseNode() (*Node, error) {
	n := p.newNode()
	if p.off < len(p.src) && p.src[p.off] == '(' {
		t, err := p.parseType()
		if err != nil {
			return nil, err
		}
		x := p.extraOf(n)
		x.typ, x.hasType = t, true
		if !p.v1 {
			if _, err := p.skipNodeSpace(); err != nil {
				return nil, err
			}
		}
	}
	nameOff := p.off
	name, err := p.parseString("a node name")
	if err != nil {
		return nil, err
	}
	n.Name, n.Pos = name, p.pos(nameOff)

	// Entries are collected in the parser's scratch slices and copied
	// into the node once complete (entries always precede children):
	// before the children block, or before returning the node. (No
	// defer: with this many returns Go runs it through the slow path,
	// about 5 % of a parse.)
	argStart, propStart := len(p.args), len(p.props)
	entriesDone := false
	finishEntries := func() {
		if entriesDone {
			return
		}
		entriesDone = true
		p.finishEntries(n, argStart, propStart)
	}

	hasChildren := false // a children block that is not slashdashed
	afterChildren := false
	childrenOff := -1 // where the last children block opened
	for {
		spaced, err := p.skipNodeSpace()
		if err != nil {
			return nil, err
		}
		if p.off >= len(p.src) {
			finishEntries()
			return n, nil
		}
		c := p.src[p.off]
		switch {
		case c == ';':
			p.off++
			finishEntries()
			return n, nil
		case c == '}':
			if p.depth == 0 {
				return nil, p.errAt(p.off, "unexpected '}' outside of a children block, expected ';' or a newline")
			}
			finishEntries()
			return n, nil
		case p.at("//"):
			p.skipLineComment()
			finishEntries()
			return n, nil
		case p.newlineAt(p.off) > 0:
			p.off += p.newlineAt(p.off)
			finishEntries()
			return n, nil
		case p.at("/-"):
			p.off += 2
			if err := p.skipLineSpace(); err != nil {
				return nil, err
			}
			if p.off < len(p.src) && p.src[p.off] == '{' {
				finishEntries()
				if _, err := p.parseChildren(); err != nil {
					return nil, err
				}
				afterChildren = true
				continue
			}
			if p.off >= len(p.src) || p.src[p.off] == '}' || p.src[p.off] == ';' {
				return nil, p.unexpected(p.off, "an argument, a property or a children block after slashdash '/-'")
			}
			if afterChildren {
				return nil, p.unexpected(p.off, "a children block after slashdash '/-' (arguments and properties must come before children blocks)")
			}
			if err := p.parseEntry(false); err != nil {
				return nil, err
			}
		case c == '{':
			if hasChildren {
				return nil, p.errAt(p.off, "unexpected second children block '{', expected ';' or a newline (a node has at most one children block)")
			}
			finishEntries()
			childrenOff = p.off
			if p.depth == 0 {
				p.top = n
			}
			children, err := p.parseChildren()
			if err != nil {
				return nil, err
			}
			n.Children = children
			hasChildren, afterChildren = true, true
		case afterChildren:
			err := p.unexpected(p.off, "';' or a newline after the children block (arguments and properties must come before children)")
			if childrenOff > 0 && p.src[childrenOff-1] == '$' {
				err.Msg += ` (an unquoted ${…} is read as "$" and a children block: quote it, "${…}")`
			}
			return nil, err
		case !spaced:
			err := p.unexpected(p.off, "whitespace, ';', a newline or '{'")
			if !p.v1 && (c == '"' || c == '#') && p.off > 0 && p.src[p.off-1] == 'r' {
				err.Msg += ` (KDL v1 raw strings r"…" are written #"…"# in KDL v2)`
			}
			return nil, err
		default:
			if err := p.parseEntry(true); err != nil {
				return nil, err
			}
		}
	}
}

// finishEntries moves the entries collected since argStart and
// propStart from the parser's scratch slices into n.
func (p *parser) finishEntries(n *Node, argStart, propStart int) {
	if k := len(p.args) - argStart; k > 0 {
		n.Args = p.copyValues(p.args[argStart:])
		p.args = p.args[:argStart]
	}
	if k := len(p.props) - propStart; k > 0 {
		p.extraOf(n).props = p.copyProps(p.props[propStart:])
		p.props = p.props[:propStart]
	}
}

// parseChildren parses a children block starting at p.off, which points at
// '{', including the closing '}'.
func (p *parser) parseChildren() ([]*Node, error) {
	open := p.off
	if p.depth >= maxDepth {
		return nil, p.errAt(open, "children blocks nested more than %d deep", maxDepth)
	}
	p.off++
	p.depth++
	nodes, err := p.parseNodes(open)
	p.depth--
	if err != nil {
		return nil, err
	}
	p.off++ // '}'
	if nodes == nil {
		nodes = []*Node{}
	}
	return nodes, nil
}

// parseType parses a type annotation "(name)" at p.off.
func (p *parser) parseType() (string, error) {
	p.off++
	if !p.v1 {
		if _, err := p.skipNodeSpace(); err != nil {
			return "", err
		}
	}
	if p.off < len(p.src) && p.src[p.off] == ')' {
		return "", p.errAt(p.off, "empty type annotation '()', expected a type name (use (\"\") for an empty one)")
	}
	t, err := p.parseString("a type name")
	if err != nil {
		return "", err
	}
	if !p.v1 {
		if _, err := p.skipNodeSpace(); err != nil {
			return "", err
		}
	}
	if p.off >= len(p.src) || p.src[p.off] != ')' {
		return "", p.unexpected(p.off, "')' to close the type annotation")
	}
	p.off++
	return t, nil
}

// parseEntry parses an argument or a property and, when keep is set, adds
// it to the parser's scratch entries (a slashdashed entry is parsed and
// dropped).
func (p *parser) parseEntry(keep bool) error {
	start := p.off
	typ, hasType := "", false
	if p.src[p.off] == '(' {
		t, err := p.parseType()
		if err != nil {
			return err
		}
		typ, hasType = t, true
		if !p.v1 {
			if _, err := p.skipNodeSpace(); err != nil {
				return err
			}
		}
	}
	v, bare, err := p.parseValue()
	if err != nil {
		return err
	}
	save := p.off
	if !p.v1 {
		if _, err := p.skipNodeSpace(); err != nil {
			return err
		}
	}
	if p.off < len(p.src) && p.src[p.off] == '=' {
		switch {
		case hasType:
			return p.errQuoting(start, "unexpected type annotation before a property key, expected it after '=' (key=(type)value)", "unexpected type annotation before property key %s, expected it after '=' (key=(type)value)", strconv.Quote(v.Str))
		case v.Kind != KindString:
			return p.errQuoting(p.off, "unexpected '=' after a "+v.Kind.String()+", expected a string as property key", "unexpected '=' after %s, expected a string as property key", v.String())
		}
		p.off++
		if !p.v1 {
			if _, err := p.skipNodeSpace(); err != nil {
				return err
			}
		}
		if p.off >= len(p.src) {
			return p.unexpected(p.off, "a property value after '='")
		}
		var val Value
		if p.src[p.off] == '(' {
			t, err := p.parseType()
			if err != nil {
				return err
			}
			if !p.v1 {
				if _, err := p.skipNodeSpace(); err != nil {
					return err
				}
			}
			val, err = p.parseArgValue()
			if err != nil {
				return err
			}
			val.SetType(t)
		} else {
			val, err = p.parseArgValue()
			if err != nil {
				return err
			}
		}
		if keep {
			p.props = append(p.props, Prop{Name: v.Str, Value: val, Pos: v.Pos})
		}
		return nil
	}
	p.off = save
	if bare && p.v1 {
		return p.errQuoting(start, bareV1Plain, "unexpected bare identifier %s as a value, expected a quoted string (KDL v1 has no bare string values)", strconv.Quote(v.Str))
	}
	if hasType {
		v.SetType(typ)
	}
	if keep {
		p.args = append(p.args, v)
	}
	return nil
}

// bareV1Plain is the KDL v1 bare-value error without the identifier.
const bareV1Plain = "unexpected bare identifier as a value, expected a quoted string (KDL v1 has no bare string values)"

// parseArgValue parses a value that cannot be a property key.
func (p *parser) parseArgValue() (Value, error) {
	start := p.off
	v, bare, err := p.parseValue()
	if err != nil {
		return v, err
	}
	if bare && p.v1 {
		return v, p.errQuoting(start, bareV1Plain, "unexpected bare identifier %s as a value, expected a quoted string (KDL v1 has no bare string values)", strconv.Quote(v.Str))
	}
	return v, nil
}

// parseValue parses a value at p.off: a string, a number or a keyword. bare
// reports an unquoted identifier string.
func (p *parser) parseValue() (v Value, bare bool, err error) {
	start := p.off
	if start >= len(p.src) {
		return v, false, p.unexpected(start, "a value")
	}
	v.Pos = p.pos(start)
	c := p.src[start]
	switch {
	case c == '"':
		v.Str, err = p.parseQuoted()
		return v, false, err
	case c == '#' && !p.v1:
		if _, _, ok := p.rawStart(); ok {
			v.Str, err = p.parseRaw()
			return v, false, err
		}
		return p.parseKeyword(v)
	case c == 'r' && p.v1:
		if _, _, ok := p.rawStart(); ok {
			v.Str, err = p.parseRaw()
			return v, false, err
		}
	}
	end := p.identEnd(start)
	if end == start {
		return v, false, p.unexpected(start, "a value (a string, a number, "+p.keywordList()+")")
	}
	text := p.src[start:end]
	if i, ok := smallDecimal(text); ok {
		// Most numbers of a configuration: no big.Int to allocate
		// once the document has one equal to it.
		p.off = end
		return Value{Kind: KindNumber, Int: p.smallInt(i), Pos: v.Pos}, false, nil
	}
	if looksNumeric(text, p.v1) {
		num, msg := parseNumber(string(text))
		if msg != "" {
			return v, false, p.errQuoting(start, "invalid number", "%s", msg)
		}
		num.Pos = v.Pos
		num.Int = p.shareInt(num.Int)
		p.off = end
		return num, false, nil
	}
	if p.v1 {
		switch string(text) {
		case "true", "false":
			v.Kind, v.Bool = KindBool, text[0] == 't'
			p.off = end
			return v, false, nil
		case "null":
			v.Kind = KindNull
			p.off = end
			return v, false, nil
		}
	}
	s, err := p.bareIdent("a value")
	if err != nil {
		return v, false, err
	}
	v.Str, v.Bare = s, true
	return v, true, nil
}

// keywordList names the keyword values of the dialect for messages.
func (p *parser) keywordList() string {
	if p.v1 {
		return "true, false or null"
	}
	return "#true, #false, #null, #inf, #-inf or #nan"
}

// parseKeyword parses a KDL v2 keyword (#true, #false, #null, #inf, #-inf,
// #nan) at p.off into v.
func (p *parser) parseKeyword(v Value) (Value, bool, error) {
	start := p.off
	end := p.identEnd(start + 1)
	switch string(p.src[start+1 : end]) {
	case "true", "false":
		v.Kind, v.Bool = KindBool, p.src[start+1] == 't'
	case "null":
		v.Kind = KindNull
	case "inf", "-inf", "nan":
		v.SetDecimal(string(p.src[start+1:end]), nil)
	default:
		if end == start+1 {
			return v, false, p.unexpected(start+1, "a keyword (#true, #false, #null, #inf, #-inf, #nan) or a raw string (#\"…\"#) after '#'")
		}
		return v, false, p.errQuoting(start, "unknown keyword, expected #true, #false, #null, #inf, #-inf or #nan", "unknown keyword %s, expected #true, #false, #null, #inf, #-inf or #nan", string(p.src[start:end]))
	}
	p.off = end
	return v, false, nil
}

// parseString parses a string used as a name (node name, property key or
// type): a bare identifier, a quoted string or a raw string. what names
// the expected thing in error messages.
func (p *parser) parseString(what string) (string, error) {
	if p.off >= len(p.src) {
		return "", p.unexpected(p.off, what)
	}
	switch c := p.src[p.off]; {
	case c == '"':
		return p.parseQuoted()
	case c == '#' || c == 'r':
		if _, _, ok := p.rawStart(); ok {
			return p.parseRaw()
		}
	}
	return p.bareIdent(what)
}

// bareIdent parses a bare identifier at p.off, rejecting keywords and
// text that looks like a number.
func (p *parser) bareIdent(what string) (string, error) {
	start := p.off
	end := p.identEnd(start)
	if end == start {
		if !p.v1 && p.src[start] == '#' {
			k := p.identEnd(start + 1)
			return "", p.errQuoting(start, "unexpected keyword, expected "+what+" (quote it to use it as a string)", "unexpected keyword %s, expected %s (quote it to use it as a string)", string(p.src[start:k]), what)
		}
		return "", p.unexpected(start, what)
	}
	text := p.src[start:end]
	if looksNumeric(text, p.v1) {
		return "", p.errQuoting(start, "unexpected number-like text, expected "+what+" (identifiers cannot start like a number; quote it)", "unexpected number-like %s, expected %s (identifiers cannot start like a number; quote it)", strconv.Quote(string(text)), what)
	}
	s := p.str(text)
	if isKeyword(s, p.v1) {
		if p.v1 {
			return "", p.errAt(start, "unexpected keyword %s, expected %s (quote it to use it as a string)", s, what)
		}
		return "", p.errAt(start, "unexpected bare %s, expected %s (write #%s for the keyword, or quote it for a string)", s, what, s)
	}
	p.off = end
	return s, nil
}

// isKeyword reports whether s is reserved and so cannot be a bare
// identifier.
func isKeyword(s string, v1 bool) bool {
	switch s {
	case "true", "false", "null":
		return true
	case "inf", "-inf", "nan":
		return !v1
	}
	return false
}
