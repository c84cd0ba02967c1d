package discovery

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// TestFileDiscovery watches a real file: written in place, replaced by a
// rename, made invalid and removed (the last good set stays), then
// valid again.
func TestFileDiscovery(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "targets")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("# api\n127.0.0.1:8080\n127.0.0.2:8080 weight=3 # bigger\n\n")
	f := &File{Path: path, WatchInterval: caddy.Duration(50 * time.Millisecond)}
	ctx := provision(t, f)
	s := run(t, f)
	s.await(t, "127.0.0.1:8080,127.0.0.2:8080/3")

	write("127.0.0.3:8080\n")
	s.await(t, "127.0.0.3:8080")

	// Replaced by a rename (as an atomic writer or a ConfigMap volume).
	tmp := filepath.Join(dir, "targets.tmp")
	if err := os.WriteFile(tmp, []byte("127.0.0.4:9090 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	s.await(t, "127.0.0.4:9090/2")

	// Invalid content, an empty file and no file keep the last good set.
	n := s.count()
	write("127.0.0.5:8080\nsecret-token-value\n")
	waitFor(t, func() bool { return metric(t, ctx, RefreshName, ResultError) >= 2 })
	write("# nothing\n")
	waitFor(t, func() bool { return metric(t, ctx, RefreshName, ResultEmpty) >= 2 })
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return metric(t, ctx, RefreshName, ResultError) >= 4 })
	if s.count() != n || s.last() != "127.0.0.4:9090/2" {
		t.Errorf("a bad file published %q", s.last())
	}
	write("127.0.0.6:8080\n")
	s.await(t, "127.0.0.6:8080")
}

// TestParseTargets covers the format and its errors, which name the line
// and never quote the file.
func TestParseTargets(t *testing.T) {
	ts, err := ParseTargets([]byte("a.example:80\n  [::1]:443   weight=2  \r\n# c\n10.0.0.1:1 7"))
	if err != nil || show(ts) != "a.example:80,[::1]:443/2,10.0.0.1:1/7" {
		t.Fatalf("%v (%v)", show(ts), err)
	}
	for in, want := range map[string]string{
		"a:80\nsecret:value\n":   "line 2: the address ",
		"a:80 b c":               "line 1: expected host:port and an optional weight, found 3 fields",
		"a:80 weight=x":          "line 1: the weight must be a number",
		"a:80 0":                 "line 1: the weight must be from 1",
		"a:80\n\na:80":           "line 3: the target of line 1 again",
		"hunter2":                "line 1: the address must be host:port",
		"a:99999":                "the port must be",
		"\n\n::1:80 # no braces": "line 3: the address",
	} {
		_, err := ParseTargets([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
			continue
		}
		if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: the error quotes the file: %v", in, err)
		}
	}
}

func TestFileSettings(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	if err := (&File{}).Provision(ctx); err == nil {
		t.Error("no path accepted")
	}
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, make([]byte, MaxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := (&File{Path: big}).lookup(ctx); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: %v", err)
	}
}

func FuzzParseTargets(f *testing.F) {
	for _, seed := range []string{
		"127.0.0.1:8080\n", "a.example:80 weight=3 # c\n", "[::1]:443 2\r\n", "# only\n\n", "a:80\na:80\n",
		"a:80 b c", "a:0", "a:80 weight=", "[fe80::1%eth0]:80", "\x00:1",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, err := ParseTargets(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, tgt := range ts {
			if tgt.Weight < 1 || seen[tgt.Address] || strings.ContainsAny(tgt.Address, " \t\n#") {
				t.Fatalf("bad target %+v from %q", tgt, data)
			}
			seen[tgt.Address] = true
		}
	})
}

// TestFileWatched: with a watch interval of an hour, the watcher alone
// sees a write and a rename at once; a missing folder falls back to the
// interval.
func TestFileWatched(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "targets")
	if err := os.WriteFile(path, []byte("127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &File{Path: path, WatchInterval: caddy.Duration(time.Hour)}
	provision(t, f)
	s := run(t, f)
	s.await(t, "127.0.0.1:1")
	if err := os.WriteFile(path, []byte("127.0.0.1:2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.await(t, "127.0.0.1:2")
	if err := os.WriteFile(path+".new", []byte("127.0.0.1:3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	s.await(t, "127.0.0.1:3")

	gone := &File{Path: filepath.Join(dir, "missing", "targets"), WatchInterval: caddy.Duration(time.Hour)}
	provision(t, gone)
	stop := gone.watch(make(chan struct{}, 1))
	stop()
}
