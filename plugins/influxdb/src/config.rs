//! The sink's configuration: the integration's block of the agent config, handed to
//! the plugin as JSON.
//!
//! The key names are the ones users of the older Go agent know (`url`, `database`,
//! `retention_policy`, `username`, `password`, `organization`, `bucket`, `token`,
//! `precision`, `timeout`, `batch_size`, `headers`, `tls_skip_verify`), so an existing
//! block keeps working; the new keys (`version`, `gzip`, `max_body_bytes`...) have
//! defaults.
//!
//! ```yaml
//! integrations:
//!   influxdb:
//!     enabled: true
//!     url: http://127.0.0.1:8086
//!     version: 1                 # 1: /write (db, rp, Basic auth); 2: /api/v2/write (org, bucket, token)
//!     database: telegraf         # version 1
//!     retention_policy: autogen  # version 1, optional
//!     username: agent            # version 1, optional (HTTP Basic)
//!     password: ${INFLUX_PASSWORD}
//!     # organization: my-org     # version 2
//!     # bucket: metrics          # version 2
//!     # token: ${INFLUX_TOKEN}   # version 2
//!     precision: ns              # ns, us, ms or s
//!     # receiver:                # line-protocol receiver (POST /write, /api/v2/write)
//!     #   listen: 127.0.0.1:8186
//! ```
//!
//! Without `url` but with a `receiver` block the instance only receives
//! ([`Config::sink_enabled`]); the sink keys are then not checked.
//!
//! Unknown keys are rejected (`deny_unknown_fields`) so a typo fails at load time;
//! [`Config::validate`] adds what serde cannot check, each problem with its field
//! path. Secrets (password, token, header values) never appear in `Debug` output.

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use serde::{Deserialize, Deserializer};
use tfo_plugin_api::ConfigError;
use tfo_plugin_common::config::duration;

/// Default bound on one write request (below the host's 30 s call timeout, so a hung
/// server is reported by the plugin, with its URL).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines per request: InfluxDB's documented optimal batch size ("batches of 5,000
/// lines", <https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_tutorial/>
/// and the v2 "Optimize writes" page), also the Go agent's `batch_size` default.
pub const DEFAULT_BATCH_SIZE: usize = 5000;
/// Largest uncompressed request body (bytes); a larger encoded batch is split.
/// InfluxDB 1.x refuses bodies over its `max-body-size` (25,000,000 bytes by default)
/// with 413; 10 MB stays well below it.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10_000_000;
/// Longest line (bytes) sent; a longer one is skipped and counted. VictoriaMetrics
/// refuses lines over its `-influx.maxLineSize` (256 KiB by default).
pub const DEFAULT_MAX_LINE_BYTES: usize = 256 * 1024;
/// Longest string field value (bytes); longer ones are cut at a character boundary.
/// InfluxDB 1.x documents a 64 KB limit on string field values.
pub const DEFAULT_MAX_STRING_BYTES: usize = 64 * 1024;
/// Default measurement for log records.
pub const DEFAULT_LOGS_MEASUREMENT: &str = "logs";
/// Default measurement for spans.
pub const DEFAULT_SPANS_MEASUREMENT: &str = "spans";

/// Headers the plugin sets itself, which `headers` may not override.
pub const RESERVED_HEADERS: [&str; 4] =
    ["content-encoding", "content-type", "content-length", "host"];

/// Which write API to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// InfluxDB 1.x `POST /write?db=&rp=&precision=`, HTTP Basic credentials.
    V1,
    /// InfluxDB 2.x `POST /api/v2/write?org=&bucket=&precision=`,
    /// `Authorization: Token <token>`.
    V2,
}

/// Timestamp precision of the written lines (the `precision` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Nanoseconds.
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
}

impl Precision {
    /// Nanoseconds per unit.
    pub fn nanos(self) -> u64 {
        match self {
            Precision::Ns => 1,
            Precision::Us => 1_000,
            Precision::Ms => 1_000_000,
            Precision::S => 1_000_000_000,
        }
    }

    /// The `precision` query value for `api`. InfluxDB 1.x spells microseconds `u`
    /// (it reads an unknown value such as `us` as nanoseconds, silently
    /// misplacing every point); 2.x spells them `us`.
    pub fn query_value(self, api: ApiVersion) -> &'static str {
        match (self, api) {
            (Precision::Ns, _) => "ns",
            (Precision::Us, ApiVersion::V1) => "u",
            (Precision::Us, ApiVersion::V2) => "us",
            (Precision::Ms, _) => "ms",
            (Precision::S, _) => "s",
        }
    }

    fn parse(s: &str) -> Option<Precision> {
        match s.trim() {
            "ns" | "n" => Some(Precision::Ns),
            "us" | "u" | "µs" => Some(Precision::Us),
            "ms" => Some(Precision::Ms),
            "s" => Some(Precision::S),
            _ => None,
        }
    }
}

