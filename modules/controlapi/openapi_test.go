package controlapi

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/registry"
)

func TestOpenAPICoversRoutes(t *testing.T) {
	e := newEnv(t)
	w := e.do(req{method: "GET", path: "/api/v1/openapi.json", token: readToken})
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q", w.Code, w.Header().Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0.") {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	documented := map[string]string{}
	for path, item := range doc.Paths {
		for method, op := range item {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			var o struct {
				Scope     string                     `json:"x-sentinel-scope"`
				Responses map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(op, &o); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			if _, ok := o.Responses["401"]; !ok {
				t.Errorf("%s %s documents no 401", method, path)
			}
			documented[strings.ToUpper(method)+" "+path] = o.Scope
		}
	}
	served := map[string]string{}
	for _, rt := range e.srv.endpoints {
		served[rt.method+" "+rt.pattern] = rt.scope.String()
	}
	for k, sc := range served {
		if got, ok := documented[k]; !ok {
			t.Errorf("%s is served but not documented", k)
		} else if got != sc {
			t.Errorf("%s: documented scope %q, served %q", k, got, sc)
		}
	}
	for k := range documented {
		if _, ok := served[k]; !ok {
			t.Errorf("%s is documented but not served", k)
		}
	}
}

func TestOpenAPIRefsResolve(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(newEnv(t).srv.openapi, &doc); err != nil {
		t.Fatal(err)
	}
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "$ref" {
					refs = append(refs, x.(string))
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	sort.Strings(refs)
	if len(refs) == 0 {
		t.Fatal("no $ref")
	}
	for _, ref := range refs {
		parts := strings.Split(strings.TrimPrefix(ref, "#/"), "/")
		var cur any = doc
		for _, p := range parts {
			m, ok := cur.(map[string]any)
			if !ok {
				cur = nil
				break
			}
			cur = m[p]
		}
		if cur == nil {
			t.Errorf("$ref %s does not resolve", ref)
		}
	}
}

// resolve follows a $ref of the document.
func resolve(t *testing.T, doc map[string]any, s map[string]any) map[string]any {
	t.Helper()
	ref, ok := s["$ref"].(string)
	if !ok {
		return s
	}
	var cur any = doc
	for _, p := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		cur = cur.(map[string]any)[p]
	}
	return cur.(map[string]any)
}

// checkSchema checks that schema s of the document is the schema of Go
// type typ: the same JSON type, the same members (and, for a request,
// the same required members and no others allowed), recursively.
func checkSchema(t *testing.T, doc, s map[string]any, typ reflect.Type, request bool, where string) {
	t.Helper()
	s = resolve(t, doc, s)
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	want := map[reflect.Kind]string{
		reflect.String: "string", reflect.Bool: "boolean", reflect.Int: "integer", reflect.Int64: "integer",
		reflect.Uint64: "integer", reflect.Float64: "number", reflect.Slice: "array", reflect.Struct: "object", reflect.Map: "object",
	}[typ.Kind()]
	switch {
	case typ == reflect.TypeFor[time.Time]():
		want = "string"
		if s["format"] != "date-time" {
			t.Errorf("%s: format %v", where, s["format"])
		}
	case typ == reflect.TypeFor[rawJSON]():
		want = "object"
	}
	if s["type"] != want {
		t.Errorf("%s (%v): type %v, want %s", where, typ, s["type"], want)
		return
	}
	switch {
	case typ.Kind() == reflect.Slice && want == "array":
		checkSchema(t, doc, s["items"].(map[string]any), typ.Elem(), request, where+"[]")
	case typ.Kind() == reflect.Struct && typ != reflect.TypeFor[time.Time]():
		props, _ := s["properties"].(map[string]any)
		var required []string
		for _, r := range asSlice(s["required"]) {
			required = append(required, r.(string))
		}
		var fields, wantRequired []string
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			fields = append(fields, name)
			if request && f.Tag.Get("api") == "required" || !request && !strings.Contains(opts, "omit") {
				wantRequired = append(wantRequired, name)
			}
			p, ok := props[name].(map[string]any)
			if !ok {
				t.Errorf("%s: %s is not documented", where, name)
				continue
			}
			checkSchema(t, doc, p, f.Type, request, where+"."+name)
		}
		docFields := make([]string, 0, len(props))
		for k := range props {
			docFields = append(docFields, k)
		}
		sort.Strings(fields)
		sort.Strings(docFields)
		if !reflect.DeepEqual(fields, docFields) {
			t.Errorf("%s (%v): documented members %v, Go fields %v", where, typ, docFields, fields)
		}
		if fmt.Sprint(required) != fmt.Sprint(wantRequired) {
			t.Errorf("%s (%v): required %v, want %v", where, typ, required, wantRequired)
		}
		if ap, _ := s["additionalProperties"].(bool); request && ap || request && s["additionalProperties"] == nil {
			t.Errorf("%s: a request object allows unknown members", where)
		}
	}
}

