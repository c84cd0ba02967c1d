package translate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/agents/sdk"
	_ "github.com/sentinel-proxy/sentinel/modules/agents"
	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// blockAgent blocks the requests whose path starts with /blocked.
type blockAgent struct{ sdk.Base }

func (blockAgent) OnRequestHeaders(_ context.Context, ev *protocol.RequestHeaders) *protocol.Response {
	if strings.HasPrefix(ev.URI, "/blocked") {
		return protocol.BlockResponse(403, "blocked by the agent")
	}
	return nil
}

func extRef(kind, name string) gwv1.HTTPRouteFilter {
	return gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterExtensionRef, ExtensionRef: &gwv1.LocalObjectReference{
		Group: gwv1.Group(v1alpha1.GroupVersion.Group), Kind: gwv1.Kind(kind), Name: gwv1.ObjectName(name)}}
}

// TestExtensionRefAgent: an ExtensionRef filter naming a SentinelAgent of
// the route's namespace puts that agent in the rule's chain (a real agent
// over its Unix socket blocks /blocked, lets the rest through to the
// backend); a missing SentinelAgent is ResolvedRefs=False
// (BackendNotFound) and its rule answers 500; another kind of the group
// is InvalidKind; the agents of two namespaces never share an id.
func TestExtensionRefAgent(t *testing.T) {
	dir, err := os.MkdirTemp("", "gwagent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "a.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sdk.ServeUDS(ctx, sock, blockAgent{}, sdk.Options{AgentID: "waf"}) }()
	t.Cleanup(func() { cancel(); <-done })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	in := base()
	closed := "closed"
	in.Agents = map[types.NamespacedName]*v1alpha1.SentinelAgent{
		{Namespace: "gw", Name: "waf"}:  {Spec: v1alpha1.SentinelAgentSpec{UnixSocket: sock, FailureMode: closed, Type: "waf"}},
		{Namespace: "app", Name: "waf"}: {Spec: v1alpha1.SentinelAgentSpec{GRPC: "http://127.0.0.1:1"}},
	}
	in.Agents[types.NamespacedName{Namespace: "gw", Name: "waf"}].Name = "waf"
	in.Agents[types.NamespacedName{Namespace: "app", Name: "waf"}].Name = "waf"
	echoBackend(t, in, "gw", "local")
	in.Routes = []*gwv1.HTTPRoute{
		route("gw", "guarded", gwv1.HTTPRouteRule{
			Filters:     []gwv1.HTTPRouteFilter{extRef(KindSentinelAgent, "waf")},
			BackendRefs: []gwv1.HTTPBackendRef{ref("", "local", 8080)},
		}),
		route("gw", "lost", gwv1.HTTPRouteRule{
			Matches:     []gwv1.HTTPRouteMatch{{Path: pm(gwv1.PathMatchPathPrefix, "/lost")}},
			Filters:     []gwv1.HTTPRouteFilter{extRef(KindSentinelAgent, "nothere")},
			BackendRefs: []gwv1.HTTPBackendRef{ref("", "local", 8080)},
		}),
		route("gw", "plugin", gwv1.HTTPRouteRule{
			Matches:     []gwv1.HTTPRouteMatch{{Path: pm(gwv1.PathMatchPathPrefix, "/plugin")}},
			Filters:     []gwv1.HTTPRouteFilter{extRef("SentinelRoute", "p")},
			BackendRefs: []gwv1.HTTPBackendRef{ref("", "local", 8080)},
		}),
	}
	url := serve(t, in)
	out, err := Translate(in)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"guarded": "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs",
		"lost":    "Accepted=True/Accepted ResolvedRefs=False/BackendNotFound",
		"plugin":  "Accepted=True/Accepted ResolvedRefs=False/InvalidKind",
	} {
		if got := conds(out.RouteParents[types.NamespacedName{Namespace: "gw", Name: name}][0].Conditions); got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}
	cfg := string(out.Config)
	if !strings.Contains(cfg, `"sentinel_agents":{"agents":[{"failure_mode":"closed","id":"gw/waf","type":"waf","unix_socket":"`+sock+`"}]}`) {
		t.Errorf("agents app: only the agent used, namespaced:\n%s", cfg)
	}
	for path, want := range map[string]string{
		"/ok":         "200 local",
		"/blocked/x":  "403 blocked by the agent",
		"/lost":       "500 ",
		"/plugin/abc": "500 ",
	} {
		got := get(t, url+path, 1)
		if got[want] != 1 {
			t.Errorf("%s: %v, want %q", path, got, want)
		}
	}
}
