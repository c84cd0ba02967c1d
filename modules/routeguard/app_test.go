package routeguard_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"

	_ "github.com/sentinel-proxy/sentinel/modules/routeguard"
	_ "github.com/sentinel-proxy/sentinel/modules/sentinelapp"
)

// appConfig is a config whose route "a" has a guard taking its handlers
// from the sentinel_routes app (as the KDL adapter writes it), guard
// being the route's handler and routes the app's routes.
func appConfig(guard, routes string) []byte {
	return fmt.Appendf(nil, `{"apps":{"sentinel":{"routes":["a"]},%s"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[%s]}]}}}}}`, routes, guard)
}

// TestGuardHandlersFromApp: a guard with handle_in_app loads its route's
// handlers from the sentinel_routes app (provisioned and validated: a
// bad handler there fails the config); a route the app lacks, a guard
// with both handle and handle_in_app, and a config without the app fail
// with an error naming the route.
func TestGuardHandlersFromApp(t *testing.T) {
	const guard = `{"handler":"sentinel_route","route":"a","handle_in_app":true}`
	const app = `"sentinel_routes":{"routes":{"a":[{"handler":"headers","response":{"set":{"X-A":["1"]}}},{"handler":"static_response","status_code":204}]}},`
	validate := func(cfg []byte) error {
		var c caddy.Config
		if err := json.Unmarshal(cfg, &c); err != nil {
			t.Fatal(err)
		}
		return caddy.Validate(&c)
	}
	if err := validate(appConfig(guard, app)); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, c := range map[string]struct{ guard, app, want string }{
		"bad handler in the app": {guard, `"sentinel_routes":{"routes":{"a":[{"handler":"static_response","bogus":1}]}},`,
			`sentinel_route "a": loading the route's handlers: position 0: loading module 'static_response'`},
		"route not in the app": {guard, `"sentinel_routes":{"routes":{"b":[]}},`,
			`sentinel_route "a": the sentinel_routes app has no handlers for route "a"`},
		"no app": {guard, ``, `sentinel_route "a": the sentinel_routes app has no handlers for route "a"`},
		"handle and handle_in_app": {`{"handler":"sentinel_route","route":"a","handle_in_app":true,"handle":[{"handler":"static_response"}]}`, app,
			`sentinel_route "a": handle and handle_in_app exclude each other`},
	} {
		err := validate(appConfig(c.guard, c.app))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}
