package kdl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// suiteDir is the official KDL v2 test suite, relative to this package
// (the shared folder sits beside the repository).
const suiteDir = "../../../shared/testdata/kdl-spec"

// TestSpecSuite runs every case of the official KDL v2 test suite: inputs
// with an expected file must parse and print exactly that file; inputs
// ending in _fail.kdl must be rejected.
func TestSpecSuite(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join(testutil.Shared(t, "testdata/kdl-spec"), "input", "*.kdl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatalf("the KDL test suite folder %s holds no input/*.kdl", suiteDir)
	}
	var passed, failedOK int
	for _, in := range inputs {
		name := filepath.Base(in)
		ok := t.Run(strings.TrimSuffix(name, ".kdl"), func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := ParseV2(name, src)
			if strings.HasSuffix(name, "_fail.kdl") {
				if err == nil {
					t.Fatalf("parsed, want an error; got:\n%s", doc.CanonicalV2())
				}
				if _, ok := err.(*Error); !ok {
					t.Fatalf("error %T, want *Error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v\ninput:\n%s", err, src)
			}
			want, err := os.ReadFile(filepath.Join(suiteDir, "expected_kdl", name))
			if err != nil {
				t.Fatal(err)
			}
			if got := doc.CanonicalV2(); got != string(want) {
				t.Fatalf("output mismatch\ninput:\n%s\ngot:\n%q\nwant:\n%q", src, got, want)
			}
		})
		if ok {
			if strings.HasSuffix(name, "_fail.kdl") {
				failedOK++
			} else {
				passed++
			}
		}
	}
	t.Logf("KDL suite: %d/%d inputs OK (%d parsed and printed, %d rejected)", passed+failedOK, len(inputs), passed, failedOK)
}
