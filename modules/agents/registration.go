package agents

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
)

// RegistrationConfig is the listener live agents connect to: they send a
// RegistrationHello (agent id + token), the proxy checks it, runs the
// handshake over the same connection and adds it to the agent's pool
// (the configured agent of that id when AllowConfiguredIDs says so, else
// a live pool with Defaults). A live agent is removed when its last
// connection closes.
type RegistrationConfig struct {
	// UnixSocket is the socket path (created with mode 0600).
	UnixSocket string `json:"unix_socket,omitempty"`
	// Address is a TCP address; it needs TLS.
	Address string `json:"address,omitempty"`
	// TLS is the TCP listener's TLS.
	TLS *ServerTLSConfig `json:"tls,omitempty"`
	// Tokens are accepted tokens in clear, for hand-written configs;
	// prefer TokenSHA256, which keeps the token out of the config.
	// Compared in constant time; never logged.
	Tokens []string `json:"tokens,omitempty"`
	// TokenSHA256 are the SHA-256 digests (64 lowercase hex digits) of
	// the accepted tokens: what the KDL and Caddyfile adapters emit. An
	// agent's token is hashed and compared with them in constant time.
	TokenSHA256 []string `json:"token_sha256,omitempty"`
	// AllowedAgents lists the agent ids that may register (empty: any).
	AllowedAgents []string `json:"allowed_agents,omitempty"`
	// AllowConfiguredIDs lets a live agent register with the id of a
	// configured agent (in Agents): its connection then joins that
	// agent's pool and takes part of its traffic. Off by default: a
	// token holder could otherwise impersonate a configured agent (a
	// WAF, an auth service) and let requests through.
	AllowConfiguredIDs bool `json:"allow_configured_ids,omitempty"`
	// Timeout bounds the registration and handshake (default 10s).
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Defaults are the settings of live agents not in Agents (the
	// transport keys are ignored).
	Defaults *AgentConfig `json:"defaults,omitempty"`
}

// ServerTLSConfig is the registration listener's TLS.
type ServerTLSConfig struct {
	// CertFile is the server certificate (PEM).
	CertFile string `json:"cert_file"`
	// KeyFile is its key (PEM).
	KeyFile string `json:"key_file"`
	// ClientCA is a PEM file of CAs of agent certificates: with it, agents
	// must present a certificate whose CN or a DNS name is their agent id.
	ClientCA string `json:"client_ca,omitempty"`
}

// regSettings are the resolved registration settings.
type regSettings struct {
	network, address string
	tls              *tls.Config
	mtls             bool
	tokens           [][32]byte
	allowed          []string
	allowConfigured  bool
	timeout          time.Duration
	defaults         AgentConfig
}

func (c *RegistrationConfig) resolve() (*regSettings, error) {
	rs := &regSettings{allowed: c.AllowedAgents, allowConfigured: c.AllowConfiguredIDs, timeout: durOr(c.Timeout, 10*time.Second)}
	switch {
	case (c.UnixSocket == "") == (c.Address == ""):
		return nil, errors.New("registration: give exactly one of unix_socket and address")
	case c.UnixSocket != "":
		rs.network, rs.address = "unix", c.UnixSocket
	default:
		rs.network, rs.address = "tcp", c.Address
		if c.TLS == nil {
			return nil, errors.New("registration: a TCP address needs tls")
		}
	}
	if c.TLS != nil {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("registration tls: %w", err)
		}
		rs.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if c.TLS.ClientCA != "" {
			pem, err := os.ReadFile(c.TLS.ClientCA)
			if err != nil {
				return nil, fmt.Errorf("registration tls client_ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("registration tls client_ca %s: no certificate", c.TLS.ClientCA)
			}
			rs.tls.ClientCAs, rs.tls.ClientAuth, rs.mtls = pool, tls.RequireAndVerifyClientCert, true
		}
	}
	for _, t := range c.Tokens {
		if t == "" {
			return nil, errors.New("registration: empty token")
		}
		rs.tokens = append(rs.tokens, sha256.Sum256([]byte(t)))
	}
	for i, h := range c.TokenSHA256 {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != sha256.Size || h != strings.ToLower(h) {
			return nil, fmt.Errorf("registration: token_sha256[%d] is not a SHA-256 digest (64 lowercase hex digits)", i)
		}
		rs.tokens = append(rs.tokens, [sha256.Size]byte(b))
	}
	if len(rs.tokens) == 0 && !rs.mtls {
		return nil, errors.New("registration: agents must authenticate: give tokens or tls.client_ca")
	}
	if c.Defaults != nil {
		rs.defaults = *c.Defaults
	}
	rs.defaults.UnixSocket, rs.defaults.GRPC, rs.defaults.TLS = "", "", nil
	rs.defaults.ID = "live"
	if _, err := (&AgentConfig{ID: "live", UnixSocket: "-", Events: rs.defaults.Events, Timeout: rs.defaults.Timeout, FailureMode: rs.defaults.FailureMode,
		RequestBodyMode: rs.defaults.RequestBodyMode, ResponseBodyMode: rs.defaults.ResponseBodyMode, Pool: rs.defaults.Pool, CircuitBreaker: rs.defaults.CircuitBreaker}).resolve(); err != nil {
		return nil, fmt.Errorf("registration defaults: %w", err)
	}
	return rs, nil
}

// TokenHash is the token_sha256 form of a registration token: its
// SHA-256 as lowercase hex.
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// tokenOK compares a token with the configured ones in constant time
// (hashes of equal length, every one compared).
func (rs *regSettings) tokenOK(tok string) bool {
	if len(rs.tokens) == 0 {
		return true
	}
	h := sha256.Sum256([]byte(tok))
	ok := 0
	for i := range rs.tokens {
		ok |= subtle.ConstantTimeCompare(h[:], rs.tokens[i][:])
	}
	return ok == 1
}

// liveSettings are the settings of a live agent.
func (rs *regSettings) liveSettings(id string) (*settings, error) {
	c := rs.defaults
	c.ID, c.UnixSocket = id, "live"
	return c.resolve()
}

// maxPendingRegistrations bounds the connections of a registration
// listener that have not finished registering (TLS handshake, hello,
// token check, protocol handshake).
const maxPendingRegistrations = 256

// regListener is one registration listener, shared by the configs that
// name its address; the newest config's settings apply.
type regListener struct {
	// pending holds a slot per connection not yet registered (at most
	// maxPendingRegistrations): connections beyond are closed at once,
	// so that peers that never authenticate cannot pile up goroutines
	// and hello buffers for the registration timeout each.
	pending chan struct{}
	ln      net.Listener
	cfg     atomic.Pointer[regSettings]
	log     *zap.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// claimListener opens (or takes over) the listener of rs and returns its
// registry key. A listener the claim opens refuses registrations until a
// started config's settings apply (use).
func claimListener(rs *regSettings, log *zap.Logger) (string, *regListener, error) {
	key := rs.network + ":" + rs.address
	v, _, err := reg.listeners.LoadOrNew(key, func() (caddy.Destructor, error) {
		var ln net.Listener
		var err error
		if rs.network == "unix" {
			// Never reachable with the umask's mode: bound in a private
			// folder, set to 0600, renamed into place.
			ln, err = listenPrivateUnix(rs.address)
		} else {
			ln, err = net.Listen(rs.network, rs.address)
		}
		if err != nil {
			return nil, fmt.Errorf("agent registration listener: %w", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		l := &regListener{ln: ln, log: log.Named("registration"), ctx: ctx, cancel: cancel, pending: make(chan struct{}, maxPendingRegistrations)}
		l.wg.Add(1)
		go l.accept()
		l.log.Info("agent registration listening", zap.String("network", rs.network), zap.String("address", rs.address))
		return l, nil
	})
	if err != nil {
		return "", nil, err
	}
	return key, v.(*regListener), nil
}

// use makes rs the listener's settings: the newest started config's
// apply.
func (l *regListener) use(rs *regSettings) { l.cfg.Store(rs) }

// Destruct closes the listener and the registrations in progress.
// Registered agents stay in their pools.
func (l *regListener) Destruct() error {
	l.cancel()
	err := l.ln.Close()
	l.wg.Wait()
	return err
}

func (l *regListener) accept() {
	defer l.wg.Done()
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.log.Error("agent registration accept", zap.Error(err))
			return
		}
		select {
		case l.pending <- struct{}{}:
		default:
			l.log.Warn("agent registration refused: too many registrations in progress", zap.String("remote", conn.RemoteAddr().String()), zap.Int("limit", maxPendingRegistrations))
			_ = conn.Close()
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer func() { <-l.pending }()
			if err := l.register(conn); err != nil {
				l.log.Warn("agent registration refused", zap.String("remote", conn.RemoteAddr().String()), zap.Error(err))
				_ = conn.Close()
			}
		}()
	}
}

// register authenticates one connection and adds it to its agent's pool.
func (l *regListener) register(conn net.Conn) error {
	rs := l.cfg.Load()
	if rs == nil {
		return errors.New("the configuration of the registration listener has not started")
	}
	ctx, cancel := context.WithTimeout(l.ctx, rs.timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if rs.tls != nil {
		tc := tls.Server(conn, rs.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("tls handshake: %w", err)
		}
		conn = tc
	}
	hello, err := protocol.ReadRegistrationHello(conn)
	if err != nil {
		return err
	}
	id := hello.AgentID
	if reason := rs.refusal(conn, hello); reason != "" {
		// The log keeps the audit line, written before the agent is told
		// why (RegistrationResponse, as the original's reverse
		// connections): a refusal the agent saw is always audited.
		l.log.Warn("agent registration refused", zap.String("agent", id), zap.String("remote", remoteOf(conn)), zap.String("reason", reason))
		_ = protocol.WriteRegistrationRefusal(conn, reason)
		_ = conn.Close()
		return nil
	}
	if !stop() {
		return fmt.Errorf("agent %q: registration timed out", id)
	}
	_ = conn.SetDeadline(time.Time{})
	var target *pool
	var onEmpty func()
	if p := configuredPool(id); p != nil && rs.allowConfigured {
		target = p
	} else {
		s, err := rs.liveSettings(id)
		if err != nil {
			return err
		}
		target = reg.liveOrNew(s, l.log)
		onEmpty = func() { reg.dropLive(target) }
	}
	c, err := protocol.NewClient(ctx, conn, target.options())
	if err != nil {
		if onEmpty != nil {
			onEmpty()
		}
		return fmt.Errorf("agent %q handshake: %w", id, err)
	}
	target.adopt(c, onEmpty)
	l.log.Info("agent registered", zap.String("agent", id), zap.String("dialect", c.Info().Dialect.String()), zap.Bool("live_pool", target.live))
	return nil
}

// refusal checks a registration: "" accepts it, anything else is the
// reason it is refused (sent to the agent, so it names no secret). The
// token is checked first, so that an agent without it learns nothing of
// the allow-list or of the configured ids.
func (rs *regSettings) refusal(conn net.Conn, hello protocol.RegistrationHello) string {
	id := hello.AgentID
	if !rs.tokenOK(hello.AuthToken) {
		return "wrong token"
	}
	if rs.mtls {
		tc, _ := conn.(*tls.Conn)
		if tc == nil || !identityIs(tc.ConnectionState(), id) {
			return fmt.Sprintf("agent %q: the client certificate does not name this agent id", id)
		}
	}
	if len(rs.allowed) > 0 && !slices.Contains(rs.allowed, id) {
		return fmt.Sprintf("agent %q is not in allowed-agents", id)
	}
	if !rs.allowConfigured && configuredPool(id) != nil {
		return fmt.Sprintf("agent %q is a configured agent: a live agent may not register with its id unless registration { allow-configured-ids #true } (JSON allow_configured_ids) is set", id)
	}
	return ""
}

// configuredPool is the running config's pool of a configured agent id,
// or nil.
func configuredPool(id string) *pool {
	if a := reg.current.Load(); a != nil {
		if p := a.pools[id]; p != nil && !p.live {
			return p
		}
	}
	return nil
}

// remoteOf names the peer of a registration connection for the log: its
// address, or the listener's socket for an unnamed Unix peer.
func remoteOf(conn net.Conn) string {
	if a := conn.RemoteAddr(); a != nil && a.String() != "" && a.String() != "@" {
		return a.String()
	}
	return "unix:" + conn.LocalAddr().String()
}

// identityIs reports whether the verified client certificate names id.
func identityIs(st tls.ConnectionState, id string) bool {
	if len(st.PeerCertificates) == 0 {
		return false
	}
	c := st.PeerCertificates[0]
	return c.Subject.CommonName == id || slices.Contains(c.DNSNames, id)
}
