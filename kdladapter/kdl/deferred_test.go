package kdl

import (
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

// deferAll defers every node of every top-level block.
var deferAll = Options{Defer: func(Deferral) bool { return true }}

// TestLoadGivesTheNodeParsedWhole checks that a deferred node, loaded
// again, is the node a whole parse gives: names, values, properties,
// types and positions, in KDL v2 and v1, with comments, slashdashes,
// multi-line strings and a byte order mark around it.
func TestLoadGivesTheNodeParsedWhole(t *testing.T) {
	docs := map[string]string{
		"v2": "\ufeff// top\nroutes {\n  (rt)route \"a\" x=(t)1 {\n    /- skipped { x }\n    matches { path-prefix \"/é\"; method \"GET\" \"POST\" }\n    upstream #\"raw\"#\n    text \"\"\"\n      two\n      lines\n      \"\"\"\n  }\n  /- route \"gone\" { x }\n  route \"b\"; route \"c\" { n 1.5 }\n}\nother { route \"d\" { y 2 } }\n",
		"v1": "/- kdl-version 1\nroutes {\n  route \"a\" x=1 {\n    matches { path-prefix \"/v1\"; flag true }\n    raw r#\"x\"#\n  }\n}\n",
	}
	for _, share := range []bool{false, true} {
		for name, src := range docs {
			t.Run(fmt.Sprintf("%s/share=%v", name, share), func(t *testing.T) {
				loadWhole(t, src, share)
			})
		}
	}
}

// loadWhole is TestLoadGivesTheNodeParsedWhole for one document.
func loadWhole(t *testing.T, src string, share bool) {
	whole, err := Parse("f.kdl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	opts := Options{Defer: func(d Deferral) bool {
		seen = append(seen, d.Parent.Name+"/"+d.Node.Name)
		return true
	}, ShareSource: share}
	doc, err := ParseWith("f.kdl", []byte(src), opts)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Version != whole.Version {
		t.Fatalf("version %d, want %d", doc.Version, whole.Version)
	}
	var r Reparser
	for i, top := range doc.Nodes {
		for j, stub := range top.Children {
			if !stub.Deferred() || stub.Children != nil {
				t.Fatalf("%s/%s: not a stub", top.Name, stub.Name)
			}
			got, err := r.Load(stub)
			if err != nil {
				t.Fatal(err)
			}
			want := whole.Nodes[i].Children[j]
			if g, w := dump(got), dump(want); g != w {
				t.Errorf("%s/%s loaded:\n%s\nwant:\n%s", top.Name, stub.Name, g, w)
			}
		}
	}
	if len(seen) == 0 {
		t.Error("Defer was not called")
	}
}

// TestShareSource checks that with ShareSource the strings written as
// they are share the source (no copy), in the document and in what
// Reparser.Load gives, and that escaped strings are still decoded.
func TestShareSource(t *testing.T) {
	src := []byte("routes { route \"a-rather-long-route-id-not-interned-0001\" { upstream bare-upstream-name-longer-than-32-bytes; esc \"a\\tb\" } }\n")
	inSrc := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		b := uintptr(unsafe.Pointer(&src[0]))
		return p >= b && p < b+uintptr(len(src))
	}
	doc, err := ParseWith("f.kdl", src, Options{Defer: func(Deferral) bool { return true }, ShareSource: true})
	if err != nil {
		t.Fatal(err)
	}
	stub := doc.Nodes[0].Children[0]
	if !inSrc(stub.Name) || !inSrc(stub.Args[0].Str) {
		t.Errorf("the stub's strings are copies")
	}
	var r Reparser
	n, err := r.Load(stub)
	if err != nil {
		t.Fatal(err)
	}
	if up := n.Children[0].Args[0].Str; up != "bare-upstream-name-longer-than-32-bytes" || !inSrc(up) {
		t.Errorf("upstream %q: a copy, or wrong", up)
	}
	if esc := n.Children[1].Args[0].Str; esc != "a\tb" || inSrc(esc) {
		t.Errorf("escaped string %q shares the source", esc)
	}
	whole, err := Parse("f.kdl", src)
	if err != nil {
		t.Fatal(err)
	}
	if inSrc(whole.Nodes[0].Children[0].Args[0].Str) {
		t.Error("without ShareSource, a string shares the source")
	}
}

// dump prints a node's tree with every position and value.
func dump(n *Node) string {
	var b strings.Builder
	var walk func(n *Node, depth int)
	walk = func(n *Node, depth int) {
		fmt.Fprintf(&b, "%*s%s @%v type=%q/%v", depth*2, "", n.Name, n.Pos, n.Type(), n.HasType())
		for _, a := range n.Args {
			fmt.Fprintf(&b, " %s@%v", a.String(), a.Pos)
		}
		for _, p := range n.Props() {
			fmt.Fprintf(&b, " %s=%s@%v", p.Name, p.Value.String(), p.Pos)
		}
		fmt.Fprintf(&b, " children=%v\n", n.Children != nil)
		for _, c := range n.Children {
			walk(c, depth+1)
		}
	}
	walk(n, 0)
	return b.String()
}

