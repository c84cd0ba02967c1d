package kdl

import (
	"errors"
	"strings"
	"testing"
)

// mustParseV2 parses src as KDL v2 and fails the test on error.
func mustParseV2(t *testing.T, src string) *Document {
	t.Helper()
	doc, err := ParseV2("test.kdl", []byte(src))
	if err != nil {
		t.Fatalf("ParseV2(%q): %v", src, err)
	}
	return doc
}

func TestParseV2Canonical(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"empty", "", "\n"},
		{"comments only", "// a\n/* b */\n", "\n"},
		{"keywords", "n #true #false #null #inf #-inf #nan", "n #true #false #null #inf #-inf #nan\n"},
		{"big int", "n 123456789012345678901234567890 -0x8000000000000000", "n 123456789012345678901234567890 -9223372036854775808\n"},
		{"floats", "n 1.5 +2.0 -3.25e2 4E-2 1_000.000_1 00.5 1e010", "n 1.5 2.0 -3.25E+2 4E-2 1000.0001 0.5 1E+10\n"},
		{"huge exponent", "n 1e99999999999999999999", "n 1E+99999999999999999999\n"},
		{"typed", `(t)n (u8)1 k=(s)"v" ("")x`, "(t)n (u8)1 (\"\")x k=(s)v\n"},
		{"quoting", `"a b" "" "1x" "true" "-inf" ".5" "+1" "a#b" "a=b"`, `"a b" "" "1x" "true" "-inf" ".5" "+1" "a#b" "a=b"` + "\n"},
		{"escapes", `n "\u{7f}\u{200e}\u{85}\u{2028}\u{feff}\u{1}\u{1F600}é"`, `n "\u{7f}\u{200e}\u{85}\u{2028}\u{feff}\u{1}😀é"` + "\n"},
		{"props sorted", "n z=1 a=2 m=3 a=4", "n a=4 m=3 z=1\n"},
		{"children", "a { b { c; d }; e }", "a {\n    b {\n        c\n        d\n    }\n    e\n}\n"},
		{"slashdash", "/-a\nb /-1 2 /-k=v /-{ x } { y } /-{ z }", "b 2 {\n    y\n}\n"},
		{"unicode newlines", "a\u0085b\u2028c\u2029d\fe\vf\r\ng\rh", "a\nb\nc\nd\ne\nf\ng\nh\n"},
		{"unicode spaces", "a\u00a01\u30002\u20003", "a 1 2 3\n"},
		{"escline comment", "a \\ // c\n 1 \\\n 2", "a 1 2\n"},
		{"raw hashes", `n ##"a"#b"##`, `n "a\"#b"` + "\n"},
		{"multiline crlf", "n \"\"\"\r\n  a\r\n\r\n  b\r\n  \"\"\"", "n \"a\\n\\nb\"\n"},
		{"multiline escapes", "n \"\"\"\n  \\t\\u{41}\\\"\n  \"\"\"", "n \"\\tA\\\"\"\n"},
		{"version marker", "/- kdl-version 2\nn", "n\n"},
		{"bom", "\ufeffn", "n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustParseV2(t, tt.src).CanonicalV2(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseV2Errors(t *testing.T) {
	tests := []struct {
		name, src string
		line, col int32
		msg       string
	}{
		{"bare keyword", "node true", 1, 6, "unexpected bare true"},
		{"unknown keyword", "node #yes", 1, 6, "unknown keyword #yes"},
		{"unquoted env reference", "token ${X} scope=\"a\"", 1, 12, `an unquoted ${…} is read as "$" and a children block`},
		{"lone hash", "node # x", 1, 7, "after '#'"},
		{"keyword name", "#true", 1, 1, "unexpected keyword #true"},
		{"numeric name", "1abc", 1, 1, "number-like"},
		{"keyword name bare", "null", 1, 1, "unexpected bare null"},
		{"bad number", "node \\\n  0x1G", 2, 3, `invalid number "0x1G"`},
		{"bad exponent", "n 1e", 1, 3, "exponent"},
		{"bad exponent sign", "n 1e+_", 1, 3, "exponent"},
		{"legacy raw", `n r"x"`, 1, 4, `written #"…"#`},
		{"unterminated string", "n \"abc", 1, 3, "unterminated string"},
		{"unterminated string escape", "n \"a\\", 1, 5, "unterminated escape"},
		{"unterminated raw", "n #\"abc", 1, 3, "unterminated raw string"},
		{"unterminated multiline", "n \"\"\"\nabc", 1, 3, "unterminated multi-line string"},
		{"unterminated multiline escape", "n \"\"\"\nabc\\", 1, 3, "unterminated multi-line string"},
		{"multiline bad escape", "n \"\"\"\n  a\\q\n  \"\"\"", 2, 1, "invalid escape"},
		{"unterminated comment", "n /* abc", 1, 3, "unterminated block comment"},
		{"unterminated comment in escline", "n \\ /* abc", 1, 5, "unterminated block comment"},
		{"unterminated comment after slashdash", "n /- /* abc", 1, 6, "unterminated block comment"},
		{"unterminated comment top", "/* abc", 1, 1, "unterminated block comment"},
		{"unterminated comment in type", "(/* t", 1, 2, "unterminated block comment"},
		{"unterminated comment after type", "(t)/* t", 1, 4, "unterminated block comment"},
		{"unterminated comment in type end", "(t/* t", 1, 3, "unterminated block comment"},
		{"unterminated comment before eq", "n a /*", 1, 5, "unterminated block comment"},
		{"unterminated comment after eq", "n a= /*", 1, 6, "unterminated block comment"},
		{"unterminated comment after val type", "n a=(t) /*", 1, 9, "unterminated block comment"},
		{"unterminated comment after arg type", "n (t) /*", 1, 7, "unterminated block comment"},
		{"unterminated children", "a {\n  b", 2, 4, "opened at line 1, column 3"},
		{"stray close", "a\n}", 2, 1, "outside of a children block"},
		{"stray close after node", "a }", 1, 3, "outside of a children block"},
		{"unicode escape no brace", `n "\u41"`, 1, 4, "expected '{'"},
		{"unicode escape empty", `n "\u{}"`, 1, 4, "1 to 6 hex digits"},
		{"unicode escape unclosed", `n "\u{41"`, 1, 4, "expected '}'"},
		{"invalid utf8", "n \"\xff\"", 1, 4, "invalid UTF-8"},
		{"nul", "n \x00", 1, 3, "U+0000"},
		{"prop key number", "n 1=2", 1, 4, "expected a string as property key"},
		{"prop no value", "n a=", 1, 5, "a property value"},
		{"type no close", "(t x", 1, 4, "')' to close"},
		{"type eof", "(", 1, 2, "a type name"},
		{"bad after escline", "n \\ x", 1, 5, "line continuation"},
		{"slashdash entry after children", "n { a } /- b", 1, 12, "children block"},
		{"version mismatch", "/- kdl-version 1\nn", 1, 1, "declares kdl-version 1"},
		{"version unsupported", "/- kdl-version 3\nn", 1, 1, "unsupported kdl-version 3"},
		{"semicolon alone", ";", 1, 1, "expected a node name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseV2("f.kdl", []byte(tt.src))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseV2(%q) error = %v, want *Error", tt.src, err)
			}
			if e.Pos.Line != tt.line || e.Pos.Col != tt.col || e.Pos.File != "f.kdl" {
				t.Errorf("position %v, want f.kdl:%d:%d (%s)", e.Pos, tt.line, tt.col, e.Msg)
			}
			if !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", e.Msg, tt.msg)
			}
			if !strings.HasPrefix(e.Error(), e.Pos.String()+": ") {
				t.Errorf("Error() = %q, want position prefix", e.Error())
			}
		})
	}
}

