package kdladapter

import (
	"encoding/json"
	"sort"
	"strconv"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/modules/wasm"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
)

// pluginKey declares the keys of a `plugins { plugin "id" { … } }` block
// and their mapping onto the sentinel_wasm handler's wasm.Plugin. The
// plugin is a block: several plugins are not "repeated settings". It is
// built once and not changed after.
var pluginKey = typedBlock(h("plugin", "a plugin of the `sentinel_wasm` handler (`wasm.Plugin`)"),
	stringField("path", "the .wasm file (required)", func(p *wasm.Plugin) *string { return &p.Path }),
	configField("config", "delivered to the plugin (get_config) as JSON; `k (list)\"v\"` is a one-element list",
		func(p *wasm.Plugin) *json.RawMessage { return &p.Config }),
	fieldOf("max-memory", "memory limit of an instance, e.g. \"16MiB\" (default 16 MiB)", (*adapter).memorySize,
		func(p *wasm.Plugin) *string { return &p.MaxMemory }),
	millisField("timeout-ms", "deadline of one hook call (default 50)", func(p *wasm.Plugin) *caddy.Duration { return &p.Timeout }),
	sizeField("max-body-bytes", "request and response body bytes a plugin sees (on_request_body, on_response_body), e.g. \"64KiB\" (default 1 MiB)",
		func(p *wasm.Plugin) *int64 { return &p.MaxBodyBytes }),
	choiceField("failure-mode", "`closed` (default: 503) or `open` (skip the plugin)",
		func(p *wasm.Plugin) *string { return &p.FailureMode }, wasm.FailureOpen, wasm.FailureClosed),
	choiceField("abi", "`sentinel` or `http-wasm` (default: detected from the imports)",
		func(p *wasm.Plugin) *string { return &p.ABI }, "sentinel", "http-wasm"),
)

// wasmHandler writes the sentinel_wasm handler.
var wasmHandler = newModuleJSON[wasm.Handler]("handler", "sentinel_wasm")

// memorySize reads a byte size as wasm.Plugin's max_memory: a number of
// bytes, in a string.
func (a *adapter) memorySize(n *kdl.Node) (string, bool) {
	sz, ok := a.byteSize(n)
	return strconv.FormatInt(sz, 10), ok
}

// wasmFilter maps a filter of type "wasm" of a route to the sentinel_wasm
// handler with its plugin's settings and the route's id (get_route_id).
func (a *adapter) wasmFilter(routeID, filterID string, f *kdl.Node) json.RawMessage {
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
	return wasmHandler.raw(&wasm.Handler{Route: routeID, Plugins: []*wasm.Plugin{a.plugin(id, p)}})
}

// plugin maps a plugin block.
func (a *adapter) plugin(id string, n *kdl.Node) *wasm.Plugin {
	p := pluginKey.Map(a, n).(*wasm.Plugin)
	p.ID = id
	if setting(n, "path") == nil {
		a.d.errorf(n.Pos, "plugin %q needs a path to its .wasm file", id)
	}
	return p
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
	if n.HasType() && n.Type() == listType {
		return true
	}
	return len(n.Args) > 0 && n.Args[0].HasType && n.Args[0].Type() == listType
}

// jsonValue converts a KDL value for the encoder.
func jsonValue(v kdl.Value) any {
	switch x := v.Interface().(type) {
	case int64, float64, string, bool, nil:
		return x
	}
	return v.String()
}
