package deploy

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"
)

const (
	chartDir    = "../charts/sentinel"
	releaseName = "prod"
	namespace   = "edge"
	// certPlaceholder in tls.cert / tls.key of a value set is replaced by
	// a self-signed pair generated for the test run.
	certPlaceholder = "generated-by-test"
)

// kubeVersion is the cluster version the chart is rendered for (the chart
// needs 1.30 or newer: preStop sleep).
var kubeVersion = chartutil.KubeVersion{Version: "v1.31.0", Major: "1", Minor: "31"}

// valueSet is a named values file (none for the defaults).
type valueSet struct {
	name string
	file string
	vals map[string]any
}

// valueSets returns the default values and every testdata/values file.
func valueSets(t *testing.T) []valueSet {
	t.Helper()
	sets := []valueSet{{name: "default", vals: map[string]any{}}}
	files, err := filepath.Glob("testdata/values/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no value sets in testdata/values: %v", err)
	}
	sort.Strings(files)
	for _, f := range files {
		vals, err := chartutil.ReadValuesFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		injectTestCert(t, vals)
		sets = append(sets, valueSet{name: strings.TrimSuffix(filepath.Base(f), ".yaml"), file: f, vals: vals})
	}
	readme, err := readmeValues(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	sets = append(sets, valueSet{name: "readme-example", file: "README.md", vals: readme})
	return sets
}

// readmeValues returns the values of the README's `# my-values.yaml`
// example, so that what users copy is tested.
func readmeValues(readme string) (map[string]any, error) {
	src, err := os.ReadFile(readme)
	if err != nil {
		return nil, err
	}
	_, rest, ok := strings.Cut(string(src), "```yaml\n# my-values.yaml\n")
	if !ok {
		return nil, errors.New("no ```yaml block starting with # my-values.yaml")
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		return nil, errors.New("unterminated my-values.yaml block")
	}
	return chartutil.ReadValues([]byte(block))
}

// testCert is a self-signed ECDSA certificate for localhost and 127.0.0.1.
var testCert = sync.OnceValues(func() (certPEM, keyPEM string) {
	c, k, err := testutil.CertPEM("localhost", "127.0.0.1")
	if err != nil {
		panic(err)
	}
	return string(c), string(k)
})

func injectTestCert(t *testing.T, vals map[string]any) {
	t.Helper()
	tls, _ := vals["tls"].(map[string]any)
	if tls == nil {
		return
	}
	cert, key := testCert()
	if tls["cert"] == certPlaceholder {
		tls["cert"] = cert
	}
	if tls["key"] == certPlaceholder {
		tls["key"] = key
	}
}

// loadChart loads the chart from its directory (applying .helmignore).
func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	return ch
}

// rendered is the output of `helm install --dry-run` for one value set.
type rendered struct {
	vals    chartutil.Values // coalesced values (chart defaults + the set)
	files   map[string]string
	notes   string
	objects []*object
}

// object is one decoded manifest.
type object struct {
	source string
	meta   metav1.TypeMeta
	name   string
	ns     string
	labels map[string]string
	obj    any
}

// render renders the chart as `helm install --dry-run` does: kubeVersion
// check, values coalesced and validated against values.schema.json,
// templates rendered. Manifests are not decoded (see decodeAll).
func render(ch *chart.Chart, vals map[string]any) (*rendered, error) {
	return renderRelease(ch, vals, releaseName)
}

// renderRelease renders for the given release name.
func renderRelease(ch *chart.Chart, vals map[string]any, release string) (*rendered, error) {
	if !chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, kubeVersion.String()) {
		return nil, fmt.Errorf("chart requires kubeVersion %s, incompatible with %s", ch.Metadata.KubeVersion, kubeVersion.String())
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = kubeVersion
	top, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{
		Name: release, Namespace: namespace, Revision: 1, IsInstall: true,
	}, caps)
	if err != nil {
		return nil, err
	}
	out, err := engine.Render(ch, top)
	if err != nil {
		return nil, err
	}
	r := &rendered{files: map[string]string{}}
	r.vals, _ = top["Values"].(chartutil.Values)
	for name, content := range out {
		switch {
		case strings.HasSuffix(name, "NOTES.txt"):
			r.notes = content
		case strings.TrimSpace(content) != "":
			r.files[name] = content
		}
	}
	return r, nil
}

