//! The datadog integration's configuration (its block of the agent config, handed
//! to the plugin as JSON), defaults and validation with field paths.
//!
//! ```yaml
//! integrations:
//!   datadog:
//!     enabled: true
//!     api_key: ${DD_API_KEY}        # required for metrics and logs
//!     site: datadoghq.com           # or datadoghq.eu, us3.datadoghq.com, ...
//!     metrics: true
//!     logs: true
//!     traces: false                 # needs a Datadog Agent with OTLP ingest
//!     api_version: v2               # metrics API: v2 (default) or v1
//!     compression: gzip             # or none
//!     tags: ["team:infra"]
//! ```
//!
//! Key names follow the older Go agent where they made sense (`api_key`, `site`,
//! `metrics_endpoint`, `logs_endpoint`, `traces_endpoint`, `tags`, `service_name`,
//! `environment`, `version`, `compression`, `timeout`). Its `app_key` is not
//! accepted: no intake API uses an application key, and a secret the plugin does
//! not need should not sit in its config. Unknown keys are rejected
//! (`deny_unknown_fields`) so a typo fails at load time.
//!
//! The API key is held in a [`Secret`], whose `Debug` prints `***`, so it never
//! reaches a log line or an error message through formatting.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;

/// Default whole-request timeout (as the Go agent).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default traces endpoint: the OTLP/HTTP receiver of a Datadog Agent on the same
/// host (the Agent's documented default port for OTLP/HTTP is 4318).
pub const DEFAULT_TRACES_ENDPOINT: &str = "http://localhost:4318/v1/traces";

/// Default `ddsource` of logs.
pub const DEFAULT_SOURCE: &str = "tfo-agent";

/// The Datadog sites (the `site` parameter of Datadog's docs), from the endpoint
/// tables of the "Submit metrics" and "Send logs" API pages.
pub const SITES: [&str; 9] = [
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "datadoghq.eu",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "uk1.datadoghq.com",
    "ddog-gov.com",
    "us2.ddog-gov.com",
];

/// Short region names some configs use (the Go agent's YAML said `site: us1`),
/// mapped to their site domain.
const SITE_ALIASES: [(&str, &str); 9] = [
    ("us1", "datadoghq.com"),
    ("us3", "us3.datadoghq.com"),
    ("us5", "us5.datadoghq.com"),
    ("eu1", "datadoghq.eu"),
    ("ap1", "ap1.datadoghq.com"),
    ("ap2", "ap2.datadoghq.com"),
    ("uk1", "uk1.datadoghq.com"),
    ("us1-fed", "ddog-gov.com"),
    ("us2-fed", "us2.ddog-gov.com"),
];

/// A credential: compared and used, never printed (the shared type).
pub use tfo_plugin_common::secret::Secret;

/// Which metrics API the series are posted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    /// `POST /api/v2/series` (the current API; the default).
    #[default]
    V2,
    /// `POST /api/v1/series`: for receivers that only speak v1 (Debian 12's
    /// VictoriaMetrics 1.79.5 does).
    V1,
}

/// Request body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `Content-Encoding: gzip` (the default; Datadog recommends compressed logs).
    #[default]
    Gzip,
    /// Bodies as they are.
    None,
}

/// Configuration of one datadog instance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Datadog API key (`DD-API-KEY`); required when metrics or logs are on.
    #[serde(default)]
    pub api_key: Secret,
    /// Datadog site: picks `api.<site>` and `http-intake.logs.<site>`.
    #[serde(default = "default_site")]
    pub site: String,
    /// Send metrics.
    #[serde(default = "yes")]
    pub metrics: bool,
    /// Send logs.
    #[serde(default = "yes")]
    pub logs: bool,
    /// Send traces (OTLP/HTTP to a Datadog Agent; off by default because it needs
    /// one).
    #[serde(default)]
    pub traces: bool,
    /// Series API version.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Full URL of the series API (default from `site` and `api_version`).
    #[serde(default)]
    pub metrics_endpoint: Option<String>,
    /// Full URL of the logs intake (default from `site`).
    #[serde(default)]
    pub logs_endpoint: Option<String>,
    /// Full URL of the Agent's OTLP/HTTP traces receiver.
    #[serde(default)]
    pub traces_endpoint: Option<String>,
    /// `gzip` (default) or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// Tags (`key:value`) added to every series and log.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Host name to report (default: the batch's `host.name`).
    #[serde(default)]
    pub hostname: Option<String>,
    /// `service` of logs and the `service:` tag (default: the batch's
    /// `service.name`).
    #[serde(default)]
    pub service_name: Option<String>,
    /// `env:` tag (default: the batch's `deployment.environment`).
    #[serde(default)]
    pub environment: Option<String>,
    /// `version:` tag (default: the batch's `service.version`).
    #[serde(default)]
    pub version: Option<String>,
    /// `ddsource` of logs.
    #[serde(default = "default_source")]
    pub source: String,
    /// Whole-request timeout: `500ms`, `10s`, `1m`, or a number of seconds.
    #[serde(
        default = "default_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub timeout: Duration,
    /// PEM file of extra CA certificates to trust (a proxy, a test server).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (tests only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

