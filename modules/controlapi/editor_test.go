package controlapi

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// editorEnv is an API with the config editor on (or off) over a real
// file; reload fails when the file holds "fail-reload".
func editorEnv(t *testing.T, on bool) (*testEnv, string, *int) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "sentinel.kdl")
	if err := os.WriteFile(file, []byte("system { }\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	reloads := new(int)
	e := newEnv(t, func(c *Config, h *Hooks) {
		c.ConfigEditor = on
		c.Tokens = append(c.Tokens, Token{Name: "team", Token: "team-a-0123456789abcdef0123456789", Scopes: []string{ScopeAdmin}, Namespace: "team-a"})
		h.Source = func() (string, []byte, error) {
			b, err := os.ReadFile(file)
			return file, b, err
		}
		h.ValidateSource = func(_ context.Context, b []byte) ([]string, error) {
			if strings.Contains(string(b), "adress") {
				return []string{file + `:2:3: unknown setting "adress"`}, nil
			}
			return nil, nil
		}
		h.Reload = func(context.Context) (ReloadResult, error) {
			*reloads++
			b, _ := os.ReadFile(file)
			if strings.Contains(string(b), "fail-reload") {
				return ReloadResult{}, errors.New("loading the new config: listener busy")
			}
			return ReloadResult{ConfigFile: file, ConfigSHA256: digestHex(b)}, nil
		}
	})
	return e, file, reloads
}

func sourceETag(t *testing.T, e *testEnv) (string, configSource) {
	t.Helper()
	w := e.do(req{method: "GET", path: "/api/v1/config/source", token: adminToken})
	var got configSource
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 {
		t.Fatalf("source: %d %s", w.Code, w.Body)
	}
	if tag := w.Header().Get("ETag"); tag != `"`+got.SHA256+`"` {
		t.Fatalf("ETag %q, sha256 %q", tag, got.SHA256)
	}
	return w.Header().Get("ETag"), got
}

func TestConfigEditorApply(t *testing.T) {
	e, file, reloads := editorEnv(t, true)
	tag, src := sourceETag(t, e)
	if !src.Editor {
		t.Fatal("source does not say the editor is on")
	}
	body := `{"content":"system { }\nroutes { }\n"}`
	put := func(token, ifMatch, body string) req {
		r := req{method: "PUT", path: "/api/v1/config/source", token: token, body: body}
		if ifMatch != "" {
			r.header = map[string]string{"If-Match": ifMatch}
		}
		return r
	}

	checkError(t, e.do(put(adminToken, "", body)), 428, "If-Match is required", "")
	checkError(t, e.do(put(adminToken, `"0000"`, body)), 412, "changed since it was read", "")
	checkError(t, e.do(put(adminToken, `W/`+tag, body)), 412, "changed since", "")
	checkError(t, e.do(put(operateToken, tag, body)), 403, "needs the admin scope", "")
	checkError(t, e.do(put("team-a-0123456789abcdef0123456789", tag, body)), 403, "", "")
	w := e.do(put(adminToken, tag, `{"content":"system {\n  adress 1\n}"}`))
	checkError(t, w, 422, "nothing was written", "")
	if !strings.Contains(w.Body.String(), `unknown setting`) || *reloads != 0 {
		t.Errorf("invalid: %s, %d reloads", w.Body, *reloads)
	}
	if b, _ := os.ReadFile(file); string(b) != "system { }\n" {
		t.Fatalf("an invalid text was written: %q", b)
	}

	w = e.do(put(adminToken, tag, body))
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"status":"reloaded"`) || *reloads != 1 {
		t.Fatalf("apply: %d %s", w.Code, w.Body)
	}
	b, _ := os.ReadFile(file)
	if string(b) != "system { }\nroutes { }\n" || w.Header().Get("ETag") != `"`+digestHex(b)+`"` {
		t.Errorf("file %q, ETag %s", b, w.Header().Get("ETag"))
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(file), ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	// The old tag no longer matches; the audit entry has the digests, not the text.
	checkError(t, e.do(put(adminToken, tag, body)), 412, "", "")
	found := false
	for _, l := range e.logs.All() {
		j := entryJSON(t, l)
		if strings.Contains(j, "/api/v1/config/source") && strings.Contains(j, digestHex(b)) {
			found = true
			if strings.Contains(j, "routes { }") {
				t.Errorf("audit entry holds the text: %s", j)
			}
		}
	}
	if !found {
		t.Error("no audit entry of the write")
	}
}

func TestConfigEditorRestoresOnFailedReload(t *testing.T) {
	e, file, reloads := editorEnv(t, true)
	tag, _ := sourceETag(t, e)
	r := req{method: "PUT", path: "/api/v1/config/source", token: adminToken, body: `{"content":"fail-reload\n"}`,
		header: map[string]string{"If-Match": tag}}
	w := e.do(r)
	checkError(t, w, 422, "previous config file was restored", "")
	if !strings.Contains(w.Body.String(), "listener busy") || *reloads != 1 {
		t.Errorf("body %s, %d reloads", w.Body, *reloads)
	}
	if b, _ := os.ReadFile(file); string(b) != "system { }\n" {
		t.Errorf("not restored: %q", b)
	}
}

func TestConfigEditorOff(t *testing.T) {
	e, file, _ := editorEnv(t, false)
	tag, src := sourceETag(t, e)
	if src.Editor {
		t.Error("editor reported on")
	}
	checkError(t, e.do(req{method: "PUT", path: "/api/v1/config/source", token: adminToken, body: `{"content":"x"}`,
		header: map[string]string{"If-Match": tag}}), 403, "config-editor", "")
	if b, _ := os.ReadFile(file); string(b) != "system { }\n" {
		t.Errorf("written: %q", b)
	}
	// On, but without the hooks: 501.
	bare := newEnv(t, func(c *Config, _ *Hooks) { c.ConfigEditor = true })
	checkError(t, bare.do(req{method: "PUT", path: "/api/v1/config/source", token: adminToken, body: `{"content":"x"}`,
		header: map[string]string{"If-Match": `"x"`}}), 501, "not available", "")
}

func TestWriteFileAtomicErrors(t *testing.T) {
	dir := t.TempDir()
	if err := writeFileAtomic(filepath.Join(dir, "missing.kdl"), []byte("x")); err == nil {
		t.Error("a missing file was written")
	}
	if err := writeFileAtomic(dir, []byte("x")); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("folder: %v", err)
	}
	// Through a symbolic link, the real file is replaced, the link kept.
	real := filepath.Join(dir, "real.kdl")
	link := filepath.Join(dir, "link.kdl")
	if err := os.WriteFile(real, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(link, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(real); string(b) != "new" {
		t.Errorf("real file %q", b)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 {
		t.Error("the link was replaced")
	}
}
