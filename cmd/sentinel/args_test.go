package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// noDir says no path is a directory.
func noDir(string) (string, error) { return "", nil }

func TestRewriteArgsDirectory(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "listeners"), 0o755)
	os.WriteFile(filepath.Join(dir, "sentinel.kdl"), []byte("system { }\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "listeners", "a.kdl"), []byte("listeners { listener \"a\" { address \"127.0.0.1:1\"; } }\n"), 0o644)
	t.Setenv("TMPDIR", t.TempDir())
	for _, args := range [][]string{{"sentinel", "adapt", "--config", dir}, {"sentinel", "adapt", "--config=" + dir}} {
		got, err := rewriteArgs(args, "", fileExists, writeDefaultConfig, directoryEntry)
		if err != nil {
			t.Fatal(err)
		}
		joined := strings.Join(got, " ")
		if strings.Contains(joined, dir+" ") || !strings.HasSuffix(joined, "--adapter kdl") {
			t.Fatalf("directory not replaced by an entry: %s", joined)
		}
	}
	got, err := rewriteArgs([]string{"sentinel", "run"}, dir, fileExists, writeDefaultConfig, directoryEntry)
	if err != nil || strings.Contains(strings.Join(got, " "), dir+" ") {
		t.Fatalf("SENTINEL_CONFIG directory: %v %v", got, err)
	}
	if _, err := rewriteArgs([]string{"sentinel", "run", "--config", t.TempDir()}, "", fileExists, writeDefaultConfig, directoryEntry); err == nil {
		t.Error("empty directory: expected an error")
	}
}

func TestRewriteArgs(t *testing.T) {
	none := func(string) bool { return false }
	local := func(p string) bool { return p == defaultFile }
	def := func() (string, error) { return "/tmp/sentinel/default-x.kdl", nil }
	cases := []struct {
		name   string
		args   []string
		env    string
		exists func(string) bool
		want   string
	}{
		{"not a config command", []string{"sentinel", "version"}, "", none, "sentinel version"},
		{"no args", []string{"sentinel"}, "", none, "sentinel"},
		{"embedded default", []string{"sentinel", "run"}, "", none, "sentinel run --config /tmp/sentinel/default-x.kdl --adapter kdl"},
		{"local sentinel.kdl", []string{"sentinel", "run"}, "", local, "sentinel run --config sentinel.kdl --adapter kdl"},
		{"SENTINEL_CONFIG wins over local file", []string{"sentinel", "start"}, "/etc/sentinel/s.kdl", local, "sentinel start --config /etc/sentinel/s.kdl --adapter kdl"},
		{"--config implies kdl", []string{"sentinel", "adapt", "--config", "x.KDL"}, "", none, "sentinel adapt --config x.KDL --adapter kdl"},
		{"--config= form", []string{"sentinel", "validate", "--config=x.kdl"}, "", none, "sentinel validate --config=x.kdl --adapter kdl"},
		{"-c form", []string{"sentinel", "run", "-c", "x.kdl", "--watch"}, "", none, "sentinel run -c x.kdl --watch --adapter kdl"},
		{"explicit adapter kept", []string{"sentinel", "run", "--config", "x.kdl", "--adapter", "json"}, "", none, "sentinel run --config x.kdl --adapter json"},
		{"json config untouched", []string{"sentinel", "run", "--config", "caddy.json"}, "", none, "sentinel run --config caddy.json"},
		{"reload without config", []string{"sentinel", "reload"}, "", none, "sentinel reload"},
		{"reload with local file", []string{"sentinel", "reload"}, "", local, "sentinel reload --config sentinel.kdl --adapter kdl"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := rewriteArgs(c.args, c.env, c.exists, def, noDir)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, " ") != c.want {
				t.Errorf("got  %q\nwant %q", strings.Join(got, " "), c.want)
			}
		})
	}
	if _, err := rewriteArgs([]string{"sentinel", "run", "--adapter", "kdl"}, "", none, def, noDir); err == nil {
		t.Error("--adapter without config: expected an error")
	}
	failing := func() (string, error) { return "", errors.New("disk full") }
	if _, err := rewriteArgs([]string{"sentinel", "run"}, "", none, failing, noDir); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("write failure: %v", err)
	}
}

func TestMaterialize(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	p1, err := materialize([]byte("system { }\n"))
	if err != nil {
		t.Fatal(err)
	}
	p2, err := materialize([]byte("system { }\n"))
	if err != nil || p1 != p2 {
		t.Fatalf("same content, different files: %s %s (%v)", p1, p2, err)
	}
	if b, _ := os.ReadFile(p1); string(b) != "system { }\n" || filepath.Ext(p1) != ".kdl" {
		t.Errorf("file %s holds %q", p1, b)
	}
	if !fileExists(p1) || fileExists(filepath.Dir(p1)) {
		t.Error("fileExists")
	}
	// A file where the cache folder should be: the temporary folder is used.
	blocked := t.TempDir()
	os.WriteFile(filepath.Join(blocked, "sentinel"), []byte("x"), 0o600)
	t.Setenv("XDG_CACHE_HOME", blocked)
	if p, err := materialize([]byte("y")); err != nil || !strings.HasPrefix(p, os.TempDir()) {
		t.Errorf("fallback: %s %v", p, err)
	}
}

func TestWriteDefaultConfig(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	p, err := writeDefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || !strings.Contains(string(b), `listener "ops"`) {
		t.Fatalf("embedded default not written: %v", err)
	}
}