/// Configuration of one InfluxDB sink instance.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base URL of the server, e.g. `http://127.0.0.1:8086` (a path prefix such as
    /// `https://proxy/influx` is kept; `/write` or `/api/v2/write` is appended).
    /// Empty (absent) with a `receiver` block: the instance only receives.
    #[serde(default)]
    pub url: String,
    /// The line-protocol receiver (`POST /write`, `/api/v2/write`); absent: none.
    #[serde(default)]
    pub receiver: Option<ReceiverConfig>,
    /// `1` or `2` (also `"v1"`, `"v2"`); absent: 2 when `token`, `organization` and
    /// `bucket` are all set (the Go agent's rule), else 1.
    #[serde(default, alias = "api", deserialize_with = "opt_version")]
    pub version: Option<ApiVersion>,
    /// Version 1: database (`db`); falls back to `bucket` when empty.
    #[serde(default)]
    pub database: String,
    /// Version 1: retention policy (`rp`); empty means the database's default.
    #[serde(default)]
    pub retention_policy: String,
    /// Version 1: user for HTTP Basic authentication.
    #[serde(default)]
    pub username: String,
    /// Version 1: password for HTTP Basic authentication.
    #[serde(default)]
    pub password: String,
    /// Version 2: organization name or id (`org`).
    #[serde(default, alias = "org")]
    pub organization: String,
    /// Version 2: bucket.
    #[serde(default)]
    pub bucket: String,
    /// Version 2: API token (`Authorization: Token <token>`).
    #[serde(default)]
    pub token: String,
    /// Timestamp precision: `ns` (default), `us`, `ms` or `s`.
    #[serde(default = "default_precision", deserialize_with = "precision")]
    pub precision: Precision,
    /// gzip the request bodies (`Content-Encoding: gzip`).
    #[serde(default = "yes")]
    pub gzip: bool,
    /// Bound on one request, connect to last response byte.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Most lines in one request.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Largest uncompressed body of one request, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Longest line sent, in bytes; longer lines are skipped and counted. Default:
    /// [`DEFAULT_MAX_LINE_BYTES`], or `max_body_bytes` when that is smaller.
    #[serde(default)]
    pub max_line_bytes: Option<usize>,
    /// Longest string field value, in bytes; longer values are cut.
    #[serde(default = "default_max_string_bytes")]
    pub max_string_bytes: usize,
    /// Measurement of log records; empty: logs are not written (and counted as
    /// dropped).
    #[serde(default = "default_logs_measurement")]
    pub logs_measurement: String,
    /// Measurement of spans; empty: spans are not written (and counted as dropped).
    #[serde(default = "default_spans_measurement")]
    pub spans_measurement: String,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Extra PEM CA certificates to trust besides the system store.
    #[serde(default, alias = "tls_ca_file")]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (test systems only).
    #[serde(default, alias = "tls_skip_verify")]
    pub insecure_skip_verify: bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted: BTreeMap<&str, &str> = self
            .headers
            .keys()
            .map(|k| (k.as_str(), "<redacted>"))
            .collect();
        let secret = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("Config")
            .field("url", &self.url)
            .field("version", &self.api())
            .field("database", &self.database)
            .field("retention_policy", &self.retention_policy)
            .field("username", &self.username)
            .field("password", &secret(&self.password))
            .field("organization", &self.organization)
            .field("bucket", &self.bucket)
            .field("token", &secret(&self.token))
            .field("precision", &self.precision)
            .field("gzip", &self.gzip)
            .field("timeout", &self.timeout)
            .field("batch_size", &self.batch_size)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_line_bytes", &self.max_line_bytes)
            .field("max_string_bytes", &self.max_string_bytes)
            .field("logs_measurement", &self.logs_measurement)
            .field("spans_measurement", &self.spans_measurement)
            .field("headers", &redacted)
            .field("ca_file", &self.ca_file)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .field("receiver", &self.receiver)
            .finish()
    }
}

