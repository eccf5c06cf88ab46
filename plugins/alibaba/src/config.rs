//! The alibaba integration's configuration (its block of the agent config, handed
//! to the plugin as JSON). Every key: `plugins/alibaba/config.example.yaml` and
//! `docs/integrations/alibaba.md`.
//!
//! ```yaml
//! integrations:
//!   alibaba:
//!     enabled: true
//!     access_key_id: ${ALIBABA_ACCESS_KEY_ID}
//!     access_key_secret: ${ALIBABA_ACCESS_KEY_SECRET}
//!     region: cn-hangzhou
//!     sls: { project: my-project, logstore: telemetryflow-logs }
//!     cms: { group_id: "0" }
//!     arms: { endpoint: "http://tracing-analysis-dc-hz.aliyuncs.com/adapt_xxx/api/otlp/traces" }
//! ```
//!
//! Unknown keys are rejected; [`Config::validate`] adds the checks serde cannot
//! express, each with its path (`sls.project`).

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;

/// Default region (the Go agent's `region_id` default).
pub const DEFAULT_REGION: &str = "cn-hangzhou";
/// Default logstore (the Go agent's default).
pub const DEFAULT_LOGSTORE: &str = "telemetryflow-logs";
/// Default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A credential: compared and used, never printed (the shared type).
pub use tfo_plugin_common::secret::Secret;

/// Configuration of one alibaba instance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// AccessKey id (RAM user or STS).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// AccessKey secret.
    #[serde(default)]
    pub access_key_secret: Option<Secret>,
    /// STS security token, when the AccessKey pair is temporary.
    #[serde(default)]
    pub security_token: Option<Secret>,
    /// Region id, e.g. `cn-hangzhou` (the Go agent's `region_id` is accepted).
    #[serde(default = "default_region", alias = "region_id")]
    pub region: String,
    /// Simple Log Service (logs); absent = logs are not sent.
    #[serde(default)]
    pub sls: Option<SlsConfig>,
    /// CloudMonitor custom metrics; absent = metrics are not sent.
    #[serde(default)]
    pub cms: Option<CmsConfig>,
    /// Managed Service for OpenTelemetry / ARMS (traces); absent = spans are not
    /// sent.
    #[serde(default)]
    pub arms: Option<ArmsConfig>,
    /// Extra labels: SLS log tags and CloudMonitor dimensions.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Whole-request timeout.
    #[serde(
        default = "default_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub timeout: Duration,
    /// Extra trusted CA certificates (PEM).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (tests only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// SLS body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SlsCompression {
    /// LZ4 block format (`x-log-compresstype: lz4`), the SDKs' default.
    #[default]
    Lz4,
    /// zlib deflate (`x-log-compresstype: deflate`).
    Deflate,
}

/// Simple Log Service target.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlsConfig {
    /// `false` turns this target off without deleting its block.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Project name (the first label of the host).
    pub project: String,
    /// Logstore name.
    #[serde(default = "default_logstore")]
    pub logstore: String,
    /// Service endpoint, default `{region}.log.aliyuncs.com` (https); a full URL
    /// (`http://cn-hangzhou-intranet.log.aliyuncs.com`) chooses the scheme. An IP
    /// address or `localhost` is used as it is, without the project prefix (local
    /// gateways, tests).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// LogGroup topic.
    #[serde(default)]
    pub topic: String,
    /// LogGroup source; default the resource's `host.name`.
    #[serde(default)]
    pub source: Option<String>,
    /// `lz4` (default) or `deflate`.
    #[serde(default)]
    pub compression: SlsCompression,
}

impl SlsConfig {
    /// Base URL of the project: `https://{project}.{endpoint}`.
    pub fn base_url(&self, region: &str) -> String {
        let raw = self
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("{region}.log.aliyuncs.com"));
        let raw = raw.trim_end_matches('/');
        let (scheme, host) = match raw.split_once("://") {
            Some((s, h)) => (s.to_string(), h.to_string()),
            None => ("https".to_string(), raw.to_string()),
        };
        let name = host.rsplit_once(':').map_or(host.as_str(), |(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host.as_str()
            }
        });
        let literal = name == "localhost"
            || name.parse::<std::net::IpAddr>().is_ok()
            || name.starts_with('[');
        if literal {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{}.{host}", self.project)
        }
    }
}

