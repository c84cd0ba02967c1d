//! The Rust SDK of Sentinel's WASM plugins: safe wrappers of the
//! `sentinel_v1` host functions (docs/wasm.md) — headers, bodies, request
//! facts, the configuration and decisions — and the [`plugin!`] macro that
//! exports a [`Plugin`]'s hooks.
//!
//! A plugin is a `cdylib` built for `wasm32-wasi` (Rust 1.63 and later,
//! no other dependency):
//!
//! ```ignore
//! use sentinel_plugin::{request, Config, Decision, Plugin};
//!
//! struct Deny { prefix: String }
//!
//! impl Plugin for Deny {
//!     fn new(config: &Config) -> Result<Self, String> {
//!         config.deny_unknown(&["prefix"])?;
//!         Ok(Deny { prefix: config.str("prefix")?.ok_or("config key \"prefix\" is missing")? })
//!     }
//!     fn on_request_headers(&mut self) -> Decision {
//!         if request::path().starts_with(&self.prefix) {
//!             return Decision::block(403).body("forbidden");
//!         }
//!         Decision::Allow
//!     }
//! }
//!
//! sentinel_plugin::plugin!(Deny, on_request_headers);
//! ```
//!
//! `cargo build --release --target wasm32-wasi` makes
//! `target/wasm32-wasi/release/<name>.wasm`.

pub mod ffi;
pub mod json;

pub use json::{Config, ConfigError, Value};

use std::io::Write;

/// Which header set a header function works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The request's headers, seen by the upstream.
    Request = 0,
    /// The response's headers.
    Response = 1,
}

/// Calls a getter that copies at most `buf_len` bytes and returns the full
/// length (or -1 for absent), retrying with a larger buffer when needed.
fn fetch(mut get: impl FnMut(*mut u8, u32) -> i32) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = get(buf.as_mut_ptr(), buf.len() as u32);
        if n < 0 {
            return None;
        }
        let n = n as usize;
        if n <= buf.len() {
            buf.truncate(n);
            return Some(buf);
        }
        buf = vec![0u8; n];
    }
}

fn fetch_string(get: impl FnMut(*mut u8, u32) -> i32) -> Option<String> {
    fetch(get).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The first value of a header of `kind`, or None when absent.
pub fn header(kind: Kind, name: &str) -> Option<String> {
    fetch_string(|p, l| unsafe { ffi::get_header(kind as u32, name.as_ptr(), name.len() as u32, p, l) })
}

/// Replaces a header of `kind`.
pub fn set_header(kind: Kind, name: &str, value: &str) {
    unsafe { ffi::set_header(kind as u32, name.as_ptr(), name.len() as u32, value.as_ptr(), value.len() as u32) }
}

/// Adds a value to a header of `kind`.
pub fn add_header(kind: Kind, name: &str, value: &str) {
    unsafe { ffi::add_header(kind as u32, name.as_ptr(), name.len() as u32, value.as_ptr(), value.len() as u32) }
}

/// Removes a header of `kind`.
pub fn remove_header(kind: Kind, name: &str) {
    unsafe { ffi::remove_header(kind as u32, name.as_ptr(), name.len() as u32) }
}

/// The request: headers and facts.
pub mod request {
    use super::{fetch, fetch_string, ffi, Kind};

    /// The first value of a request header.
    pub fn header(name: &str) -> Option<String> {
        super::header(Kind::Request, name)
    }
    /// Replaces a request header (the upstream sees it).
    pub fn set_header(name: &str, value: &str) {
        super::set_header(Kind::Request, name, value)
    }
    /// Adds a request header value.
    pub fn add_header(name: &str, value: &str) {
        super::add_header(Kind::Request, name, value)
    }
    /// Removes a request header.
    pub fn remove_header(name: &str) {
        super::remove_header(Kind::Request, name)
    }
    /// The method.
    pub fn method() -> String {
        fetch_string(|p, l| unsafe { ffi::get_method(p, l) }).unwrap_or_default()
    }
    /// The normalised path, the one route matching evaluates
    /// (percent-decoded, `.`/`..` resolved, repeated slashes merged):
    /// judge paths by it.
    pub fn path() -> String {
        fetch_string(|p, l| unsafe { ffi::get_path(p, l) }).unwrap_or_default()
    }
    /// The path as received (percent-encoded, not normalised).
    pub fn raw_path() -> String {
        fetch_string(|p, l| unsafe { ffi::get_raw_path(p, l) }).unwrap_or_default()
    }
    /// The raw query string, without `?` (empty when none). ABI 1.2.
    pub fn query() -> String {
        fetch_string(|p, l| unsafe { ffi::get_query(p, l) }).unwrap_or_default()
    }
    /// The address of the connection's peer, `ip:port`. ABI 1.2.
    pub fn client_addr() -> String {
        fetch_string(|p, l| unsafe { ffi::get_client_addr(p, l) }).unwrap_or_default()
    }
    /// The client's IP as the server sees it: the peer's, or the one a
    /// trusted proxy forwarded (the server's `trusted_proxies`). ABI 1.2.
    pub fn client_ip() -> String {
        fetch_string(|p, l| unsafe { ffi::get_client_ip(p, l) }).unwrap_or_default()
    }
    /// The id of the route the request matched, when the handler knows
    /// it (the KDL adapter sets it). ABI 1.2.
    pub fn route_id() -> Option<String> {
        fetch_string(|p, l| unsafe { ffi::get_route_id(p, l) })
    }
    /// The TLS facts of the connection, or None for plain HTTP. ABI 1.2.
    pub fn tls() -> Option<super::Tls> {
        let f = |field: u32| fetch_string(|p, l| unsafe { ffi::get_tls(field, p, l) });
        let version = f(0)?;
        Some(super::Tls {
            version,
            cipher_suite: f(1).unwrap_or_default(),
            server_name: f(2).unwrap_or_default(),
            alpn: f(3).unwrap_or_default(),
            client_subject: f(4),
            client_sha256: f(5),
        })
    }
    /// The buffered request body (the first `max_body_bytes`), in
    /// `on_request_body` only.
    pub fn body() -> Option<Vec<u8>> {
        fetch(|p, l| unsafe { ffi::read_body(p, l) })
    }
}

/// The response: status, headers and body.
pub mod response {
    use super::{fetch, ffi, Kind};

    /// The status, in the response hooks (0 before).
    pub fn status() -> u16 {
        unsafe { ffi::get_status() as u16 }
    }
    /// The first value of a response header.
    pub fn header(name: &str) -> Option<String> {
        super::header(Kind::Response, name)
    }
    /// Replaces a response header.
    pub fn set_header(name: &str, value: &str) {
        super::set_header(Kind::Response, name, value)
    }
    /// Adds a response header value.
    pub fn add_header(name: &str, value: &str) {
        super::add_header(Kind::Response, name, value)
    }
    /// Removes a response header.
    pub fn remove_header(name: &str) {
        super::remove_header(Kind::Response, name)
    }
    /// The buffered response body (the first `max_body_bytes`), in
    /// `on_response_body` only. ABI 1.2.
    pub fn body() -> Option<Vec<u8>> {
        fetch(|p, l| unsafe { ffi::read_body(p, l) })
    }
}

/// TLS facts of a request's connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tls {
    /// `1.2` or `1.3`.
    pub version: String,
    /// The cipher suite's IANA name, e.g. `TLS_AES_128_GCM_SHA256`.
    pub cipher_suite: String,
    /// The SNI server name (empty when none was sent).
    pub server_name: String,
    /// The negotiated ALPN protocol (empty when none).
    pub alpn: String,
    /// The verified client certificate's subject, when one was presented.
    pub client_subject: Option<String>,
    /// The client certificate's SHA-256 fingerprint (lowercase hex).
    pub client_sha256: Option<String>,
}

