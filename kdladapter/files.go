package kdladapter

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MaxConfigBytes bounds a whole configuration: the main file and every
// file it includes, together, may have at most this many bytes (16 MiB).
// Reading stops at the limit: a file that would pass it is not read
// further.
const MaxConfigBytes = 16 << 20

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
// bytes. It never reads more than max+1 bytes.
func readRegular(name string, max int64) ([]byte, error) {
	info, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if err := regularFile(name, info); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(name, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The file may have been replaced between the check and the open.
	opened, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := regularFile(name, opened); err != nil {
		return nil, err
	}
	if opened.Size() > max {
		return nil, fmt.Errorf("%s has %d bytes, more than the %d left: %w", name, opened.Size(), max, ErrConfigTooLarge)
	}
	// Files of /proc and the like say 0 bytes: the limit holds anyway.
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s has more than the %d bytes left: %w", name, max, ErrConfigTooLarge)
	}
	return data, nil
}

// regularFile refuses what is not a regular file, naming what it is.
func regularFile(name string, info fs.FileInfo) error {
	m := info.Mode()
	var what string
	switch {
	case m.IsRegular():
		return nil
	case m.IsDir():
		what = "a directory"
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	case m&fs.ModeCharDevice != 0:
		what = "a character device"
	case m&fs.ModeDevice != 0:
		what = "a device"
	default:
		what = "not a regular file"
		return fmt.Errorf("%s is %s: only regular files are read as configuration", name, what)
	}
	return fmt.Errorf("%s is %s, not a regular file: only regular files are read as configuration", name, what)
}
