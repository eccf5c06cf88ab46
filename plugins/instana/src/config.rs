//! The instana integration's configuration: its block of the agent config, handed
//! to the plugin as JSON.
//!
//! ```yaml
//! integrations:
//!   instana:
//!     enabled: true
//!     mode: backend                 # or agent (a local Instana host agent)
//!     agent_key: ${INSTANA_AGENT_KEY}
//!     region: orange                # -> https://otlp-orange-saas.instana.io:4318
//!     # endpoint_url: https://otlp.instana.example.com:443   # self-hosted
//!     host_id: web-1                # x-instana-host (else the resource's host.name)
//! ```
//!
//! Key names follow the older Go agent where they still mean something here
//! (`agent_key`, `endpoint_url`, `host_id`, `service_name`, `tags`, `headers`,
//! `timeout`, `tls_skip_verify`). Its `zone` (sent as an undocumented
//! `X-INSTANA-ZONE` header) and its per-signal made-up endpoints are gone.
//!
//! The agent key is a secret: `Debug` prints `***` in its place and it only goes
//! into the `x-instana-key` header.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;

/// Default request timeout (the Go agent's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default endpoint in agent mode: the host agent's OTLP/HTTP port.
pub const DEFAULT_AGENT_ENDPOINT: &str = "http://localhost:4318";

/// Where the data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Straight to the Instana backend's otlp-acceptor (SaaS or self-hosted),
    /// authenticated with the agent key.
    #[default]
    Backend,
    /// To an Instana host agent's OTLP receiver, which forwards to the backend.
    Agent,
}

/// Which signal an instance sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// `/v1/metrics`.
    Metrics,
    /// `/v1/traces`.
    Traces,
    /// `/v1/logs`.
    Logs,
}

impl Signal {
    /// The OTLP/HTTP path of the signal.
    pub fn path(self) -> &'static str {
        match self {
            Signal::Metrics => "/v1/metrics",
            Signal::Traces => "/v1/traces",
            Signal::Logs => "/v1/logs",
        }
    }
}

/// Request body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// As is.
    #[default]
    None,
    /// `Content-Encoding: gzip` (OTLP/HTTP allows it).
    Gzip,
}

/// Configuration of one instana instance.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `backend` (default) or `agent`.
    #[serde(default)]
    pub mode: Mode,
    /// Instana agent key, sent as `x-instana-key`. Required in backend mode.
    #[serde(default)]
    pub agent_key: Option<String>,
    /// SaaS region colour (`orange`, `blue`, `coral`, `magenta`, `red`,
    /// `green`...): endpoint `https://otlp-<region>-saas.instana.io:4318`.
    #[serde(default)]
    pub region: Option<String>,
    /// OTLP/HTTP base URL instead (self-hosted, a proxy, a test server);
    /// `/v1/<signal>` is appended.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Host identity sent as `x-instana-host` (Instana needs a `host.id`,
    /// `faas.id` or `device.id` resource attribute, or this header).
    #[serde(default)]
    pub host_id: Option<String>,
    /// `service.name` for batches whose resource has none.
    #[serde(default)]
    pub service_name: Option<String>,
    /// Extra resource attributes (a batch's own attributes win).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Signals sent; the rest of a batch is ignored.
    #[serde(default = "default_signals")]
    pub signals: Vec<Signal>,
    /// `none` (default) or `gzip`.
    #[serde(default)]
    pub compression: Compression,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Whole-request timeout.
    #[serde(
        default = "default_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub timeout: Duration,
    /// PEM file of extra CA certificates (a self-hosted backend's CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (testing only).
    #[serde(default)]
    pub tls_skip_verify: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("mode", &self.mode)
            .field("agent_key", &self.agent_key.as_ref().map(|_| "***"))
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("host_id", &self.host_id)
            .field("signals", &self.signals)
            .finish_non_exhaustive()
    }
}

