package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Programmer delivers a Gateway's configuration to its Sentinel replicas.
type Programmer interface {
	// Target is where the Gateway's listeners bind ("" every interface)
	// and the Caddy admin configuration its config keeps (nil: off).
	Target(ctx context.Context, gw *gwv1.Gateway) (bindHost string, admin json.RawMessage, err error)
	// Program makes the replicas serve cfg and returns the Gateway's
	// addresses.
	Program(ctx context.Context, gw *gwv1.Gateway, cfg []byte) ([]gwv1.GatewayStatusAddress, error)
	// Remove stops serving a deleted Gateway.
	Remove(ctx context.Context, gw types.NamespacedName) error
}

// Replica is a Sentinel replica that serves a Gateway: its Caddy admin
// endpoint and the address clients reach the Gateway at.
type Replica struct {
	// AdminURL is the replica's Caddy admin endpoint, e.g.
	// http://10.0.0.5:2019.
	AdminURL string
	// Admin is the admin configuration the pushed config keeps (it
	// must keep the endpoint reachable).
	Admin json.RawMessage
	// BindHost is the host the listeners bind to ("" every interface).
	BindHost string
	// Address is the Gateway address reported in its status.
	Address gwv1.GatewayStatusAddress
}

// AdminProgrammer pushes a Gateway's configuration to its replica with
// Caddy's admin API (POST /load): the replica applies it at once, with a
// graceful reload (in-flight requests finish).
type AdminProgrammer struct {
	// Replica returns the replica of a Gateway (it may start one).
	Replica func(ctx context.Context, gw *gwv1.Gateway) (*Replica, error)
	// Release is called when a Gateway is deleted (may be nil).
	Release func(ctx context.Context, gw types.NamespacedName) error
	// Client sends the requests (default: a client with a 10 s timeout).
	Client *http.Client
}

var _ Programmer = (*AdminProgrammer)(nil)

// Target implements Programmer.
func (p *AdminProgrammer) Target(ctx context.Context, gw *gwv1.Gateway) (string, json.RawMessage, error) {
	r, err := p.Replica(ctx, gw)
	if err != nil {
		return "", nil, err
	}
	return r.BindHost, r.Admin, nil
}

// Program implements Programmer.
func (p *AdminProgrammer) Program(ctx context.Context, gw *gwv1.Gateway, cfg []byte) ([]gwv1.GatewayStatusAddress, error) {
	r, err := p.Replica(ctx, gw)
	if err != nil {
		return nil, err
	}
	c := p.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.AdminURL+"/load", bytes.NewReader(cfg))
	if err != nil {
		return nil, fmt.Errorf("replica %s: %w", r.AdminURL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("loading the config into replica %s: %w", r.AdminURL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("replica %s refused the config: %s: %s", r.AdminURL, resp.Status, bytes.TrimSpace(body))
	}
	return []gwv1.GatewayStatusAddress{r.Address}, nil
}

// Remove implements Programmer.
func (p *AdminProgrammer) Remove(ctx context.Context, gw types.NamespacedName) error {
	if p.Release == nil {
		return nil
	}
	return p.Release(ctx, gw)
}
