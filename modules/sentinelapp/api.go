package sentinelapp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/agents"
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
	key string
}

func (h *apiHandle) release() { _, _ = apiServers.Delete(h.key) }

// startAPI makes the app's API handler the one answering on its address.
func startAPI(a *App) (*apiHandle, error) {
	cfg := *a.API
	cfg.Listen = cfg.ListenAddress()
	tlsConf, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	audit := a.logger.Named("audit")
	handler, err := controlapi.New(cfg, a.reg, audit, controlapi.Hooks{
		Reload:   a.reloadHook,
		Validate: a.validateHook,
		Agents:   agents.List,
	})
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
	if tlsConf != nil {
		s.tlsConf.Store(tlsConf)
	}
	s.handler.Store(handler)
	return &apiHandle{key: key}, nil
}
