package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/spf13/cobra"

	"github.com/sentinel-proxy/sentinel/kdladapter"
)

// embeddedLabel names the embedded default config in messages.
const embeddedLabel = "embedded default config"

// cliEnv is what Sentinel's own commands need to know about how the
// command line was rewritten, and where they read and write.
type cliEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// defaultPath is the file the embedded default config was written to
	// when no configuration was given ("" otherwise).
	defaultPath string
	// dirs maps the entry files written for configuration directories to
	// the directories.
	dirs map[string]string
}

// label names a config in messages: its path, "embedded default config",
// or the configuration directory it was made from.
func (e *cliEnv) label(config string) string {
	switch {
	case config == "-":
		return "standard input"
	case e.defaultPath != "" && config == e.defaultPath:
		return embeddedLabel + " (" + config + ")"
	case e.dirs[config] != "":
		return "configuration directory " + e.dirs[config]
	}
	return config
}

// adapted is the outcome of adapting one configuration.
type adapted struct {
	json []byte
	// out is the KDL adapter's output not yet written (adapt without
	// --pretty or --validate): it is written to the standard output
	// without the whole JSON being built (json is nil).
	out *kdladapter.Output
	// undoLimit restores the memory limit adaptConfig set for a batch
	// command (limitBatchMemory).
	undoLimit func()
	errs      []finding
	warnings  []finding
	src       *sources
}

// adaptConfig reads and adapts config with the named adapter ("" or
// "json": the file is Caddy JSON already). Problems with reading are
// returned as an error; problems with the content as findings. With
// stream set, the KDL adapter's output is kept as an Output (a.out), to
// be written without being built whole. With batch set (adapt, validate)
// the process's soft memory limit is set (limitBatchMemory: for the
// configuration's size when stream is set too) until a.undoLimit is
// called.
func (e *cliEnv) adaptConfig(config, adapterName string, stream, batch bool) (*adapted, error) {
	if config == "" {
		return nil, errors.New("no configuration given: use --config <path> (or set SENTINEL_CONFIG)")
	}
	var input []byte
	var err error
	if config == "-" {
		input, err = io.ReadAll(e.stdin)
	} else {
		input, err = os.ReadFile(config)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the configuration: %w", err)
	}
	a := &adapted{src: &sources{}, undoLimit: func() {}}
	if batch {
		a.undoLimit = limitBatchMemory(os.LookupEnv, len(input), stream)
		releaseExecPagesForBatch(os.LookupEnv, len(input))
	}
	if config == "-" {
		a.src.stdin = input
	}
	if adapterName == "" || adapterName == "json" {
		a.json = input
		return a, nil
	}
	if stream && adapterName == "kdl" {
		// As the registered kdladapter.Adapter adapts it.
		out, warns, err := kdladapter.AdaptOutput(config, input, os.LookupEnv, kdladapter.OSFiles{})
		a.warnings = warningsOf(warns)
		if err != nil {
			a.errs = findingsOf(err)
		}
		a.out = out
		return a, nil
	}
	adapter := caddyconfig.GetAdapter(adapterName)
	if adapter == nil {
		return nil, fmt.Errorf("unknown config adapter %q", adapterName)
	}
	out, warns, err := adapter.Adapt(input, map[string]any{"filename": config})
	a.warnings = warningsOf(warns)
	if err != nil {
		a.errs = findingsOf(err)
		return a, nil
	}
	a.json = out
	return a, nil
}

// validateJSON provisions an adapted config without running it, as
// Caddy's validate does.
func validateJSON(input []byte) error {
	var cfg *caddy.Config
	if err := caddy.StrictUnmarshalJSON(withoutMetaFields(input), &cfg); err != nil {
		return fmt.Errorf("decoding the adapted config: %w", err)
	}
	return caddy.Validate(cfg)
}

// withoutMetaFields is caddy.RemoveMetaFields, skipped when the config
// has no "@id" (the KDL adapter writes none): its regular expression
// takes about half a second of CPU on the 8 MB of 10,000 routes.
func withoutMetaFields(input []byte) []byte {
	if !bytes.Contains(input, []byte(`"@id"`)) {
		return input
	}
	return caddy.RemoveMetaFields(input)
}

// checkFlags are the flags adapt and validate share.
type checkFlags struct {
	config, adapter string
	asJSON          bool
}

func readCheckFlags(cmd *cobra.Command) (checkFlags, error) {
	fl := cmd.Flags()
	var f checkFlags
	f.config, _ = fl.GetString("config")
	f.adapter, _ = fl.GetString("adapter")
	f.asJSON, _ = fl.GetBool("json")
	envfiles, _ := fl.GetStringSlice("envfile")
	for _, path := range envfiles {
		if err := loadEnvFile(path); err != nil {
			return f, err
		}
	}
	return f, nil
}

// fail is the error of a check that printed its findings already.
func fail(what string) error {
	return &exitError{code: 1, err: errors.New(what)}
}

