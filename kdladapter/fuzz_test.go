package kdladapter

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// noFiles is a file system with no file: fuzzed includes must not walk
// the real one.
type noFiles struct{}

func (noFiles) ReadFile(string) ([]byte, error) { return nil, os.ErrNotExist }
func (noFiles) Glob(string) ([]string, error)   { return nil, nil }

// fuzzSecrets are two values of the variable SECRET: a message of the
// adaptation with the first may show it only if the adaptation with the
// second shows it too (then it came from the document, not from the
// environment).
var fuzzSecrets = [2]string{"fuzz-Secret-Value-1", "fuzz-Secret-Value-2"}

// FuzzAdapt feeds arbitrary documents to the adapter: it must never
// panic or hang, what it accepts must be valid JSON, and its messages
// never show a value from the environment.
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
		var msgs [2]string
		var r result
		for i, secret := range fuzzSecrets {
			done := make(chan result, 1)
			go func() {
				out, warns, err := Adapt("fuzz.kdl", src, envOf("SECRET", secret), noFiles{})
				if err != nil {
					msgs[i] = err.Error()
				}
				msgs[i] += "\n" + warningsText(warns)
				done <- result{out, err}
			}()
			select {
			case r = <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("adapting took more than 5s (%d bytes of input)", len(src))
			}
		}
		if strings.Contains(msgs[0], fuzzSecrets[0]) && !strings.Contains(msgs[1], fuzzSecrets[0]) {
			t.Fatalf("a message shows the value of ${SECRET}:\n%s", msgs[0])
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
