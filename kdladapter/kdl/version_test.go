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
		{"both fail", "node {", 0, "", "not valid KDL v1 either"},
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

func TestParseBothFailKeepsV2Position(t *testing.T) {
	_, err := Parse("p.kdl", []byte("a\nb #bogus"))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v", err)
	}
	if e.Pos.Line != 2 || e.Pos.Col != 3 || !strings.Contains(e.Msg, "unknown keyword #bogus") || !strings.Contains(e.Msg, "KDL v1") {
		t.Errorf("error %v", e)
	}
}