/// Log levels of [`log`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// debug
    Debug = 0,
    /// info
    Info = 1,
    /// warn
    Warn = 2,
    /// error
    Error = 3,
}

/// Writes a message to Sentinel's log, with the plugin's id.
pub fn log(level: Level, msg: &str) {
    unsafe { ffi::log(level as u32, msg.as_ptr(), msg.len() as u32) }
}

/// The plugin's raw JSON configuration (empty when none).
pub fn config_bytes() -> Vec<u8> {
    fetch(|p, l| unsafe { ffi::get_config(p, l) }).unwrap_or_default()
}

/// The plugin's configuration, parsed.
pub fn config() -> Result<Config, ConfigError> {
    Config::parse(&config_bytes())
}

/// Ends the plugin with a message: it goes to stderr, which Sentinel
/// puts into the error of the instantiation (a plugin refusing its
/// config fails the config load with the reason); during a request the
/// plugin's failure mode applies.
pub fn fail(msg: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "{}", msg);
    std::process::exit(1)
}

/// What a hook decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go on.
    Allow,
    /// Answer with a status, body and headers instead (in a response
    /// hook: replace the upstream's response).
    Block {
        /// The status (403 when outside 100–999).
        status: u16,
        /// The body (`text/plain; charset=utf-8` unless a Content-Type
        /// header is given).
        body: Vec<u8>,
        /// The answer's headers.
        headers: Vec<(String, String)>,
    },
    /// Answer with a redirect.
    Redirect {
        /// The status (302 unless 3xx).
        status: u16,
        /// The Location.
        location: String,
        /// The answer's headers.
        headers: Vec<(String, String)>,
    },
}

impl Decision {
    /// A block with `status` and no body.
    pub fn block(status: u16) -> Decision {
        Decision::Block { status, body: Vec::new(), headers: Vec::new() }
    }

    /// A redirect to `location` with `status`.
    pub fn redirect(status: u16, location: &str) -> Decision {
        Decision::Redirect { status, location: location.to_string(), headers: Vec::new() }
    }

