package translate

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// serve runs the translated config of in in this process (Caddy, real
// sockets) on a free port of 127.0.0.1, and returns the base URL.
func serve(t *testing.T, in *Input) string {
	t.Helper()
	port := testutil.FreePort(t)
	in.BindHost = "127.0.0.1"
	in.Gateway.Spec.Listeners[0].Port = int32(port)
	out, err := Translate(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(out.Config, true); err != nil {
		t.Fatalf("loading the config: %v\n%s", err, out.Config)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// echoBackend is a real backend answering its name (after the
// duration of the query parameter delay), published as the
// only ready endpoint of Service ns/name (port 8080, name http) of in.
func echoBackend(t *testing.T, in *Input, ns, name string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("delay")); err == nil {
			time.Sleep(d)
		}
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	host, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(p)
	port32, pname, ready := int32(port), "http", true
	key := types.NamespacedName{Namespace: ns, Name: name}
	if in.Services[key] == nil {
		in.Services[key] = in.Services[types.NamespacedName{Namespace: "gw", Name: "local"}].DeepCopy()
		in.Services[key].Namespace, in.Services[key].Name = ns, name
	}
	in.EndpointSlices[key] = []*discoveryv1.EndpointSlice{{
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:     []discoveryv1.EndpointPort{{Name: &pname, Port: &port32}},
	}}
}

// get sends n GETs to url and counts the answers by status and body.
func get(t *testing.T, url string, n int, hdr ...string) map[string]int {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	got := map[string]int{}
	for range n {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got[strconv.Itoa(resp.StatusCode)+" "+string(b)]++
	}
	return got
}
