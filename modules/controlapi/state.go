package controlapi

import "net/http"

// stateStatus serves GET /api/v1/state: where the API-made state is kept,
// whether the saved state could be used at start (and where an unusable
// one was moved), and whether the last change could be saved.
func (s *Server) stateStatus(c *call) error {
	c.reply(http.StatusOK, s.reg.Status())
	return nil
}
