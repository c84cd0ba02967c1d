package kdl

import (
	"errors"
	"strings"
	"testing"
)

func TestParseVersionSelection(t *testing.T) {
	tests := []struct {
		name, src string
		version   int
		want      string
		errMsg    string
	}{
		{"v2 document", "node #true key=value", 2, "node #true key=value\n", ""},
		{"v1 fallback", "node true key=\"value\"", 1, "node #true key=value\n", ""},
		{"v1 raw fallback", `node r#"raw"#`, 1, "node raw\n", ""},
		{"both valid prefers v2", `node "a"`, 2, "node a\n", ""},
		{"marker v1", "/- kdl-version 1\nnode \"a\"", 1, "node a\n", ""},
		{"marker v2", "// config\n\n/- kdl-version 2\nnode a", 2, "node a\n", ""},
		{"marker v1 forces v1 errors", "/- kdl-version 1\nnode a", 0, "", "bare identifier"},
		{"marker v2 forces v2 errors", "/- kdl-version 2\nnode true", 0, "", "unexpected bare true"},
		{"both fail", "node {", 0, "", "p.kdl:1:7: unexpected end of file, expected '}' to close the children block opened at line 1, column 6"},
		{"both fail, v1 reads further", "node true\nother {", 0, "", "p.kdl:2:8: unexpected end of file, expected '}' to close the children block opened at line 2, column 7 (read as KDL v1, which the file looks like; as KDL v2 it fails earlier, at 1:6: unexpected bare true"},
		{"not a marker", "/- kdl-version 2 \"extra\"\nnode true", 1, "node #true\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse("p.kdl", []byte(tt.src))
			if tt.errMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errMsg) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if doc.Version != tt.version {
				t.Errorf("Version = %d, want %d", doc.Version, tt.version)
			}
			if got := doc.CanonicalV2(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestParseBothFailKeepsV2Position: when KDL v2 reads at least as far
// as KDL v1, its error is the one, without a word about v1 (a v2 file
// with a typo is not a v1 file).
func TestParseBothFailKeepsV2Position(t *testing.T) {
	_, err := Parse("p.kdl", []byte("a\nb #bogus"))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v", err)
	}
	if e.Pos.Line != 2 || e.Pos.Col != 3 || !strings.Contains(e.Msg, "unknown keyword #bogus") || strings.Contains(e.Msg, "v1") || e.Plain != "unknown keyword, expected #true, #false, #null, #inf, #-inf or #nan" {
		t.Errorf("error %+v", e)
	}
}

// TestMissingBraceFoundByIndentation: a '}' missing in the middle of a
// long file is reported where the indentation shows it, not at the end
// of the file against the outermost block.
func TestMissingBraceFoundByIndentation(t *testing.T) {
	var b strings.Builder
	b.WriteString("system {\n}\n\nroutes {\n    route \"a\" {\n        matches {\n            path \"/a\"\n        }\n        upstream \"x\"\n\n")
	b.WriteString("    route \"b\" {\n        upstream \"y\"\n    }\n")
	for i := 0; i < 70; i++ {
		b.WriteString("    // more routes\n")
	}
	b.WriteString("}\n")
	_, err := Parse("p.kdl", []byte(b.String()))
	want := "p.kdl:11:5: missing '}' before this line, to close the children block opened at line 5, column 15 (going by the indentation: the file ends at line 84 with the block opened at line 4, column 8 still open)"
	if err == nil || err.Error() != want {
		t.Errorf("error\n%v\nwant\n%s", err, want)
	}

	// Without indentation to go by: the end of the file.
	_, err = Parse("p.kdl", []byte("a {\nb {\n}\nc\n"))
	if err == nil || !strings.Contains(err.Error(), "p.kdl:5:1: unexpected end of file, expected '}' to close the children block opened at line 1, column 3") {
		t.Errorf("unindented: %v", err)
	}
	// A block on one line, and tabs.
	_, err = Parse("p.kdl", []byte("a {\n\tb { c; }\n\td {\n\t\te\n\tf\n"))
	if err == nil || !strings.Contains(err.Error(), "p.kdl:5:2: missing '}' before this line, to close the children block opened at line 3, column 4") {
		t.Errorf("tabs: %v", err)
	}
	// Very long lines keep the end-of-file error (and parse in linear time).
	long := "a {" + strings.Repeat(" b;", 100000) + "\n"
	_, err = Parse("p.kdl", []byte(long))
	if err == nil || !strings.Contains(err.Error(), "unexpected end of file") {
		t.Errorf("long line: %v", err)
	}
}
