package kdladapter

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGolden adapts testdata/golden/*.kdl and compares the indented JSON
// with the .json file beside it (-update rewrites them). It also checks
// that the output is deterministic, byte for byte.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/golden/*.kdl")
	if len(files) == 0 {
		t.Fatal("no golden inputs")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, f, src)
		})
	}
	t.Run("embedded-default", func(t *testing.T) {
		// The default config embedded in the binary (../default.kdl).
		src, err := os.ReadFile("../default.kdl")
		if err != nil {
			t.Fatal(err)
		}
		checkGolden(t, "testdata/golden/embedded-default.kdl", src)
	})
}

func checkGolden(t *testing.T, name string, src []byte) {
	t.Helper()
	out, warns, err := Adapt(filepath.Base(name), src, noEnv, OSFiles{})
	if err != nil {
		t.Fatal(err)
	}
	again, _, _ := Adapt(filepath.Base(name), src, noEnv, OSFiles{})
	if !bytes.Equal(out, again) {
		t.Fatal("output is not deterministic")
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out, "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteString("\n")
	if w := warningsLines(warns); w != "" {
		pretty.WriteString("// warnings:\n")
		for _, l := range strings.Split(strings.TrimSpace(w), "\n") {
			pretty.WriteString("// " + l + "\n")
		}
	}
	golden := strings.TrimSuffix(name, ".kdl") + ".json"
	if *update {
		if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Fatalf("%s differs from the adapter's output (run with -update and review the diff):\n%s", golden, pretty.String())
	}
}

// TestExamplesAdapt adapts every file in examples/ without error.
func TestExamplesAdapt(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.kdl")
	if len(files) == 0 {
		t.Fatal("no examples")
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, warns, err := Adapt(f, src, noEnv, OSFiles{}); err != nil || len(warns) > 0 {
			t.Errorf("%s: %v %v", f, err, warns)
		}
	}
}
