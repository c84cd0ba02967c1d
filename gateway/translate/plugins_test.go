package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	_ "github.com/sentinel-proxy/sentinel/modules/wasm"
	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// buildPathAllow builds the repository's example plugin
// examples/plugins/pathallow (Go, GOOS=wasip1) and returns its module.
func buildPathAllow(t *testing.T) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "pathallow.wasm")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-buildmode=c-shared", "-o", out, "../../examples/plugins/pathallow")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the pathallow plugin: %v\n%s", err, b)
	}
	code, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// TestExtensionRefPlugin: an ExtensionRef filter naming a SentinelPlugin
// runs that WASM plugin (the repository's pathallow example, built here,
// in a real Caddy) in the rule's chain at the filter's place, whether
// its module comes from a ConfigMap (delivered under PluginDir, pinned
// by its digest, listed in Output.Modules) or from a path; a GRPCRoute
// gets it too. A missing SentinelPlugin, a missing ConfigMap or key, a
// ConfigMap value that is no module and a module its spec.sha256 does
// not pin are ResolvedRefs=False (BackendNotFound) with a message that
// says which, and the rule answers 500.
func TestExtensionRefPlugin(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir()) // the plugins' compilation cache
	code := buildPathAllow(t)
	sum := sha256.Sum256(code)
	digest := hex.EncodeToString(sum[:])
	file := filepath.Join(t.TempDir(), "byfile.wasm")
	if err := os.WriteFile(file, code, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in := base()
	in.PluginDir = dir
	cfg := func(js string) *apiextensionsv1.JSON { return &apiextensionsv1.JSON{Raw: []byte(js)} }
	cm := func(name, key string) *v1alpha1.PluginConfigMapRef {
		return &v1alpha1.PluginConfigMapRef{Name: name, Key: key}
	}
	timeout, body, idle := int32(200), int64(4096), int32(2)
	in.Plugins = map[types.NamespacedName]*v1alpha1.SentinelPlugin{
		{Namespace: "gw", Name: "paths"}: {Spec: v1alpha1.SentinelPluginSpec{ConfigMapRef: cm("mods", "pathallow.wasm"), SHA256: digest,
			Config: cfg(`{"allow":["/cm/ok"]}`), FailureMode: "closed", TimeoutMilliseconds: &timeout, MaxMemory: "64MiB", MaxBodyBytes: &body, MaxIdleInstances: &idle}},
		{Namespace: "gw", Name: "byfile"}:  {Spec: v1alpha1.SentinelPluginSpec{Path: file, ABI: "sentinel", Config: cfg(`{"allow":["/file/ok"]}`)}},
		{Namespace: "gw", Name: "pinned"}:  {Spec: v1alpha1.SentinelPluginSpec{ConfigMapRef: cm("mods", "pathallow.wasm"), SHA256: strings.Repeat("0", 64)}},
		{Namespace: "gw", Name: "nocm"}:    {Spec: v1alpha1.SentinelPluginSpec{ConfigMapRef: cm("absent", "")}},
		{Namespace: "gw", Name: "nokey"}:   {Spec: v1alpha1.SentinelPluginSpec{ConfigMapRef: cm("mods", "")}},
		{Namespace: "gw", Name: "notwasm"}: {Spec: v1alpha1.SentinelPluginSpec{ConfigMapRef: cm("mods", "junk")}},
		{Namespace: "app", Name: "paths"}:  {Spec: v1alpha1.SentinelPluginSpec{Path: "/elsewhere.wasm"}},
	}
	in.ConfigMaps = map[types.NamespacedName]*corev1.ConfigMap{
		{Namespace: "gw", Name: "mods"}: {BinaryData: map[string][]byte{"pathallow.wasm": code, "junk": []byte("hello")}},
	}
	// What the controller delivers: the module under PluginDir.
	if err := os.MkdirAll(filepath.Join(dir, "gw", "paths"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gw", "paths", "plugin.wasm"), code, 0o644); err != nil {
		t.Fatal(err)
	}
	echoBackend(t, in, "gw", "local")
	prefixRoute := func(name, prefix string, filters ...gwv1.HTTPRouteFilter) *gwv1.HTTPRoute {
		return route("gw", name, gwv1.HTTPRouteRule{
			Matches:     []gwv1.HTTPRouteMatch{{Path: pm(gwv1.PathMatchPathPrefix, prefix)}},
			Filters:     filters,
			BackendRefs: []gwv1.HTTPBackendRef{ref("", "local", 8080)},
		})
	}
	// The header modifier comes first: the plugin's handler follows it.
	seen := gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "X-Seen", Value: "yes"}}}}
	in.Routes = []*gwv1.HTTPRoute{
		prefixRoute("cm", "/cm", seen, extRef(KindSentinelPlugin, "paths")),
		prefixRoute("file", "/file", extRef(KindSentinelPlugin, "byfile")),
		prefixRoute("pinned", "/pinned", extRef(KindSentinelPlugin, "pinned")),
		prefixRoute("nocm", "/nocm", extRef(KindSentinelPlugin, "nocm")),
		prefixRoute("nokey", "/nokey", extRef(KindSentinelPlugin, "nokey")),
		prefixRoute("notwasm", "/notwasm", extRef(KindSentinelPlugin, "notwasm")),
		prefixRoute("missing", "/missing", extRef(KindSentinelPlugin, "nothere")),
		prefixRoute("wrongkind", "/wrongkind", extRef("SentinelUpstream", "paths")),
	}
	in.GRPCRoutes = []*gwv1.GRPCRoute{grpcRoute("g", gwv1.GRPCRouteRule{
		Filters:     []gwv1.GRPCRouteFilter{{Type: gwv1.GRPCRouteFilterExtensionRef, ExtensionRef: extRef(KindSentinelPlugin, "byfile").ExtensionRef}},
		BackendRefs: []gwv1.GRPCBackendRef{grpcRef("local", 1)},
	})}
	url := serve(t, in)
	out, err := Translate(in)
	if err != nil {
		t.Fatal(err)
	}
	notFound := "Accepted=True/Accepted ResolvedRefs=False/BackendNotFound"
	for name, want := range map[string][2]string{
		"cm":        {"Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs", ""},
		"file":      {"Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs", ""},
		"pinned":    {notFound, "SentinelPlugin gw/pinned: ConfigMap gw/mods key \"pathallow.wasm\" has sha256 " + digest + ", spec.sha256 pins 0000"},
		"nocm":      {notFound, "SentinelPlugin gw/nocm: its ConfigMap gw/absent not found"},
		"nokey":     {notFound, `its ConfigMap gw/mods has no binaryData key "plugin.wasm"`},
		"notwasm":   {notFound, `ConfigMap gw/mods key "junk" is not a WASM module (5 bytes`},
		"missing":   {notFound, "SentinelPlugin gw/nothere not found"},
		"wrongkind": {"Accepted=True/Accepted ResolvedRefs=False/InvalidKind", "only sentinel.sentinel-proxy.io/SentinelAgent and sentinel.sentinel-proxy.io/SentinelPlugin"},
	} {
		cs := out.RouteParents[types.NamespacedName{Namespace: "gw", Name: name}][0].Conditions
		if got := conds(cs); got != want[0] {
			t.Errorf("%s: %s, want %s", name, got, want[0])
		}
		if msg := cs[len(cs)-1].Message; !strings.Contains(msg, want[1]) {
			t.Errorf("%s: message %q, want %q", name, msg, want[1])
		}
	}
	if got := conds(out.GRPCRouteParents[types.NamespacedName{Namespace: "gw", Name: "g"}][0].Conditions); !strings.Contains(got, "ResolvedRefs=True") {
		t.Errorf("GRPCRoute with a plugin: %s", got)
	}
	if len(out.Modules) != 1 || out.Modules[0].Plugin.String() != "gw/paths" || out.Modules[0].SHA256 != digest ||
		out.Modules[0].Path != "gw/paths/plugin.wasm" || len(out.Modules[0].Data) != len(code) {
		t.Errorf("modules: %+v, want only gw/paths's", out.Modules)
	}
	c := string(out.Config)
	for _, want := range []string{
		`"path":"` + filepath.Join(dir, "gw/paths/plugin.wasm") + `","sha256":"` + digest + `","timeout":"200ms"`,
		`"config":{"allow":["/cm/ok"]},"failure_mode":"closed","id":"gw/paths","max_body_bytes":4096,"max_idle_instances":2,"max_memory":"64MiB"`,
		`"abi":"sentinel","config":{"allow":["/file/ok"]},"id":"gw/byfile","path":"` + file + `"}]`,
	} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %s:\n%s", want, c)
		}
	}
	if h, w := strings.Index(c, `"X-Seen"`), strings.Index(c, `"id":"gw/paths"`); h < 0 || w < h {
		t.Errorf("the plugin's handler is not after the header filter before it")
	}
	for path, want := range map[string]string{
		"/cm/ok":        "200 local",
		"/cm/other":     "403 ",
		"/file/ok/x":    "200 local",
		"/file/no":      "403 ",
		"/pinned":       "500 ",
		"/nocm":         "500 ",
		"/notwasm":      "500 ",
		"/missing/x":    "500 ",
		"/wrongkind/ok": "500 ",
	} {
		got := get(t, url+path, 1)
		ok := false
		for k := range got {
			ok = ok || strings.HasPrefix(k, want)
		}
		if !ok {
			t.Errorf("%s: %v, want %q…", path, got, want)
		}
	}
}

