package kdladapter

import (
	"encoding/json"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/logging"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/audit"
)

// The audit trail: observability.logging.audit-log, mapped onto the
// `sentinel_audit` app (modules/audit, docs/audit.md). The original's
// `file` becomes a file sink; `sinks { … }` (an extension) declares the
// others, each with its delivery settings.

// auditSinkTypes are the sink blocks of `sinks`, in the table's order.
var auditSinkTypes = []string{"file", "kafka", "elasticsearch", "datadog", "gcs", "s3"}

// auditSinkKeys declares each sink block: the sink module's settings,
// then the delivery settings (audit.SinkConfig), and reads both.
var auditSinkKeys = map[string]auditSink{
	"file": newAuditSink(typedBlockInto[audit.FileSink](h("file", "NDJSON file, rotated (`sentinel.audit.sinks.file`)"),
		stringField("path", "required: the file", func(f *audit.FileSink) *string { return &f.Filename }),
		intField("roll-size-mb", "rotate at this size (default 100)", 1, 1<<20, func(f *audit.FileSink) *int { return &f.RollSizeMB }),
		intField("roll-keep", "rotated files kept (default 10)", 0, 1<<20, func(f *audit.FileSink) *int { return &f.RollKeep }),
		intField("roll-keep-days", "days rotated files are kept (default 90)", 0, 1<<20, func(f *audit.FileSink) *int { return &f.RollKeepDays }),
	)),
	"kafka": newAuditSink(typedBlockInto[audit.KafkaSink](h("kafka", "records keyed by event id, idempotent producer, acks all (`sentinel.audit.sinks.kafka`, franz-go)"),
		stringsField("brokers", "required: seed brokers `host:port`", func(k *audit.KafkaSink) *[]string { return &k.Brokers }),
		stringField("topic", "required", func(k *audit.KafkaSink) *string { return &k.Topic }),
		boolField("tls", "TLS with the system roots", func(k *audit.KafkaSink) *bool { return &k.TLS }),
		plainField(h("sasl-mechanism", "`sasl.mechanism`: `plain`, `scram-sha-256` or `scram-sha-512`"), func(a *adapter, n *kdl.Node, k *audit.KafkaSink) {
			if s, ok := a.str(n); ok {
				if m, ok := a.oneOf(n, strings.ToLower(s), "plain", "scram-sha-256", "scram-sha-512"); ok {
					saslOf(k).Mechanism = m
				}
			}
		}),
		plainField(h("sasl-username", "`sasl.username`"), func(a *adapter, n *kdl.Node, k *audit.KafkaSink) {
			if s, ok := a.str(n); ok {
				saslOf(k).Username = s
			}
		}),
		plainField(h("sasl-password", "`sasl.password`: write `\"{env.KAFKA_PASSWORD}\"`"), func(a *adapter, n *kdl.Node, k *audit.KafkaSink) {
			if s, ok := a.str(n); ok {
				saslOf(k).Password = s
			}
		}),
	)),
	"gcs": newAuditSink(typedBlockInto[audit.GCSSink](h("gcs", "one gzip NDJSON object per batch, named after its first and last event ids (`sentinel.audit.sinks.gcs`)"),
		stringField("bucket", "required", func(s *audit.GCSSink) *string { return &s.Bucket }),
		stringField("prefix", "object name prefix (default `sentinel-audit/`)", func(s *audit.GCSSink) *string { return &s.Prefix }),
		stringField("token", "required: OAuth2 access token; write `\"{env.GCS_TOKEN}\"`", func(s *audit.GCSSink) *string { return &s.Token }),
		stringField("endpoint", "API URL (default `https://storage.googleapis.com`)", func(s *audit.GCSSink) *string { return &s.Endpoint }),
	)),
	"s3": newAuditSink(typedBlockInto[audit.S3Sink](h("s3", "one gzip NDJSON object per batch (SigV4-signed PUT), named after its first and last event ids; S3 or an S3-compatible server (`sentinel.audit.sinks.s3`)"),
		stringField("bucket", "required", func(s *audit.S3Sink) *string { return &s.Bucket }),
		stringField("region", "signing region (default `us-east-1`)", func(s *audit.S3Sink) *string { return &s.Region }),
		fieldOf("endpoint", "URL of an S3-compatible server (default `https://s3.<region>.amazonaws.com`)", (*adapter).s3Endpoint, func(s *audit.S3Sink) *string { return &s.Endpoint }),
		boolField("path-style", "`<endpoint>/<bucket>/<key>` instead of `<bucket>.<host>`; most S3-compatible servers need it", func(s *audit.S3Sink) *bool { return &s.PathStyle }),
		stringField("prefix", "object name prefix (default `sentinel-audit/`)", func(s *audit.S3Sink) *string { return &s.Prefix }),
		stringField("access-key-id", "required; write `\"{env.AWS_ACCESS_KEY_ID}\"`", func(s *audit.S3Sink) *string { return &s.AccessKeyID }),
		stringField("secret-access-key", "required; write `\"{env.AWS_SECRET_ACCESS_KEY}\"`", func(s *audit.S3Sink) *string { return &s.SecretAccessKey }),
		stringField("session-token", "temporary credentials; write `\"{env.AWS_SESSION_TOKEN}\"`", func(s *audit.S3Sink) *string { return &s.SessionToken }),
	)),
	"elasticsearch": newAuditSink(typedBlockInto[audit.ElasticsearchSink](h("elasticsearch", "bulk API, document `_id` = event id (`sentinel.audit.sinks.elasticsearch`)"),
		stringField("url", "required: the cluster's URL", func(s *audit.ElasticsearchSink) *string { return &s.URL }),
		stringField("index", "index or data stream (default `sentinel-audit`)", func(s *audit.ElasticsearchSink) *string { return &s.Index }),
		stringField("api-key", "`Authorization: ApiKey`; write `\"{env.ES_API_KEY}\"` to keep it out of the Caddy JSON", func(s *audit.ElasticsearchSink) *string { return &s.APIKey }),
		stringField("username", "basic auth", func(s *audit.ElasticsearchSink) *string { return &s.Username }),
		stringField("password", "basic auth; write `\"{env.ES_PASSWORD}\"`", func(s *audit.ElasticsearchSink) *string { return &s.Password }),
	)),
	"datadog": newAuditSink(typedBlockInto[audit.DatadogSink](h("datadog", "logs intake v2 (`sentinel.audit.sinks.datadog`)"),
		stringField("api-key", "required: `DD-API-KEY`; write `\"{env.DD_API_KEY}\"`", func(s *audit.DatadogSink) *string { return &s.APIKey }),
		stringField("url", "intake URL (default `https://http-intake.logs.datadoghq.com`)", func(s *audit.DatadogSink) *string { return &s.URL }),
		stringField("service", "default `sentinel`", func(s *audit.DatadogSink) *string { return &s.Service }),
		stringField("source", "`ddsource`, default `sentinel`", func(s *audit.DatadogSink) *string { return &s.Source }),
		stringField("hostname", "", func(s *audit.DatadogSink) *string { return &s.Hostname }),
		stringField("tags", "`ddtags`, e.g. `env:prod,team:edge`", func(s *audit.DatadogSink) *string { return &s.Tags }),
	)),
}

