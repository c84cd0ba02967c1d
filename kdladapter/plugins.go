package kdladapter

import (
	"sort"
	"strconv"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// pluginKeys are the keys of a `plugins { plugin "id" { … } }` block.
// The plugin is a block: several plugins are not "repeated settings".
func pluginKeys() *Key {
	return h("plugin", "a plugin: `path`, `config { }`, `max-memory`, `timeout-ms`, `failure-mode`, `abi`",
		h("path", "the .wasm file (required)"),
		open(h("config", "delivered to the plugin (get_config) as JSON; `k (list)\"v\"` is a one-element list")),
		h("max-memory", "memory limit of an instance, e.g. \"16MiB\" (default 16 MiB)"),
		h("timeout-ms", "deadline of one hook call (default 50)"),
		h("failure-mode", "`closed` (default: 503) or `open` (skip the plugin)"),
		h("abi", "`sentinel` or `http-wasm` (default: detected from the imports)"),
	)
}

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
		}
	}
	if _, ok := out["path"]; !ok {
		a.d.errorf(p.Pos, "plugin %q needs a path to its .wasm file", id)
	}
	return out
}

// kdlObject converts a free-form KDL block to JSON the way the original
// converted agent config blocks: `k v` → "k": v, `k a b` → array, a
// nested block → object, a bare `k` → true. A `(list)` type annotation
// makes a list of any length: `k (list)"v"` (or `(list)k "v"`) → ["v"],
// `(list)k` → [] — the only way to write a one-element list, which
// plugins and agents that expect a list need.
func kdlObject(n *kdl.Node) obj {
	out := obj{}
	for _, c := range n.Children {
		switch {
		case len(c.Children) > 0:
			out[c.Name] = kdlObject(c)
		case isList(c):
			list := make([]any, 0, len(c.Args))
			for _, v := range c.Args {
				list = append(list, jsonValue(v))
			}
			out[c.Name] = list
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

// listType is the type annotation that makes a config value a list.
const listType = "list"

// isList reports whether a config node is annotated as a list: on the
// node (`(list)k …`) or on its first argument (`k (list)"v" …`).
func isList(n *kdl.Node) bool {
	if n.HasType && n.Type == listType {
		return true
	}
	return len(n.Args) > 0 && n.Args[0].HasType && n.Args[0].Type == listType
}

// jsonValue converts a KDL value for the encoder.
func jsonValue(v kdl.Value) any {
	switch x := v.Interface().(type) {
	case int64, float64, string, bool, nil:
		return x
	}
	return v.String()
}
