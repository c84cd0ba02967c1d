package deploy

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

var update = flag.Bool("update", false, "rewrite the generated values tables of README.md and charts/sentinel/README.md")

const (
	tableStart = "<!-- values-table:start: generated from charts/sentinel/values.yaml by `make docs`; do not edit -->"
	tableEnd   = "<!-- values-table:end -->"
)

// valueDoc is one row of the values table.
type valueDoc struct {
	key, typ, def, desc string
}

// valuesDocs reads the documented keys of values.yaml: a key with a
// `# -- description` comment is a row (its whole value is the default); a
// mapping without one is descended into. Every leaf must be documented.
func valuesDocs(t *testing.T) []valueDoc {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	var rows []valueDoc
	var undocumented []string
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			if prefix != "" {
				key = prefix + "." + k.Value
			}
			desc, ok := docComment(k.HeadComment)
			if !ok && v.Kind == yaml.MappingNode && len(v.Content) > 0 {
				walk(v, key)
				continue
			}
			if !ok {
				undocumented = append(undocumented, key)
				continue
			}
			rows = append(rows, valueDoc{key: key, typ: yamlType(v), def: yamlDefault(t, v), desc: desc})
		}
	}
	walk(doc.Content[0], "")
	if len(undocumented) > 0 {
		t.Errorf("values.yaml keys without a `# --` description: %s", strings.Join(undocumented, ", "))
	}
	return rows
}

// docComment returns the text of the last `# --` comment of a head
// comment, continuation lines included.
func docComment(head string) (string, bool) {
	lines := strings.Split(head, "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "# --") {
			start = i
		}
	}
	if start < 0 {
		return "", false
	}
	var parts []string
	for i, l := range lines[start:] {
		l = strings.TrimSpace(l)
		if i == 0 {
			l = strings.TrimPrefix(l, "# --")
		} else {
			l = strings.TrimPrefix(l, "#")
		}
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " "), true
}

func yamlType(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "object"
	}
	switch n.Tag {
	case "!!int":
		return "int"
	case "!!bool":
		return "bool"
	case "!!float":
		return "float"
	case "!!null":
		return "null"
	}
	return "string"
}

func yamlDefault(t *testing.T, n *yaml.Node) string {
	t.Helper()
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "\n") {
		return "see `values.yaml`"
	}
	var v any
	if err := n.Decode(&v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if len(s) > 100 || strings.Contains(s, "`") {
		return "see `values.yaml`"
	}
	return "`" + s + "`"
}

// valuesTable renders the Markdown table.
func valuesTable(rows []valueDoc) string {
	var b strings.Builder
	b.WriteString("| Key | Type | Default | Description |\n|---|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, r := range rows {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.key, r.typ, cell(r.def), cell(r.desc))
	}
	return b.String()
}

// TestValuesTable: the values tables of README.md and the chart's README
// are generated from values.yaml and may not drift (-update rewrites them).
func TestValuesTable(t *testing.T) {
	table := valuesTable(valuesDocs(t))
	for _, file := range []string{filepath.Join(repoRoot(t), "README.md"), filepath.Join(chartDir, "README.md")} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		before, rest, ok1 := strings.Cut(string(src), tableStart)
		_, after, ok2 := strings.Cut(rest, tableEnd)
		if !ok1 || !ok2 {
			t.Errorf("%s: no %s … %s block", file, tableStart, tableEnd)
			continue
		}
		want := before + tableStart + "\n" + table + tableEnd + after
		if want == string(src) {
			continue
		}
		if *update {
			if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("updated %s", file)
			continue
		}
		t.Errorf("%s: the values table differs from values.yaml; run `make docs` (go test ./deploy -run TestValuesTable -update)", file)
	}
}

// schemaNode is the part of JSON Schema the chart's schema uses.
type schemaNode struct {
	Ref                  string                 `json:"$ref"`
	Type                 any                    `json:"type"`
	Properties           map[string]*schemaNode `json:"properties"`
	AdditionalProperties any                    `json:"additionalProperties"`
	Items                *schemaNode            `json:"items"`
	Definitions          map[string]*schemaNode `json:"definitions"`
	OneOf                []*schemaNode          `json:"oneOf"`
}

