package kdladapter

import (
	"sort"
	"strconv"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// wasmFilter maps a filter of type "wasm" to the sentinel_wasm handler
// with its plugin's settings.
func (a *adapter) wasmFilter(filterID string, f *kdl.Node) obj {
	n := setting(f, "plugin")
	if n == nil {
		a.d.errorf(f.Pos, "filter %q: type \"wasm\" needs plugin \"<id>\"", filterID)
		return nil
	}
	id, ok := a.str(n)
	if !ok {
		return nil
	}
	p := a.plugins[id]
	if p == nil {
		ids := make([]string, 0, len(a.plugins))
		for pid := range a.plugins {
			ids = append(ids, pid)
		}
		sort.Strings(ids)
		a.d.errorf(n.Args[0].Pos, "filter %q: plugin %q is not defined in plugins { }%s", filterID, id, suggest(id, ids))
		return nil
	}
	return obj{"handler": "sentinel_wasm", "plugins": []obj{a.plugin(id, p)}}
}

// plugin maps a plugin block.
func (a *adapter) plugin(id string, p *kdl.Node) obj {
	out := obj{"id": id}
	keys := []string{"path", "config", "max-memory", "timeout-ms", "failure-mode", "abi"}
	for _, c := range p.Children {
		switch c.Name {
		case "path":
			out["path"], _ = a.str(c)
		case "config":
			out["config"] = kdlObject(c)
		case "max-memory":
			if sz, ok := a.byteSize(c); ok {
				out["max_memory"] = strconv.FormatInt(sz, 10) // bytes
			}
		case "timeout-ms":
			if d, ok := a.millis(c); ok {
				out["timeout"] = d
			}
		case "failure-mode":
			if s, ok := a.str(c); ok {
				if m, ok := a.oneOf(c, s, "open", "closed"); ok {
					out["failure_mode"] = m
				}
			}
		case "abi":
			if s, ok := a.str(c); ok {
				if m, ok := a.oneOf(c, s, "sentinel", "http-wasm"); ok {
					out["abi"] = m
				}
			}
		default:
			a.d.errorf(c.Pos, "unknown setting %q in plugins.plugin%s", c.Name, suggest(c.Name, keys))
		}
	}
	if _, ok := out["path"]; !ok {
		a.d.errorf(p.Pos, "plugin %q needs a path to its .wasm file", id)
	}
	return out
}

// kdlObject converts a free-form KDL block to JSON the way the original
// converted agent config blocks: `k v` → "k": v, `k a b` → array, a
// nested block → object, a bare `k` → true.
func kdlObject(n *kdl.Node) obj {
	out := obj{}
	for _, c := range n.Children {
		switch {
		case len(c.Children) > 0:
			out[c.Name] = kdlObject(c)
		case len(c.Args) == 0:
			out[c.Name] = true
		case len(c.Args) == 1:
			out[c.Name] = jsonValue(c.Args[0])
		default:
			list := make([]any, 0, len(c.Args))
			for _, v := range c.Args {
				list = append(list, jsonValue(v))
			}
			out[c.Name] = list
		}
	}
	return out
}

// jsonValue converts a KDL value for the encoder.
func jsonValue(v kdl.Value) any {
	switch x := v.Interface().(type) {
	case int64, float64, string, bool, nil:
		return x
	}
	return v.String()
}
