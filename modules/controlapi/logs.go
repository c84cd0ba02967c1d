package controlapi

import (
	"strconv"

	"github.com/sentinel-proxy/sentinel/internal/logring"
)

// maxLogLines is the most lines one call answers.
const maxLogLines = 500

// logLines is the answer of GET /api/v1/logs/access and /audit.
type logLines struct {
	// Lines are the lines after the one asked for, oldest first (at most
	// 500: the newest ones).
	Lines []logring.Line `json:"lines"`
	// Last is the sequence number of the newest line: ask with
	// ?after=<last> next time.
	Last uint64 `json:"last"`
}

// accessLog serves GET /api/v1/logs/access.
func (s *Server) accessLog(c *call) (logLines, error) {
	return readRing(c, logring.Access)
}

// auditLog serves GET /api/v1/logs/audit.
func (s *Server) auditLog(c *call) (logLines, error) {
	return readRing(c, logring.Audit)
}

// readRing answers the lines of r after the query's after parameter.
func readRing(c *call, r *logring.Ring) (logLines, error) {
	var after uint64
	if v := c.r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return logLines{}, fieldError("after", "after must be a line's sequence number (a non-negative integer)")
		}
		after = n
	}
	lines, last := r.After(after, maxLogLines)
	return logLines{Lines: lines, Last: last}, nil
}
