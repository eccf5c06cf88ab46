//! The otlp integration's configuration: the integration's block of the agent config,
//! handed to the plugin as JSON.
//!
//! ```yaml
//! integrations:
//!   otlp:
//!     enabled: true
//!     receiver:                      # OTLP/HTTP server (source); optional
//!       listen: 127.0.0.1:4318       # default; 4318 is the OTLP/HTTP port
//!       max_body_bytes: 4194304      # default 4 MiB, after gzip decompression too
//!     exporter:                      # OTLP/HTTP client (sink); optional
//!       endpoint: https://collector:4318   # /v1/{metrics,traces,logs} is appended
//!       headers: { authorization: "Bearer ${TOKEN}" }
//!       encoding: protobuf           # or json
//!       compression: none            # or gzip
//!       timeout: 10s
//!       ca_file: /etc/ssl/my-ca.pem
//!       insecure_skip_verify: false
//! ```
//!
//! Unknown keys are rejected (`deny_unknown_fields`) so a typo fails at load time;
//! type errors come back from the SDK with their field path, and [`Config::validate`]
//! adds the checks serde cannot express, each with its path (`exporter.endpoint`).
//! At least one of `receiver` and `exporter` must be present: an instance with
//! neither would do nothing.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;

/// Default listen address: loopback on the OTLP/HTTP default port 4318 (spec,
/// "OTLP/HTTP Default Port"). Loopback so that an agent started with the defaults
/// does not accept telemetry from the network until asked to.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4318";

/// Default request body limit: 4 MiB, applied to the body as sent and again to the
/// decompressed body (a small gzip body can expand without bound).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;

/// Default exporter request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Configuration of one otlp instance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The OTLP/HTTP receiver; absent means this instance receives nothing.
    #[serde(default)]
    pub receiver: Option<ReceiverConfig>,
    /// The OTLP/HTTP exporter; absent means batches given to `export` are refused.
    #[serde(default)]
    pub exporter: Option<ExporterConfig>,
}

/// The receiver block.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// `IP:port` to listen on (`[::]:4318` for all IPv6 and IPv4 addresses).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Largest request body accepted, compressed and decompressed; larger bodies get
    /// HTTP 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Requests accepted per second (token bucket, bursts up to one second's worth);
    /// beyond it HTTP 429 with `Retry-After: 1`, which OTLP clients retry. 0 = no limit.
    #[serde(default = "default_max_requests_per_second")]
    pub max_requests_per_second: u32,
    /// Connections served at once; more are closed on accept. 0 = no limit.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long a request waits, unread, for room while the agent's queue is full
    /// before it is answered 503 + `Retry-After`; `0s` answers at once.
    #[serde(
        default = "default_queue_wait",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub queue_wait: Duration,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            listen: default_listen(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_requests_per_second: default_max_requests_per_second(),
            max_connections: default_max_connections(),
            queue_wait: default_queue_wait(),
        }
    }
}

fn default_queue_wait() -> Duration {
    tfo_plugin_common::http_server::DEFAULT_QUEUE_WAIT
}

fn default_max_requests_per_second() -> u32 {
    2000
}

fn default_max_connections() -> u32 {
    256
}

/// Payload encoding of the exporter's requests (spec: "Binary Protobuf Encoding" and
/// "JSON Protobuf Encoding").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// `application/x-protobuf` (the default, smaller and faster).
    #[default]
    Protobuf,
    /// `application/json` (OTLP/JSON: hex ids, integer enums, 64-bit ints as strings).
    Json,
}

/// Request body compression of the exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Send bodies as they are (the default: the spec does not require servers to
    /// accept gzip).
    #[default]
    None,
    /// `Content-Encoding: gzip`.
    Gzip,
}

/// The exporter block.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExporterConfig {
    /// Base URL (`http://` or `https://`); `/v1/metrics`, `/v1/traces` and `/v1/logs`
    /// are appended as the spec's default paths.
    pub endpoint: String,
    /// Extra request headers (authentication, tenant ids).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `protobuf` (default) or `json`.
    #[serde(default)]
    pub encoding: Encoding,
    /// `none` (default) or `gzip`.
    #[serde(default)]
    pub compression: Compression,
    /// Whole-request timeout: `500ms`, `10s`, `1m`, or a number of seconds.
    #[serde(
        default = "default_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub timeout: Duration,
    /// PEM file of extra CA certificates trusted for `https://` endpoints.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (testing only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

