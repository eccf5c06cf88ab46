//! The sink's configuration: the integration's block of the agent config, handed to
//! the plugin as JSON.
//!
//! ```yaml
//! integrations:
//!   prometheus:
//!     enabled: true
//!     listen: 127.0.0.1:9464       # scrape endpoint ("" disables it)
//!     path: /metrics
//!     namespace: tfo               # optional metric-name prefix
//!     expire_after: 5m             # drop series not updated for this long
//!     remote_write:                # optional
//!       url: https://prom.example:9090/api/v1/write
//!       headers: { X-Scope-OrgID: team-a }
//!       basic_auth: { username: agent, password: "${PROM_PASSWORD}" }
//!       # or: bearer_token: "${PROM_TOKEN}"
//!       timeout: 10s
//!       ca_file: /etc/tfo/prom-ca.pem
//!       insecure_skip_verify: false
//! ```
//!
//! Unknown keys are rejected (`deny_unknown_fields`) so a typo fails at load time;
//! [`Config::validate`] adds what serde cannot check, each problem with its field
//! path. Secrets (passwords, tokens, header values) never appear in `Debug` output.

use std::{collections::BTreeMap, fmt, net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;
use tfo_plugin_common::config::duration;

/// Default scrape endpoint address: loopback only, OpenTelemetry's Prometheus
/// exporter port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
/// Default scrape path.
pub const DEFAULT_PATH: &str = "/metrics";
/// Default time a series stays on the scrape endpoint after its last update.
pub const DEFAULT_EXPIRE_AFTER: Duration = Duration::from_secs(300);
/// Default remote-write request timeout (below the host's 30 s call timeout, so a
/// hung backend is reported by the plugin, with its URL).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers the plugin sets itself on remote-write requests (the spec requires
/// their values), which `remote_write.headers` may not override.
pub const RESERVED_HEADERS: [&str; 5] = [
    "content-encoding",
    "content-type",
    "x-prometheus-remote-write-version",
    "content-length",
    "host",
];

/// Configuration of one Prometheus sink instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Scrape endpoint address (`ip:port`); an empty string disables the endpoint.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// HTTP path of the scrape endpoint.
    #[serde(default = "default_path")]
    pub path: String,
    /// Optional Prometheus remote write 1.0 target.
    #[serde(default)]
    pub remote_write: Option<RemoteWriteConfig>,
    /// Optional prefix of every metric name (`<namespace>_<name>`); empty means none.
    #[serde(default)]
    pub namespace: Option<String>,
    /// How long a series stays on the scrape endpoint after its last update (and
    /// how long delta sums keep their running total). A number is seconds.
    #[serde(default = "default_expire_after", deserialize_with = "duration")]
    pub expire_after: Duration,
}

/// Where and how to send remote-write requests.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// Receiver URL, e.g. `http://127.0.0.1:9090/api/v1/write`.
    pub url: String,
    /// Extra request headers (tenant ids and the like).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// HTTP Basic credentials.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// Bearer token (exclusive with `basic_auth`).
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Bound on one request, connect to last response byte.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Extra PEM CA certificates to trust besides the system store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Skip TLS certificate verification (test systems only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// HTTP Basic credentials.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: String,
}

impl fmt::Debug for RemoteWriteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted: BTreeMap<&str, &str> = self
            .headers
            .keys()
            .map(|k| (k.as_str(), "<redacted>"))
            .collect();
        f.debug_struct("RemoteWriteConfig")
            .field("url", &self.url)
            .field("headers", &redacted)
            .field("basic_auth", &self.basic_auth)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .finish()
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

