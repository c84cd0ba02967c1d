package kdladapter

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/modules/audit"
)

func auditConfig(block string) string {
	return minimal + "observability {\n    logging {\n        audit-log {\n" + block + "        }\n    }\n}\n"
}

// TestAuditLogAdapt: the original's audit-log settings and the sinks
// extension map onto the sentinel_audit app, which provisions; secrets
// written as {env.*} stay placeholders in the JSON.
func TestAuditLogAdapt(t *testing.T) {
	out, _ := mustAdapt(t, auditConfig(`
            file "/var/log/sentinel/audit.log"
            buffer-size 1024
            log-blocked #true
            log-waf-events #false
            spool-dir "/var/lib/sentinel/audit"
            sinks {
                elasticsearch {
                    url "https://es.internal:9200"
                    index "audit"
                    api-key "{env.ES_API_KEY}"
                    when-full "fail-closed"
                    max-spool-bytes 1048576
                    batch-size 100
                    timeout "5s"
                }
                datadog "dd-eu" {
                    api-key "{env.DD_API_KEY}"
                    url "https://http-intake.logs.datadoghq.eu"
                    tags "env:prod"
                    flush-interval "2s"
                }
                kafka {
                    brokers "kafka-1:9092" "kafka-2:9092"
                    topic "sentinel-audit"
                    tls #true
                    sasl-mechanism "SCRAM-SHA-512"
                    sasl-username "sentinel"
                    sasl-password "{env.KAFKA_PASSWORD}"
                }
                gcs {
                    bucket "audit-bucket"
                    token "{env.GCS_TOKEN}"
                    flush-interval "60s"
                    batch-size 5000
                }
                s3 {
                    bucket "audit-s3"
                    region "eu-west-3"
                    endpoint "http://minio:9000"
                    path-style #true
                    prefix "edge/"
                    access-key-id "{env.AWS_ACCESS_KEY_ID}"
                    secret-access-key "{env.AWS_SECRET_ACCESS_KEY}"
                    session-token "{env.AWS_SESSION_TOKEN}"
                }
                file "second" {
                    path "/var/log/sentinel/audit2.log"
                    roll-size-mb 10
                    when-full "drop-oldest"
                }
            }
`))
	var cfg struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	var app audit.App
	if err := json.Unmarshal(cfg.Apps[audit.AppName], &app); err != nil {
		t.Fatalf("%v: %s", err, cfg.Apps[audit.AppName])
	}
	if app.BufferSize != 0 || app.SkipBlocked || len(app.SkipKinds) != 1 || app.SkipKinds[0] != "waf" || len(app.Sinks) != 7 {
		t.Fatalf("app %s", cfg.Apps[audit.AppName])
	}
	s := string(cfg.Apps[audit.AppName])
	for _, want := range []string{`{"filename":"/var/log/sentinel/audit.log","type":"file"}`, `"when_full":"fail_closed"`, `"api_key":"{env.ES_API_KEY}"`,
		`"name":"dd-eu"`, `"flush_interval":"2s"`, `"name":"second"`, `"roll_size_mb":10`, `"when_full":"drop_oldest"`, `"bucket":"audit-bucket"`, `"brokers":["kafka-1:9092","kafka-2:9092"]`, `"sasl":{"mechanism":"scram-sha-512","username":"sentinel","password":"{env.KAFKA_PASSWORD}"}`, `"max_spool_bytes":1048576`, `"timeout":"5s"`,
		`{"access_key_id":"{env.AWS_ACCESS_KEY_ID}","bucket":"audit-s3","endpoint":"http://minio:9000","path_style":true,"prefix":"edge/","region":"eu-west-3","secret_access_key":"{env.AWS_SECRET_ACCESS_KEY}","session_token":"{env.AWS_SESSION_TOKEN}","type":"s3"}`} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %s in %s", want, s)
		}
	}
	t.Setenv("ES_API_KEY", "k")
	t.Setenv("DD_API_KEY", "k")
	t.Setenv("KAFKA_PASSWORD", "k")
	t.Setenv("GCS_TOKEN", "k")
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "k")
	if err := testutil.Provision(t, out); err != nil {
		t.Fatal(err)
	}
}

// TestAuditLogDisabled: `enabled #false` (and no block) configure no app.
func TestAuditLogDisabled(t *testing.T) {
	for _, src := range []string{minimal, auditConfig("            enabled #false\n            file \"/x\"\n")} {
		out, _ := mustAdapt(t, src)
		if strings.Contains(string(out), audit.AppName) {
			t.Fatalf("audit app configured:\n%s", out)
		}
	}
}

