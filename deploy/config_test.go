package deploy

import (
	"crypto/tls"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/testutil"

	"github.com/caddyserver/caddy/v2"
	"github.com/quic-go/quic-go/http3"
	corev1 "k8s.io/api/core/v1"

	"github.com/sentinel-proxy/sentinel/kdladapter"
)

// adaptedConfig is the part of the adapted Caddy JSON the tests read.
type adaptedConfig struct {
	Admin *struct {
		Listen   string `json:"listen"`
		Disabled bool   `json:"disabled"`
	} `json:"admin"`
	Apps struct {
		HTTP struct {
			GracePeriod string `json:"grace_period"`
			Servers     map[string]struct {
				Listen    []string `json:"listen"`
				Protocols []string `json:"protocols"`
			} `json:"servers"`
		} `json:"http"`
		Sentinel struct {
			API *struct {
				Listen string `json:"listen"`
			} `json:"api"`
		} `json:"sentinel"`
	} `json:"apps"`
}

// adapt adapts a rendered sentinel.kdl with the project's adapter and
// fails on an error or any warning.
func adapt(t *testing.T, kdl string) adaptedConfig {
	t.Helper()
	out, warns, err := kdladapter.Adapt("sentinel.kdl", []byte(kdl), podEnv, kdladapter.OSFiles{})
	if err != nil {
		t.Fatalf("the adapter rejects the rendered sentinel.kdl: %v\n%s", err, kdl)
	}
	for _, w := range warns {
		t.Errorf("adapter warning: %s", w.String())
	}
	var cfg adaptedConfig
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestRenderedConfigAdapts adapts the sentinel.kdl of the rendered
// ConfigMap of every value set (with no warning), and checks it against
// the Deployment: a server on every container port, HTTP/3 where the UDP
// port is, the grace period, Caddy's admin endpoint off.
func TestRenderedConfigAdapts(t *testing.T) {
	ch := loadChart(t)
	adapted := 0
	for _, vs := range valueSets(t) {
		t.Run(vs.name, func(t *testing.T) {
			r := mustRender(t, ch, vs.vals)
			kdl := r.configText(t)
			if kdl == "" {
				t.Skip("config from an existing ConfigMap")
			}
			adapted++
			cfg := adapt(t, kdl)
			c := pod(t, r).container

			listening := map[string][]string{} // port → protocols
			for name, srv := range cfg.Apps.HTTP.Servers {
				for _, l := range srv.Listen {
					host, port, err := net.SplitHostPort(l)
					if err != nil || (host != "0.0.0.0" && host != "") {
						t.Errorf("server %s listens on %q: pods must listen on every interface", name, l)
					}
					listening[port] = srv.Protocols
				}
			}
			if api := cfg.Apps.Sentinel.API; api != nil {
				_, port, _ := net.SplitHostPort(api.Listen)
				listening[port] = []string{"control-plane"}
			}
			for _, cp := range c.Ports {
				protos, ok := listening[strconv.Itoa(int(cp.ContainerPort))]
				if !ok {
					t.Errorf("container port %s (%d): no listener in the config", cp.Name, cp.ContainerPort)
				}
				if cp.Protocol == corev1.ProtocolUDP && !contains(protos, "h3") {
					t.Errorf("UDP port %s (%d): the listener does not serve HTTP/3 (%v)", cp.Name, cp.ContainerPort, protos)
				}
			}
			// Caddy's admin endpoint (no authentication: it shows the
			// whole config and loads any other) is off. A config written
			// for the original chart has no caddy-admin: Caddy's default,
			// on the pod's loopback.
			switch {
			case cfg.Admin != nil && cfg.Admin.Disabled:
			case strings.Contains(kdl, "caddy-admin"):
				t.Errorf("Caddy admin is not turned off: %+v", *cfg.Admin)
			case cfg.Admin != nil:
				if host, _, _ := net.SplitHostPort(cfg.Admin.Listen); host != "localhost" && host != "127.0.0.1" {
					t.Errorf("Caddy admin listens on %q, want the pod's loopback", cfg.Admin.Listen)
				}
			}
			g, _ := gracefulSeconds(kdl)
			d, err := caddy.ParseDuration(cfg.Apps.HTTP.GracePeriod)
			if err != nil || d != time.Duration(g)*time.Second {
				t.Errorf("grace_period %q, want %d s: %v", cfg.Apps.HTTP.GracePeriod, g, err)
			}
		})
	}
	if adapted < 10 {
		t.Errorf("only %d configs adapted", adapted)
	}
}

// TestDefaultValues pins what `helm install` with no values gives.
func TestDefaultValues(t *testing.T) {
	r := mustRender(t, loadChart(t), map[string]any{})
	p := pod(t, r)
	c, spec := p.container, p.deploy.Spec.Template.Spec
	for _, pr := range []struct {
		probe *corev1.Probe
		path  string
	}{{c.StartupProbe, "/health"}, {c.LivenessProbe, "/healthz"}, {c.ReadinessProbe, "/ready"}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil || pr.probe.HTTPGet.Path != pr.path || pr.probe.HTTPGet.Port.String() != "metrics" {
			t.Errorf("probe %+v, want %s on port metrics", pr.probe, pr.path)
		}
	}
	ports := map[string]int32{}
	for _, cp := range c.Ports {
		ports[cp.Name] = cp.ContainerPort
	}
	if fmt.Sprint(ports) != "map[http:8080 metrics:9090]" {
		t.Errorf("container ports %v", ports)
	}
	if *p.deploy.Spec.Replicas != 2 || *spec.TerminationGracePeriodSeconds != 45 || c.Lifecycle.PreStop.Sleep.Seconds != 10 {
		t.Errorf("replicas %d, grace %d, preStop %d", *p.deploy.Spec.Replicas, *spec.TerminationGracePeriodSeconds, c.Lifecycle.PreStop.Sleep.Seconds)
	}
	if *spec.SecurityContext.RunAsUser != 65532 || spec.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v", spec.SecurityContext)
	}
	kinds := map[string]int{}
	for _, o := range r.objects {
		kinds[o.meta.Kind]++
	}
	if fmt.Sprint(kinds) != "map[ConfigMap:1 Deployment:1 PodDisruptionBudget:1 Service:2 ServiceAccount:1]" {
		t.Errorf("default objects: %v", kinds)
	}
	kdl := r.configText(t)
	for _, want := range []string{`address "0.0.0.0:8080"`, `address "0.0.0.0:9090"`, `caddy-admin "off"`, `graceful-shutdown-timeout-secs 30`} {
		if !strings.Contains(kdl, want) {
			t.Errorf("default config lacks %s", want)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestMain removes the built binary.
func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBuilds()
	os.Exit(code)
}

// buildBinary builds the sentinel binary (CGO_ENABLED=0, as the image is).
func buildBinary(t *testing.T) string {
	t.Helper()
	return testutil.Build(t, "./cmd/sentinel")
}

// TestStaticBinary: the CGO_ENABLED=0 build is a static executable (no
// dynamic loader, no shared library), so it runs on distroless/static or
// scratch.
func TestStaticBinary(t *testing.T) {
	bin := buildBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Skipf("not an ELF binary (%v)", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a dynamic loader (PT_INTERP)")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries: %v", libs)
	}
}

// TestProbesAnswer starts the binary on the rendered sentinel.kdl of every
// value set (listeners moved to free loopback ports, certificate paths to
// a temporary copy of the Secret), and sends the Deployment's startup,
// liveness and readiness probes: each must answer 200. With TLS the probe
// path is also fetched over HTTPS, and over HTTP/3 when the UDP port is
// on. SIGTERM (what the kubelet sends after preStop) stops the process.
func TestProbesAnswer(t *testing.T) {
	bin := buildBinary(t)
	ch := loadChart(t)
	for _, vs := range valueSets(t) {
		t.Run(vs.name, func(t *testing.T) {
			r := mustRender(t, ch, vs.vals)
			kdl := r.configText(t)
			if kdl == "" {
				t.Skip("config from an existing ConfigMap")
			}
			t.Parallel()
			probeBinary(t, bin, r, kdl)
		})
	}
}

func probeBinary(t *testing.T, bin string, r *rendered, kdl string) {
	c := pod(t, r).container
	dir := t.TempDir()

	// Loopback ports for the container ports; the admin API too.
	mapped := map[int32]int{}
	for _, cp := range c.Ports {
		if _, done := mapped[cp.ContainerPort]; done {
			continue
		}
		if r.boolean("service.http3.enabled") && cp.ContainerPort == int32(r.integer(t, "service.httpsTargetPort")) {
			mapped[cp.ContainerPort] = testutil.FreePort(t)
		} else {
			mapped[cp.ContainerPort] = testutil.FreePort(t)
		}
		old := fmt.Sprintf(`"0.0.0.0:%d"`, cp.ContainerPort)
		if !strings.Contains(kdl, old) {
			t.Fatalf("container port %d is not in the config", cp.ContainerPort)
		}
		kdl = strings.ReplaceAll(kdl, old, fmt.Sprintf(`"127.0.0.1:%d"`, mapped[cp.ContainerPort]))
	}
	// Caddy's admin endpoint is off in the chart's configs; CADDY_ADMIN
	// (a free port) is its address where a config leaves Caddy's default.
	admin := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	adminOff := strings.Contains(kdl, `caddy-admin "off"`)

	// The certificate, as the projected volume mounts it.
	if r.boolean("tls.enabled") {
		secret := one[*corev1.Secret](t, r)
		os.MkdirAll(filepath.Join(dir, "tls"), 0o700)
		for _, k := range []string{"tls.crt", "tls.key"} {
			if err := os.WriteFile(filepath.Join(dir, "tls", k), secret.Data[k], 0o600); err != nil {
				t.Fatal(err)
			}
		}
		kdl = strings.ReplaceAll(kdl, "/etc/sentinel/tls/", filepath.Join(dir, "tls")+"/")
	}
	config := filepath.Join(dir, "sentinel.kdl")
	if err := os.WriteFile(config, []byte(kdl), 0o600); err != nil {
		t.Fatal(err)
	}

	env := []string{"CADDY_ADMIN=" + admin, "PATH=" + os.Getenv("PATH")}
	for _, d := range []string{"XDG_DATA_HOME", "XDG_CONFIG_HOME", "HOME", "TMPDIR"} {
		p := filepath.Join(dir, strings.ToLower(d))
		os.Mkdir(p, 0o700)
		env = append(env, d+"="+p)
	}
	if r.boolean("controlPlane.enabled") {
		env = append(env, "ADMIN_API_TOKEN=test-token")
	}
	proc := testutil.NewProcess(t, "sentinel", env, bin, "run", "--config", config)
	proc.Dir = dir
	proc.Grace = 15 * time.Second
	proc.Start()

	url := func(scheme string, port intOrName, path string) string {
		cp, ok := containerPortByRef(c, port)
		if !ok {
			t.Fatalf("probe port %v is no container port", port)
		}
		return fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, mapped[cp.ContainerPort], path)
	}
	plain := &http.Client{Timeout: 3 * time.Second}
	probes := []struct {
		name  string
		probe *corev1.Probe
	}{{"startup", c.StartupProbe}, {"liveness", c.LivenessProbe}, {"readiness", c.ReadinessProbe}}
	for i, p := range probes {
		u := url("http", intOrName{p.probe.HTTPGet.Port.String()}, p.probe.HTTPGet.Path)
		wait := time.Duration(0)
		if i == 0 {
			// The startup probe gives the process periodSeconds × failureThreshold.
			wait = time.Duration(p.probe.PeriodSeconds*p.probe.FailureThreshold) * time.Second
		}
		// The builtin health handler answers, not a catch-all route.
		status, body := get(t, plain, u, wait, proc)
		// /ready may be the ready kind (503 "starting" until every
		// listener is up, then "ready") or a health route.
		if status != http.StatusOK || !strings.Contains(body, `"healthy"`) && !strings.Contains(body, `"ready"`) {
			t.Errorf("%s probe GET %s: %d %s", p.name, u, status, body)
		}
	}
	if r.boolean("tls.enabled") {
		pool := tlsClientConfig(t, one[*corev1.Secret](t, r).Data["tls.crt"])
		u := url("https", intOrName{"https"}, "/health")
		res, body := getResponse(t, &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: pool}}, u)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %s", u, res.StatusCode, body)
		}
		if r.boolean("service.http3.enabled") {
			port := mapped[int32(r.integer(t, "service.httpsTargetPort"))]
			if alt := res.Header.Get("Alt-Svc"); !strings.Contains(alt, fmt.Sprintf(`h3=":%d"`, port)) {
				t.Errorf("Alt-Svc %q does not advertise HTTP/3 on %d", alt, port)
			}
			h3 := &http.Client{Timeout: 5 * time.Second, Transport: &http3.Transport{TLSClientConfig: pool}}
			defer h3.Transport.(*http3.Transport).Close()
			res, body := getResponse(t, h3, u)
			if res.StatusCode != http.StatusOK || res.Proto != "HTTP/3.0" {
				t.Errorf("HTTP/3 GET %s: %s %d %s", u, res.Proto, res.StatusCode, body)
			}
			t.Logf("%s answered over HTTP/3 (%s)", u, res.Proto)
		}
		if r.boolean("controlPlane.enabled") {
			// The control-plane API: HTTPS, the token from the Secret.
			u := url("https", intOrName{"control-plane"}, "/api/v1/routes")
			cl := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: pool}}
			if res, body := getResponse(t, cl, u); res.StatusCode != http.StatusUnauthorized {
				t.Errorf("control plane without a token: %d %s", res.StatusCode, body)
			}
			req, _ := http.NewRequest("GET", u, nil)
			req.Header.Set("Authorization", "Bearer test-token")
			res, err := cl.Do(req) // the listener is up: getResponse waited
			if err != nil || res.StatusCode != http.StatusOK {
				t.Errorf("control plane with the token: %v %v", err, res)
			} else {
				res.Body.Close()
			}
		}
	} else if regexp.MustCompile(`protocol "(https|h3)"`).MatchString(kdl) {
		t.Error("TLS listener in the config without tls.enabled")
	}

	// Nothing listens where Caddy's admin endpoint would be.
	if conn, err := net.DialTimeout("tcp", admin, time.Second); err == nil {
		conn.Close()
		if adminOff {
			t.Errorf("Caddy's admin endpoint answers on %s", admin)
		}
	}

	// The kubelet sends SIGTERM after preStop: a graceful exit.
	if err := proc.Terminate(syscall.SIGTERM); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

