package audit

import (
	"encoding/json"
	"time"
)

// ringEntry is an audit event as the admin UI's audit view
// (GET /api/v1/logs/audit, internal/logring.Audit) shows it: the shape of
// the control-plane API's log entries (`ts`, `level`, `msg`, `who`,
// `method`, `path`, `status`, `error`), the access log's `route_id`,
// and the event's own fields.
type ringEntry struct {
	Level string  `json:"level"`
	TS    float64 `json:"ts"`
	// Msg is "<kind> <action>", e.g. "rate_limit reject".
	Msg string `json:"msg"`
	// Who is the event's actor (agent, plugin, zone).
	Who string `json:"who,omitempty"`
	// RouteID is the route, named as in the access log.
	RouteID string `json:"route_id,omitempty"`
	// Decision is the action of an agent decision or WAF event.
	Decision string `json:"decision,omitempty"`
	// Error is the event's reason.
	Error string `json:"error,omitempty"`
	*Event
}

// tee adds e to the admin UI's audit view. Control-plane events are
// there already (the control-plane API logs each call to the view).
func (a *App) tee(e *Event) {
	if a.ring == nil || e.Kind == KindControlPlane {
		return
	}
	re := ringEntry{
		Level:   "warn",
		TS:      float64(e.Time.UnixNano()) / float64(time.Second),
		Msg:     e.Kind + " " + e.Action,
		Who:     e.Actor,
		RouteID: e.Route,
		Error:   e.Reason,
		Event:   e,
	}
	switch e.Kind {
	case KindAgentDecision, KindWAF:
		re.Decision = e.Action
	case KindConfigLoad:
		re.Level = "info"
	case KindConfigReloadFailed:
		re.Level = "error"
	}
	b, err := json.Marshal(re)
	if err != nil {
		return // Emit encoded the same event already
	}
	a.ring.Add(b)
}
