package sentinelapp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/modules/agents"
	"github.com/sentinel-proxy/sentinel/modules/controlapi"
)

// apiServers holds the control-plane listeners of the process, keyed by
// address (a documented registry, like Caddy's listener pool): a config
// load that keeps the address keeps the listener, and the newest config's
// handler answers. This also lets POST /api/v1/config/reload replace the
// config that is serving it without shutting down its own connection.
var apiServers = caddy.NewUsagePool()

// apiServer is one listening control-plane server.
type apiServer struct {
	srv     *http.Server
	ln      net.Listener
	handler atomic.Pointer[controlapi.Server]
	tlsConf atomic.Pointer[tls.Config]
}

// Destruct closes the server when no config uses it any more.
func (s *apiServer) Destruct() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

func (s *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := s.handler.Load()
	if h == nil {
		http.Error(w, `{"error":"control-plane API is starting"}`, http.StatusServiceUnavailable)
		return
	}
	h.ServeHTTP(w, r)
}

// apiHandle is an app's claim on a pooled server.
type apiHandle struct {
	key     string
	server  *apiServer
	tlsConf *tls.Config
}

func (h *apiHandle) release() { _, _ = apiServers.Delete(h.key) }

// serve makes handler (and the claim's TLS configuration) the one
// answering on the server: called at the commit, so that a config that
// fails to start never answers the API.
func (h *apiHandle) serve(handler *controlapi.Server) {
	if h.tlsConf != nil {
		h.server.tlsConf.Store(h.tlsConf)
	}
	h.server.handler.Store(handler)
}

// newHandler builds the app's API handler.
func (a *App) newHandler() (*controlapi.Server, error) {
	cfg := *a.API
	cfg.Listen = cfg.ListenAddress()
	return controlapi.New(cfg, a.reg, a.audit, controlapi.Hooks{
		Reload:         a.reloadHook,
		Validate:       a.validateHook,
		Source:         a.sourceHook,
		ValidateSource: a.validateSourceHook,
		Metrics:        a.metricsHook,
		Agents:         agents.List,
		OwnAddresses:   a.ownAddresses,
		Trail:          a.trail,
	})
}

// metricsHook returns the config's Prometheus registry.
func (a *App) metricsHook() prometheus.Gatherer {
	if reg := a.ctx.GetMetricsRegistry(); reg != nil {
		return reg
	}
	return nil
}

// ownAddresses lists the proxy's own listening addresses: the HTTP
// servers' listeners, Caddy's admin endpoint and the configured extras.
func (a *App) ownAddresses() []string {
	out := append([]string{caddy.DefaultAdminListen}, a.OwnAddresses...)
	httpApp, err := a.ctx.AppIfConfigured("http")
	if err != nil {
		return out
	}
	app, ok := httpApp.(*caddyhttp.App)
	if !ok {
		return out
	}
	for _, srv := range app.Servers {
		for _, l := range srv.Listen {
			na, err := caddy.ParseNetworkAddress(l)
			if err != nil || na.IsUnixNetwork() || na.IsFdNetwork() {
				continue
			}
			for p := na.StartPort; p <= na.EndPort && p-na.StartPort < 1024; p++ {
				out = append(out, net.JoinHostPort(na.Host, strconv.FormatUint(uint64(p), 10)))
			}
		}
	}
	return out
}

// claimAPI claims the pooled listener of the app's API address, opening
// it when no config has it yet. The app's handler answers on it from the
// commit on; a new listener answers 503 until then.
func claimAPI(a *App) (*apiHandle, error) {
	cfg := *a.API
	cfg.Listen = cfg.ListenAddress()
	tlsConf, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	key := "sentinel-api:" + cfg.Listen
	val, _, err := apiServers.LoadOrNew(key, func() (caddy.Destructor, error) {
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return nil, err
		}
		s := &apiServer{ln: ln}
		s.srv = &http.Server{
			Handler:           s,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          zap.NewStdLog(a.logger.Named("api")),
		}
		if tlsConf != nil {
			s.tlsConf.Store(tlsConf)
			ln = tls.NewListener(ln, &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
				return s.tlsConf.Load(), nil
			}})
		}
		go func() {
			if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.logger.Error("control-plane API stopped", zap.Error(err))
			}
		}()
		a.logger.Info("control-plane API listening", zap.String("address", cfg.Listen), zap.Bool("tls", tlsConf != nil))
		return s, nil
	})
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	s := val.(*apiServer)
	if (tlsConf == nil) != (s.tlsConf.Load() == nil) {
		_, _ = apiServers.Delete(key)
		return nil, fmt.Errorf("%s: switching TLS on or off needs a restart of the API listener (change its address, or restart)", cfg.Listen)
	}
	return &apiHandle{key: key, server: s, tlsConf: tlsConf}, nil
}
