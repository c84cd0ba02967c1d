package registry

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/safefile"
)

// Store is the home of the state made through the control-plane API
// (targets, weights, drains, route switches, API-created upstreams), so
// that it outlives the process. The registry saves its whole state with
// every change, in change order, while it holds its write lock: a change
// is acknowledged only once Save returned nil, and undone otherwise. A
// state file is one Store; a store shared by a fleet (etcd, the
// Kubernetes API) is another.
type Store interface {
	// Load returns the saved state, or nil when nothing was saved yet.
	Load() ([]byte, error)
	// Save durably replaces the saved state with data.
	Save(data []byte) error
	// String names the store for logs and the API, e.g. "file
	// /var/lib/sentinel/state.json".
	String() string
}

// Quarantiner is a Store that can set a saved state aside when it cannot
// be used, so that the next start does not trip over it again.
type Quarantiner interface {
	// Quarantine moves the saved state aside and returns where to.
	Quarantine() (string, error)
}

// ErrUnusable is the error of a saved state that is not a regular file or
// is too large: it can only be moved aside.
var ErrUnusable = errors.New("unusable saved state")

// MaxStateBytes is the largest state a FileStore reads (64 MiB).
const MaxStateBytes = 64 << 20

// FileStore keeps the state in a JSON file, written atomically (a
// temporary file in the same folder, fsync, rename, fsync of the folder).
type FileStore struct {
	// Path is the state file.
	Path string
}

// String returns "file <path>".
func (f FileStore) String() string { return "file " + f.Path }

// Load reads the state file: nil when it does not exist. Only a regular
// file of at most MaxStateBytes is read.
func (f FileStore) Load() ([]byte, error) {
	data, err := safefile.ReadRegular(f.Path, MaxStateBytes)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case errors.Is(err, safefile.ErrNotRegular), errors.Is(err, safefile.ErrTooLarge):
		return nil, fmt.Errorf("%w: %w", ErrUnusable, err)
	}
	return data, err
}

// Save writes data to the state file atomically.
func (f FileStore) Save(data []byte) error { return WriteFile(f.Path, data) }

// Quarantine renames the state file to <path>.bad-<UTC time>.
func (f FileStore) Quarantine() (string, error) {
	to := fmt.Sprintf("%s.bad-%s", f.Path, time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.Rename(f.Path, to); err != nil {
		return "", err
	}
	return to, nil
}

// WriteFile writes data to path atomically: a temporary file in the same
// folder, fsync, rename, fsync of the folder. The file is readable by its
// owner only.
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Interface guards
var (
	_ Store       = FileStore{}
	_ Quarantiner = FileStore{}
)