func TestDeepNesting(t *testing.T) {
	src := strings.Repeat("a {", maxDepth+1) + strings.Repeat("}", maxDepth+1)
	if _, err := ParseV2("", []byte(src)); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Fatalf("error = %v, want nesting limit", err)
	}
	src = strings.Repeat("a {", 50) + strings.Repeat("}", 50)
	doc := mustParseV2(t, src)
	depth := 0
	for n := doc.Nodes[0]; len(n.Children) > 0; n = n.Children[0] {
		depth++
	}
	if depth != 49 {
		t.Fatalf("depth %d, want 49", depth)
	}
}

func TestPositions(t *testing.T) {
	src := "\ufeff// header\nserver \"a\" port=8080 {\r\n\tlisten (ip)\"::1\" \\\n   tls=#true\n}\n/* x */ é→ 1.5 ; next\u2028last 0x10\n"
	doc := mustParseV2(t, src)
	type pc struct{ line, col int32 }
	check := func(what string, p Position, want pc) {
		t.Helper()
		if p.Line != want.line || p.Col != want.col || p.File != "test.kdl" {
			t.Errorf("%s at %v, want %d:%d", what, p, want.line, want.col)
		}
	}
	server := doc.Nodes[0]
	check("server", server.Pos, pc{2, 1})
	check("server arg", server.Args[0].Pos, pc{2, 8})
	check("port prop", server.Props()[0].Pos, pc{2, 12})
	check("port value", server.Props()[0].Value.Pos, pc{2, 17})
	listen := server.Children[0]
	check("listen", listen.Pos, pc{3, 2})
	check("listen arg", listen.Args[0].Pos, pc{3, 13})
	check("tls prop", listen.Props()[0].Pos, pc{4, 4})
	uni := doc.Nodes[1]
	check("é→", uni.Pos, pc{6, 9})
	check("1.5", uni.Args[0].Pos, pc{6, 12})
	check("next", doc.Nodes[2].Pos, pc{6, 18})
	check("last", doc.Nodes[3].Pos, pc{7, 1})
	check("0x10", doc.Nodes[3].Args[0].Pos, pc{7, 6})
	if got := server.Pos.String(); got != "test.kdl:2:1" {
		t.Errorf("Position.String() = %q", got)
	}
	if got := (Position{Line: 3, Col: 4}).String(); got != "3:4" {
		t.Errorf("Position.String() without file = %q", got)
	}
}

