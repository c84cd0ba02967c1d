package sim

import (
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// podNet gives each simulated Pod an address of its own, as a cluster
// does: an address 10.77.<1+n/250>.<1+n%250> added to lo, on which the
// Pod's container ports (3000, 3001, 8443) are forwarded to its echo
// server's local ports. Endpoints written by hand from the Pods' IPs and
// container ports (HTTPRouteServiceTypes) then reach the right Pod. When
// addresses cannot be added (no root), Pods share Cluster.IP.
type podNet struct {
	mu       sync.Mutex
	n        int
	disabled bool
	lns      map[types.NamespacedName][]net.Listener
}

// podIP returns a new address for a Pod, added to lo ("" when that is
// not possible).
func (p *podNet) podIP() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.disabled {
		return "", nil
	}
	ip := net.IPv4(10, 77, byte(1+p.n/250), byte(1+p.n%250)).String()
	p.n++
	if out, err := exec.Command("ip", "addr", "add", ip+"/32", "dev", "lo").CombinedOutput(); err != nil {
		p.disabled = true
		return "", fmt.Errorf("adding %s to lo (Pods share one address): %v: %s", ip, err, out)
	}
	return ip, nil
}

// forward listens on ip:<container port> for each of ports (container
// port: local port) and copies each connection to 127.0.0.1:<local port>.
func (p *podNet) forward(key types.NamespacedName, ip string, ports map[string]int) error {
	for cp, lp := range ports {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, cp))
		if err != nil {
			p.close(key)
			return fmt.Errorf("pod %s: listening on %s:%s: %w", key, ip, cp, err)
		}
		p.mu.Lock()
		if p.lns == nil {
			p.lns = map[types.NamespacedName][]net.Listener{}
		}
		p.lns[key] = append(p.lns[key], ln)
		p.mu.Unlock()
		go serveForward(ln, net.JoinHostPort("127.0.0.1", strconv.Itoa(lp)))
	}
	return nil
}

// close stops the forwarders of a Pod.
func (p *podNet) close(key types.NamespacedName) {
	p.mu.Lock()
	lns := p.lns[key]
	delete(p.lns, key)
	p.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
}

func serveForward(ln net.Listener, to string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", to)
			if err != nil {
				return
			}
			defer u.Close()
			done := make(chan struct{})
			go func() {
				_, _ = io.Copy(u, c)
				if tc, ok := u.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				close(done)
			}()
			_, _ = io.Copy(c, u)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			<-done
		}()
	}
}
