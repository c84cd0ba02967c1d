package routeguard

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAppDropsHandlersOnStart: once started (every guard of its config
// provisioned), the app no longer holds the handlers' JSON, and says so
// to a guard provisioned after.
func TestAppDropsHandlersOnStart(t *testing.T) {
	a := &App{Routes: map[string][]json.RawMessage{"a": {json.RawMessage(`{"handler":"static_response"}`)}}}
	if hs, err := a.handlersOf("a"); err != nil || len(hs) != 1 {
		t.Fatalf("before start: %v %v", hs, err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if a.Routes != nil {
		t.Error("the handlers are still held after Start")
	}
	if _, err := a.handlersOf("a"); err == nil || !strings.Contains(err.Error(), "no longer holds") {
		t.Errorf("after start: %v", err)
	}
	if err := a.Stop(); err != nil {
		t.Error(err)
	}
}