/// CloudMonitor target.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmsConfig {
    /// `false` turns this target off without deleting its block.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Endpoint, default `https://metrics.{region}.aliyuncs.com`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Application group id (`0` = none).
    #[serde(default = "default_group")]
    pub group_id: String,
    /// Prefix added to every metric name.
    #[serde(default)]
    pub metric_prefix: String,
}

impl CmsConfig {
    /// The endpoint URL (no trailing slash).
    pub fn url(&self, region: &str) -> String {
        match &self.endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => format!("https://metrics.{region}.aliyuncs.com"),
        }
    }
}

/// OTLP body compression for traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OtlpCompression {
    /// Uncompressed (default).
    #[default]
    None,
    /// `Content-Encoding: gzip`.
    Gzip,
}

/// Managed Service for OpenTelemetry (ARMS tracing) target.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmsConfig {
    /// `false` turns this target off without deleting its block.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The OpenTelemetry HTTP endpoint copied from the console, ending in
    /// `/api/otlp/traces` (it embeds the token, so it is treated as a secret).
    pub endpoint: Secret,
    /// Token sent as the `Authentication` header (for endpoints that take it as a
    /// header rather than in the URL).
    #[serde(default)]
    pub token: Option<Secret>,
    /// `none` (default) or `gzip`.
    #[serde(default)]
    pub compression: OtlpCompression,
}

