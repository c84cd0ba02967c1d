package controlapi

import (
	"net/http"
	"reflect"
)

// endpoint is an endpoint of the API: its route, the scope it needs, its
// typed handler, and what the OpenAPI document says of it. The table of
// endpoints is the one description of the API: the ServeMux routes to
// it, and the OpenAPI document is generated from it.
type endpoint struct {
	method string
	// pattern is the path, with {name} for a parameter segment (a
	// ServeMux pattern without the method).
	pattern string
	scope   scope
	// subject is what a call is about in its audit entry ("upstream",
	// "route"), with the path's {id} (or the body's, see subjectID).
	subject string
	// namespaced marks the endpoints a token scoped to a namespace may
	// call (on the ids of its namespace only).
	namespaced bool

	// op is the operationId; summary and doc describe the endpoint.
	op, summary, doc string
	// status is the status of a success; result describes its body.
	status int
	result string
	// headers are the headers of a success (ETag, Location).
	headers []string
	// ifMatch is set for the endpoints that honour If-Match.
	ifMatch bool
	// errors are the error statuses besides those every endpoint of its
	// kind has (401 and 403; 400, 413 and 415 with a body; 404 with a
	// path parameter; 400 and 412 with If-Match).
	errors []int
	// also are the other statuses answered with the success's type, and
	// what they mean.
	also map[int]string

	handler
}

// handler is an endpoint's typed handler: the types of its request and
// response bodies, and how it is run.
type handler struct {
	// in is the type of the request body; nil: the endpoint reads none.
	in reflect.Type
	// optional is set when the body may be absent (the zero value).
	optional bool
	// out is the type of the response body; nil: none (204).
	out reflect.Type
	run func(s *Server, c *call) error
}

// noContent is the response of an endpoint that answers no body.
type noContent struct{}

// subjecter is a request body that names the call's subject in the audit
// entry (the id of a new upstream), even when it did not fully decode.
type subjecter interface {
	subjectID() string
}

// withBody binds f, which takes a JSON body of type In (its codec built
// here, once) and answers an Out.
func withBody[In, Out any](f func(c *call, in *In) (Out, error)) handler {
	return bodyHandler(f, false)
}

// withOptionalBody is withBody for an optional body: none, or only white
// space, is the zero In.
func withOptionalBody[In, Out any](f func(c *call, in *In) (Out, error)) handler {
	return bodyHandler(f, true)
}

// bodyHandler binds f to its body's codec.
func bodyHandler[In, Out any](f func(c *call, in *In) (Out, error), optional bool) handler {
	dec := newCodec(reflect.TypeFor[In]())
	return handler{in: dec.typ, optional: optional, out: outType[Out](), run: func(s *Server, c *call) error {
		in := new(In)
		err := s.decodeBody(c, dec, optional, in)
		if sub, ok := any(in).(subjecter); ok {
			c.id = sub.subjectID()
		}
		if err != nil {
			return err
		}
		out, err := f(c, in)
		if err != nil {
			return err
		}
		c.answer(out)
		return nil
	}}
}

// noBody binds f, which takes no body and answers an Out.
func noBody[Out any](f func(c *call) (Out, error)) handler {
	return handler{out: outType[Out](), run: func(_ *Server, c *call) error {
		out, err := f(c)
		if err != nil {
			return err
		}
		c.answer(out)
		return nil
	}}
}

// outType returns the response type of Out; nil for noContent.
func outType[Out any]() reflect.Type {
	t := reflect.TypeFor[Out]()
	if t == reflect.TypeFor[noContent]() {
		return nil
	}
	return t
}

// answer writes the response of a success: the endpoint's status, or
// the one the handler set.
func (c *call) answer(out any) {
	status := c.ep.status
	if c.code != 0 {
		status = c.code
	}
	if _, ok := out.(noContent); ok {
		out = nil
	}
	c.reply(status, out)
}

// decodeBody reads the request body and decodes it strictly into in.
func (s *Server) decodeBody(c *call, dec *codec, optional bool, in any) error {
	data, err := readBody(c.w, c.r, s.maxBody)
	if err != nil {
		return err
	}
	return dec.decodeBody(data, optional, in)
}

