package kdl

import (
	"testing"
)

// FuzzParse checks that Parse never panics or hangs and that whatever it
// accepts prints as canonical KDL v2 that parses back to the same text.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"node 1 2.5 key=#true {\n    child \"x\"\n}\n",
		"node true r#\"raw\"#\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		doc, err := Parse("fuzz.kdl", src)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T, want *Error: %v", err, err)
			}
			return
		}
		out := doc.CanonicalV2()
		doc2, err := ParseV2("canonical.kdl", []byte(out))
		if err != nil {
			t.Fatalf("canonical output does not parse as KDL v2: %v\ninput:  %q\noutput: %q", err, src, out)
		}
		if again := doc2.CanonicalV2(); again != out {
			t.Fatalf("canonical output is not stable\ninput:  %q\nfirst:  %q\nsecond: %q", src, out, again)
		}
	})
}