// TestAuditLogErrors: bad settings are errors at their position; a
// secret from the environment is never shown.
func TestAuditLogErrors(t *testing.T) {
	cases := []struct{ block, want string }{
		{"            enabled #true\n", "audit-log is enabled but has no destination"},
		{"            sinks {\n                s3 { }\n            }\n", `test.kdl:12:17: audit sink s3 needs bucket`},
		{"            sinks {\n                s3 { bucket \"b\"; }\n            }\n", `test.kdl:12:17: audit sink s3 needs access-key-id`},
		{"            sinks {\n                s3 { bucket \"b\"; access-key-id \"k\"; }\n            }\n", `test.kdl:12:17: audit sink s3 needs secret-access-key`},
		{"            sinks {\n                s3 { bucket \"b\"; access-key-id \"k\"; secret-access-key \"s\"; endpoint \"minio:9000\"; }\n            }\n", `test.kdl:12:76: endpoint must be an http(s) URL`},
		{"            sinks {\n                s3 { bucket \"b\"; access-key-id \"k\"; secret-access-key \"s\"; path-style \"yes\"; }\n            }\n", `test.kdl:12:87: path-style takes #true or #false`},
		{"            sinks {\n                s3 { bucket \"b\"; access-key-id \"k\"; secret-access-key \"s\"; storage-class \"GLACIER\"; }\n            }\n", `test.kdl:12:76: unknown setting "storage-class"`},
		{"            sinks {\n                kafka { topic \"t\"; }\n            }\n", `test.kdl:12:17: audit sink kafka needs brokers`},
		{"            sinks {\n                kafka { topic \"t\"; brokers \"b:1\"; sasl-mechanism \"gssapi\"; }\n            }\n", `gssapi`},
		{"            sinks {\n                elasticsearch { index \"x\"; }\n            }\n", "test.kdl:12:17: audit sink elasticsearch needs url"},
		{"            sinks {\n                elasticsearch { url \"http://a\"; colour 1; }\n            }\n", `test.kdl:12:49: unknown setting "colour"`},
		{"            sinks {\n                elasticsearch { url \"http://a\"; when-full \"panic\"; }\n            }\n", `when-full`},
		{"            sinks {\n                datadog { api-key \"a\"; }\n                datadog { api-key \"b\"; }\n            }\n", `audit sink "datadog" is declared twice (first at line 12)`},
		{"            sinks {\n                file \"../x\" { path \"/x\"; }\n            }\n", `audit sink name "../x"`},
		{"            buffer-size 0\n            file \"/x\"\n", "buffer-size must be between 1"},
	}
	for _, c := range cases {
		msg := adaptErr(t, auditConfig(c.block), noEnv)
		if !strings.Contains(msg, c.want) {
			t.Errorf("block\n%s\nerror %q, want %q", c.block, msg, c.want)
		}
	}
	secret := "s3cr3t-datadog-key-0123456789"
	msg := adaptErr(t, auditConfig("            sinks {\n                datadog { api-key \"${DD_KEY}\"; url 5; }\n            }\n"), envOf("DD_KEY", secret))
	if strings.Contains(msg, secret) || !strings.Contains(msg, "url takes a string") {
		t.Fatalf("error %q", msg)
	}
	msg = adaptErr(t, auditConfig("            sinks {\n                s3 { bucket \"b\"; access-key-id \"k\"; secret-access-key \"${SK}\"; endpoint \"http://${SK}@minio\"; }\n            }\n"), envOf("SK", secret))
	if strings.Contains(msg, secret) || !strings.Contains(msg, "endpoint must be") {
		t.Fatalf("error %q", msg)
	}
}

// auditCriticalConfig is a config with route "pay" whose policies block
// is policies, and the observability block obs.
func auditCriticalConfig(obs, policies string) string {
	return minimal + obs + `upstreams { upstream "b" { target "127.0.0.1:9"; } }
routes {
    route "pay" {
        upstream "b"
        policies { ` + policies + ` }
    }
    route "web" { upstream "b"; }
}
`
}

const failClosedAudit = `observability {
    logging {
        audit-log {
            sinks {
                elasticsearch { url "http://es:9200"; when-full "fail-closed"; }
            }
        }
    }
}
`

// TestAuditCriticalRoute: `policies { audit-critical #true }` puts the
// sentinel_audit_gate handler first in that route only (before its rate
// limit); the config provisions.
func TestAuditCriticalRoute(t *testing.T) {
	out, warns := mustAdapt(t, auditCriticalConfig(failClosedAudit, `audit-critical #true; rate-limit { requests-per-second 5; }`))
	if len(warns) != 0 {
		t.Fatalf("warnings: %s", warningsText(warns))
	}
	s := string(out)
	if strings.Count(s, `"handler":"sentinel_audit_gate"`) != 1 {
		t.Fatalf("want one audit gate:\n%s", s)
	}
	gate, rl := strings.Index(s, `"handler":"sentinel_audit_gate"`), strings.Index(s, `"handler":"sentinel_rate_limit"`)
	if rl < 0 || gate > rl {
		t.Fatalf("the gate must come before the route's rate limit:\n%s", s)
	}
	if err := testutil.Provision(t, out); err != nil {
		t.Fatal(err)
	}
	out, _ = mustAdapt(t, auditCriticalConfig(failClosedAudit, `audit-critical #false`))
	if strings.Contains(string(out), "sentinel_audit_gate") {
		t.Fatalf("audit-critical #false adds a gate:\n%s", out)
	}
}

// TestAuditCriticalErrors: audit-critical without an audit trail, or not
// a boolean, is an error at its position; without a fail-closed sink it
// is a warning there.
func TestAuditCriticalErrors(t *testing.T) {
	// minimal is 7 lines; the route's policies are on line 12, col 20.
	for _, c := range []struct{ obs, pol, want string }{
		{"", "audit-critical #true", `test.kdl:12:20: audit-critical #true needs an enabled observability.logging.audit-log`},
		{"observability { logging { audit-log { enabled #false; file \"/x\"; } } }\n", "audit-critical #true", `test.kdl:13:20: audit-critical #true needs an enabled`},
		{failClosedAudit, `audit-critical "yes"`, `audit-critical takes #true or #false`},
	} {
		msg := adaptErr(t, auditCriticalConfig(c.obs, c.pol), noEnv)
		if !strings.Contains(msg, c.want) {
			t.Errorf("obs %q policies %q: error %q, want %q", c.obs, c.pol, msg, c.want)
		}
	}
	_, warns := mustAdapt(t, auditCriticalConfig(auditConfig("            file \"/x\"\n")[len(minimal):], "audit-critical #true"))
	if w := warningsText(warns); !strings.Contains(w, `no audit sink is when-full "fail-closed"`) || !strings.Contains(w, "test.kdl:") {
		t.Fatalf("warnings %q", w)
	}
}
