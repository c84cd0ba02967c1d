package agents

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func TestCaddyfile(t *testing.T) {
	in := `{
	sentinel_agents {
		agent waf {
			unix_socket /run/waf.sock
			type waf
			events request_headers request_body
			timeout 200ms
			chunk_timeout 1s
			failure_mode closed
			circuit_breaker 3 2 10s 1
			max_request_body_bytes 1024
			max_response_body_bytes 2048
			request_body_mode hybrid:512
			response_body_mode stream
			chunk_bytes 256
			max_concurrent_calls 7
			config {"k":1}
			pool {
				connections 2
				queue_depth 0
				connect_timeout 1s
				reconnect_backoff 100ms
				max_reconnect_backoff 2s
				health_check_interval 5s
				drain_timeout 3s
			}
		}
		agent auth {
			grpc https://auth:50051
			grpc_package zentinel.agent.v2
			tls {
				ca_cert /ca.pem
				client_cert /c.pem
				client_key /k.pem
				server_name auth
				insecure
			}
		}
		registration {
			unix_socket /run/reg.sock
			token s3cret
			allowed_agents bot
			timeout 5s
		}
	}
}
:8080 {
	sentinel_agents {
		route api
		upstream b
		agent waf {
			phase request
			timeout 100ms
			failure_mode open
			inspect_body
			max_body_bytes 512
			body_mode buffer
		}
		agent auth
		challenge 429 "solve {agent.challenge.type}"
	}
	reverse_proxy 127.0.0.1:9
}`
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	out, _, err := adapter.Adapt([]byte(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	var app App
	if err := json.Unmarshal(cfg.Apps["sentinel_agents"], &app); err != nil {
		t.Fatal(err)
	}
	// the token's hash, never the token, is in the JSON
	if len(app.Agents) != 2 || app.Registration == nil || len(app.Registration.Tokens) != 0 || len(app.Registration.TokenSHA256) != 1 ||
		app.Registration.TokenSHA256[0] != TokenHash("s3cret") || strings.Contains(string(out), "s3cret") {
		t.Fatalf("app: %s", cfg.Apps["sentinel_agents"])
	}
	for _, a := range app.Agents {
		if _, err := a.resolve(); err != nil {
			t.Fatalf("agent %s: %v", a.ID, err)
		}
	}
	w := app.Agents[0]
	if w.Pool == nil || *w.Pool.QueueDepth != 0 || w.CircuitBreaker.FailureThreshold != 3 || w.MaxConcurrentCalls != 7 || string(w.Config) != `{"k":1}` {
		t.Fatalf("waf: %s", cfg.Apps["sentinel_agents"])
	}
	if !strings.Contains(string(out), `"handler":"sentinel_agents"`) || !strings.Contains(string(out), `"inspect_body":true`) || !strings.Contains(string(out), `"status":429`) {
		t.Fatalf("handler: %s", out)
	}
	for _, bad := range []string{
		"{\n sentinel_agents {\n nope\n }\n}\n:80 {\n respond ok\n}",
		"{\n sentinel_agents {\n agent a {\n bogus 1\n }\n }\n}\n:80 {\n respond ok\n}",
		"{\n sentinel_agents {\n agent a {\n config {x\n }\n }\n}\n:80 {\n respond ok\n}",
		"{\n sentinel_agents {\n registration {\n what 1\n }\n }\n}\n:80 {\n respond ok\n}",
		":80 {\n sentinel_agents {\n }\n}",
		":80 {\n sentinel_agents {\n agent a {\n colour red\n }\n }\n}",
		":80 {\n sentinel_agents {\n bogus\n }\n}",
	} {
		if _, _, err := adapter.Adapt([]byte(bad), nil); err == nil {
			t.Errorf("accepted: %q", bad)
		}
	}
}
