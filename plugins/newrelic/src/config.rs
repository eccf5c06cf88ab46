//! The newrelic integration's configuration (its block of the agent config, handed
//! to the plugin as JSON), defaults and validation with field paths.
//!
//! ```yaml
//! integrations:
//!   newrelic:
//!     enabled: true
//!     license_key: ${NEW_RELIC_LICENSE_KEY}   # sent as Api-Key
//!     region: us                              # or eu
//!     attributes: { team: infra }
//! ```
//!
//! Key names follow the older Go agent where they made sense: `license_key`,
//! `insights_insert_key` (also accepted as `insert_key`), `region`,
//! `metrics_endpoint`, `logs_endpoint`, `traces_endpoint`, `timeout`,
//! `compression` (its `true`/`false` still accepted), `service_name`,
//! `environment`. Unknown keys are rejected (`deny_unknown_fields`).
//!
//! Exactly one credential is used: a license key (`Api-Key` header, what New
//! Relic's ingest docs ask for) or a legacy Insights insert key (`X-Insert-Key`
//! header). Both are held in a [`Secret`], whose `Debug` prints `***`.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde::{Deserialize, Deserializer};
use tfo_plugin_api::ConfigError;

/// Default whole-request timeout (as the Go agent).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A credential: compared and used, never printed (the shared type).
pub use tfo_plugin_common::secret::Secret;

/// New Relic data center region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Region {
    /// United States (the default).
    #[default]
    Us,
    /// European Union.
    Eu,
}

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Region, D::Error> {
        let s = String::deserialize(d)?;
        match s.trim().to_ascii_lowercase().as_str() {
            "us" => Ok(Region::Us),
            "eu" => Ok(Region::Eu),
            _ => Err(serde::de::Error::custom(format!(
                "unknown region {s:?}: use us or eu"
            ))),
        }
    }
}

/// Request body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// `Content-Encoding: gzip` (the default; New Relic "highly recommend[s]"
    /// compression).
    #[default]
    Gzip,
    /// Bodies as they are.
    None,
}

impl<'de> Deserialize<'de> for Compression {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Compression, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            B(bool),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::B(true) => Ok(Compression::Gzip),
            Raw::B(false) => Ok(Compression::None),
            Raw::S(s) => match s.trim().to_ascii_lowercase().as_str() {
                "gzip" => Ok(Compression::Gzip),
                "none" => Ok(Compression::None),
                _ => Err(serde::de::Error::custom(format!(
                    "unknown compression {s:?}: use gzip or none"
                ))),
            },
        }
    }
}

/// Configuration of one newrelic instance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// License key, sent as `Api-Key`.
    #[serde(default)]
    pub license_key: Secret,
    /// Legacy Insights insert key, sent as `X-Insert-Key` (instead of a license
    /// key).
    #[serde(default, alias = "insights_insert_key")]
    pub insert_key: Secret,
    /// `us` (default) or `eu`: picks the documented hosts.
    #[serde(default)]
    pub region: Region,
    /// Send metrics.
    #[serde(default = "yes")]
    pub metrics: bool,
    /// Send logs.
    #[serde(default = "yes")]
    pub logs: bool,
    /// Send traces.
    #[serde(default = "yes")]
    pub traces: bool,
    /// Full URL of the Metric API (default from `region`).
    #[serde(default)]
    pub metrics_endpoint: Option<String>,
    /// Full URL of the Log API (default from `region`).
    #[serde(default)]
    pub logs_endpoint: Option<String>,
    /// Full URL of the Trace API (default from `region`).
    #[serde(default)]
    pub traces_endpoint: Option<String>,
    /// `gzip` (default) or `none` (`true` / `false` also accepted).
    #[serde(default)]
    pub compression: Compression,
    /// Attributes added to every metric, log and span (the `common` block).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// `service.name` (default: the batch's).
    #[serde(default)]
    pub service_name: Option<String>,
    /// `environment` attribute.
    #[serde(default)]
    pub environment: Option<String>,
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
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

/// Keys the Metric API uses in its own JSON, which therefore cannot be attribute
/// keys ("Metric API limits and restricted attributes").
pub const METRIC_RESERVED_KEYS: [&str; 9] = [
    "interval.ms",
    "timestamp",
    "value",
    "common",
    "min",
    "max",
    "count",
    "sum",
    "metrics",
];

impl Config {
    /// Where metrics go.
    pub fn metrics_url(&self) -> String {
        self.metrics_endpoint.clone().unwrap_or_else(|| {
            match self.region {
                Region::Us => "https://metric-api.newrelic.com/metric/v1",
                Region::Eu => "https://metric-api.eu.newrelic.com/metric/v1",
            }
            .into()
        })
    }

    /// Where logs go.
    pub fn logs_url(&self) -> String {
        self.logs_endpoint.clone().unwrap_or_else(|| {
            match self.region {
                Region::Us => "https://log-api.newrelic.com/log/v1",
                Region::Eu => "https://log-api.eu.newrelic.com/log/v1",
            }
            .into()
        })
    }

    /// Where spans go.
    pub fn traces_url(&self) -> String {
        self.traces_endpoint.clone().unwrap_or_else(|| {
            match self.region {
                Region::Us => "https://trace-api.newrelic.com/trace/v1",
                Region::Eu => "https://trace-api.eu.newrelic.com/trace/v1",
            }
            .into()
        })
    }

