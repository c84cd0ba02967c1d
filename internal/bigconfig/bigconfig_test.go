package bigconfig

import (
	"bytes"
	"strings"
	"testing"
)

func TestConfig(t *testing.T) {
	full := Config(3, Options{})
	if !bytes.HasPrefix(full, []byte(Header)) {
		t.Fatal("Config does not start with Header")
	}
	if !bytes.Equal(full[len(Header):], Blocks(3, Options{})) {
		t.Fatal("Config is not Header then Blocks")
	}
	for what, want := range map[string]int{"route \"r": 3, "upstream \"u": 6 /* each route names one */, "target \"10.0.": 9, "health-check {": 3, "retry-policy": 3, "filters \"tag\"": 3} {
		if got := strings.Count(string(full), what); got != want {
			t.Errorf("%d of %q, want %d", got, what, want)
		}
	}
	bare := Config(3, Options{NoHealthChecks: true})
	if strings.Contains(string(bare), "health-check") {
		t.Error("NoHealthChecks left a health check")
	}
	if got, want := len(full)-len(bare), 3*len(healthCheck); got != want {
		t.Errorf("NoHealthChecks removed %d bytes, want %d (the health checks alone)", got, want)
	}
	if strings.Count(string(Config(0, Options{})), "{") != strings.Count(string(Config(0, Options{})), "}") {
		t.Error("unbalanced braces with no routes")
	}
}
