// Package kdl parses KDL documents, version 2 (the language of the original
// Sentinel's files) and version 1, into one document model that keeps the
// position of every node and value, so that the adapter can report errors as
// file:line:column.
package kdl

import (
	"fmt"
	"math/big"
	"strconv"
)

// Position is a place in a source file. Line and Col start at 1; Col counts
// Unicode code points. (They are 32 bits: every node and value of a
// large configuration holds a Position.)
type Position struct {
	File string
	Line int32
	Col  int32
}

// String formats the position as file:line:col (file omitted when empty).
func (p Position) String() string {
	if p.File == "" {
		return fmt.Sprintf("%d:%d", p.Line, p.Col)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Document is a parsed KDL document.
type Document struct {
	// Nodes are the top-level nodes in source order.
	Nodes []*Node
	// Version is the KDL version the document was parsed as (1 or 2).
	Version int
}

// Node is one KDL node.
type Node struct {
	// Name is the node name, unquoted.
	Name string
	// x holds the node's type annotation and properties, nil when it
	// has neither (see Type and Props): one pointer, because a large
	// configuration has millions of nodes and few annotations or
	// properties.
	x *nodeExtra
	// Args are the node's arguments in source order.
	Args []Value
	// Children are the nodes of the children block, in source order.
	Children []*Node
	// Pos is where the node name starts.
	Pos Position
}

// nodeExtra is the part of a Node most nodes do not have.
type nodeExtra struct {
	typ     string
	hasType bool
	props   []Prop
	// def is set on the stub of a deferred node (see ParseWith).
	def *deferred
}

// extra returns n's extra part, allocated when needed.
func (n *Node) extra() *nodeExtra {
	if n.x == nil {
		n.x = &nodeExtra{}
	}
	return n.x
}

// Type is the node's type annotation, "" when absent.
func (n *Node) Type() string {
	if n.x == nil {
		return ""
	}
	return n.x.typ
}

// HasType reports that a type annotation was written, which tells an
// empty annotation ("") apart from none.
func (n *Node) HasType() bool { return n.x != nil && n.x.hasType }

// SetType sets the node's type annotation.
func (n *Node) SetType(t string) { x := n.extra(); x.typ, x.hasType = t, true }

// Props are the node's properties in source order. A key may appear more
// than once; by KDL semantics the rightmost one wins (see Prop). The
// slice is the node's: changing an element changes the node.
func (n *Node) Props() []Prop {
	if n.x == nil {
		return nil
	}
	return n.x.props
}

// SetProps sets the node's properties.
func (n *Node) SetProps(props []Prop) {
	if props == nil && n.x == nil {
		return
	}
	n.extra().props = props
}

// Prop is a key=value property of a node.
type Prop struct {
	Name  string
	Value Value
	Pos   Position
}

// Kind is the kind of a KDL value.
type Kind uint8

// The kinds of KDL values.
const (
	KindString Kind = iota
	KindNumber
	KindBool
	KindNull
)

// String names the kind for error messages.
func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindNumber:
		return "number"
	case KindBool:
		return "boolean"
	default:
		return "null"
	}
}

// Value is a KDL value: a string, a number, a boolean or null. (The
// fields are ordered to keep the struct small: a large configuration has
// millions of values. What most values lack, a type annotation and the
// decimal form of a number, is behind one pointer.)
type Value struct {
	Kind Kind
	// HasType reports that a type annotation was written, which tells an
	// empty annotation ("") apart from none (see Type).
	HasType bool
	// Bare reports a string written as a bare identifier (no quotes).
	Bare bool
	// Bool holds the value for KindBool.
	Bool bool
	// Str holds the decoded string for KindString.
	Str string
	// Int holds an integer of KindNumber, exactly, as *big.Int (shared
	// between the equal small integers of a document: never modify it).
	// A decimal is in Float instead (see Float and NumText).
	Int *big.Int
	// x holds the type annotation and the decimal form of a number;
	// nil when the value has neither. It is never modified once set
	// (setters replace it), so copies of a value may share it.
	x *valueExtra
	// Pos is where the value starts.
	Pos Position
}

// valueExtra is the part of a Value most values do not have.
type valueExtra struct {
	typ     string
	float   *big.Float
	numText string
}

