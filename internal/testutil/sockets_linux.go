package testutil

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// CheckReleased fails the test if a TCP socket of this process is still
// bound to addr ("host:port") after releaseWait: what a stopped server
// must not keep. It looks at this process's own sockets (/proc/self/fd
// and /proc/net/tcp*), not at whether the port binds, which another test
// process may have taken in the meantime.
func CheckReleased(tb testing.TB, addr string) {
	tb.Helper()
	checkReleased(tb, addr, releaseWait)
}

// checkReleased is CheckReleased waiting at most wait.
func checkReleased(tb testing.TB, addr string, wait time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(wait)
	for {
		held, err := heldSockets(addr)
		if err != nil {
			tb.Fatalf("sockets of this process on %s: %v", addr, err)
		}
		if len(held) == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Errorf("%s stayed bound by this process for %s: %s", addr, wait, strings.Join(held, ", "))
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// heldSockets lists this process's TCP sockets bound to addr (or to its
// port on a wildcard address), each as "local state".
func heldSockets(addr string) ([]string, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("port %q: %w", portStr, err)
	}
	ip := net.ParseIP(host)
	mine, err := ownSocketInodes()
	if err != nil {
		return nil, err
	}
	var held []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if os.IsNotExist(err) {
			continue // no IPv6 here
		}
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || !mine[fields[9]] {
				continue
			}
			lip, lport, err := parseProcAddr(fields[1])
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %w", table, err)
			}
			if lport == port && (ip == nil || lip.Equal(ip) || lip.IsUnspecified()) {
				held = append(held, net.JoinHostPort(lip.String(), strconv.Itoa(lport))+" state "+fields[3])
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", table, err)
		}
	}
	return held, nil
}

// ownSocketInodes is the set of inode numbers of this process's open
// sockets.
func ownSocketInodes() (map[string]bool, error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil {
			continue // closed since the listing
		}
		if ino, ok := strings.CutPrefix(link, "socket:["); ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	return inodes, nil
}

// parseProcAddr decodes a local_address of /proc/net/tcp{,6}: the address
// as 32-bit words in host byte order, in hex, then ":" and the port in hex.
func parseProcAddr(s string) (net.IP, int, error) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return nil, 0, fmt.Errorf("address %q has no port", s)
	}
	raw, err := hex.DecodeString(ipHex)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return nil, 0, fmt.Errorf("address %q: not 4 or 16 bytes in hex", s)
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(ip[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return nil, 0, fmt.Errorf("address %q: port: %w", s, err)
	}
	return ip, int(port), nil
}
