package controlapi

import (
	"net"

	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/modules/audit"
	"github.com/sentinel-proxy/sentinel/registry"
)

// The bound on audit entries of refused read calls: refusalRate per
// second on average, refusalBurst at once. Refused mutations are always
// audited (their bodies are bounded by max_body_bytes and they need a
// route); what exceeds the bound is counted, and the count is written
// with the next entry.
const (
	refusalRate  = 20
	refusalBurst = 200
)

// auditCall writes the audit entry of a mutation or of a refused read
// (401 and 403; a bounded number per second): who, what, from
// where, the status, and the state before and after. It never logs
// credentials: no header is logged, only the token's name.
func (s *Server) auditCall(c *call) {
	if !mutation(c.r.Method) && !s.refusals.Allow() {
		s.suppressed.Add(1)
		return
	}
	fields := make([]zap.Field, 0, 15)
	if n := s.suppressed.Swap(0); n > 0 {
		fields = append(fields, zap.Int64("refused_reads_not_audited", n))
	}
	if c.who != nil {
		fields = append(fields,
			zap.String("who", c.who.name),
			zap.String("auth", c.who.method),
			zap.String("scope", c.who.scope.String()),
		)
		if c.who.namespace != "" {
			fields = append(fields, zap.String("token_namespace", c.who.namespace))
		}
		if c.who.identity != "" && c.who.method != "client_certificate" {
			fields = append(fields, zap.String("client_certificate", c.who.identity))
		}
	} else {
		fields = append(fields, zap.String("who", ""), zap.String("auth", "none"))
	}
	fields = append(fields,
		zap.String("method", c.r.Method),
		zap.String("path", c.r.URL.Path),
		zap.String("remote_addr", c.r.RemoteAddr),
		zap.Int("status", c.status),
	)
	if c.kind != "" {
		fields = append(fields, zap.String(c.kind, c.id))
		if ns := registry.NamespaceOf(c.id); ns != "" {
			fields = append(fields, zap.String("namespace", ns))
		}
	}
	if c.before != nil {
		fields = append(fields, zap.Any("before", c.before))
	}
	if c.after != nil {
		fields = append(fields, zap.Any("after", c.after))
	}
	if c.errText != "" {
		fields = append(fields, zap.String("error", c.errText))
	}
	fields = append(fields, c.extra...)
	if s.hooks.Trail != nil {
		s.trail(c)
	}
	switch {
	case !mutation(c.r.Method):
		s.audit.Warn("control-plane read refused", fields...)
	case c.status >= 200 && c.status < 300:
		s.audit.Info("control-plane change", fields...)
	default:
		s.audit.Warn("control-plane change refused", fields...)
	}
}

// trail records the call in the audit trail (kind control_plane): the
// same facts as the log entry, never a credential.
func (s *Server) trail(c *call) {
	e := audit.Event{
		Kind:   audit.KindControlPlane,
		Action: "change",
		Method: c.r.Method,
		Path:   c.r.URL.Path,
		Client: hostOf(c.r.RemoteAddr),
		Status: c.status,
		Reason: c.errText,
	}
	if !mutation(c.r.Method) || c.status < 200 || c.status > 299 {
		e.Action = "refused"
	}
	details := map[string]any{}
	if c.who != nil {
		e.Actor, e.TokenNamespace = c.who.name, c.who.namespace
		details["auth"], details["scope"] = c.who.method, c.who.scope.String()
		if c.who.identity != "" && c.who.method != "client_certificate" {
			details["client_certificate"] = c.who.identity
		}
	} else {
		details["auth"] = "none"
	}
	if c.kind != "" {
		details[c.kind] = c.id
		e.Namespace = registry.NamespaceOf(c.id)
	}
	if c.before != nil {
		details["before"] = c.before
	}
	if c.after != nil {
		details["after"] = c.after
	}
	e.Details = details
	_ = s.hooks.Trail.Emit(e)
}

// hostOf is the host of a host:port address.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
