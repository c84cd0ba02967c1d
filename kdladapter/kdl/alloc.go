package kdl

import (
	"math/big"
	"unsafe"
)

// Allocation of the document: a configuration of 100,000 routes has
// millions of nodes and values. They are carved out of blocks, which
// saves most of the allocations (and their size-class rounding), and the
// strings that repeat (node names, keywords, common values) are shared.

// The blocks are a whole number of pages (larger allocations are
// rounded up to pages): 1,024 nodes of 96 bytes are 12 pages of 8 KiB,
// 1,024 values of 64 bytes 8 pages, 2,048 child pointers 2
// (TestDocumentModelSizes keeps the sizes).
const (
	nodeSlab  = 1024
	valueSlab = 1024
	childSlab = 2048
	// Fewer nodes have properties or a type (a target's weight): 256
	// properties of 80 bytes are 20 KiB, 256 extra parts of 56 bytes 14.
	propSlab  = 256
	extraSlab = 256
)

// maxInterned bounds the length of an interned string, and maxInterns the
// number of strings interned (unique ids would only fill the table).
const (
	maxInterned = 32
	maxInterns  = 8192
)

// newNode returns a zero node from the current block.
func (p *parser) newNode() *Node {
	if len(p.nodeSlab) == cap(p.nodeSlab) {
		p.nodeSlab = make([]Node, 0, nodeSlab)
	}
	p.nodeSlab = p.nodeSlab[:len(p.nodeSlab)+1]
	return &p.nodeSlab[len(p.nodeSlab)-1]
}

// copyValues copies vs into the current block of values. The copy's
// capacity is its length: appending to it never writes into the block.
func (p *parser) copyValues(vs []Value) []Value {
	if cap(p.valueSlab)-len(p.valueSlab) < len(vs) {
		p.valueSlab = make([]Value, 0, max(valueSlab, len(vs)))
	}
	start := len(p.valueSlab)
	p.valueSlab = append(p.valueSlab, vs...)
	return p.valueSlab[start:len(p.valueSlab):len(p.valueSlab)]
}

// copyProps copies ps into the current block of properties, capacity
// limited like copyValues.
func (p *parser) copyProps(ps []Prop) []Prop {
	if cap(p.propSlab)-len(p.propSlab) < len(ps) {
		p.propSlab = make([]Prop, 0, max(propSlab, len(ps)))
	}
	start := len(p.propSlab)
	p.propSlab = append(p.propSlab, ps...)
	return p.propSlab[start:len(p.propSlab):len(p.propSlab)]
}

// extraOf returns n's extra part, from the current block when n has
// none yet.
func (p *parser) extraOf(n *Node) *nodeExtra {
	if n.x == nil {
		if len(p.extraSlab) == cap(p.extraSlab) {
			p.extraSlab = make([]nodeExtra, 0, extraSlab)
		}
		p.extraSlab = p.extraSlab[:len(p.extraSlab)+1]
		n.x = &p.extraSlab[len(p.extraSlab)-1]
	}
	return n.x
}

// copyNodes copies ns into the current block of child lists, capacity
// limited like copyValues.
func (p *parser) copyNodes(ns []*Node) []*Node {
	if cap(p.childSlab)-len(p.childSlab) < len(ns) {
		p.childSlab = make([]*Node, 0, max(childSlab, len(ns)))
	}
	start := len(p.childSlab)
	p.childSlab = append(p.childSlab, ns...)
	return p.childSlab[start:len(p.childSlab):len(p.childSlab)]
}

// str returns b as a string, shared with earlier equal ones when short.
func (p *parser) str(b []byte) string {
	if p.borrow {
		if len(b) == 0 {
			return ""
		}
		return unsafe.String(&b[0], len(b))
	}
	if len(b) > maxInterned {
		return string(b)
	}
	if s, ok := p.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if p.strs == nil {
		p.strs = make(map[string]string, 256)
	}
	if len(p.strs) < maxInterns {
		p.strs[s] = s
	}
	return s
}

// maxSharedInt bounds the integers shared by shareInt: ports, timeouts,
// weights, priorities and counts, which repeat in every route and
// upstream of a large configuration.
const maxSharedInt = 1 << 16

// smallDecimal returns the value of s when it is only decimal digits and
// at most maxSharedInt (leading zeros allowed, as in parseNumber).
func smallDecimal(s []byte) (int64, bool) {
	if len(s) == 0 || len(s) > 6 {
		return 0, false
	}
	var v int64
	for _, c := range s {
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, v <= maxSharedInt
}

// smallInt returns the document's *big.Int equal to v, a value in
// [0, maxSharedInt] (see shareInt), allocating it the first time only.
func (p *parser) smallInt(v int64) *big.Int {
	if s, ok := p.ints[v]; ok {
		return s
	}
	return p.shareInt(big.NewInt(v))
}

// shareInt returns a *big.Int equal to i, the same one for every equal
// integer in [0, maxSharedInt] of the document (saving an allocation per
// value); other values are returned as they are.
func (p *parser) shareInt(i *big.Int) *big.Int {
	if i == nil || !i.IsInt64() {
		return i
	}
	v := i.Int64()
	if v < 0 || v > maxSharedInt {
		return i
	}
	if s, ok := p.ints[v]; ok {
		return s
	}
	if p.ints == nil {
		p.ints = make(map[int64]*big.Int, 64)
	}
	p.ints[v] = i
	return i
}