// TestDeferredSyntaxErrorsUnchanged checks that a syntax error inside a
// deferred node is reported as by a whole parse.
func TestDeferredSyntaxErrorsUnchanged(t *testing.T) {
	for _, src := range []string{
		"routes {\n  route \"a\" {\n    x \"unterminated\n  }\n}\n",
		"routes {\n  route \"a\" { x 1 }\n  route \"b\" {\n    y {\n}\n",
		"routes { route \"a\" { x 1 = 2 } }\n",
	} {
		_, want := Parse("f.kdl", []byte(src))
		_, got := ParseWith("f.kdl", []byte(src), deferAll)
		if want == nil || got == nil || got.Error() != want.Error() {
			t.Errorf("%q: got %v, want %v", src, got, want)
		}
		_, got = ParseWith("f.kdl", []byte(src), Options{Defer: func(Deferral) bool { return false }})
		if want == nil || got == nil || got.Error() != want.Error() {
			t.Errorf("%q: got %v, want %v", src, got, want)
		}
	}
}

// TestNotDeferredKept checks that a node Defer refuses stays whole.
func TestNotDeferredKept(t *testing.T) {
	doc, err := ParseWith("f.kdl", []byte("a { b { c 1 }; d { e 2 } }"), Options{Defer: func(d Deferral) bool { return d.Node.Name == "d" }})
	if err != nil {
		t.Fatal(err)
	}
	b, d := doc.Nodes[0].Children[0], doc.Nodes[0].Children[1]
	if b.Deferred() || len(b.Children) != 1 || !d.Deferred() || d.Children != nil {
		t.Fatalf("b deferred=%v children=%d, d deferred=%v children=%d", b.Deferred(), len(b.Children), d.Deferred(), len(d.Children))
	}
	var r Reparser
	if got, _ := r.Load(b); got != b {
		t.Error("Load of a node that is not deferred is not the node")
	}
}

// TestDeferredTreesCollected fails if the nodes a parse defers, or the
// nodes Load gives and its reader drops, stay in memory: the blocks nodes
// are carved from link each node to the next, so one kept node could
// keep them all (issue 13.8).
func TestDeferredTreesCollected(t *testing.T) {
	const n = 5000
	var b strings.Builder
	b.WriteString("routes {\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  route \"r%d\" {\n    priority %d\n    matches { path-prefix \"/svc%d\"; method \"GET\" \"POST\"; }\n    policies { timeout-secs 30; request-headers { set { \"X-Route\" \"r%d\"; }; }; }\n  }\n", i, i, i, i)
	}
	b.WriteString("}\n")
	src := []byte(b.String())
	before := liveBytes()
	whole, err := Parse("f.kdl", src)
	if err != nil {
		t.Fatal(err)
	}
	wholeBytes := liveBytes() - before
	runtime.KeepAlive(whole)
	whole = nil

	before = liveBytes()
	doc, err := ParseWith("f.kdl", src, deferAll)
	if err != nil {
		t.Fatal(err)
	}
	var r Reparser
	var keep []*Node
	for _, stub := range doc.Nodes[0].Children {
		full, err := r.Load(stub)
		if err != nil {
			t.Fatal(err)
		}
		if len(keep) < 3 {
			keep = append(keep, full) // a reader that keeps a few
		}
	}
	deferredBytes := liveBytes() - before
	runtime.KeepAlive(doc)
	runtime.KeepAlive(keep)
	t.Logf("whole document %d B/route, deferred stubs %d B/route", wholeBytes/n, deferredBytes/n)
	if deferredBytes*3 > wholeBytes {
		t.Errorf("deferred: %d bytes live, more than a third of the whole document's %d", deferredBytes, wholeBytes)
	}
	if !reflect.DeepEqual(keep[0].Name, "route") {
		t.Error("kept node changed")
	}
}

