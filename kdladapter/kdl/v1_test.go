package kdl

import (
	"errors"
	"strings"
	"testing"
)

func TestParseV1(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"keywords", "node true false null", "node #true #false #null\n"},
		{"raw strings", `node r"C:\path" r#"say "hi""# r##"a"#b"##`, `node "C:\\path" "say \"hi\"" "a\"#b"` + "\n"},
		{"raw name", `r#"raw name"# 1`, `"raw name" 1` + "\n"},
		{"r ident", `r "arg" r#x="1"`, `r arg "r#x"="1"` + "\n"},
		{"escapes", `node "a\/b\n\u{48}"`, `node "a/b\nH"` + "\n"},
		{"multi-line literal", "node \"a\nb\"", "node \"a\\nb\"\n"},
		{"props and types", `(t)node (u8)1 key=(s)"v" k="x"`, "(t)node (u8)1 k=x key=(s)v\n"},
		{"children", "parent {\n  child 1; child 2\n}\n", "parent {\n    child 1\n    child 2\n}\n"},
		{"slashdash", "/-skip\nnode /-1 2 /-k=\"v\" /-{\n  x\n}", "node 2\n"},
		{"numbers", "node 0xff 0o17 0b101 1_000 1.5e3 -2.0", "node 255 15 5 1000 1.5E+3 -2.0\n"},
		{"idents v2 would quote", "foo#bar; .5; inf; -inf; nan 1", "\"foo#bar\"\n\".5\"\n\"inf\"\n\"-inf\"\n\"nan\" 1\n"},
		{"bom as whitespace", "node\ufeff\"a\"", "node a\n"},
		{"comments", "// c\nnode /* x */ \"a\" // y\n", "node a\n"},
		{"escline", "node \\\n  \"a\"", "node a\n"},
		{"version marker", "/- kdl-version 1\nnode true", "node #true\n"},
		{"control chars in string", "node \"\x01\u200e\"", `node "\u{1}\u{200e}"` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := ParseV1("v1.kdl", []byte(tt.src))
			if err != nil {
				t.Fatalf("ParseV1(%q): %v", tt.src, err)
			}
			if doc.Version != 1 {
				t.Errorf("Version = %d, want 1", doc.Version)
			}
			got := doc.CanonicalV2()
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			// The canonical output is valid KDL v2 with the same meaning.
			doc2, err := ParseV2("canon.kdl", []byte(got))
			if err != nil {
				t.Fatalf("canonical output does not parse as v2: %v\n%s", err, got)
			}
			if again := doc2.CanonicalV2(); again != got {
				t.Errorf("reprint %q, want %q", again, got)
			}
		})
	}
}

func TestParseV1Errors(t *testing.T) {
	tests := []struct {
		name, src string
		line, col int32
		msg       string
	}{
		{"bare string value", "node abc", 1, 6, "bare identifier \"abc\""},
		{"bare prop value", "node k=abc", 1, 8, "bare identifier \"abc\""},
		{"v2 keyword", "node #true", 1, 6, `bare identifier "#true"`},
		{"space around eq", "node k = \"v\"", 1, 6, "bare identifier \"k\""},
		{"keyword name", "true 1", 1, 1, "unexpected keyword true"},
		{"keyword key", "node null=1", 1, 10, "expected a string as property key"},
		{"space in type", "( t)node", 1, 2, "expected a type name"},
		{"solidus ok, s not", `node "\s"`, 1, 7, "invalid escape"},
		{"numeric name", "+1x", 1, 1, "number-like"},
		{"unterminated raw", "node r#\"abc\"", 1, 6, "unterminated raw string"},
		{"unterminated string", "node \"abc", 1, 6, "unterminated string"},
		{"version mismatch", "/- kdl-version 2\nnode", 1, 1, "declares kdl-version 2"},
		{"vertical tab", "node\v1", 1, 5, "U+000B"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseV1("v1.kdl", []byte(tt.src))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseV1(%q) error = %v, want *Error", tt.src, err)
			}
			if e.Pos.Line != tt.line || e.Pos.Col != tt.col {
				t.Errorf("position %v, want %d:%d (%s)", e.Pos, tt.line, tt.col, e.Msg)
			}
			if !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", e.Msg, tt.msg)
			}
		})
	}
}

func TestParseV1Positions(t *testing.T) {
	doc, err := ParseV1("v1.kdl", []byte("a {\n  b r#\"x\"# k=true\n}"))
	if err != nil {
		t.Fatal(err)
	}
	b := doc.Nodes[0].Children[0]
	if b.Pos.Line != 2 || b.Pos.Col != 3 {
		t.Errorf("b at %v", b.Pos)
	}
	if p := b.Args[0].Pos; p.Line != 2 || p.Col != 5 {
		t.Errorf("raw arg at %v", p)
	}
	if p := b.Props()[0]; p.Pos.Col != 12 || p.Value.Pos.Col != 14 || !p.Value.Bool {
		t.Errorf("prop %+v", p)
	}
}
