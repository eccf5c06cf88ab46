//! The sink's configuration: the integration's block of the agent config, handed to
//! the plugin as JSON.
//!
//! ```yaml
//! integrations:
//!   splunk:
//!     enabled: true
//!     endpoint: https://splunk.example:8088    # /services/collector/event is appended
//!     token: "${SPLUNK_HEC_TOKEN}"
//!     index: main                 # events (logs, spans); empty = the token's default
//!     metrics_index: metrics      # metric events; default = index
//!     source: tfo-agent
//!     source_type: { logs: "tfo-agent:log", traces: "tfo-agent:span", metrics: "tfo-agent:metric" }
//!     # or one string for all three: source_type: tfo-agent
//!     host: ""                    # default: the resource's host.name
//!     metrics: true
//!     logs: true
//!     traces: true
//!     batch_size: 100             # events per request
//!     max_request_bytes: 1048576  # uncompressed request body
//!     compression: none           # or gzip
//!     timeout: 10s
//!     ack: false                  # indexer acknowledgement
//!     ack_timeout: 20s
//!     ack_poll_interval: 500ms
//!     tls:
//!       ca_file: /etc/tfo/splunk-ca.pem
//!       insecure_skip_verify: false
//! ```
//!
//! Key names follow the ones users of the older agent know (`endpoint`, `token`,
//! `index`, `source`, `source_type`, `batch_size`, `timeout`, the `metrics` / `logs`
//! / `traces` switches, a nested `tls` block). An `endpoint` written the old way,
//! with `/services/collector` or `/services/collector/event` at the end, is
//! accepted and the suffix is not repeated.
//!
//! Unknown keys are rejected (`deny_unknown_fields`) so a typo fails at load time;
//! [`Config::validate`] adds what serde cannot check, each problem with its field
//! path. The token never appears in `Debug` output.

use std::{fmt, path::PathBuf, time::Duration};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;
use tfo_plugin_common::config::duration;

/// Path of the HEC JSON event endpoint, appended to `endpoint`.
pub const EVENT_PATH: &str = "/services/collector/event";
/// Path of the indexer acknowledgement endpoint, appended to `endpoint`.
pub const ACK_PATH: &str = "/services/collector/ack";
/// Default `source`.
pub const DEFAULT_SOURCE: &str = "tfo-agent";
/// Default sourcetype of log events.
pub const DEFAULT_LOGS_SOURCETYPE: &str = "tfo-agent:log";
/// Default sourcetype of span events.
pub const DEFAULT_TRACES_SOURCETYPE: &str = "tfo-agent:span";
/// Default sourcetype of metric events.
pub const DEFAULT_METRICS_SOURCETYPE: &str = "tfo-agent:metric";
/// Default number of events in one request.
pub const DEFAULT_BATCH_SIZE: usize = 100;
/// Default bound on one (uncompressed) request body: 1 MiB, the limit Splunk
/// recommends for HEC requests and far below the server's `max_content_length`.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Default bound on one HTTP exchange (below the host's 30 s call timeout).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time to wait for indexer acknowledgement of a batch (with the sends,
/// it must stay below the host's `pipeline.call_timeout`, 30 s by default).
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(20);
/// Default pause between two acknowledgement polls.
pub const DEFAULT_ACK_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Request body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain JSON.
    #[default]
    None,
    /// `Content-Encoding: gzip` (HEC accepts it on every endpoint).
    Gzip,
}

/// `source_type`: one string for every signal, or one per signal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum SourceTypeConfig {
    /// The same sourcetype for logs, spans and metrics (the older agent's shape).
    All(String),
    /// One per signal; a missing one keeps its default.
    PerSignal(SourceTypes),
}

/// One sourcetype per signal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTypes {
    /// Sourcetype of log events.
    #[serde(default = "default_logs_st")]
    pub logs: String,
    /// Sourcetype of span events.
    #[serde(default = "default_traces_st")]
    pub traces: String,
    /// Sourcetype of metric events.
    #[serde(default = "default_metrics_st")]
    pub metrics: String,
}

