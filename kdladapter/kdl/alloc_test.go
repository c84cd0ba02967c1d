package kdl

import (
	"math/big"
	"testing"
	"unsafe"
)

// TestDocumentModelSizes: a configuration of 100,000 routes holds about
// 2.5 million nodes and 2 million values; their sizes are the adapter's
// memory floor (issue 13.8). Positions are 24 bytes (32-bit line and
// column).
func TestDocumentModelSizes(t *testing.T) {
	if s := unsafe.Sizeof(Position{}); s > 24 {
		t.Errorf("Position: %d bytes, want ≤ 24", s)
	}
	if s := unsafe.Sizeof(Node{}); s != 96 {
		t.Errorf("Node: %d bytes, want 96 (nodeSlab fills whole pages)", s)
	}
	if s := unsafe.Sizeof(Value{}); s != 64 {
		t.Errorf("Value: %d bytes, want 64 (valueSlab fills whole pages)", s)
	}
}

// TestSmallIntegersShared: equal small integers of a document share one
// *big.Int; others have their own, with the right values.
func TestSmallIntegersShared(t *testing.T) {
	doc, err := ParseV2("t.kdl", []byte("a 30 30 0x1e -30 -30 100000 100000\nb 30\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := doc.Nodes[0].Args, doc.Nodes[1].Args
	if a[0].Int != a[1].Int || a[0].Int != a[2].Int || a[0].Int != b[0].Int {
		t.Error("the 30s do not share one *big.Int")
	}
	if a[3].Int == a[4].Int || a[5].Int == a[6].Int {
		t.Error("negative or large integers shared")
	}
	for i, want := range []int64{30, 30, 30, -30, -30, 100000, 100000} {
		if got, ok := a[i].AsInt64(); !ok || got != want {
			t.Errorf("arg %d = %d, %v; want %d", i, got, ok, want)
		}
	}
}

// TestExtraParts: a node's type annotation and properties, and a value's
// type annotation and decimal, live behind one pointer each, allocated
// only when set; setting one keeps the other, and a value's setters do
// not change copies of it.
func TestExtraParts(t *testing.T) {
	n := &Node{Name: "n"}
	if n.Type() != "" || n.HasType() || n.Props() != nil {
		t.Error("a plain node has a type or properties")
	}
	n.SetProps(nil)
	if n.x != nil {
		t.Error("SetProps(nil) allocated the extra part")
	}
	n.SetProps([]Prop{{Name: "k", Value: Value{Kind: KindBool, Bool: true}}})
	n.SetType("")
	if !n.HasType() || n.Type() != "" || len(n.Props()) != 1 {
		t.Errorf("node: type %q (%v), %d props", n.Type(), n.HasType(), len(n.Props()))
	}
	if v, ok := n.Prop("k"); !ok || !v.Bool {
		t.Error("Prop lost after SetType")
	}

	var v Value
	v.SetDecimal("1.5", big.NewFloat(1.5))
	copied := v
	v.SetType("t")
	if v.Type() != "t" || !v.HasType || v.NumText() != "1.5" || v.Float() == nil {
		t.Errorf("value: type %q, text %q", v.Type(), v.NumText())
	}
	if copied.Type() != "" || copied.HasType || copied.NumText() != "1.5" {
		t.Errorf("SetType changed a copy: type %q", copied.Type())
	}
	if s := (Value{Kind: KindString, Str: "x"}); s.Type() != "" || s.Float() != nil || s.NumText() != "" {
		t.Error("a plain value has extra parts")
	}
}
