package translate

import (
	"fmt"
	"time"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// ruleTimeouts returns the handlers bounding a rule's request
// (timeouts.request: the whole exchange, filters included) and its
// backend request (timeouts.backendRequest: the proxying to the backend),
// both Sentinel's sentinel_timeout handler answering 504 when the time is
// up. A zero duration ("0s") disables a timeout, as the spec says; nil
// handlers mean no timeout.
func ruleTimeouts(t *gwv1.HTTPRouteTimeouts, ri int) (request, backend map[string]any, err *refError) {
	if t == nil {
		return nil, nil, nil
	}
	parse := func(d *gwv1.Duration, field string) (map[string]any, *refError) {
		if d == nil {
			return nil, nil
		}
		v, perr := time.ParseDuration(string(*d))
		if perr != nil || v < 0 {
			return nil, &refError{gwv1.RouteReasonUnsupportedValue, fmt.Sprintf("rules[%d].timeouts.%s: %q is not a duration", ri, field, string(*d))}
		}
		if v == 0 {
			return nil, nil
		}
		return map[string]any{"handler": "sentinel_timeout", "timeout": v.String()}, nil
	}
	if request, err = parse(t.Request, "request"); err != nil {
		return nil, nil, err
	}
	backend, err = parse(t.BackendRequest, "backendRequest")
	return request, backend, err
}
