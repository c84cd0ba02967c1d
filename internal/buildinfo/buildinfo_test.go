package buildinfo

import (
	"regexp"
	"testing"
)

func TestString(t *testing.T) {
	old := version
	defer func() { version = old }()
	SetVersion("")
	if Version() != Unknown {
		t.Errorf("unset version: %q", Version())
	}
	SetVersion(" 1.2.3\n")
	// Test binaries record no dependency versions: Caddy's is unknown
	// here (cmd/sentinel's binary test checks the real one).
	want := regexp.MustCompile(`^sentinel 1\.2\.3 \(caddy (v2\.[0-9]+\.[0-9]+\S*|unknown), go1\.[0-9.]+[^)]*\)$`)
	if s := String(); !want.MatchString(s) {
		t.Errorf("String() = %q", s)
	}
}