    /// The authentication header: (`Api-Key`, license key) or (`X-Insert-Key`,
    /// insert key).
    pub fn auth_header(&self) -> (&'static str, &Secret) {
        if !self.license_key.is_blank() {
            ("Api-Key", &self.license_key)
        } else {
            ("X-Insert-Key", &self.insert_key)
        }
    }

    /// Every problem found (empty when usable), each with its field path. Messages
    /// never quote a key.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if !self.metrics && !self.logs && !self.traces {
            errors.push(ConfigError::new(
                "metrics",
                "metrics, logs and traces are all off: the instance would send nothing",
            ));
        }
        match (self.license_key.is_blank(), self.insert_key.is_blank()) {
            (true, true) => errors.push(ConfigError::new(
                "license_key",
                "a New Relic license key is required (or a legacy `insert_key`), e.g. \
                 ${NEW_RELIC_LICENSE_KEY}",
            )),
            (false, false) => errors.push(ConfigError::new(
                "insert_key",
                "set either license_key or insert_key, not both",
            )),
            _ => {}
        }
        for (path, key) in [
            ("license_key", &self.license_key),
            ("insert_key", &self.insert_key),
        ] {
            let v = key.expose();
            if !key.is_blank() && v.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
                errors.push(ConfigError::new(
                    path,
                    "contains whitespace or characters not allowed in an HTTP header",
                ));
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
        for k in self.attributes.keys() {
            if k.trim().is_empty() || k.len() > 255 {
                errors.push(ConfigError::new(
                    format!("attributes.{k}"),
                    "attribute names must be 1 to 255 characters",
                ));
            } else if METRIC_RESERVED_KEYS.contains(&k.as_str()) {
                errors.push(ConfigError::new(
                    format!("attributes.{k}"),
                    "is a key of the Metric API's own JSON and cannot be an attribute",
                ));
            }
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

/// An absolute `http://` or `https://` URL with a host (the shared check).
pub use tfo_plugin_common::endpoint::check_url;

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef0123NRAL";

    fn parse(json: &str) -> Config {
        serde_json::from_str(json).unwrap()
    }

    fn paths(c: &Config) -> Vec<String> {
        c.validate().iter().map(|e| e.path.to_string()).collect()
    }

    #[test]
    fn defaults_are_the_us_endpoints() {
        let c = parse(&format!(r#"{{"license_key": "{KEY}"}}"#));
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.metrics_url(), "https://metric-api.newrelic.com/metric/v1");
        assert_eq!(c.logs_url(), "https://log-api.newrelic.com/log/v1");
        assert_eq!(c.traces_url(), "https://trace-api.newrelic.com/trace/v1");
        assert!(c.metrics && c.logs && c.traces);
        assert_eq!(c.compression, Compression::Gzip);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.auth_header().0, "Api-Key");
    }

    #[test]
    fn eu_region_and_overrides() {
        let c = parse(&format!(r#"{{"license_key": "{KEY}", "region": "EU"}}"#));
        assert_eq!(
            c.metrics_url(),
            "https://metric-api.eu.newrelic.com/metric/v1"
        );
        assert_eq!(c.logs_url(), "https://log-api.eu.newrelic.com/log/v1");
        assert_eq!(c.traces_url(), "https://trace-api.eu.newrelic.com/trace/v1");
        let c = parse(&format!(
            r#"{{"license_key": "{KEY}", "metrics_endpoint": "https://127.0.0.1:9/m"}}"#
        ));
        assert_eq!(c.metrics_url(), "https://127.0.0.1:9/m");
    }

    #[test]
    fn insert_keys_use_their_own_header() {
        let c = parse(r#"{"insights_insert_key": "abc"}"#);
        assert!(c.validate().is_empty());
        assert_eq!(c.auth_header().0, "X-Insert-Key");
        assert_eq!(c.auth_header().1.expose(), "abc");
        let c = parse(r#"{"insert_key": "abc", "license_key": "def"}"#);
        assert_eq!(paths(&c), ["insert_key"]);
    }

    #[test]
    fn go_agent_compression_booleans_still_parse() {
        assert_eq!(
            parse(r#"{"compression": false}"#).compression,
            Compression::None
        );
        assert_eq!(
            parse(r#"{"compression": true}"#).compression,
            Compression::Gzip
        );
        assert_eq!(
            parse(r#"{"compression": "none"}"#).compression,
            Compression::None
        );
        assert!(serde_json::from_str::<Config>(r#"{"compression": "zstd"}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"region": "ap"}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"account_id": 1}"#).is_err());
    }

    #[test]
    fn problems_come_with_paths_and_never_quote_keys() {
        let c = parse(
            r#"{"license_key": "bad key", "metrics_endpoint": "ftp://x", "traces_endpoint": "",
                "attributes": {"count": "x", "": "y"}, "timeout": 0,
                "ca_file": "/nonexistent/ca.pem"}"#,
        );
        assert_eq!(
            paths(&c),
            [
                "license_key",
                "metrics_endpoint",
                "traces_endpoint",
                "attributes.",
                "attributes.count",
                "timeout",
                "ca_file"
            ]
        );
        for e in c.validate() {
            assert!(!e.message.contains("bad key"), "{e:?}");
        }
        assert!(!format!("{c:?}").contains("bad key"));
        assert_eq!(paths(&parse("{}")), ["license_key"]);
        assert_eq!(
            paths(&parse(
                r#"{"license_key": "k", "metrics": false, "logs": false, "traces": false}"#
            )),
            ["metrics"]
        );
    }
}
