package sentinelapp

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/internal/configfile"
)

// TestAdaptRefusesSpecialConfigFile: reload and validate read the config
// file like the adapter reads includes: a device is refused at once
// (reading /dev/zero ran the process out of memory).
func TestAdaptRefusesSpecialConfigFile(t *testing.T) {
	done := make(chan error, 1)
	go func() {
		_, _, _, err := (&App{ConfigFile: "/dev/zero"}).adaptDigest()
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("error %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still reading /dev/zero after 10s")
	}
	// A directory, and a file over the adapter's size limit.
	big := filepath.Join(t.TempDir(), "big.kdl")
	f, _ := os.Create(big)
	f.Truncate(configfile.MaxBytes + 1)
	f.Close()
	for _, path := range []string{t.TempDir(), big} {
		if _, _, _, err := (&App{ConfigFile: path}).adaptDigest(); err == nil {
			t.Errorf("%s adapted", path)
		}
	}
}

// TestAdaptDigest: a reload reports the SHA-256 of the file it read, so
// that the operator can tell which revision of a mounted ConfigMap a
// replica applied.
func TestAdaptDigest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sentinel.kdl")
	os.WriteFile(path, []byte("system { }; listeners { listener \"h\" { address \"127.0.0.1:0\"; }; }\n"), 0o644)
	_, _, digest, err := (&App{ConfigFile: path}).adaptDigest()
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256([]byte("system { }; listeners { listener \"h\" { address \"127.0.0.1:0\"; }; }\n")); digest != hex.EncodeToString(sum[:]) {
		t.Errorf("digest %s", digest)
	}
}
