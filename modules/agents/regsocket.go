package agents

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
)

// maxUnixPath is the longest Unix socket path bind(2) takes on Linux
// (sun_path is 108 bytes with its NUL).
const maxUnixPath = 107

// privateUnixListener is a Unix socket listener at a path that is never
// reachable with another mode than 0600: the socket is bound in a fresh
// 0700 folder beside the path (same file system), set to 0600 there, and
// renamed into place; rename(2) replaces a stale socket at the path
// without following a symlink. A path naming something else than a socket
// (a symlink, a file, a folder) is refused and left alone.
type privateUnixListener struct {
	*net.UnixListener
	path string
	// made is the socket as renamed into place: Close removes the path
	// only while it is still this socket (another process may have put
	// its own there since).
	made os.FileInfo
}

// listenPrivateUnix opens a privateUnixListener at path.
func listenPrivateUnix(path string) (*privateUnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket (%s): remove it or choose another path", path, describeType(fi.Mode()))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("checking %s: %w", path, err)
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".s")
	if err != nil {
		return nil, fmt.Errorf("private folder beside %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o700); err != nil { // MkdirTemp makes it 0700 minus the umask
		return nil, fmt.Errorf("private folder beside %s: %w", path, err)
	}
	tmp := filepath.Join(dir, "s")
	if len(tmp) > maxUnixPath {
		return nil, fmt.Errorf("%s: its folder's path is too long: the socket is created in a private folder beside it, %s (%d bytes, a Unix socket path has at most %d)", path, tmp, len(tmp), maxUnixPath)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, err
	}
	// The socket is renamed away from tmp: its removal at Close is ours.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, err
	}
	made, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return &privateUnixListener{UnixListener: ln, path: path, made: made}, nil
}

// Close closes the listener and removes its socket if the path still
// names it.
func (l *privateUnixListener) Close() error {
	err := l.UnixListener.Close()
	if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.made) {
		_ = os.Remove(l.path)
	}
	return err
}

// describeType names the type of a file mode for an error.
func describeType(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a folder"
	case m.IsRegular():
		return "a regular file"
	default:
		return "a special file"
	}
}
