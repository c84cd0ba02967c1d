package controlapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/sentinel-proxy/sentinel/registry"
)

// The OpenAPI 3.0 document of the API, served at /api/v1/openapi.json, is
// generated from the endpoint table and the Go types of the request and
// response bodies: their JSON names, types and tags (required, min, max,
// enum, default, pattern, example), and their doc comments (collected in
// openapi_docs.go by TestOpenAPIDocs) or doc tags as descriptions.

// jsonObject is a JSON object of the document.
type jsonObject = map[string]any

// rawJSON is a response body that is JSON already (the document itself).
type rawJSON []byte

// amendSchema describes the document as an object.
func (rawJSON) amendSchema(s jsonObject) {
	clear(s)
	s["type"] = "object"
}

// schemaAmender is a type whose generated schema needs more than its Go
// type says.
type schemaAmender interface {
	amendSchema(s jsonObject)
}

// apiDescription is the document's description of the API as a whole.
const apiDescription = "Changes Sentinel's live state: the upstreams and their targets (add, remove, reweight, drain), the route switches, config reloads. " +
	"Every call is authenticated: a bearer token (Authorization: Bearer <token>) with scopes read ⊂ operate ⊂ admin, or, when the API is configured with client_ca_file and allowed_identities, a verified client certificate whose subject common name or DNS name is allowed (admin scope; with a bearer token as well, the token's scopes apply). " +
	"A token scoped to a namespace sees and changes only the upstreams and routes whose ids are qualified with it (\"team-a:api\"): other ids are answered 403, the lists leave them out, and only the operations marked x-sentinel-namespace-tokens accept it. " +
	"Every mutation is written to the audit log. " +
	"Request bodies are JSON (Content-Type: application/json); unknown or repeated fields, trailing data and bodies over max_body_bytes are refused. " +
	"Errors are {\"error\": message, \"field\": input field at fault}. " +
	"Upstream responses carry ETag: \"<version>\"; mutations of an upstream honour If-Match. " +
	"A change that cannot be saved to the state store is not applied and is answered 503. " +
	"Targets added through the API may not point at the proxy itself, loopback, link-local, unspecified or multicast addresses (403) unless allowed_target_networks allows them; a host name that does not resolve is answered 422. " +
	"Cross-origin browser requests are refused."

// errorResponse returns the name of the error response of status in
// components/responses, and its description.
func errorResponse(status int) (name, desc string) {
	switch status {
	case http.StatusBadRequest:
		return "BadRequest", "Malformed body, unknown or repeated field, invalid value or If-Match."
	case http.StatusUnauthorized:
		return "Unauthorized", "No or a wrong credential."
	case http.StatusForbidden:
		return "Forbidden", "The credential lacks the scope, a target points at the proxy or its host, a cross-origin browser request, or the config editor is off."
	case http.StatusNotFound:
		return "NotFound", "No such upstream, target, route or agent."
	case http.StatusConflict:
		return "Conflict", "Already exists, defined in the configuration, or a reload is running."
	case http.StatusPreconditionFailed:
		return "PreconditionFailed", "If-Match does not match the upstream's version (or the config file's SHA-256)."
	case http.StatusPreconditionRequired:
		return "PreconditionRequired", "If-Match is missing (PUT /api/v1/config/source needs the file's ETag)."
	case http.StatusRequestEntityTooLarge:
		return "PayloadTooLarge", "The body is larger than max_body_bytes."
	case http.StatusUnsupportedMediaType:
		return "UnsupportedMediaType", "The body is not application/json."
	case http.StatusUnprocessableEntity:
		return "Unprocessable", "A target's host name does not resolve, or the config file is invalid (errors lists its problems); nothing changed."
	case http.StatusNotImplemented:
		return "NotImplemented", "The app provides no such hook."
	}
	return "", ""
}

