package controlapi

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/sentinel-proxy/sentinel/modules/adminui"
)

// uiPath reports whether a request is for the admin UI's files (/ui and
// /ui/...), which are served without authentication: they hold no secret,
// and the UI calls the API with the token the operator types in.
func uiPath(p string) bool {
	return p == strings.TrimSuffix(adminui.Prefix, "/") || strings.HasPrefix(p, adminui.Prefix)
}

// whoami is the answer of GET /api/v1/whoami: what the caller may do.
type whoami struct {
	// Name is the token's name, or the client certificate's identity.
	Name string `json:"name"`
	// Scope is the caller's scope: read, operate or admin.
	Scope string `json:"scope"`
	// Namespace is the namespace the caller is limited to, if any.
	Namespace string `json:"namespace,omitempty"`
}

// whoAmI serves GET /api/v1/whoami: the caller's name, scope and
// namespace (the UI shows only the controls the scope allows).
func (s *Server) whoAmI(c *call) (whoami, error) {
	return whoami{Name: c.who.name, Scope: c.who.scope.String(), Namespace: c.who.namespace}, nil
}

// configSource is the answer of GET /api/v1/config/source.
type configSource struct {
	// File is the path of the config file.
	File string `json:"file"`
	// Content is the file's text as it is now on disk.
	Content string `json:"content"`
	// SHA256 is the SHA-256 (hex) of Content.
	SHA256 string `json:"sha256"`
	// Editor is true when the API's config_editor option is on: PUT
	// /api/v1/config/source then replaces the file (the UI's Apply).
	Editor bool `json:"editor"`
}

// configText is the body of POST /api/v1/config/validate.
type configText struct {
	// Content is a config file's text to validate in the config file's
	// place (its includes are read relative to it); nothing is applied.
	Content string `json:"content" api:"required"`
}

// getConfigSource serves GET /api/v1/config/source: the config file's
// text (admin only: it may hold secrets a read token must not see).
func (s *Server) getConfigSource(c *call) (configSource, error) {
	if s.hooks.Source == nil {
		return configSource{}, newError(http.StatusNotImplemented, "the config source is not available")
	}
	file, body, err := s.hooks.Source()
	if err != nil {
		return configSource{}, newError(http.StatusUnprocessableEntity, "reading the config file: %v", err)
	}
	digest := sha256.Sum256(body)
	sum := hex.EncodeToString(digest[:])
	c.w.Header().Set("ETag", `"`+sum+`"`)
	return configSource{File: file, Content: string(body), SHA256: sum, Editor: s.editor}, nil
}

// validateText serves POST /api/v1/config/validate: the text given is
// validated as if it were the config file (422 when invalid), and
// nothing is applied.
func (s *Server) validateText(c *call, in *configText) (validation, error) {
	if s.hooks.ValidateSource == nil {
		return validation{}, newError(http.StatusNotImplemented, "config validation is not available")
	}
	lines, err := s.hooks.ValidateSource(c.r.Context(), []byte(in.Content))
	if err != nil {
		lines = append(lines, errorLines(err)...)
	}
	if len(lines) == 0 {
		return validation{Valid: true}, nil
	}
	c.code = http.StatusUnprocessableEntity
	return validation{Errors: lines}, nil
}