func liveBytes() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestReleaseReusesBlocks checks that a released node's memory is
// cleared (a reader that kept part of it would see it empty, not another
// node's) and reused: loading and releasing nodes one at a time
// allocates nothing once warm, and the next node is as a whole parse
// gives it.
func TestReleaseReusesBlocks(t *testing.T) {
	src := []byte("routes {\n route \"a\" { upstream \"u\"; matches { path-prefix \"/a\"; method \"GET\" } }\n route \"b\" { upstream \"v\"; matches { path-prefix \"/b\" } }\n}\n")
	doc, err := ParseWith("f.kdl", src, Options{Defer: func(Deferral) bool { return true }, ShareSource: true})
	if err != nil {
		t.Fatal(err)
	}
	whole, err := Parse("f.kdl", src)
	if err != nil {
		t.Fatal(err)
	}
	var r Reparser
	a, err := r.Load(doc.Nodes[0].Children[0])
	if err != nil {
		t.Fatal(err)
	}
	kept := a.Children[1]
	r.Release(a)
	if kept.Name != "" || len(kept.Children) != 0 {
		t.Errorf("a released node's tree is not cleared: %q", kept.Name)
	}
	b, err := r.Load(doc.Nodes[0].Children[1])
	if err != nil {
		t.Fatal(err)
	}
	if g, w := dump(b), dump(whole.Nodes[0].Children[1]); g != w {
		t.Errorf("loaded in reused blocks:\n%s\nwant:\n%s", g, w)
	}
	r.Release(b)
	r.Release(b) // twice: ignored
	allocs := testing.AllocsPerRun(100, func() {
		for _, stub := range doc.Nodes[0].Children {
			n, err := r.Load(stub)
			if err != nil {
				t.Fatal(err)
			}
			r.Release(n)
		}
	})
	if allocs > 0 {
		t.Errorf("%.1f allocations to load and release two nodes, want 0", allocs)
	}
}

// TestStubSize fails if a stub grows past 256 bytes, the allocation size
// class it fits (320 before the stubs of a parse shared their file and
// source): 200,000 of them are held while a 100,000-route configuration
// is mapped.
func TestStubSize(t *testing.T) {
	if size := unsafe.Sizeof(stubBlock{}); size > 256 {
		t.Errorf("a stub takes %d bytes, want at most 256", size)
	}
}