fn default_listen() -> String {
    DEFAULT_LISTEN.to_string()
}
fn default_path() -> String {
    DEFAULT_PATH.to_string()
}
fn default_expire_after() -> Duration {
    DEFAULT_EXPIRE_AFTER
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

impl Config {
    /// The scrape endpoint's address, `None` when disabled. Call after
    /// [`Config::validate`] succeeded.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        let l = self.listen.trim();
        if l.is_empty() {
            None
        } else {
            l.parse().ok()
        }
    }

    /// The namespace, `None` when absent or empty.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref().filter(|n| !n.is_empty())
    }

    /// Every problem found (empty when usable), each with its field path.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let listen = self.listen.trim();
        if !listen.is_empty() {
            if listen.parse::<SocketAddr>().is_err() {
                errors.push(ConfigError::new(
                    "listen",
                    format!(
                        "invalid address {listen:?}: expected ip:port such as 127.0.0.1:9464 or [::]:9464 (empty disables the endpoint)"
                    ),
                ));
            }
            if !self.path.starts_with('/') || self.path.chars().any(|c| c.is_whitespace()) {
                errors.push(ConfigError::new(
                    "path",
                    format!(
                        "invalid path {:?}: must start with / and contain no spaces",
                        self.path
                    ),
                ));
            }
        } else if self.remote_write.is_none() {
            errors.push(ConfigError::new(
                "listen",
                "the scrape endpoint is disabled and no remote_write is configured: nothing to export to",
            ));
        }
        if let Some(ns) = self.namespace() {
            if !is_metric_name(ns) {
                errors.push(ConfigError::new(
                    "namespace",
                    format!("invalid namespace {ns:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*"),
                ));
            }
        }
        if self.expire_after.is_zero() {
            errors.push(ConfigError::new("expire_after", "must be greater than 0"));
        }
        if let Some(rw) = &self.remote_write {
            rw.validate(&mut errors);
        }
        errors
    }
}

impl RemoteWriteConfig {
    fn validate(&self, errors: &mut Vec<ConfigError>) {
        match self.url.parse::<http::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http") | Some("https"))
                    && uri.host().is_some_and(|h| !h.is_empty()) => {}
            _ => errors.push(ConfigError::new(
                "remote_write.url",
                format!(
                    "invalid URL {:?}: expected http(s)://host[:port]/path",
                    self.url
                ),
            )),
        }
        let mut has_authorization = false;
        for (name, value) in &self.headers {
            let path = format!("remote_write.headers.{name}");
            let lower = name.to_ascii_lowercase();
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                errors.push(ConfigError::new(path, "invalid header name"));
                continue;
            }
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                errors.push(ConfigError::new(
                    path,
                    "set by the plugin as the remote write spec requires; remove it",
                ));
                continue;
            }
            if http::HeaderValue::from_str(value).is_err() {
                errors.push(ConfigError::new(
                    path,
                    "invalid header value (control characters or non-ASCII)",
                ));
            }
            has_authorization |= lower == "authorization";
        }
        let auth_count = usize::from(self.basic_auth.is_some())
            + usize::from(self.bearer_token.is_some())
            + usize::from(has_authorization);
        if auth_count > 1 {
            errors.push(ConfigError::new(
                "remote_write",
                "use only one of basic_auth, bearer_token and an Authorization header",
            ));
        }
        if let Some(b) = &self.basic_auth {
            if b.username.is_empty() {
                errors.push(ConfigError::new(
                    "remote_write.basic_auth.username",
                    "must not be empty",
                ));
            } else if b.username.contains(':') {
                errors.push(ConfigError::new(
                    "remote_write.basic_auth.username",
                    "must not contain ':' (RFC 7617)",
                ));
            }
        }
        if let Some(t) = &self.bearer_token {
            if t.is_empty() || http::HeaderValue::from_str(t).is_err() {
                errors.push(ConfigError::new(
                    "remote_write.bearer_token",
                    "must be a non-empty token of visible ASCII characters",
                ));
            }
        }
        if self.timeout.is_zero() {
            errors.push(ConfigError::new(
                "remote_write.timeout",
                "must be greater than 0",
            ));
        }
        if let Some(ca) = &self.ca_file {
            if let Err(e) = tfo_plugin_common::http::load_pem_certs(ca) {
                errors.push(ConfigError::new("remote_write.ca_file", e));
            }
        }
    }
}