fn yes() -> bool {
    true
}
fn default_site() -> String {
    "datadoghq.com".into()
}
fn default_source() -> String {
    DEFAULT_SOURCE.into()
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

impl Config {
    /// The site domain (`us1` and the other short names resolved).
    pub fn site_domain(&self) -> Option<&'static str> {
        let s = self.site.trim().to_ascii_lowercase();
        let s = s.strip_prefix("app.").unwrap_or(&s);
        SITES
            .iter()
            .find(|d| **d == s)
            .copied()
            .or_else(|| SITE_ALIASES.iter().find(|(a, _)| *a == s).map(|(_, d)| *d))
    }

    /// Where series go.
    pub fn metrics_url(&self) -> String {
        if let Some(u) = &self.metrics_endpoint {
            return u.trim().to_string();
        }
        let v = match self.api_version {
            ApiVersion::V2 => "v2",
            ApiVersion::V1 => "v1",
        };
        format!(
            "https://api.{}/api/{v}/series",
            self.site_domain().unwrap_or("datadoghq.com")
        )
    }

    /// Where logs go.
    pub fn logs_url(&self) -> String {
        if let Some(u) = &self.logs_endpoint {
            return u.trim().to_string();
        }
        format!(
            "https://http-intake.logs.{}/api/v2/logs",
            self.site_domain().unwrap_or("datadoghq.com")
        )
    }

    /// Where traces go.
    pub fn traces_url(&self) -> String {
        self.traces_endpoint
            .as_deref()
            .unwrap_or(DEFAULT_TRACES_ENDPOINT)
            .trim()
            .to_string()
    }

    /// Every problem found (empty when usable), each with its field path. Messages
    /// never quote the API key.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if !self.metrics && !self.logs && !self.traces {
            errors.push(ConfigError::new(
                "metrics",
                "metrics, logs and traces are all off: the instance would send nothing",
            ));
        }
        if (self.metrics || self.logs) && self.api_key.is_blank() {
            errors.push(ConfigError::new(
                "api_key",
                "is required to send metrics or logs (the Datadog API key, e.g. ${DD_API_KEY})",
            ));
        } else if !self.api_key.is_blank()
            && (http_value_invalid(self.api_key.expose())
                || self.api_key.expose().trim() != self.api_key.expose())
        {
            errors.push(ConfigError::new(
                "api_key",
                "contains whitespace or characters not allowed in an HTTP header",
            ));
        }
        if self.site_domain().is_none() {
            errors.push(ConfigError::new(
                "site",
                format!(
                    "{:?} is not a Datadog site; use one of {}",
                    self.site,
                    SITES.join(", ")
                ),
            ));
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
        for (i, t) in self.tags.iter().enumerate() {
            if t.trim().is_empty() {
                errors.push(ConfigError::new(format!("tags[{i}]"), "must not be empty"));
            } else if t.contains(',') {
                errors.push(ConfigError::new(
                    format!("tags[{i}]"),
                    "must not contain `,` (logs join tags with commas)",
                ));
            }
        }
        if self.source.trim().is_empty() {
            errors.push(ConfigError::new("source", "must not be empty"));
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
        errors
    }
}

fn http_value_invalid(v: &str) -> bool {
    v.bytes().any(|b| !(0x21..=0x7e).contains(&b))
}

