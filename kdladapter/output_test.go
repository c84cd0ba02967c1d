package kdladapter

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestOutputSameAsAdapt writes the golden configurations and a generated
// one through AdaptOutput: the bytes are Adapt's, and WriteTo counts them.
func TestOutputSameAsAdapt(t *testing.T) {
	inputs := map[string][]byte{"generated": generatedConfig(40)}
	goldens, _ := filepath.Glob("testdata/golden/*.kdl")
	for _, f := range goldens {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs[filepath.Base(f)] = b
	}
	if len(inputs) < 5 {
		t.Fatalf("only %d inputs: the goldens are missing", len(inputs))
	}
	for name, src := range inputs {
		t.Run(name, func(t *testing.T) {
			want, _, err := Adapt("test.kdl", src, noEnv, OSFiles{})
			if err != nil {
				t.Fatalf("does not adapt: %v", err)
			}
			o, _, err := AdaptOutput("test.kdl", src, noEnv, OSFiles{})
			if err != nil {
				t.Fatal(err)
			}
			if o.Len() != len(want) {
				t.Errorf("Len %d, Adapt wrote %d bytes", o.Len(), len(want))
			}
			var buf bytes.Buffer
			n, err := o.WriteTo(&buf)
			if err != nil || n != int64(len(want)) {
				t.Errorf("WriteTo: %d, %v; want %d bytes", n, err, len(want))
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("WriteTo's output differs from Adapt's")
			}
		})
	}
}

// TestOutputFailingWriter: a write error is returned.
func TestOutputFailingWriter(t *testing.T) {
	o, _, err := AdaptOutput("gen.kdl", generatedConfig(200), noEnv, OSFiles{})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	if _, err := o.WriteTo(failingWriter{boom}); !errors.Is(err, boom) {
		t.Errorf("WriteTo on a failing writer: %v, want %v", err, boom)
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

// TestOutputReleasesConfigText: once adapted, nothing refers to the
// configuration's text (whose memory the parsed strings share) nor to
// its tree: the collector frees the 68 MB of a 100,000-route file before
// the 85 MB of output is allocated, not after. Fails when a string of the
// text (a route's id, an address) is kept in what the output is made of.
func TestOutputReleasesConfigText(t *testing.T) {
	src := generatedConfig(300)
	freed := make(chan struct{})
	runtime.SetFinalizer(&src[0], func(*byte) { close(freed) })
	o, _, err := AdaptOutput("gen.kdl", src, noEnv, OSFiles{})
	if err != nil {
		t.Fatal(err)
	}
	src = nil
	deadline := time.Now().Add(5 * time.Second)
	for done := false; !done; {
		runtime.GC()
		select {
		case <-freed:
			done = true
		case <-time.After(20 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("the configuration's text is still referred to by the adapted output")
			}
		}
	}
	var buf strings.Builder
	if _, err := o.WriteTo(&buf); err != nil || !strings.Contains(buf.String(), `"r299"`) {
		t.Errorf("WriteTo after the text was freed: %v", err)
	}
}
