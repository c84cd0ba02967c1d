package controlapi

import (
	"context"
	"net/http"
	"strings"

	"go.uber.org/zap"
)

// reload serves POST /api/v1/config/reload: Hooks.Reload re-reads and
// applies the config file. One reload runs at a time; another one
// meanwhile is answered 409.
func (s *Server) reload(c *call) error {
	c.kind, c.id = "config", "reload"
	if s.hooks.Reload == nil {
		return newError(http.StatusNotImplemented, "config reload is not available")
	}
	if !s.reloading.TryLock() {
		return newError(http.StatusConflict, "a config reload is already running")
	}
	defer s.reloading.Unlock()
	// A client that hangs up does not cancel a reload half-way.
	result, err := s.hooks.Reload(context.WithoutCancel(c.r.Context()))
	if err != nil {
		lines := errorLines(err)
		c.errText = err.Error()
		c.extra = append(c.extra, zap.Strings("errors", lines))
		c.reply(http.StatusUnprocessableEntity, map[string]any{"error": err.Error(), "errors": lines})
		return nil
	}
	body := make(map[string]any, len(result)+1)
	for k, v := range result {
		body[k] = v
	}
	body["status"] = "reloaded"
	c.after = body
	c.reply(http.StatusOK, body)
	return nil
}

// validate serves GET /api/v1/config/validate: Hooks.Validate checks the
// config file without applying it.
func (s *Server) validate(c *call) error {
	if s.hooks.Validate == nil {
		return newError(http.StatusNotImplemented, "config validation is not available")
	}
	lines, err := s.hooks.Validate(c.r.Context())
	if err != nil {
		lines = append(lines, errorLines(err)...)
	}
	if len(lines) == 0 {
		c.reply(http.StatusOK, map[string]any{"valid": true})
		return nil
	}
	c.reply(http.StatusUnprocessableEntity, map[string]any{"valid": false, "errors": lines})
	return nil
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
