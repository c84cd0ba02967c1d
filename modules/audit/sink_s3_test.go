package audit

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// s3Server is gofakes3 (an S3-compatible server, in memory) behind a
// SigV4 verifier written here from the specification, independently of
// the signer the sink uses: gofakes3 does not check signatures.
type s3Server struct {
	*httptest.Server
	backend         *s3mem.Backend
	keyID, secret   string
	token, region   string
	down            atomic.Bool
	mu              sync.Mutex
	verified, fails int
	lastFail        string
}

func newS3Server(t *testing.T, keyID, secret, token string) *s3Server {
	s := &s3Server{backend: s3mem.New(), keyID: keyID, secret: secret, token: token, region: "eu-west-3"}
	if err := s.backend.CreateBucket("audit-bucket"); err != nil {
		t.Fatal(err)
	}
	fake := gofakes3.New(s.backend).Server()
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := s.verify(r, body); err != nil {
			s.mu.Lock()
			s.fails++
			s.lastFail = err.Error()
			s.mu.Unlock()
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `<Error><Code>SignatureDoesNotMatch</Code></Error>`)
			return
		}
		s.mu.Lock()
		s.verified++
		s.mu.Unlock()
		if s.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `<Error><Code>SlowDown</Code></Error>`)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

var authRE = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/,]+)/(\d{8})/([^/,]+)/s3/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$`)

// verify checks r's SigV4 signature (header form, credential scope,
// payload hash, signed headers, signature).
func (s *s3Server) verify(r *http.Request, body []byte) error {
	m := authRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return fmt.Errorf("authorization header %q is not SigV4", r.Header.Get("Authorization"))
	}
	keyID, day, region, signed, sig := m[1], m[2], m[3], m[4], m[5]
	if keyID != s.keyID || region != s.region {
		return fmt.Errorf("credential scope %s/%s", keyID, region)
	}
	amzDate := r.Header.Get("X-Amz-Date")
	ts, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil || ts.Format("20060102") != day || time.Since(ts).Abs() > 5*time.Minute {
		return fmt.Errorf("x-amz-date %q", amzDate)
	}
	sum := sha256.Sum256(body)
	if r.Header.Get("X-Amz-Content-Sha256") != hex.EncodeToString(sum[:]) {
		return fmt.Errorf("payload hash")
	}
	if r.Header.Get("X-Amz-Security-Token") != s.token {
		return fmt.Errorf("session token")
	}
	names := strings.Split(signed, ";")
	for _, need := range []string{"host", "x-amz-date", "x-amz-content-sha256", "content-md5"} {
		if !strings.Contains(";"+signed+";", ";"+need+";") {
			return fmt.Errorf("%s not signed", need)
		}
	}
	if s.token != "" && !strings.Contains(signed, "x-amz-security-token") {
		return fmt.Errorf("session token not signed")
	}
	if !sort.StringsAreSorted(names) {
		return fmt.Errorf("signed headers not sorted")
	}
	var canon strings.Builder
	path, query, _ := strings.Cut(r.RequestURI, "?")
	fmt.Fprintf(&canon, "%s\n%s\n%s\n", r.Method, path, query)
	for _, n := range names {
		v := strings.Join(r.Header.Values(n), ",")
		switch n {
		case "host":
			v = r.Host
		case "content-length":
			v = strconv.FormatInt(r.ContentLength, 10)
		}
		fmt.Fprintf(&canon, "%s:%s\n", n, strings.TrimSpace(v))
	}
	fmt.Fprintf(&canon, "\n%s\n%s", signed, hex.EncodeToString(sum[:]))
	crh := sha256.Sum256([]byte(canon.String()))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + day + "/" + region + "/s3/aws4_request\n" + hex.EncodeToString(crh[:])
	k := []byte("AWS4" + s.secret)
	for _, p := range []string{day, region, "s3", "aws4_request", toSign} {
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte(p))
		k = mac.Sum(nil)
	}
	if !hmac.Equal([]byte(hex.EncodeToString(k)), []byte(sig)) {
		return fmt.Errorf("signature mismatch")
	}
	return nil
}

// objects are the bucket's objects, decompressed, by key.
func (s *s3Server) objects(t *testing.T) map[string]string {
	t.Helper()
	list, err := s.backend.ListBucket("audit-bucket", nil, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range list.Contents {
		o, err := s.backend.GetObject("audit-bucket", c.Key, nil)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(o.Contents)
		if err != nil {
			t.Fatalf("object %s: not gzip: %v", c.Key, err)
		}
		b, err := io.ReadAll(zr)
		o.Contents.Close()
		if err != nil {
			t.Fatalf("object %s: %v", c.Key, err)
		}
		out[c.Key] = string(b)
	}
	return out
}

// TestS3Sink: against an S3-compatible server that is down first,
// batches wait; once it is up they become signed PUTs of gzip NDJSON
// objects named after their first and last ids under the day, and every
// event ends up in exactly one object.
func TestS3Sink(t *testing.T) {
	s3 := newS3Server(t, "AKIDEXAMPLE", "s3cr3t/K+ey", "sess-token")
	s3.down.Store(true)
	t.Setenv("TEST_AUDIT_S3_KEY", "AKIDEXAMPLE")
	t.Setenv("TEST_AUDIT_S3_SECRET", "s3cr3t/K+ey")
	t.Setenv("TEST_AUDIT_S3_TOKEN", "sess-token")
	a, _, _ := startApp(t, fmt.Sprintf(`{"spool_dir":%q,"sinks":[{"batch_size":40,"min_backoff":"20ms","sink":{"type":"s3","bucket":"audit-bucket","region":"eu-west-3","endpoint":%q,"path_style":true,"prefix":"p x/","access_key_id":"{env.TEST_AUDIT_S3_KEY}","secret_access_key":"{env.TEST_AUDIT_S3_SECRET}","session_token":"{env.TEST_AUDIT_S3_TOKEN}"}}]}`, t.TempDir(), s3.URL))
	for i := range 100 {
		_ = a.Emit(Event{Kind: KindRateLimit, Action: "reject", Path: fmt.Sprintf("/%d", i)})
	}
	waitFor(t, 5*time.Second, "a refused attempt while down", func() bool {
		s3.mu.Lock()
		defer s3.mu.Unlock()
		return s3.verified > 0
	})
	if n := len(s3.objects(t)); n != 0 {
		t.Fatalf("%d objects while down", n)
	}
	s3.down.Store(false)
	seen := map[string]int{}
	waitFor(t, 5*time.Second, "100 events in objects", func() bool {
		clear(seen)
		day := time.Now().UTC().Format("2006/01/02")
		for name, body := range s3.objects(t) {
			if !strings.HasPrefix(name, "p x/"+day+"/") || !strings.HasSuffix(name, ".ndjson.gz") {
				t.Fatalf("object name %q", name)
			}
			for _, l := range strings.Split(strings.TrimSpace(body), "\n") {
				var e Event
				if err := json.Unmarshal([]byte(l), &e); err != nil {
					t.Fatalf("object %s: %v", name, err)
				}
				seen[e.Path]++
			}
		}
		return len(seen) == 100
	})
	for p, n := range seen {
		if n != 1 {
			t.Errorf("%s in %d objects", p, n)
		}
	}
	s3.mu.Lock()
	defer s3.mu.Unlock()
	if s3.fails != 0 {
		t.Errorf("%d requests failed the signature check: %s", s3.fails, s3.lastFail)
	}
}

// TestS3SinkSignatureChecked: a wrong secret is refused by the
// verifier (so the signature is really checked), and the error names
// neither the secret nor the key; once the secret behind the
// placeholder is corrected (rotated, same key id) the next delivery
// signs with it (the SDK signer caches the derived key by key id and
// day only).
func TestS3SinkSignatureChecked(t *testing.T) {
	s3 := newS3Server(t, "AKIDEXAMPLE", "right-secret", "")
	t.Setenv("TEST_AUDIT_S3_SECRET", "wrong-secret")
	s := &S3Sink{Bucket: "audit-bucket", Region: "eu-west-3", Endpoint: s3.URL, PathStyle: true, AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "{env.TEST_AUDIT_S3_SECRET}"}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Cleanup()
	batch := [][]byte{[]byte(`{"id":"0190a0b0-0000-7000-8000-000000000001"}`)}
	err := s.Deliver(context.Background(), batch)
	if err == nil || !strings.Contains(err.Error(), "status 403") {
		t.Fatalf("wrong secret: %v", err)
	}
	if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "AKID") {
		t.Errorf("error echoes a credential: %v", err)
	}
	if s3.lastFail != "signature mismatch" {
		t.Errorf("verifier: %q", s3.lastFail)
	}
	t.Setenv("TEST_AUDIT_S3_SECRET", "right-secret")
	if err := s.Deliver(context.Background(), batch); err != nil {
		t.Fatalf("right secret: %v (%s, %d fails %d ok)", err, s3.lastFail, s3.fails, s3.verified)
	}
	if n := len(s3.objects(t)); n != 1 {
		t.Errorf("%d objects", n)
	}
	t.Setenv("TEST_AUDIT_S3_SECRET", "")
	if err := s.Deliver(context.Background(), batch); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("unset secret: %v", err)
	}
}

// TestS3SinkURLs: virtual-hosted and path-style addressing, the AWS
// default endpoint, key escaping, and the settings Provision refuses.
func TestS3SinkURLs(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	for _, c := range []struct {
		s    *S3Sink
		want string
	}{
		{&S3Sink{Bucket: "b", Region: "eu-west-3"}, "https://b.s3.eu-west-3.amazonaws.com/k%20%2B/x.gz"},
		{&S3Sink{Bucket: "b"}, "https://b.s3.us-east-1.amazonaws.com/k%20%2B/x.gz"},
		{&S3Sink{Bucket: "b", Endpoint: "http://minio:9000/base/", PathStyle: true}, "http://minio:9000/base/b/k%20%2B/x.gz"},
	} {
		c.s.AccessKeyID, c.s.SecretAccessKey = "k", "s"
		if err := c.s.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		if got := c.s.objectURL("k +/x.gz").String(); got != c.want {
			t.Errorf("got %s, want %s", got, c.want)
		}
	}
	for i, s := range []*S3Sink{
		{Bucket: "b", AccessKeyID: "k"},
		{Bucket: "a/b", AccessKeyID: "k", SecretAccessKey: "s"},
		{Bucket: "b", AccessKeyID: "k", SecretAccessKey: "s", Endpoint: "ftp://x"},
		{Bucket: "b", AccessKeyID: "k", SecretAccessKey: "s", Endpoint: "https://u:p@x"},
	} {
		if err := s.Provision(ctx); err == nil {
			t.Errorf("case %d accepted", i)
		} else if strings.Contains(err.Error(), "u:p") {
			t.Errorf("error echoes the endpoint's credentials: %v", err)
		}
	}
}
