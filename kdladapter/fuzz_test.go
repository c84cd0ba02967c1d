package kdladapter

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// noFiles is a file system with no file: fuzzed includes must not walk
// the real one.
type noFiles struct{}

func (noFiles) ReadFile(string) ([]byte, error) { return nil, os.ErrNotExist }
func (noFiles) Glob(string) ([]string, error)   { return nil, nil }

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
	f.Fuzz(func(t *testing.T, src []byte) {
		type result struct {
			out []byte
			err error
		}
		done := make(chan result, 1)
		go func() {
			out, _, err := Adapt("fuzz.kdl", src, noEnv, noFiles{})
			done <- result{out, err}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("adapting took more than 5s (%d bytes of input)", len(src))
		}
		out, err := r.out, r.err
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON for %q", src)
		}
	})
}
