//go:build !wasip1

package sdk

import (
	"strings"
	"testing"
)

func TestRunOnHost(t *testing.T) {
	var b strings.Builder
	if code := RunOnHost(&b); code != 2 || !strings.Contains(b.String(), "GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared") {
		t.Fatalf("%d %q", code, b.String())
	}
}