// requiredAuditSink are the settings each sink needs.
var requiredAuditSink = map[string][]string{
	"file":          {"path"},
	"kafka":         {"brokers", "topic"},
	"gcs":           {"bucket", "token"},
	"s3":            {"bucket", "access-key-id", "secret-access-key"},
	"elasticsearch": {"url"},
	"datadog":       {"api-key"},
}

// auditSink is a sink block's key and its reader.
type auditSink struct {
	key  *Key
	read func(a *adapter, n *kdl.Node) any
}

// newAuditSink adds the delivery settings to a sink block declared by
// typedBlockInto.
func newAuditSink[T any](k *Key, read func(a *adapter, n *kdl.Node, t *T)) auditSink {
	dk, readDelivery := typedBlockInto[audit.SinkConfig](h(k.Name, ""), deliveryFields()...)
	k.Children = append(k.Children, dk.Children...)
	return auditSink{key: k, read: func(a *adapter, n *kdl.Node) any {
		t := new(T)
		read(a, n, t)
		sc := new(audit.SinkConfig)
		readDelivery(a, n, sc)
		if len(n.Args) > 0 {
			if s, ok := a.str(n); ok {
				sc.Name = s
			}
		}
		raw, err := json.Marshal(typedObj(t, "type", n.Name))
		if err != nil {
			panic("kdladapter: " + err.Error())
		}
		sc.SinkRaw = raw
		return sc
	}}
}

