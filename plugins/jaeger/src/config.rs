//! The sink's configuration: the integration's block of the agent config, handed to
//! the plugin as JSON.
//!
//! ```yaml
//! integrations:
//!   jaeger:
//!     enabled: true
//!     endpoint: http://jaeger:4318      # the collector's OTLP/HTTP port; /v1/traces is appended
//!     protocol: otlp_http               # the only protocol (see below)
//!     service_name: tfo-agent           # service.name of spans whose resource has none
//!     tags: { deployment.environment: prod }   # added to every resource
//!     headers: { X-Scope-OrgID: team-a }
//!     username: ""                      # HTTP Basic, for a proxy in front of Jaeger
//!     password: ""
//!     batch_size: 1000                  # spans per request
//!     max_request_bytes: 4194304
//!     compression: none                 # or gzip
//!     timeout: 10s
//!     tls: { ca_file: /etc/tfo/ca.pem, insecure_skip_verify: false }
//! ```
//!
//! Key names follow the older agent's (`endpoint`, `protocol`, `service_name`,
//! `tags`, `username`, `password`, `batch_size`, `tls`). Its defaults do not carry
//! over: it posted JSON to the Thrift endpoint `:14268/api/traces`, which Jaeger
//! never accepted. An `endpoint` with the path `/api/traces`, and a `protocol` of
//! `grpc` or `thrift`, are refused with an explanation instead of failing at run
//! time.
//!
//! Unknown keys are rejected (`deny_unknown_fields`); [`Config::validate`] adds
//! what serde cannot check, each problem with its field path. The password and
//! header values never appear in `Debug` output.

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;
use tfo_plugin_common::config::duration;

/// Path of the OTLP/HTTP traces endpoint, appended to `endpoint`.
pub const TRACES_PATH: &str = "/v1/traces";
/// Default `service.name` of resources without one.
pub const DEFAULT_SERVICE_NAME: &str = "tfo-agent";
/// Default number of spans in one request.
pub const DEFAULT_BATCH_SIZE: usize = 1000;
/// Default bound on one (uncompressed) request body: 4 MiB, the default message
/// limit of Jaeger's OTLP gRPC receiver, well below its HTTP one.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Default bound on one HTTP exchange (below the host's 30 s call timeout).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers the plugin sets itself; a user value would corrupt the request.
const RESERVED_HEADERS: [&str; 5] = [
    "content-type",
    "content-encoding",
    "content-length",
    "host",
    "transfer-encoding",
];

/// Request body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain protobuf.
    #[default]
    None,
    /// `Content-Encoding: gzip` (accepted by Jaeger's OTLP receiver).
    Gzip,
}

/// TLS settings (verification is on unless `insecure_skip_verify`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Extra PEM CA certificates to trust besides the system store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (test systems only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Configuration of one Jaeger sink instance.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base URL of the collector's OTLP/HTTP receiver, e.g. `http://jaeger:4318`.
    pub endpoint: String,
    /// Wire protocol; only `otlp_http` (also written `otlp` or `http/protobuf`).
    #[serde(default)]
    pub protocol: Option<String>,
    /// `service.name` given to resources that have none (Jaeger groups traces by
    /// service and shows `unknown_service` otherwise).
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Attributes added to every resource (existing ones win).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Extra request headers (a proxy's tenant or auth header).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// HTTP Basic user name (a proxy in front of the collector).
    #[serde(default)]
    pub username: Option<String>,
    /// HTTP Basic password.
    #[serde(default)]
    pub password: Option<String>,
    /// Most spans in one request.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Most bytes in one uncompressed request body; a single larger span is
    /// dropped and counted.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// Request body compression.
    #[serde(default)]
    pub compression: Compression,
    /// Bound on one HTTP exchange.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsConfig,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: BTreeMap<&str, &str> = self
            .headers
            .keys()
            .map(|k| (k.as_str(), "<redacted>"))
            .collect();
        f.debug_struct("Config")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("service_name", &self.service_name)
            .field("tags", &self.tags)
            .field("headers", &headers)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("batch_size", &self.batch_size)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("compression", &self.compression)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls)
            .finish()
    }
}

