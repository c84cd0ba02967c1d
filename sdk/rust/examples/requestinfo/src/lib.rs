//! requestinfo, an example Sentinel WASM plugin in Rust: it adds the
//! request facts of sentinel_v1 revision 1.2 to the response, as headers
//! named with the config's `prefix` (default `X-Sentinel-`): `Route`,
//! `Client-Addr`, `Client-IP`, `Query`, `TLS` (version, cipher suite, SNI
//! and ALPN, or `none`) and `Client-Cert` (the client certificate's
//! SHA-256, when one was presented). With `forward`, the same headers go
//! to the upstream instead.

use sentinel_plugin::{request, Config, ConfigError, Decision, Kind, Plugin};

struct RequestInfo {
    prefix: String,
    kind: Kind,
}

impl Plugin for RequestInfo {
    fn new(config: &Config) -> Result<Self, ConfigError> {
        let e = |e: String| format!("requestinfo: {}", e);
        config.deny_unknown(&["prefix", "forward"]).map_err(e)?;
        let forward = config.bool("forward").map_err(e)?.unwrap_or(false);
        Ok(RequestInfo {
            prefix: config.str("prefix").map_err(e)?.unwrap_or_else(|| "X-Sentinel-".to_string()),
            kind: if forward { Kind::Request } else { Kind::Response },
        })
    }

    fn on_request_headers(&mut self) -> Decision {
        let set = |name: &str, value: &str| sentinel_plugin::set_header(self.kind, &format!("{}{}", self.prefix, name), value);
        set("Route", &request::route_id().unwrap_or_else(|| "-".to_string()));
        set("Client-Addr", &request::client_addr());
        set("Client-IP", &request::client_ip());
        set("Query", &request::query());
        match request::tls() {
            Some(t) => {
                set("TLS", &format!("{} {} sni={} alpn={}", t.version, t.cipher_suite, t.server_name, t.alpn));
                if let Some(sum) = t.client_sha256 {
                    set("Client-Cert", &sum);
                }
            }
            None => set("TLS", "none"),
        }
        Decision::Allow
    }
}

sentinel_plugin::plugin!(RequestInfo, on_request_headers);
