// Command sentinel is Caddy with the Sentinel modules and the KDL adapter,
// and a command line that fits Sentinel: `sentinel run` with no flags
// serves $SENTINEL_CONFIG, ./sentinel.kdl or the embedded default
// configuration, a --config file ending in .kdl implies --adapter kdl, a
// --config directory in the original's multi-file layout is loaded as a
// whole, `adapt` and `validate` print errors as file:line:col with the
// source line, and Caddy's commands that make no sense for Sentinel
// (upgrade, add-package, fmt, …) are left out.
package main

import (
	"fmt"
	"os"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/sentinel-proxy/sentinel"
)

func main() {
	os.Exit(run(os.Args, &cliEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}))
}

// run runs the command line args and returns the exit status.
func run(args []string, env *cliEnv) int {
	env.dirs = map[string]string{}
	writeDefault := func() (string, error) {
		path, err := writeDefaultConfig()
		env.defaultPath = path
		return path, err
	}
	dirEntry := func(path string) (string, error) {
		entry, err := directoryEntry(path)
		if entry != "" {
			env.dirs[entry] = path
		}
		return entry, err
	}
	args, err := rewriteArgs(args, os.Getenv("SENTINEL_CONFIG"), fileExists, writeDefault, dirEntry)
	if err != nil {
		fmt.Fprintln(env.stderr, "sentinel:", err)
		return 1
	}
	root := newRootCommand(env)
	root.SetArgs(args[1:])
	root.SetIn(env.stdin)
	root.SetOut(env.stdout)
	root.SetErr(env.stderr)
	if err := root.Execute(); err != nil {
		return exitCode(err)
	}
	return 0
}

// writeDefaultConfig writes the embedded default config to a file and
// returns its path.
func writeDefaultConfig() (string, error) {
	return materialize(sentinel.DefaultConfig)
}