fn yes() -> bool {
    true
}
fn default_precision() -> Precision {
    Precision::Ns
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_batch_size() -> usize {
    DEFAULT_BATCH_SIZE
}
fn default_max_body_bytes() -> usize {
    DEFAULT_MAX_BODY_BYTES
}
fn default_max_string_bytes() -> usize {
    DEFAULT_MAX_STRING_BYTES
}
fn default_logs_measurement() -> String {
    DEFAULT_LOGS_MEASUREMENT.to_string()
}
fn default_spans_measurement() -> String {
    DEFAULT_SPANS_MEASUREMENT.to_string()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr {
    N(u64),
    S(String),
}

fn opt_version<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ApiVersion>, D::Error> {
    let raw = Option::<NumOrStr>::deserialize(d)?;
    let text = match raw {
        None => return Ok(None),
        Some(NumOrStr::N(n)) => n.to_string(),
        Some(NumOrStr::S(s)) => s.trim().to_ascii_lowercase(),
    };
    match text.as_str() {
        "1" | "v1" => Ok(Some(ApiVersion::V1)),
        "2" | "v2" => Ok(Some(ApiVersion::V2)),
        _ => Err(serde::de::Error::custom(format!(
            "invalid version {text:?}: use 1 (InfluxDB 1.x /write) or 2 (InfluxDB 2.x /api/v2/write)"
        ))),
    }
}

fn precision<'de, D: Deserializer<'de>>(d: D) -> Result<Precision, D::Error> {
    let s = String::deserialize(d)?;
    Precision::parse(&s).ok_or_else(|| {
        serde::de::Error::custom(format!("invalid precision {s:?}: use ns, us, ms or s"))
    })
}

impl Config {
    /// The API in use: `version` when set, else 2 when `token`, `organization` and
    /// `bucket` are all set, else 1.
    pub fn api(&self) -> ApiVersion {
        match self.version {
            Some(v) => v,
            None if !self.token.is_empty()
                && !self.organization.is_empty()
                && !self.bucket.is_empty() =>
            {
                ApiVersion::V2
            }
            None => ApiVersion::V1,
        }
    }

    /// The longest line sent: `max_line_bytes`, by default the smaller of
    /// [`DEFAULT_MAX_LINE_BYTES`] and `max_body_bytes`.
    pub fn line_limit(&self) -> usize {
        self.max_line_bytes
            .unwrap_or_else(|| DEFAULT_MAX_LINE_BYTES.min(self.max_body_bytes))
    }

    /// Version 1: the database written to (`database`, else `bucket`).
    pub fn v1_database(&self) -> &str {
        if self.database.is_empty() {
            &self.bucket
        } else {
            &self.database
        }
    }

    /// Whether the instance writes to a server: `url` is set, or there is no
    /// receiver (then `url` is required and its absence is reported).
    pub fn sink_enabled(&self) -> bool {
        !self.url.is_empty() || self.receiver.is_none()
    }

    /// Every problem found (empty when usable), each with its field path.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if let Some(r) = &self.receiver {
            r.validate_into(&mut errors);
        }
        if !self.sink_enabled() {
            return errors;
        }
        if self.url.is_empty() {
            errors.push(ConfigError::new(
                "url",
                "required (the server to write to), unless the instance only receives (a `receiver` block)",
            ));
            return errors;
        }
        let mut err = |path: &str, msg: String| errors.push(ConfigError::new(path, msg));
        if !url_ok(&self.url) {
            err(
                "url",
                format!(
                    "invalid URL {:?}: expected http(s)://host[:port][/prefix], without query string",
                    self.url
                ),
            );
        }
        match self.api() {
            ApiVersion::V1 => {
                if self.v1_database().is_empty() {
                    err(
                        "database",
                        "required for version 1 (the InfluxDB database to write to)".into(),
                    );
                }
                if self.username.is_empty() && !self.password.is_empty() {
                    err("username", "required when a password is set".into());
                }
                if self.username.contains(':') {
                    err(
                        "username",
                        "must not contain ':' (HTTP Basic, RFC 7617)".into(),
                    );
                }
                if !self.token.is_empty() {
                    err(
                        "token",
                        "only used by version 2; version 1 authenticates with username and password".into(),
                    );
                }
            }
            ApiVersion::V2 => {
                if self.organization.is_empty() {
                    err("organization", "required for version 2".into());
                }
                if self.bucket.is_empty() {
                    err("bucket", "required for version 2".into());
                }
                if !self.token.is_empty() && !header_value_ok(&format!("Token {}", self.token)) {
                    err(
                        "token",
                        "must be visible ASCII characters (it goes into the Authorization header)"
                            .into(),
                    );
                }
                if !self.username.is_empty() || !self.password.is_empty() {
                    err(
                        "username",
                        "only used by version 1; version 2 authenticates with token".into(),
                    );
                }
                if !self.retention_policy.is_empty() {
                    err(
                        "retention_policy",
                        "only used by version 1 (a version 2 bucket has its own retention)".into(),
                    );
                }
            }
        }
        if self.timeout.is_zero() {
            err("timeout", "must be greater than 0".into());
        }
        if self.batch_size == 0 {
            err("batch_size", "must be at least 1".into());
        }
        if self.max_body_bytes < 1024 {
            err("max_body_bytes", "must be at least 1024".into());
        }
        if self.line_limit() < 256 {
            err("max_line_bytes", "must be at least 256".into());
        } else if self.line_limit() > self.max_body_bytes {
            err(
                "max_line_bytes",
                format!(
                    "must not exceed max_body_bytes ({}): such a line could never be sent",
                    self.max_body_bytes
                ),
            );
        }
        if self.max_string_bytes < 16 {
            err("max_string_bytes", "must be at least 16".into());
        }
        let mut has_authorization = false;
        for (name, value) in &self.headers {
            let path = format!("headers.{name}");
            let lower = name.to_ascii_lowercase();
            if tfo_plugin_common::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                err(&path, "invalid header name".into());
                continue;
            }
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                err(&path, "set by the plugin; remove it".into());
                continue;
            }
            if !header_value_ok(value) {
                err(
                    &path,
                    "invalid header value (control characters or non-ASCII)".into(),
                );
            }
            has_authorization |= lower == "authorization";
        }
        let credentials = !self.username.is_empty() || !self.token.is_empty();
        if has_authorization && credentials {
            err(
                "headers.Authorization",
                "conflicts with username/password or token; use one of them".into(),
            );
        }
        if let Some(ca) = &self.ca_file {
            if let Err(e) = tfo_plugin_common::http::load_pem_certs(ca) {
                err("ca_file", e);
            }
        }
        errors
    }
}

