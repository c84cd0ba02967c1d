package wasm

import (
	"path/filepath"
	"testing"
)

// TestDetectABICompilesOnce: a plugin whose abi is detected is compiled
// once, not once to read its imports and again to run it (issue 23: the
// detection compiled with other runtime settings, so a fresh load of a
// Go-built http-wasm plugin took two compilations, longer than a config
// load may take). The disk cache holds one entry per compilation.
func TestDetectABICompilesOnce(t *testing.T) {
	for _, name := range []string{"httpwasm", "trivial"} {
		path := buildPlugin(t, name)
		dir := filepath.Join(t.TempDir(), "cache")
		if _, err := provisionHandler(t, mustJSON(t, map[string]any{"cache_dir": dir, "plugins": []any{map[string]any{"path": path}}})); err != nil {
			t.Fatal(err)
		}
		if n := len(cacheFiles(dir)); n != 1 {
			t.Errorf("%s: %d compiled entries in the cache, want 1", name, n)
		}
	}
}
