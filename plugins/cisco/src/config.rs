//! The cisco integration's configuration: the integration's block of the agent
//! config, handed to the plugin as JSON.
//!
//! ```yaml
//! integrations:
//!   cisco:
//!     enabled: true
//!     interval: 60s
//!     api_type: dnac                 # dnac (Catalyst Center) | meraki
//!     timeout: 30s                   # one HTTP exchange
//!     collect_timeout: 25s           # one whole collection (below the host's 30 s)
//!     tls_skip_verify: false         # test systems only
//!     ca_file: /etc/ssl/private-ca.pem
//!     labels: { site: paris }
//!     dnac:
//!       endpoint: https://catalyst.example.net
//!       username: monitor
//!       password: ${DNAC_PASSWORD}
//!       page_size: 500               # offset/limit paging; 1..500
//!       collect_devices: true        # /network-device
//!       collect_device_health: true  # /device-health
//!       collect_network_health: true # /network-health
//!       collect_client_health: true  # /client-health
//!     meraki:
//!       api_key: ${MERAKI_API_KEY}
//!       base_url: https://api.meraki.com/api/v1
//!       org_ids: []                  # empty: every organization the key can see
//!       per_page: 1000               # 3..1000
//!       collect_uplinks: true
//!       uplinks: appliance           # appliance: /appliance/uplink/statuses; all: /uplinks/statuses
//!       requests_per_second: 10      # Meraki's documented per-organization budget
//!       max_retries: 3               # 429 answers retried (waiting Retry-After) per request
//! ```
//!
//! Unknown keys are rejected (`deny_unknown_fields`) so a typo fails at load time;
//! [`Config::validate`] adds the checks serde cannot express and reports every
//! problem at once, each with its path (`dnac.endpoint`). The password and the API
//! key are [`Secret`]s: their `Debug` prints `<redacted>` and no message quotes them.

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use serde::{Deserialize, Deserializer};
use tfo_plugin_api::ConfigError;

/// Default bound of one HTTP exchange.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound of one whole collection: below the host's 30 s call timeout, so a
/// slow controller yields partial data and a health reason rather than an abandoned
/// call.
pub const DEFAULT_COLLECT_TIMEOUT: Duration = Duration::from_secs(25);
/// Catalyst Center's largest `limit` for `/network-device` (Intent API reference).
pub const DNAC_MAX_PAGE_SIZE: u32 = 500;
/// Meraki's public Dashboard API base URL (API v1).
pub const MERAKI_DEFAULT_BASE_URL: &str = "https://api.meraki.com/api/v1";
/// Meraki's largest `perPage` for `devices/statuses` and the uplink statuses.
pub const MERAKI_MAX_PER_PAGE: u32 = 1000;
/// Meraki's smallest `perPage` for the same operations.
pub const MERAKI_MIN_PER_PAGE: u32 = 3;
/// Meraki's documented budget: 10 requests per second per organization.
pub const MERAKI_DEFAULT_RPS: f64 = 10.0;
/// Default number of retries of a request answered 429.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// A string that is never printed (password, API key).
#[derive(Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// Which Cisco management API this instance polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ApiType {
    /// Catalyst Center (formerly DNA Center) Intent API.
    #[default]
    Dnac,
    /// Meraki Dashboard API v1.
    Meraki,
}

impl ApiType {
    /// The value of the `cisco.api` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiType::Dnac => "dnac",
            ApiType::Meraki => "meraki",
        }
    }
}

/// Configuration of one cisco instance, as written by the user.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `dnac` (default) or `meraki`.
    #[serde(default)]
    pub api_type: ApiType,
    /// Bound of one HTTP exchange (connect, TLS, request, whole response).
    #[serde(
        default = "default_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub timeout: Duration,
    /// Bound of one whole collection, Retry-After waits included.
    #[serde(
        default = "default_collect_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub collect_timeout: Duration,
    /// Accept any server certificate (test systems only).
    #[serde(default)]
    pub tls_skip_verify: bool,
    /// Extra PEM CA file trusted besides the system store (a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Attributes added to every point.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Catalyst Center settings (required with `api_type: dnac`).
    #[serde(default)]
    pub dnac: Option<DnacConfig>,
    /// Meraki settings (required with `api_type: meraki`).
    #[serde(default)]
    pub meraki: Option<MerakiConfig>,
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_collect_timeout() -> Duration {
    DEFAULT_COLLECT_TIMEOUT
}
fn yes() -> bool {
    true
}
fn default_page_size() -> u32 {
    DNAC_MAX_PAGE_SIZE
}
fn default_per_page() -> u32 {
    MERAKI_MAX_PER_PAGE
}
fn default_base_url() -> String {
    MERAKI_DEFAULT_BASE_URL.to_string()
}
fn default_rps() -> f64 {
    MERAKI_DEFAULT_RPS
}
fn default_max_retries() -> u32 {
    DEFAULT_MAX_RETRIES
}