/// Default receiver address: loopback on 8186, the port of Telegraf's
/// `influxdb_listener` (8086 is InfluxDB's own, often on the same host).
pub const DEFAULT_RECEIVER_LISTEN: &str = "127.0.0.1:8186";
/// Default largest request body (as sent and once gunzipped): 32 MiB, the default
/// `-influx.maxRequestSize` of vmagent; InfluxDB 1.x's own `max-body-size` is 25 MB.
pub const DEFAULT_RECEIVER_MAX_BODY_BYTES: u64 = 32 * 1024 * 1024;

/// The `receiver` block: where and how much the line-protocol receiver takes.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// `IP:port` to listen on (`[::]:8186` for all addresses).
    #[serde(default = "default_receiver_listen")]
    pub listen: String,
    /// Largest request body in bytes, as sent and once decompressed (413 above).
    #[serde(default = "default_receiver_max_body")]
    pub max_body_bytes: u64,
    /// Requests per second accepted (429 above); 0 = unlimited.
    #[serde(default)]
    pub max_requests_per_second: u32,
    /// Connections open at once (more are closed on accept); 0 = unlimited.
    #[serde(default = "default_receiver_max_connections")]
    pub max_connections: u32,
    /// How long a write waits, unread, for room while the agent's queue is full
    /// before it is answered 503 + `Retry-After`; `0s` answers at once.
    #[serde(default = "default_queue_wait", deserialize_with = "duration")]
    pub queue_wait: Duration,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            listen: default_receiver_listen(),
            max_body_bytes: DEFAULT_RECEIVER_MAX_BODY_BYTES,
            max_requests_per_second: 0,
            max_connections: default_receiver_max_connections(),
            queue_wait: default_queue_wait(),
        }
    }
}

fn default_receiver_listen() -> String {
    DEFAULT_RECEIVER_LISTEN.to_string()
}
fn default_receiver_max_body() -> u64 {
    DEFAULT_RECEIVER_MAX_BODY_BYTES
}
fn default_receiver_max_connections() -> u32 {
    1024
}
fn default_queue_wait() -> Duration {
    tfo_plugin_common::http_server::DEFAULT_QUEUE_WAIT
}

impl ReceiverConfig {
    /// The parsed listen address.
    pub fn listen_addr(&self) -> Result<std::net::SocketAddr, String> {
        self.listen.trim().parse().map_err(|_| {
            format!(
                "invalid address {:?}: expected IP:port, e.g. 127.0.0.1:8186 or [::]:8186",
                self.listen
            )
        })
    }

