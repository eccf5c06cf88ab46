//! The plugin's configuration: the integration's block of the agent config, handed
//! over as JSON.
//!
//! ```yaml
//! integrations:
//!   nutanix:
//!     enabled: true
//!     interval: 60s
//!     prism_central_url: https://prism-central.example.net:9440
//!     username: monitoring
//!     password: ${NUTANIX_PASSWORD}
//!     ca_file: /etc/tfo-agent/nutanix-ca.pem
//! ```
//!
//! Key names follow the older Go agent's (`prism_central_url`, `prism_element_url`,
//! `username`, `password`, `api_version`, `tls_skip_verify`, `collect_*`, `labels`)
//! so existing blocks keep working. Unknown keys are rejected; [`Config::resolve`]
//! reports every problem at once with its field path. The password never appears
//! in `Debug` output or messages.

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;

/// Default bound of one HTTP exchange.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// Default bound of one whole collection, below the host's 30 s call timeout.
pub const DEFAULT_COLLECT_TIMEOUT: Duration = Duration::from_secs(25);
/// Default entities per page: the v3 list APIs' maximum `length` is 500.
pub const DEFAULT_PAGE_SIZE: u32 = 500;

/// A string that is never printed.
#[derive(Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

fn yes() -> bool {
    true
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_collect_timeout() -> Duration {
    DEFAULT_COLLECT_TIMEOUT
}
fn default_page_size() -> u32 {
    DEFAULT_PAGE_SIZE
}

/// Configuration of one Nutanix instance, as written by the user.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Prism Central, `https://pc:9440`: every registered cluster (API v3).
    #[serde(default)]
    pub prism_central_url: Option<String>,
    /// Prism Element, `https://cluster-vip:9440`: one cluster (API v2.0 + v1).
    #[serde(default)]
    pub prism_element_url: Option<String>,
    /// `v3` (Prism Central, default with `prism_central_url`) or `v2` / `v2.0`
    /// (Prism Element, default with `prism_element_url`).
    #[serde(default)]
    pub api_version: Option<String>,
    /// User for HTTP basic auth.
    pub username: String,
    /// Password for HTTP basic auth.
    pub password: Secret,
    /// Extra PEM CA certificates to trust.
    #[serde(default, alias = "tls_ca_file")]
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate. Only for test systems.
    #[serde(default, alias = "tls_skip_verify")]
    pub insecure_skip_verify: bool,
    /// Bound of one HTTP exchange (default 15s).
    #[serde(
        default = "default_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub timeout: Duration,
    /// Bound of one whole collection (default 25s).
    #[serde(
        default = "default_collect_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub collect_timeout: Duration,
    /// Entities per page (v3 `length`, v3 groups `group_member_count`, v2/v1
    /// `count`); 1..=500 (default 500).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Cluster metrics (default true).
    #[serde(default = "yes")]
    pub collect_clusters: bool,
    /// Host metrics (default true).
    #[serde(default = "yes")]
    pub collect_hosts: bool,
    /// VM metrics (default true).
    #[serde(default = "yes")]
    pub collect_vms: bool,
    /// Performance stats (v3: the groups API; v2: embedded in the answers);
    /// default true. Without them only inventory metrics are reported.
    #[serde(default = "yes")]
    pub collect_stats: bool,
    /// Accepted for compatibility with the Go agent's blocks; cluster storage
    /// capacity and usage are reported with the cluster.
    #[serde(default)]
    pub collect_storage: Option<bool>,
    /// Accepted for compatibility; not collected.
    #[serde(default)]
    pub collect_containers: Option<bool>,
    /// Accepted for compatibility; not collected.
    #[serde(default)]
    pub collect_networks: Option<bool>,
    /// Accepted for compatibility; not collected.
    #[serde(default)]
    pub collect_alerts: Option<bool>,
    /// Attributes added to every point.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Accepted for compatibility and ignored: the agent's `interval` rules.
    #[serde(
        default,
        rename = "scrape_interval",
        deserialize_with = "tfo_plugin_common::config::opt_duration"
    )]
    pub _scrape_interval: Option<Duration>,
}

/// Which API family the plugin speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Prism Central v3: `POST /api/nutanix/v3/{clusters,hosts,vms}/list` and
    /// `POST /api/nutanix/v3/groups`.
    V3,
    /// Prism Element: `GET /PrismGateway/services/rest/v2.0/{clusters,hosts}/` and
    /// `GET /PrismGateway/services/rest/v1/vms/` (the v1 VM list carries stats).
    V2,
}

/// The validated settings the collector runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://host:9440` (no trailing slash).
    pub base: String,
    /// API family.
    pub api: Api,
    /// Basic auth user.
    pub username: String,
    /// Basic auth password.
    pub password: Secret,
    /// HTTP client options.
    pub client: tfo_plugin_common::http::ClientOptions,
    /// Whole-collection bound.
    pub collect_timeout: Duration,
    /// Entities per page.
    pub page_size: u32,
    /// Cluster metrics.
    pub clusters: bool,
    /// Host metrics.
    pub hosts: bool,
    /// VM metrics.
    pub vms: bool,
    /// Performance stats.
    pub stats: bool,
    /// Extra attributes on every point.
    pub labels: BTreeMap<String, String>,
}

