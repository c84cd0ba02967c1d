//! headerinject, an example Sentinel WASM plugin in Rust: it sets the
//! request headers of its config (`request_headers`) before the request
//! is proxied, and the response headers (`response_headers`) on the
//! response. The Rust twin of examples/plugins/headerinject.

use sentinel_plugin::{request, response, Config, ConfigError, Decision, Plugin};

struct HeaderInject {
    request_headers: Vec<(String, String)>,
    response_headers: Vec<(String, String)>,
}

impl Plugin for HeaderInject {
    fn new(config: &Config) -> Result<Self, ConfigError> {
        let e = |e: String| format!("headerinject: {}", e);
        config.deny_unknown(&["request_headers", "response_headers"]).map_err(e)?;
        Ok(HeaderInject {
            request_headers: config.str_map("request_headers").map_err(e)?.unwrap_or_default(),
            response_headers: config.str_map("response_headers").map_err(e)?.unwrap_or_default(),
        })
    }

    fn on_request_headers(&mut self) -> Decision {
        for (k, v) in &self.request_headers {
            request::set_header(k, v);
        }
        Decision::Allow
    }

    fn on_response_headers(&mut self) -> Decision {
        for (k, v) in &self.response_headers {
            response::set_header(k, v);
        }
        Decision::Allow
    }
}

sentinel_plugin::plugin!(HeaderInject, on_request_headers, on_response_headers);