// extra returns a copy of v's extra part, for a setter to change.
func (v *Value) extra() *valueExtra {
	if v.x == nil {
		return &valueExtra{}
	}
	x := *v.x
	return &x
}

// Type is the value's type annotation, "" when absent.
func (v Value) Type() string {
	if v.x == nil {
		return ""
	}
	return v.x.typ
}

// SetType sets the value's type annotation (and HasType).
func (v *Value) SetType(t string) {
	x := v.extra()
	x.typ = t
	v.x, v.HasType = x, true
}

// Float is a decimal of KindNumber, exactly (nil for an integer and for
// the special floats #inf, #-inf and #nan).
func (v Value) Float() *big.Float {
	if v.x == nil {
		return nil
	}
	return v.x.float
}

// NumText is the text of a decimal of KindNumber (kept so that very
// large or small exponents survive), or "inf", "-inf" or "nan" for the
// special floats (whose Float is nil); "" for an integer.
func (v Value) NumText() string {
	if v.x == nil {
		return ""
	}
	return v.x.numText
}

// SetDecimal makes v the decimal of the given canonical text and value
// (f nil and text "inf", "-inf" or "nan" for the special floats).
func (v *Value) SetDecimal(text string, f *big.Float) {
	x := v.extra()
	x.numText, x.float = text, f
	v.Kind, v.Int, v.x = KindNumber, nil, x
}

// Prop returns the value of the rightmost property named name.
func (n *Node) Prop(name string) (Value, bool) {
	props := n.Props()
	for i := len(props) - 1; i >= 0; i-- {
		if props[i].Name == name {
			return props[i].Value, true
		}
	}
	return Value{}, false
}

// AsInt64 returns the value as an int64 if it is an integer that fits.
func (v Value) AsInt64() (int64, bool) {
	if v.Kind != KindNumber {
		return 0, false
	}
	if v.Int != nil {
		if !v.Int.IsInt64() {
			return 0, false
		}
		return v.Int.Int64(), true
	}
	if f := v.Float(); f != nil && f.IsInt() {
		i, acc := f.Int64()
		if acc == big.Exact {
			return i, true
		}
	}
	return 0, false
}

// AsFloat64 returns the value as a float64 if it is a number.
func (v Value) AsFloat64() (float64, bool) {
	if v.Kind != KindNumber {
		return 0, false
	}
	if v.Int != nil {
		f, _ := new(big.Float).SetInt(v.Int).Float64()
		return f, true
	}
	if f := v.Float(); f != nil {
		f, _ := f.Float64()
		return f, true
	}
	f, err := strconv.ParseFloat(v.NumText(), 64)
	return f, err == nil
}

// Interface returns the value as a plain Go value for JSON encoding:
// string, bool, nil, int64 (integers that fit), float64 otherwise.
func (v Value) Interface() any {
	switch v.Kind {
	case KindString:
		return v.Str
	case KindBool:
		return v.Bool
	case KindNull:
		return nil
	}
	if i, ok := v.AsInt64(); ok && v.Int != nil {
		return i
	}
	f, _ := v.AsFloat64()
	return f
}

// String renders the value as KDL v2 source would show it, for messages.
func (v Value) String() string {
	switch v.Kind {
	case KindString:
		return strconv.Quote(v.Str)
	case KindBool:
		if v.Bool {
			return "#true"
		}
		return "#false"
	case KindNull:
		return "#null"
	}
	if v.Int != nil {
		return v.Int.String()
	}
	if t := v.NumText(); t != "" {
		return t
	}
	if f := v.Float(); f != nil {
		return f.Text('g', -1)
	}
	return "?"
}

// Error is a parse error at a position.
type Error struct {
	Pos Position
	Msg string
	// Plain, when set, is Msg without the source text that Msg quotes
	// (an identifier, a number, a keyword): what to show when the
	// document's content must not be echoed, e.g. for a file another
	// file includes.
	Plain string
}

// PlainMsg returns the message without quoted source text.
func (e *Error) PlainMsg() string {
	if e.Plain != "" {
		return e.Plain
	}
	return e.Msg
}

// Error formats the error as "file:line:col: message".
func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }
