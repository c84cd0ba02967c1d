package kdl

import (
	"fmt"
	"strings"
	"testing"
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
