package controlapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/sentinel-proxy/sentinel/modules/registry"
	"github.com/sentinel-proxy/sentinel/modules/upstreamview"
)

// conflictRetries is how many times a change made without If-Match is
// retried when the upstream changed between reading and writing it.
const conflictRetries = 5

// view returns the API view of u.
func (s *Server) view(u registry.Upstream) upstreamview.Upstream {
	return upstreamview.Of(s.reg, u)
}

// upstreamPath returns the URL path of an upstream.
func upstreamPath(id string) string {
	return "/api/v1/upstreams/" + url.PathEscape(id)
}

// notFound is the error of an unknown upstream.
func notFound(id string) error {
	return newError(http.StatusNotFound, "upstream %q not found", id)
}

// listUpstreams serves GET /api/v1/upstreams.
func (s *Server) listUpstreams(c *call) error {
	c.reply(http.StatusOK, upstreamview.All(s.reg))
	return nil
}

// getUpstream serves GET /api/v1/upstreams/{id}.
func (s *Server) getUpstream(c *call) error {
	u, ok := s.reg.Get(c.params["id"])
	if !ok {
		return notFound(c.params["id"])
	}
	c.w.Header().Set("ETag", etag(u.Version))
	c.reply(http.StatusOK, s.view(u))
	return nil
}

// createUpstream serves POST /api/v1/upstreams.
func (s *Server) createUpstream(c *call) error {
	c.kind = "upstream"
	data, err := readBody(c.w, c.r, s.maxBody)
	if err != nil {
		return err
	}
	req, err := decodeCreate(data)
	c.id = req.ID
	if err != nil {
		return err
	}
	pre, err := parseIfMatch(c.r.Header)
	if err != nil {
		return err
	}
	if pre.present {
		if cur, ok := s.reg.Get(req.ID); ok {
			c.before = cur
			return newError(http.StatusConflict, "upstream %q already exists", req.ID)
		}
		return newError(http.StatusPreconditionFailed, "upstream %q does not exist, so If-Match cannot match", req.ID)
	}
	targets := make([]registry.Target, 0, len(req.Targets))
	for i, t := range req.Targets {
		if err := s.policy.check(c.r.Context(), fmt.Sprintf("targets[%d].address", i), t.Address); err != nil {
			return err
		}
		targets = append(targets, registry.Target{Address: t.Address, Weight: t.Weight})
	}
	u, err := s.reg.CreateUpstream(req.ID, targets)
	if err != nil {
		if errors.Is(err, registry.ErrExists) {
			return newError(http.StatusConflict, "upstream %q already exists", req.ID)
		}
		return err
	}
	c.after = u
	c.w.Header().Set("Location", upstreamPath(u.ID))
	c.w.Header().Set("ETag", etag(u.Version))
	c.reply(http.StatusCreated, s.view(u))
	return nil
}

