// Package etcdstore keeps the registry's API-made state in etcd (fleet
// mode): every replica of a fleet saves its control-plane changes there
// and applies the others' without a reload. See docs/fleet.md.
package etcdstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/sentinel-proxy/sentinel/registry"
)

func init() {
	caddy.RegisterModule(Etcd{})
}

// clients are the etcd clients of the process, shared by the configs
// that name the same cluster and credentials, so that a reload keeps the
// connection and the registry's watch.
var clients = caddy.NewUsagePool()

// Etcd is the `sentinel.stores.etcd` module: the registry's API-made
// state (targets, weights, drains, route switches, API-created upstreams)
// lives in one etcd key, saved with a compare-and-swap on its revision
// and watched by every replica.
type Etcd struct {
	// Endpoints are the etcd members' client URLs, e.g.
	// "https://10.0.0.1:2379". At least one is required.
	Endpoints []string `json:"endpoints"`

	// Prefix is the key prefix of the fleet; the state is the key
	// "<prefix>state". Default "/sentinel/". Fleets sharing a cluster
	// need different prefixes.
	Prefix string `json:"prefix,omitempty"`

	// Username and Password authenticate to etcd (placeholders such as
	// {env.ETCD_PASSWORD} are replaced). The password is never logged.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`

	// DialTimeout bounds connecting to the cluster. Default 5s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	// CAFile is a PEM file of the CAs that sign the members' certificates
	// (default: the system's roots) for https endpoints.
	CAFile string `json:"ca_file,omitempty"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// etcd's client-certificate authentication.
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// ServerName overrides the name checked in the members' certificates.
	ServerName string `json:"server_name,omitempty"`

	cli     *clientv3.Client
	poolKey string
	key     string
	name    string
	logger  *zap.Logger
	reports *reports
}

// CaddyModule returns the Caddy module information.
func (Etcd) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "sentinel.stores.etcd",
		New: func() caddy.Module { return new(Etcd) },
	}
}

// Provision connects to etcd, or shares the connection of another config
// with the same settings.
func (e *Etcd) Provision(ctx caddy.Context) error {
	e.logger = ctx.Logger()
	e.reports = new(reports)
	repl := caddy.NewReplacer()
	e.Username = repl.ReplaceAll(e.Username, "")
	e.Password = repl.ReplaceAll(e.Password, "")
	if e.Prefix == "" {
		e.Prefix = "/sentinel/"
	}
	if e.DialTimeout == 0 {
		e.DialTimeout = caddy.Duration(5 * time.Second)
	}
	if err := e.Validate(); err != nil {
		return err
	}
	e.key = e.Prefix + "state"
	e.name = fmt.Sprintf("etcd %s key %s", strings.Join(e.Endpoints, ","), e.key)
	poolKey, err := json.Marshal(struct {
		E    []string
		U, P string
		T    [4]string
		D    caddy.Duration
	}{e.Endpoints, e.Username, e.Password, [4]string{e.CAFile, e.CertFile, e.KeyFile, e.ServerName}, e.DialTimeout})
	if err != nil {
		return err
	}
	v, _, err := clients.LoadOrNew(string(poolKey), func() (caddy.Destructor, error) {
		cfg := clientv3.Config{
			Endpoints:   e.Endpoints,
			Username:    e.Username,
			Password:    e.Password,
			DialTimeout: time.Duration(e.DialTimeout),
			// A member that comes back is reconnected to within about a
			// second (gRPC's default backoff grows to two minutes), and a
			// connection that died silently is noticed.
			DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
				MinConnectTimeout: time.Duration(e.DialTimeout),
			})},
			DialKeepAliveTime:    10 * time.Second,
			DialKeepAliveTimeout: 3 * time.Second,
			Logger:               e.logger.Named("client").WithOptions(zap.IncreaseLevel(zap.WarnLevel)),
		}
		if e.tls() {
			tc, err := e.tlsConfig()
			if err != nil {
				return nil, err
			}
			cfg.TLS = tc
		}
		cli, err := clientv3.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("connecting to etcd %s: %w", strings.Join(e.Endpoints, ","), err)
		}
		return client{cli}, nil
	})
	if err != nil {
		return err
	}
	e.cli = v.(client).Client
	e.poolKey = string(poolKey)
	return nil
}

// client is a pooled etcd client.
type client struct{ *clientv3.Client }

// Destruct closes the client.
func (c client) Destruct() error { return c.Close() }

// Validate checks the settings.
func (e *Etcd) Validate() error {
	if len(e.Endpoints) == 0 {
		return errors.New("etcd: at least one endpoint is required")
	}
	for i, ep := range e.Endpoints {
		if strings.Contains(ep, "@") {
			// user:password@host: the endpoints are shown (the store's
			// name in GET /api/v1/state, errors, logs); never echoed.
			return fmt.Errorf("etcd: endpoints[%d] holds credentials (user info before @): give them as username and password", i)
		}
		if ep == "" || strings.ContainsAny(ep, " \t\n") {
			return fmt.Errorf("etcd: endpoints[%d] %q is not a client URL or host:port", i, ep)
		}
	}
	if !strings.HasPrefix(e.Prefix, "/") && e.Prefix != "" {
		return fmt.Errorf("etcd: prefix %q must start with /", e.Prefix)
	}
	if e.Password != "" && e.Username == "" {
		return errors.New("etcd: a password needs a username")
	}
	if (e.CertFile == "") != (e.KeyFile == "") {
		return errors.New("etcd: cert_file and key_file go together")
	}
	return nil
}

// Cleanup releases the connection; the last config using it closes it.
func (e *Etcd) Cleanup() error {
	if e.cli == nil {
		return nil
	}
	_, err := clients.Delete(e.poolKey)
	return err
}

// tls reports whether TLS settings are given.
func (e *Etcd) tls() bool {
	return e.CAFile != "" || e.CertFile != "" || e.ServerName != ""
}

// tlsConfig builds the TLS client configuration.
func (e *Etcd) tlsConfig() (*tls.Config, error) {
	t := struct{ CA, Cert, Key string }{e.CAFile, e.CertFile, e.KeyFile}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: e.ServerName}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("etcd: reading ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd: ca_file %s holds no PEM certificate", t.CA)
		}
		tc.RootCAs = pool
	}
	if t.Cert != "" {
		c, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("etcd: loading cert_file %s: %w", t.Cert, err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}

// String names the store: its endpoints and key, never credentials.
func (e *Etcd) String() string { return e.name }

// Load returns the stored state (nil when none).
func (e *Etcd) Load() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(e.DialTimeout))
	defer cancel()
	data, _, err := e.LoadRevision(ctx)
	return data, err
}

// Save replaces the stored state unconditionally. The registry uses
// SaveIf; Save is for tools.
func (e *Etcd) Save(data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(e.DialTimeout))
	defer cancel()
	_, err := e.cli.Put(ctx, e.key, string(data))
	return wrap(err)
}

// LoadRevision returns the stored state and its modification revision
// (0 when nothing is stored).
func (e *Etcd) LoadRevision(ctx context.Context) ([]byte, int64, error) {
	resp, err := e.cli.Get(ctx, e.key)
	if err != nil {
		return nil, 0, wrap(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	return resp.Kvs[0].Value, resp.Kvs[0].ModRevision, nil
}

// SaveIf stores data when the key's modification revision is still rev
// (0: no key), in one transaction.
func (e *Etcd) SaveIf(ctx context.Context, data []byte, rev int64) (int64, error) {
	resp, err := e.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(e.key), "=", rev)).
		Then(clientv3.OpPut(e.key, string(data))).
		Commit()
	if err != nil {
		return 0, wrap(err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("%s: revision %d was replaced: %w", e.key, rev, registry.ErrStale)
	}
	return resp.Header.Revision, nil
}

// Watch calls apply with each state saved after revision from, until ctx
// is done or the client is closed. When the watch falls behind a
// compaction or breaks, the current state is read again and applied.
func (e *Etcd) Watch(ctx context.Context, from int64, apply func(data []byte, rev int64)) {
	last := from
	backoff := 100 * time.Millisecond
	for {
		if ctx.Err() != nil || e.cli.Ctx().Err() != nil {
			return
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for resp := range e.cli.Watch(wctx, e.key, clientv3.WithRev(last+1)) {
			if err := resp.Err(); err != nil {
				if !errors.Is(err, rpctypes.ErrCompacted) {
					e.logger.Warn("watching the shared state", zap.String("store", e.name), zap.Error(err))
				}
				break
			}
			for _, ev := range resp.Events {
				switch ev.Type {
				case clientv3.EventTypePut:
					apply(ev.Kv.Value, ev.Kv.ModRevision)
				case clientv3.EventTypeDelete:
					apply(nil, ev.Kv.ModRevision)
				}
				last = ev.Kv.ModRevision
			}
			backoff = 100 * time.Millisecond
		}
		cancel()
		if ctx.Err() != nil || e.cli.Ctx().Err() != nil {
			return
		}
		// The watch ended (member lost, compaction): read the current
		// state, then go on watching after it.
		rctx, rcancel := context.WithTimeout(ctx, time.Duration(e.DialTimeout))
		resp, err := e.cli.Get(rctx, e.key)
		rcancel()
		if err == nil {
			if len(resp.Kvs) > 0 && resp.Kvs[0].ModRevision > last {
				apply(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
			}
			last = max(last, resp.Header.Revision)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// wrap names etcd in an error.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("etcd: %w", err)
}

// Interface guards
var (
	_ caddy.Provisioner    = (*Etcd)(nil)
	_ caddy.Validator      = (*Etcd)(nil)
	_ caddy.CleanerUpper   = (*Etcd)(nil)
	_ registry.SharedStore = (*Etcd)(nil)
)
