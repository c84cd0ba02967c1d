package controlapi

import (
	"go.uber.org/zap"
)

// auditCall writes the audit entry of a mutation: who, what, from where,
// the status, and the state before and after. It never logs credentials:
// no header is logged, only the token's name.
func (s *Server) auditCall(c *call) {
	fields := make([]zap.Field, 0, 14)
	if c.who != nil {
		fields = append(fields,
			zap.String("who", c.who.name),
			zap.String("auth", c.who.method),
			zap.String("scope", c.who.scope.String()),
		)
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
	if c.status >= 200 && c.status < 300 {
		s.audit.Info("control-plane change", fields...)
	} else {
		s.audit.Warn("control-plane change refused", fields...)
	}
}