// TestPluginRefs: the controller reads the SentinelPlugins the routes'
// ExtensionRef filters name (HTTPRoutes and GRPCRoutes), once each, in
// the routes' namespaces; agents and other kinds are not plugins.
func TestPluginRefs(t *testing.T) {
	r1 := route("app", "a", gwv1.HTTPRouteRule{Filters: []gwv1.HTTPRouteFilter{extRef(KindSentinelPlugin, "p"), extRef(KindSentinelAgent, "w"), extRef(KindSentinelPlugin, "p")}})
	r2 := route("gw", "b", gwv1.HTTPRouteRule{Filters: []gwv1.HTTPRouteFilter{extRef(KindSentinelPlugin, "p"), {Type: gwv1.HTTPRouteFilterExtensionRef}}})
	g := grpcRoute("g", gwv1.GRPCRouteRule{Filters: []gwv1.GRPCRouteFilter{{Type: gwv1.GRPCRouteFilterExtensionRef, ExtensionRef: extRef(KindSentinelPlugin, "q").ExtensionRef}}})
	got := PluginRefs([]*gwv1.HTTPRoute{r1, r2}, []*gwv1.GRPCRoute{g})
	if len(got) != 3 || got[0].String() != "app/p" || got[1].String() != "gw/p" || got[2].String() != "gw/q" {
		t.Errorf("PluginRefs = %v", got)
	}
}
