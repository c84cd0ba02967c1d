package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/miekg/dns"

	"github.com/sentinel-proxy/sentinel/registry"
)

func init() {
	caddy.RegisterModule(DNS{})
	caddy.RegisterModule(DNSSRV{})
}

// defaultRefresh is the refresh interval of the polling kinds (the
// original's refresh-interval 30).
const defaultRefresh = 30 * time.Second

// resolvConf is where the system's resolvers are read.
const resolvConf = "/etc/resolv.conf"

// resolver asks DNS servers directly (not through the system's stub),
// so that the answers' TTLs are known.
type resolver struct {
	servers []string
	client  *dns.Client
	timeout time.Duration
}

// newResolver returns a resolver asking servers (host:port, or host for
// port 53), or the servers of /etc/resolv.conf when there are none.
func newResolver(servers []string, timeout time.Duration) (*resolver, error) {
	if len(servers) == 0 {
		conf, err := dns.ClientConfigFromFile(resolvConf)
		if err != nil {
			return nil, fmt.Errorf("no resolvers given, and reading %s: %w", resolvConf, err)
		}
		for _, s := range conf.Servers {
			servers = append(servers, net.JoinHostPort(s, conf.Port))
		}
		if len(servers) == 0 {
			return nil, fmt.Errorf("no resolvers given, and none in %s", resolvConf)
		}
	}
	out := make([]string, 0, len(servers))
	for _, s := range servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			s = net.JoinHostPort(strings.Trim(s, "[]"), "53")
		}
		out = append(out, s)
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &resolver{servers: out, client: &dns.Client{Timeout: timeout}, timeout: timeout}, nil
}

// query asks the servers in turn for name's records of type qtype: the
// answer of the first server that answers (NOERROR or NXDOMAIN), or the
// last error.
func (r *resolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	var last error
	for _, s := range r.servers {
		in, _, err := r.client.ExchangeContext(ctx, m, s)
		if err == nil && in.Truncated {
			tcp := &dns.Client{Net: "tcp", Timeout: r.timeout}
			in, _, err = tcp.ExchangeContext(ctx, m, s)
		}
		switch {
		case err != nil:
			last = fmt.Errorf("%s %s at %s: %w", dns.TypeToString[qtype], name, s, err)
		case in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError:
			last = fmt.Errorf("%s %s at %s: %s", dns.TypeToString[qtype], name, s, dns.RcodeToString[in.Rcode])
		default:
			return in, nil
		}
	}
	return nil, last
}

// hostAddrs returns the A and AAAA addresses of name, and the smallest
// TTL of the answers (0 when none). Addresses from extra, the additional
// section of an SRV answer, are used when they cover name.
func (r *resolver) hostAddrs(ctx context.Context, name string, extra []dns.RR) ([]net.IP, time.Duration, error) {
	var ips []net.IP
	var ttl uint32
	take := func(rrs []dns.RR) {
		for _, rr := range rrs {
			if !strings.EqualFold(rr.Header().Name, dns.Fqdn(name)) {
				continue
			}
			switch rr := rr.(type) {
			case *dns.A:
				ips = append(ips, rr.A)
			case *dns.AAAA:
				ips = append(ips, rr.AAAA)
			default:
				continue
			}
			if ttl == 0 || rr.Header().Ttl < ttl {
				ttl = rr.Header().Ttl
			}
		}
	}
	take(extra)
	if len(ips) > 0 {
		return ips, time.Duration(ttl) * time.Second, nil
	}
	var errs []error
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		in, err := r.query(ctx, name, qt)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		take(in.Answer)
	}
	if len(errs) == 2 || len(errs) > 0 && len(ips) == 0 {
		// Both failed, or one failed and the other found nothing: a
		// SERVFAIL on A must not pass for "no address".
		return nil, 0, errors.Join(errs...)
	}
	return ips, time.Duration(ttl) * time.Second, nil
}

// DNS is the discovery `dns`: the A and AAAA records of a host name, each
// address a target on a fixed port. It looks up again every refresh
// interval, or sooner when the records' TTL ends sooner (not more often
// than once a second).
type DNS struct {
	// Hostname is the name to resolve.
	Hostname string `json:"hostname,omitempty"`
	// Port is the port of every target.
	Port int `json:"port,omitempty"`
	// RefreshInterval is the time between lookups (default 30s).
	RefreshInterval caddy.Duration `json:"refresh_interval,omitempty"`
	// Resolvers are the DNS servers to ask (host or host:port), in turn;
	// default: the nameservers of /etc/resolv.conf.
	Resolvers []string `json:"resolvers,omitempty"`
	// Timeout is the timeout of one query (default 5s).
	Timeout caddy.Duration `json:"timeout,omitempty"`

	res  *resolver
	loop *loop
}

// CaddyModule returns the Caddy module information.
func (DNS) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sentinel.discovery.dns", New: func() caddy.Module { return new(DNS) }}
}