// TestMark checks a stub's mark (the adapter's "checked against the
// schema", kept on the stub instead of in a map) and that a node that is
// not deferred takes none.
func TestMark(t *testing.T) {
	doc, err := ParseWith("m.kdl", []byte("routes {\n    route a { x 1; }\n    route b { x 2; }\n}\n"), Options{Defer: func(Deferral) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	a, b := doc.Nodes[0].Children[0], doc.Nodes[0].Children[1]
	if a.Marked() || b.Marked() {
		t.Fatal("a stub is marked before Mark")
	}
	a.Mark()
	if !a.Marked() || b.Marked() {
		t.Errorf("after a.Mark: a marked %v, b marked %v", a.Marked(), b.Marked())
	}
	top := doc.Nodes[0]
	top.Mark()
	if top.Marked() {
		t.Error("a node that is not deferred is marked")
	}
}

// TestReleaseOutOfOrder loads several deferred nodes and releases them
// in another order than loaded (the Reparser's list of loaded nodes):
// each is released once, and its memory reused.
func TestReleaseOutOfOrder(t *testing.T) {
	src := []byte("routes {\n    route a { x 1; y 2; }\n    route b { x 3; }\n    route c { x 4; z { w 5; }; }\n}\n")
	doc, err := ParseWith("r.kdl", src, Options{Defer: func(Deferral) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	var r Reparser
	var full []*Node
	for _, s := range doc.Nodes[0].Children {
		n, err := r.Load(s)
		if err != nil {
			t.Fatal(err)
		}
		full = append(full, n)
	}
	if len(r.inUse) != 3 {
		t.Fatalf("%d nodes in use, want 3", len(r.inUse))
	}
	r.Release(full[1])
	r.Release(full[0])
	r.Release(full[0]) // twice: ignored
	r.Release(doc.Nodes[0])
	if len(r.inUse) != 1 || r.inUse[0].n != full[2] {
		t.Fatalf("in use after releasing a and b: %v", r.inUse)
	}
	if full[0].Name != "" || full[1].Name != "" || full[2].Name != "route" || len(full[2].Children) != 2 {
		t.Errorf("released nodes not cleared, or the kept one changed: %q %q %q", full[0].Name, full[1].Name, full[2].Name)
	}
	r.Release(full[2])
	if len(r.inUse) != 0 || len(r.free) != 3 {
		t.Errorf("after releasing all: %d in use, %d free", len(r.inUse), len(r.free))
	}
}

// TestPropsInBlocks: the properties and extra parts of nodes are carved
// from the parser's blocks, reused when a node is deferred and when a
// loaded tree is released. Each stub keeps its own properties (copied
// out of the block the next node reuses), each tree loaded in reused
// blocks has its own, as the whole parse has them; loading and releasing
// a tree with properties allocates nothing once the blocks exist; a
// tree with more properties than a block holds is loaded whole.
func TestPropsInBlocks(t *testing.T) {
	var b strings.Builder
	b.WriteString("upstreams {\n")
	for i := range 40 {
		fmt.Fprintf(&b, " upstream \"u%d\" p=%d x=\"s%d\" {\n  target \"10.0.0.%d:80\" weight=%d\n  (ty)target \"b\" weight=%d other=\"o%d\"\n", i, i, i, i, i+1, i+2, i)
		if i == 30 {
			// More properties than a block holds.
			for k := range propSlab + 10 {
				fmt.Fprintf(&b, "  many k%d=%d\n", k, k)
			}
		}
		b.WriteString(" }\n")
	}
	b.WriteString("}\n")
	src := []byte(b.String())
	doc, err := ParseWith("f.kdl", src, Options{Defer: func(Deferral) bool { return true }, ShareSource: true})
	if err != nil {
		t.Fatal(err)
	}
	whole, err := Parse("f.kdl", src)
	if err != nil {
		t.Fatal(err)
	}
	var r Reparser
	for round := range 2 {
		for i, stub := range doc.Nodes[0].Children {
			if got := stub.Props(); len(got) != 2 || got[0].Name != "p" || got[0].Value.String() != fmt.Sprint(i) || got[1].Value.Str != fmt.Sprintf("s%d", i) {
				t.Fatalf("round %d, stub %d: properties %v", round, i, got)
			}
			n, err := r.Load(stub)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := dump(n), dump(whole.Nodes[0].Children[i]); g != w {
				t.Fatalf("round %d, node %d loaded:\n%s\nwant:\n%s", round, i, g, w)
			}
			r.Release(n)
		}
	}
	small := doc.Nodes[0].Children[:2]
	allocs := testing.AllocsPerRun(50, func() {
		for _, stub := range small {
			n, err := r.Load(stub)
			if err != nil {
				t.Fatal(err)
			}
			r.Release(n)
		}
	})
	if allocs > 0 {
		t.Errorf("%.1f allocations to load and release two nodes with properties, want 0", allocs)
	}
}

// TestReleaseLeavesBlocksZero: Release clears only the part of its blocks
// a tree used, which is enough only if every block is zero past its
// length when it is freed. Trees of different sizes (a large one, with
// properties on its nodes, then smaller ones, in the same blocks) are
// loaded and released, and after each release every free block is zero
// up to its capacity; each tree loaded in reused blocks equals the whole
// parse's.
func TestReleaseLeavesBlocksZero(t *testing.T) {
	var b strings.Builder
	b.WriteString("upstreams {\n")
	for i, n := range []int{40, 3, 0, 25, 1, 12} {
		fmt.Fprintf(&b, " upstream \"u%d\" p=%d {\n", i, i)
		for k := range n {
			fmt.Fprintf(&b, "  target \"10.0.%d.%d:80\" weight=%d x=(t)\"v%d\" { tag \"a\" \"b\"; }\n", i, k, k+1, k)
		}
		b.WriteString(" }\n")
	}
	b.WriteString("}\n")
	src := []byte(b.String())
	doc, err := ParseWith("f.kdl", src, Options{Defer: func(Deferral) bool { return true }, ShareSource: true})
	if err != nil {
		t.Fatal(err)
	}
	whole, err := Parse("f.kdl", src)
	if err != nil {
		t.Fatal(err)
	}
	var r Reparser
	zero := func(round, i int) {
		t.Helper()
		for _, s := range r.free {
			for j, n := range s.nodes[:cap(s.nodes)] {
				if n.Name != "" || n.x != nil || n.Args != nil || n.Children != nil || n.Pos != (Position{}) {
					t.Fatalf("round %d, tree %d: node %d of a free block not cleared: %+v", round, i, j, n)
				}
			}
			for j, v := range s.values[:cap(s.values)] {
				if v != (Value{}) {
					t.Fatalf("round %d, tree %d: value %d of a free block not cleared: %+v", round, i, j, v)
				}
			}
			for j, c := range s.children[:cap(s.children)] {
				if c != nil {
					t.Fatalf("round %d, tree %d: child %d of a free block not cleared", round, i, j)
				}
			}
			for j, p := range s.props[:cap(s.props)] {
				if p != (Prop{}) {
					t.Fatalf("round %d, tree %d: property %d of a free block not cleared: %+v", round, i, j, p)
				}
			}
			for j, x := range s.extras[:cap(s.extras)] {
				if x.typ != "" || x.hasType || x.props != nil || x.def != nil {
					t.Fatalf("round %d, tree %d: extra part %d of a free block not cleared", round, i, j)
				}
			}
		}
	}
	for round := range 3 {
		for i, stub := range doc.Nodes[0].Children {
			n, err := r.Load(stub)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := dump(n), dump(whole.Nodes[0].Children[i]); g != w {
				t.Fatalf("round %d, tree %d loaded:\n%s\nwant:\n%s", round, i, g, w)
			}
			r.Release(n)
			zero(round, i)
		}
	}
}
