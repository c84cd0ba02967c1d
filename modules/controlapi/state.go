package controlapi

import "github.com/sentinel-proxy/sentinel/registry"

// stateStatus serves GET /api/v1/state: where the API-made state is kept,
// whether the saved state could be used at start (and where an unusable
// one was moved), and whether the last change could be saved.
func (s *Server) stateStatus(*call) (registry.StoreStatus, error) {
	return s.reg.Status(), nil
}