// adapt prints the Caddy JSON of a configuration, or its errors.
func (e *cliEnv) adapt(cmd *cobra.Command) error {
	cmd.SilenceErrors = true
	f, err := readCheckFlags(cmd)
	if err != nil {
		fmt.Fprintln(e.stderr, "sentinel adapt:", err)
		return fail(err.Error())
	}
	pretty, _ := cmd.Flags().GetBool("pretty")
	validate, _ := cmd.Flags().GetBool("validate")
	label := e.label(f.config)
	// Without --pretty or --validate the output is written as the
	// adapter makes it, never whole: 85 MB less at the peak for 100,000
	// routes.
	a, err := e.adaptConfig(f.config, f.adapter, !pretty && !validate, true)
	if err != nil {
		fmt.Fprintf(e.stderr, "sentinel adapt: %s: %v\n", label, err)
		return fail(err.Error())
	}
	defer a.undoLimit()
	if !e.report(a, f, label, validate, e.stderr, "") {
		return fail("adaptation failed")
	}
	if a.out != nil {
		if _, err := a.out.WriteTo(e.stdout); err != nil {
			fmt.Fprintf(e.stderr, "sentinel adapt: writing the output: %v\n", err)
			return fail(err.Error())
		}
		io.WriteString(e.stdout, "\n")
		return nil
	}
	out := a.json
	if pretty {
		var buf bytes.Buffer
		if err := json.Indent(&buf, out, "", "\t"); err == nil {
			out = buf.Bytes()
		}
	}
	// Written as it is: a string of it (or appending the newline) would
	// copy the 84 MB of 100,000 routes.
	e.stdout.Write(out)
	io.WriteString(e.stdout, "\n")
	return nil
}

// report provisions the adapted config when provision is set (and it
// adapted without errors), then reports its findings: as one JSON
// document on jsonOut with --json, else as file:line:col lines with a
// caret on stderr, closed by a count of the errors after prefix. It
// reports whether the config is free of errors.
func (e *cliEnv) report(a *adapted, f checkFlags, label string, provision bool, jsonOut io.Writer, prefix string) bool {
	if len(a.errs) == 0 && provision {
		if err := validateJSON(a.json); err != nil {
			a.errs = []finding{{File: f.config, Message: err.Error()}}
		}
	}
	if f.asJSON {
		writeJSON(jsonOut, report{Config: label, Valid: len(a.errs) == 0, Errors: a.errs, Warnings: a.warnings})
	} else {
		printFindings(e.stderr, a.src, "warning: ", a.warnings)
		printFindings(e.stderr, a.src, "", a.errs)
		if len(a.errs) > 0 {
			fmt.Fprintf(e.stderr, "%s%s: %s\n", prefix, label, plural(len(a.errs), "error"))
		}
	}
	return len(a.errs) == 0
}

// validate adapts and provisions a configuration and says which one was
// checked.
func (e *cliEnv) validate(cmd *cobra.Command) error {
	cmd.SilenceErrors = true
	f, err := readCheckFlags(cmd)
	if err != nil {
		fmt.Fprintln(e.stderr, "sentinel validate:", err)
		return fail(err.Error())
	}
	label := e.label(f.config)
	a, err := e.adaptConfig(f.config, f.adapter, false, true)
	if err != nil {
		if f.asJSON {
			writeJSON(e.stdout, report{Config: label, Errors: []finding{{File: f.config, Message: err.Error()}}})
		} else {
			fmt.Fprintf(e.stderr, "sentinel validate: %s: %v\n", label, err)
		}
		return fail(err.Error())
	}
	defer a.undoLimit()
	if !e.report(a, f, label, true, e.stdout, "Invalid configuration: ") {
		return fail("invalid configuration")
	}
	if !f.asJSON {
		fmt.Fprintf(e.stdout, "Valid configuration: %s\n", label)
	}
	return nil
}

// precheck adapts a KDL config before `run` hands it to Caddy, so that
// its errors are printed as validate prints them (file:line:col, the
// line, a caret) rather than as one log line. The environment files are
// loaded first, as run would (neither overwrites a variable that is set).
// With --resume the saved config may be used instead: no check.
func (e *cliEnv) precheck(cmd *cobra.Command) error {
	fl := cmd.Flags()
	config, _ := fl.GetString("config")
	adapter, _ := fl.GetString("adapter")
	resume, _ := fl.GetBool("resume")
	if config == "" || adapter != "kdl" || resume {
		return nil
	}
	envfiles, _ := fl.GetStringSlice("envfile")
	for _, path := range envfiles {
		if err := loadEnvFile(path); err != nil {
			return nil // run reports it
		}
	}
	a, err := e.adaptConfig(config, adapter, false, false)
	if err != nil || len(a.errs) == 0 {
		return nil // run reports a file it cannot read
	}
	cmd.SilenceErrors = true
	printFindings(e.stderr, a.src, "", a.errs)
	fmt.Fprintf(e.stderr, "sentinel run: %s: %s; not started\n", e.label(config), plural(len(a.errs), "error"))
	return fail("invalid configuration")
}

// plural returns "1 error", "2 errors".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// loadEnvFile sets the KEY=VALUE lines of an environment file that are
// not set already, as Caddy's --envfile does: blank lines and # comments
// are skipped, "export " before a key is allowed, and a value may be in
// single or double quotes.
func loadEnvFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading environment file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		key = strings.TrimPrefix(key, "export ")
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			return fmt.Errorf("%s:%d: expected KEY=VALUE", path, n)
		}
		if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[len(val)-1] == val[0] {
			val = val[1 : len(val)-1]
		} else if i := strings.Index(val, " #"); i >= 0 {
			val = strings.TrimSpace(val[:i])
		}
		if _, set := os.LookupEnv(key); !set {
			if err := os.Setenv(key, val); err != nil {
				return fmt.Errorf("%s:%d: %w", path, n, err)
			}
		}
	}
	return sc.Err()
}
