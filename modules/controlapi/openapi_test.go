package controlapi

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
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