type intOrName struct{ s string }

func containerPortByRef(c corev1.Container, ref intOrName) (corev1.ContainerPort, bool) {
	for _, p := range c.Ports {
		if p.Name == ref.s || strconv.Itoa(int(p.ContainerPort)) == ref.s {
			return p, true
		}
	}
	return corev1.ContainerPort{}, false
}

// get retries until the server answers (up to wait), then returns the
// status and body.
func get(t *testing.T, client *http.Client, url string, wait time.Duration, proc *testutil.Process) (int, string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		res, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			return res.StatusCode, string(body)
		}
		if exited, err := proc.Wait(0); exited {
			t.Fatalf("sentinel exited: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// getResponse GETs url, retrying for a few seconds while the listener is
// not up yet (Caddy starts its servers one after the other; the probes may
// answer before the last one listens).
func getResponse(t *testing.T, client *http.Client, url string) (*http.Response, string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	res, err := client.Get(url)
	for err != nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		res, err = client.Get(url)
	}
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(body)
}

// tlsClientConfig trusts only the given certificate.
func tlsClientConfig(t *testing.T, certPEM []byte) *tls.Config {
	t.Helper()
	pool := x509CertPool(t, certPEM)
	return &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// TestReadmeCommands: the names the README's commands use exist when the
// release is called `sentinel`, as in `helm install sentinel …`.
func TestReadmeCommands(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{
		"helm install sentinel sentinel/sentinel --namespace sentinel --create-namespace",
		"kubectl -n sentinel rollout status deployment/sentinel",
		"kubectl -n sentinel port-forward service/sentinel-ops 9090:9090",
	} {
		if !strings.Contains(string(readme), cmd) {
			t.Errorf("README.md no longer has %q: update this test", cmd)
		}
	}
	r, err := renderRelease(loadChart(t), map[string]any{}, "sentinel")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.decodeAll(); err != nil {
		t.Fatal(err)
	}
	if d := pod(t, r).deploy; d.Name != "sentinel" {
		t.Errorf("Deployment %s, the README says deployment/sentinel", d.Name)
	}
	found := false
	for _, s := range all[*corev1.Service](r) {
		if s.Name == "sentinel-ops" {
			for _, p := range s.Spec.Ports {
				found = found || (p.Name == "metrics" && p.Port == 9090)
			}
		}
	}
	if !found {
		t.Error("no Service sentinel-ops with port 9090, as the README says")
	}
}

// podEnv is the pod's environment as the chart sets it: the control-plane
// token comes from the Secret.
func podEnv(k string) (string, bool) {
	if k == "ADMIN_API_TOKEN" {
		return "test-token", true
	}
	return os.LookupEnv(k)
}