/// An absolute `http://` or `https://` URL with a host (the shared check).
pub use tfo_plugin_common::endpoint::check_url;

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn parse(json: &str) -> Config {
        serde_json::from_str(json).unwrap()
    }

    fn paths(c: &Config) -> Vec<String> {
        c.validate().iter().map(|e| e.path.to_string()).collect()
    }

    #[test]
    fn defaults() {
        let c = parse(&format!(r#"{{"api_key": "{KEY}"}}"#));
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.metrics_url(), "https://api.datadoghq.com/api/v2/series");
        assert_eq!(
            c.logs_url(),
            "https://http-intake.logs.datadoghq.com/api/v2/logs"
        );
        assert_eq!(c.traces_url(), "http://localhost:4318/v1/traces");
        assert!(c.metrics && c.logs && !c.traces);
        assert_eq!(c.compression, Compression::Gzip);
        assert_eq!(c.api_version, ApiVersion::V2);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.source, "tfo-agent");
    }

    #[test]
    fn sites_pick_the_documented_hosts() {
        for (site, api, logs) in [
            (
                "datadoghq.eu",
                "api.datadoghq.eu",
                "http-intake.logs.datadoghq.eu",
            ),
            (
                "us3.datadoghq.com",
                "api.us3.datadoghq.com",
                "http-intake.logs.us3.datadoghq.com",
            ),
            (
                "us5.datadoghq.com",
                "api.us5.datadoghq.com",
                "http-intake.logs.us5.datadoghq.com",
            ),
            (
                "ap1.datadoghq.com",
                "api.ap1.datadoghq.com",
                "http-intake.logs.ap1.datadoghq.com",
            ),
            (
                "ddog-gov.com",
                "api.ddog-gov.com",
                "http-intake.logs.ddog-gov.com",
            ),
            ("us1", "api.datadoghq.com", "http-intake.logs.datadoghq.com"),
            ("EU1", "api.datadoghq.eu", "http-intake.logs.datadoghq.eu"),
            (
                "app.datadoghq.eu",
                "api.datadoghq.eu",
                "http-intake.logs.datadoghq.eu",
            ),
        ] {
            let c = parse(&format!(r#"{{"api_key": "{KEY}", "site": "{site}"}}"#));
            assert!(c.validate().is_empty(), "{site}");
            assert_eq!(c.metrics_url(), format!("https://{api}/api/v2/series"));
            assert_eq!(c.logs_url(), format!("https://{logs}/api/v2/logs"));
        }
        let c = parse(&format!(
            r#"{{"api_key": "{KEY}", "site": "datadoghq.eu", "api_version": "v1"}}"#
        ));
        assert_eq!(c.metrics_url(), "https://api.datadoghq.eu/api/v1/series");
    }

    #[test]
    fn endpoints_override_the_site() {
        let c = parse(&format!(
            r#"{{"api_key": "{KEY}", "metrics_endpoint": "https://127.0.0.1:1/m",
                "logs_endpoint": "https://127.0.0.1:1/l", "traces_endpoint": "http://agent:4318/v1/traces"}}"#
        ));
        assert_eq!(c.metrics_url(), "https://127.0.0.1:1/m");
        assert_eq!(c.logs_url(), "https://127.0.0.1:1/l");
        assert_eq!(c.traces_url(), "http://agent:4318/v1/traces");
    }

    #[test]
    fn problems_come_with_their_paths_and_never_quote_the_key() {
        let c = parse(
            r#"{"api_key": "secret value", "site": "datadoghq.org", "metrics_endpoint": "ftp://x",
                "logs_endpoint": "http://", "tags": ["", "a,b"], "source": " ", "timeout": 0,
                "ca_file": "/nonexistent/ca.pem"}"#,
        );
        assert_eq!(
            paths(&c),
            [
                "api_key",
                "site",
                "metrics_endpoint",
                "logs_endpoint",
                "tags[0]",
                "tags[1]",
                "source",
                "timeout",
                "ca_file"
            ]
        );
        for e in c.validate() {
            assert!(!e.message.contains("secret value"), "{e:?}");
        }
        assert_eq!(format!("{:?}", c.api_key), "***");
        assert!(!format!("{c:?}").contains("secret value"));
    }

    #[test]
    fn api_key_is_required_for_metrics_and_logs_only() {
        assert_eq!(paths(&parse("{}")), ["api_key"]);
        let c = parse(r#"{"metrics": false, "logs": false, "traces": true}"#);
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let c = parse(r#"{"metrics": false, "logs": false}"#);
        assert_eq!(paths(&c), ["metrics"]);
    }

    #[test]
    fn unknown_keys_and_bad_enums_are_rejected() {
        for json in [
            r#"{"app_key": "x"}"#,
            r#"{"api_version": "v3"}"#,
            r#"{"compression": "zstd"}"#,
            r#"{"timeout": "5 parsecs"}"#,
        ] {
            assert!(serde_json::from_str::<Config>(json).is_err(), "{json}");
        }
    }
}
