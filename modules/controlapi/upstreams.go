package controlapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/upstreamview"
	"github.com/sentinel-proxy/sentinel/registry"
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
func (s *Server) listUpstreams(c *call) ([]upstreamview.Upstream, error) {
	all := upstreamview.All(s.reg)
	if c.who.namespace == "" {
		return all, nil
	}
	return slices.DeleteFunc(all, func(u upstreamview.Upstream) bool { return !c.who.sees(u.ID) }), nil
}

// getUpstream serves GET /api/v1/upstreams/{id}.
func (s *Server) getUpstream(c *call) (upstreamview.Upstream, error) {
	id := c.r.PathValue("id")
	u, ok := s.reg.Get(id)
	if !ok {
		return upstreamview.Upstream{}, notFound(id)
	}
	return s.tagged(c, u), nil
}

// scopedNewID returns the id of an upstream a caller creates: for a token
// scoped to a namespace, an unqualified id qualified with the namespace
// ("api" → "team-a:api"), and a 403 for an id of another namespace. The
// audit entry names the resulting id.
func scopedNewID(c *call, id string) (string, error) {
	ns := c.who.namespace
	switch {
	case ns == "":
	case registry.NamespaceOf(id) == "":
		id = ns + ":" + id
		if err := validateID(id, "id"); err != nil {
			return "", err
		}
	case !c.who.sees(id):
		c.id = id
		return "", newError(http.StatusForbidden, "%q is scoped to namespace %q: it cannot create %q", c.who.name, ns, id)
	}
	c.id = id
	return id, nil
}

// createUpstream serves POST /api/v1/upstreams.
func (s *Server) createUpstream(c *call, req *newUpstream) (upstreamview.Upstream, error) {
	id, err := scopedNewID(c, string(req.ID))
	if err != nil {
		return upstreamview.Upstream{}, err
	}
	pre, err := parseIfMatch(c.r.Header)
	if err != nil {
		return upstreamview.Upstream{}, err
	}
	if pre.present {
		if cur, ok := s.reg.Get(id); ok {
			c.before = cur
			return upstreamview.Upstream{}, newError(http.StatusConflict, "upstream %q already exists", id)
		}
		return upstreamview.Upstream{}, newError(http.StatusPreconditionFailed, "upstream %q does not exist, so If-Match cannot match", id)
	}
	targets := make([]registry.Target, 0, len(req.Targets))
	for i, t := range req.Targets {
		if err := s.policy.check(c.r.Context(), fmt.Sprintf("targets[%d].address", i), string(t.Address)); err != nil {
			return upstreamview.Upstream{}, err
		}
		targets = append(targets, t.target())
	}
	u, err := s.reg.CreateUpstream(id, targets)
	if err != nil {
		if errors.Is(err, registry.ErrExists) {
			return upstreamview.Upstream{}, newError(http.StatusConflict, "upstream %q already exists", id)
		}
		return upstreamview.Upstream{}, err
	}
	c.after = u
	c.w.Header().Set("Location", upstreamPath(u.ID))
	return s.tagged(c, u), nil
}

