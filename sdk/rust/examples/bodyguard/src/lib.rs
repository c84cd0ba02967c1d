//! bodyguard, an example Sentinel WASM plugin in Rust: it blocks (400)
//! requests whose body contains one of the config's `deny` strings, and,
//! with `deny_response`, replaces (502) responses whose body contains one
//! of those (on_response_body, ABI 1.2). The Rust twin of
//! examples/plugins/bodyguard.

use sentinel_plugin::{log, request, response, Config, ConfigError, Decision, Level, Plugin};

struct BodyGuard {
    deny: Vec<String>,
    deny_response: Vec<String>,
}

fn find<'a>(body: &[u8], patterns: &'a [String]) -> Option<&'a String> {
    patterns.iter().find(|p| !p.is_empty() && body.windows(p.len()).any(|w| w == p.as_bytes()))
}

impl Plugin for BodyGuard {
    fn new(config: &Config) -> Result<Self, ConfigError> {
        let e = |e: String| format!("bodyguard: {}", e);
        config.deny_unknown(&["deny", "deny_response"]).map_err(e)?;
        Ok(BodyGuard {
            deny: config.str_list("deny").map_err(e)?.unwrap_or_default(),
            deny_response: config.str_list("deny_response").map_err(e)?.unwrap_or_default(),
        })
    }

    fn on_request_body(&mut self) -> Decision {
        let body = match request::body() {
            Some(b) => b,
            None => return Decision::Allow,
        };
        match find(&body, &self.deny) {
            Some(p) => {
                log(Level::Warn, &format!("bodyguard: denied pattern {}", p));
                Decision::block(400).body("request body rejected\n")
            }
            None => Decision::Allow,
        }
    }

    fn on_response_body(&mut self) -> Decision {
        match response::body().as_deref().and_then(|b| find(b, &self.deny_response)) {
            Some(p) => {
                log(Level::Warn, &format!("bodyguard: response withheld, pattern {}", p));
                Decision::block(502).body("response withheld\n")
            }
            None => Decision::Allow,
        }
    }
}

sentinel_plugin::plugin!(BodyGuard, on_request_body, on_response_body);
