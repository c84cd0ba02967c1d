package adaptive

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestUpstreamsAttemptsRecord: the first call for a request registers the
// attempts record of the upstreams' block, a retry keeps it, and the
// transport's markTried records into it; the values are fresh each call.
func TestUpstreamsAttemptsRecord(t *testing.T) {
	for _, n := range []int{1, 2, 3, 8, 9} {
		var addrs []string
		for i := range n {
			addrs = append(addrs, fmt.Sprintf("10.3.0.%d:80", i))
		}
		r := proxiedReq("10.0.0.1")
		vars := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
		ups := Upstreams(r, addrs)
		if len(ups) != n || ups[n-1].Dial != addrs[n-1] {
			t.Fatalf("%d: upstreams %v", n, ups)
		}
		a, ok := vars[attemptsVar].(*attempts)
		if !ok || a.len() != 0 {
			t.Fatalf("%d: no empty attempts record registered: %v", n, vars)
		}
		if got := markTried(r, addrs[0]); got != a {
			t.Fatalf("%d: markTried used another record", n)
		}
		again := Upstreams(r, addrs)
		if again[0] == ups[0] {
			t.Fatalf("%d: a retry got the same values", n)
		}
		if vars[attemptsVar].(*attempts) != a || a.len() != 1 {
			t.Fatalf("%d: a retry replaced the attempts record", n)
		}
	}
	if Upstreams(nil, []string{"a:1"})[0].Dial != "a:1" || Upstreams(nil, nil) != nil {
		t.Fatal("upstreams without a request")
	}
}

// TestUpstreamsAllocs: a request's upstreams, its attempt, its identity
// header and its response body wrapper cost one allocation up to 8
// targets.
func TestUpstreamsAllocs(t *testing.T) {
	r := proxiedReq("10.0.0.1")
	vars := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	addrs := []string{"10.3.0.1:80", "10.3.0.2:80", "10.3.0.3:80"}
	got := testing.AllocsPerRun(100, func() {
		delete(vars, attemptsVar)
		ups := Upstreams(r, addrs)
		a := markTried(r, ups[0].Dial)
		forwardedIdentity(r, a)
		_ = a.newBody()
	})
	if got != 1 {
		t.Fatalf("%.1f allocations per request, want 1", got)
	}
}

// TestAttemptsLogField: the access log gets upstream_attempts only when
// the request was retried (a reader assumes 1 without it).
func TestAttemptsLogField(t *testing.T) {
	r := proxiedReq("10.0.0.1")
	extra := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields)
	logged := func() (keys []string, n int64) {
		fields := reflect.ValueOf(extra).Elem().FieldByName("fields")
		for i := range fields.Len() {
			f := fields.Index(i)
			keys = append(keys, f.FieldByName("Key").String())
			n = f.FieldByName("Integer").Int()
		}
		return keys, n
	}
	markTried(r, "a:1")
	if keys, _ := logged(); len(keys) != 0 {
		t.Fatalf("first attempt logged %v", keys)
	}
	markTried(r, "b:1")
	markTried(r, "c:1")
	if keys, n := logged(); len(keys) != 1 || keys[0] != attemptsLogField || n != 3 {
		t.Fatalf("after three attempts: %v %d", keys, n)
	}
}
