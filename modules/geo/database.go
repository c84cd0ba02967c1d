package geo

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/oschwald/maxminddb-golang/v2"
	"go.uber.org/zap"
)

// databases holds the open databases by absolute path, shared by every
// handler (of every loaded config) that reads the same file.
var databases = caddy.NewUsagePool()

// DefaultReloadInterval is how often a database file is checked for
// changes.
const DefaultReloadInterval = time.Minute

// database is one open MaxMind database, reloaded when its file changes.
//
// The file is read into memory (not memory-mapped), so that a file
// rewritten in place cannot change the data under a lookup; a reload
// swaps in a new reader and leaves the old one to the garbage collector
// once the lookups that use it are done.
type database struct {
	path   string
	reader atomic.Pointer[maxminddb.Reader]
	logger *zap.Logger

	mu      sync.Mutex // serialises reloads
	modTime time.Time  // of the file loaded
	size    int64      // of the file loaded
	bad     fileStamp  // of the file that last failed to load

	stop chan struct{}
	done chan struct{}
}

// openDatabase returns the shared database of path (opening it the first
// time), reloaded every interval when its file changed (never when
// interval is negative; the first handler to open a path sets its
// interval).
func openDatabase(path string, interval time.Duration, logger *zap.Logger) (*database, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("database %q: %w", path, err)
	}
	v, loaded, err := databases.LoadOrNew(abs, func() (caddy.Destructor, error) {
		db := &database{path: abs, logger: logger, stop: make(chan struct{}), done: make(chan struct{})}
		if err := db.load(); err != nil {
			return nil, err
		}
		if interval == 0 {
			interval = DefaultReloadInterval
		}
		if interval > 0 {
			go db.watch(interval)
		} else {
			close(db.done)
		}
		return db, nil
	})
	if err != nil {
		return nil, err
	}
	db := v.(*database)
	if loaded {
		// A config loaded again after the file changed gets the new
		// data at once; a file gone bad keeps the old data.
		if _, err := db.reload(); err != nil {
			logger.Warn("GeoIP database not reloaded; still using the data loaded before", zap.String("database", abs), zap.Error(err))
		}
	}
	return db, nil
}

// release gives back a handler's use of the database.
func (db *database) release() error {
	_, err := databases.Delete(db.path)
	return err
}

// Destruct stops the file watch (the last user is gone).
func (db *database) Destruct() error {
	close(db.stop)
	<-db.done
	return nil
}

// load reads and opens the file.
func (db *database) load() error {
	fi, err := os.Stat(db.path)
	if err != nil {
		return openError(db.path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("GeoIP database %q: not a regular file", db.path)
	}
	data, err := os.ReadFile(db.path)
	if err != nil {
		return openError(db.path, err)
	}
	r, err := maxminddb.OpenBytes(data)
	if err != nil {
		// Not the reader's message: decoding errors may quote what the
		// file holds, and the path may be the wrong file.
		return fmt.Errorf("GeoIP database %q: not a valid MaxMind DB (.mmdb) file", db.path)
	}
	db.reader.Store(r)
	db.modTime, db.size = fi.ModTime(), fi.Size()
	return nil
}

// openError describes a file that cannot be read.
func openError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("GeoIP database %q: no such file", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("GeoIP database %q: permission denied", path)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("GeoIP database %q: %w", path, err)
}

// fileStamp identifies a version of a file.
type fileStamp struct {
	modTime time.Time
	size    int64
	missing bool
}

// reload loads the file again when its modification time or size
// changed, and reports whether it did. A version of the file that failed
// to load is reported once, not at every check.
func (db *database) reload() (bool, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	fi, err := os.Stat(db.path)
	if err != nil {
		if db.bad.missing {
			return false, nil
		}
		db.bad = fileStamp{missing: true}
		return false, openError(db.path, err)
	}
	stamp := fileStamp{modTime: fi.ModTime(), size: fi.Size()}
	if stamp.modTime.Equal(db.modTime) && stamp.size == db.size || stamp == db.bad {
		return false, nil
	}
	if err := db.load(); err != nil {
		db.bad = stamp
		return false, err
	}
	db.bad = fileStamp{}
	return true, nil
}

// watch reloads the file when it changes, until Destruct.
func (db *database) watch(interval time.Duration) {
	defer close(db.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-t.C:
			switch ok, err := db.reload(); {
			case err != nil:
				db.logger.Warn("GeoIP database not reloaded; still using the data loaded before", zap.String("database", db.path), zap.Error(err))
			case ok:
				db.logger.Info("GeoIP database reloaded", zap.String("database", db.path))
			}
		}
	}
}

// errNotFound is a lookup of an address the database has no country for.
var errNotFound = errors.New("address not in the database")

// country looks ip up: the ISO code of its country, else of the country
// where its network is registered.
func (db *database) country(ip netip.Addr) (string, error) {
	res := db.reader.Load().Lookup(ip.Unmap())
	if err := res.Err(); err != nil {
		return "", err
	}
	if !res.Found() {
		return "", errNotFound
	}
	var code string
	if err := res.DecodePath(&code, "country", "iso_code"); err != nil {
		return "", err
	}
	if code != "" {
		return code, nil
	}
	if err := res.DecodePath(&code, "registered_country", "iso_code"); err != nil {
		return "", err
	}
	if code != "" {
		return code, nil
	}
	return "", errNotFound
}

// Interface guards
var _ caddy.Destructor = (*database)(nil)
