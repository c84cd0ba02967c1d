package kdl

import (
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