// asSlice returns v as a slice (nil when it is not one).
func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// TestOpenAPISchemasFromTypes: every request and response body schema of
// the document is the schema of the endpoint's Go type.
func TestOpenAPISchemasFromTypes(t *testing.T) {
	e := newEnv(t)
	var doc map[string]any
	if err := json.Unmarshal(e.srv.openapi, &doc); err != nil {
		t.Fatal(err)
	}
	paths := doc["paths"].(map[string]any)
	for _, ep := range e.srv.endpoints {
		op := paths[ep.pattern].(map[string]any)[strings.ToLower(ep.method)].(map[string]any)
		where := ep.method + " " + ep.pattern
		body, hasBody := op["requestBody"].(map[string]any)
		if hasBody != (ep.in != nil) {
			t.Errorf("%s: request body documented %v, taken %v", where, hasBody, ep.in != nil)
		}
		if ep.in != nil {
			if body["required"] != !ep.optional {
				t.Errorf("%s: body required %v", where, body["required"])
			}
			s := body["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
			checkSchema(t, doc, s, ep.in, true, where+" request")
		}
		resp := op["responses"].(map[string]any)[strconv.Itoa(ep.status)].(map[string]any)
		content, hasContent := resp["content"].(map[string]any)
		if hasContent != (ep.out != nil) {
			t.Errorf("%s: response body documented %v, answered %v", where, hasContent, ep.out != nil)
		}
		if ep.out != nil {
			s := content["application/json"].(map[string]any)["schema"].(map[string]any)
			checkSchema(t, doc, s, ep.out, false, where+" response")
		}
	}
	errSchema := doc["components"].(map[string]any)["responses"].(map[string]any)["BadRequest"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
	checkSchema(t, doc, errSchema, reflect.TypeFor[errorBody](), false, "error")
	// The limits of the request types are the API's.
	tp := resolve(t, doc, map[string]any{"$ref": "#/components/schemas/TargetPatch"})
	if w := tp["properties"].(map[string]any)["weight"].(map[string]any); w["minimum"] != 1.0 || w["maximum"] != float64(maxWeight) {
		t.Errorf("patch weight %v", w)
	}
	if tp["minProperties"] != 1.0 {
		t.Errorf("TargetPatch %v", tp)
	}
	if st := tp["properties"].(map[string]any)["state"].(map[string]any); fmt.Sprint(st["enum"]) != "[active draining]" {
		t.Errorf("patch state %v", st)
	}
}

// TestRequestLimits: the tags of the request types agree with the
// registry's limits and with the API's.
func TestRequestLimits(t *testing.T) {
	in := newCodec(reflect.TypeFor[targetInput]())
	if w := in.fields["weight"]; w.min != 1 || w.max != maxWeight || *w.def != 1 {
		t.Errorf("weight %+v", w.codec)
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[newUpstream](), reflect.TypeFor[targetList]()} {
		if m := newCodec(typ).fields["targets"].max; m != maxTargets {
			t.Errorf("%v targets: at most %d", typ, m)
		}
	}
	if p := newCodec(reflect.TypeFor[targetPatch]()).fields["weight"].elem; p.min != 1 || p.max != maxWeight {
		t.Errorf("patch weight %d..%d", p.min, p.max)
	}
	if d := newCodec(reflect.TypeFor[drainOptions]()).fields["timeout_secs"]; d.min != 0 || d.max != maxDrainSecs {
		t.Errorf("timeout_secs %d..%d", d.min, d.max)
	}
	// The documented id pattern is the registry's rule.
	f, _ := reflect.TypeFor[newUpstream]().FieldByName("ID")
	re := regexp.MustCompile(f.Tag.Get("pattern"))
	if f.Tag.Get("maxLength") != strconv.Itoa(registry.MaxIDLength) {
		t.Errorf("maxLength %q, the registry's is %d", f.Tag.Get("maxLength"), registry.MaxIDLength)
	}
	for _, id := range []string{"a", "A-1", "x.y_z", "-a", ".a", "", "a b", "é", strings.Repeat("a", registry.MaxIDLength), strings.Repeat("a", registry.MaxIDLength+1), "a/b",
		"team-a:api", "team-a:svc:db", "a:b:c:d", ":a", "a:", "a::b", "a:-b", "-ns:a", "team-a:" + strings.Repeat("a", registry.MaxIDLength-6)} {
		if re.MatchString(id) && len(id) <= registry.MaxIDLength != (registry.ValidateID(id) == nil) {
			t.Errorf("%q: the pattern says %v, the registry %v", id, re.MatchString(id), registry.ValidateID(id))
		}
	}
}

// TestDocsEndpointTable: the endpoint table of docs/control-plane.md is
// the API's.
func TestDocsEndpointTable(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "control-plane.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| (`[A-Z]+ /api/v1/[^`]*`(?:, `[A-Z]+ /api/v1/[^`]*`)*) \\| (read|operate|admin) \\|")
	cell := regexp.MustCompile("`([A-Z]+ /api/v1/[^`]*)`")
	documented := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, c := range cell.FindAllStringSubmatch(m[1], -1) {
			documented[c[1]] = m[2]
		}
	}
	served := map[string]string{}
	for _, ep := range newEnv(t).srv.endpoints {
		served[ep.method+" "+ep.pattern] = ep.scope.String()
	}
	if !reflect.DeepEqual(documented, served) {
		t.Errorf("docs/control-plane.md lists\n%v\nthe API serves\n%v", documented, served)
	}
}

