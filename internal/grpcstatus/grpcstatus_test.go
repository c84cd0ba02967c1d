package grpcstatus

import (
	"math"
	"testing"
	"time"
)

func TestFromHTTP(t *testing.T) {
	for status, want := range map[int]int{400: Internal, 401: Unauthenticated, 403: PermissionDenied, 404: Unimplemented, 429: Unavailable, 502: Unavailable, 503: Unavailable, 504: Unavailable, 500: Unknown, 418: Unknown} {
		if got := FromHTTP(status); got != want {
			t.Errorf("FromHTTP(%d) = %d, want %d", status, got, want)
		}
	}
}

func TestParseTimeout(t *testing.T) {
	good := map[string]time.Duration{"1H": time.Hour, "2M": 2 * time.Minute, "3S": 3 * time.Second, "300m": 300 * time.Millisecond, "5u": 5 * time.Microsecond, "7n": 7, "99999999H": math.MaxInt64}
	for in, want := range good {
		if got, ok := ParseTimeout(in); !ok || got != want {
			t.Errorf("ParseTimeout(%q) = %v %v, want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "1", "m", "1x", "-1S", "123456789S", "1.5S"} {
		if _, ok := ParseTimeout(in); ok {
			t.Errorf("ParseTimeout(%q) accepted", in)
		}
	}
}

func TestEncodeMessage(t *testing.T) {
	if got := EncodeMessage("50% off\nnow é"); got != "50%25 off%0Anow %C3%A9" {
		t.Errorf("EncodeMessage = %q", got)
	}
}
