package controlapi

import "net/http"

// agents returns the agents of the app, never nil.
func (s *Server) agents() []map[string]any {
	if s.hooks.Agents == nil {
		return []map[string]any{}
	}
	if list := s.hooks.Agents(); list != nil {
		return list
	}
	return []map[string]any{}
}

// listAgents serves GET /api/v1/agents.
func (s *Server) listAgents(c *call) error {
	c.reply(http.StatusOK, s.agents())
	return nil
}

// agentStatus serves GET /api/v1/agents/{id}/status: the agent whose
// "id" is {id}.
func (s *Server) agentStatus(c *call) error {
	id := c.params["id"]
	for _, a := range s.agents() {
		if aid, ok := a["id"].(string); ok && aid == id {
			c.reply(http.StatusOK, a)
			return nil
		}
	}
	return newError(http.StatusNotFound, "agent %q not found", id)
}
