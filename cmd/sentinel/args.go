package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sentinel-proxy/sentinel/kdladapter"
)

// configCommands are the subcommands that read a configuration file.
var configCommands = map[string]bool{"run": true, "start": true, "adapt": true, "validate": true, "reload": true}

// defaultFile is the configuration file looked for in the working
// directory.
const defaultFile = "sentinel.kdl"

// rewriteArgs applies Sentinel's defaults to Caddy's command line:
//   - a --config ending in .kdl without --adapter gets --adapter kdl;
//   - without --config, the config is $SENTINEL_CONFIG (envConfig), else
//     ./sentinel.kdl, else (run, start, adapt, validate) the embedded
//     default written by writeDefault.
//   - a config that is a directory (the original's multi-file layout) is
//     replaced by an entry file that dirEntry writes for it.
func rewriteArgs(args []string, envConfig string, exists func(string) bool, writeDefault func() (string, error), dirEntry func(string) (string, error)) ([]string, error) {
	if len(args) < 2 || !configCommands[args[1]] {
		return args, nil
	}
	config, hasAdapter := "", false
	for i := 2; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--config" || a == "-config" || a == "-c":
			if i+1 < len(args) {
				config = args[i+1]
			}
		case strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "-config=") || strings.HasPrefix(a, "-c="):
			config = a[strings.IndexByte(a, '=')+1:]
		case a == "--adapter" || a == "-adapter" || a == "-a" ||
			strings.HasPrefix(a, "--adapter=") || strings.HasPrefix(a, "-adapter=") || strings.HasPrefix(a, "-a="):
			hasAdapter = true
		}
	}
	out := append([]string(nil), args...)
	if config != "" && dirEntry != nil {
		if entry, err := dirEntry(config); err != nil {
			return nil, err
		} else if entry != "" {
			for i := range out {
				switch {
				case out[i] == config && i > 0 && (out[i-1] == "--config" || out[i-1] == "-config" || out[i-1] == "-c"):
					out[i] = entry
				case strings.HasSuffix(out[i], "="+config) && strings.Contains(out[i], "config="):
					out[i] = out[i][:len(out[i])-len(config)] + entry
				case out[i] == "-c="+config:
					out[i] = "-c=" + entry
				}
			}
			config = entry
		}
	}
	if config == "" {
		switch {
		case envConfig != "":
			config = envConfig
			if dirEntry != nil {
				entry, err := dirEntry(config)
				if err != nil {
					return nil, err
				}
				if entry != "" {
					config = entry
				}
			}
		case exists(defaultFile):
			config = defaultFile
		case args[1] != "reload":
			path, err := writeDefault()
			if err != nil {
				return nil, fmt.Errorf("writing the embedded default config: %w", err)
			}
			config = path
		default:
			return out, nil
		}
		if hasAdapter {
			return nil, fmt.Errorf("--adapter needs --config (or SENTINEL_CONFIG)")
		}
		out = append(out, "--config", config)
	}
	if !hasAdapter && strings.HasSuffix(strings.ToLower(config), ".kdl") {
		out = append(out, "--adapter", "kdl")
	}
	return out, nil
}

// directoryEntry writes the entry file of a configuration directory (see
// kdladapter.DirectoryEntry; SENTINEL_ENV selects environments/<env>.kdl)
// and returns its path, or "" when path is not a directory.
func directoryEntry(path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil || !info.IsDir() {
		return "", nil
	}
	entry, err := kdladapter.DirectoryEntry(path, os.Getenv("SENTINEL_ENV"))
	if err != nil {
		return "", fmt.Errorf("configuration directory: %w", err)
	}
	return materialize(entry)
}

// fileExists reports whether path is an existing regular file.
func fileExists(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular()
}

// materialize writes content to a file named after its hash (so that
// concurrent starts agree on it) in the user's cache folder, or the
// temporary folder, and returns the path. The name ends in .kdl, which
// selects the KDL adapter.
func materialize(content []byte) (string, error) {
	sum := sha256.Sum256(content)
	name := "default-" + hex.EncodeToString(sum[:6]) + ".kdl"
	var dirs []string
	if cache, err := os.UserCacheDir(); err == nil {
		dirs = append(dirs, filepath.Join(cache, "sentinel"))
	}
	dirs = append(dirs, filepath.Join(os.TempDir(), "sentinel-config"))
	var lastErr error
	for _, dir := range dirs {
		path, err := writeAtomically(dir, name, content)
		if err == nil {
			return path, nil
		}
		lastErr = err
	}
	return "", lastErr
}

// writeAtomically writes content to dir/name through a temporary file,
// unless the file already holds it.
func writeAtomically(dir, name string, content []byte) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	if existing, err := os.ReadFile(path); err == nil && string(existing) == string(content) {
		return path, nil
	}
	tmp, err := os.CreateTemp(dir, "default-*.tmp")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}