// deliveryFields are the delivery settings of every sink block.
func deliveryFields() []field[audit.SinkConfig] {
	return []field[audit.SinkConfig]{
		fieldOf("max-spool-bytes", "bound of the sink's spool on disk (default 256 MiB)", (*adapter).positiveBytes, func(s *audit.SinkConfig) *int64 { return &s.MaxSpoolBytes }),
		fieldOf("when-full", "`drop-newest` (default), `drop-oldest` or `fail-closed` (audit-critical routes answer 503)", (*adapter).whenFull, func(s *audit.SinkConfig) *string { return &s.WhenFull }),
		intField("batch-size", "events per delivery (default 500)", 1, 100000, func(s *audit.SinkConfig) *int { return &s.BatchSize }),
		durationField("flush-interval", "wait for a full batch up to this long (default 0)", func(s *audit.SinkConfig) *caddy.Duration { return &s.FlushInterval }),
		durationField("timeout", "one delivery's timeout (default 30s)", func(s *audit.SinkConfig) *caddy.Duration { return &s.Timeout }),
		durationField("max-backoff", "longest wait between retries (default 30s)", func(s *audit.SinkConfig) *caddy.Duration { return &s.MaxBackoff }),
	}
}

func (a *adapter) positiveBytes(n *kdl.Node) (int64, bool) {
	return a.integer(n, 1, 1<<50)
}

// s3Endpoint reads an S3 sink's endpoint: an http(s) URL without
// credentials or query.
func (a *adapter) s3Endpoint(n *kdl.Node) (string, bool) {
	s, ok := a.str(n)
	if !ok {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		a.d.errorf(n.Pos, "endpoint must be an http(s) URL without credentials or query, e.g. \"http://minio:9000\"")
		return "", false
	}
	return s, true
}

func (a *adapter) whenFull(n *kdl.Node) (string, bool) {
	s, ok := a.str(n)
	if !ok {
		return "", false
	}
	p, ok := a.oneOf(n, s, "drop-newest", "drop-oldest", "fail-closed")
	return strings.ReplaceAll(p, "-", "_"), ok
}

// auditLogKey declares observability.logging.audit-log.
func auditLogKey() *Key {
	sinks := make([]*Key, 0, len(auditSinkTypes))
	for _, t := range auditSinkTypes {
		sinks = append(sinks, auditSinkKeys[t].key)
	}
	return h("audit-log", "the audit trail: app `sentinel_audit` (docs/audit.md)",
		h("enabled", "default #true when the block is present"),
		h("file", "a file sink named `file` (NDJSON, rotated)"),
		w("buffer-size", "events go straight to the spools (Emit writes them; docs/audit.md)"),
		h("log-blocked", "`#false`: `skip_blocked` (no events of refused requests)"),
		h("log-agent-decisions", "`#false`: `skip_kinds` `agent_decision`"),
		h("log-waf-events", "`#false`: `skip_kinds` `waf`"),
		ext(h("spool-dir", "`spool_dir`: the sinks' spools (default: Caddy's data dir + `/audit`)")),
		ext(h("sinks", "where events go; several of one type need a name argument (`elasticsearch \"es-eu\" { … }`)", sinks...)),
	)
}