impl Default for SourceTypes {
    fn default() -> Self {
        SourceTypes {
            logs: default_logs_st(),
            traces: default_traces_st(),
            metrics: default_metrics_st(),
        }
    }
}

/// TLS settings of the HEC connection (verification is always on unless
/// `insecure_skip_verify` says otherwise).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Extra PEM CA certificates to trust besides the system store: Splunk's HEC
    /// serves a certificate signed by Splunk's own default CA unless replaced.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (test systems only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Configuration of one Splunk HEC sink instance.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base URL of the HEC, e.g. `https://splunk.example:8088`.
    pub endpoint: String,
    /// The HEC token (a GUID), sent as `Authorization: Splunk <token>`.
    pub token: String,
    /// Index of log and span events; empty means the token's default index.
    #[serde(default)]
    pub index: String,
    /// Index of metric events (must be a metrics index); default `index`.
    #[serde(default)]
    pub metrics_index: Option<String>,
    /// `source` of every event.
    #[serde(default = "default_source")]
    pub source: String,
    /// Sourcetypes.
    #[serde(default)]
    pub source_type: Option<SourceTypeConfig>,
    /// `host` of every event; empty means the resource's `host.name` (and none
    /// when that is absent: Splunk then uses the sender's address).
    #[serde(default)]
    pub host: String,
    /// Send metrics.
    #[serde(default = "yes")]
    pub metrics: bool,
    /// Send logs.
    #[serde(default = "yes")]
    pub logs: bool,
    /// Send spans.
    #[serde(default = "yes")]
    pub traces: bool,
    /// Most events in one request.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Most bytes in one uncompressed request body; a single larger event is
    /// dropped and counted.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// Request body compression.
    #[serde(default)]
    pub compression: Compression,
    /// Bound on one HTTP exchange.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Wait for indexer acknowledgement before reporting a batch delivered.
    #[serde(default)]
    pub ack: bool,
    /// How long to wait for the acknowledgements of one batch.
    #[serde(default = "default_ack_timeout", deserialize_with = "duration")]
    pub ack_timeout: Duration,
    /// Pause between acknowledgement polls.
    #[serde(default = "default_ack_poll_interval", deserialize_with = "duration")]
    pub ack_poll_interval: Duration,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsConfig,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("endpoint", &self.endpoint)
            .field("token", &"<redacted>")
            .field("index", &self.index)
            .field("metrics_index", &self.metrics_index)
            .field("source", &self.source)
            .field("source_type", &self.source_type)
            .field("host", &self.host)
            .field("metrics", &self.metrics)
            .field("logs", &self.logs)
            .field("traces", &self.traces)
            .field("batch_size", &self.batch_size)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("compression", &self.compression)
            .field("timeout", &self.timeout)
            .field("ack", &self.ack)
            .field("ack_timeout", &self.ack_timeout)
            .field("ack_poll_interval", &self.ack_poll_interval)
            .field("tls", &self.tls)
            .finish()
    }
}