// endpointTable returns the endpoints of the API.
func (s *Server) endpointTable() []endpoint {
	return []endpoint{
		{
			method: http.MethodGet, pattern: "/api/v1/upstreams", scope: scopeRead,
			op: "listUpstreams", namespaced: true, summary: "List the upstreams",
			doc:    "Every upstream, sorted by id, with its targets and their live counters.",
			status: http.StatusOK, result: "The upstreams.",
			handler: noBody(s.listUpstreams),
		},
		{
			method: http.MethodPost, pattern: "/api/v1/upstreams", scope: scopeAdmin, subject: "upstream",
			op: "createUpstream", namespaced: true, summary: "Create an upstream",
			doc: "Creates an upstream of origin api. Its id is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit, " +
				"optionally qualified by a namespace (and a service): `team-a:api`. A token scoped to a namespace creates upstreams in it only: " +
				"an unqualified id is qualified with its namespace, another namespace's id or a global one is refused with 403.",
			status: http.StatusCreated, result: "Created.", headers: []string{"Location", "ETag"},
			errors:  []int{http.StatusConflict, http.StatusPreconditionFailed, http.StatusUnprocessableEntity},
			handler: withBody(s.createUpstream),
		},
		{
			method: http.MethodGet, pattern: "/api/v1/upstreams/{id}", scope: scopeRead,
			op: "getUpstream", namespaced: true, summary: "Get an upstream",
			status: http.StatusOK, result: "The upstream.", headers: []string{"ETag"},
			handler: noBody(s.getUpstream),
		},
		{
			method: http.MethodDelete, pattern: "/api/v1/upstreams/{id}", scope: scopeAdmin, subject: "upstream",
			op: "deleteUpstream", namespaced: true, summary: "Delete an upstream created through the API",
			doc:    "Upstreams defined in the configuration are refused with 409: remove them from the config file and reload.",
			status: http.StatusNoContent, result: "Deleted.", ifMatch: true,
			errors:  []int{http.StatusConflict},
			handler: noBody(s.deleteUpstream),
		},
		{
			method: http.MethodPut, pattern: "/api/v1/upstreams/{id}/targets", scope: scopeAdmin, subject: "upstream",
			op: "replaceTargets", namespaced: true, summary: "Replace the targets of an upstream",
			doc:    "Targets that stay keep their state (a draining target stays draining, with its deadline); new targets are active. A list without a target the upstream's discovery found (origin discovery) is refused with 409: drain it instead.",
			status: http.StatusOK, result: "The upstream after the change.", headers: []string{"ETag"}, ifMatch: true,
			errors:  []int{http.StatusConflict, http.StatusUnprocessableEntity},
			handler: withBody(s.putTargets),
		},
		{
			method: http.MethodPost, pattern: "/api/v1/upstreams/{id}/targets", scope: scopeAdmin, subject: "upstream",
			op: "addTarget", namespaced: true, summary: "Add one target (extension)",
			doc:    "Adds one active target; 409 when the upstream already has it. An extension of the original Sentinel API, which only replaces the whole list.",
			status: http.StatusCreated, result: "The upstream after the change.", headers: []string{"ETag"}, ifMatch: true,
			errors:  []int{http.StatusConflict, http.StatusUnprocessableEntity},
			handler: withBody(s.addTarget),
		},
		{
			method: http.MethodPatch, pattern: "/api/v1/upstreams/{id}/targets/{address}", scope: scopeOperate, subject: "upstream",
			op: "patchTarget", namespaced: true, summary: "Change the weight and/or state of a target",
			doc:    "State active clears a drain deadline; state draining sets none (use the drain endpoint for a timeout).",
			status: http.StatusOK, result: "The upstream after the change.", headers: []string{"ETag"}, ifMatch: true,
			handler: withBody(s.patchTarget),
		},
		{
			method: http.MethodDelete, pattern: "/api/v1/upstreams/{id}/targets/{address}", scope: scopeAdmin, subject: "upstream",
			op: "removeTarget", namespaced: true, summary: "Remove a target",
			doc:    "Removes the target at once, drained or not: after a drain, removal is this one call. A target the upstream's discovery found (origin discovery) is refused with 409: it stays while discovery reports it; drain it instead.",
			status: http.StatusOK, result: "The upstream after the change.", headers: []string{"ETag"}, ifMatch: true,
			errors:  []int{http.StatusConflict},
			handler: noBody(s.removeTarget),
		},
		{
			method: http.MethodPost, pattern: "/api/v1/upstreams/{id}/drain", scope: scopeOperate, subject: "upstream",
			op: "drainUpstream", namespaced: true, summary: "Drain all the targets of an upstream",
			doc:    "The targets get no new request; the ones in flight finish (state draining, then drained when none is in flight). With timeout_secs (admin scope only, since it removes targets), they are removed when it expires. The body is optional.",
			status: http.StatusOK, result: "The upstream after the change.", headers: []string{"ETag"}, ifMatch: true,
			handler: withOptionalBody(s.drainUpstream),
		},
		{
			method: http.MethodPost, pattern: "/api/v1/upstreams/{id}/targets/{address}/drain", scope: scopeOperate, subject: "upstream",
			op: "drainTarget", namespaced: true, summary: "Drain one target",
			doc:    "As the upstream drain, for one target. The body is optional.",
			status: http.StatusOK, result: "The upstream after the change.", headers: []string{"ETag"}, ifMatch: true,
			handler: withOptionalBody(s.drainTarget),
		},
		{
			method: http.MethodGet, pattern: "/api/v1/routes", scope: scopeRead,
			op: "listRoutes", namespaced: true, summary: "List the routes and their switches",
			status: http.StatusOK, result: "The routes, sorted by id.",
			handler: noBody(s.listRoutes),
		},
		{
			method: http.MethodPut, pattern: "/api/v1/routes/{id}/enabled", scope: scopeOperate, subject: "route",
			op: "setRouteEnabled", namespaced: true, summary: "Switch a route on or off",
			doc:    "Takes effect on the next request. Routes have no version: If-Match other than * is refused.",
			status: http.StatusOK, result: "The route.",
			handler: withBody(s.setRouteEnabled),
		},
		{
			method: http.MethodGet, pattern: "/api/v1/agents", scope: scopeRead,
			op: "listAgents", summary: "List the agents",
			doc:    "The configured and live-registered agents with their state; empty when none is configured or registered.",
			status: http.StatusOK, result: "The agents.",
			handler: noBody(s.listAgents),
		},
		{
			method: http.MethodGet, pattern: "/api/v1/agents/{id}/status", scope: scopeRead,
			op: "agentStatus", summary: "Get the status of an agent",
			status: http.StatusOK, result: "The agent.",
			handler: noBody(s.agentStatus),
		},
		{
			method: http.MethodPost, pattern: "/api/v1/config/reload", scope: scopeAdmin,
			op: "reloadConfig", summary: "Reload the config file",
			doc:    "Re-reads the config file and applies it; the registry keeps the changes made through this API. One reload runs at a time. An invalid file is answered 422 with every problem in errors, and nothing changes.",
			status: http.StatusOK, result: "Reloaded.",
			errors:  []int{http.StatusConflict, http.StatusUnprocessableEntity, http.StatusNotImplemented},
			handler: noBody(s.reload),
		},
		{
			method: http.MethodGet, pattern: "/api/v1/config/validate", scope: scopeAdmin,
			op: "validateConfig", summary: "Validate the config file without applying it",
			status: http.StatusOK, result: "Valid.", also: map[int]string{http.StatusUnprocessableEntity: "Invalid."},
			errors:  []int{http.StatusNotImplemented},
			handler: noBody(s.validate),
		},
		{
			method: http.MethodPost, pattern: "/api/v1/config/validate", scope: scopeAdmin,
			op: "validateConfigText", summary: "Validate a config text without applying it",
			doc:    "Validates the text in the body as if it were the config file (its includes read relative to the file), as the admin UI's editor does before an apply; nothing is applied or written.",
			status: http.StatusOK, result: "Valid.", also: map[int]string{http.StatusUnprocessableEntity: "Invalid."},
			errors:  []int{http.StatusNotImplemented},
			handler: withBody(s.validateText),
		},
		{
			method: http.MethodGet, pattern: "/api/v1/config/source", scope: scopeAdmin,
			op: "configSource", summary: "The config file's text",
			doc:    "The config file as it is on disk, with its SHA-256 (admin only: it may hold secrets).",
			status: http.StatusOK, result: "The config file.", headers: []string{"ETag"},
			errors:  []int{http.StatusUnprocessableEntity, http.StatusNotImplemented},
			handler: noBody(s.getConfigSource),
		},
		{
			method: http.MethodPut, pattern: "/api/v1/config/source", scope: scopeAdmin, subject: "config",
			op: "applyConfigSource", summary: "Replace the config file's text and reload it",
			doc:    "Only with the API's config_editor option (KDL `config-editor #true`), else 403. If-Match must be the ETag of GET /api/v1/config/source (the file's SHA-256): 428 without it, 412 when the file changed since. The text is validated as POST /api/v1/config/validate does (422 with its errors, nothing written), then written atomically in the file's place (same folder, fsync, rename, same mode) and reloaded; when the reload fails, the previous text is written back and the error answered 422 (the running config is unchanged). One reload runs at a time (409).",
			status: http.StatusOK, result: "Written and reloaded.", headers: []string{"ETag"},
			errors:  []int{http.StatusConflict, http.StatusPreconditionFailed, http.StatusPreconditionRequired, http.StatusUnprocessableEntity, http.StatusNotImplemented},
			handler: withBody(s.putConfigSource),
		},
		{
			method: http.MethodGet, pattern: "/api/v1/logs/access", scope: scopeOperate,
			op: "accessLog", summary: "The access log's recent lines",
			doc:    "The last lines of the access log kept in memory (at most 1000, each at most 4096 bytes), oldest first; ?after=<seq> answers only the newer ones (the admin UI's live tail polls it). Empty when the access log is off. Operate scope, not read: request paths and query strings may carry personal data or secrets a metrics scraper's token should not see. Not for namespace-scoped tokens: it holds every tenant's requests.",
			status: http.StatusOK, result: "The lines.",
			handler: noBody(s.accessLog),
		},
		{
			method: http.MethodGet, pattern: "/api/v1/logs/audit", scope: scopeAdmin,
			op: "auditLog", summary: "The audit log's recent entries",
			doc:    "As the access log, for the audit entries (one JSON object per line): the control plane's, and the events of the audit trail (agent decisions, plugin blocks, rate-limit rejections, config loads) when an audit-log is configured.",
			status: http.StatusOK, result: "The lines.",
			handler: noBody(s.auditLog),
		},
		{
			method: http.MethodGet, pattern: "/api/v1/metrics/summary", scope: scopeRead,
			op: "metricsSummary", summary: "Route, upstream and agent counters",
			doc:    "The route series (requests, 5xx, duration histogram), the upstream series (attempt duration histogram) and the agent series (decisions, call outcomes, call duration histogram) of the Prometheus metrics as JSON, cumulative: a poller gets rates and windowed latency percentiles from the differences between two calls (the admin UI's charts). Not for namespace-scoped tokens.",
			status: http.StatusOK, result: "The counters.",
			errors:  []int{http.StatusNotImplemented},
			handler: noBody(s.metricsSummary),
		},
		{
			method: http.MethodGet, pattern: "/api/v1/whoami", scope: scopeRead,
			op: "whoAmI", namespaced: true, summary: "The caller's name, scope and namespace",
			doc:    "What the caller may do: the admin UI shows only the controls its scope allows.",
			status: http.StatusOK, result: "The caller.",
			handler: noBody(s.whoAmI),
		},
		{
			method: http.MethodGet, pattern: "/api/v1/state", scope: scopeRead,
			op: "stateStatus", summary: "Where the API-made state is kept, and its health",
			doc:    "The store of the changes made through the API (a state file), whether its saved state could be used at start (an unusable one is moved aside and the proxy starts from the configuration), and why the last change could not be saved, if it could not.",
			status: http.StatusOK, result: "The store's status.",
			handler: noBody(s.stateStatus),
		},
		{
			method: http.MethodGet, pattern: "/api/v1/openapi.json", scope: scopeRead,
			op: "openAPI", namespaced: true, summary: "This OpenAPI document",
			status: http.StatusOK, result: "The OpenAPI 3.0 document of the API.",
			handler: noBody(s.openAPI),
		},
	}
}