fn check_url(path: &str, url: &str, errs: &mut Vec<ConfigError>) -> String {
    let url = url.trim().trim_end_matches('/');
    match url.split_once("://") {
        Some(("https" | "http", host)) if !host.is_empty() && !host.starts_with('/') => {
            url.to_string()
        }
        _ => {
            errs.push(ConfigError::new(
                path,
                "must be an http:// or https:// URL with a host, e.g. https://pc:9440",
            ));
            String::new()
        }
    }
}

impl Config {
    /// Checks what serde cannot and builds the [`Settings`]; every problem is
    /// reported at once, each with its field path.
    pub fn resolve(self) -> Result<Settings, Vec<ConfigError>> {
        let mut errs = Vec::new();
        let pc = self.prism_central_url.filter(|u| !u.trim().is_empty());
        let pe = self.prism_element_url.filter(|u| !u.trim().is_empty());
        // Central is preferred when both are given, as in the Go agent.
        let (base, default_api) = match (&pc, &pe) {
            (Some(u), _) => (check_url("prism_central_url", u, &mut errs), Api::V3),
            (None, Some(u)) => (check_url("prism_element_url", u, &mut errs), Api::V2),
            (None, None) => {
                errs.push(ConfigError::new(
                    "prism_central_url",
                    "set prism_central_url (or prism_element_url)",
                ));
                (String::new(), Api::V3)
            }
        };
        let api = match self.api_version.as_deref().map(str::trim) {
            None | Some("") => default_api,
            Some("v3" | "3" | "v3.0" | "v3.1") => Api::V3,
            Some("v2" | "v2.0" | "2" | "2.0") => Api::V2,
            Some(other) => {
                errs.push(ConfigError::new(
                    "api_version",
                    format!("unknown API version {other:?} (v3 for Prism Central, v2 for Prism Element)"),
                ));
                default_api
            }
        };
        if self.username.trim().is_empty() {
            errs.push(ConfigError::new("username", "must not be empty"));
        }
        if self.password.0.is_empty() {
            errs.push(ConfigError::new("password", "must not be empty"));
        }
        if self.timeout.is_zero() {
            errs.push(ConfigError::new("timeout", "must be greater than 0"));
        }
        if self.collect_timeout.is_zero() {
            errs.push(ConfigError::new(
                "collect_timeout",
                "must be greater than 0",
            ));
        }
        if !(1..=500).contains(&self.page_size) {
            errs.push(ConfigError::new("page_size", "must be 1..=500"));
        }
        if let Some(ca) = &self.ca_file {
            if let Err(e) = std::fs::metadata(ca) {
                errs.push(ConfigError::new(
                    "ca_file",
                    format!("cannot read {}: {e}", ca.display()),
                ));
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Settings {
            base,
            api,
            username: self.username,
            password: self.password,
            client: tfo_plugin_common::http::ClientOptions {
                timeout: self.timeout,
                ca_file: self.ca_file,
                insecure_skip_verify: self.insecure_skip_verify,
                ..Default::default()
            },
            collect_timeout: self.collect_timeout,
            page_size: self.page_size,
            clusters: self.collect_clusters,
            hosts: self.collect_hosts,
            vms: self.collect_vms,
            stats: self.collect_stats,
            labels: self.labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Settings, Vec<ConfigError>> {
        serde_json::from_str::<Config>(json).unwrap().resolve()
    }

    #[test]
    fn central_is_v3_element_is_v2() {
        let s = parse(r#"{"prism_central_url":"https://pc:9440/","username":"u","password":"p"}"#)
            .unwrap();
        assert_eq!((s.base.as_str(), s.api), ("https://pc:9440", Api::V3));
        let s = parse(r#"{"prism_element_url":"https://pe:9440","username":"u","password":"p"}"#)
            .unwrap();
        assert_eq!(s.api, Api::V2);
        let s = parse(
            r#"{"prism_element_url":"https://pe:9440","api_version":"v2.0","username":"u","password":"p","tls_skip_verify":true,"collect_alerts":true,"scrape_interval":"60s"}"#,
        )
        .unwrap();
        assert_eq!(s.api, Api::V2);
        assert!(s.client.insecure_skip_verify);
    }

    #[test]
    fn every_problem_has_its_path() {
        let errs = parse(
            r#"{"prism_central_url":"pc:9440","api_version":"v9","username":"","password":"","page_size":0}"#,
        )
        .unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "prism_central_url",
                "api_version",
                "username",
                "password",
                "page_size"
            ]
        );
        let errs = parse(r#"{"username":"u","password":"p"}"#).unwrap_err();
        assert_eq!(errs[0].path.as_str(), "prism_central_url");
        assert!(
            serde_json::from_str::<Config>(r#"{"username":"u","password":"p","bogus":1}"#).is_err()
        );
    }

    #[test]
    fn password_is_not_in_debug_output() {
        let c: Config = serde_json::from_str(
            r#"{"prism_central_url":"https://pc","username":"u","password":"n0t-in-logs"}"#,
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("n0t-in-logs"));
        assert!(!format!("{:?}", c.resolve().unwrap()).contains("n0t-in-logs"));
    }
}
