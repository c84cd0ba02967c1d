package safefile

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReadRegular(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	os.WriteFile(small, []byte("hello"), 0o600)
	if data, err := ReadRegular(small, 5); err != nil || string(data) != "hello" {
		t.Errorf("small: %q %v", data, err)
	}
	if _, err := ReadRegular(small, 4); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: %v", err)
	}
	// /proc files report no size: the limit holds while reading.
	if _, err := ReadRegular("/proc/self/maps", 10); !errors.Is(err, ErrTooLarge) {
		t.Errorf("/proc: %v", err)
	}
	if _, err := ReadRegular(filepath.Join(dir, "none"), 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for path, what := range map[string]string{dir: "a directory", "/dev/zero": "a character device", fifo: "a named pipe", sock: "a socket"} {
		_, err := ReadRegular(path, 10)
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), what) {
			t.Errorf("%s: %v", path, err)
		}
	}
}
