package kdl

import "slices"

// Deferred children blocks: a configuration of 100,000 routes is a
// document of millions of nodes, most of them inside the children blocks
// of a few top-level nodes (`routes { route … }`). ParseWith can leave
// the children of those blocks' nodes out of the document once parsed
// (checked): the document then holds a copy of each such node without
// its children, which Reparser.Load parses again from the source when
// its reader needs it. Whoever reads the document one such node at a
// time holds one node's tree instead of the whole document's.

// Options tune ParseWith.
type Options struct {
	// Defer, when set, is called with each node of the children block of
	// a top-level node once that node is parsed, children included (a
	// slashdashed node is not). When it returns true, the document holds
	// the Deferral's Stub in its place: the node without its children,
	// which Reparser.Load reads again.
	Defer func(Deferral) bool
	// ShareSource lets the document's strings share src's memory where
	// they are written as they are (bare, or quoted without escapes),
	// instead of copying each: src must then not change while the
	// document, or a string read from it, is in use. Reparser.Load
	// shares it the same way.
	ShareSource bool
}

// Deferral is a node ParseWith may leave out of the document.
type Deferral struct {
	// Parent is the top-level node whose children block holds Node; its
	// own children are not parsed yet.
	Parent *Node
	// Node is the node as parsed, children included. When deferred, it
	// is cleared once Defer returns: Defer must not keep it.
	Node *Node
	// Stub is what the document holds instead of Node when deferred: a
	// copy of the node's name, type, arguments and properties (the
	// properties' slice is shared with Node), without children.
	// Deferred reports true for it.
	Stub *Node
	// Version is the KDL version the document is being parsed as. Parse
	// tries KDL v2 then v1: a node seen in a failed attempt is seen again
	// in the next one.
	Version int
}

// deferred is where a deferred node starts in its source, and how many
// nodes, values and child pointers its tree has. What the deferred nodes
// of a parse share (the file, its source, the dialect) is in one
// stubSource: a configuration of 100,000 routes has 200,000 stubs.
type deferred struct {
	src   *stubSource
	start int
	// line and col are the position of start.
	line, col int32
	// nodes, values and children size the blocks Load parses the node
	// into (see Reparser).
	nodes, values, children int32
	// marked is the stub's mark (see Node.Mark).
	marked bool
}

// stubSource is what the deferred nodes of one parse share.
type stubSource struct {
	file string
	src  []byte
	v1   bool
	// borrow is Options.ShareSource.
	borrow bool
}

// count adds up the nodes, values and child pointers of n's tree.
func (d *deferred) count(n *Node) {
	d.nodes++
	d.values += int32(len(n.Args))
	d.children += int32(len(n.Children))
	for _, c := range n.Children {
		d.count(c)
	}
}

// Deferred reports whether n is the stub of a node whose children
// ParseWith left out (see Reparser.Load).
func (n *Node) Deferred() bool { return n.x != nil && n.x.def != nil }

// Mark sets the mark of n, the stub of a deferred node: one bit its
// reader may keep for each deferred node (the adapter: checked against
// its schema), where a map of 200,000 stubs costs a hashed lookup each
// time. It does nothing to a node that is not deferred.
func (n *Node) Mark() {
	if n.Deferred() {
		n.x.def.marked = true
	}
}

// Marked reports whether n is a stub that Mark marked.
func (n *Node) Marked() bool { return n.Deferred() && n.x.def.marked }

// ParseWith is Parse with options.
func ParseWith(filename string, src []byte, opts Options) (*Document, error) {
	return parseVersions(filename, src, opts)
}

// stub copies n without its children, remembering where it starts. The
// copy's arguments and extra part are its own: the document's blocks of
// nodes and values that held n can be collected once the rest of them
// is.
func (p *parser) stub(n *Node, start int, pos Position) *Node {
	// One allocation for the stub's parts (a route's or upstream's
	// node has one argument, its id).
	ss := p.stubSrc
	if ss == nil || ss.file != p.file || len(ss.src) != len(p.src) || (len(p.src) > 0 && &ss.src[0] != &p.src[0]) || ss.v1 != p.v1 || ss.borrow != p.borrow {
		ss = &stubSource{file: p.file, src: p.src, v1: p.v1, borrow: p.borrow}
		p.stubSrc = ss
	}
	b := &stubBlock{def: deferred{src: ss, start: start, line: pos.Line, col: pos.Col}}
	s := &b.node
	s.Name, s.Pos = n.Name, n.Pos
	switch len(n.Args) {
	case 0:
	case 1:
		b.arg[0] = n.Args[0]
		s.Args = b.arg[:]
	default:
		s.Args = append([]Value(nil), n.Args...)
	}
	b.def.count(n)
	b.extra.def = &b.def
	if n.x != nil {
		// The properties are copied: n's are in the parser's block,
		// reused when n is deferred (or when its tree is released).
		b.extra.typ, b.extra.hasType, b.extra.props = n.x.typ, n.x.hasType, slices.Clone(n.x.props)
	}
	s.x = &b.extra
	return s
}

// stubBlock holds the parts of a stub (see stub).
type stubBlock struct {
	node  Node
	extra nodeExtra
	def   deferred
	arg   [1]Value
}

