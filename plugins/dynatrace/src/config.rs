//! The dynatrace integration's configuration: its block of the agent config, handed
//! to the plugin as JSON.
//!
//! ```yaml
//! integrations:
//!   dynatrace:
//!     enabled: true
//!     api_token: ${DT_API_TOKEN}           # scopes: metrics.ingest, logs.ingest, openTelemetryTrace.ingest
//!     environment_id: abc12345             # -> https://abc12345.live.dynatrace.com
//!     # environment_url: https://activegate:9999/e/abc12345   # instead of environment_id
//!     signals: [metrics, logs, traces]
//!     metric_prefix: tfo
//!     tags: { team: infra }
//!     timeout: 30s
//! ```
//!
//! Key names follow the older Go agent where they made sense (`api_token`,
//! `environment_id`, `environment_url`, `metrics_endpoint`, `logs_endpoint`,
//! `traces_endpoint`, `tags`, `headers`, `timeout`, `tls_skip_verify`). Unknown keys
//! are rejected (`deny_unknown_fields`); [`Config::validate`] adds the checks serde
//! cannot express, each with the path of the offending field.
//!
//! The API token is a secret: [`Config`]'s `Debug` prints `***` in its place, and
//! the token only ever goes into the `Authorization` header.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;

/// Default request timeout (the Go agent's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default lines per metrics request: the limit Dynatrace's own metric-utils
/// libraries use (`metricPayloadLinesLimit = 1000`).
pub const DEFAULT_MAX_LINES: usize = 1000;

/// Default log records per request (the API takes up to 50,000; smaller requests
/// keep a retry cheap).
pub const DEFAULT_MAX_LOGS: usize = 1000;

/// Log ingest API limit: records per request ("Log Management and Analytics default
/// limits").
pub const MAX_LOGS_LIMIT: usize = 50_000;

/// Which signal an instance sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// Metrics API v2 ingest (line protocol).
    Metrics,
    /// Log Monitoring API v2 ingest (JSON).
    Logs,
    /// OpenTelemetry trace ingest API (OTLP/HTTP protobuf).
    Traces,
}

/// Configuration of one dynatrace instance.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// API token (`Authorization: Api-Token <token>`). Secret.
    #[serde(deserialize_with = "string_or_null")]
    pub api_token: String,
    /// Environment id; the base URL becomes `https://<id>.live.dynatrace.com`.
    #[serde(default)]
    pub environment_id: Option<String>,
    /// Base URL instead of `environment_id` (Managed, an ActiveGate
    /// `https://host:9999/e/<id>`, a test server).
    #[serde(default)]
    pub environment_url: Option<String>,
    /// Full URL of the metrics ingest endpoint (default
    /// `<base>/api/v2/metrics/ingest`).
    #[serde(default)]
    pub metrics_endpoint: Option<String>,
    /// Full URL of the log ingest endpoint (default `<base>/api/v2/logs/ingest`).
    #[serde(default)]
    pub logs_endpoint: Option<String>,
    /// Full URL of the OTLP trace endpoint (default `<base>/api/v2/otlp/v1/traces`).
    #[serde(default)]
    pub traces_endpoint: Option<String>,
    /// Signals sent; others in a batch are ignored (a token may lack a scope).
    #[serde(default = "default_signals")]
    pub signals: Vec<Signal>,
    /// Prefix prepended to every metric key (`<prefix>.<name>`).
    #[serde(default)]
    pub metric_prefix: Option<String>,
    /// Extra dimensions on every metric line and attributes on every log record.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Add the batch's resource attributes (host.name, service.name...) as
    /// dimensions of every metric line.
    #[serde(default = "yes")]
    pub resource_dimensions: bool,
    /// Extra request headers (a proxy's, say).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Whole-request timeout.
    #[serde(
        default = "default_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub timeout: Duration,
    /// PEM file of extra CA certificates (a Managed cluster's or ActiveGate's CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (testing only).
    #[serde(default)]
    pub tls_skip_verify: bool,
    /// Metric lines per request.
    #[serde(default = "default_max_lines")]
    pub max_lines_per_request: usize,
    /// Log records per request.
    #[serde(default = "default_max_logs")]
    pub max_logs_per_request: usize,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("api_token", &"***")
            .field("environment_id", &self.environment_id)
            .field("environment_url", &self.environment_url)
            .field("signals", &self.signals)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Reads a string where an empty `${VAR:-}` substitution left YAML `null`, so the
/// user gets "must not be empty" rather than a type error.
fn string_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

fn default_signals() -> Vec<Signal> {
    vec![Signal::Metrics, Signal::Logs, Signal::Traces]
}
fn yes() -> bool {
    true
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_max_lines() -> usize {
    DEFAULT_MAX_LINES
}
fn default_max_logs() -> usize {
    DEFAULT_MAX_LOGS
}

/// Headers the plugin sets itself; a user value would break the request or leak
/// around the token handling.
const RESERVED_HEADERS: [&str; 6] = [
    "authorization",
    "content-type",
    "content-encoding",
    "content-length",
    "host",
    "transfer-encoding",
];

/// The endpoints derived from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Metrics ingest URL.
    pub metrics: String,
    /// Log ingest URL.
    pub logs: String,
    /// OTLP traces URL.
    pub traces: String,
}

