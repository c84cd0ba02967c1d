package wasm

import (
	"strings"
	"sync"
)

// maxStderr is how much of a plugin's stderr an instance keeps.
const maxStderr = 2048

// stderrTail keeps the start of what an instance writes to stderr since
// it was last taken: a Go guest's panic, or the reason sdk.Fail gives.
// It goes into the error of a failed instantiation or call, so that a
// plugin refusing its config says why in the load error.
type stderrTail struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write implements io.Writer; bytes past maxStderr are dropped.
func (t *stderrTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := maxStderr - t.b.Len(); room > 0 {
		t.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// take returns the kept text, trimmed (at most its first three lines),
// and forgets it.
func (t *stderrTail) take() string {
	t.mu.Lock()
	s := t.b.String()
	t.b.Reset()
	t.mu.Unlock()
	lines := strings.SplitN(strings.TrimSpace(s), "\n", 4)
	if len(lines) > 3 {
		lines = lines[:3]
	}
	return strings.Join(lines, "; ")
}

// reset forgets what a successful call wrote.
func (t *stderrTail) reset() {
	t.mu.Lock()
	if t.b.Len() > 0 {
		t.b.Reset()
	}
	t.mu.Unlock()
}
