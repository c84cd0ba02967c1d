package timeout

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func provisioned(t *testing.T, d time.Duration) *Timeout {
	t.Helper()
	h := &Timeout{Timeout: caddy.Duration(d)}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	return h
}

// waitForDeadline blocks until the request's context is done.
func waitForDeadline(r *http.Request) error {
	select {
	case <-r.Context().Done():
		return nil
	case <-time.After(5 * time.Second):
		return errors.New("the deadline never came")
	}
}

func TestServeHTTP(t *testing.T) {
	const limit = 50 * time.Millisecond
	for _, tc := range []struct {
		name       string
		next       caddyhttp.HandlerFunc
		wantErr    int // 0: no error; else the HandlerError status
		wantStatus int // the recorder's status, if no error
	}{
		{
			name: "fast handler",
			next: func(w http.ResponseWriter, r *http.Request) error {
				deadline, ok := r.Context().Deadline()
				if !ok || time.Until(deadline) > limit {
					return errors.New("no deadline on the request's context")
				}
				w.WriteHeader(http.StatusCreated)
				return nil
			},
			wantStatus: http.StatusCreated,
		},
		{
			name: "error before the deadline is unchanged",
			next: func(http.ResponseWriter, *http.Request) error {
				return caddyhttp.Error(http.StatusBadGateway, errors.New("connection refused"))
			},
			wantErr: http.StatusBadGateway,
		},
		{
			name: "context error after the deadline",
			next: func(_ http.ResponseWriter, r *http.Request) error {
				if err := waitForDeadline(r); err != nil {
					return err
				}
				return r.Context().Err()
			},
			wantErr: http.StatusGatewayTimeout,
		},
		{
			name: "502 after the deadline becomes 504",
			next: func(_ http.ResponseWriter, r *http.Request) error {
				if err := waitForDeadline(r); err != nil {
					return err
				}
				return caddyhttp.Error(http.StatusBadGateway, errors.New("upstream cut"))
			},
			wantErr: http.StatusGatewayTimeout,
		},
		{
			name: "no response after the deadline",
			next: func(_ http.ResponseWriter, r *http.Request) error {
				return waitForDeadline(r)
			},
			wantErr: http.StatusGatewayTimeout,
		},
		{
			name: "response written before the deadline passed",
			next: func(w http.ResponseWriter, r *http.Request) error {
				_, _ = w.Write([]byte("partial"))
				return waitForDeadline(r)
			},
			wantStatus: http.StatusOK,
		},
		{
			name: "error after a started response",
			next: func(w http.ResponseWriter, r *http.Request) error {
				w.WriteHeader(http.StatusOK)
				if err := waitForDeadline(r); err != nil {
					return err
				}
				return errors.New("copying body: context deadline exceeded")
			},
			wantErr: http.StatusGatewayTimeout,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := provisioned(t, limit)
			rec := httptest.NewRecorder()
			start := time.Now()
			err := h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil), tc.next)
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("took %s", elapsed)
			}
			if tc.wantErr == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if rec.Code != tc.wantStatus {
					t.Errorf("status = %d, want %d", rec.Code, tc.wantStatus)
				}
				return
			}
			var herr caddyhttp.HandlerError
			if !errors.As(err, &herr) {
				t.Fatalf("got %v, want a HandlerError", err)
			}
			if herr.StatusCode != tc.wantErr {
				t.Errorf("status = %d, want %d (%v)", herr.StatusCode, tc.wantErr, err)
			}
			if tc.wantErr == http.StatusGatewayTimeout {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
				}
				var terr *Error
				if !errors.As(err, &terr) || terr.Duration != limit {
					t.Errorf("error %v does not carry the timeout", err)
				}
				if !strings.Contains(err.Error(), "no response within 50ms") {
					t.Errorf("error %q does not name the timeout", err)
				}
			}
		})
	}
}

func TestClientGoneIsNotATimeout(t *testing.T) {
	h := provisioned(t, time.Minute)
	parent, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(parent)
	cancel()
	err := h.ServeHTTP(httptest.NewRecorder(), req, caddyhttp.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) error {
		<-r.Context().Done()
		return r.Context().Err()
	}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled unchanged", err)
	}
	var herr caddyhttp.HandlerError
	if errors.As(err, &herr) {
		t.Fatalf("got a HandlerError %v, want the original error", err)
	}
}

func TestError(t *testing.T) {
	var err error = &Error{Duration: 2 * time.Second}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !ne.Temporary() {
		t.Errorf("%v is not a timeout net.Error", err)
	}
	if err.Error() != "sentinel_timeout: no response within 2s" {
		t.Errorf("message %q", err)
	}
}

func TestValidate(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		err := (&Timeout{Timeout: caddy.Duration(d)}).Validate()
		if err == nil || !strings.Contains(err.Error(), "timeout must be greater than zero") {
			t.Errorf("timeout %s: got %v", d, err)
		}
	}
}

func TestTimeoutError(t *testing.T) {
	cause := &Error{Duration: time.Second}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New("boom"), "sentinel_timeout: no response within 1s (boom)"},
		{caddyhttp.Error(http.StatusBadGateway, errors.New("dial failed")), "sentinel_timeout: no response within 1s (dial failed)"},
		{caddyhttp.Error(http.StatusGatewayTimeout, fmt.Errorf("round trip: %w", cause)), "sentinel_timeout: no response within 1s"},
		{cause, "sentinel_timeout: no response within 1s"},
	} {
		got := timeoutError(cause, tc.err)
		if got.Error() != tc.want {
			t.Errorf("timeoutError(%v) = %q, want %q", tc.err, got, tc.want)
		}
		if !errors.Is(got, cause) {
			t.Errorf("timeoutError(%v) does not wrap the cause", tc.err)
		}
	}
}