// openAPIDocument generates the document of the endpoints.
func openAPIDocument(eps []endpoint) ([]byte, error) {
	g := &schemaGen{schemas: jsonObject{}, names: map[reflect.Type]string{}, docs: goDocs()}
	paths := jsonObject{}
	for i := range eps {
		ep := &eps[i]
		item, _ := paths[ep.pattern].(jsonObject)
		if item == nil {
			item = jsonObject{}
			if params := pathParams(ep.pattern); len(params) > 0 {
				item["parameters"] = params
			}
			paths[ep.pattern] = item
		}
		op, err := g.operation(ep)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", ep.method, ep.pattern, err)
		}
		item[strings.ToLower(ep.method)] = op
	}
	errSchema, err := g.ref(reflect.TypeFor[errorBody](), false)
	if err != nil {
		return nil, err
	}
	responses := jsonObject{}
	for _, status := range []int{400, 401, 403, 404, 409, 412, 413, 415, 422, 428, 501} {
		name, desc := errorResponse(status)
		responses[name] = jsonObject{"description": desc, "content": jsonContent(errSchema)}
	}
	responses["Unauthorized"].(jsonObject)["headers"] = jsonObject{"WWW-Authenticate": jsonObject{"schema": jsonObject{"type": "string"}}}
	responses["PreconditionFailed"].(jsonObject)["headers"] = jsonObject{"ETag": jsonObject{"$ref": "#/components/headers/ETag"}}

	doc := struct {
		OpenAPI    string       `json:"openapi"`
		Info       jsonObject   `json:"info"`
		Servers    []jsonObject `json:"servers"`
		Security   []jsonObject `json:"security"`
		Tags       []jsonObject `json:"tags"`
		Paths      jsonObject   `json:"paths"`
		Components jsonObject   `json:"components"`
	}{
		OpenAPI:  "3.0.3",
		Info:     jsonObject{"title": "Sentinel control-plane API", "version": "1.0.0", "description": apiDescription},
		Servers:  []jsonObject{{"url": "/"}},
		Security: []jsonObject{{"bearerAuth": []string{}}},
		Tags: []jsonObject{
			{"name": "upstreams", "description": "Upstreams and their targets."},
			{"name": "routes", "description": "Route switches."},
			{"name": "agents", "description": "External agents."},
			{"name": "config", "description": "The configuration file."},
			{"name": "meta", "description": "The API's state store and this document."},
		},
		Paths: paths,
		Components: jsonObject{
			"securitySchemes": jsonObject{"bearerAuth": jsonObject{"type": "http", "scheme": "bearer", "description": "A token of the API's configuration. Client certificates (mutual TLS) also authenticate when configured; OpenAPI 3.0 cannot describe them."}},
			"headers": jsonObject{
				"ETag":     jsonObject{"description": "The upstream's version, quoted: \"<version>\" (for the config source, its SHA-256: \"<sha256>\").", "schema": jsonObject{"type": "string", "example": `"12"`}},
				"Location": jsonObject{"description": "The upstream's URL path.", "schema": jsonObject{"type": "string"}},
			},
			"parameters": jsonObject{
				"IfMatch": jsonObject{"name": "If-Match", "in": "header", "required": false, "description": "* or the ETag(s) of the upstream's expected version; a mismatch is answered 412 and nothing changes.", "schema": jsonObject{"type": "string"}},
			},
			"schemas":   g.schemas,
			"responses": responses,
		},
	}
	return json.MarshalIndent(doc, "", "  ")
}