    fn validate_into(&self, errors: &mut Vec<ConfigError>) {
        if let Err(e) = self.listen_addr() {
            errors.push(ConfigError::new("receiver.listen", e));
        }
        if self.max_body_bytes < 1024 {
            errors.push(ConfigError::new(
                "receiver.max_body_bytes",
                "must be at least 1024",
            ));
        }
    }
}

fn header_value_ok(v: &str) -> bool {
    tfo_plugin_common::http::HeaderValue::from_str(v).is_ok()
}

fn url_ok(url: &str) -> bool {
    let rest = if let Some(r) = url.strip_prefix("http://") {
        r
    } else if let Some(r) = url.strip_prefix("https://") {
        r
    } else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or("");
    !host.is_empty()
        && !url.contains('?')
        && !url.contains('#')
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
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
    fn defaults_v1() {
        let c = parse(r#"{"url": "http://127.0.0.1:8086", "database": "db"}"#).unwrap();
        assert_eq!(c.api(), ApiVersion::V1);
        assert_eq!(c.precision, Precision::Ns);
        assert!(c.gzip);
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.batch_size, 5000);
        assert_eq!(c.max_body_bytes, 10_000_000);
        assert_eq!(c.line_limit(), 262_144);
        // Without its own value, the line limit follows a smaller body limit.
        let c = parse(r#"{"url": "http://h", "database": "d", "max_body_bytes": 2000}"#).unwrap();
        assert_eq!(c.line_limit(), 2000);
        assert!(c.validate().is_empty());
        assert_eq!(c.max_string_bytes, 65_536);
        assert_eq!(c.logs_measurement, "logs");
        assert_eq!(c.spans_measurement, "spans");
        assert!(c.validate().is_empty(), "{:?}", c.validate());
    }

    #[test]
    fn go_agent_block_infers_v2_and_keeps_key_names() {
        // The Go agent's keys: all three of token, organization and bucket mean v2.
        let c = parse(
            r#"{"url": "https://h:8086", "token": "t0k", "organization": "o", "bucket": "b",
                "precision": "ms", "timeout": "5s", "batch_size": 100, "tls_skip_verify": true,
                "headers": {"X-A": "1"}}"#,
        )
        .unwrap();
        assert_eq!(c.api(), ApiVersion::V2);
        assert_eq!(c.precision, Precision::Ms);
        assert!(c.insecure_skip_verify);
        assert_eq!(c.batch_size, 100);
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        // Secrets stay out of Debug output.
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("t0k") && !dbg.contains("\"1\""), "{dbg}");
        // Database falls back to bucket in v1 (the Go agent's rule).
        let c = parse(r#"{"url": "http://h", "bucket": "b"}"#).unwrap();
        assert_eq!(c.api(), ApiVersion::V1);
        assert_eq!(c.v1_database(), "b");
        assert!(c.validate().is_empty());
    }

    #[test]
    fn version_spellings() {
        for (v, want) in [
            ("1", ApiVersion::V1),
            ("2", ApiVersion::V2),
            ("\"v1\"", ApiVersion::V1),
            ("\"V2\"", ApiVersion::V2),
            ("\"2\"", ApiVersion::V2),
        ] {
            let c = parse(&format!(r#"{{"url": "http://h", "version": {v}}}"#)).unwrap();
            assert_eq!(c.api(), want, "{v}");
        }
        let c = parse(r#"{"url": "http://h", "api": "v2", "org": "o", "bucket": "b"}"#).unwrap();
        assert_eq!(c.api(), ApiVersion::V2);
        assert_eq!(c.organization, "o");
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let e = parse(r#"{"url": "http://h", "version": 3}"#).unwrap_err();
        assert!(e.to_string().contains("invalid version"), "{e}");
    }

    #[test]
    fn precisions() {
        for (p, want) in [
            ("ns", Precision::Ns),
            ("n", Precision::Ns),
            ("us", Precision::Us),
            ("u", Precision::Us),
            ("ms", Precision::Ms),
            ("s", Precision::S),
        ] {
            let c = parse(&format!(r#"{{"url": "http://h", "precision": "{p}"}}"#)).unwrap();
            assert_eq!(c.precision, want);
        }
        assert_eq!(Precision::Us.query_value(ApiVersion::V1), "u");
        assert_eq!(Precision::Us.query_value(ApiVersion::V2), "us");
        let e = parse(r#"{"url": "http://h", "precision": "h"}"#).unwrap_err();
        assert!(e.to_string().contains("invalid precision"), "{e}");
    }

    #[test]
    fn receiver_only_and_receiver_problems() {
        let c = parse(r#"{"receiver": {}}"#).unwrap();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert!(!c.sink_enabled());
        let r = c.receiver.unwrap();
        assert_eq!(r, ReceiverConfig::default());
        assert_eq!(r.listen, "127.0.0.1:8186");
        let c = parse(r#"{"receiver": {"listen": "nowhere", "max_body_bytes": 1}}"#).unwrap();
        let paths: Vec<String> = c.validate().iter().map(|e| e.path.to_string()).collect();
        assert_eq!(paths, ["receiver.listen", "receiver.max_body_bytes"]);
        let e = parse(r#"{"receiver": {"lissen": "x"}}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `lissen`"), "{e}");
        // Both: the sink part is validated as before.
        let c = parse(r#"{"url": "http://h", "receiver": {}}"#).unwrap();
        assert!(c.sink_enabled());
        assert_eq!(c.validate()[0].path.as_str(), "database");
    }

    #[test]
    fn unknown_keys_and_missing_url() {
        let e = parse(r#"{"url": "http://h", "databse": "x"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `databse`"), "{e}");
        // Without a receiver block the URL is required (reported with its path).
        let c = parse(r#"{"database": "x"}"#).unwrap();
        let e = c.validate();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].path.as_str(), "url");
    }

    #[test]
    fn v1_problems_with_paths() {
        let c = parse(
            r#"{"url": "ftp://h", "password": "p", "token": "t", "timeout": 0, "batch_size": 0,
                "max_body_bytes": 10, "max_line_bytes": 10, "max_string_bytes": 1,
                "ca_file": "/nonexistent/ca.pem"}"#,
        )
        .unwrap();
        assert_eq!(
            paths(&c),
            [
                "url",
                "database",
                "username",
                "token",
                "timeout",
                "batch_size",
                "max_body_bytes",
                "max_line_bytes",
                "max_string_bytes",
                "ca_file"
            ]
        );
    }

    #[test]
    fn v2_problems_with_paths() {
        let c = parse(
            r#"{"url": "http://h/x?y=1", "version": 2, "username": "u", "retention_policy": "r",
                "token": "bad\ntoken", "headers": {"Content-Encoding": "x", "bad name": "v", "X-Ok": "a\u0001"}}"#,
        )
        .unwrap();
        assert_eq!(
            paths(&c),
            [
                "url",
                "organization",
                "bucket",
                "token",
                "username",
                "retention_policy",
                "headers.Content-Encoding",
                "headers.X-Ok",
                "headers.bad name",
            ]
        );
    }

    #[test]
    fn authorization_header_conflicts_with_credentials() {
        let c = parse(
            r#"{"url": "http://h", "database": "d", "username": "u",
                "headers": {"Authorization": "Token x"}}"#,
        )
        .unwrap();
        assert_eq!(paths(&c), ["headers.Authorization"]);
        let c = parse(
            r#"{"url": "http://h", "database": "d", "headers": {"Authorization": "Token x"}}"#,
        )
        .unwrap();
        assert!(c.validate().is_empty());
    }

    #[test]
    fn urls() {
        for ok in [
            "http://h",
            "https://h:8086",
            "https://proxy/influx/",
            "http://[::1]:8086",
        ] {
            assert!(url_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "h:8086",
            "http://",
            "http:///x",
            "http://h/?db=x",
            "http://h x",
        ] {
            assert!(!url_ok(bad), "{bad}");
        }
    }
}

#[cfg(test)]
mod example {
    use super::*;

    /// The block in config.example.yaml (merged into the agent's sample config) is
    /// valid: every key known, every value accepted.
    #[test]
    fn example_block_is_valid() {
        let text = include_str!("../config.example.yaml").replace(
            "${INFLUX_URL:-http://127.0.0.1:8086}",
            "http://127.0.0.1:8086",
        );
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let mut block = doc["influxdb"].clone();
        let map = block.as_mapping_mut().unwrap();
        // `enabled` is the host's key, not the plugin's.
        assert_eq!(map.remove("enabled"), Some(serde_yaml::Value::Bool(false)));
        let json = serde_json::to_string(&block).unwrap();
        let c: Config = serde_json::from_str(&json).unwrap();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.api(), ApiVersion::V1);
        assert_eq!(c.database, "telemetry");
    }
}
