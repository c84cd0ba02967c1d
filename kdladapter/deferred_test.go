package kdladapter

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// deferredCases are configurations whose route and upstream blocks have
// problems, in the places where deferring them could change what is
// reported: inside the blocks, in routes never mapped, with environment
// variables, in KDL v1, with the mapping stopped early.
var deferredCases = map[string]string{
	// Global routes resolved against namespaces' exports (their
	// references rewritten, reported, or left alone).
	"global routes and namespaces": minimal + "upstreams { upstream \"g\" { target \"127.0.0.1:3\"; } }\nroutes {\n route \"a\" { upstream \"x\"; filters \"f\"; }\n route \"b\" { upstream \"g\"; }\n route \"c\" { builtin-handler \"not-found\"; }\n}\nnamespace \"n\" { upstreams { upstream \"x\" { target \"127.0.0.1:1\"; }; }; filters { filter \"f\" { type \"headers\"; }; }; exports { upstreams \"x\"; filters \"f\"; }; }\n",
	"global route made ambiguous":  minimal + "upstreams { upstream \"x\" { target \"127.0.0.1:3\"; } }\nroutes {\n route \"a\" { upstream \"x\"; }\n route \"b\" { builtin-handler \"not-found\"; }\n}\nnamespace \"n\" { upstreams { upstream \"x\" { target \"127.0.0.1:1\"; }; }; exports { upstreams \"x\"; }; }\n",
	"unknown settings in blocks":   minimal + "routes {\n route \"a\" { upstream \"u\"; prioritty 3; matches { paht \"/\" } }\n}\nupstreams {\n upstream \"u\" { target \"127.0.0.1:1\"; timeoutz { } }\n upstream \"unused\" { target \"127.0.0.1:2\"; helth-check { } }\n}\n",
	"route with a bad id":          minimal + "routes {\n route { upstream \"u\"; bogus 1 }\n route \"b\" { upstream \"u\" }\n}\nupstreams { upstream \"u\" { target \"127.0.0.1:1\"; } }\n",
	"no listener":                  "system { }\nroutes {\n route \"a\" { upstream \"u\"; bogus 1 }\n}\nupstreams { upstream \"u\" { target \"127.0.0.1:1\"; nope 2 } }\n",
	"env in blocks":                minimal + "routes {\n route \"a\" { upstream \"${UP:-u}\"; policies { request-headers { set { \"X\" \"${SECRET}\"; }; }; } }\n}\nupstreams { upstream \"u\" { target \"${TARGET:-127.0.0.1:1}\"; } }\n",
	"unset env in a route":         minimal + "routes {\n route \"a\" { upstream \"u\"; matches { path \"${NOPE}\" } }\n}\nupstreams { upstream \"u\" { target \"127.0.0.1:1\"; } }\n",
	"bare dollar":                  minimal + "routes {\n route $ { X }\n route \"b\" { upstream \"u\"; matches { path $P } }\n}\nupstreams { upstream \"u\" { target \"127.0.0.1:1\"; } }\n",
	"kdl v1":                       "system { }\nlisteners { listener \"a\" { address \"127.0.0.1:1\"; } }\nroutes {\n route \"a\" { upstream \"u\"; matches { path \"/\"; } }\n}\nupstreams { upstream \"u\" { target \"127.0.0.1:1\" weight=2; health-check { interval-secs 5; } } }\nflag true\n",
	"syntax error after routes":    minimal + "routes {\n route \"a\" { upstream \"u\"; bogus 1 }\n}\nupstreams { upstream \"u\" { target \"127.0.0.1:1\" } \n",
	"shadow and metrics":           minimal + "routes {\n route \"m\" { builtin-handler \"metrics\"; matches { path \"/metrics\"; } }\n route \"a\" { upstream \"u\"; shadow { upstream \"s\"; percentage 50; } }\n}\nupstreams {\n upstream \"u\" { target \"127.0.0.1:1\"; }\n upstream \"s\" { target \"127.0.0.1:2\"; }\n}\n",
	"generated":                    string(generatedConfig(30)),
}

// TestDeferredSameAsWhole adapts configurations with their route and
// upstream blocks deferred (as Adapt does) and whole (as before): the
// output, the errors and the warnings must be the same, byte for byte.
func TestDeferredSameAsWhole(t *testing.T) {
	inputs := map[string][]byte{}
	for name, src := range deferredCases {
		inputs[name] = []byte(src)
	}
	goldens, _ := filepath.Glob("testdata/golden/*.kdl")
	for _, f := range goldens {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs[filepath.Base(f)] = b
	}
	env := envOf("SECRET", "s3cr3t-value", "P", "/p")
	for name, src := range inputs {
		t.Run(name, func(t *testing.T) {
			run := func(whole bool) string {
				out, warns, err := adaptLoader(&loader{lookupEnv: env, files: OSFiles{}, max: 1 << 30, whole: whole}, "test.kdl", src)
				msgs := warningsText(warns)
				if err != nil {
					msgs += err.Error()
				}
				if strings.Contains(msgs, "s3cr3t-value") {
					t.Errorf("a value from the environment in the messages:\n%s", msgs)
				}
				return string(out) + "\n" + msgs
			}
			deferred, whole := run(false), run(true)
			if deferred != whole {
				t.Errorf("deferred:\n%s\nwhole:\n%s", deferred, whole)
			}
			if testing.Verbose() {
				t.Log(deferred)
			}
		})
	}
}

// maxLoadedBytesPerRoute bounds what a configuration of generatedConfig
// holds once loaded, per route and its upstream: the stubs of the
// deferred blocks and what the adapter reads of the routes before
// mapping them (about 870 bytes; the whole tree was 4.6 KB).
const maxLoadedBytesPerRoute = 1200

// TestLoadedBytesPerRoute fails if the loader keeps the trees of the
// route and upstream blocks again (issue 13.8): the peak of a large
// adaptation is then the whole document's tree.
func TestLoadedBytesPerRoute(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 5,000 routes")
	}
	const n = 5000
	src := generatedConfig(n)
	before := liveHeap()
	l := &loader{d: &diag{}, lookupEnv: noEnv, files: OSFiles{}, max: 1 << 30}
	nodes := l.loadMain("gen.kdl", src)
	after := liveHeap()
	runtime.KeepAlive(nodes)
	runtime.KeepAlive(l)
	runtime.KeepAlive(src)
	per := float64(after-before) / n
	t.Logf("loaded: %.0f bytes per route and upstream", per)
	if per > maxLoadedBytesPerRoute {
		t.Errorf("loaded: %.0f bytes per route and upstream, want ≤ %d", per, maxLoadedBytesPerRoute)
	}
}

// TestDeferredSameAsWholeCorpus is TestDeferredSameAsWhole for the
// compatibility corpus (the original's configurations, includes and all).
func TestDeferredSameAsWholeCorpus(t *testing.T) {
	dir := corpusDir(t)
	var files []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".kdl") {
			files = append(files, p)
		}
		return err
	})
	if err != nil || len(files) == 0 {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		run := func(whole bool) string {
			out, warns, err := adaptLoader(&loader{lookupEnv: noEnv, files: OSFiles{}, max: 1 << 30, whole: whole}, f, src)
			s := string(out) + "\n" + warningsText(warns)
			if err != nil {
				s += err.Error()
			}
			return s
		}
		if deferred, whole := run(false), run(true); deferred != whole {
			t.Errorf("%s: deferred:\n%s\nwhole:\n%s", f, deferred, whole)
		}
	}
}
