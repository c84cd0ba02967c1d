package controlapi

import (
	"net/http"
	"strconv"
)

// openAPIDocument is the OpenAPI 3.0 description of the API, served at
// /api/v1/openapi.json. A test checks that its paths and methods are
// exactly the routes of the server.
const openAPIDocument = `{
  "openapi": "3.0.3",
  "info": {
    "title": "Sentinel control-plane API",
    "version": "1.0.0",
    "description": "Changes Sentinel's live state: the upstreams and their targets (add, remove, reweight, drain), the route switches, config reloads. Every call is authenticated: a bearer token (Authorization: Bearer <token>) with scopes read ⊂ operate ⊂ admin, or, when the API is configured with client_ca_file and allowed_identities, a verified client certificate whose subject common name or DNS name is allowed (admin scope; with a bearer token as well, the token's scopes apply). Every mutation is written to the audit log. Request bodies are JSON (Content-Type: application/json); unknown or repeated fields, trailing data and bodies over max_body_bytes are refused. Errors are {\"error\": message, \"field\": input field at fault}. Upstream responses carry ETag: \"<version>\"; mutations of an upstream honour If-Match. A change that cannot be saved to the state store is not applied and is answered 503. Targets added through the API may not point at the proxy itself, loopback, link-local, unspecified or multicast addresses (403) unless allowed_target_networks allows them. Cross-origin browser requests are refused."
  },
  "servers": [{"url": "/"}],
  "security": [{"bearerAuth": []}],
  "tags": [
    {"name": "upstreams", "description": "Upstreams and their targets."},
    {"name": "routes", "description": "Route switches."},
    {"name": "agents", "description": "External agents."},
    {"name": "config", "description": "The configuration file."},
    {"name": "meta", "description": "This document."}
  ],
  "paths": {
    "/api/v1/upstreams": {
      "get": {
        "tags": ["upstreams"],
        "operationId": "listUpstreams",
        "summary": "List the upstreams",
        "description": "Scope: read. Every upstream, sorted by id, with its targets and their live counters.",
        "x-sentinel-scope": "read",
        "responses": {
          "200": {"description": "The upstreams.", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Upstream"}}}}},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"}
        }
      },
      "post": {
        "tags": ["upstreams"],
        "operationId": "createUpstream",
        "summary": "Create an upstream",
        "description": "Scope: admin. Creates an upstream of origin api. Its id is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit.",
        "x-sentinel-scope": "admin",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreateUpstream"}}}},
        "responses": {
          "201": {"description": "Created.", "headers": {"Location": {"description": "The upstream's URL path.", "schema": {"type": "string"}}, "ETag": {"$ref": "#/components/headers/ETag"}}, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Upstream"}}}},
          "400": {"$ref": "#/components/responses/BadRequest"},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"},
          "409": {"$ref": "#/components/responses/Conflict"},
          "412": {"$ref": "#/components/responses/PreconditionFailed"},
          "413": {"$ref": "#/components/responses/PayloadTooLarge"},
          "415": {"$ref": "#/components/responses/UnsupportedMediaType"}
        }
      }
    },
    "/api/v1/upstreams/{id}": {
      "parameters": [{"$ref": "#/components/parameters/UpstreamID"}],
      "get": {
        "tags": ["upstreams"],
        "operationId": "getUpstream",
        "summary": "Get an upstream",
        "description": "Scope: read.",
        "x-sentinel-scope": "read",
        "responses": {
          "200": {"description": "The upstream.", "headers": {"ETag": {"$ref": "#/components/headers/ETag"}}, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Upstream"}}}},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"},
          "404": {"$ref": "#/components/responses/NotFound"}
        }
      },
      "delete": {
        "tags": ["upstreams"],
        "operationId": "deleteUpstream",
        "summary": "Delete an upstream created through the API",
        "description": "Scope: admin. Upstreams defined in the configuration are refused with 409: remove them from the config file and reload.",
        "x-sentinel-scope": "admin",
        "parameters": [{"$ref": "#/components/parameters/IfMatch"}],
        "responses": {
          "204": {"description": "Deleted."},
          "400": {"$ref": "#/components/responses/BadRequest"},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"},
          "404": {"$ref": "#/components/responses/NotFound"},
          "409": {"$ref": "#/components/responses/Conflict"},
          "412": {"$ref": "#/components/responses/PreconditionFailed"}
        }
      }
    },
    "/api/v1/upstreams/{id}/targets": {
      "parameters": [{"$ref": "#/components/parameters/UpstreamID"}],
      "put": {
        "tags": ["upstreams"],
        "operationId": "replaceTargets",
        "summary": "Replace the targets of an upstream",
        "description": "Scope: admin. Targets that stay keep their state (a draining target stays draining, with its deadline); new targets are active.",
        "x-sentinel-scope": "admin",
        "parameters": [{"$ref": "#/components/parameters/IfMatch"}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TargetList"}}}},
        "responses": {
          "200": {"$ref": "#/components/responses/Upstream"},
          "400": {"$ref": "#/components/responses/BadRequest"},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"},
          "404": {"$ref": "#/components/responses/NotFound"},
          "412": {"$ref": "#/components/responses/PreconditionFailed"},
          "413": {"$ref": "#/components/responses/PayloadTooLarge"},
          "415": {"$ref": "#/components/responses/UnsupportedMediaType"}
        }
      },
      "post": {
        "tags": ["upstreams"],
        "operationId": "addTarget",
        "summary": "Add one target (extension)",
        "description": "Scope: admin. Adds one active target; 409 when the upstream already has it. An extension of the original Sentinel API, which only replaces the whole list.",
        "x-sentinel-scope": "admin",
        "parameters": [{"$ref": "#/components/parameters/IfMatch"}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TargetInput"}}}},
        "responses": {
          "201": {"$ref": "#/components/responses/Upstream"},
          "400": {"$ref": "#/components/responses/BadRequest"},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"},
          "404": {"$ref": "#/components/responses/NotFound"},
          "409": {"$ref": "#/components/responses/Conflict"},
          "412": {"$ref": "#/components/responses/PreconditionFailed"},
          "413": {"$ref": "#/components/responses/PayloadTooLarge"},
          "415": {"$ref": "#/components/responses/UnsupportedMediaType"}
        }
      }
    },
    "/api/v1/upstreams/{id}/targets/{address}": {
      "parameters": [{"$ref": "#/components/parameters/UpstreamID"}, {"$ref": "#/components/parameters/Address"}],
      "patch": {
        "tags": ["upstreams"],
        "operationId": "patchTarget",
        "summary": "Change the weight and/or state of a target",
        "description": "Scope: operate. State active clears a drain deadline; state draining sets none (use the drain endpoint for a timeout).",
        "x-sentinel-scope": "operate",
        "parameters": [{"$ref": "#/components/parameters/IfMatch"}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TargetPatch"}}}},
        "responses": {
          "200": {"$ref": "#/components/responses/Upstream"},
          "400": {"$ref": "#/components/responses/BadRequest"},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"},
          "404": {"$ref": "#/components/responses/NotFound"},
          "412": {"$ref": "#/components/responses/PreconditionFailed"},
          "413": {"$ref": "#/components/responses/PayloadTooLarge"},
          "415": {"$ref": "#/components/responses/UnsupportedMediaType"}
        }
      },
      "delete": {
        "tags": ["upstreams"],
        "operationId": "removeTarget",
        "summary": "Remove a target",
        "description": "Scope: admin. Removes the target at once, drained or not: after a drain, removal is this one call.",
        "x-sentinel-scope": "admin",
        "parameters": [{"$ref": "#/components/parameters/IfMatch"}],
        "responses": {
          "200": {"$ref": "#/components/responses/Upstream"},
          "400": {"$ref": "#/components/responses/BadRequest"},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"},
          "404": {"$ref": "#/components/responses/NotFound"},
          "412": {"$ref": "#/components/responses/PreconditionFailed"}
        }
      }
    },
    "/api/v1/upstreams/{id}/drain": {
      "parameters": [{"$ref": "#/components/parameters/UpstreamID"}],
      "post": {
        "tags": ["upstreams"],
        "operationId": "drainUpstream",
        "summary": "Drain all the targets of an upstream",
        "description": "Scope: operate. The targets get no new request; the ones in flight finish (state draining, then drained when none is in flight). With timeout_secs (admin scope only, since it removes targets), they are removed when it expires. The body is optional.",
        "x-sentinel-scope": "operate",
        "parameters": [{"$ref": "#/components/parameters/IfMatch"}],
        "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Drain"}}}},
        "responses": {
          "200": {"$ref": "#/components/responses/Upstream"},
          "400": {"$ref": "#/components/responses/BadRequest"},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"},
          "404": {"$ref": "#/components/responses/NotFound"},
          "412": {"$ref": "#/components/responses/PreconditionFailed"},
          "413": {"$ref": "#/components/responses/PayloadTooLarge"},
          "415": {"$ref": "#/components/responses/UnsupportedMediaType"}
        }
      }
    },
    "/api/v1/upstreams/{id}/targets/{address}/drain": {
      "parameters": [{"$ref": "#/components/parameters/UpstreamID"}, {"$ref": "#/components/parameters/Address"}],
      "post": {
        "tags": ["upstreams"],
        "operationId": "drainTarget",
        "summary": "Drain one target",
        "description": "Scope: operate. As the upstream drain, for one target.",
        "x-sentinel-scope": "operate",
        "parameters": [{"$ref": "#/components/parameters/IfMatch"}],
        "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Drain"}}}},
        "responses": {
          "200": {"$ref": "#/components/responses/Upstream"},
          "400": {"$ref": "#/components/responses/BadRequest"},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"},
          "404": {"$ref": "#/components/responses/NotFound"},
          "412": {"$ref": "#/components/responses/PreconditionFailed"},
          "413": {"$ref": "#/components/responses/PayloadTooLarge"},
          "415": {"$ref": "#/components/responses/UnsupportedMediaType"}
        }
      }
    },
    "/api/v1/routes": {
      "get": {
        "tags": ["routes"],
        "operationId": "listRoutes",
        "summary": "List the routes and their switches",
        "description": "Scope: read.",
        "x-sentinel-scope": "read",
        "responses": {
          "200": {"description": "The routes, sorted by id.", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Route"}}}}},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"}
        }
      }
    },
    "/api/v1/routes/{id}/enabled": {
      "parameters": [{"name": "id", "in": "path", "required": true, "description": "The route id.", "schema": {"type": "string"}}],
      "put": {
        "tags": ["routes"],
        "operationId": "setRouteEnabled",
        "summary": "Switch a route on or off",
        "description": "Scope: operate. Takes effect on the next request. Routes have no version: If-Match other than * is refused.",
        "x-sentinel-scope": "operate",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RouteEnabled"}}}},
        "responses": {
          "200": {"description": "The route.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Route"}}}},
          "400": {"$ref": "#/components/responses/BadRequest"},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"},
          "404": {"$ref": "#/components/responses/NotFound"},
          "413": {"$ref": "#/components/responses/PayloadTooLarge"},
          "415": {"$ref": "#/components/responses/UnsupportedMediaType"}
        }
      }
    },
    "/api/v1/agents": {
      "get": {
        "tags": ["agents"],
        "operationId": "listAgents",
        "summary": "List the agents",
        "description": "Scope: read. Empty until agents exist.",
        "x-sentinel-scope": "read",
        "responses": {
          "200": {"description": "The agents.", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Agent"}}}}},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"}
        }
      }
    },
    "/api/v1/agents/{id}/status": {
      "parameters": [{"name": "id", "in": "path", "required": true, "description": "The agent id.", "schema": {"type": "string"}}],
      "get": {
        "tags": ["agents"],
        "operationId": "agentStatus",
        "summary": "Get the status of an agent",
        "description": "Scope: read. 404 until agents exist.",
        "x-sentinel-scope": "read",
        "responses": {
          "200": {"description": "The agent.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Agent"}}}},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"},
          "404": {"$ref": "#/components/responses/NotFound"}
        }
      }
    },
    "/api/v1/config/reload": {
      "post": {
        "tags": ["config"],
        "operationId": "reloadConfig",
        "summary": "Reload the config file",
        "description": "Scope: admin. Re-reads the config file and applies it; the registry keeps the changes made through this API. One reload runs at a time.",
        "x-sentinel-scope": "admin",
        "responses": {
          "200": {"description": "Reloaded.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReloadResult"}}}},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"},
          "409": {"$ref": "#/components/responses/Conflict"},
          "422": {"description": "The config file is invalid; nothing changed.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReloadError"}}}},
          "501": {"$ref": "#/components/responses/NotImplemented"}
        }
      }
    },
    "/api/v1/config/validate": {
      "get": {
        "tags": ["config"],
        "operationId": "validateConfig",
        "summary": "Validate the config file without applying it",
        "description": "Scope: admin.",
        "x-sentinel-scope": "admin",
        "responses": {
          "200": {"description": "Valid.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Validation"}}}},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"},
          "422": {"description": "Invalid.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Validation"}}}},
          "501": {"$ref": "#/components/responses/NotImplemented"}
        }
      }
    },
    "/api/v1/state": {
      "get": {
        "tags": ["meta"],
        "operationId": "stateStatus",
        "summary": "Where the API-made state is kept, and its health",
        "description": "Scope: read. The store of the changes made through the API (a state file), whether its saved state could be used at start (an unusable one is moved aside and the proxy starts from the configuration), and why the last change could not be saved, if it could not.",
        "x-sentinel-scope": "read",
        "responses": {
          "200": {"description": "The store's status.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StoreStatus"}}}},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"}
        }
      }
    },
    "/api/v1/openapi.json": {
      "get": {
        "tags": ["meta"],
        "operationId": "openAPI",
        "summary": "This OpenAPI document",
        "description": "Scope: read.",
        "x-sentinel-scope": "read",
        "responses": {
          "200": {"description": "The OpenAPI 3.0 document of the API.", "content": {"application/json": {"schema": {"type": "object"}}}},
          "401": {"$ref": "#/components/responses/Unauthorized"},
          "403": {"$ref": "#/components/responses/Forbidden"}
        }
      }
    }
  },
  "components": {
    "securitySchemes": {
      "bearerAuth": {"type": "http", "scheme": "bearer", "description": "A token of the API's configuration. Client certificates (mutual TLS) also authenticate when configured; OpenAPI 3.0 cannot describe them."}
    },
    "headers": {
      "ETag": {"description": "The upstream's version, quoted: \"<version>\".", "schema": {"type": "string", "example": "\"12\""}}
    },
    "parameters": {
      "UpstreamID": {"name": "id", "in": "path", "required": true, "description": "The upstream id (URL-escaped).", "schema": {"type": "string"}},
      "Address": {"name": "address", "in": "path", "required": true, "description": "The target address, host:port, URL-escaped (e.g. 10.0.0.1%3A8080, %5B%3A%3A1%5D%3A8080).", "schema": {"type": "string"}},
      "IfMatch": {"name": "If-Match", "in": "header", "required": false, "description": "* or the ETag(s) of the upstream's expected version; a mismatch is answered 412 and nothing changes.", "schema": {"type": "string"}}
    },
    "schemas": {
      "StoreStatus": {
        "type": "object",
        "properties": {
          "store": {"type": "string", "description": "The store, e.g. \"file /var/lib/sentinel/state.json\"; absent when API changes live in memory only."},
          "loaded": {"type": "string", "format": "date-time", "description": "When the saved state was read at start."},
          "load_error": {"type": "string", "description": "Why the saved state could not be used at start."},
          "moved_to": {"type": "string", "description": "Where the unusable saved state was moved."},
          "save_error": {"type": "string", "description": "Why the last change could not be saved (it was not applied)."}
        }
      },
      "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
          "error": {"type": "string", "description": "What went wrong."},
          "field": {"type": "string", "description": "The input field at fault, e.g. targets[1].address."}
        }
      },
      "Target": {
        "type": "object",
        "required": ["address", "weight", "state", "origin", "healthy", "in_flight", "requests", "failures"],
        "properties": {
          "address": {"type": "string", "description": "host:port."},
          "weight": {"type": "integer", "minimum": 0, "maximum": 1048576},
          "state": {"type": "string", "enum": ["active", "draining", "drained"], "description": "drained is a draining target with no request in flight."},
          "origin": {"type": "string", "enum": ["config", "api"]},
          "healthy": {"type": "boolean", "description": "As the active health checks last saw it (true when never checked)."},
          "in_flight": {"type": "integer", "description": "Requests being served."},
          "requests": {"type": "integer", "description": "Requests sent."},
          "failures": {"type": "integer", "description": "Requests failed (error or 5xx)."},
          "drain_deadline": {"type": "string", "format": "date-time", "description": "When a draining target is removed; absent when none."},
          "balancing": {"type": "array", "description": "Per live Sentinel selection policy of the upstream, what it estimates of the target; absent when none balances it.", "items": {"$ref": "#/components/schemas/Estimate"}}
        }
      },
      "Estimate": {
        "type": "object",
        "required": ["policy", "latency_seconds", "error_ratio", "weight", "selections"],
        "properties": {
          "policy": {"type": "string", "description": "Selection policy (peak_ewma, adaptive, p2c, …)."},
          "latency_seconds": {"type": "number", "description": "The policy's latency estimate (time to response headers)."},
          "error_ratio": {"type": "number", "description": "The policy's failure-ratio estimate, 0 to 1."},
          "weight": {"type": "number", "description": "Effective weight (adaptive's adjusted weight, else the registry's)."},
          "score": {"type": "number", "description": "Load (peak_ewma, p2c, weighted_least_connections: lower wins) or score (adaptive: higher wins); absent for policies that keep none."},
          "selections": {"type": "integer", "description": "Times the policy chose the target."}
        }
      },
      "Upstream": {
        "type": "object",
        "required": ["id", "origin", "version", "targets"],
        "properties": {
          "id": {"type": "string"},
          "healthy_targets": {"type": "integer", "description": "Active targets the health checks see healthy."},
          "origin": {"type": "string", "enum": ["config", "api"]},
          "version": {"type": "integer", "description": "Changes with every change; the ETag."},
          "targets": {"type": "array", "items": {"$ref": "#/components/schemas/Target"}}
        }
      },
      "TargetInput": {
        "type": "object",
        "additionalProperties": false,
        "required": ["address"],
        "properties": {
          "address": {"type": "string", "description": "host:port: an IP address (IPv6 in brackets) or a DNS name, port 1-65535.", "example": "10.0.0.1:8080"},
          "weight": {"type": "integer", "minimum": 1, "maximum": 1048576, "default": 1}
        }
      },
      "CreateUpstream": {
        "type": "object",
        "additionalProperties": false,
        "required": ["id"],
        "properties": {
          "id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"},
          "targets": {"type": "array", "maxItems": 10000, "items": {"$ref": "#/components/schemas/TargetInput"}}
        }
      },
      "TargetList": {
        "type": "object",
        "additionalProperties": false,
        "required": ["targets"],
        "properties": {
          "targets": {"type": "array", "maxItems": 10000, "items": {"$ref": "#/components/schemas/TargetInput"}}
        }
      },
      "TargetPatch": {
        "type": "object",
        "additionalProperties": false,
        "minProperties": 1,
        "properties": {
          "weight": {"type": "integer", "minimum": 1, "maximum": 1048576},
          "state": {"type": "string", "enum": ["active", "draining"]}
        }
      },
      "Drain": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
          "timeout_secs": {"type": "integer", "minimum": 0, "maximum": 604800, "description": "Remove the targets when this expires; 0 or absent: never."}
        }
      },
      "Route": {
        "type": "object",
        "required": ["id", "enabled"],
        "properties": {
          "id": {"type": "string"},
          "enabled": {"type": "boolean"}
        }
      },
      "RouteEnabled": {
        "type": "object",
        "additionalProperties": false,
        "required": ["enabled"],
        "properties": {
          "enabled": {"type": "boolean"}
        }
      },
      "Agent": {
        "type": "object",
        "required": ["id"],
        "properties": {"id": {"type": "string"}},
        "additionalProperties": true
      },
      "ReloadResult": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["reloaded"]}},
        "additionalProperties": true
      },
      "ReloadError": {
        "type": "object",
        "required": ["error", "errors"],
        "properties": {
          "error": {"type": "string"},
          "errors": {"type": "array", "items": {"type": "string"}, "description": "One problem per element, file:line:col: message where known."}
        }
      },
      "Validation": {
        "type": "object",
        "required": ["valid"],
        "properties": {
          "valid": {"type": "boolean"},
          "errors": {"type": "array", "items": {"type": "string"}, "description": "file:line:col: message."}
        }
      }
    },
    "responses": {
      "Upstream": {"description": "The upstream after the change.", "headers": {"ETag": {"$ref": "#/components/headers/ETag"}}, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Upstream"}}}},
      "BadRequest": {"description": "Malformed body, unknown or repeated field, invalid value or If-Match.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Unauthorized": {"description": "No or a wrong credential.", "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Forbidden": {"description": "The credential lacks the scope, or a cross-origin browser request.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "NotFound": {"description": "No such upstream, target, route or agent.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Conflict": {"description": "Already exists, defined in the configuration, or a reload is running.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "PreconditionFailed": {"description": "If-Match does not match the upstream's version.", "headers": {"ETag": {"$ref": "#/components/headers/ETag"}}, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "PayloadTooLarge": {"description": "The body is larger than max_body_bytes.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "UnsupportedMediaType": {"description": "The body is not application/json.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "NotImplemented": {"description": "The app provides no such hook.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    }
  }
}
`

// openAPI serves GET /api/v1/openapi.json.
func (s *Server) openAPI(c *call) error {
	c.status = http.StatusOK
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(openAPIDocument)))
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write([]byte(openAPIDocument))
	return nil
}
