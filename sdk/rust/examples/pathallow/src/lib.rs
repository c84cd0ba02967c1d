//! pathallow, an example Sentinel WASM plugin in Rust: it allows requests
//! whose normalised path falls under one of the config's `allow` prefixes
//! (segment by segment: `/api` covers `/api` and `/api/x`, not `/apix`),
//! redirects the paths of `redirects` (path → location, 301), and blocks
//! the rest with 403 and a JSON body. A missing `allow`, or a single
//! string where the list is expected, fails the load with the reason.
//! The Rust twin of examples/plugins/pathallow.

use sentinel_plugin::{request, Config, ConfigError, Decision, Plugin};

struct PathAllow {
    allow: Vec<String>,
    redirects: Vec<(String, String)>,
}

/// Whether `path` falls under `prefix`, segment by segment.
fn under(path: &str, prefix: &str) -> bool {
    path.starts_with(prefix) && (path.len() == prefix.len() || prefix.ends_with('/') || path.as_bytes()[prefix.len()] == b'/')
}

impl Plugin for PathAllow {
    fn new(config: &Config) -> Result<Self, ConfigError> {
        let e = |e: String| format!("pathallow: {}", e);
        config.deny_unknown(&["allow", "redirects"]).map_err(e)?;
        let allow = config.str_list("allow").map_err(e)?.ok_or_else(|| {
            "pathallow: config key \"allow\" is missing: the path prefixes to let through (KDL: allow \"/api\" \"/ok\", or allow (list)\"/api\" for one)".to_string()
        })?;
        Ok(PathAllow { allow, redirects: config.str_map("redirects").map_err(e)?.unwrap_or_default() })
    }

    fn on_request_headers(&mut self) -> Decision {
        let path = request::path();
        if let Some((_, loc)) = self.redirects.iter().find(|(p, _)| *p == path) {
            return Decision::redirect(301, loc);
        }
        if self.allow.iter().any(|p| under(&path, p)) {
            return Decision::Allow;
        }
        Decision::block(403)
            .body(r#"{"error":"path not allowed"}"#)
            .header("Content-Type", "application/json")
            .header("X-Blocked-By", "pathallow")
    }
}

sentinel_plugin::plugin!(PathAllow, on_request_headers);

#[cfg(test)]
mod tests {
    #[test]
    fn under() {
        assert!(super::under("/api", "/api"));
        assert!(super::under("/api/x", "/api"));
        assert!(super::under("/api/x", "/api/"));
        assert!(!super::under("/apix", "/api"));
        assert!(!super::under("/ap", "/api"));
    }
}
