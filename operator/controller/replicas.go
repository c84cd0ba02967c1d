package controller

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sentinel-proxy/sentinel/operator/api/v1alpha1"
)

// Replica is one replica's control API.
type Replica struct {
	// Address is host:port of its admin-api.
	Address string
	// Pod is its pod's name, when the EndpointSlice says.
	Pod string
}

// Reasons a replica did not apply a revision.
const (
	ReasonUnreachable  = "Unreachable"
	ReasonReloadFailed = "ReloadFailed"
	ReasonStale        = "Stale"
)

// ReplicaResult is the outcome of one replica's reload.
type ReplicaResult struct {
	Replica
	// Reason is empty when the replica applied the revision.
	Reason, Message string
}

// ReplicaClient reloads replicas through their control API
// (POST /api/v1/config/reload, over TLS) and remembers what each applied.
type ReplicaClient struct {
	// Timeout bounds one reload (10 s when zero).
	Timeout time.Duration

	applied appliedRevisions
}

// Auth is how the operator reaches a proxy's control API: its bearer
// token and the TLS that checks the replicas' certificate.
type Auth struct {
	Token string
	TLS   *tls.Config
}

// adminEndpoints reads the replicas out of an ops Service's
// EndpointSlices: every endpoint not terminating, on the admin-api port.
func adminEndpoints(items []discoveryv1.EndpointSlice) []Replica {
	seen := map[string]Replica{}
	for _, sl := range items {
		port := int32(0)
		for _, p := range sl.Ports {
			if p.Name != nil && *p.Name == "admin-api" && p.Port != nil {
				port = *p.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Terminating != nil && *ep.Conditions.Terminating {
				continue
			}
			for _, a := range ep.Addresses {
				rep := Replica{Address: net.JoinHostPort(a, strconv.Itoa(int(port)))}
				if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
					rep.Pod = ep.TargetRef.Name
				}
				seen[rep.Address] = rep
			}
		}
	}
	out := make([]Replica, 0, len(seen))
	for _, r := range seen {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Replica) int { return strings.Compare(a.Address, b.Address) })
	return out
}

// Reload brings every replica of proxy to revision: a replica that
// applied it already is left alone; the others are reloaded (in
// parallel) and the SHA-256 of the file each read is compared with the
// revision.
func (c *ReplicaClient) Reload(ctx context.Context, proxy types.NamespacedName, reps []Replica, auth Auth, revision string) []ReplicaResult {
	out := make([]ReplicaResult, len(reps))
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	tr := &http.Transport{TLSClientConfig: auth.TLS, TLSHandshakeTimeout: timeout, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: timeout}
	var wg sync.WaitGroup
	for i, rep := range reps {
		out[i].Replica = rep
		key := replicaKey{proxy, rep.Address}
		if c.applied.get(key) == revision {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].Reason, out[i].Message = reload(ctx, hc, rep.Address, auth.Token, revision)
			if out[i].Reason == "" {
				c.applied.set(key, revision)
			}
		}()
	}
	wg.Wait()
	c.applied.keep(proxy, reps)
	return out
}

// Forget drops what the replicas of proxy applied (the proxy is gone).
func (c *ReplicaClient) Forget(proxy types.NamespacedName) { c.applied.keep(proxy, nil) }

// reload reloads one replica; it returns an empty reason when the
// replica applied revision.
func reload(ctx context.Context, hc *http.Client, addr, token, revision string) (reason, msg string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+"/api/v1/config/reload", nil)
	if err != nil {
		return ReasonUnreachable, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := hc.Do(req)
	if err != nil {
		return ReasonUnreachable, err.Error()
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		var e struct {
			Error  string   `json:"error"`
			Errors []string `json:"errors"`
		}
		json.Unmarshal(body, &e)
		detail := strings.Join(append([]string{e.Error}, e.Errors...), "; ")
		return ReasonReloadFailed, truncate(fmt.Sprintf("reload answered %d: %s", res.StatusCode, strings.Trim(detail, "; ")), 512)
	}
	var ok struct {
		SHA string `json:"config_sha256"`
	}
	if err := json.Unmarshal(body, &ok); err != nil || ok.SHA == "" {
		return ReasonReloadFailed, "the replica's reload answer has no config_sha256 (a Sentinel older than the operator?)"
	}
	if !strings.HasPrefix(ok.SHA, revision) {
		return ReasonStale, "reloaded revision " + ok.SHA[:min(16, len(ok.SHA))] + ": its mounted ConfigMap is not updated yet"
	}
	return "", ""
}

// notUpdated returns the replicas that did not apply the revision.
func notUpdated(results []ReplicaResult) []v1alpha1.ReplicaStatus {
	var out []v1alpha1.ReplicaStatus
	for _, r := range results {
		if r.Reason != "" {
			out = append(out, v1alpha1.ReplicaStatus{Address: r.Address, Pod: r.Pod, Reason: r.Reason, Message: r.Message})
		}
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (a *appliedRevisions) get(k replicaKey) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m[k]
}

func (a *appliedRevisions) set(k replicaKey, rev string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[replicaKey]string{}
	}
	a.m[k] = rev
}

// keep forgets the replicas of proxy not in reps.
func (a *appliedRevisions) keep(proxy types.NamespacedName, reps []Replica) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.m {
		if k.proxy == proxy && !slices.ContainsFunc(reps, func(r Replica) bool { return r.Address == k.addr }) {
			delete(a.m, k)
		}
	}
}
