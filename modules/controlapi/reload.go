package controlapi

import (
	"context"
	"net/http"
	"strings"

	"go.uber.org/zap"
)

// ReloadResult is the answer of a reload (POST /api/v1/config/reload).
// Hooks.Reload fills ConfigFile and Warnings; the server sets Status.
type ReloadResult struct {
	// Status is "reloaded".
	Status string `json:"status"`
	// ConfigFile is the file that was read and applied.
	ConfigFile string `json:"config_file,omitempty"`
	// ConfigSHA256 is the SHA-256 (hex) of the file's content as read:
	// which revision of the file the replica applied (the operator
	// compares it with the ConfigMap it wrote).
	ConfigSHA256 string `json:"config_sha256,omitempty"`
	// Warnings are the adapter's warnings about the new config
	// ("file:line:col: message").
	Warnings []string `json:"warnings"`
}

// amendSchema documents the status member's one value.
func (ReloadResult) amendSchema(s jsonObject) {
	if props, ok := s["properties"].(jsonObject); ok {
		props["status"] = jsonObject{"type": "string", "enum": []string{"reloaded"}}
	}
}

// validation is the answer of a validation.
type validation struct {
	// Errors are the problems found, file:line:col: message.
	Errors []string `json:"errors,omitempty"`
	// Valid is true when the config file is valid.
	Valid bool `json:"valid"`
}

// reload serves POST /api/v1/config/reload: Hooks.Reload re-reads and
// applies the config file. One reload runs at a time; another one
// meanwhile is answered 409. An invalid file is answered 422 with its
// errors, one per line.
func (s *Server) reload(c *call) (ReloadResult, error) {
	c.kind, c.id = "config", "reload"
	if s.hooks.Reload == nil {
		return ReloadResult{}, newError(http.StatusNotImplemented, "config reload is not available")
	}
	if !s.reloading.TryLock() {
		return ReloadResult{}, newError(http.StatusConflict, "a config reload is already running")
	}
	defer s.reloading.Unlock()
	// A client that hangs up does not cancel a reload half-way.
	result, err := s.hooks.Reload(context.WithoutCancel(c.r.Context()))
	if err != nil {
		lines := errorLines(err)
		c.extra = append(c.extra, zap.Strings("errors", lines))
		return ReloadResult{}, &apiError{status: http.StatusUnprocessableEntity, message: err.Error(), lines: lines}
	}
	result.Status = "reloaded"
	c.after = result
	return result, nil
}

// validate serves GET /api/v1/config/validate: Hooks.Validate checks the
// config file without applying it (422 when it is invalid).
func (s *Server) validate(c *call) (validation, error) {
	if s.hooks.Validate == nil {
		return validation{}, newError(http.StatusNotImplemented, "config validation is not available")
	}
	lines, err := s.hooks.Validate(c.r.Context())
	if err != nil {
		lines = append(lines, errorLines(err)...)
	}
	if len(lines) == 0 {
		return validation{Valid: true}, nil
	}
	c.code = http.StatusUnprocessableEntity
	return validation{Errors: lines}, nil
}

// errorLines splits an error into lines: the errors it joins, else the
// lines of its text.
func errorLines(err error) []string {
	var lines []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if e != nil {
				lines = append(lines, errorLines(e)...)
			}
		}
		return lines
	}
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		lines = []string{"unknown error"}
	}
	return lines
}
