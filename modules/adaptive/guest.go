package adaptive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// policyNamespace is the namespace of the guest selection policies
// (inner, fallback) some policies of this package delegate to.
const policyNamespace = "http.reverse_proxy.selection_policies"

// guestPolicy reads a guest selection policy field. Earlier configs gave
// it as a bare string: aliases maps those strings to a policy name, ""
// meaning no policy (none is true). A JSON object is returned unchanged;
// an absent field gives def.
func guestPolicy(raw json.RawMessage, field, def string, aliases map[string]string) (out json.RawMessage, none bool, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return policyObject(def), false, nil
	}
	if raw[0] != '"' {
		return raw, false, nil
	}
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		return nil, false, fmt.Errorf("%s: %w", field, err)
	}
	policy, ok := aliases[name]
	if !ok {
		names := make([]string, 0, len(aliases))
		for k := range aliases {
			names = append(names, k)
		}
		sort.Strings(names)
		return nil, false, fmt.Errorf("%s %q: expected a selection policy object or one of %s", field, name, strings.Join(names, ", "))
	}
	if policy == "" {
		return nil, true, nil
	}
	return policyObject(policy), false, nil
}

// policyObject is the JSON of a selection policy without settings.
func policyObject(name string) json.RawMessage {
	return json.RawMessage(`{"policy":` + jsonString(name) + `}`)
}

// jsonString is s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// policyFromCaddyfile reads `<policy> [<args…>] [{ <settings> }]` at the
// dispenser's current token (the policy name), as Caddy's `first`
// policy reads its fallback. aliases renames the legacy names.
func policyFromCaddyfile(d *caddyfile.Dispenser, aliases map[string]string) (json.RawMessage, error) {
	name := d.Val()
	if a, ok := aliases[name]; ok {
		if a == "" {
			return json.RawMessage(jsonString(name)), nil
		}
		name = a
	}
	modID := policyNamespace + "." + name
	unm, err := caddyfile.UnmarshalModule(d, modID)
	if err != nil {
		return nil, err
	}
	sel, ok := unm.(reverseproxy.Selector)
	if !ok {
		return nil, d.Errf("module %s (%T) is not a selection policy", modID, unm)
	}
	return caddyconfig.JSONModuleObject(sel, "policy", name, nil), nil
}

// subPools recycles the candidate pools handed to a guest policy.
type subPools struct{ p sync.Pool }

func (s *subPools) get(n int) *reverseproxy.UpstreamPool {
	if v, ok := s.p.Get().(*reverseproxy.UpstreamPool); ok && cap(*v) >= n {
		*v = (*v)[:0]
		return v
	}
	p := make(reverseproxy.UpstreamPool, 0, n)
	return &p
}

func (s *subPools) put(p *reverseproxy.UpstreamPool) {
	clear(*p)
	s.p.Put(p)
}