// operation returns the operation object of ep.
func (g *schemaGen) operation(ep *endpoint) (jsonObject, error) {
	desc := "Scope: " + ep.scope.String() + "."
	if ep.doc != "" {
		desc += " " + ep.doc
	}
	op := jsonObject{
		"tags":             []string{pathTag(ep.pattern)},
		"operationId":      ep.op,
		"summary":          ep.summary,
		"description":      desc,
		"x-sentinel-scope": ep.scope.String(),
	}
	if ep.namespaced {
		op["x-sentinel-namespace-tokens"] = true
		op["description"] = desc + " Namespace-scoped tokens: only on their namespace's ids."
	}
	if ep.ifMatch {
		op["parameters"] = []jsonObject{{"$ref": "#/components/parameters/IfMatch"}}
	}
	errs := []int{http.StatusUnauthorized, http.StatusForbidden}
	if ep.in != nil {
		s, err := g.schema(ep.in, "", true)
		if err != nil {
			return nil, err
		}
		op["requestBody"] = jsonObject{"required": !ep.optional, "content": jsonContent(s)}
		errs = append(errs, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType)
	}
	if len(pathParams(ep.pattern)) > 0 {
		errs = append(errs, http.StatusNotFound)
	}
	if ep.ifMatch {
		errs = append(errs, http.StatusBadRequest, http.StatusPreconditionFailed)
	}
	errs = append(errs, ep.errors...)

	success := jsonObject{"description": ep.result}
	var content jsonObject
	if ep.out != nil {
		s, err := g.schema(ep.out, "", false)
		if err != nil {
			return nil, err
		}
		content = jsonContent(s)
		success["content"] = content
	}
	if len(ep.headers) > 0 {
		h := jsonObject{}
		for _, name := range ep.headers {
			h[name] = jsonObject{"$ref": "#/components/headers/" + name}
		}
		success["headers"] = h
	}
	responses := jsonObject{strconv.Itoa(ep.status): success}
	for status, desc := range ep.also {
		responses[strconv.Itoa(status)] = jsonObject{"description": desc, "content": content}
	}
	for _, status := range errs {
		name, _ := errorResponse(status)
		if name == "" {
			return nil, fmt.Errorf("no error response %d", status)
		}
		responses[strconv.Itoa(status)] = jsonObject{"$ref": "#/components/responses/" + name}
	}
	op["responses"] = responses
	return op, nil
}

// jsonContent is the content of a JSON body of schema s.
func jsonContent(s jsonObject) jsonObject {
	return jsonObject{"application/json": jsonObject{"schema": s}}
}

// pathTag returns the tag of the endpoints at pattern: the first segment
// after /api/v1/, or meta.
func pathTag(pattern string) string {
	seg, _, _ := strings.Cut(strings.TrimPrefix(pattern, "/api/v1/"), "/")
	switch seg {
	case "upstreams", "routes", "agents", "config":
		return seg
	}
	return "meta"
}

// pathParams returns the parameter objects of the {name} segments of
// pattern.
func pathParams(pattern string) []jsonObject {
	var out []jsonObject
	for _, seg := range strings.Split(pattern, "/") {
		name, ok := strings.CutPrefix(seg, "{")
		if !ok {
			continue
		}
		name = strings.TrimSuffix(name, "}")
		out = append(out, jsonObject{"name": name, "in": "path", "required": true, "description": paramDoc(pattern, name), "schema": jsonObject{"type": "string"}})
	}
	return out
}

// paramDoc describes the path parameter name of pattern.
func paramDoc(pattern, name string) string {
	if name == "address" {
		return "The target address, host:port, URL-escaped (e.g. 10.0.0.1%3A8080, %5B%3A%3A1%5D%3A8080)."
	}
	return "The " + strings.TrimSuffix(pathTag(pattern), "s") + " id (URL-escaped)."
}

// schemaGen generates the schemas of Go types.
type schemaGen struct {
	// schemas are the named schemas (components/schemas), of struct
	// types.
	schemas jsonObject
	// names are the names of the types in schemas.
	names map[reflect.Type]string
	// docs are the doc comments of the types and their fields.
	docs map[string]string
}

// schema returns the schema of t, the type of a field with tag (of a
// request body when request is set: its objects refuse unknown members).
func (g *schemaGen) schema(t reflect.Type, tag reflect.StructTag, request bool) (jsonObject, error) {
	if t == reflect.TypeFor[time.Time]() {
		return jsonObject{"type": "string", "format": "date-time"}, nil
	}
	s := jsonObject{}
	switch t.Kind() {
	case reflect.Pointer:
		return g.schema(t.Elem(), tag, request)
	case reflect.String:
		s["type"] = "string"
		if e := tag.Get("enum"); e != "" {
			s["enum"] = strings.Split(e, ",")
		} else if e := enumValues(t); e != nil {
			s["enum"] = e
		}
		for _, k := range []string{"pattern", "example"} {
			if v := tag.Get(k); v != "" {
				s[k] = v
			}
		}
		if v := tag.Get("maxLength"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("%v: tag maxLength:%q: %w", t, v, err)
			}
			s["maxLength"] = n
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		s["type"] = "integer"
		for k, name := range map[string]string{"min": "minimum", "max": "maximum", "default": "default"} {
			if v := tag.Get(k); v != "" {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("%v: tag %s:%q: %w", t, k, v, err)
				}
				s[name] = n
			}
		}
	case reflect.Float32, reflect.Float64:
		s["type"] = "number"
	case reflect.Bool:
		s["type"] = "boolean"
	case reflect.Slice:
		items, err := g.schema(t.Elem(), "", request)
		if err != nil {
			return nil, err
		}
		s["type"], s["items"] = "array", items
		if v := tag.Get("max"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("%v: tag max:%q: %w", t, v, err)
			}
			s["maxItems"] = n
		}
	case reflect.Map:
		s["type"], s["additionalProperties"] = "object", true
	case reflect.Struct:
		return g.ref(t, request)
	default:
		return nil, fmt.Errorf("%v: no schema for %v", t, t.Kind())
	}
	if t.Implements(reflect.TypeFor[schemaAmender]()) {
		reflect.Zero(t).Interface().(schemaAmender).amendSchema(s)
	}
	return s, nil
}