/// The Catalyst Center block.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnacConfig {
    /// Base URL of the controller, e.g. `https://catalyst.example.net`.
    pub endpoint: String,
    /// User for the token call (HTTP Basic).
    pub username: String,
    /// Password for the token call.
    pub password: Secret,
    /// `limit` of each `/network-device` and `/device-health` page (1..=500).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Read the inventory (`/network-device`).
    #[serde(default = "yes")]
    pub collect_devices: bool,
    /// Read per-device health (`/device-health`).
    #[serde(default = "yes")]
    pub collect_device_health: bool,
    /// Read overall network health (`/network-health`).
    #[serde(default = "yes")]
    pub collect_network_health: bool,
    /// Read overall client health (`/client-health`).
    #[serde(default = "yes")]
    pub collect_client_health: bool,
}

/// Which Meraki uplink operation to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UplinkSource {
    /// `GET /organizations/{id}/appliance/uplink/statuses` (MX and Z appliances).
    #[default]
    Appliance,
    /// `GET /organizations/{id}/uplinks/statuses` (MX, Z and MG cellular gateways).
    All,
}

/// The Meraki block.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerakiConfig {
    /// Dashboard API key, sent as `Authorization: Bearer <key>`.
    pub api_key: Secret,
    /// API base URL, `https://api.meraki.com/api/v1` by default (regional clouds
    /// such as `https://api.meraki.cn/api/v1` differ).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Organizations to poll; empty means every organization `GET /organizations`
    /// returns. `org_id` (one id) is accepted too.
    #[serde(default, alias = "org_id", deserialize_with = "one_or_many")]
    pub org_ids: Vec<String>,
    /// `perPage` of paginated calls (3..=1000).
    #[serde(default = "default_per_page")]
    pub per_page: u32,
    /// Read uplink statuses.
    #[serde(default = "yes")]
    pub collect_uplinks: bool,
    /// Which uplink operation (`appliance` or `all`).
    #[serde(default)]
    pub uplinks: UplinkSource,
    /// Client-side pacing of requests (per instance), at most Meraki's 10/s.
    #[serde(default = "default_rps")]
    pub requests_per_second: f64,
    /// How often one request answered 429 is retried, waiting `Retry-After` each
    /// time, within `collect_timeout` (0..=10).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::One(s) if s.is_empty() => Vec::new(),
        Raw::One(s) => vec![s],
        Raw::Many(v) => v,
    })
}

/// True for ids that can go into a URL path as they are (Meraki organization ids
/// are decimal strings; anything else would need escaping and is refused).
pub fn is_safe_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

fn check_url(errors: &mut Vec<ConfigError>, path: &str, url: &str) {
    match url.parse::<http::Uri>() {
        Ok(u)
            if matches!(u.scheme_str(), Some("http") | Some("https"))
                && u.host().is_some_and(|h| !h.is_empty())
                && u.query().is_none() => {}
        _ => errors.push(ConfigError::new(
            path,
            format!("{url:?} is not an http(s) URL without query (e.g. https://host)"),
        )),
    }
}

