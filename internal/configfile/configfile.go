// Package configfile reads configuration files: only regular files, never
// more than the size limit of a whole configuration, and the error of a
// configuration that cannot be adapted. The KDL adapter reads the files a
// configuration includes with it, and the sentinel app its config file at
// a reload, without the app importing the adapter (the adapter maps onto
// the app's types).
package configfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sentinel-proxy/sentinel/internal/safefile"
)

// MaxBytes bounds a whole configuration: the main file and every file it
// includes, together, may have at most this many bytes (16 MiB). Reading
// stops at the limit: a file that would pass it is not read further.
const MaxBytes = 16 << 20

// MaxEnv is the environment variable that raises (or lowers) the limit of
// a whole configuration, in MiB (1 to 4096), for configurations of tens
// of thousands of routes.
const MaxEnv = "SENTINEL_MAX_CONFIG_MIB"

// Limit returns the size limit of a whole configuration: MaxBytes, or
// $SENTINEL_MAX_CONFIG_MIB MiB when it is set.
func Limit(lookupEnv func(string) (string, bool)) (int64, error) {
	v, ok := lookupEnv(MaxEnv)
	if !ok || v == "" {
		return MaxBytes, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || n > 4096 {
		return 0, fmt.Errorf("%s=%q: give a whole number of MiB from 1 to 4096", MaxEnv, v)
	}
	return n << 20, nil
}

// Files gives an adapter the files a configuration includes.
type Files interface {
	// ReadFile reads a whole file.
	ReadFile(name string) ([]byte, error)
	// Glob lists the files matching a pattern (filepath.Glob syntax).
	Glob(pattern string) ([]string, error)
}

// BoundedFiles is implemented by Files that can stop reading a file at a
// limit. The adapter passes the bytes left of the configuration's limit,
// so that an included file never makes it read more than the whole
// configuration may have. A file larger than max gives an error wrapping
// ErrTooLarge.
type BoundedFiles interface {
	Files
	// ReadFileMax reads a whole file of at most max bytes.
	ReadFileMax(name string, max int64) ([]byte, error)
}

// ErrTooLarge is wrapped by the errors of files larger than the bytes a
// configuration has left (see MaxBytes).
var ErrTooLarge = errors.New("the configuration is larger than its limit")

// OSFiles reads files from the operating system. It reads only regular
// files (devices, named pipes, sockets and directories are refused: a
// configuration that includes /dev/zero or a FIFO fails at once instead
// of reading forever) and at most MaxBytes of each.
type OSFiles struct{}

// Interface guard.
var _ BoundedFiles = OSFiles{}

// ReadFile reads a regular file of at most MaxBytes.
func (OSFiles) ReadFile(name string) ([]byte, error) { return readRegular(name, MaxBytes) }

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
// bytes (safefile.ReadRegular); a file over it is ErrTooLarge.
func readRegular(name string, max int64) ([]byte, error) {
	data, err := safefile.ReadRegular(name, max)
	if errors.Is(err, safefile.ErrTooLarge) {
		return nil, fmt.Errorf("%s has more than the %d bytes left: %w", name, max, ErrTooLarge)
	}
	return data, err
}

// Error is the error of a configuration that cannot be adapted. It lists
// every problem found, each as "file:line:col: message".
type Error struct {
	// Findings are the problems, in source order.
	Findings []string
}

// Error joins the findings, one per line.
func (e *Error) Error() string {
	if len(e.Findings) == 1 {
		return e.Findings[0]
	}
	return fmt.Sprintf("%d errors in the configuration:\n%s", len(e.Findings), strings.Join(e.Findings, "\n"))
}

// Findings are the lines of err: the findings of an *Error it wraps, else
// its message.
func Findings(err error) []string {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Findings
	}
	return []string{err.Error()}
}
