package kdladapter

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sentinel-proxy/sentinel/internal/safefile"
)

// MaxConfigBytes bounds a whole configuration: the main file and every
// file it includes, together, may have at most this many bytes (16 MiB).
// Reading stops at the limit: a file that would pass it is not read
// further.
const MaxConfigBytes = 16 << 20

// MaxConfigEnv is the environment variable that raises (or lowers) the
// limit of a whole configuration, in MiB (1 to 4096), for configurations
// of tens of thousands of routes.
const MaxConfigEnv = "SENTINEL_MAX_CONFIG_MIB"

// ConfigLimit returns the size limit of a whole configuration:
// MaxConfigBytes, or $SENTINEL_MAX_CONFIG_MIB MiB when it is set.
func ConfigLimit(lookupEnv func(string) (string, bool)) (int64, error) {
	v, ok := lookupEnv(MaxConfigEnv)
	if !ok || v == "" {
		return MaxConfigBytes, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || n > 4096 {
		return 0, fmt.Errorf("%s=%q: give a whole number of MiB from 1 to 4096", MaxConfigEnv, v)
	}
	return n << 20, nil
}

// Files gives the adapter the files a configuration includes.
type Files interface {
	// ReadFile reads a whole file.
	ReadFile(name string) ([]byte, error)
	// Glob lists the files matching a pattern (filepath.Glob syntax).
	Glob(pattern string) ([]string, error)
}

// BoundedFiles is implemented by Files that can stop reading a file at a
// limit. The adapter passes the bytes left of MaxConfigBytes, so that an
// included file never makes it read more than the whole configuration
// may have. A file larger than max gives an error wrapping
// ErrConfigTooLarge.
type BoundedFiles interface {
	Files
	// ReadFileMax reads a whole file of at most max bytes.
	ReadFileMax(name string, max int64) ([]byte, error)
}

// ErrConfigTooLarge is wrapped by the errors of files larger than the
// bytes a configuration has left (see MaxConfigBytes).
var ErrConfigTooLarge = errors.New("the configuration is larger than its limit")

// OSFiles reads files from the operating system. It reads only regular
// files (devices, named pipes, sockets and directories are refused: a
// configuration that includes /dev/zero or a FIFO fails at once instead
// of reading forever) and at most MaxConfigBytes of each.
type OSFiles struct{}

// Interface guard.
var _ BoundedFiles = OSFiles{}

// ReadFile reads a regular file of at most MaxConfigBytes.
func (OSFiles) ReadFile(name string) ([]byte, error) { return readRegular(name, MaxConfigBytes) }

// ReadFileMax reads a regular file of at most max bytes.
func (OSFiles) ReadFileMax(name string, max int64) ([]byte, error) { return readRegular(name, max) }

// Glob matches with filepath.Glob. A pattern with wildcards skips the
// directories it matches; a plain path is returned as it is, so that
// reading it tells what it is.
func (OSFiles) Glob(pattern string) ([]string, error) {
	matches, err := filepath.Glob(pattern)
	if !hasMeta(pattern) {
		return matches, err
	}
	out := matches[:0]
	for _, m := range matches {
		if info, err := os.Stat(m); err == nil && !info.IsDir() {
			out = append(out, m)
		}
	}
	return out, err
}

// hasMeta reports whether a glob pattern has wildcards.
func hasMeta(pattern string) bool {
	return strings.ContainsAny(pattern, `*?[\`)
}

// readRegular reads name, which must be a regular file of at most max
// bytes (safefile.ReadRegular); a file over it is ErrConfigTooLarge.
func readRegular(name string, max int64) ([]byte, error) {
	data, err := safefile.ReadRegular(name, max)
	if errors.Is(err, safefile.ErrTooLarge) {
		return nil, fmt.Errorf("%s has more than the %d bytes left: %w", name, max, ErrConfigTooLarge)
	}
	return data, err
}
