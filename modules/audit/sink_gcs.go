package audit

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(new(GCSSink))
}

// GCSSink writes each batch as one gzip NDJSON object to a Google Cloud
// Storage bucket (JSON API, simple media upload, `Authorization: Bearer`).
// The object name is derived from the batch's first and last event ids,
// so a retried batch overwrites its own object instead of adding one.
type GCSSink struct {
	// Bucket is the bucket, required.
	Bucket string `json:"bucket"`
	// Prefix is prepended to the object names (default `sentinel-audit/`);
	// names are `<prefix><yyyy>/<mm>/<dd>/<first id>_<last id>.ndjson.gz`.
	Prefix string `json:"prefix,omitempty"`
	// Token is the OAuth2 access token (required); use a placeholder such
	// as {env.GCS_TOKEN}, or {file./path} for a file refreshed by an agent.
	Token string `json:"token"`
	// Endpoint is the API's base URL (default
	// `https://storage.googleapis.com`).
	Endpoint string `json:"endpoint,omitempty"`

	httpSink
}

// CaddyModule returns the Caddy module information.
func (*GCSSink) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sentinel.audit.sinks.gcs", New: func() caddy.Module { return new(GCSSink) }}
}

// Provision checks the settings.
func (s *GCSSink) Provision(caddy.Context) error {
	s.httpSink = newHTTPSink()
	if s.Bucket == "" || s.Token == "" {
		return fmt.Errorf("audit gcs sink: bucket and token are required")
	}
	if s.Endpoint == "" {
		s.Endpoint = "https://storage.googleapis.com"
	}
	if s.Prefix == "" {
		s.Prefix = "sentinel-audit/"
	}
	return nil
}

// Deliver uploads the batch as one object.
func (s *GCSSink) Deliver(ctx context.Context, batch [][]byte) error {
	body, err := gzipNDJSON(batch)
	if err != nil {
		return err
	}
	name := objectName(s.Prefix, batch)
	u := strings.TrimSuffix(s.Endpoint, "/") + "/upload/storage/v1/b/" + url.PathEscape(s.Bucket) + "/o?uploadType=media&name=" + url.QueryEscape(name)
	hdr := http.Header{"Content-Type": {"application/x-ndjson"}, "Content-Encoding": {"gzip"}, "Authorization": {"Bearer " + s.secret(s.Token)}}
	if _, err := s.post(ctx, http.MethodPost, u, hdr, body); err != nil {
		return fmt.Errorf("gcs upload: %w", err)
	}
	return nil
}

// Cleanup closes idle connections.
func (s *GCSSink) Cleanup() error {
	s.cleanup()
	return nil
}

// gzipNDJSON is the batch as gzip-compressed NDJSON.
func gzipNDJSON(batch [][]byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for _, l := range batch {
		zw.Write(l)
		zw.Write([]byte{'\n'})
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// objectName names a batch's object after its first and last event ids
// (UUIDv7: time-ordered), under the day of the first.
func objectName(prefix string, batch [][]byte) string {
	first, last := string(eventID(batch[0])), string(eventID(batch[len(batch)-1]))
	day := time.Now().UTC()
	if ts, ok := uuidv7Time(first); ok {
		day = ts
	}
	return fmt.Sprintf("%s%s/%s_%s.ndjson.gz", prefix, day.Format("2006/01/02"), first, last)
}

// uuidv7Time is the time in a UUIDv7.
func uuidv7Time(id string) (time.Time, bool) {
	h := strings.ReplaceAll(id, "-", "")
	if len(h) != 32 {
		return time.Time{}, false
	}
	var ms int64
	for _, c := range h[:12] {
		var v int64
		switch {
		case c >= '0' && c <= '9':
			v = int64(c - '0')
		case c >= 'a' && c <= 'f':
			v = int64(c-'a') + 10
		default:
			return time.Time{}, false
		}
		ms = ms<<4 | v
	}
	return time.UnixMilli(ms).UTC(), true
}

// Interface guards.
var (
	_ Sink               = (*GCSSink)(nil)
	_ caddy.Provisioner  = (*GCSSink)(nil)
	_ caddy.CleanerUpper = (*GCSSink)(nil)
)