    /// Sets the body of a block (no effect on other decisions).
    pub fn body(mut self, b: impl AsRef<[u8]>) -> Decision {
        if let Decision::Block { body, .. } = &mut self {
            *body = b.as_ref().to_vec();
        }
        self
    }

    /// Adds a header to a block or redirect answer.
    pub fn header(mut self, name: &str, value: &str) -> Decision {
        match &mut self {
            Decision::Block { headers, .. } | Decision::Redirect { headers, .. } => {
                headers.push((name.to_string(), value.to_string()))
            }
            Decision::Allow => {}
        }
        self
    }

    /// Reports the decision to the host (the [`plugin!`] macro calls it
    /// with a hook's result).
    pub fn apply(&self) {
        unsafe {
            match self {
                Decision::Allow => {}
                Decision::Block { status, body, headers } => {
                    ffi::set_decision(1, *status as u32);
                    ffi::set_body(body.as_ptr(), body.len() as u32);
                    add_answer_headers(headers);
                }
                Decision::Redirect { status, location, headers } => {
                    ffi::set_decision(2, *status as u32);
                    ffi::set_location(location.as_ptr(), location.len() as u32);
                    add_answer_headers(headers);
                }
            }
        }
    }
}

unsafe fn add_answer_headers(headers: &[(String, String)]) {
    for (k, v) in headers {
        ffi::add_response_header(k.as_ptr(), k.len() as u32, v.as_ptr(), v.len() as u32);
    }
}

/// A plugin: built once per instance from its configuration, then its
/// hooks are called for the requests the instance handles (one at a
/// time). Export the hooks it implements with [`plugin!`]; the default
/// hooks allow.
pub trait Plugin: Sized {
    /// Builds the plugin from its configuration. An error fails the
    /// instantiation with the message (at load: the config load).
    fn new(config: &Config) -> Result<Self, ConfigError>;

    /// Before the request is passed on.
    fn on_request_headers(&mut self) -> Decision {
        Decision::Allow
    }
    /// With the request body (see [`request::body`]).
    fn on_request_body(&mut self) -> Decision {
        Decision::Allow
    }
    /// When the response header is written ([`response::status`]).
    fn on_response_headers(&mut self) -> Decision {
        Decision::Allow
    }
    /// With the response body ([`response::body`]). ABI 1.2.
    fn on_response_body(&mut self) -> Decision {
        Decision::Allow
    }
}

#[doc(hidden)]
pub fn __init<P: Plugin>() -> P {
    let cfg = match config() {
        Ok(c) => c,
        Err(e) => fail(&e),
    };
    match P::new(&cfg) {
        Ok(p) => p,
        Err(e) => fail(&e),
    }
}

/// Exports `_initialize` (which builds the plugin from its
/// configuration) and the listed hooks of a [`Plugin`] type:
///
/// ```ignore
/// sentinel_plugin::plugin!(MyPlugin, on_request_headers, on_response_headers);
/// ```
///
/// List only the hooks the plugin implements: the host skips the others
/// (a plugin without `on_response_headers` returns its instance before the
/// request is proxied, one without `on_response_body` does not make the
/// host buffer response bodies).
#[macro_export]
macro_rules! plugin {
    ($ty:ty $(, $hook:ident)* $(,)?) => {
        static mut __SENTINEL_PLUGIN: Option<$ty> = None;

        #[allow(clippy::missing_safety_doc)]
        #[no_mangle]
        pub extern "C" fn _initialize() {
            // What a WASI reactor's _initialize does first: run the
            // static constructors of the C library under Rust's std.
            #[cfg(target_arch = "wasm32")]
            extern "C" {
                fn __wasm_call_ctors();
            }
            unsafe {
                #[cfg(target_arch = "wasm32")]
                __wasm_call_ctors();
                __SENTINEL_PLUGIN = Some($crate::__init::<$ty>());
            }
        }

        $(
            #[no_mangle]
            pub extern "C" fn $hook() {
                let p = unsafe { __SENTINEL_PLUGIN.as_mut() }.expect("sentinel_plugin: _initialize was not called");
                <$ty as $crate::Plugin>::$hook(p).apply();
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let d = Decision::block(403).body("no").header("Content-Type", "application/json");
        assert_eq!(
            d,
            Decision::Block { status: 403, body: b"no".to_vec(), headers: vec![("Content-Type".into(), "application/json".into())] }
        );
        assert_eq!(Decision::redirect(301, "/x").body("ignored"), Decision::Redirect { status: 301, location: "/x".into(), headers: vec![] });
        assert_eq!(Decision::Allow.header("a", "b"), Decision::Allow);
    }

    #[test]
    fn fetch_retries_with_a_larger_buffer() {
        let data = vec![7u8; 1000];
        let mut calls = 0;
        let got = fetch(|p, l| {
            calls += 1;
            if l as usize >= data.len() {
                unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
            }
            data.len() as i32
        });
        assert_eq!(got, Some(data.clone()));
        assert_eq!(calls, 2);
        assert_eq!(fetch(|_, _| -1), None);
    }
}
