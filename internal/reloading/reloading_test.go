package reloading

import "testing"

// TestReplacingWithoutARunningConfig: no config runs in a test process
// that loaded none.
func TestReplacingWithoutARunningConfig(t *testing.T) {
	if Replacing() {
		t.Error("Replacing with no config loaded")
	}
}