// mapAudit returns the `sentinel_audit` app, or nil when the audit log
// is absent or disabled.
func (a *adapter) mapAudit() obj {
	al := setting(setting(a.observability, "logging"), "audit-log")
	if al == nil {
		return nil
	}
	if n := setting(al, "enabled"); n != nil && !boolOr(a, n, true) {
		return nil
	}
	app := &audit.App{}
	if n := setting(al, "buffer-size"); n != nil {
		a.integer(n, 1, 1<<24) // checked; no effect (warned)
	}
	if n := setting(al, "spool-dir"); n != nil {
		if s, ok := a.str(n); ok {
			app.SpoolDir = s
		}
	}
	if n := setting(al, "log-blocked"); n != nil && !boolOr(a, n, true) {
		app.SkipBlocked = true
	}
	if n := setting(al, "log-agent-decisions"); n != nil && !boolOr(a, n, true) {
		app.SkipKinds = append(app.SkipKinds, audit.KindAgentDecision)
	}
	if n := setting(al, "log-waf-events"); n != nil && !boolOr(a, n, true) {
		app.SkipKinds = append(app.SkipKinds, audit.KindWAF)
	}
	names := map[string]kdl.Position{}
	addSink := func(n *kdl.Node, sc *audit.SinkConfig) {
		name := sc.Name
		if name == "" {
			var t struct {
				Type string `json:"type"`
			}
			_ = json.Unmarshal(sc.SinkRaw, &t)
			name = t.Type
		}
		if name == "" || filepath.Base(name) != name || name == "." || name == ".." || name == "*" {
			a.d.errorf(n.Pos, "audit sink name %q: must be usable as a directory name", name)
			return
		}
		if prev, dup := names[name]; dup {
			a.d.errorf(n.Pos, "audit sink %q is declared twice (first at line %d); give each a name: %s %q { … }", name, prev.Line, n.Name, name+"-2")
			return
		}
		names[name] = n.Pos
		app.Sinks = append(app.Sinks, sc)
	}
	if n := setting(al, "file"); n != nil {
		if s, ok := a.str(n); ok {
			raw, _ := json.Marshal(typedObj(&audit.FileSink{FileWriter: logging.FileWriter{Filename: s}}, "type", "file"))
			addSink(n, &audit.SinkConfig{SinkRaw: raw})
		}
	}
	var sinkNodes []*kdl.Node
	if sn := setting(al, "sinks"); sn != nil {
		sinkNodes = sn.Children
	}
	for _, n := range sinkNodes {
		k, ok := auditSinkKeys[n.Name]
		if !ok {
			continue // reported by the walker
		}
		errs := len(a.d.errs)
		for _, req := range requiredAuditSink[n.Name] {
			if setting(n, req) == nil {
				a.d.errorf(n.Pos, "audit sink %s needs %s", n.Name, req)
			}
		}
		sc := k.read(a, n).(*audit.SinkConfig)
		if len(a.d.errs) == errs {
			addSink(n, sc)
		}
	}
	if len(app.Sinks) == 0 && len(sinkNodes) == 0 && setting(al, "file") == nil {
		a.d.errorf(al.Pos, "audit-log is enabled but has no destination: set file \"…\" or a sinks { … } block (or enabled #false)")
	}
	if len(app.Sinks) == 0 {
		return nil
	}
	return typedTree(app)
}

// saslOf returns k's SASL settings, created when absent (the username
// or password may come before the mechanism).
func saslOf(k *audit.KafkaSink) *audit.KafkaSASL {
	if k.SASL == nil {
		k.SASL = new(audit.KafkaSASL)
	}
	return k.SASL
}

// auditGateHandler is the handler of audit-critical routes.
var auditGateHandler = newModuleJSON[audit.Gate]("handler", "sentinel_audit_gate")

// auditCriticalField is route `policies { audit-critical #true }`: the
// route answers 503 rather than serve unaudited while a fail-closed
// sink's spool is full.
func auditCriticalField() field[routePolicies] {
	return plainField(h("audit-critical", "`#true`: `sentinel_audit_gate` handler first in the route: 503 while a `when-full \"fail-closed\"` audit sink's spool is full (docs/audit.md)"),
		func(a *adapter, n *kdl.Node, p *routePolicies) {
			if b, ok := a.boolean(n); ok && b {
				p.auditCritical = a.checkAuditCritical(n)
			}
		})
}

// checkAuditCritical reports whether audit-critical n can gate: an error
// without an enabled audit-log, a warning when no sink is fail-closed
// (the gate never closes).
func (a *adapter) checkAuditCritical(n *kdl.Node) bool {
	al := setting(setting(a.observability, "logging"), "audit-log")
	if al != nil {
		if en := setting(al, "enabled"); en != nil && len(en.Args) == 1 && en.Args[0].Kind == kdl.KindBool && !en.Args[0].Bool {
			al = nil
		}
	}
	if al == nil {
		a.d.errorf(n.Pos, `audit-critical #true needs an enabled observability.logging.audit-log with a when-full "fail-closed" sink: without an audit trail there is nothing to gate on`)
		return false
	}
	if sinks := setting(al, "sinks"); sinks != nil {
		for _, s := range sinks.Children {
			if wf := setting(s, "when-full"); wf != nil && len(wf.Args) == 1 && wf.Args[0].Kind == kdl.KindString && wf.Args[0].Str == "fail-closed" {
				return true
			}
		}
	}
	a.d.warnf(n.Pos, "routes.route.policies.audit-critical", "no audit sink is when-full \"fail-closed\": the route's audit gate never closes (events are dropped when a spool is full)")
	return true
}