// Reparser parses deferred nodes again (see ParseWith). The nodes it
// reads share their interned strings, not their allocation blocks: each
// node's tree has blocks of its own, of its size, so that a node dropped
// by its reader is collected whatever other nodes are kept (blocks
// shared between nodes link each to the ones before and after it). The
// zero value is ready to use. Not safe for concurrent use.
type Reparser struct {
	p *parser
	// inUse pairs each loaded node with its blocks, free holds the
	// blocks of released nodes (see Release). Its reader holds a few
	// loaded nodes at a time: a list is cheaper than a map.
	inUse []loaded
	free  []*slabs
}

// loaded is a node Load returned and its blocks.
type loaded struct {
	n *Node
	s *slabs
}

// slabs are the allocation blocks of one loaded node's tree.
type slabs struct {
	nodes    []Node
	values   []Value
	children []*Node
	// props and extras are the last blocks of the tree's properties and
	// extra parts (not sized from the stub: a tree that needs more
	// starts a new block, which replaces these).
	props  []Prop
	extras []nodeExtra
}

// maxFreeSlabs bounds the blocks a Reparser keeps for reuse: its reader
// holds a few loaded nodes at a time (a route, its upstream).
const maxFreeSlabs = 4

// take returns blocks for a tree of d's size: released ones when one
// set is large enough, else new ones with headroom (the next tree may
// be a little larger).
func (r *Reparser) take(d *deferred) *slabs {
	for i, s := range r.free {
		if cap(s.nodes) >= int(d.nodes) && cap(s.values) >= int(d.values) && cap(s.children) >= int(d.children) {
			r.free = append(r.free[:i], r.free[i+1:]...)
			return s
		}
	}
	return &slabs{
		nodes:    make([]Node, 0, d.nodes+d.nodes/4),
		values:   make([]Value, 0, d.values+d.values/4),
		children: make([]*Node, 0, d.children+d.children/4),
	}
}

// Release tells r that n, a node Load returned, and everything read
// from its tree (nodes, argument slices, child lists) are no longer in
// use: their memory is cleared and reused by the next Load. Strings,
// numbers and the values of properties read from it stay valid (not
// the nodes' lists of properties, which are in the tree's blocks). A node Load did not
// return (or returned as it was) is ignored.
func (r *Reparser) Release(n *Node) {
	// The most recently loaded first: readers release in the reverse
	// order of their loads, mostly.
	i := len(r.inUse) - 1
	for i >= 0 && r.inUse[i].n != n {
		i--
	}
	if i < 0 {
		return
	}
	s := r.inUse[i].s
	r.inUse = slices.Delete(r.inUse, i, i+1)
	// Only the part the tree used: the blocks are zero past their
	// length (new, or cleared here and by reuse before), and clearing
	// whole blocks (a block of properties alone is 256 of them) for
	// each of 200,000 trees was 3 % of a large adapt.
	clear(s.nodes)
	clear(s.values)
	clear(s.children)
	clear(s.props)
	clear(s.extras)
	s.nodes, s.values, s.children = s.nodes[:0], s.values[:0], s.children[:0]
	s.props, s.extras = s.props[:0], s.extras[:0]
	if len(r.free) < maxFreeSlabs {
		r.free = append(r.free, s)
	}
}

// Load returns the node the stub n stands for: a new node with n's name,
// position, type, arguments and properties (those of n, as its reader
// may have changed them) and its children parsed again from the source,
// with the positions of the first parse. n itself is unchanged; a node
// that is not deferred is returned as it is.
func (r *Reparser) Load(n *Node) (*Node, error) {
	if !n.Deferred() {
		return n, nil
	}
	d := n.x.def
	ds := d.src
	if r.p == nil {
		r.p = newParser(ds.file, ds.src, ds.v1)
		r.p.reload = true
	}
	p := r.p
	p.file, p.src, p.v1, p.borrow = ds.file, ds.src, ds.v1, ds.borrow
	p.off, p.depth, p.suspectOff = d.start, 1, -1
	p.pcOff, p.pcLine, p.pcCol = d.start, int(d.line), int(d.col)
	p.args, p.props, p.children = p.args[:0], p.props[:0], p.children[:0]
	s := r.take(d)
	p.nodeSlab, p.valueSlab, p.childSlab = s.nodes, s.values, s.children
	p.propSlab, p.extraSlab = s.props, s.extras
	parsed, err := p.parseNode()
	if err == nil {
		// The node parsed again is a new node: it takes the stub's name,
		// arguments and extra part (its own extra part from the block).
		parsed.Name, parsed.Pos, parsed.Args, parsed.x = n.Name, n.Pos, n.Args, nil
		if n.x.hasType || len(n.x.props) > 0 {
			*p.extraOf(parsed) = nodeExtra{typ: n.x.typ, hasType: n.x.hasType, props: n.x.props}
		}
	}
	if len(p.nodeSlab) > 0 && &p.nodeSlab[0] == &s.nodes[:1][0] && (len(p.valueSlab) == 0 || &p.valueSlab[0] == &s.values[:1][0]) && (len(p.childSlab) == 0 || &p.childSlab[0] == &s.children[:1][0]) {
		// The tree is in s's blocks (always, unless the source
		// changed): Release can reuse them.
		s.nodes, s.values, s.children = p.nodeSlab, p.valueSlab, p.childSlab
		s.props, s.extras = p.propSlab, p.extraSlab
	} else {
		s = nil
	}
	clear(p.children[:cap(p.children)])
	p.nodeSlab, p.valueSlab, p.childSlab = nil, nil, nil
	p.propSlab, p.extraSlab = nil, nil
	if err != nil {
		return nil, err
	}
	out := parsed
	if s != nil {
		r.inUse = append(r.inUse, loaded{out, s})
	}
	return out, nil
}
