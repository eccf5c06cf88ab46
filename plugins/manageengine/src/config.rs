//! The manageengine integration's configuration: its block of the agent config,
//! handed to the plugin as JSON.
//!
//! ```yaml
//! integrations:
//!   manageengine:
//!     enabled: true
//!     base_url: ${SITE24X7_OTLP_ENDPOINT}   # "OTLP Endpoint" from APM > OpenTelemetry
//!     api_key: ${SITE24X7_LICENSE_KEY}      # "API Key" from the same page
//!     signals: [metrics, logs]
//! ```
//!
//! Key names follow the older Go agent where they still mean something (`api_key`,
//! `base_url`, `tags`, `headers`, `timeout`, `tls_skip_verify`). Its `product`,
//! `account_id` (an undocumented `X-Account-ID` header), `monitor_group` and the
//! made-up `/api/v1/{metrics,logs,alerts}` endpoints are gone: Site24x7 and
//! OpManager Nexus take both signals on the one documented OTLP endpoint.
//!
//! The API key is a secret: `Debug` prints `***` in its place and it only goes
//! into the `api-key` header.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;

/// Default request timeout (the Go agent's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Which signal an instance sends (the integration takes metrics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// `/v1/metrics`.
    Metrics,
    /// `/v1/logs`.
    Logs,
}

impl Signal {
    /// The OTLP/HTTP path of the signal.
    pub fn path(self) -> &'static str {
        match self {
            Signal::Metrics => "/v1/metrics",
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
    /// `Content-Encoding: gzip`.
    Gzip,
}

/// Configuration of one manageengine instance.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The "OTLP Endpoint" shown under APM > OpenTelemetry (a base URL;
    /// `/v1/metrics` and `/v1/logs` are appended, as OpenTelemetry exporters do
    /// with `OTEL_EXPORTER_OTLP_ENDPOINT`).
    #[serde(deserialize_with = "string_or_null")]
    pub base_url: String,
    /// The "API Key" (license key) from the same page, sent as `api-key`.
    #[serde(deserialize_with = "string_or_null")]
    pub api_key: String,
    /// `service.name` for batches whose resource has none.
    #[serde(default)]
    pub service_name: Option<String>,
    /// Extra resource attributes (a batch's own attributes win).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Signals sent; spans in a batch are never sent.
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
    /// PEM file of extra CA certificates (an on-premises proxy's CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (testing only).
    #[serde(default)]
    pub tls_skip_verify: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("base_url", &self.base_url)
            .field("api_key", &"***")
            .field("signals", &self.signals)
            .finish_non_exhaustive()
    }
}

/// Reads a string where an empty `${VAR:-}` substitution left YAML `null`, so the
/// user gets "must not be empty" rather than a type error.
fn string_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

fn default_signals() -> Vec<Signal> {
    vec![Signal::Metrics, Signal::Logs]
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

/// Headers the plugin sets itself.
const RESERVED_HEADERS: [&str; 6] = [
    "api-key",
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
        if let Err(e) = check_url(&self.base_url) {
            errors.push(ConfigError::new("base_url", e));
        }
        let key = self.api_key.trim();
        if key.is_empty() {
            errors.push(ConfigError::new(
                "api_key",
                "must not be empty (APM > OpenTelemetry > API Key)",
            ));
        } else if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
            errors.push(ConfigError::new(
                "api_key",
                "must not contain spaces or control characters",
            ));
        }
        if self.signals.is_empty() {
            errors.push(ConfigError::new(
                "signals",
                "must name at least one of metrics, logs",
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

    /// The base URL without a trailing slash.
    pub fn base(&self) -> String {
        self.base_url.trim().trim_end_matches('/').to_string()
    }
}

/// An absolute `http://` or `https://` URL with a host and no query.
fn check_url(url: &str) -> Result<(), String> {
    let url = url.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            format!("{url:?} must be the https:// OTLP endpoint shown under APM > OpenTelemetry")
        })?;
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
    fn defaults() {
        let c = parse(r#"{"base_url": "https://otel.example.com/", "api_key": "k"}"#);
        assert!(c.validate().is_empty());
        assert_eq!(c.base(), "https://otel.example.com");
        assert_eq!(c.signals, vec![Signal::Metrics, Signal::Logs]);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn errors_carry_paths() {
        let c = parse(
            r#"{"base_url": "otel.example.com", "api_key": "", "signals": [],
                "headers": {"API-Key": "x"}, "timeout": "0ms"}"#,
        );
        assert_eq!(
            paths(&c),
            vec![
                "base_url",
                "api_key",
                "signals",
                "headers.API-Key",
                "timeout"
            ]
        );
        assert!(serde_json::from_str::<Config>(r#"{"api_key": "k"}"#).is_err());
        // An empty substitution (YAML null) is "empty", not a type error.
        let c = parse(r#"{"api_key": null, "base_url": null}"#);
        assert_eq!(paths(&c), vec!["base_url", "api_key"]);
        for old in ["product", "account_id", "monitor_group"] {
            let json = format!(r#"{{"base_url": "https://x", "api_key": "k", "{old}": "v"}}"#);
            assert!(serde_json::from_str::<Config>(&json).is_err(), "{old}");
        }
        assert!(serde_json::from_str::<Config>(
            r#"{"base_url": "https://x", "api_key": "k", "signals": ["traces"]}"#
        )
        .is_err());
    }

    #[test]
    fn debug_hides_the_key() {
        let c = parse(r#"{"base_url": "https://x", "api_key": "LICENSEKEY"}"#);
        let s = format!("{c:?}");
        assert!(!s.contains("LICENSEKEY") && s.contains("***"), "{s}");
    }
}