// change runs op on the upstream of the call under its If-Match
// condition and records the before and after states for the audit log.
// op gets the current state and the version to pass to the registry.
// Without If-Match (or with *), the current version is passed all the
// same, so that op's change is made against the state it saw; a change
// in between makes it try again.
func (s *Server) change(c *call, op func(cur registry.Upstream, version uint64) (*registry.Upstream, error)) (*registry.Upstream, error) {
	id := c.params["id"]
	c.kind, c.id = "upstream", id
	pre, err := parseIfMatch(c.r.Header)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		cur, ok := s.reg.Get(id)
		if !ok {
			return nil, notFound(id)
		}
		c.before = cur
		if !pre.matches(cur.Version) {
			c.w.Header().Set("ETag", etag(cur.Version))
			return nil, newError(http.StatusPreconditionFailed, "upstream %q is at version %s: If-Match does not match", id, etag(cur.Version))
		}
		after, err := op(cur, cur.Version)
		if errors.Is(err, registry.ErrConflict) {
			if pre.present && !pre.any || attempt >= conflictRetries {
				return nil, newError(http.StatusPreconditionFailed, "upstream %q changed while the request was served: If-Match does not match", id)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if after != nil {
			c.after = *after
		}
		return after, nil
	}
}

// replyUpstream answers the upstream after a change, with its ETag.
func (s *Server) replyUpstream(c *call, status int, u *registry.Upstream) {
	c.w.Header().Set("ETag", etag(u.Version))
	c.reply(status, s.view(*u))
}

// deleteUpstream serves DELETE /api/v1/upstreams/{id}: API-created
// upstreams only.
func (s *Server) deleteUpstream(c *call) error {
	_, err := s.change(c, func(cur registry.Upstream, version uint64) (*registry.Upstream, error) {
		err := s.reg.DeleteUpstream(cur.ID, version)
		if errors.Is(err, registry.ErrConfigDefined) {
			return nil, newError(http.StatusConflict, "upstream %q is defined in the configuration: remove it from the config file and reload to delete it", cur.ID)
		}
		return nil, err
	})
	if err != nil {
		return err
	}
	c.reply(http.StatusNoContent, nil)
	return nil
}

// putTargets serves PUT /api/v1/upstreams/{id}/targets: the targets are
// replaced. Targets that stay keep their state (a draining target stays
// draining, with its deadline); new ones are active.
func (s *Server) putTargets(c *call) error {
	data, err := readBody(c.w, c.r, s.maxBody)
	if err != nil {
		return err
	}
	in, err := decodeTargets(data)
	if err != nil {
		return err
	}
	u, err := s.change(c, func(cur registry.Upstream, version uint64) (*registry.Upstream, error) {
		old := make(map[string]registry.Target, len(cur.Targets))
		for _, t := range cur.Targets {
			old[t.Address] = t
		}
		// Only addresses new to the upstream are checked: targets it has
		// (those the configuration declares among them) may stay.
		for i, t := range in {
			if _, ok := old[t.Address]; ok {
				continue
			}
			if err := s.policy.check(c.r.Context(), fmt.Sprintf("targets[%d].address", i), t.Address); err != nil {
				return nil, err
			}
		}
		ts := make([]registry.Target, 0, len(in))
		for _, t := range in {
			nt := registry.Target{Address: t.Address, Weight: t.Weight}
			if o, ok := old[t.Address]; ok {
				nt.State, nt.Origin, nt.DrainDeadline = o.State, o.Origin, o.DrainDeadline
			}
			ts = append(ts, nt)
		}
		u, err := s.reg.PutTargets(cur.ID, ts, version)
		return &u, err
	})
	if err != nil {
		return err
	}
	s.replyUpstream(c, http.StatusOK, u)
	return nil
}

// addTarget serves POST /api/v1/upstreams/{id}/targets (an extension of
// the original API): one target is added, active.
func (s *Server) addTarget(c *call) error {
	data, err := readBody(c.w, c.r, s.maxBody)
	if err != nil {
		return err
	}
	t, err := decodeNewTarget(data)
	if err != nil {
		return err
	}
	if err := s.policy.check(c.r.Context(), "address", t.Address); err != nil {
		c.kind, c.id = "upstream", c.params["id"]
		return err
	}
	u, err := s.change(c, func(cur registry.Upstream, version uint64) (*registry.Upstream, error) {
		for _, o := range cur.Targets {
			if o.Address == t.Address {
				return nil, &apiError{status: http.StatusConflict, message: fmt.Sprintf("upstream %q already has target %s", cur.ID, t.Address), field: "address"}
			}
		}
		u, err := s.reg.AddTarget(cur.ID, registry.Target{Address: t.Address, Weight: t.Weight}, version)
		return &u, err
	})
	if err != nil {
		return err
	}
	s.replyUpstream(c, http.StatusCreated, u)
	return nil
}

// patchTarget serves PATCH /api/v1/upstreams/{id}/targets/{address}.
func (s *Server) patchTarget(c *call) error {
	data, err := readBody(c.w, c.r, s.maxBody)
	if err != nil {
		return err
	}
	p, err := decodePatch(data)
	if err != nil {
		return err
	}
	u, err := s.change(c, func(cur registry.Upstream, version uint64) (*registry.Upstream, error) {
		u, err := s.reg.PatchTarget(cur.ID, c.params["address"], p, version)
		return &u, err
	})
	if err != nil {
		return err
	}
	s.replyUpstream(c, http.StatusOK, u)
	return nil
}

// removeTarget serves DELETE /api/v1/upstreams/{id}/targets/{address}:
// the target is removed at once, whether drained or not.
func (s *Server) removeTarget(c *call) error {
	u, err := s.change(c, func(cur registry.Upstream, version uint64) (*registry.Upstream, error) {
		u, err := s.reg.RemoveTarget(cur.ID, c.params["address"], version)
		return &u, err
	})
	if err != nil {
		return err
	}
	s.replyUpstream(c, http.StatusOK, u)
	return nil
}

// drainUpstream serves POST /api/v1/upstreams/{id}/drain.
func (s *Server) drainUpstream(c *call) error {
	return s.drain(c, "")
}

// drainTarget serves POST /api/v1/upstreams/{id}/targets/{address}/drain.
func (s *Server) drainTarget(c *call) error {
	return s.drain(c, c.params["address"])
}

// drain sets the target at address, or all targets, draining: they get
// no new request, and with timeout_secs (admin scope only: it removes
// targets) they are removed when it expires.
func (s *Server) drain(c *call, address string) error {
	data, err := readBody(c.w, c.r, s.maxBody)
	if err != nil {
		return err
	}
	timeout, err := decodeDrain(data)
	if err != nil {
		return err
	}
	if timeout > 0 && c.who.scope < scopeAdmin {
		c.kind, c.id = "upstream", c.params["id"]
		return &apiError{status: http.StatusForbidden, field: "timeout_secs",
			message: fmt.Sprintf("a drain with timeout_secs removes the targets when it expires, which needs the admin scope; %q has %s: drain without timeout_secs (the targets stay, drained)", c.who.name, c.who.scope)}
	}
	u, err := s.change(c, func(cur registry.Upstream, version uint64) (*registry.Upstream, error) {
		if address == "" && len(cur.Targets) == 0 {
			return &cur, nil // nothing to drain
		}
		u, err := s.reg.Drain(cur.ID, address, timeout, version)
		return &u, err
	})
	if err != nil {
		return err
	}
	s.replyUpstream(c, http.StatusOK, u)
	return nil
}