// Route is a type whose schema name is taken by registry.Route.
type Route struct{}

func TestOpenAPIGeneratorErrors(t *testing.T) {
	g := &schemaGen{schemas: jsonObject{}, names: map[reflect.Type]string{}, docs: goDocs()}
	if _, err := g.schema(reflect.TypeFor[chan int](), "", false); err == nil {
		t.Error("a channel has a schema")
	}
	if _, err := g.schema(reflect.TypeFor[int](), `min:"x"`, true); err == nil {
		t.Error("a bad min tag")
	}
	if _, err := g.schema(reflect.TypeFor[[]int](), `max:"x"`, true); err == nil {
		t.Error("a bad max tag")
	}
	if _, err := g.ref(reflect.TypeFor[registry.Route](), false); err != nil {
		t.Fatal(err)
	}
	if _, err := g.ref(reflect.TypeFor[Route](), false); err == nil || !strings.Contains(err.Error(), "schema name Route") {
		t.Errorf("name clash: %v", err)
	}
	if _, err := openAPIDocument([]endpoint{{method: "GET", pattern: "/x", errors: []int{418}, handler: noBody(func(*call) (noContent, error) { return noContent{}, nil })}}); err == nil {
		t.Error("an undocumented error status")
	}
	if _, err := openAPIDocument([]endpoint{{method: "GET", pattern: "/x", handler: noBody(func(*call) (chan int, error) { return nil, nil })}}); err == nil {
		t.Error("a response without a schema")
	}
}
