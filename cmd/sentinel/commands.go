package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/sentinel-proxy/sentinel/internal/buildinfo"
)

// rootLong is the text of `sentinel help`.
const rootLong = `Sentinel is a security-first reverse proxy configured in KDL (sentinel.kdl),
built on Caddy v2.

Which configuration is used: --config FILE (a file ending in .kdl implies
--adapter kdl; a directory in the original's multi-file layout is loaded as
a whole), else $SENTINEL_CONFIG, else ./sentinel.kdl, else the embedded
default configuration: a JSON status page on 0.0.0.0:8080, and /health,
/healthz, /ready and /metrics on the ops listener 0.0.0.0:9090 (move them
with $SENTINEL_MAIN_ADDRESS and $SENTINEL_OPS_ADDRESS).

Common commands:

  sentinel run                              serve in the foreground
  sentinel validate --config sentinel.kdl   check a file: errors as file:line:col
  sentinel adapt --config sentinel.kdl      print the Caddy JSON it becomes
  sentinel reload --config sentinel.kdl     give a running Sentinel a new config
  sentinel version                          Sentinel's, Caddy's and Go's versions

Caddy's admin API (default localhost:2019; system { caddy-admin "..." })
also accepts a new config: POST /load with Content-Type text/kdl.`

// docsFooter ends every help text.
const docsFooter = `Documentation: README.md and docs/ of https://github.com/sentinel-proxy/sentinel`

// configHelp explains where a command's configuration comes from.
const configHelp = `Without --config the configuration is $SENTINEL_CONFIG, else ./sentinel.kdl,
else the embedded default configuration. A --config ending in .kdl implies
--adapter kdl; a --config directory in the original's multi-file layout
(sentinel.kdl plus listeners/, routes/, upstreams/, filters/, agents/, and
environments/$SENTINEL_ENV.kdl) is loaded as a whole.`

// text is the help of a command Sentinel describes itself.
type text struct{ usage, short, long string }

// texts replaces Caddy's help of the commands whose behaviour Sentinel
// changes or whose Caddy text would mislead (Caddyfile, "Caddy process").
var texts = map[string]text{
	"run": {
		usage: "[--config <path>] [--envfile <path>] [--environ] [--resume] [--watch] [--pidfile <file>]",
		short: "Runs Sentinel in the foreground",
		long: `Runs Sentinel in the foreground until it is stopped (SIGINT, SIGTERM or
'sentinel stop'); in-flight requests get the configured graceful shutdown.

` + configHelp + `

--watch reloads the file when it changes (for development). --envfile loads
KEY=VALUE lines into the environment first (${VAR} in the config reads it).
--resume prefers the config last loaded through the admin API, if saved.`,
	},
	"start": {
		usage: "[--config <path>] [--envfile <path>] [--watch] [--pidfile <file>]",
		short: "Starts Sentinel in the background and returns",
		long: `Starts Sentinel in the background and returns once it serves (or with its
error). Stop it with 'sentinel stop'. Under systemd or Kubernetes prefer
'sentinel run'.

` + configHelp,
	},
	"stop": {
		usage: "[--config <path>] [--address <interface>]",
		short: "Stops a running Sentinel gracefully",
		long: `Stops a running Sentinel through Caddy's admin API (its /stop endpoint), so
the admin API must be on. The admin address is --address, else the one in
--config (system { caddy-admin "..." }), else localhost:2019.`,
	},
	"reload": {
		usage: "[--config <path>] [--address <interface>] [--force]",
		short: "Gives a running Sentinel a new configuration",
		long: `Adapts the configuration and loads it into the running Sentinel through
Caddy's admin API, without a restart: in-flight requests finish on the old
config, and a config that fails is refused while the old one keeps running.

Without --config: $SENTINEL_CONFIG, else ./sentinel.kdl. A --config ending
in .kdl implies --adapter kdl.`,
	},
	"adapt": {
		usage: "[--config <path>] [--pretty] [--validate] [--envfile <path>] [--json]",
		short: "Prints the Caddy JSON a configuration becomes",
		long: `Adapts a configuration (KDL by default) to Caddy's JSON and prints it. Errors
are printed as file:line:col: message, with the line and a caret, and the
exit status is 1; warnings (settings without effect) go to stderr the same
way. --json prints errors and warnings as one JSON document on stderr
instead. --validate also provisions the result, as 'sentinel validate'
does. Use - as the path to read standard input.

` + configHelp,
	},
	"validate": {
		usage: "[--config <path>] [--envfile <path>] [--json]",
		short: "Checks a configuration without running it",
		long: `Adapts and provisions a configuration without serving it, and names the
file that was checked ("embedded default config" when no file was given).
Errors are printed as file:line:col: message, with the line and a caret,
and the exit status is 1; --json prints them as one JSON document.

` + configHelp,
	},
	"version": {
		short: "Prints Sentinel's version, and the Caddy and Go it is built with",
		long:  `Prints "sentinel <version> (caddy <version>, <go version>)".`,
	},
}

