//! The loki integration's configuration: the integration's block of the agent
//! config, handed to the plugin as JSON.
//!
//! ```yaml
//! integrations:
//!   loki:
//!     enabled: true
//!     endpoint: http://loki:3100          # /loki/api/v1/push is appended unless present
//!     tenant_id: team-a                   # X-Scope-OrgID
//!     basic_auth: { username: u, password: p }   # or bearer_token
//!     labels: { job: tfo-agent }          # static stream labels
//!     label_attributes: [service.name, host.name, level]
//!     other_attributes: structured_metadata    # or line, drop
//!     encoding: protobuf                  # or json
//!     max_line_bytes: 262144
//!     max_request_bytes: 1048576
//!     timeout: 10s
//! ```
//!
//! Key names follow the older Go agent where it had them (`endpoint`, `tenant_id`,
//! `basic_auth`, `labels`, `headers`); its `batch_size`/`flush_interval` are the
//! host's `pipeline.*` settings, and its `tls` block is the flat `ca_file` /
//! `insecure_skip_verify` of every HTTP plugin here.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;

/// The push API path (Loki HTTP API, "Ingest logs").
pub const PUSH_PATH: &str = "/loki/api/v1/push";

/// Default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default longest line: Loki's default `max_line_size` (256 KB); longer lines are
/// cut here rather than refused there.
pub const DEFAULT_MAX_LINE_BYTES: u64 = 256 * 1024;

/// Default largest push (uncompressed lines and metadata): 1 MiB, Promtail's
/// default batch size, well under Loki's default 6 MB ingestion burst (a single
/// push above the burst size is refused with 429 however long one waits).
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 1024 * 1024;

/// Loki's default `max_label_names_per_series`.
pub const MAX_LABELS: usize = 15;

/// Loki's default `max_label_value_length`: longer values are cut to this.
pub const MAX_LABEL_VALUE_BYTES: usize = 2048;

/// Wire format of the push body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// `application/x-protobuf`, Snappy-compressed `PushRequest` (the default; what
    /// Promtail and Grafana Alloy send).
    #[default]
    Protobuf,
    /// `application/json` (`{"streams":[{"stream":{...},"values":[[ns, line, {meta}]]}]}`).
    Json,
}

/// What happens to the attributes that are not stream labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OtherAttributes {
    /// Structured metadata of each entry (Loki 3 / schema v13; the default).
    #[default]
    StructuredMetadata,
    /// Appended to the line as logfmt `key=value` pairs (older Loki).
    Line,
    /// Not sent.
    Drop,
}

/// HTTP Basic credentials.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User (Grafana Cloud: the numeric instance id).
    pub username: String,
    /// Password or token.
    pub password: String,
}

/// Configuration of one loki instance.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Loki base URL, or the full push URL.
    pub endpoint: String,
    /// Tenant, sent as `X-Scope-OrgID` (multi-tenant Loki).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// HTTP Basic credentials.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization: Bearer <token>`.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Static stream labels added to every stream (they win over attribute labels).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Attributes (record first, then resource) that become stream labels, their
    /// names sanitized (`service.name` -> `service_name`). `level` without such an
    /// attribute is the record's severity.
    #[serde(default = "default_label_attributes")]
    pub label_attributes: Vec<String>,
    /// The other attributes: `structured_metadata` (default), `line` or `drop`.
    #[serde(default)]
    pub other_attributes: OtherAttributes,
    /// `protobuf` (default) or `json`.
    #[serde(default)]
    pub encoding: Encoding,
    /// Longer lines are cut to this many bytes (at a character boundary).
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: u64,
    /// A batch is split into pushes of at most about this many bytes.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: u64,
    /// Whole-request timeout.
    #[serde(
        default = "default_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub timeout: Duration,
    /// Extra PEM CA certificates trusted for `https://`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (test systems only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

impl std::fmt::Debug for Config {
    // Credentials stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("endpoint", &self.endpoint)
            .field("tenant_id", &self.tenant_id)
            .field(
                "basic_auth",
                &self
                    .basic_auth
                    .as_ref()
                    .map(|b| (&b.username, "<redacted>")),
            )
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("labels", &self.labels)
            .field("label_attributes", &self.label_attributes)
            .field("other_attributes", &self.other_attributes)
            .field("encoding", &self.encoding)
            .finish_non_exhaustive()
    }
}

