package sentinelapp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/sentinel-proxy/sentinel/internal/configfile"
	"github.com/sentinel-proxy/sentinel/modules/controlapi"
)

// adaptDigest reads the app's config file and adapts it with its
// adapter, registered with Caddy (caddyconfig.GetAdapter) as any other
// (the app does not import the KDL adapter, which maps onto the app's
// types), also returning the SHA-256 (hex) of the file read.
func (a *App) adaptDigest() ([]byte, []caddyconfig.Warning, string, error) {
	if a.ConfigFile == "" {
		return nil, nil, "", errors.New("this config was not loaded from a file: nothing to reload")
	}
	// Read like the files it includes: a regular file, bounded.
	limit, err := configfile.Limit(os.LookupEnv)
	if err != nil {
		return nil, nil, "", err
	}
	body, err := configfile.OSFiles{}.ReadFileMax(a.ConfigFile, limit)
	if err != nil {
		return nil, nil, "", err
	}
	return a.adaptBody(body)
}

// adaptBody adapts body as the app's config file, returning the SHA-256
// (hex) of body.
func (a *App) adaptBody(body []byte) ([]byte, []caddyconfig.Warning, string, error) {
	name := a.ConfigAdapter
	if name == "" {
		name = "kdl"
	}
	adapter := caddyconfig.GetAdapter(name)
	if adapter == nil {
		return nil, nil, "", fmt.Errorf("unknown config adapter %q", name)
	}
	sum := sha256.Sum256(body)
	out, warns, err := adapter.Adapt(body, map[string]any{"filename": a.ConfigFile})
	return out, warns, hex.EncodeToString(sum[:]), err
}

// findings splits an adapter error into its lines (file:line:col: msg).
func findings(err error) []string { return configfile.Findings(err) }

// reloadHook re-reads the config file and loads it, like SIGHUP did for
// the original.
func (a *App) reloadHook(context.Context) (controlapi.ReloadResult, error) {
	out, warns, digest, err := a.adaptDigest()
	if err != nil {
		lines := findings(err)
		a.auditReloadFailed(lines)
		return controlapi.ReloadResult{}, &HookError{Lines: lines}
	}
	if err := caddy.Load(out, true); err != nil {
		a.auditReloadFailed([]string{err.Error()})
		return controlapi.ReloadResult{}, &HookError{Lines: []string{err.Error()}}
	}
	return controlapi.ReloadResult{ConfigFile: a.ConfigFile, ConfigSHA256: digest, Warnings: warningLines(warns)}, nil
}

// validateHook adapts and provisions the config file without applying
// it, in a child process (validateFileInChild).
func (a *App) validateHook(ctx context.Context) ([]string, error) {
	if a.ConfigFile == "" {
		return nil, errors.New("this config was not loaded from a file: nothing to validate")
	}
	return a.validateFileInChild(ctx)
}

// sourceHook returns the config file's path and text, read like a
// reload reads it.
func (a *App) sourceHook() (string, []byte, error) {
	if a.ConfigFile == "" {
		return "", nil, errors.New("this config was not loaded from a file")
	}
	limit, err := configfile.Limit(os.LookupEnv)
	if err != nil {
		return "", nil, err
	}
	body, err := configfile.OSFiles{}.ReadFileMax(a.ConfigFile, limit)
	return a.ConfigFile, body, err
}

// validateSourceHook adapts and provisions content in the config file's
// place without applying it (POST /api/v1/config/validate, the admin
// UI's editor), in a child process (validateInChild): the text is an API
// client's, and provisioning it in the running process would act on it.
func (a *App) validateSourceHook(ctx context.Context, content []byte) ([]string, error) {
	if a.ConfigFile == "" {
		return nil, errors.New("this config was not loaded from a file: there is no file to validate in the place of")
	}
	return a.validateInChild(ctx, content)
}

// HookError carries the error lines of a failed reload.
type HookError struct {
	// Lines are the errors, "file:line:col: message" where known.
	Lines []string
}

// Error joins the lines.
func (e *HookError) Error() string {
	if len(e.Lines) == 1 {
		return e.Lines[0]
	}
	return fmt.Sprintf("%d errors: %v", len(e.Lines), e.Lines)
}

func warningLines(ws []caddyconfig.Warning) []string {
	out := make([]string, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.String())
	}
	return out
}