// dropped are Caddy's commands that make no sense for Sentinel, with the
// reason given when someone runs one anyway (they are hidden from help).
var dropped = map[string]string{
	"upgrade":        "it would replace this binary with a download of stock Caddy, without Sentinel's modules; build Sentinel again (go build ./cmd/sentinel) or pull a newer image",
	"add-package":    "it would replace this binary with a download of stock Caddy; add modules with xcaddy build --with github.com/sentinel-proxy/sentinel (see the README)",
	"remove-package": "it would replace this binary with a download of stock Caddy; build Sentinel again with the modules you want",
	"fmt":            "it formats Caddyfiles; Sentinel's configuration is KDL",
	"file-server":    "it serves a Caddyfile-style configuration that ignores sentinel.kdl",
	"respond":        "it serves a Caddyfile-style configuration that ignores sentinel.kdl",
	"reverse-proxy":  "it serves a Caddyfile-style configuration that ignores sentinel.kdl; write a sentinel.kdl with a route and an upstream",
	"hash-password":  "it hashes passwords for Caddy's basic_auth, which sentinel.kdl has no setting for",
}

// newRootCommand builds Sentinel's command line from Caddy's registered
// commands: Sentinel's own help and version, its own adapt, validate and
// start, Caddy's other commands as they are, minus the dropped ones.
func newRootCommand(env *cliEnv) *cobra.Command {
	root := &cobra.Command{
		Use:          "sentinel",
		Short:        "Sentinel, a security-first reverse proxy configured in KDL, built on Caddy",
		Long:         rootLong,
		Example:      "  sentinel run\n  sentinel run --config /etc/sentinel/sentinel.kdl\n  sentinel validate --config sentinel.kdl\n  sentinel reload --config sentinel.kdl",
		SilenceUsage: true,
		Version:      buildinfo.String(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetHelpTemplate(root.HelpTemplate() + "\n" + docsFooter + "\n")

	commands := caddycmd.Commands()
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if reason, ok := dropped[name]; ok {
			root.AddCommand(droppedCommand(name, reason))
			continue
		}
		root.AddCommand(fromCaddy(commands[name]))
	}
	for _, c := range root.Commands() {
		switch c.Name() {
		case "adapt":
			c.Flags().Bool("json", false, "Print errors and warnings as JSON on stderr")
			if f := c.Flags().Lookup("adapter"); f != nil {
				_ = f.Value.Set("kdl")
				f.DefValue = "kdl"
			}
			c.RunE = func(cmd *cobra.Command, _ []string) error { return env.adapt(cmd) }
		case "validate":
			c.Flags().Bool("json", false, "Print errors and warnings as JSON on stderr")
			c.RunE = func(cmd *cobra.Command, _ []string) error { return env.validate(cmd) }
		case "run":
			// --pingback is how start learns that run serves.
			_ = c.Flags().MarkHidden("pingback")
			caddyRun := c.RunE
			c.RunE = func(cmd *cobra.Command, args []string) error {
				if err := env.precheck(cmd); err != nil {
					return err
				}
				tuneRuntime(os.LookupEnv, caddy.Log())
				scheduleExecPagesRelease(os.LookupEnv, func() bool { return caddy.ActiveContext().Context != nil }, caddy.Log())
				return caddyRun(cmd, args)
			}
		case "start":
			c.RunE = func(cmd *cobra.Command, _ []string) error { return env.start(cmd) }
		case "version":
			c.RunE = func(cmd *cobra.Command, _ []string) error {
				fmt.Fprintln(cmd.OutOrStdout(), buildinfo.String())
				return nil
			}
		}
	}
	root.AddCommand(manpageCommand(root))
	return root
}

// fromCaddy converts a Caddy command to cobra as Caddy does, with
// Sentinel's help text where it has one.
func fromCaddy(cc caddycmd.Command) *cobra.Command {
	usage, short, long := cc.Usage, cc.Short, cc.Long
	if t, ok := texts[cc.Name]; ok {
		usage, short, long = t.usage, t.short, t.long
	}
	c := &cobra.Command{
		Use:   strings.TrimSpace(cc.Name + " " + usage),
		Short: short,
		Long:  strings.TrimSpace(long),
	}
	if cc.CobraFunc != nil {
		cc.CobraFunc(c)
	} else {
		c.RunE = caddycmd.WrapCommandFuncForCobra(cc.Func)
		if cc.Flags != nil {
			c.Flags().AddGoFlagSet(cc.Flags)
		}
	}
	return c
}

// droppedCommand is a hidden command that explains why it is not there.
func droppedCommand(name, reason string) *cobra.Command {
	return &cobra.Command{
		Use:                name,
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return fmt.Errorf("sentinel %s is not available: %s", name, reason)
		},
	}
}

// manpageCommand generates the manual pages of Sentinel's commands.
func manpageCommand(root *cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   "manpage --directory <path>",
		Short: "Generates the manual pages of Sentinel's commands",
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, _ := cmd.Flags().GetString("directory")
			if strings.TrimSpace(dir) == "" {
				return errors.New("--directory is required")
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			return doc.GenManTree(root, &doc.GenManHeader{Title: "SENTINEL", Section: "8"}, dir)
		},
	}
	c.Flags().StringP("directory", "o", "", "The output directory of the manual pages")
	return c
}

// exitError ends the process with a status after the command printed its
// own messages.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitCode returns the status for a command's error: Sentinel's own
// commands say it with exitError; Caddy's wrapped commands return an
// unexported error type with an ExitCode field for statuses above 1.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	v := reflect.ValueOf(err)
	if v.Kind() == reflect.Pointer && !v.IsNil() && v.Elem().Kind() == reflect.Struct {
		if f := v.Elem().FieldByName("ExitCode"); f.IsValid() && f.CanInt() && f.Int() > 0 {
			return int(f.Int())
		}
	}
	return 1
}