func loadSchema(t *testing.T) *schemaNode {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s schemaNode
	if err := json.Unmarshal(src, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func (s *schemaNode) resolve(root *schemaNode) *schemaNode {
	if name, ok := strings.CutPrefix(s.Ref, "#/definitions/"); ok {
		return root.Definitions[name]
	}
	return s
}

// TestSchemaCoversValues: every key of values.yaml is declared in
// values.schema.json (so the defaults validate for the right reason), and
// every key the schema declares inline is in values.yaml (so it is
// documented in the values table).
func TestSchemaCoversValues(t *testing.T) {
	root := loadSchema(t)
	vals := loadChart(t).Values
	var check func(v map[string]any, s *schemaNode, prefix string, inRef bool)
	check = func(v map[string]any, s *schemaNode, prefix string, inRef bool) {
		inRef = inRef || s.Ref != ""
		s = s.resolve(root)
		if s.Properties == nil {
			return // a free-form Kubernetes object
		}
		for k, sub := range v {
			ps, ok := s.Properties[k]
			if !ok {
				t.Errorf("values.yaml key %s%s is not in values.schema.json", prefix, k)
				continue
			}
			if m, ok := sub.(map[string]any); ok {
				check(m, ps, prefix+k+".", inRef)
			}
		}
		if inRef {
			return // a shared definition of a Kubernetes object (TestSchemaMatchesKubernetesTypes)
		}
		for k, ps := range s.Properties {
			if _, ok := v[k]; !ok && !(prefix == "" && k == "global") && ps.Ref == "" {
				t.Errorf("values.schema.json declares %s%s, values.yaml does not", prefix, k)
			}
		}
	}
	check(vals, root, "", false)
	if root.AdditionalProperties != false {
		t.Error("the schema accepts unknown top-level keys")
	}
}

// jsonFields lists the JSON field names of a Kubernetes type, inlined
// structs included.
func jsonFields(typ reflect.Type) []string {
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" && strings.Contains(opts, "inline") || f.Anonymous && name == "" {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// TestSchemaMatchesKubernetesTypes: the schema's strict definitions of
// Kubernetes objects (security contexts, probes, resources, topology
// spread, update strategy) list exactly the fields of the k8s.io/api types:
// a typo is rejected, a valid field is not.
func TestSchemaMatchesKubernetesTypes(t *testing.T) {
	root := loadSchema(t)
	for path, typ := range map[string]reflect.Type{
		"#/definitions/containerSecurityContext":              reflect.TypeFor[corev1.SecurityContext](),
		"#/definitions/podSecurityContext":                    reflect.TypeFor[corev1.PodSecurityContext](),
		"#/definitions/probe":                                 reflect.TypeFor[corev1.Probe](),
		"#/definitions/resources":                             reflect.TypeFor[corev1.ResourceRequirements](),
		"topologySpreadConstraints[]":                         reflect.TypeFor[corev1.TopologySpreadConstraint](),
		"updateStrategy":                                      reflect.TypeFor[appsv1.DeploymentStrategy](),
		"updateStrategy.rollingUpdate":                        reflect.TypeFor[appsv1.RollingUpdateDeployment](),
		"#/definitions/containerSecurityContext/capabilities": reflect.TypeFor[corev1.Capabilities](),
		"#/definitions/networkPolicyPeer":                     reflect.TypeFor[networkingv1.NetworkPolicyPeer](),
		"#/definitions/networkPolicyPeer/ipBlock":             reflect.TypeFor[networkingv1.IPBlock](),
	} {
		var s *schemaNode
		switch {
		case strings.HasPrefix(path, "#/definitions/"):
			parts := strings.Split(strings.TrimPrefix(path, "#/definitions/"), "/")
			s = root.Definitions[parts[0]]
			for _, p := range parts[1:] {
				s = s.Properties[p]
			}
		default:
			s = root
			for _, p := range strings.Split(path, ".") {
				arr := strings.HasSuffix(p, "[]")
				s = s.Properties[strings.TrimSuffix(p, "[]")]
				if arr {
					s = s.Items
				}
			}
		}
		if s == nil || s.AdditionalProperties != false {
			t.Errorf("%s: missing or not strict", path)
			continue
		}
		var declared []string
		for k := range s.Properties {
			declared = append(declared, k)
		}
		sort.Strings(declared)
		if want := jsonFields(typ); strings.Join(declared, " ") != strings.Join(want, " ") {
			t.Errorf("%s declares %v\n%s has %v", path, declared, typ, want)
		}
	}
}