// change runs op on the upstream of the call under its If-Match
// condition and records the before and after states for the audit log.
// op gets the current state and the version to pass to the registry.
// Without If-Match (or with *), the current version is passed all the
// same, so that op's change is made against the state it saw; a change
// in between makes it try again.
func (s *Server) change(c *call, op func(cur registry.Upstream, version uint64) (*registry.Upstream, error)) (*registry.Upstream, error) {
	id := c.r.PathValue("id")
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

// tagged returns the view of u, setting its ETag on the response.
func (s *Server) tagged(c *call, u registry.Upstream) upstreamview.Upstream {
	c.w.Header().Set("ETag", etag(u.Version))
	return s.view(u)
}

// changed returns the view of the upstream after a change, or err.
func (s *Server) changed(c *call, u *registry.Upstream, err error) (upstreamview.Upstream, error) {
	if err != nil {
		return upstreamview.Upstream{}, err
	}
	return s.tagged(c, *u), nil
}

// deleteUpstream serves DELETE /api/v1/upstreams/{id}: API-created
// upstreams only.
func (s *Server) deleteUpstream(c *call) (noContent, error) {
	_, err := s.change(c, func(cur registry.Upstream, version uint64) (*registry.Upstream, error) {
		err := s.reg.DeleteUpstream(cur.ID, version)
		if errors.Is(err, registry.ErrConfigDefined) {
			return nil, newError(http.StatusConflict, "upstream %q is defined in the configuration: remove it from the config file and reload to delete it", cur.ID)
		}
		return nil, err
	})
	return noContent{}, err
}

// putTargets serves PUT /api/v1/upstreams/{id}/targets: the targets are
// replaced. Targets that stay keep their state (a draining target stays
// draining, with its deadline); new ones are active.
func (s *Server) putTargets(c *call, req *targetList) (upstreamview.Upstream, error) {
	in := req.Targets
	u, err := s.change(c, func(cur registry.Upstream, version uint64) (*registry.Upstream, error) {
		old := make(map[string]registry.Target, len(cur.Targets))
		for _, t := range cur.Targets {
			old[t.Address] = t
		}
		// Only addresses new to the upstream are checked: targets it has
		// (those the configuration declares among them) may stay.
		for i, t := range in {
			if _, ok := old[string(t.Address)]; ok {
				continue
			}
			if err := s.policy.check(c.r.Context(), fmt.Sprintf("targets[%d].address", i), string(t.Address)); err != nil {
				return nil, err
			}
		}
		ts := make([]registry.Target, 0, len(in))
		for _, t := range in {
			nt := t.target()
			if o, ok := old[nt.Address]; ok {
				nt.State, nt.Origin, nt.DrainDeadline = o.State, o.Origin, o.DrainDeadline
			}
			ts = append(ts, nt)
		}
		u, err := s.reg.PutTargets(cur.ID, ts, version)
		return &u, err
	})
	return s.changed(c, u, err)
}

// addTarget serves POST /api/v1/upstreams/{id}/targets (an extension of
// the original API): one target is added, active.
func (s *Server) addTarget(c *call, in *targetInput) (upstreamview.Upstream, error) {
	t := in.target()
	if err := s.policy.check(c.r.Context(), "address", t.Address); err != nil {
		return upstreamview.Upstream{}, err
	}
	u, err := s.change(c, func(cur registry.Upstream, version uint64) (*registry.Upstream, error) {
		for _, o := range cur.Targets {
			if o.Address == t.Address {
				return nil, &apiError{status: http.StatusConflict, message: fmt.Sprintf("upstream %q already has target %s", cur.ID, t.Address), field: "address"}
			}
		}
		u, err := s.reg.AddTarget(cur.ID, t, version)
		return &u, err
	})
	return s.changed(c, u, err)
}

// patchTarget serves PATCH /api/v1/upstreams/{id}/targets/{address}.
func (s *Server) patchTarget(c *call, p *targetPatch) (upstreamview.Upstream, error) {
	u, err := s.change(c, func(cur registry.Upstream, version uint64) (*registry.Upstream, error) {
		u, err := s.reg.PatchTarget(cur.ID, c.r.PathValue("address"), registry.TargetPatch{Weight: p.Weight, State: p.State}, version)
		return &u, err
	})
	return s.changed(c, u, err)
}

// removeTarget serves DELETE /api/v1/upstreams/{id}/targets/{address}:
// the target is removed at once, whether drained or not.
func (s *Server) removeTarget(c *call) (upstreamview.Upstream, error) {
	u, err := s.change(c, func(cur registry.Upstream, version uint64) (*registry.Upstream, error) {
		u, err := s.reg.RemoveTarget(cur.ID, c.r.PathValue("address"), version)
		return &u, err
	})
	return s.changed(c, u, err)
}

// drainUpstream serves POST /api/v1/upstreams/{id}/drain.
func (s *Server) drainUpstream(c *call, in *drainOptions) (upstreamview.Upstream, error) {
	return s.drain(c, "", in)
}

// drainTarget serves POST /api/v1/upstreams/{id}/targets/{address}/drain.
func (s *Server) drainTarget(c *call, in *drainOptions) (upstreamview.Upstream, error) {
	return s.drain(c, c.r.PathValue("address"), in)
}

// drain sets the target at address, or all targets, draining: they get
// no new request, and with timeout_secs (admin scope only: it removes
// targets) they are removed when it expires.
func (s *Server) drain(c *call, address string, in *drainOptions) (upstreamview.Upstream, error) {
	timeout := time.Duration(in.TimeoutSecs) * time.Second
	if timeout > 0 && c.who.scope < scopeAdmin {
		return upstreamview.Upstream{}, &apiError{status: http.StatusForbidden, field: "timeout_secs",
			message: fmt.Sprintf("a drain with timeout_secs removes the targets when it expires, which needs the admin scope; %q has %s: drain without timeout_secs (the targets stay, drained)", c.who.name, c.who.scope)}
	}
	u, err := s.change(c, func(cur registry.Upstream, version uint64) (*registry.Upstream, error) {
		if address == "" && len(cur.Targets) == 0 {
			return &cur, nil // nothing to drain
		}
		u, err := s.reg.Drain(cur.ID, address, timeout, version)
		return &u, err
	})
	return s.changed(c, u, err)
}