fn default_signals() -> Vec<Signal> {
    vec![Signal::Metrics, Signal::Traces, Signal::Logs]
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

/// Headers the plugin sets itself.
const RESERVED_HEADERS: [&str; 7] = [
    "x-instana-key",
    "x-instana-host",
    "content-type",
    "content-encoding",
    "content-length",
    "host",
    "transfer-encoding",
];

impl Config {
    /// Returns every problem found (empty when usable), each with its field path.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        match &self.agent_key {
            None if self.mode == Mode::Backend => errors.push(ConfigError::new(
                "agent_key",
                "required in backend mode (Settings > Agent Keys in Instana)",
            )),
            Some(k) if k.trim().is_empty() => {
                errors.push(ConfigError::new("agent_key", "must not be empty"))
            }
            Some(k)
                if k.trim()
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace()) =>
            {
                errors.push(ConfigError::new(
                    "agent_key",
                    "must not contain spaces or control characters",
                ))
            }
            _ => {}
        }
        match (&self.endpoint_url, &self.region) {
            (Some(u), _) => {
                if let Err(e) = check_url(u) {
                    errors.push(ConfigError::new("endpoint_url", e));
                }
            }
            (None, Some(r)) => {
                if r.is_empty() || !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    errors.push(ConfigError::new(
                        "region",
                        format!("{r:?} is not a region name (e.g. orange, blue, coral)"),
                    ));
                }
            }
            (None, None) if self.mode == Mode::Backend => errors.push(ConfigError::new(
                "region",
                "set `region` (SaaS) or `endpoint_url` (self-hosted)",
            )),
            (None, None) => {}
        }
        if let Some(h) = &self.host_id {
            if h.trim().is_empty() || tfo_plugin_common::http::HeaderValue::from_str(h).is_err() {
                errors.push(ConfigError::new(
                    "host_id",
                    "must be a non-empty header value",
                ));
            }
        }
        if self.signals.is_empty() {
            errors.push(ConfigError::new(
                "signals",
                "must name at least one of metrics, traces, logs",
            ));
        }
        for (name, value) in &self.headers {
            let path = format!("headers.{name}");
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                errors.push(ConfigError::new(path, "is set by the plugin itself"));
            } else if tfo_plugin_common::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                errors.push(ConfigError::new(path, "is not a valid header name"));
            } else if tfo_plugin_common::http::HeaderValue::from_str(value).is_err() {
                errors.push(ConfigError::new(path, "is not a valid header value"));
            }
        }
        if self.timeout.is_zero() {
            errors.push(ConfigError::new("timeout", "must be greater than 0"));
        }
        errors
    }

    /// The OTLP/HTTP base URL, without a trailing slash.
    pub fn base_url(&self) -> String {
        match (&self.endpoint_url, &self.region, self.mode) {
            (Some(u), _, _) => u.trim_end_matches('/').to_string(),
            (None, Some(r), _) => format!("https://otlp-{r}-saas.instana.io:4318"),
            (None, None, _) => DEFAULT_AGENT_ENDPOINT.to_string(),
        }
    }

    /// Whether `s` is configured.
    pub fn sends(&self, s: Signal) -> bool {
        self.signals.contains(&s)
    }
}

/// An absolute `http://` or `https://` URL with a host and no query.
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must start with https:// or http://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty()
        || url.contains(['?', '#'])
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{url:?} is not a base URL (scheme, host, optional port and path; no query)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Config {
        serde_json::from_str(json).unwrap()
    }

    fn paths(c: &Config) -> Vec<String> {
        c.validate()
            .into_iter()
            .map(|e| e.path.to_string())
            .collect()
    }

    #[test]
    fn endpoints() {
        let c = parse(r#"{"agent_key": "k", "region": "orange"}"#);
        assert!(c.validate().is_empty());
        assert_eq!(c.base_url(), "https://otlp-orange-saas.instana.io:4318");
        let c = parse(r#"{"agent_key": "k", "endpoint_url": "https://otlp.example:443/"}"#);
        assert_eq!(c.base_url(), "https://otlp.example:443");
        let c = parse(r#"{"mode": "agent"}"#);
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.base_url(), "http://localhost:4318");
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert!(c.sends(Signal::Logs));
    }

    #[test]
    fn errors_carry_paths() {
        assert_eq!(paths(&parse("{}")), vec!["agent_key", "region"]);
        let c = parse(
            r#"{"agent_key": "a b", "endpoint_url": "https://x/?q=1", "signals": [],
                "headers": {"X-Instana-Key": "k", "bad name": "v"}, "timeout": 0,
                "host_id": " "}"#,
        );
        assert_eq!(
            paths(&c),
            vec![
                "agent_key",
                "endpoint_url",
                "host_id",
                "signals",
                "headers.X-Instana-Key",
                "headers.bad name",
                "timeout"
            ]
        );
        let c = parse(r#"{"agent_key": "k", "region": "or ange"}"#);
        assert_eq!(paths(&c), vec!["region"]);
        assert!(serde_json::from_str::<Config>(r#"{"zone": "x"}"#).is_err());
    }

    #[test]
    fn debug_hides_the_key() {
        let c = parse(r#"{"agent_key": "SECRETKEY", "region": "blue"}"#);
        let s = format!("{c:?}");
        assert!(!s.contains("SECRETKEY") && s.contains("***"), "{s}");
    }
}