fn default_listen() -> String {
    DEFAULT_LISTEN.to_string()
}

fn default_max_body_bytes() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

/// Headers the exporter sets itself; a user value would corrupt the request.
const RESERVED_HEADERS: [&str; 5] = [
    "content-type",
    "content-encoding",
    "content-length",
    "host",
    "transfer-encoding",
];

impl Config {
    /// Returns every problem found (empty when the config is usable), each with the
    /// path of the offending field.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if self.receiver.is_none() && self.exporter.is_none() {
            errors.push(ConfigError::new(
                "receiver",
                "at least one of `receiver` and `exporter` must be configured",
            ));
        }
        if let Some(r) = &self.receiver {
            if let Err(e) = r.listen_addr() {
                errors.push(ConfigError::new("receiver.listen", e));
            }
            if r.max_body_bytes == 0 {
                errors.push(ConfigError::new(
                    "receiver.max_body_bytes",
                    "must be greater than 0",
                ));
            }
        }
        if let Some(x) = &self.exporter {
            x.validate_into(&mut errors);
        }
        errors
    }
}

impl ReceiverConfig {
    /// The parsed listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.listen.trim().parse::<SocketAddr>().map_err(|_| {
            format!(
                "{:?} is not an IP:port address (e.g. 127.0.0.1:4318 or [::]:4318)",
                self.listen
            )
        })
    }
}

impl ExporterConfig {
    fn validate_into(&self, errors: &mut Vec<ConfigError>) {
        if let Err(e) = check_endpoint(&self.endpoint) {
            errors.push(ConfigError::new("exporter.endpoint", e));
        }
        for (name, value) in &self.headers {
            let path = format!("exporter.headers.{name}");
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                errors.push(ConfigError::new(path, "is not a valid HTTP header name"));
            } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                errors.push(ConfigError::new(
                    path,
                    "is set by the exporter itself and cannot be configured",
                ));
            } else if http::HeaderValue::from_str(value).is_err() {
                errors.push(ConfigError::new(
                    path,
                    "is not a valid HTTP header value (visible ASCII only)",
                ));
            }
        }
        if self.timeout.is_zero() {
            errors.push(ConfigError::new(
                "exporter.timeout",
                "must be greater than 0",
            ));
        }
        if let Some(ca) = &self.ca_file {
            if !ca.is_file() {
                errors.push(ConfigError::new(
                    "exporter.ca_file",
                    format!("{} is not a readable file", ca.display()),
                ));
            }
        }
    }

    /// The endpoint without a trailing `/`, so that `/v1/...` can be appended.
    pub fn base_url(&self) -> &str {
        self.endpoint.trim().trim_end_matches('/')
    }

    /// The URL a signal is posted to: `<endpoint>/v1/<signal>`.
    pub fn url(&self, signal: &str) -> String {
        format!("{}/v1/{signal}", self.base_url())
    }
}

fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let e = endpoint.trim();
    if e.is_empty() {
        return Err("must not be empty".into());
    }
    let uri: http::Uri = e
        .parse()
        .map_err(|err| format!("{e:?} is not a URL: {err}"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(format!("{e:?} must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{e:?} has no host"));
    }
    if uri.query().is_some() {
        return Err(format!(
            "{e:?} must not have a query: /v1/<signal> is appended to it"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, serde_json::Error> {
        serde_json::from_str(json)
    }

    fn paths(errors: &[ConfigError]) -> Vec<String> {
        errors.iter().map(|e| e.path.to_string()).collect()
    }

    #[test]
    fn receiver_defaults_apply() {
        let c = parse(r#"{"receiver": {}}"#).unwrap();
        let r = c.receiver.as_ref().unwrap();
        assert_eq!(r.listen, "127.0.0.1:4318");
        assert_eq!(r.max_body_bytes, 4 * 1024 * 1024);
        assert!(c.exporter.is_none());
        assert!(c.validate().is_empty(), "{:?}", c.validate());
    }

    #[test]
    fn exporter_defaults_apply() {
        let c = parse(r#"{"exporter": {"endpoint": "http://localhost:4318/"}}"#).unwrap();
        let x = c.exporter.as_ref().unwrap();
        assert_eq!(x.encoding, Encoding::Protobuf);
        assert_eq!(x.compression, Compression::None);
        assert_eq!(x.timeout, Duration::from_secs(10));
        assert!(!x.insecure_skip_verify);
        assert_eq!(x.url("traces"), "http://localhost:4318/v1/traces");
        assert!(c.validate().is_empty(), "{:?}", c.validate());
    }

    #[test]
    fn all_keys_parse() {
        let c = parse(
            r#"{"receiver": {"listen": "[::1]:0", "max_body_bytes": 10},
                "exporter": {"endpoint": "https://otel.example:4318/prefix",
                  "headers": {"authorization": "Bearer x", "x-tenant": "a"},
                  "encoding": "json", "compression": "gzip", "timeout": "250ms",
                  "insecure_skip_verify": true}}"#,
        )
        .unwrap();
        let x = c.exporter.as_ref().unwrap();
        assert_eq!(x.encoding, Encoding::Json);
        assert_eq!(x.compression, Compression::Gzip);
        assert_eq!(x.timeout, Duration::from_millis(250));
        assert_eq!(x.headers.len(), 2);
        assert_eq!(x.url("logs"), "https://otel.example:4318/prefix/v1/logs");
        assert!(c.validate().is_empty(), "{:?}", c.validate());
    }

    #[test]
    fn neither_block_is_an_error_with_a_path() {
        let c = parse("{}").unwrap();
        let errors = c.validate();
        assert_eq!(paths(&errors), ["receiver"]);
        assert!(errors[0].message.contains("exporter"), "{errors:?}");
    }

    #[test]
    fn unknown_keys_are_rejected_at_every_level() {
        for json in [
            r#"{"receivers": {}}"#,
            r#"{"receiver": {"port": 1}}"#,
            r#"{"exporter": {"endpoint": "http://x", "gzip": true}}"#,
        ] {
            let e = parse(json).unwrap_err();
            assert!(e.to_string().contains("unknown field"), "{json}: {e}");
        }
    }

    #[test]
    fn enum_values_are_checked() {
        assert!(parse(r#"{"exporter": {"endpoint": "http://x", "encoding": "xml"}}"#).is_err());
        assert!(parse(r#"{"exporter": {"endpoint": "http://x", "compression": "zstd"}}"#).is_err());
    }

    #[test]
    fn endpoint_is_required_in_the_exporter_block() {
        let e = parse(r#"{"exporter": {}}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `endpoint`"), "{e}");
    }

    #[test]
    fn bad_values_are_reported_with_their_paths() {
        let c = Config {
            receiver: Some(ReceiverConfig {
                listen: "localhost".into(),
                max_body_bytes: 0,
                ..ReceiverConfig::default()
            }),
            exporter: Some(ExporterConfig {
                endpoint: "ftp://x".into(),
                headers: [
                    ("bad name".to_string(), "v".to_string()),
                    ("Content-Type".to_string(), "text/plain".to_string()),
                    ("x-ok".to_string(), "line\nbreak".to_string()),
                ]
                .into_iter()
                .collect(),
                encoding: Encoding::Protobuf,
                compression: Compression::None,
                timeout: Duration::ZERO,
                ca_file: Some(PathBuf::from("/nonexistent/ca.pem")),
                insecure_skip_verify: false,
            }),
        };
        assert_eq!(
            paths(&c.validate()),
            [
                "receiver.listen",
                "receiver.max_body_bytes",
                "exporter.endpoint",
                "exporter.headers.Content-Type",
                "exporter.headers.bad name",
                "exporter.headers.x-ok",
                "exporter.timeout",
                "exporter.ca_file",
            ]
        );
    }

    #[test]
    fn endpoints_are_checked() {
        for bad in ["", "localhost:4318", "http://", "http://x/?a=b", "unix:/x"] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
        for good in ["http://127.0.0.1:4318", "https://h/p/", "http://[::1]:1"] {
            assert!(check_endpoint(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn timeouts_use_the_agent_duration_grammar() {
        let c = parse(r#"{"exporter": {"endpoint": "http://x", "timeout": 3}}"#).unwrap();
        assert_eq!(c.exporter.unwrap().timeout, Duration::from_secs(3));
        assert!(parse(r#"{"exporter": {"endpoint": "http://x", "timeout": -3}}"#).is_err());
        assert!(
            parse(r#"{"exporter": {"endpoint": "http://x", "timeout": "5 parsecs"}}"#).is_err()
        );
    }
}