// ref returns a reference to the named schema of struct type t, made the
// first time.
func (g *schemaGen) ref(t reflect.Type, request bool) (jsonObject, error) {
	if name, ok := g.names[t]; ok {
		return jsonObject{"$ref": "#/components/schemas/" + name}, nil
	}
	name := schemaName(t)
	if _, taken := g.schemas[name]; taken {
		return nil, fmt.Errorf("two types have the schema name %s: %v and another", name, t)
	}
	g.names[t] = name
	s := jsonObject{"type": "object"}
	g.schemas[name] = s
	if d := g.docs[t.String()]; d != "" {
		s["description"] = docText(d, t.Name(), name)
	}
	props := jsonObject{}
	var required []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		p, err := g.schema(f.Type, f.Tag, request)
		if err != nil {
			return nil, err
		}
		d := f.Tag.Get("doc")
		if d == "" {
			d = docText(g.docs[t.String()+"."+f.Name], f.Name, name)
		}
		if _, isRef := p["$ref"]; d != "" && !isRef {
			p["description"] = d
		}
		props[name] = p
		omitted := slices.Contains(strings.Split(opts, ","), "omitempty") || slices.Contains(strings.Split(opts, ","), "omitzero")
		if request && f.Tag.Get("api") == "required" || !request && !omitted {
			required = append(required, name)
		}
	}
	s["properties"] = props
	if len(required) > 0 {
		s["required"] = required
	}
	if request {
		s["additionalProperties"] = false
	}
	if t.Implements(reflect.TypeFor[schemaAmender]()) {
		reflect.Zero(t).Interface().(schemaAmender).amendSchema(s)
	}
	return jsonObject{"$ref": "#/components/schemas/" + name}, nil
}

// schemaName is the name of the schema of t: its Go name, capitalized.
func schemaName(t reflect.Type) string {
	n := []rune(t.Name())
	n[0] = unicode.ToUpper(n[0])
	return string(n)
}

// enumValues returns the values of the registry's enumerated types.
func enumValues(t reflect.Type) []string {
	switch t {
	case reflect.TypeFor[registry.State]():
		return []string{string(registry.StateActive), string(registry.StateDraining), string(registry.StateDrained)}
	case reflect.TypeFor[registry.Origin]():
		return []string{string(registry.OriginConfig), string(registry.OriginAPI)}
	}
	return nil
}

// docText turns the doc comment of the Go name goName into the
// description of name: "Weight is the share…" becomes "The share…",
// "TimeoutSecs removes…" becomes "timeout_secs removes…".
func docText(doc, goName, name string) string {
	doc = strings.Join(strings.Fields(doc), " ")
	for _, verb := range []string{" is ", " are "} {
		if rest, ok := strings.CutPrefix(doc, goName+verb); ok {
			first, _, _ := strings.Cut(rest, " ")
			switch first {
			case "the", "a", "an", "its", "their", "how", "what", "when", "where", "whether", "why", "true", "false":
				rest = strings.ToUpper(rest[:1]) + rest[1:]
			}
			return rest
		}
	}
	if rest, ok := strings.CutPrefix(doc, goName+" "); ok {
		return name + " " + rest
	}
	return doc
}

// openAPI serves GET /api/v1/openapi.json.
func (s *Server) openAPI(*call) (rawJSON, error) {
	return s.openapi, nil
}