func TestModel(t *testing.T) {
	doc := mustParseV2(t, "(t)node \"s\" 42 -7.5 #true #null big=123456789012345678901234567890 k=1 k=2 {\n    child\n}")
	if doc.Version != 2 {
		t.Errorf("Version = %d", doc.Version)
	}
	n := doc.Nodes[0]
	if n.Name != "node" || n.Type() != "t" || !n.HasType() {
		t.Errorf("node = %q (%q, %v)", n.Name, n.Type(), n.HasType())
	}
	if len(n.Args) != 5 || len(n.Props()) != 3 || len(n.Children) != 1 || n.Children[0].Name != "child" {
		t.Fatalf("node shape: %d args, %d props, %d children", len(n.Args), len(n.Props()), len(n.Children))
	}
	if v, ok := n.Prop("k"); !ok || v.Int.Int64() != 2 {
		t.Errorf("Prop(k) = %v, %v; want rightmost 2", v, ok)
	}
	if _, ok := n.Prop("missing"); ok {
		t.Error("Prop(missing) found")
	}
	kinds := []Kind{KindString, KindNumber, KindNumber, KindBool, KindNull}
	for i, k := range kinds {
		if n.Args[i].Kind != k {
			t.Errorf("arg %d kind %v, want %v", i, n.Args[i].Kind, k)
		}
	}
}

// TestBlocksDoNotAlias checks that the nodes, values and child lists
// carved out of shared blocks (alloc.go) have their own storage:
// appending to one never changes its neighbour.
func TestBlocksDoNotAlias(t *testing.T) {
	doc, err := ParseV2("t.kdl", []byte("a 1 2 { x; y }\nb 3 { z }\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := doc.Nodes[0], doc.Nodes[1]
	a.Args = append(a.Args, Value{Kind: KindString, Str: "added"})
	a.Children = append(a.Children, &Node{Name: "added"})
	if got, _ := b.Args[0].AsInt64(); got != 3 || len(b.Args) != 1 {
		t.Errorf("b's arguments changed: %+v", b.Args)
	}
	if len(b.Children) != 1 || b.Children[0].Name != "z" {
		t.Errorf("b's children changed: %+v", b.Children)
	}
	if a.Children[0].Name != "x" || a.Children[1].Name != "y" {
		t.Errorf("a's children: %v, %v", a.Children[0].Name, a.Children[1].Name)
	}
}
