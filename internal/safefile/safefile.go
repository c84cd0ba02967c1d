// Package safefile reads files that a less trusted party may name or
// replace (included configuration files, the control plane's state file):
// only regular files, never more than a limit, and errors that say what
// the file is instead of quoting it.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Errors of ReadRegular, for errors.Is.
var (
	// ErrNotRegular is the error of a directory, device, FIFO or socket.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge is the error of a file over the limit.
	ErrTooLarge = errors.New("file too large")
)

// ReadRegular reads name, which must be a regular file of at most max
// bytes. It never reads more than max+1 bytes (files of /proc and the
// like report no size), and a file swapped for a FIFO between the check
// and the open neither blocks nor is read.
func ReadRegular(name string, max int64) ([]byte, error) {
	info, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if err := Regular(name, info); err != nil {
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
	if err := Regular(name, opened); err != nil {
		return nil, err
	}
	if opened.Size() > max {
		return nil, fmt.Errorf("%s has %d bytes, more than the %d allowed: %w", name, opened.Size(), max, ErrTooLarge)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s has more than the %d bytes allowed: %w", name, max, ErrTooLarge)
	}
	return data, nil
}

// Regular refuses what is not a regular file, naming what it is; the
// error wraps ErrNotRegular.
func Regular(name string, info fs.FileInfo) error {
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
		return fmt.Errorf("%s: %w: only regular files are read", name, ErrNotRegular)
	}
	return fmt.Errorf("%s is %s, %w: only regular files are read", name, what, ErrNotRegular)
}
