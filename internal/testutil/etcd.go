package testutil

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// EtcdEnv names an etcd binary to use instead of the one on PATH (for
// instance the one built for envtest).
const EtcdEnv = "SENTINEL_ETCD"

// Etcd is a real single-member etcd server that a test started on a free
// loopback port, with its data in a temporary folder: Stop and Start
// take it down and up again with the same data and address.
type Etcd struct {
	// Endpoint is its client URL, "http://127.0.0.1:port".
	Endpoint string

	tb      testing.TB
	bin     string
	dir     string
	client  string
	peer    string
	cmd     *exec.Cmd
	exited  chan struct{}
	logFile *os.File
	// tls, when set, makes the client URL https with client
	// certificates required; health is then asked on metrics.
	tls     *EtcdTLS
	metrics string
}

// EtcdTLS are the files of an etcd server that speaks TLS to clients
// and requires their certificates.
type EtcdTLS struct {
	// CertFile and KeyFile are the server's certificate and key.
	CertFile, KeyFile string
	// ClientCAFile is the CA of the client certificates it accepts.
	ClientCAFile string
}

// StartEtcd starts an etcd server for the test and stops it when the
// test ends. Without an etcd binary (Debian's etcd-server package, or
// $SENTINEL_ETCD), the test is skipped, or fails under CI (see Missing).
func StartEtcd(tb testing.TB) *Etcd {
	tb.Helper()
	return StartEtcdTLS(tb, nil)
}

// StartEtcdTLS is StartEtcd with TLS to clients when t is not nil: the
// Endpoint is then "https://127.0.0.1:port" and clients must present a
// certificate of t.ClientCAFile.
func StartEtcdTLS(tb testing.TB, t *EtcdTLS) *Etcd {
	tb.Helper()
	bin := os.Getenv(EtcdEnv)
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("etcd"); err != nil {
			Missing(tb, "no etcd binary (apt-get install etcd-server, or set %s)", EtcdEnv)
			return nil
		}
	}
	// tmpfs where there is one: etcd syncs every write.
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "sentinel-etcd-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	e := &Etcd{tb: tb, bin: bin, dir: dir, client: FreeAddr(tb), peer: FreeAddr(tb), tls: t}
	e.Endpoint = "http://" + e.client
	if t != nil {
		e.Endpoint = "https://" + e.client
		e.metrics = FreeAddr(tb)
	}
	e.Start()
	tb.Cleanup(e.Stop)
	return e
}

// Start starts the server (again) and waits until it answers.
func (e *Etcd) Start() {
	e.tb.Helper()
	if e.cmd != nil {
		return
	}
	log, err := os.OpenFile(filepath.Join(e.dir, "etcd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		e.tb.Fatal(err)
	}
	args := []string{
		"--name", "test",
		"--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", e.Endpoint,
		"--advertise-client-urls", e.Endpoint,
		"--listen-peer-urls", "http://" + e.peer,
		"--initial-advertise-peer-urls", "http://" + e.peer,
		"--initial-cluster", "test=http://" + e.peer,
	}
	if e.tls != nil {
		args = append(args, "--cert-file", e.tls.CertFile, "--key-file", e.tls.KeyFile,
			"--trusted-ca-file", e.tls.ClientCAFile, "--client-cert-auth",
			"--listen-metrics-urls", "http://"+e.metrics)
	}
	cmd := exec.Command(e.bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		e.tb.Fatalf("starting etcd: %v", err)
	}
	e.cmd, e.logFile, e.exited = cmd, log, make(chan struct{})
	go func() { cmd.Wait(); close(e.exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := e.ready(); err == nil {
			return
		} else if time.Now().After(deadline) {
			e.Stop()
			data, _ := os.ReadFile(filepath.Join(e.dir, "etcd.log"))
			e.tb.Fatalf("etcd did not become ready: %v\n%s", err, tail(data, 2000))
		}
		select {
		case <-e.exited:
			data, _ := os.ReadFile(filepath.Join(e.dir, "etcd.log"))
			e.cmd = nil
			e.tb.Fatalf("etcd exited at start:\n%s", tail(data, 2000))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ready asks the server's health endpoint.
func (e *Etcd) ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	addr := e.client
	if e.metrics != "" {
		addr = e.metrics
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "GET /health HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
	buf := make([]byte, 512)
	n, _ := c.Read(buf)
	if n < 12 || string(buf[9:12]) != "200" {
		return fmt.Errorf("health: %q", buf[:n])
	}
	return nil
}

// Stop kills the server (as a crash would) and waits for it to exit.
func (e *Etcd) Stop() {
	if e.cmd == nil {
		return
	}
	e.cmd.Process.Kill()
	<-e.exited
	e.logFile.Close()
	e.cmd = nil
}

// tail returns the end of data.
func tail(data []byte, n int) []byte {
	if len(data) > n {
		return data[len(data)-n:]
	}
	return data
}