fn yes() -> bool {
    true
}
fn default_source() -> String {
    DEFAULT_SOURCE.to_string()
}
fn default_logs_st() -> String {
    DEFAULT_LOGS_SOURCETYPE.to_string()
}
fn default_traces_st() -> String {
    DEFAULT_TRACES_SOURCETYPE.to_string()
}
fn default_metrics_st() -> String {
    DEFAULT_METRICS_SOURCETYPE.to_string()
}
fn default_batch_size() -> usize {
    DEFAULT_BATCH_SIZE
}
fn default_max_request_bytes() -> usize {
    DEFAULT_MAX_REQUEST_BYTES
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_ack_timeout() -> Duration {
    DEFAULT_ACK_TIMEOUT
}
fn default_ack_poll_interval() -> Duration {
    DEFAULT_ACK_POLL_INTERVAL
}

impl Config {
    /// The endpoint without a trailing `/`, `/services/collector` or
    /// `/services/collector/event` (the older agent's full-URL form).
    pub fn base_url(&self) -> &str {
        let mut base = self.endpoint.trim().trim_end_matches('/');
        for suffix in [EVENT_PATH, "/services/collector"] {
            if let Some(b) = base.strip_suffix(suffix) {
                base = b;
                break;
            }
        }
        base
    }

    /// URL of the event endpoint.
    pub fn event_url(&self) -> String {
        format!("{}{EVENT_PATH}", self.base_url())
    }

    /// URL of the acknowledgement endpoint.
    pub fn ack_url(&self) -> String {
        format!("{}{ACK_PATH}", self.base_url())
    }

    /// The sourcetypes in effect.
    pub fn source_types(&self) -> SourceTypes {
        match &self.source_type {
            None => SourceTypes::default(),
            Some(SourceTypeConfig::All(s)) => SourceTypes {
                logs: s.clone(),
                traces: s.clone(),
                metrics: s.clone(),
            },
            Some(SourceTypeConfig::PerSignal(p)) => p.clone(),
        }
    }

    /// The index of metric events.
    pub fn metrics_index(&self) -> &str {
        self.metrics_index.as_deref().unwrap_or(&self.index)
    }

    /// Every problem found (empty when usable), each with its field path.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let url_ok = match self.endpoint.trim().parse::<http::Uri>() {
            Ok(uri) => {
                matches!(uri.scheme_str(), Some("http") | Some("https"))
                    && uri.host().is_some_and(|h| !h.is_empty())
                    && uri.query().is_none()
            }
            Err(_) => false,
        };
        if !url_ok {
            errors.push(ConfigError::new(
                "endpoint",
                format!(
                    "invalid URL {:?}: expected https://host:8088 (the HEC base URL, without a query string)",
                    self.endpoint
                ),
            ));
        }
        if self.token.trim().is_empty() {
            errors.push(ConfigError::new("token", "must not be empty"));
        } else if http::HeaderValue::from_str(&format!("Splunk {}", self.token)).is_err() {
            errors.push(ConfigError::new(
                "token",
                "must be visible ASCII (a HEC token is a GUID)",
            ));
        }
        for (path, value) in [
            ("index", self.index.as_str()),
            ("metrics_index", self.metrics_index.as_deref().unwrap_or("")),
            ("source", self.source.as_str()),
            ("host", self.host.as_str()),
        ] {
            if value.chars().any(char::is_control) {
                errors.push(ConfigError::new(
                    path,
                    "must not contain control characters",
                ));
            }
        }
        if let Some(st) = &self.source_type {
            let all = match st {
                SourceTypeConfig::All(s) => vec![("source_type", s)],
                SourceTypeConfig::PerSignal(p) => vec![
                    ("source_type.logs", &p.logs),
                    ("source_type.traces", &p.traces),
                    ("source_type.metrics", &p.metrics),
                ],
            };
            for (path, s) in all {
                if s.trim().is_empty() || s.chars().any(char::is_control) {
                    errors.push(ConfigError::new(
                        path,
                        "must be a non-empty sourcetype without control characters",
                    ));
                }
            }
        }
        if !(self.metrics || self.logs || self.traces) {
            errors.push(ConfigError::new(
                "metrics",
                "metrics, logs and traces are all false: nothing to send",
            ));
        }
        if self.batch_size == 0 {
            errors.push(ConfigError::new("batch_size", "must be at least 1"));
        }
        if self.max_request_bytes < 1024 {
            errors.push(ConfigError::new(
                "max_request_bytes",
                "must be at least 1024 bytes",
            ));
        }
        if self.timeout.is_zero() {
            errors.push(ConfigError::new("timeout", "must be greater than 0"));
        }
        if self.ack {
            if self.ack_timeout.is_zero() {
                errors.push(ConfigError::new("ack_timeout", "must be greater than 0"));
            }
            if self.ack_poll_interval.is_zero() {
                errors.push(ConfigError::new(
                    "ack_poll_interval",
                    "must be greater than 0",
                ));
            } else if self.ack_poll_interval > self.ack_timeout {
                errors.push(ConfigError::new(
                    "ack_poll_interval",
                    "must not be longer than ack_timeout",
                ));
            }
        }
        if let Some(ca) = &self.tls.ca_file {
            if let Err(e) = tfo_plugin_common::http::load_pem_certs(ca) {
                errors.push(ConfigError::new("tls.ca_file", e));
            }
        }
        errors
    }
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
        let c = parse(r#"{"endpoint": "https://s:8088", "token": "t"}"#).unwrap();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.event_url(), "https://s:8088/services/collector/event");
        assert_eq!(c.ack_url(), "https://s:8088/services/collector/ack");
        assert_eq!(c.source, "tfo-agent");
        assert_eq!(c.source_types(), SourceTypes::default());
        assert_eq!(c.metrics_index(), "");
        assert!(c.metrics && c.logs && c.traces && !c.ack);
        assert_eq!(c.batch_size, 100);
        assert_eq!(c.max_request_bytes, 1 << 20);
        assert_eq!(c.compression, Compression::None);
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert!(!c.tls.insecure_skip_verify && c.tls.ca_file.is_none());
    }

    #[test]
    fn old_full_url_endpoints_are_accepted() {
        for e in [
            "https://s:8088/services/collector",
            "https://s:8088/services/collector/",
            "https://s:8088/services/collector/event",
            "https://s:8088/",
        ] {
            let c = parse(&format!(r#"{{"endpoint": "{e}", "token": "t"}}"#)).unwrap();
            assert_eq!(
                c.event_url(),
                "https://s:8088/services/collector/event",
                "{e}"
            );
        }
        // A path prefix (a proxy) is kept.
        let c = parse(r#"{"endpoint": "https://p/splunk", "token": "t"}"#).unwrap();
        assert_eq!(c.ack_url(), "https://p/splunk/services/collector/ack");
    }

    #[test]
    fn source_type_string_or_map() {
        let c = parse(r#"{"endpoint": "http://s", "token": "t", "source_type": "x"}"#).unwrap();
        let st = c.source_types();
        assert_eq!(
            (st.logs.as_str(), st.traces.as_str(), st.metrics.as_str()),
            ("x", "x", "x")
        );
        let c = parse(
            r#"{"endpoint": "http://s", "token": "t", "source_type": {"logs": "l"}, "metrics_index": "m"}"#,
        )
        .unwrap();
        let st = c.source_types();
        assert_eq!(st.logs, "l");
        assert_eq!(st.traces, DEFAULT_TRACES_SOURCETYPE);
        assert_eq!(c.metrics_index(), "m");
        assert!(
            parse(r#"{"endpoint": "http://s", "token": "t", "source_type": {"log": "l"}}"#)
                .is_err()
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        assert!(parse(r#"{"endpoint": "http://s", "token": "t", "hec_token": "x"}"#).is_err());
        assert!(parse(r#"{"endpoint": "http://s", "token": "t", "compression": "zstd"}"#).is_err());
        assert!(
            parse(r#"{"endpoint": "http://s", "token": "t", "tls": {"skip_verify": true}}"#)
                .is_err()
        );
        let c = parse(
            r#"{"endpoint": "ftp://s?x=1", "token": " ", "batch_size": 0, "max_request_bytes": 10,
                "timeout": 0, "ack": true, "ack_timeout": "1s", "ack_poll_interval": "2s",
                "metrics": false, "logs": false, "traces": false, "source_type": "",
                "tls": {"ca_file": "/nonexistent/ca.pem"}}"#,
        )
        .unwrap();
        assert_eq!(
            paths(&c),
            [
                "endpoint",
                "token",
                "source_type",
                "metrics",
                "batch_size",
                "max_request_bytes",
                "timeout",
                "ack_poll_interval",
                "tls.ca_file"
            ]
        );
    }

    #[test]
    fn the_token_is_redacted() {
        let c = parse(r#"{"endpoint": "http://s", "token": "secret-guid"}"#).unwrap();
        assert!(!format!("{c:?}").contains("secret-guid"));
    }
}
