package audit

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(new(S3Sink))
}

// S3Sink writes each batch as one gzip NDJSON object to an Amazon S3
// bucket or an S3-compatible server (MinIO, Ceph RGW, R2, …) with a
// SigV4-signed PUT. The object name is derived from the batch's first
// and last event ids, so a retried batch overwrites its own object
// instead of adding one.
type S3Sink struct {
	// Bucket is the bucket, required.
	Bucket string `json:"bucket"`
	// Region is the signing region (default `us-east-1`).
	Region string `json:"region,omitempty"`
	// Endpoint is the base URL of an S3-compatible server (default
	// `https://s3.<region>.amazonaws.com`).
	Endpoint string `json:"endpoint,omitempty"`
	// PathStyle addresses the bucket as the URL's first path segment
	// (`<endpoint>/<bucket>/<key>`) instead of a host name
	// (`<bucket>.<endpoint host>/<key>`); most S3-compatible servers
	// need it.
	PathStyle bool `json:"path_style,omitempty"`
	// Prefix is prepended to the object names (default `sentinel-audit/`);
	// names are `<prefix><yyyy>/<mm>/<dd>/<first id>_<last id>.ndjson.gz`.
	Prefix string `json:"prefix,omitempty"`
	// AccessKeyID is the access key id, required; use a placeholder
	// such as {env.AWS_ACCESS_KEY_ID}.
	AccessKeyID string `json:"access_key_id"`
	// SecretAccessKey is the secret access key, required; use a
	// placeholder such as {env.AWS_SECRET_ACCESS_KEY}.
	SecretAccessKey string `json:"secret_access_key"`
	// SessionToken is the session token of temporary credentials
	// (optional), e.g. {env.AWS_SESSION_TOKEN}.
	SessionToken string `json:"session_token,omitempty"`

	base *url.URL
	// mu guards signer and signerSecret: the signer caches the derived
	// key by access key id and day, not by secret, so a rotated secret
	// (same key id) needs a new signer.
	mu           sync.Mutex
	signer       *v4.Signer
	signerSecret string
	httpSink
}

// CaddyModule returns the Caddy module information.
func (*S3Sink) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sentinel.audit.sinks.s3", New: func() caddy.Module { return new(S3Sink) }}
}

// Provision checks the settings.
func (s *S3Sink) Provision(caddy.Context) error {
	s.httpSink = newHTTPSink()
	if s.Bucket == "" || s.AccessKeyID == "" || s.SecretAccessKey == "" {
		return fmt.Errorf("audit s3 sink: bucket, access_key_id and secret_access_key are required")
	}
	if strings.ContainsAny(s.Bucket, "/?#") {
		return fmt.Errorf("audit s3 sink: bucket %q: not a bucket name", s.Bucket)
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	}
	if s.Endpoint == "" {
		s.Endpoint = "https://s3." + s.Region + ".amazonaws.com"
	}
	u, err := url.Parse(s.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return fmt.Errorf("audit s3 sink: endpoint must be an http(s) URL without credentials or query")
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	s.base = u
	if s.Prefix == "" {
		s.Prefix = "sentinel-audit/"
	}
	return nil
}

// signerFor returns a signer for secret, a new one when the secret
// changed since the last delivery.
func (s *S3Sink) signerFor(secret string) *v4.Signer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.signer == nil || s.signerSecret != secret {
		// S3 signs the path as sent, not escaped twice.
		s.signer = v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
		s.signerSecret = secret
	}
	return s.signer
}

// objectURL is the URL of key in the bucket.
func (s *S3Sink) objectURL(key string) *url.URL {
	u := *s.base
	var segs []string
	for _, seg := range strings.Split(key, "/") {
		segs = append(segs, s3Escape(seg))
	}
	esc := strings.Join(segs, "/")
	if s.PathStyle {
		u.Path += "/" + s.Bucket + "/" + key
		u.RawPath = s.base.EscapedPath() + "/" + s3Escape(s.Bucket) + "/" + esc
	} else {
		u.Host = s.Bucket + "." + u.Host
		u.Path += "/" + key
		u.RawPath = s.base.EscapedPath() + "/" + esc
	}
	return &u
}

// s3Escape escapes a path segment as SigV4 wants it: everything but
// the unreserved characters.
func s3Escape(seg string) string {
	var b strings.Builder
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// Deliver uploads the batch as one object.
func (s *S3Sink) Deliver(ctx context.Context, batch [][]byte) error {
	body, err := gzipNDJSON(batch)
	if err != nil {
		return err
	}
	creds := aws.Credentials{AccessKeyID: s.secret(s.AccessKeyID), SecretAccessKey: s.secret(s.SecretAccessKey), SessionToken: s.secret(s.SessionToken)}
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return errors.New("s3 upload: the access key id or secret access key is empty (placeholder not set?)")
	}
	u := s.objectURL(objectName(s.Prefix, batch))
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("s3 upload: %w", err)
	}
	sum := sha256.Sum256(body)
	md := md5.Sum(body)
	payloadHash := hex.EncodeToString(sum[:])
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(md[:]))
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	if err := s.signerFor(creds.SecretAccessKey).SignHTTP(ctx, creds, req, payloadHash, "s3", s.Region, time.Now().UTC()); err != nil {
		return fmt.Errorf("s3 upload: signing: %w", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("s3 upload: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("s3 upload: %w", &statusError{code: resp.StatusCode, method: req.Method, url: redactURL(req)})
	}
	return nil
}

// Cleanup closes idle connections.
func (s *S3Sink) Cleanup() error {
	s.cleanup()
	return nil
}

// Interface guards.
var (
	_ Sink               = (*S3Sink)(nil)
	_ caddy.Provisioner  = (*S3Sink)(nil)
	_ caddy.CleanerUpper = (*S3Sink)(nil)
)
