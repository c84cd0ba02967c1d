//go:build linux

package agents

import (
	"bytes"
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/agents/sdk"
)

// inotifyNames watches dir and returns a function that stops the watch
// and lists the events seen for name ("create", "moved_to").
func inotifyNames(t *testing.T, dir, name string) func() []string {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_CREATE|syscall.IN_MOVED_TO); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	return func() []string {
		defer syscall.Close(fd)
		var seen []string
		buf := make([]byte, 64*1024)
		for {
			n, err := syscall.Read(fd, buf)
			if err != nil || n <= 0 {
				return seen
			}
			for off := 0; off+syscall.SizeofInotifyEvent <= n; {
				ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
				raw := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
				if string(bytes.TrimRight(raw, "\x00")) == name {
					switch {
					case ev.Mask&syscall.IN_CREATE != 0:
						seen = append(seen, "create")
					case ev.Mask&syscall.IN_MOVED_TO != 0:
						seen = append(seen, "moved_to")
					}
				}
				off += syscall.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}
}

// TestRegistrationSocketNeverUmaskMode: the registration socket appears
// at its path only by a rename, already 0600 (bind(2) at the path made
// it with the umask's mode until a chmod, a window in which another
// local user could connect); a stale socket at the path is replaced; an
// agent registers through it; the socket goes with the listener.
func TestRegistrationSocketNeverUmaskMode(t *testing.T) {
	old := syscall.Umask(0) // the widest mode a bind could give
	defer syscall.Umask(old)
	sock := sockPath(t, "reg.sock")
	dir := filepath.Dir(sock)
	// A stale socket from an earlier run.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	stop := inotifyNames(t, dir, "reg.sock")
	rs, err := (&RegistrationConfig{UnixSocket: sock, Tokens: []string{"tok"}}).resolve()
	if err != nil {
		t.Fatal(err)
	}
	key, ln, err := claimListener(rs, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() {
		if !released {
			reg.listeners.Delete(key)
		}
	}()
	ln.use(rs)
	if ev := stop(); len(ev) != 1 || ev[0] != "moved_to" {
		t.Fatalf("the socket appeared at its path by %v, want only a rename (moved_to)", ev)
	}
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a 0600 socket", fi.Mode())
	}
	// Nothing left of the private folder.
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left beside the socket: %v", ents)
	}
	// The socket serves.
	actx, acancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sdk.Register(actx, sock, "tok", &scripted{}, sdk.Options{AgentID: "umask"}) }()
	waitFor(t, func() bool { p := reg.livePool("umask"); return p != nil && p.connected() == 1 })
	acancel()
	<-done
	// The listener's end removes its socket.
	if _, err := reg.listeners.Delete(key); err != nil {
		t.Fatal(err)
	}
	released = true
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left after the listener closed: %v", err)
	}
	waitFor(t, func() bool { return reg.livePool("umask") == nil })
}

// TestRegistrationSocketRefusesNonSocket: a symbolic link, a regular file
// or a folder at the socket path is refused with an error naming the path
// and left alone (the symlink's target is neither followed nor touched).
func TestRegistrationSocketRefusesNonSocket(t *testing.T) {
	sock := sockPath(t, "reg.sock")
	dir := filepath.Dir(sock)
	target := filepath.Join(dir, "precious")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func() error{
		"a symbolic link": func() error { return os.Symlink(target, sock) },
		"a regular file":  func() error { return os.WriteFile(sock, nil, 0o644) },
		"a folder":        func() error { return os.Mkdir(sock, 0o755) },
		"a special file":  func() error { return syscall.Mkfifo(sock, 0o644) },
	}
	for what, mk := range cases {
		if err := mk(); err != nil {
			t.Fatal(err)
		}
		rs, err := (&RegistrationConfig{UnixSocket: sock, Tokens: []string{"tok"}}).resolve()
		if err != nil {
			t.Fatal(err)
		}
		key, _, err := claimListener(rs, zap.NewNop())
		if err == nil {
			reg.listeners.Delete(key)
			t.Fatalf("%s at the path: listening", what)
		}
		if !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), what) {
			t.Errorf("%s: error %q does not name the path and what is there", what, err)
		}
		fi, lerr := os.Lstat(sock)
		if lerr != nil || fi.Mode().Type() == fs.ModeSocket {
			t.Fatalf("%s: the path was changed: %v %v", what, fi, lerr)
		}
		if b, _ := os.ReadFile(target); string(b) != "keep" {
			t.Fatalf("%s: the symlink's target changed", what)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 2 {
			t.Fatalf("%s: left in the folder: %v", what, ents)
		}
		os.Remove(sock)
	}
}

// TestRegistrationSocketPathTooLong: a path whose folder leaves no room
// for the private folder is refused with a clear error.
func TestRegistrationSocketPathTooLong(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, strings.Repeat("d", maxUnixPath-len(base)-10))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "s.sock")
	_, err := listenPrivateUnix(path)
	if err == nil || !strings.Contains(err.Error(), "too long") || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left in the folder: %v", ents)
	}
}

// TestRegistrationSocketBadFolder: a path whose folder is missing, or
// whose parent is a file, is an error naming the path.
func TestRegistrationSocketBadFolder(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(base, "missing", "reg.sock"), filepath.Join(file, "reg.sock")} {
		if _, err := listenPrivateUnix(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: got %v", path, err)
		}
	}
}
