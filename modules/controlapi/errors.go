package controlapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/sentinel-proxy/sentinel/registry"
)

// apiError is an error answered to the client as
// {"error": message, "field": field}.
type apiError struct {
	status  int
	message string
	// field names the input field at fault, e.g. "targets[1].address".
	field string
	// lines are the problems found, one per line, when there are several
	// (a config file's errors).
	lines []string
}

// Error returns the message.
func (e *apiError) Error() string { return e.message }

// errorBody is the JSON body of an error response.
type errorBody struct {
	// Error says what went wrong.
	Error string `json:"error"`
	// Field names the input field at fault, e.g. targets[1].address.
	Field string `json:"field,omitempty"`
	// Errors lists the problems one per element, file:line:col: message
	// where known, when a config file is invalid.
	Errors []string `json:"errors,omitempty"`
}

// newError returns an apiError with a formatted message.
func newError(status int, format string, args ...any) *apiError {
	return &apiError{status: status, message: fmt.Sprintf(format, args...)}
}

// fieldError returns a 400 error about one input field.
func fieldError(field, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, message: fmt.Sprintf(format, args...), field: field}
}

// toAPIError maps an error to its response: apiErrors as they are, the
// registry's errors to their status, anything else to 500 (without its
// text, which may reveal internals).
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, registry.ErrPersist):
		// The store's error (paths, OS errors) goes to the log, not to
		// the client.
		return &apiError{status: http.StatusServiceUnavailable, message: "the change was not applied: the control-plane state could not be saved (the proxy's log says why)"}
	case errors.Is(err, registry.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, registry.ErrExists):
		status = http.StatusConflict
	case errors.Is(err, registry.ErrConflict):
		status = http.StatusPreconditionFailed
	case errors.Is(err, registry.ErrConfigDefined), errors.Is(err, registry.ErrDiscovered):
		status = http.StatusConflict
	case errors.Is(err, registry.ErrInvalid):
		status = http.StatusBadRequest
	default:
		return &apiError{status: status, message: "internal error"}
	}
	return &apiError{status: status, message: err.Error()}
}
