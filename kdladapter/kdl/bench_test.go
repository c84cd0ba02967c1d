package kdl

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/bigconfig"
)

// benchDocument generates a KDL v2 configuration-like document with n
// top-level nodes, each with arguments, properties and children.
func benchDocument(n int) []byte {
	var b strings.Builder
	b.WriteString("// generated benchmark document\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "route \"route-%d\" priority=%d enabled=#true weight=%d.5 {\n", i, i%10, i)
		fmt.Fprintf(&b, "    match path=\"/api/v%d/*\" method=GET\n", i)
		b.WriteString("    upstream \"backend\" timeout=30 retries=3 /* inline */\n")
		b.WriteString("    headers {\n        set \"X-Route\" #\"raw value\"#\n        remove Server\n    }\n")
		b.WriteString("}\n")
	}
	return []byte(b.String())
}

// BenchmarkParse parses a generated document of 1000 nodes with children.
func BenchmarkParse(b *testing.B) {
	src := benchDocument(1000)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("bench.kdl", src); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCanonicalV2 prints the same document in canonical form.
func BenchmarkCanonicalV2(b *testing.B) {
	doc, err := Parse("bench.kdl", benchDocument(1000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = doc.CanonicalV2()
	}
}

// deferredDocument is a document shaped like the adapter's generated
// configurations: n route blocks and n upstream blocks in two top-level
// containers (bigconfig.Blocks).
func deferredDocument(n int) []byte { return bigconfig.Blocks(n, bigconfig.Options{}) }

// BenchmarkParseDeferred parses a document of 1,000 routes and 1,000
// upstreams the way the adapter does: each block deferred, then loaded
// again and released, one at a time.
func BenchmarkParseDeferred(b *testing.B) {
	src := deferredDocument(1000)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	opts := Options{Defer: func(Deferral) bool { return true }, ShareSource: true}
	for b.Loop() {
		doc, err := ParseWith("bench.kdl", src, opts)
		if err != nil {
			b.Fatal(err)
		}
		var r Reparser
		for _, top := range doc.Nodes {
			for _, c := range top.Children {
				full, err := r.Load(c)
				if err != nil {
					b.Fatal(err)
				}
				r.Release(full)
			}
		}
	}
}