// mustRender renders a value set and decodes every manifest strictly.
func mustRender(t *testing.T, ch *chart.Chart, vals map[string]any) *rendered {
	t.Helper()
	r, err := render(ch, vals)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	if err := r.decodeAll(); err != nil {
		t.Fatal(err)
	}
	return r
}

// decodeAll splits every rendered file into documents and decodes each
// strictly into its Kubernetes type.
func (r *rendered) decodeAll() error {
	names := make([]string, 0, len(r.files))
	for n := range r.files {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		docs, err := splitDocuments(r.files[name])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		for i, doc := range docs {
			o, err := decodeStrict([]byte(doc))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s (document %d): %w\n%s", name, i+1, err, doc))
				continue
			}
			o.source = name
			r.objects = append(r.objects, o)
		}
	}
	return errors.Join(errs...)
}

// splitDocuments splits a multi-document YAML stream, dropping documents
// that hold only comments or whitespace.
func splitDocuments(s string) ([]string, error) {
	rd := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(s)))
	var docs []string
	for {
		b, err := rd.Read()
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if !onlyComments(string(b)) {
			docs = append(docs, string(b))
		}
	}
}

func onlyComments(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		l := strings.TrimSpace(line)
		if l != "" && l != "---" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// serviceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor
// that the chart renders; decoding into it rejects any other field.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		NamespaceSelector *struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port              string          `json:"port"`
			Path              string          `json:"path"`
			Scheme            string          `json:"scheme"`
			Interval          string          `json:"interval"`
			ScrapeTimeout     string          `json:"scrapeTimeout"`
			HonorLabels       bool            `json:"honorLabels"`
			Relabelings       []relabelConfig `json:"relabelings,omitempty"`
			MetricRelabelings []relabelConfig `json:"metricRelabelings,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// relabelConfig is monitoring.coreos.com/v1 RelabelConfig.
type relabelConfig struct {
	SourceLabels []string `json:"sourceLabels,omitempty"`
	Separator    *string  `json:"separator,omitempty"`
	TargetLabel  string   `json:"targetLabel,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	Modulus      uint64   `json:"modulus,omitempty"`
	Replacement  *string  `json:"replacement,omitempty"`
	Action       string   `json:"action,omitempty"`
}

// newTyped returns an empty object of the Go type of apiVersion/kind.
func newTyped(tm metav1.TypeMeta) (any, error) {
	switch tm.APIVersion + "/" + tm.Kind {
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, nil
	case "v1/Service":
		return &corev1.Service{}, nil
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1/Secret":
		return &corev1.Secret{}, nil
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, nil
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "networking.k8s.io/v1/Ingress":
		return &networkingv1.Ingress{}, nil
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, nil
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &serviceMonitor{}, nil
	// operator.enabled
	case "apiextensions.k8s.io/v1/CustomResourceDefinition":
		return &apiextensionsv1.CustomResourceDefinition{}, nil
	case "rbac.authorization.k8s.io/v1/Role":
		return &rbacv1.Role{}, nil
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		return &rbacv1.RoleBinding{}, nil
	case "sentinel.sentinel-proxy.io/v1alpha1/SentinelProxy":
		return &v1alpha1.SentinelProxy{}, nil
	}
	return nil, fmt.Errorf("unexpected kind %s %s", tm.APIVersion, tm.Kind)
}