// Provision sets up the resolver and the metrics.
func (d *DNS) Provision(ctx caddy.Context) error {
	if d.Hostname == "" {
		return errors.New("dns: hostname is required")
	}
	if d.Port < 1 || d.Port > 65535 {
		return fmt.Errorf("dns: port %d: must be from 1 to 65535", d.Port)
	}
	res, err := newResolver(d.Resolvers, time.Duration(d.Timeout))
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	d.res = res
	d.loop, err = newLoop(ctx, "dns")
	return err
}

// Discover looks the name up until ctx ends.
func (d *DNS) Discover(ctx context.Context, upstream string, publish func([]registry.TargetSpec)) {
	d.loop.bind(upstream)
	d.loop.poll(ctx, interval(d.RefreshInterval, defaultRefresh), d.lookup, publish)
}

// lookup resolves the name once.
func (d *DNS) lookup(ctx context.Context) ([]registry.TargetSpec, time.Duration, error) {
	ips, ttl, err := d.res.hostAddrs(ctx, d.Hostname, nil)
	if err != nil {
		return nil, 0, err
	}
	ts := make([]registry.TargetSpec, 0, len(ips))
	for _, ip := range ips {
		ts = append(ts, registry.TargetSpec{Address: net.JoinHostPort(ip.String(), strconv.Itoa(d.Port))})
	}
	return ts, ttl, checkTargets(ts)
}

// DNSSRV is the discovery `dns_srv`: the SRV records of a service name
// (e.g. _http._tcp.api.internal), each record's host and port a target,
// weighted by the record's weight; only the records of the lowest
// priority are used (the others are backups, per RFC 2782). The hosts'
// addresses come from the answer's additional section, or are looked up.
type DNSSRV struct {
	// Service is the SRV name to look up.
	Service string `json:"service,omitempty"`
	// RefreshInterval is the time between lookups (default 30s).
	RefreshInterval caddy.Duration `json:"refresh_interval,omitempty"`
	// Resolvers are the DNS servers to ask (see DNS.Resolvers).
	Resolvers []string `json:"resolvers,omitempty"`
	// Timeout is the timeout of one query (default 5s).
	Timeout caddy.Duration `json:"timeout,omitempty"`

	res  *resolver
	loop *loop
}

// CaddyModule returns the Caddy module information.
func (DNSSRV) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sentinel.discovery.dns_srv", New: func() caddy.Module { return new(DNSSRV) }}
}

// Provision sets up the resolver and the metrics.
func (d *DNSSRV) Provision(ctx caddy.Context) error {
	if d.Service == "" {
		return errors.New("dns-srv: service is required")
	}
	res, err := newResolver(d.Resolvers, time.Duration(d.Timeout))
	if err != nil {
		return fmt.Errorf("dns-srv: %w", err)
	}
	d.res = res
	d.loop, err = newLoop(ctx, "dns-srv")
	return err
}

// Discover looks the service up until ctx ends.
func (d *DNSSRV) Discover(ctx context.Context, upstream string, publish func([]registry.TargetSpec)) {
	d.loop.bind(upstream)
	d.loop.poll(ctx, interval(d.RefreshInterval, defaultRefresh), d.lookup, publish)
}

// lookup resolves the service once.
func (d *DNSSRV) lookup(ctx context.Context) ([]registry.TargetSpec, time.Duration, error) {
	in, err := d.res.query(ctx, d.Service, dns.TypeSRV)
	if err != nil {
		return nil, 0, err
	}
	var srvs []*dns.SRV
	var ttl uint32
	for _, rr := range in.Answer {
		srv, ok := rr.(*dns.SRV)
		if !ok || srv.Target == "." {
			continue
		}
		if len(srvs) > 0 && srv.Priority > srvs[0].Priority {
			continue
		}
		if len(srvs) > 0 && srv.Priority < srvs[0].Priority {
			srvs = srvs[:0]
		}
		srvs = append(srvs, srv)
		if ttl == 0 || srv.Hdr.Ttl < ttl {
			ttl = srv.Hdr.Ttl
		}
	}
	var ts []registry.TargetSpec
	for _, srv := range srvs {
		ips, hostTTL, err := d.res.hostAddrs(ctx, srv.Target, in.Extra)
		if err != nil {
			return nil, 0, fmt.Errorf("the address of %s: %w", srv.Target, err)
		}
		if hostTTL > 0 && hostTTL < time.Duration(ttl)*time.Second {
			ttl = uint32(hostTTL / time.Second)
		}
		for _, ip := range ips {
			ts = append(ts, registry.TargetSpec{
				Address: net.JoinHostPort(ip.String(), strconv.Itoa(int(srv.Port))),
				Weight:  max(int(srv.Weight), 1),
			})
		}
	}
	return ts, time.Duration(ttl) * time.Second, checkTargets(ts)
}

// Interface guards
var (
	_ caddy.Provisioner   = (*DNS)(nil)
	_ registry.Discoverer = (*DNS)(nil)
	_ caddy.Provisioner   = (*DNSSRV)(nil)
	_ registry.Discoverer = (*DNSSRV)(nil)
)
