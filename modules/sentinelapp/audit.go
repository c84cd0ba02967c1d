package sentinelapp

import (
	"github.com/sentinel-proxy/sentinel/modules/audit"
)

// maxAuditedFindings bounds the errors an event of a failed reload
// carries.
const maxAuditedFindings = 20

// auditLoad records that this config was loaded (started).
func (a *App) auditLoad() {
	if a.trail == nil {
		return
	}
	_ = a.trail.Emit(audit.Event{Kind: audit.KindConfigLoad, Action: "load", Details: map[string]any{
		"config_file": a.ConfigFile, "upstreams": len(a.Upstreams),
	}})
}

// auditReloadFailed records a reload that failed; the running config
// stays. The errors are the adapter's findings (file:line:col: message;
// they never show secrets).
func (a *App) auditReloadFailed(lines []string) {
	if a.trail == nil {
		return
	}
	if len(lines) > maxAuditedFindings {
		lines = lines[:maxAuditedFindings]
	}
	_ = a.trail.Emit(audit.Event{Kind: audit.KindConfigReloadFailed, Action: "reload_failed", Reason: "reload refused; the running config stays",
		Details: map[string]any{"config_file": a.ConfigFile, "errors": lines}})
}