// decodeStrict decodes one YAML document into its Kubernetes type and
// fails on an unknown or misspelled field, a duplicate key, or a value of
// the wrong type.
//
// encoding/json with DisallowUnknownFields rejects unknown fields but
// matches names case-insensitively (`readOnlyRootFileSystem` would pass),
// so the document is also decoded with sigs.k8s.io/json's UnmarshalStrict,
// the case-sensitive strict decoder of the Kubernetes API server.
func decodeStrict(doc []byte) (*object, error) {
	js, err := sigsyaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("YAML: %w", err)
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return nil, err
	}
	typed, err := newTyped(tm)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(typed); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: trailing data", tm.Kind)
	}
	strictErrs, err := sigsjson.UnmarshalStrict(js, typed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if len(strictErrs) > 0 {
		return nil, fmt.Errorf("%s: %w", tm.Kind, errors.Join(strictErrs...))
	}
	o := &object{meta: tm, obj: typed}
	var meta struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(js, &meta); err != nil {
		return nil, err
	}
	o.name, o.ns, o.labels = meta.Metadata.Name, meta.Metadata.Namespace, meta.Metadata.Labels
	return o, nil
}

// all returns the decoded objects of type T.
func all[T any](r *rendered) []T {
	var out []T
	for _, o := range r.objects {
		if v, ok := o.obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// one returns the single object of type T, failing when there is not
// exactly one.
func one[T any](t *testing.T, r *rendered) T {
	t.Helper()
	objs := all[T](r)
	if len(objs) != 1 {
		var zero T
		t.Fatalf("want exactly one %T, got %d", zero, len(objs))
	}
	return objs[0]
}

// value returns the coalesced value at a dotted path ("" when absent).
func (r *rendered) value(path string) any {
	v, err := r.vals.PathValue(path)
	if err != nil {
		// PathValue only returns leaves; tables come from Table.
		tbl, terr := r.vals.Table(path)
		if terr != nil {
			return nil
		}
		return map[string]any(tbl)
	}
	return v
}

func (r *rendered) str(path string) string {
	v := r.value(path)
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func (r *rendered) boolean(path string) bool {
	b, _ := r.value(path).(bool)
	return b
}

func (r *rendered) integer(t *testing.T, path string) int {
	t.Helper()
	switch v := r.value(path).(type) {
	case float64:
		return int(v)
	case int:
		return v
	case int64:
		return int(v)
	case json.Number:
		i, err := v.Int64()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return int(i)
	case string:
		if v == "" {
			return 0
		}
		i, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return i
	default:
		t.Fatalf("%s: not a number: %#v", path, v)
	}
	return 0
}

// configText returns the sentinel.kdl of the rendered ConfigMap, or "" when
// the config comes from an existing ConfigMap.
func (r *rendered) configText(t *testing.T) string {
	t.Helper()
	cms := all[*corev1.ConfigMap](r)
	if len(cms) == 0 {
		return ""
	}
	if len(cms) > 1 {
		t.Fatalf("%d ConfigMaps rendered", len(cms))
	}
	kdl, ok := cms[0].Data["sentinel.kdl"]
	if !ok {
		t.Fatalf("ConfigMap %s has no sentinel.kdl", cms[0].Name)
	}
	return kdl
}

var gracefulRe = regexp.MustCompile(`(?m)(?:^|[{;])[ \t]*graceful-shutdown-timeout-secs[ \t]+([0-9]+)`)

// gracefulSeconds is the config's graceful-shutdown-timeout-secs, if set.
func gracefulSeconds(kdl string) (int, bool) {
	m := gracefulRe.FindStringSubmatch(kdl)
	if m == nil {
		return 0, false
	}
	n, _ := strconv.Atoi(m[1])
	return n, true
}

// repoRoot returns the repository root (the parent of deploy/).
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// x509CertPool holds the given PEM certificates.
func x509CertPool(t *testing.T, certPEM []byte) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("no certificate in the Secret")
	}
	return pool
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
