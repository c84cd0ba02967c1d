package controlapi

import (
	"net/http"
	"slices"

	"github.com/sentinel-proxy/sentinel/registry"
)

// listRoutes serves GET /api/v1/routes.
func (s *Server) listRoutes(c *call) ([]registry.Route, error) {
	all := s.reg.Routes()
	if c.who.namespace == "" {
		return all, nil
	}
	return slices.DeleteFunc(all, func(r registry.Route) bool { return !c.who.sees(r.ID) }), nil
}

// findRoute returns the route id of the registry.
func (s *Server) findRoute(id string) (registry.Route, bool) {
	for _, rt := range s.reg.Routes() {
		if rt.ID == id {
			return rt, true
		}
	}
	return registry.Route{}, false
}

// setRouteEnabled serves PUT /api/v1/routes/{id}/enabled: the route is
// switched on or off at once. Routes have no version: If-Match is
// refused, except *.
func (s *Server) setRouteEnabled(c *call, in *routeEnabled) (registry.Route, error) {
	id := c.r.PathValue("id")
	pre, err := parseIfMatch(c.r.Header)
	if err != nil {
		return registry.Route{}, err
	}
	if pre.present && !pre.any {
		return registry.Route{}, fieldError("If-Match", "routes have no version: send If-Match: * or none")
	}
	before, ok := s.findRoute(id)
	if !ok {
		return registry.Route{}, newError(http.StatusNotFound, "route %q not found", id)
	}
	c.before = before
	if err := s.reg.SetRouteEnabled(id, in.Enabled); err != nil {
		return registry.Route{}, err
	}
	after := registry.Route{ID: id, Enabled: s.reg.RouteFlag(id).Enabled()}
	c.after = after
	return after, nil
}