impl Config {
    /// Returns every problem found (empty when usable), each with its field path.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let token = self.api_token.trim();
        if token.is_empty() {
            errors.push(ConfigError::new("api_token", "must not be empty"));
        } else if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
            errors.push(ConfigError::new(
                "api_token",
                "must not contain spaces or control characters",
            ));
        }
        match (&self.environment_id, &self.environment_url) {
            (None, None) => errors.push(ConfigError::new(
                "environment_id",
                "set `environment_id` (SaaS) or `environment_url`",
            )),
            (Some(id), None) => {
                if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    errors.push(ConfigError::new(
                        "environment_id",
                        format!("{id:?} is not an environment id (letters, digits, `-`)"),
                    ));
                }
            }
            (_, Some(url)) => {
                if let Err(e) = check_url(url) {
                    errors.push(ConfigError::new("environment_url", e));
                }
            }
        }
        for (path, url) in [
            ("metrics_endpoint", &self.metrics_endpoint),
            ("logs_endpoint", &self.logs_endpoint),
            ("traces_endpoint", &self.traces_endpoint),
        ] {
            if let Some(u) = url {
                if let Err(e) = check_url(u) {
                    errors.push(ConfigError::new(path, e));
                }
            }
        }
        if self.signals.is_empty() {
            errors.push(ConfigError::new(
                "signals",
                "must name at least one of metrics, logs, traces",
            ));
        }
        if let Some(p) = &self.metric_prefix {
            if crate::encode::normalize_metric_key(p).is_none() {
                errors.push(ConfigError::new(
                    "metric_prefix",
                    format!("{p:?} has no character allowed in a metric key"),
                ));
            }
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
        if self.max_lines_per_request == 0 {
            errors.push(ConfigError::new(
                "max_lines_per_request",
                "must be greater than 0",
            ));
        }
        if self.max_logs_per_request == 0 || self.max_logs_per_request > MAX_LOGS_LIMIT {
            errors.push(ConfigError::new(
                "max_logs_per_request",
                format!("must be between 1 and {MAX_LOGS_LIMIT} (the API's limit)"),
            ));
        }
        errors
    }

    /// The base URL without a trailing slash.
    pub fn base_url(&self) -> String {
        match (&self.environment_url, &self.environment_id) {
            (Some(u), _) => u.trim_end_matches('/').to_string(),
            (None, Some(id)) => format!("https://{id}.live.dynatrace.com"),
            (None, None) => String::new(),
        }
    }

    /// The three endpoint URLs.
    pub fn endpoints(&self) -> Endpoints {
        let base = self.base_url();
        Endpoints {
            metrics: self
                .metrics_endpoint
                .clone()
                .unwrap_or_else(|| format!("{base}/api/v2/metrics/ingest")),
            logs: self
                .logs_endpoint
                .clone()
                .unwrap_or_else(|| format!("{base}/api/v2/logs/ingest")),
            traces: self
                .traces_endpoint
                .clone()
                .unwrap_or_else(|| format!("{base}/api/v2/otlp/v1/traces")),
        }
    }

    /// Whether `s` is one of the configured signals.
    pub fn sends(&self, s: Signal) -> bool {
        self.signals.contains(&s)
    }
}

/// An absolute `http://` or `https://` URL with a host.
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must start with https:// or http://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} is not a valid URL"));
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
    fn defaults_and_endpoints() {
        let c = parse(r#"{"api_token": "dt0c01.x", "environment_id": "abc12345"}"#);
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.max_lines_per_request, 1000);
        assert!(c.sends(Signal::Traces));
        let e = c.endpoints();
        assert_eq!(
            e.metrics,
            "https://abc12345.live.dynatrace.com/api/v2/metrics/ingest"
        );
        assert_eq!(
            e.logs,
            "https://abc12345.live.dynatrace.com/api/v2/logs/ingest"
        );
        assert_eq!(
            e.traces,
            "https://abc12345.live.dynatrace.com/api/v2/otlp/v1/traces"
        );
        let c = parse(
            r#"{"api_token": "t", "environment_url": "https://ag:9999/e/abc/",
                "logs_endpoint": "https://other/logs"}"#,
        );
        let e = c.endpoints();
        assert_eq!(e.metrics, "https://ag:9999/e/abc/api/v2/metrics/ingest");
        assert_eq!(e.logs, "https://other/logs");
    }

    #[test]
    fn errors_carry_paths() {
        let c = parse(
            r#"{"api_token": " ", "signals": [], "timeout": "0s",
                "headers": {"Authorization": "x"}, "max_logs_per_request": 60000,
                "max_lines_per_request": 0, "metric_prefix": "!!!"}"#,
        );
        let p = paths(&c);
        for want in [
            "api_token",
            "environment_id",
            "signals",
            "timeout",
            "headers.Authorization",
            "max_logs_per_request",
            "max_lines_per_request",
            "metric_prefix",
        ] {
            assert!(p.contains(&want.to_string()), "{want} missing in {p:?}");
        }
        let c = parse(r#"{"api_token": "t", "environment_url": "ftp://x"}"#);
        assert_eq!(paths(&c), vec!["environment_url"]);
        let c = parse(r#"{"api_token": "t", "environment_id": "a b"}"#);
        assert_eq!(paths(&c), vec!["environment_id"]);
        // An empty substitution (YAML null) is "empty", not a type error.
        let c = parse(r#"{"api_token": null, "environment_id": null}"#);
        assert_eq!(paths(&c), vec!["api_token", "environment_id"]);
    }

    #[test]
    fn unknown_keys_and_bad_signals_are_rejected() {
        assert!(serde_json::from_str::<Config>(
            r#"{"api_token": "t", "environment_id": "a", "tokn": 1}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Config>(
            r#"{"api_token": "t", "environment_id": "a", "signals": ["events"]}"#
        )
        .is_err());
    }

    #[test]
    fn debug_hides_the_token() {
        let c = parse(r#"{"api_token": "dt0c01.SECRET", "environment_id": "a"}"#);
        let s = format!("{c:?}");
        assert!(!s.contains("SECRET"), "{s}");
        assert!(s.contains("***"), "{s}");
    }
}
