package kdladapter

import "github.com/caddyserver/caddy/v2/caddyconfig"

// GeneratedConfig is generatedConfig for the external test package.
var GeneratedConfig = generatedConfig

// AdaptUnbounded is Adapt without the MaxConfigBytes limit, for the
// benchmarks of configurations larger than it (100,000 routes).
func AdaptUnbounded(filename string, body []byte, lookupEnv func(string) (string, bool), files Files) ([]byte, []caddyconfig.Warning, error) {
	return adapt(filename, body, lookupEnv, files, 1<<40)
}
