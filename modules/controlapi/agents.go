package controlapi

import (
	"net/http"

	"github.com/sentinel-proxy/sentinel/modules/agents"
)

// agents returns the agents of the app, never nil.
func (s *Server) agents() []agents.Status {
	var list []agents.Status
	if s.hooks.Agents != nil {
		list = s.hooks.Agents()
	}
	if list == nil {
		list = []agents.Status{}
	}
	return list
}

// listAgents serves GET /api/v1/agents.
func (s *Server) listAgents(*call) ([]agents.Status, error) {
	return s.agents(), nil
}

// agentStatus serves GET /api/v1/agents/{id}/status: the agent whose id
// is {id}.
func (s *Server) agentStatus(c *call) (agents.Status, error) {
	id := c.r.PathValue("id")
	for _, a := range s.agents() {
		if a.ID == id {
			return a, nil
		}
	}
	return agents.Status{}, newError(http.StatusNotFound, "agent %q not found", id)
}