fn default_service_name() -> String {
    DEFAULT_SERVICE_NAME.to_string()
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

impl Config {
    /// The endpoint without a trailing `/` or `/v1/traces`.
    pub fn base_url(&self) -> &str {
        let base = self.endpoint.trim().trim_end_matches('/');
        base.strip_suffix(TRACES_PATH).unwrap_or(base)
    }

    /// URL of the traces endpoint.
    pub fn traces_url(&self) -> String {
        format!("{}{TRACES_PATH}", self.base_url())
    }

    /// Every problem found (empty when usable), each with its field path.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        match self.endpoint.trim().parse::<http::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http") | Some("https"))
                    && uri.host().is_some_and(|h| !h.is_empty())
                    && uri.query().is_none() =>
            {
                let path = uri.path().trim_end_matches('/');
                if path.ends_with("/api/traces") {
                    errors.push(ConfigError::new(
                        "endpoint",
                        format!(
                            "{:?} is Jaeger's legacy Thrift endpoint (port 14268), which this \
                             plugin does not speak: use the collector's OTLP/HTTP port, e.g. \
                             http://jaeger:4318",
                            self.endpoint
                        ),
                    ));
                }
            }
            _ => errors.push(ConfigError::new(
                "endpoint",
                format!(
                    "invalid URL {:?}: expected http(s)://host:4318 (the collector's OTLP/HTTP \
                     receiver, without a query string)",
                    self.endpoint
                ),
            )),
        }
        if let Some(p) = &self.protocol {
            match p.trim().to_ascii_lowercase().as_str() {
                "otlp_http" | "otlp" | "http/protobuf" | "otlp-http" => {}
                "grpc" | "otlp_grpc" => errors.push(ConfigError::new(
                    "protocol",
                    "gRPC is not implemented: use otlp_http (Jaeger accepts OTLP over HTTP on port 4318)",
                )),
                "thrift" | "thrift_http" | "http/thrift" | "udp" | "thrift_udp" => {
                    errors.push(ConfigError::new(
                        "protocol",
                        "Jaeger's Thrift protocols are legacy (deprecated in favour of OTLP) and \
                         not implemented: use otlp_http",
                    ))
                }
                other => errors.push(ConfigError::new(
                    "protocol",
                    format!("unknown protocol {other:?}: the only one is otlp_http"),
                )),
            }
        }
        if self.service_name.trim().is_empty() {
            errors.push(ConfigError::new("service_name", "must not be empty"));
        }
        let mut has_authorization = false;
        for (name, value) in &self.headers {
            let path = format!("headers.{name}");
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                errors.push(ConfigError::new(path, "is not a valid HTTP header name"));
            } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                errors.push(ConfigError::new(
                    path,
                    "is set by the plugin itself and cannot be configured",
                ));
            } else if http::HeaderValue::from_str(value).is_err() {
                errors.push(ConfigError::new(
                    path,
                    "is not a valid HTTP header value (visible ASCII only)",
                ));
            }
            has_authorization |= name.eq_ignore_ascii_case("authorization");
        }
        match (&self.username, &self.password) {
            (Some(u), _) if u.is_empty() || u.contains(':') => errors.push(ConfigError::new(
                "username",
                "must not be empty or contain ':' (RFC 7617)",
            )),
            (None, Some(_)) => {
                errors.push(ConfigError::new("password", "a password needs a username"))
            }
            (Some(_), _) if has_authorization => errors.push(ConfigError::new(
                "username",
                "use either username/password or an Authorization header",
            )),
            _ => {}
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
    fn defaults_and_urls() {
        let c = parse(r#"{"endpoint": "http://jaeger:4318"}"#).unwrap();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.traces_url(), "http://jaeger:4318/v1/traces");
        assert_eq!(c.service_name, "tfo-agent");
        assert_eq!(c.batch_size, 1000);
        assert_eq!(c.max_request_bytes, 4 << 20);
        assert_eq!(c.compression, Compression::None);
        assert_eq!(c.timeout, Duration::from_secs(10));
        for e in [
            "http://j:4318/",
            "http://j:4318/v1/traces",
            "http://j:4318/v1/traces/",
        ] {
            let c = parse(&format!(r#"{{"endpoint": "{e}"}}"#)).unwrap();
            assert_eq!(c.traces_url(), "http://j:4318/v1/traces", "{e}");
        }
        let c = parse(r#"{"endpoint": "https://p/jaeger", "protocol": "otlp"}"#).unwrap();
        assert!(c.validate().is_empty());
        assert_eq!(c.traces_url(), "https://p/jaeger/v1/traces");
    }

    #[test]
    fn the_old_agents_mistakes_are_refused_with_an_explanation() {
        let c =
            parse(r#"{"endpoint": "http://jaeger:14268/api/traces", "protocol": "grpc"}"#).unwrap();
        let errs = c.validate();
        assert_eq!(paths(&c), ["endpoint", "protocol"]);
        assert!(errs[0].message.contains("Thrift"), "{:?}", errs[0]);
        assert!(errs[0].message.contains("4318"), "{:?}", errs[0]);
        assert!(errs[1].message.contains("gRPC"), "{:?}", errs[1]);
        let c = parse(r#"{"endpoint": "http://j:4318", "protocol": "thrift_http"}"#).unwrap();
        assert!(c.validate()[0].message.contains("legacy"));
        // The Go struct's keys are unknown here.
        assert!(parse(r#"{"endpoint": "http://j", "collector_endpoint": "x"}"#).is_err());
        assert!(parse(r#"{"endpoint": "http://j", "agent_host": "x"}"#).is_err());
    }

    #[test]
    fn every_problem_has_its_path() {
        let c = parse(
            r#"{"endpoint": "jaeger:4318", "protocol": "smoke", "service_name": " ",
                "headers": {"Content-Type": "x", "bad name": "v", "x-ok": "bad\nvalue",
                            "Authorization": "Bearer t"},
                "username": "a:b", "batch_size": 0, "max_request_bytes": 5, "timeout": 0,
                "tls": {"ca_file": "/nonexistent/ca.pem"}}"#,
        )
        .unwrap();
        assert_eq!(
            paths(&c),
            [
                "endpoint",
                "protocol",
                "service_name",
                "headers.Content-Type",
                "headers.bad name",
                "headers.x-ok",
                "username",
                "batch_size",
                "max_request_bytes",
                "timeout",
                "tls.ca_file"
            ]
        );
        let c = parse(r#"{"endpoint": "http://j", "password": "p"}"#).unwrap();
        assert_eq!(paths(&c), ["password"]);
    }

    #[test]
    fn secrets_are_redacted() {
        let c = parse(
            r#"{"endpoint": "http://j", "username": "u", "password": "hunter2",
                "headers": {"X-Key": "s3cret"}}"#,
        )
        .unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2") && !d.contains("s3cret"), "{d}");
    }
}
