package audit

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(new(DatadogSink))
}

// Datadog's intake limits: 1000 entries and 5 MB per request.
const (
	datadogMaxEntries = 1000
	datadogMaxBytes   = 5 << 20
)

// DatadogSink sends the events to Datadog's logs intake (`POST
// /api/v2/logs`, gzip JSON array, `DD-API-KEY` header). Each entry is the
// event with `ddsource`, `service`, `hostname` and `ddtags` added; the
// event id is in `id`.
type DatadogSink struct {
	// URL is the intake's base URL (default
	// `https://http-intake.logs.datadoghq.com`; other sites: e.g.
	// `https://http-intake.logs.datadoghq.eu`).
	URL string `json:"url,omitempty"`
	// APIKey is the Datadog API key, required; use a placeholder such as
	// {env.DD_API_KEY}.
	APIKey string `json:"api_key"`
	// Service, Source, Hostname and Tags are Datadog's reserved
	// attributes (defaults `sentinel`, `sentinel`, the host name, none).
	Service  string `json:"service,omitempty"`
	Source   string `json:"source,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	Tags     string `json:"tags,omitempty"`

	httpSink
	hdr http.Header
}

// CaddyModule returns the Caddy module information.
func (*DatadogSink) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sentinel.audit.sinks.datadog", New: func() caddy.Module { return new(DatadogSink) }}
}

// Provision checks the settings.
func (s *DatadogSink) Provision(caddy.Context) error {
	s.httpSink = newHTTPSink()
	key := s.secret(s.APIKey)
	if key == "" {
		return fmt.Errorf("audit datadog sink: api_key is required (empty after resolving placeholders)")
	}
	if s.URL == "" {
		s.URL = "https://http-intake.logs.datadoghq.com"
	}
	if s.Service == "" {
		s.Service = "sentinel"
	}
	if s.Source == "" {
		s.Source = "sentinel"
	}
	s.hdr = http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}, "Dd-Api-Key": {key}}
	return nil
}

// Deliver posts the batch, in several requests when it exceeds the
// intake's limits. A retry resends the whole batch.
func (s *DatadogSink) Deliver(ctx context.Context, batch [][]byte) error {
	for len(batch) > 0 {
		n, size := 0, 2
		for n < len(batch) && n < datadogMaxEntries && (n == 0 || size+len(batch[n])+128 < datadogMaxBytes) {
			size += len(batch[n]) + 128
			n++
		}
		if err := s.send(ctx, batch[:n]); err != nil {
			return err
		}
		batch = batch[n:]
	}
	return nil
}

func (s *DatadogSink) send(ctx context.Context, batch [][]byte) error {
	attrs, _ := json.Marshal(map[string]string{"ddsource": s.Source, "service": s.Service, "hostname": s.Hostname, "ddtags": s.Tags})
	attrs = attrs[1 : len(attrs)-1]
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte{'['})
	for i, l := range batch {
		if i > 0 {
			zw.Write([]byte{','})
		}
		// The event object with the reserved attributes added first.
		zw.Write([]byte{'{'})
		zw.Write(attrs)
		zw.Write([]byte{','})
		zw.Write(l[1:])
	}
	zw.Write([]byte{']'})
	if err := zw.Close(); err != nil {
		return err
	}
	_, err := s.post(ctx, http.MethodPost, strings.TrimSuffix(s.URL, "/")+"/api/v2/logs", s.hdr, buf.Bytes())
	if se, ok := err.(*statusError); ok && (se.code == http.StatusBadRequest || se.code == http.StatusRequestEntityTooLarge) {
		return &RejectedError{N: len(batch), Reason: se.Error()}
	}
	if err != nil {
		return fmt.Errorf("datadog logs intake: %w", err)
	}
	return nil
}

// Cleanup closes idle connections.
func (s *DatadogSink) Cleanup() error {
	s.cleanup()
	return nil
}

// Interface guards.
var (
	_ Sink               = (*DatadogSink)(nil)
	_ caddy.Provisioner  = (*DatadogSink)(nil)
	_ caddy.CleanerUpper = (*DatadogSink)(nil)
)
