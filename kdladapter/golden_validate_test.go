package kdladapter_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestGoldenOutputsProvision provisions every golden output with
// caddy.Validate (every module decoded and provisioned, nothing started):
// an adapter output that Caddy would refuse fails here, not at the first
// user's load.
func TestGoldenOutputsProvision(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			// The file ends with the warnings as comments.
			if i := bytes.Index(data, []byte("\n// warnings:")); i >= 0 {
				data = data[:i]
			}
			if err := testutil.Provision(t, data); err != nil {
				t.Errorf("%s does not provision: %v", f, err)
			}
		})
	}
}
