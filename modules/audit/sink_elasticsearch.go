package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(new(ElasticsearchSink))
}

// ElasticsearchSink indexes the events with the bulk API (`POST
// /_bulk`, NDJSON), each as a `create` of a document whose `_id` is the
// event id: an event delivered twice is stored once (the second create
// answers 409, counted as delivered).
type ElasticsearchSink struct {
	// URL is the cluster's base URL, e.g. `https://es:9200`.
	URL string `json:"url"`
	// Index is the index or data stream (default `sentinel-audit`).
	Index string `json:"index,omitempty"`
	// APIKey authenticates with `Authorization: ApiKey <key>`
	// (placeholders such as {env.ES_API_KEY} are resolved).
	APIKey string `json:"api_key,omitempty"`
	// Username and Password authenticate with basic auth instead.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`

	httpSink
	hdr http.Header
}

// CaddyModule returns the Caddy module information.
func (*ElasticsearchSink) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sentinel.audit.sinks.elasticsearch", New: func() caddy.Module { return new(ElasticsearchSink) }}
}

// Provision checks the settings.
func (s *ElasticsearchSink) Provision(caddy.Context) error {
	if s.URL == "" {
		return fmt.Errorf("audit elasticsearch sink: url is required")
	}
	if s.Index == "" {
		s.Index = "sentinel-audit"
	}
	s.httpSink = newHTTPSink()
	s.hdr = http.Header{"Content-Type": {"application/x-ndjson"}}
	if k := s.secret(s.APIKey); k != "" {
		s.hdr.Set("Authorization", "ApiKey "+k)
	} else if s.Username != "" {
		r, _ := http.NewRequest(http.MethodPost, "http://x", nil)
		r.SetBasicAuth(s.secret(s.Username), s.secret(s.Password))
		s.hdr.Set("Authorization", r.Header.Get("Authorization"))
	}
	return nil
}

// bulkResponse is the part of the bulk API's answer read here.
type bulkResponse struct {
	Errors bool `json:"errors"`
	Items  []map[string]struct {
		Status int `json:"status"`
		Error  struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		} `json:"error"`
	} `json:"items"`
}

// Deliver sends one bulk request. Items answered 409 (already stored) are
// delivered; 429 and 5xx items retry the batch; other item errors are
// rejected.
func (s *ElasticsearchSink) Deliver(ctx context.Context, batch [][]byte) error {
	var b strings.Builder
	for _, l := range batch {
		var id struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(l, &id); err != nil {
			return &RejectedError{N: 1, Reason: "event is not JSON"}
		}
		meta, _ := json.Marshal(map[string]map[string]string{"create": {"_index": s.Index, "_id": id.ID}})
		b.Write(meta)
		b.WriteByte('\n')
		b.Write(l)
		b.WriteByte('\n')
	}
	body, err := s.post(ctx, http.MethodPost, strings.TrimSuffix(s.URL, "/")+"/_bulk", s.hdr, []byte(b.String()))
	if err != nil {
		return fmt.Errorf("elasticsearch bulk: %w", err)
	}
	var resp bulkResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return fmt.Errorf("elasticsearch bulk: answer not understood: %w", err)
	}
	if !resp.Errors {
		return nil
	}
	if len(resp.Items) != len(batch) {
		return fmt.Errorf("elasticsearch bulk: %d items answered for %d sent", len(resp.Items), len(batch))
	}
	rejected, reason := 0, ""
	for _, it := range resp.Items {
		for _, r := range it {
			switch {
			case r.Status < 300 || r.Status == http.StatusConflict:
			case r.Status == http.StatusTooManyRequests || r.Status >= 500:
				return fmt.Errorf("elasticsearch bulk: item status %d (%s)", r.Status, r.Error.Type)
			default:
				rejected++
				reason = fmt.Sprintf("status %d %s", r.Status, r.Error.Type)
			}
		}
	}
	if rejected > 0 {
		return &RejectedError{N: rejected, Reason: reason}
	}
	return nil
}

// Cleanup closes idle connections.
func (s *ElasticsearchSink) Cleanup() error {
	s.cleanup()
	return nil
}

// Interface guards.
var (
	_ Sink               = (*ElasticsearchSink)(nil)
	_ caddy.Provisioner  = (*ElasticsearchSink)(nil)
	_ caddy.CleanerUpper = (*ElasticsearchSink)(nil)
)