fn default_label_attributes() -> Vec<String> {
    ["service.name", "host.name", "level"]
        .into_iter()
        .map(String::from)
        .collect()
}
fn default_max_line_bytes() -> u64 {
    DEFAULT_MAX_LINE_BYTES
}
fn default_max_request_bytes() -> u64 {
    DEFAULT_MAX_REQUEST_BYTES
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

/// Headers the plugin sets itself.
const RESERVED_HEADERS: [&str; 6] = [
    "content-type",
    "content-encoding",
    "content-length",
    "host",
    "transfer-encoding",
    "x-scope-orgid",
];

/// True for a Prometheus/Loki label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Config {
    /// Every problem found (empty when usable), each with its field path.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if let Err(e) = push_url(&self.endpoint) {
            errors.push(ConfigError::new("endpoint", e));
        }
        if let Some(t) = &self.tenant_id {
            if t.is_empty() || http::HeaderValue::from_str(t).is_err() || t.contains('|') {
                errors.push(ConfigError::new(
                    "tenant_id",
                    "must be a non-empty tenant id of visible ASCII without '|'",
                ));
            }
        }
        if let Some(b) = &self.basic_auth {
            if b.username.is_empty() || b.username.contains(':') {
                errors.push(ConfigError::new(
                    "basic_auth.username",
                    "must be non-empty and without ':'",
                ));
            }
            if self.bearer_token.is_some() {
                errors.push(ConfigError::new(
                    "bearer_token",
                    "use either basic_auth or bearer_token, not both",
                ));
            }
        }
        if let Some(t) = &self.bearer_token {
            if t.is_empty() || http::HeaderValue::from_str(t).is_err() {
                errors.push(ConfigError::new(
                    "bearer_token",
                    "must be a non-empty token",
                ));
            }
        }
        for (name, value) in &self.labels {
            let path = format!("labels.{name}");
            if !is_label_name(name) || name.starts_with("__") {
                errors.push(ConfigError::new(
                    path,
                    "is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)",
                ));
            } else if value.is_empty() || value.len() > MAX_LABEL_VALUE_BYTES {
                errors.push(ConfigError::new(path, "must be 1 to 2048 bytes"));
            }
        }
        for (i, a) in self.label_attributes.iter().enumerate() {
            if a.is_empty() || a.len() > 1024 {
                errors.push(ConfigError::new(
                    format!("label_attributes.{i}"),
                    "must be an attribute name of 1 to 1024 bytes",
                ));
            }
        }
        if self.labels.len() + self.label_attributes.len() > MAX_LABELS {
            errors.push(ConfigError::new(
                "label_attributes",
                format!(
                    "labels and label_attributes give more than {MAX_LABELS} labels \
                     (Loki's default max_label_names_per_series)"
                ),
            ));
        }
        if self.max_line_bytes < 64 {
            errors.push(ConfigError::new("max_line_bytes", "must be at least 64"));
        }
        if self.max_request_bytes < 1024 {
            errors.push(ConfigError::new(
                "max_request_bytes",
                "must be at least 1024",
            ));
        } else if self.max_line_bytes > self.max_request_bytes / 2 {
            errors.push(ConfigError::new(
                "max_line_bytes",
                "must be at most half of max_request_bytes",
            ));
        }
        if self.timeout.is_zero() {
            errors.push(ConfigError::new("timeout", "must be greater than 0"));
        }
        if let Some(ca) = &self.ca_file {
            if !ca.is_file() {
                errors.push(ConfigError::new(
                    "ca_file",
                    format!("{} is not a readable file", ca.display()),
                ));
            }
        }
        for (name, value) in &self.headers {
            let path = format!("headers.{name}");
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                errors.push(ConfigError::new(path, "is not a valid HTTP header name"));
            } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                errors.push(ConfigError::new(
                    path,
                    "is set by the plugin itself (use tenant_id for X-Scope-OrgID)",
                ));
            } else if name.eq_ignore_ascii_case("authorization")
                && (self.basic_auth.is_some() || self.bearer_token.is_some())
            {
                errors.push(ConfigError::new(
                    path,
                    "conflicts with basic_auth / bearer_token",
                ));
            } else if http::HeaderValue::from_str(value).is_err() {
                errors.push(ConfigError::new(
                    path,
                    "is not a valid HTTP header value (visible ASCII only)",
                ));
            }
        }
        errors
    }
}