/// True for a valid Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, serde_json::Error> {
        serde_json::from_str(json)
    }

    fn paths(c: &Config) -> Vec<String> {
        c.validate().iter().map(|e| e.path.to_string()).collect()
    }

    #[test]
    fn defaults() {
        let c = parse("{}").unwrap();
        assert_eq!(c.listen, "127.0.0.1:9464");
        assert_eq!(c.path, "/metrics");
        assert_eq!(c.expire_after, Duration::from_secs(300));
        assert!(c.remote_write.is_none());
        assert_eq!(c.namespace(), None);
        assert_eq!(c.listen_addr(), Some("127.0.0.1:9464".parse().unwrap()));
        assert!(c.validate().is_empty());
    }

    #[test]
    fn every_key_parses() {
        let c = parse(
            r#"{"listen": "[::1]:9100", "path": "/m", "namespace": "tfo", "expire_after": "2m",
                "remote_write": {"url": "https://h:9090/api/v1/write", "headers": {"X-Scope-OrgID": "a"},
                  "bearer_token": "t0k", "timeout": "5s", "insecure_skip_verify": true}}"#,
        )
        .unwrap();
        assert_eq!(c.expire_after, Duration::from_secs(120));
        assert_eq!(c.namespace(), Some("tfo"));
        let rw = c.remote_write.as_ref().unwrap();
        assert_eq!(rw.timeout, Duration::from_secs(5));
        assert_eq!(rw.headers["X-Scope-OrgID"], "a");
        assert!(rw.insecure_skip_verify);
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        // Secrets stay out of Debug output.
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("t0k") && !dbg.contains("\"a\""), "{dbg}");
    }

    #[test]
    fn expire_after_accepts_seconds() {
        assert_eq!(
            parse(r#"{"expire_after": 30}"#).unwrap().expire_after,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn unknown_keys_are_rejected_at_both_levels() {
        let e = parse(r#"{"listn": ""}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `listn`"), "{e}");
        let e = parse(r#"{"remote_write": {"url": "http://h/", "tiemout": 1}}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `tiemout`"), "{e}");
        let e = parse(r#"{"remote_write": {"url": "http://h/", "basic_auth": {"user": "x"}}}"#)
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `user`"), "{e}");
    }

    #[test]
    fn remote_write_needs_a_url() {
        let e = parse(r#"{"remote_write": {}}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `url`"), "{e}");
    }

    #[test]
    fn bad_values_are_reported_with_paths() {
        let c = parse(
            r#"{"listen": "localhost", "path": "metrics", "namespace": "1x", "expire_after": 0}"#,
        )
        .unwrap();
        assert_eq!(paths(&c), ["listen", "path", "namespace", "expire_after"]);
    }

    #[test]
    fn nothing_to_do_is_an_error() {
        let c = parse(r#"{"listen": ""}"#).unwrap();
        assert_eq!(paths(&c), ["listen"]);
        // With remote write only, the path is not checked.
        let c =
            parse(r#"{"listen": "", "path": "x", "remote_write": {"url": "http://h/w"}}"#).unwrap();
        assert!(c.validate().is_empty());
        assert_eq!(c.listen_addr(), None);
    }

    #[test]
    fn empty_namespace_means_none() {
        let c = parse(r#"{"namespace": ""}"#).unwrap();
        assert_eq!(c.namespace(), None);
        assert!(c.validate().is_empty());
    }

    #[test]
    fn remote_write_checks() {
        let c = parse(
            r#"{"listen": "", "remote_write": {"url": "ftp://h/", "timeout": 0,
                "headers": {"Content-Type": "x", "bad name": "v", "X-Ok": "bad\u0001"},
                "basic_auth": {"username": ""}, "bearer_token": "t",
                "ca_file": "/nonexistent/ca.pem"}}"#,
        )
        .unwrap();
        assert_eq!(
            paths(&c),
            [
                "remote_write.url",
                "remote_write.headers.Content-Type",
                "remote_write.headers.X-Ok",
                "remote_write.headers.bad name",
                "remote_write",
                "remote_write.basic_auth.username",
                "remote_write.timeout",
                "remote_write.ca_file",
            ]
        );
    }

    #[test]
    fn authorization_header_conflicts_with_auth_blocks() {
        let c = parse(
            r#"{"remote_write": {"url": "http://h/", "headers": {"authorization": "Bearer x"},
                "bearer_token": "y"}}"#,
        )
        .unwrap();
        assert_eq!(paths(&c), ["remote_write"]);
        let c = parse(
            r#"{"remote_write": {"url": "http://h/", "headers": {"Authorization": "Bearer x"}}}"#,
        )
        .unwrap();
        assert!(c.validate().is_empty());
    }

    #[test]
    fn metric_name_rule() {
        for ok in ["a", "_x", "a:b_c9", "tfo"] {
            assert!(is_metric_name(ok), "{ok}");
        }
        for bad in ["", "9a", "a-b", "a.b", "é"] {
            assert!(!is_metric_name(bad), "{bad}");
        }
    }
}