fn yes() -> bool {
    true
}
fn default_region() -> String {
    DEFAULT_REGION.to_string()
}
fn default_logstore() -> String {
    DEFAULT_LOGSTORE.to_string()
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_group() -> String {
    "0".to_string()
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn check_url(errors: &mut Vec<ConfigError>, path: &str, url: &str, what: &str) {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url
            .split("://")
            .nth(1)
            .is_some_and(|h| !h.split('/').next().unwrap_or("").is_empty())
        && !url.contains(char::is_whitespace);
    if !ok {
        // The value may hold a token: do not quote it.
        errors.push(ConfigError::new(
            path,
            format!("must be an http:// or https:// URL with a host ({what})"),
        ));
    }
}

impl Config {
    /// Drops the target blocks written with `enabled: false`.
    pub fn normalize(mut self) -> Self {
        self.sls = self.sls.filter(|b| b.enabled);
        self.cms = self.cms.filter(|b| b.enabled);
        self.arms = self.arms.filter(|b| b.enabled);
        self
    }

    /// Every problem serde cannot see, with its path.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if self.sls.is_none() && self.cms.is_none() && self.arms.is_none() {
            errors.push(ConfigError::new(
                "",
                "configure at least one of sls, cms and arms",
            ));
        }
        if self.sls.is_some() || self.cms.is_some() {
            if self
                .access_key_id
                .as_deref()
                .is_none_or(|s| s.trim().is_empty())
            {
                errors.push(ConfigError::new(
                    "access_key_id",
                    "required for sls and cms",
                ));
            }
            if self
                .access_key_secret
                .as_ref()
                .is_none_or(|s| s.expose().is_empty())
            {
                errors.push(ConfigError::new(
                    "access_key_secret",
                    "required for sls and cms",
                ));
            }
        }
        if !name_ok(&self.region) {
            errors.push(ConfigError::new(
                "region",
                format!("{:?} is not a region id (e.g. cn-hangzhou)", self.region),
            ));
        }
        if let Some(s) = &self.sls {
            // SLS naming rules: lower-case letters, digits, '-' (and '_' for
            // logstores), 2 to 63 characters.
            let proj_ok = (3..=63).contains(&s.project.len())
                && s.project
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !proj_ok {
                errors.push(ConfigError::new(
                    "sls.project",
                    "3-63 lower-case letters, digits and hyphens",
                ));
            }
            let store_ok = (2..=63).contains(&s.logstore.len())
                && s.logstore
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !store_ok {
                errors.push(ConfigError::new(
                    "sls.logstore",
                    "2-63 lower-case letters, digits, hyphens and underscores",
                ));
            }
            if let Some(e) = &s.endpoint {
                let full = if e.contains("://") {
                    e.clone()
                } else {
                    format!("https://{e}")
                };
                check_url(&mut errors, "sls.endpoint", &full, "or a host name");
                if e.trim_end_matches('/').contains('/') && !e.contains("://") {
                    errors.push(ConfigError::new("sls.endpoint", "a host name has no path"));
                }
            }
        }
        if let Some(c) = &self.cms {
            if let Some(e) = &c.endpoint {
                check_url(
                    &mut errors,
                    "cms.endpoint",
                    e,
                    "e.g. https://metrics.cn-hangzhou.aliyuncs.com",
                );
            }
            if c.group_id.is_empty() || !c.group_id.chars().all(|c| c.is_ascii_digit()) {
                errors.push(ConfigError::new(
                    "cms.group_id",
                    "must be a number (0 = no group)",
                ));
            }
        }
        if let Some(a) = &self.arms {
            check_url(
                &mut errors,
                "arms.endpoint",
                a.endpoint.expose(),
                "the OpenTelemetry HTTP endpoint from the console",
            );
        }
        if self.timeout.is_zero() {
            errors.push(ConfigError::new("timeout", "must be greater than 0"));
        }
        errors
    }
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
    fn needs_a_target_and_keys() {
        assert_eq!(paths(&parse("{}")), vec![""]);
        assert_eq!(
            paths(&parse(r#"{"sls": {"project": "my-proj"}}"#)),
            vec!["access_key_id", "access_key_secret"]
        );
        // Traces need no AccessKey.
        let c =
            parse(r#"{"arms": {"endpoint": "http://tracing.example/adapt_x/api/otlp/traces"}}"#);
        assert!(paths(&c).is_empty(), "{:?}", c.validate());
    }

    #[test]
    fn bad_values_carry_paths_and_do_not_quote_tokens() {
        let c = parse(
            r#"{"access_key_id": "id", "access_key_secret": "s", "region_id": "cn hangzhou",
                "sls": {"project": "My_Project", "logstore": "x", "endpoint": "h/p"},
                "cms": {"endpoint": "metrics", "group_id": "abc"},
                "arms": {"endpoint": "adapt_SECRETTOKEN/api/otlp/traces"}, "timeout": 0}"#,
        );
        let errs = c.validate();
        let p: Vec<_> = errs.iter().map(|e| e.path.to_string()).collect();
        assert_eq!(
            p,
            vec![
                "region",
                "sls.project",
                "sls.logstore",
                "sls.endpoint",
                "cms.endpoint",
                "cms.group_id",
                "arms.endpoint",
                "timeout"
            ]
        );
        assert!(errs.iter().all(|e| !e.message.contains("SECRETTOKEN")));
    }

    #[test]
    fn sls_hosts() {
        let s: SlsConfig = serde_json::from_str(r#"{"project": "proj"}"#).unwrap();
        assert_eq!(
            s.base_url("cn-hangzhou"),
            "https://proj.cn-hangzhou.log.aliyuncs.com"
        );
        let s: SlsConfig = serde_json::from_str(
            r#"{"project": "proj", "endpoint": "http://cn-shanghai-intranet.log.aliyuncs.com/"}"#,
        )
        .unwrap();
        assert_eq!(
            s.base_url("x"),
            "http://proj.cn-shanghai-intranet.log.aliyuncs.com"
        );
        let s: SlsConfig =
            serde_json::from_str(r#"{"project": "proj", "endpoint": "https://127.0.0.1:8443"}"#)
                .unwrap();
        assert_eq!(s.base_url("x"), "https://127.0.0.1:8443");
        let s: SlsConfig =
            serde_json::from_str(r#"{"project": "proj", "endpoint": "localhost:9"}"#).unwrap();
        assert_eq!(s.base_url("x"), "https://localhost:9");
    }

    #[test]
    fn disabled_blocks_are_dropped() {
        let c = parse(
            r#"{"sls": {"enabled": false, "project": "BAD"},
                "arms": {"endpoint": "http://h/x"}}"#,
        )
        .normalize();
        assert!(c.sls.is_none());
        assert!(paths(&c).is_empty(), "{:?}", c.validate());
    }

    #[test]
    fn debug_hides_secrets() {
        let c = parse(
            r#"{"access_key_secret": "AKSECRET", "security_token": "STSTOKEN",
                "arms": {"endpoint": "http://h/adapt_URLTOKEN/api/otlp/traces", "token": "HDRTOKEN"}}"#,
        );
        let d = format!("{c:?}");
        for s in ["AKSECRET", "STSTOKEN", "URLTOKEN", "HDRTOKEN"] {
            assert!(!d.contains(s), "{d}");
        }
    }
}