/// The push URL of an endpoint: kept when it already ends with
/// `/loki/api/v1/push`, else the path is appended (after any prefix of a reverse
/// proxy: `https://gw/loki-a` -> `https://gw/loki-a/loki/api/v1/push`).
pub fn push_url(endpoint: &str) -> Result<String, String> {
    let e = endpoint.trim();
    let uri: http::Uri = e
        .parse()
        .map_err(|_| format!("{e:?} is not a URL (e.g. http://localhost:3100)"))?;
    if !matches!(uri.scheme_str(), Some("http") | Some("https")) {
        return Err(format!("{e:?}: the scheme must be http or https"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{e:?} has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("{e:?}: a query string is not allowed"));
    }
    let base = e.trim_end_matches('/');
    if base.ends_with(PUSH_PATH) {
        Ok(base.to_string())
    } else {
        Ok(format!("{base}{PUSH_PATH}"))
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
        let c = parse(r#"{"endpoint": "http://loki:3100"}"#).unwrap();
        assert!(c.validate().is_empty());
        assert_eq!(c.label_attributes, ["service.name", "host.name", "level"]);
        assert_eq!(c.other_attributes, OtherAttributes::StructuredMetadata);
        assert_eq!(c.encoding, Encoding::Protobuf);
        assert_eq!(c.max_line_bytes, 262_144);
        assert_eq!(c.max_request_bytes, 1_048_576);
        assert_eq!(c.timeout, Duration::from_secs(10));
    }

    #[test]
    fn push_urls() {
        assert_eq!(
            push_url("http://loki:3100").unwrap(),
            "http://loki:3100/loki/api/v1/push"
        );
        assert_eq!(
            push_url("http://loki:3100/").unwrap(),
            "http://loki:3100/loki/api/v1/push"
        );
        // The Go agent's sample config gave the full URL: not doubled.
        assert_eq!(
            push_url("http://loki:3100/loki/api/v1/push").unwrap(),
            "http://loki:3100/loki/api/v1/push"
        );
        assert_eq!(
            push_url("https://gw/tenant-a").unwrap(),
            "https://gw/tenant-a/loki/api/v1/push"
        );
        for bad in ["loki:3100", "ftp://x", "http://x/?a=1", ""] {
            assert!(push_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        for json in [
            r#"{"endpoint": "http://x", "batch_size": 5}"#,
            r#"{"endpoint": "http://x", "basic_auth": {"user": "u", "password": "p"}}"#,
            r#"{"endpoint": "http://x", "encoding": "xml"}"#,
        ] {
            assert!(parse(json).is_err(), "{json}");
        }
    }

    #[test]
    fn bad_values_are_reported_with_their_paths() {
        let c = parse(
            r#"{"endpoint": "loki", "tenant_id": "",
                "basic_auth": {"username": "a:b", "password": "p"}, "bearer_token": "t",
                "labels": {"bad-name": "x", "__reserved": "x", "empty": ""},
                "label_attributes": [""],
                "max_line_bytes": 1, "max_request_bytes": 10, "timeout": 0,
                "ca_file": "/nonexistent.pem",
                "headers": {"X-Scope-OrgID": "t", "Authorization": "x", "ok": "a\nb"}}"#,
        )
        .unwrap();
        assert_eq!(
            paths(&c),
            [
                "endpoint",
                "tenant_id",
                "basic_auth.username",
                "bearer_token",
                "labels.__reserved",
                "labels.bad-name",
                "labels.empty",
                "label_attributes.0",
                "max_line_bytes",
                "max_request_bytes",
                "timeout",
                "ca_file",
                "headers.Authorization",
                "headers.X-Scope-OrgID",
                "headers.ok",
            ]
        );
    }

    #[test]
    fn too_many_labels() {
        let attrs: Vec<String> = (0..16).map(|i| format!("\"a{i}\"")).collect();
        let c = parse(&format!(
            r#"{{"endpoint": "http://x", "label_attributes": [{}]}}"#,
            attrs.join(",")
        ))
        .unwrap();
        assert_eq!(paths(&c), ["label_attributes"]);
    }

    #[test]
    fn label_names() {
        for good in ["job", "_x", "a1_B"] {
            assert!(is_label_name(good), "{good}");
        }
        for bad in ["", "1a", "a-b", "a.b", "ü"] {
            assert!(!is_label_name(bad), "{bad}");
        }
    }
}
