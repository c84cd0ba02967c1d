package controlapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/sentinel-proxy/sentinel/registry"
)

// The request bodies of the API. Their tags drive the strict decoder
// (decode.go) and the OpenAPI schemas (openapi.go); their doc comments
// are the schemas' descriptions (openapi_docs.go).

// Limits of request values; the tags of the request types repeat them
// (a test checks that they agree).
const (
	// maxWeight is the largest target weight (the registry's limit).
	maxWeight = registry.MaxWeight
	// maxDrainSecs is the longest drain timeout: 7 days.
	maxDrainSecs = 7 * 24 * 3600
	// maxTargets is the most targets one request may list.
	maxTargets = 10000
)

// newUpstream is the body of POST /api/v1/upstreams.
type newUpstream struct {
	// ID is the new upstream's id (at most 128 characters; a namespace's
	// is qualified: team-a:api).
	ID upstreamID `json:"id" api:"required" pattern:"^([A-Za-z0-9._-]+:){0,2}[A-Za-z0-9][A-Za-z0-9._-]*$" maxLength:"128"`
	// Targets are its targets (default none).
	Targets targetInputs `json:"targets" max:"10000"`
}

// subjectID names the new upstream in the audit entry.
func (n *newUpstream) subjectID() string { return string(n.ID) }

// targetList is the body of PUT /api/v1/upstreams/{id}/targets.
type targetList struct {
	// Targets are the upstream's new targets.
	Targets targetInputs `json:"targets" api:"required" max:"10000"`
}

// targetInput is a target as a request gives it.
type targetInput struct {
	// Address is host:port: an IP address (IPv6 in brackets) or a DNS
	// name, port 1-65535.
	Address targetAddress `json:"address" api:"required" example:"10.0.0.1:8080"`
	// Weight is the target's share of the requests (default 1).
	Weight int `json:"weight" min:"1" max:"1048576" default:"1"`
}

// target returns the registry's target of t.
func (t targetInput) target() registry.Target {
	return registry.Target{Address: string(t.Address), Weight: t.Weight}
}

// targetInputs are the targets of a request; their addresses are
// distinct.
type targetInputs []targetInput

// Validate refuses a repeated address.
func (ts targetInputs) Validate(path string) error {
	seen := make(map[targetAddress]int, len(ts))
	for i, t := range ts {
		if j, dup := seen[t.Address]; dup {
			return fieldError(fmt.Sprintf("%s[%d].address", path, i), "%s[%d].address %q repeats %s[%d].address", path, i, t.Address, path, j)
		}
		seen[t.Address] = i
	}
	return nil
}

// targetPatch is the body of PATCH
// /api/v1/upstreams/{id}/targets/{address}: a new weight and/or state.
type targetPatch struct {
	// Weight is the target's new weight.
	Weight *int `json:"weight,omitempty" min:"1" max:"1048576"`
	// State is the target's new state: active clears a drain deadline,
	// draining sets none.
	State *registry.State `json:"state,omitempty" enum:"active,draining"`
}

// Validate refuses an empty patch.
func (p targetPatch) Validate(string) error {
	if p.Weight == nil && p.State == nil {
		return newError(http.StatusBadRequest, "give weight and/or state")
	}
	return nil
}

// amendSchema requires one member at least.
func (targetPatch) amendSchema(s jsonObject) { s["minProperties"] = 1 }

// drainOptions is the optional body of the drain endpoints.
type drainOptions struct {
	// TimeoutSecs removes the targets when it expires; 0 or absent:
	// never.
	TimeoutSecs int64 `json:"timeout_secs" min:"0" max:"604800"`
}

// routeEnabled is the body of PUT /api/v1/routes/{id}/enabled.
type routeEnabled struct {
	// Enabled switches the route on (true) or off (false).
	Enabled bool `json:"enabled" api:"required"`
}

// upstreamID is the id of an upstream made through the API.
type upstreamID string

// Validate checks the id with the registry's rule.
func (id upstreamID) Validate(path string) error { return validateID(string(id), path) }

// targetAddress is the address of a target given through the API.
type targetAddress string

// Validate checks the address with the registry's rule.
func (a targetAddress) Validate(path string) error { return validateAddress(string(a), path) }

// validateID checks the id of an upstream created through the API with
// the registry's rule.
func validateID(id, path string) error {
	return registryFieldError(registry.ValidateID(id), path)
}

// validateAddress checks a target address with the registry's rule.
func validateAddress(addr, path string) error {
	return registryFieldError(registry.ValidateAddress(addr), path)
}

// registryFieldError turns a registry validation error into a 400 about
// the input field at path.
func registryFieldError(err error, path string) error {
	var ie *registry.InvalidError
	if errors.As(err, &ie) {
		return fieldError(path, "%s %q: %s", path, ie.Value, ie.Reason)
	}
	return err
}
