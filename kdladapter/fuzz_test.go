package kdladapter

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzAdapt feeds arbitrary documents to the adapter: it must never
// panic or hang, and what it accepts must be valid JSON.
func FuzzAdapt(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/golden/*.kdl")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(minimal))
	f.Add([]byte("system { }\nlisteners { listener \"a\" { address \"${X:-127.0.0.1:1}\"; } }"))
	readNothing := func(string) ([]byte, error) { return nil, os.ErrNotExist }
	f.Fuzz(func(t *testing.T, src []byte) {
		out, _, err := Adapt("fuzz.kdl", src, noEnv, readNothing)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON for %q", src)
		}
	})
}
