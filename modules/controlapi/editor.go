package controlapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"
)

// sourceDigest is what the audit entry of a config write records of a
// file's text: its SHA-256, never the text (it may hold secrets).
type sourceDigest struct {
	SHA256 string `json:"sha256"`
}

// putConfigSource serves PUT /api/v1/config/source (config_editor only):
// the text replaces the config file when If-Match is the file's current
// SHA-256 and the text validates; it is then reloaded, and the previous
// text written back when the reload fails.
func (s *Server) putConfigSource(c *call, in *configText) (ReloadResult, error) {
	c.kind, c.id = "config", "source"
	if !s.editor {
		return ReloadResult{}, newError(http.StatusForbidden, "writing the config file is off: set config-editor #true in the admin-api block (JSON config_editor) to allow it")
	}
	if s.hooks.Source == nil || s.hooks.ValidateSource == nil || s.hooks.Reload == nil {
		return ReloadResult{}, newError(http.StatusNotImplemented, "the config editor is not available")
	}
	tags := c.r.Header.Values("If-Match")
	if len(tags) == 0 {
		return ReloadResult{}, newError(http.StatusPreconditionRequired, "If-Match is required: the ETag of GET /api/v1/config/source (the file's SHA-256)")
	}
	if !s.reloading.TryLock() {
		return ReloadResult{}, newError(http.StatusConflict, "a config reload is already running")
	}
	defer s.reloading.Unlock()
	file, old, err := s.hooks.Source()
	if err != nil {
		return ReloadResult{}, newError(http.StatusUnprocessableEntity, "reading the config file: %v", err)
	}
	oldSum := digestHex(old)
	c.before = sourceDigest{SHA256: oldSum}
	if !sourceTagMatches(tags, oldSum) {
		return ReloadResult{}, newError(http.StatusPreconditionFailed, "the config file changed since it was read (its SHA-256 is now %s): read it again", oldSum)
	}
	ctx := context.WithoutCancel(c.r.Context())
	content := []byte(in.Content)
	lines, err := s.hooks.ValidateSource(ctx, content)
	if err != nil {
		lines = append(lines, errorLines(err)...)
	}
	if len(lines) > 0 {
		c.extra = append(c.extra, zap.Strings("errors", lines))
		return ReloadResult{}, &apiError{status: http.StatusUnprocessableEntity, message: "the config text is invalid; nothing was written", lines: lines}
	}
	if err := writeFileAtomic(file, content); err != nil {
		return ReloadResult{}, newError(http.StatusUnprocessableEntity, "writing the config file: %v", err)
	}
	result, err := s.hooks.Reload(ctx)
	if err != nil {
		lines := errorLines(err)
		msg := "the reload failed; the previous config file was restored and the running config is unchanged"
		if rerr := writeFileAtomic(file, old); rerr != nil {
			msg = "the reload failed, and restoring the previous config file failed too: " + rerr.Error()
			lines = append(lines, "restoring "+file+": "+rerr.Error())
		}
		c.extra = append(c.extra, zap.Strings("errors", lines))
		return ReloadResult{}, &apiError{status: http.StatusUnprocessableEntity, message: msg, lines: lines}
	}
	result.Status = "reloaded"
	newSum := digestHex(content)
	c.after = sourceDigest{SHA256: newSum}
	c.w.Header().Set("ETag", `"`+newSum+`"`)
	return result, nil
}

// digestHex returns the SHA-256 of b in hex.
func digestHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// sourceTagMatches reports whether one of the If-Match values names the
// digest: "<sha256>" (strong; a weak tag never matches), comma-separated
// lists allowed.
func sourceTagMatches(values []string, digest string) bool {
	for _, v := range values {
		for _, tag := range strings.Split(v, ",") {
			tag = strings.TrimSpace(tag)
			if len(tag) >= 2 && tag[0] == '"' && tag[len(tag)-1] == '"' && strings.EqualFold(tag[1:len(tag)-1], digest) {
				return true
			}
		}
	}
	return false
}

// writeFileAtomic replaces the file at path (following symbolic links to
// the real file) with data: a temporary file in the same folder, with
// the file's mode, synced, then renamed over it, so that a reader sees
// the old text or the new one, never a part.
func writeFileAtomic(path string, data []byte) (err error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	info, err := os.Stat(real)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	dir := filepath.Dir(real)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(real)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	_, werr := tmp.Write(data)
	err = errors.Join(werr, tmp.Chmod(info.Mode().Perm()), tmp.Sync())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), real); err != nil {
		return err
	}
	// Make the rename durable; some file systems cannot sync a folder.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
