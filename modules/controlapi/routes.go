package controlapi

import (
	"net/http"

	"github.com/sentinel-proxy/sentinel/modules/registry"
)

// listRoutes serves GET /api/v1/routes.
func (s *Server) listRoutes(c *call) error {
	c.reply(http.StatusOK, s.reg.Routes())
	return nil
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
func (s *Server) setRouteEnabled(c *call) error {
	id := c.params["id"]
	c.kind, c.id = "route", id
	data, err := readBody(c.w, c.r, s.maxBody)
	if err != nil {
		return err
	}
	enabled, err := decodeRoute(data)
	if err != nil {
		return err
	}
	pre, err := parseIfMatch(c.r.Header)
	if err != nil {
		return err
	}
	if pre.present && !pre.any {
		return fieldError("If-Match", "routes have no version: send If-Match: * or none")
	}
	before, ok := s.findRoute(id)
	if !ok {
		return newError(http.StatusNotFound, "route %q not found", id)
	}
	c.before = before
	if err := s.reg.SetRouteEnabled(id, enabled); err != nil {
		return err
	}
	after := registry.Route{ID: id, Enabled: s.reg.RouteFlag(id).Enabled()}
	c.after = after
	c.reply(http.StatusOK, after)
	return nil
}