impl Config {
    /// Every problem serde cannot see, each with its field path.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut e = Vec::new();
        if self.timeout.is_zero() {
            e.push(ConfigError::new("timeout", "must be greater than 0"));
        }
        if self.collect_timeout.is_zero() {
            e.push(ConfigError::new(
                "collect_timeout",
                "must be greater than 0",
            ));
        }
        if self.tls_skip_verify && self.ca_file.is_some() {
            e.push(ConfigError::new(
                "ca_file",
                "has no effect with tls_skip_verify: true; remove one",
            ));
        }
        for k in self.labels.keys() {
            if k.is_empty() {
                e.push(ConfigError::new("labels", "label names must not be empty"));
            }
        }
        match self.api_type {
            ApiType::Dnac => match &self.dnac {
                None => e.push(ConfigError::new(
                    "dnac",
                    "required with api_type: dnac (endpoint, username, password)",
                )),
                Some(d) => {
                    check_url(&mut e, "dnac.endpoint", &d.endpoint);
                    if d.username.is_empty() {
                        e.push(ConfigError::new("dnac.username", "must not be empty"));
                    }
                    if d.password.0.is_empty() {
                        e.push(ConfigError::new("dnac.password", "must not be empty"));
                    }
                    if !(1..=DNAC_MAX_PAGE_SIZE).contains(&d.page_size) {
                        e.push(ConfigError::new(
                            "dnac.page_size",
                            format!("must be 1..={DNAC_MAX_PAGE_SIZE}"),
                        ));
                    }
                    if !(d.collect_devices
                        || d.collect_device_health
                        || d.collect_network_health
                        || d.collect_client_health)
                    {
                        e.push(ConfigError::new(
                            "dnac",
                            "every collect_* is false: nothing to collect",
                        ));
                    }
                }
            },
            ApiType::Meraki => match &self.meraki {
                None => e.push(ConfigError::new(
                    "meraki",
                    "required with api_type: meraki (api_key)",
                )),
                Some(m) => {
                    if m.api_key.0.is_empty() {
                        e.push(ConfigError::new("meraki.api_key", "must not be empty"));
                    }
                    check_url(&mut e, "meraki.base_url", &m.base_url);
                    for (i, id) in m.org_ids.iter().enumerate() {
                        if !is_safe_id(id) {
                            e.push(ConfigError::new(
                                format!("meraki.org_ids[{i}]"),
                                format!("{id:?} is not an organization id"),
                            ));
                        }
                    }
                    if !(MERAKI_MIN_PER_PAGE..=MERAKI_MAX_PER_PAGE).contains(&m.per_page) {
                        e.push(ConfigError::new(
                            "meraki.per_page",
                            format!("must be {MERAKI_MIN_PER_PAGE}..={MERAKI_MAX_PER_PAGE}"),
                        ));
                    }
                    if !(m.requests_per_second.is_finite()
                        && m.requests_per_second > 0.0
                        && m.requests_per_second <= 1000.0)
                    {
                        e.push(ConfigError::new(
                            "meraki.requests_per_second",
                            "must be greater than 0 and at most 1000",
                        ));
                    }
                    if m.max_retries > 10 {
                        e.push(ConfigError::new("meraki.max_retries", "must be 0..=10"));
                    }
                }
            },
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> Result<Config, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn dnac_defaults() {
        let c = parse(serde_json::json!({
            "dnac": {"endpoint": "https://dnac.example", "username": "u", "password": "p"}
        }))
        .unwrap();
        assert_eq!(c.api_type, ApiType::Dnac);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.collect_timeout, DEFAULT_COLLECT_TIMEOUT);
        let d = c.dnac.as_ref().unwrap();
        assert_eq!(d.page_size, 500);
        assert!(d.collect_devices && d.collect_client_health);
        assert!(c.validate().is_empty(), "{:?}", c.validate());
    }

    #[test]
    fn meraki_defaults_and_org_id_alias() {
        let c = parse(serde_json::json!({
            "api_type": "meraki", "meraki": {"api_key": "k", "org_id": "549236"}
        }))
        .unwrap();
        let m = c.meraki.as_ref().unwrap();
        assert_eq!(m.base_url, MERAKI_DEFAULT_BASE_URL);
        assert_eq!(m.org_ids, vec!["549236".to_string()]);
        assert_eq!(m.per_page, 1000);
        assert_eq!(m.uplinks, UplinkSource::Appliance);
        assert_eq!(m.requests_per_second, 10.0);
        assert!(c.validate().is_empty());
        let c = parse(serde_json::json!({
            "api_type": "meraki", "meraki": {"api_key": "k", "org_ids": ["1", "2"], "uplinks": "all"}
        }))
        .unwrap();
        assert_eq!(c.meraki.unwrap().org_ids.len(), 2);
    }

    #[test]
    fn every_problem_with_its_path() {
        let c = parse(serde_json::json!({
            "timeout": 0,
            "dnac": {"endpoint": "ftp://x", "username": "", "password": "", "page_size": 501}
        }))
        .unwrap();
        let paths: Vec<String> = c.validate().iter().map(|e| e.path.to_string()).collect();
        for p in [
            "timeout",
            "dnac.endpoint",
            "dnac.username",
            "dnac.password",
            "dnac.page_size",
        ] {
            assert!(paths.contains(&p.to_string()), "{p} missing in {paths:?}");
        }
        let c = parse(serde_json::json!({"api_type": "meraki",
            "meraki": {"api_key": "", "org_ids": ["../x"], "per_page": 2, "requests_per_second": 0, "max_retries": 11}}))
        .unwrap();
        let paths: Vec<String> = c.validate().iter().map(|e| e.path.to_string()).collect();
        for p in [
            "meraki.api_key",
            "meraki.org_ids[0]",
            "meraki.per_page",
            "meraki.requests_per_second",
            "meraki.max_retries",
        ] {
            assert!(paths.contains(&p.to_string()), "{p} missing in {paths:?}");
        }
        let c = parse(serde_json::json!({"api_type": "meraki"})).unwrap();
        assert_eq!(c.validate()[0].path.as_str(), "meraki");
    }

    #[test]
    fn unknown_keys_and_api_types_are_refused() {
        assert!(parse(serde_json::json!({"api_type": "ise"})).is_err());
        assert!(parse(serde_json::json!({"dnac_url": "x"})).is_err());
    }

    #[test]
    fn secrets_are_not_printed() {
        let c = parse(serde_json::json!({
            "dnac": {"endpoint": "https://d", "username": "u", "password": "hunter2-secret"},
            "meraki": {"api_key": "0123456789abcdef-key"}
        }))
        .unwrap();
        let s = format!("{c:?}");
        assert!(
            !s.contains("hunter2-secret") && !s.contains("0123456789abcdef-key"),
            "{s}"
        );
    }
}
