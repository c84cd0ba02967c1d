package wasm

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestCaddyfile(t *testing.T) {
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`sentinel_wasm {
		cache_dir /var/cache/wasm
		plugin inject /srv/inject.wasm {
			abi sentinel
			config {"header":"X-A"}
			max_memory 16MiB
			timeout 5ms
			failure_mode open
			max_body_bytes 4096
			max_idle_instances 8
		}
		plugin tw /srv/traefik.wasm
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Plugins) != 2 || h.CacheDir != "/var/cache/wasm" {
		t.Fatalf("%d plugins", len(h.Plugins))
	}
	p := h.Plugins[0]
	if p.ID != "inject" || p.Path != "/srv/inject.wasm" || p.ABI != "sentinel" || string(p.Config) != `{"header":"X-A"}` ||
		p.MaxMemory != "16MiB" || time.Duration(p.Timeout) != 5*time.Millisecond || p.FailureMode != "open" ||
		p.MaxBodyBytes != 4096 || p.MaxIdleInstances != 8 {
		t.Errorf("%+v", p)
	}
	for _, bad := range []string{
		"sentinel_wasm x",
		"sentinel_wasm {\n bogus\n}",
		"sentinel_wasm {\n cache_dir\n}",
		"sentinel_wasm {\n cache_dir a b\n}",
		"sentinel_wasm {\n plugin onlyid\n}",
		"sentinel_wasm {\n plugin a b {\n config notjson\n }\n}",
		"sentinel_wasm {\n plugin a b {\n timeout soon\n }\n}",
		"sentinel_wasm {\n plugin a b {\n max_body_bytes lots\n }\n}",
		"sentinel_wasm {\n plugin a b {\n color blue\n }\n}",
		"sentinel_wasm {\n plugin a b {\n abi\n }\n}",
		"sentinel_wasm {\n plugin a b {\n abi x y\n }\n}",
	} {
		if err := new(Handler).UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
