//! The azure-arc integration's configuration (its block of the agent config, handed
//! to the plugin as JSON). See `plugins/azure-arc/config.example.yaml` and
//! `docs/integrations/azure-arc.md` for every key.
//!
//! ```yaml
//! integrations:
//!   azure-arc:
//!     enabled: true
//!     interval: 5m
//!     subscription_id: ${AZURE_SUBSCRIPTION_ID}
//!     tenant_id: ${AZURE_TENANT_ID}          # service principal (client credentials)
//!     client_id: ${AZURE_CLIENT_ID}
//!     client_secret: ${AZURE_CLIENT_SECRET}
//!     # use_managed_identity: true           # or the VM's managed identity (IMDS)
//! ```
//!
//! Unknown keys are rejected; [`Config::resolve`] adds the checks serde cannot
//! express and reports every problem at once, each with its path.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;
use tfo_plugin_common::azure_auth::{
    Credential, Endpoints, Secret, DEFAULT_AUTHORITY_HOST, DEFAULT_IMDS_ENDPOINT,
};

/// Azure Resource Manager in the public cloud.
pub const DEFAULT_RESOURCE_MANAGER_ENDPOINT: &str = "https://management.azure.com";
/// Token audience of Azure Resource Manager (public cloud).
pub const DEFAULT_AUDIENCE: &str = "https://management.azure.com/";
/// Microsoft.HybridCompute API version (latest GA when written:
/// <https://learn.microsoft.com/en-us/rest/api/hybridcompute/machines/list-by-subscription>).
pub const DEFAULT_MACHINES_API_VERSION: &str = "2024-07-10";
/// Microsoft.Kubernetes API version (GA:
/// <https://learn.microsoft.com/en-us/rest/api/hybridkubernetes/connected-cluster/list-by-subscription>).
pub const DEFAULT_CLUSTERS_API_VERSION: &str = "2024-01-01";

/// Configuration of one azure-arc instance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The subscription whose Arc resources are listed.
    pub subscription_id: String,
    /// Only these resource groups (empty = the whole subscription).
    #[serde(default)]
    pub resource_groups: Vec<String>,
    /// Directory (tenant) id, for client credentials.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Application (client) id; with `use_managed_identity`, the client id of a
    /// user-assigned identity (absent = the system-assigned identity).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Client secret of the service principal.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// Use the managed identity of the Azure resource the agent runs on.
    #[serde(default)]
    pub use_managed_identity: bool,
    /// Microsoft Entra authority host (sovereign clouds, tests).
    #[serde(default = "default_authority_host")]
    pub authority_host: String,
    /// Instance Metadata Service base URL (tests).
    #[serde(default = "default_imds_endpoint")]
    pub imds_endpoint: String,
    /// Azure Resource Manager base URL (sovereign clouds, tests).
    #[serde(default = "default_arm")]
    pub resource_manager_endpoint: String,
    /// Token audience for ARM (sovereign clouds have their own).
    #[serde(default = "default_audience")]
    pub audience: String,
    /// List Arc-enabled servers (`Microsoft.HybridCompute/machines`).
    #[serde(default = "yes")]
    pub machines: bool,
    /// List connected Kubernetes clusters (`Microsoft.Kubernetes/connectedClusters`).
    #[serde(default = "yes")]
    pub connected_clusters: bool,
    /// List every machine's extensions (one request per machine).
    #[serde(default = "yes")]
    pub extensions: bool,
    /// How often extensions are listed (`0s` = every collection): one request
    /// per machine adds up against ARM's read limits.
    #[serde(
        default = "default_extensions_interval",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub extensions_interval: Duration,
    /// Extension listings in flight at once.
    #[serde(default = "default_concurrency")]
    pub extensions_concurrency: usize,
    /// `api-version` of the Microsoft.HybridCompute requests.
    #[serde(default = "default_machines_api")]
    pub machines_api_version: String,
    /// `api-version` of the Microsoft.Kubernetes requests.
    #[serde(default = "default_clusters_api")]
    pub connected_clusters_api_version: String,
    /// Most pages followed per listing (a guard against a `nextLink` loop).
    #[serde(default = "default_max_pages")]
    pub max_pages: u32,
    /// Bound on one whole collection (keep it below the agent's
    /// `pipeline.call_timeout`).
    #[serde(
        default = "default_collect_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub collect_timeout: Duration,
    /// Longest `Retry-After` waited for inside a collection; a longer one skips
    /// ARM until it has passed.
    #[serde(
        default = "default_max_retry_wait",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub max_retry_wait: Duration,
    /// Timeout of one HTTP exchange.
    #[serde(
        default = "default_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub timeout: Duration,
    /// Extra trusted CA certificates (PEM), e.g. a TLS-inspecting proxy's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (tests only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// A validated configuration, ready to use.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Subscription id.
    pub subscription_id: String,
    /// Resource groups (empty = subscription-wide listings).
    pub resource_groups: Vec<String>,
    /// How tokens are obtained.
    pub credential: Credential,
    /// Token endpoints.
    pub endpoints: Endpoints,
    /// ARM base URL without a trailing `/`.
    pub arm: String,
    /// Token audience.
    pub audience: String,
    /// Listings switched on.
    pub machines: bool,
    /// Listings switched on.
    pub connected_clusters: bool,
    /// Listings switched on (only with `machines`).
    pub extensions: bool,
    /// See [`Config::extensions_interval`].
    pub extensions_interval: Duration,
    /// See [`Config::extensions_concurrency`].
    pub extensions_concurrency: usize,
    /// API versions.
    pub machines_api_version: String,
    /// API versions.
    pub connected_clusters_api_version: String,
    /// See [`Config::max_pages`].
    pub max_pages: u32,
    /// See [`Config::collect_timeout`].
    pub collect_timeout: Duration,
    /// See [`Config::max_retry_wait`].
    pub max_retry_wait: Duration,
    /// HTTP client options.
    pub timeout: Duration,
    /// HTTP client options.
    pub ca_file: Option<PathBuf>,
    /// HTTP client options.
    pub insecure_skip_verify: bool,
}

fn yes() -> bool {
    true
}
fn default_authority_host() -> String {
    DEFAULT_AUTHORITY_HOST.to_string()
}
fn default_imds_endpoint() -> String {
    DEFAULT_IMDS_ENDPOINT.to_string()
}
fn default_arm() -> String {
    DEFAULT_RESOURCE_MANAGER_ENDPOINT.to_string()
}
fn default_audience() -> String {
    DEFAULT_AUDIENCE.to_string()
}
fn default_extensions_interval() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_concurrency() -> usize {
    4
}
fn default_machines_api() -> String {
    DEFAULT_MACHINES_API_VERSION.to_string()
}
fn default_clusters_api() -> String {
    DEFAULT_CLUSTERS_API_VERSION.to_string()
}
fn default_max_pages() -> u32 {
    1000
}
fn default_collect_timeout() -> Duration {
    Duration::from_secs(20)
}
fn default_max_retry_wait() -> Duration {
    Duration::from_secs(10)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// An `http(s)://host[:port][/path]` URL without query, fragment or whitespace.
pub fn check_url(errors: &mut Vec<ConfigError>, path: &str, url: &str) {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url
            .split("://")
            .nth(1)
            .is_some_and(|h| !h.split('/').next().unwrap_or("").is_empty())
        && !url.contains(['?', '#'])
        && !url.contains(char::is_whitespace);
    if !ok {
        errors.push(ConfigError::new(
            path,
            format!("{url:?} is not an http:// or https:// URL with a host (and no query)"),
        ));
    }
}

/// A value used as one URL path segment or query value: letters, digits and
/// `-_.()` only (what Azure allows in subscription ids and resource group names),
/// so it never needs escaping.
fn check_segment(errors: &mut Vec<ConfigError>, path: &str, v: &str) {
    if v.is_empty()
        || v.len() > 90
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.()".contains(c))
    {
        errors.push(ConfigError::new(
            path,
            format!("{v:?} must be 1-90 letters, digits, '-', '_', '.', '(' or ')'"),
        ));
    }
}

impl Config {
    /// Validates everything and builds the [`Settings`]; every problem is
    /// reported with its path.
    pub fn resolve(self) -> Result<Settings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        check_segment(&mut errors, "subscription_id", self.subscription_id.trim());
        for (i, rg) in self.resource_groups.iter().enumerate() {
            check_segment(&mut errors, &format!("resource_groups[{i}]"), rg.trim());
        }
        let credential = if self.use_managed_identity {
            if self.client_secret.is_some() {
                errors.push(ConfigError::new(
                    "client_secret",
                    "not used with use_managed_identity (client_id selects a user-assigned identity)",
                ));
            }
            Credential::ManagedIdentity {
                client_id: self.client_id.clone().filter(|s| !s.trim().is_empty()),
            }
        } else {
            for (path, v) in [
                ("tenant_id", self.tenant_id.as_deref()),
                ("client_id", self.client_id.as_deref()),
                (
                    "client_secret",
                    self.client_secret.as_ref().map(Secret::expose),
                ),
            ] {
                if v.is_none_or(|s| s.trim().is_empty()) {
                    errors.push(ConfigError::new(
                        path,
                        "required for client credentials (or set use_managed_identity: true)",
                    ));
                }
            }
            Credential::ClientSecret {
                tenant_id: self
                    .tenant_id
                    .clone()
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
                client_id: self
                    .client_id
                    .clone()
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
                client_secret: self.client_secret.clone().unwrap_or(Secret::new("")),
            }
        };
        check_url(&mut errors, "authority_host", &self.authority_host);
        check_url(&mut errors, "imds_endpoint", &self.imds_endpoint);
        check_url(
            &mut errors,
            "resource_manager_endpoint",
            &self.resource_manager_endpoint,
        );
        if !(self.audience.starts_with("https://") || self.audience.starts_with("http://"))
            || self.audience.contains(char::is_whitespace)
        {
            errors.push(ConfigError::new(
                "audience",
                format!(
                    "{:?} is not a URL (e.g. https://management.azure.com/)",
                    self.audience
                ),
            ));
        }
        if !self.machines && !self.connected_clusters {
            errors.push(ConfigError::new(
                "",
                "nothing to collect: enable machines or connected_clusters",
            ));
        }
        if !(1..=32).contains(&self.extensions_concurrency) {
            errors.push(ConfigError::new(
                "extensions_concurrency",
                "must be between 1 and 32",
            ));
        }
        for (path, v) in [
            ("machines_api_version", &self.machines_api_version),
            (
                "connected_clusters_api_version",
                &self.connected_clusters_api_version,
            ),
        ] {
            let ok = v.len() >= 10
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && v.as_bytes()[..4].iter().all(u8::is_ascii_digit);
            if !ok {
                errors.push(ConfigError::new(
                    path,
                    format!("{v:?} is not an API version like 2024-07-10"),
                ));
            }
        }
        if self.max_pages == 0 {
            errors.push(ConfigError::new("max_pages", "must be at least 1"));
        }
        if self.timeout.is_zero() {
            errors.push(ConfigError::new("timeout", "must be greater than 0"));
        }
        if self.collect_timeout < self.timeout {
            errors.push(ConfigError::new(
                "collect_timeout",
                "must be at least timeout (one request)",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Settings {
            subscription_id: self.subscription_id.trim().to_string(),
            resource_groups: self
                .resource_groups
                .iter()
                .map(|s| s.trim().to_string())
                .collect(),
            credential,
            endpoints: Endpoints {
                authority_host: self.authority_host,
                imds_endpoint: self.imds_endpoint,
            },
            arm: self
                .resource_manager_endpoint
                .trim_end_matches('/')
                .to_string(),
            audience: self.audience,
            machines: self.machines,
            connected_clusters: self.connected_clusters,
            extensions: self.extensions && self.machines,
            extensions_interval: self.extensions_interval,
            extensions_concurrency: self.extensions_concurrency,
            machines_api_version: self.machines_api_version,
            connected_clusters_api_version: self.connected_clusters_api_version,
            max_pages: self.max_pages,
            collect_timeout: self.collect_timeout,
            max_retry_wait: self.max_retry_wait,
            timeout: self.timeout,
            ca_file: self.ca_file,
            insecure_skip_verify: self.insecure_skip_verify,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Settings, Vec<ConfigError>> {
        serde_json::from_str::<Config>(json).unwrap().resolve()
    }

    fn paths(e: Vec<ConfigError>) -> Vec<String> {
        e.into_iter().map(|e| e.path.to_string()).collect()
    }

    #[test]
    fn defaults() {
        let s = parse(
            r#"{"subscription_id":"sub-1","tenant_id":"t","client_id":"c","client_secret":"s"}"#,
        )
        .unwrap();
        assert_eq!(s.arm, "https://management.azure.com");
        assert_eq!(s.audience, "https://management.azure.com/");
        assert_eq!(s.machines_api_version, "2024-07-10");
        assert_eq!(s.connected_clusters_api_version, "2024-01-01");
        assert!(s.machines && s.connected_clusters && s.extensions);
        assert_eq!(s.extensions_interval, Duration::from_secs(1800));
        assert_eq!(s.collect_timeout, Duration::from_secs(20));
        assert!(matches!(s.credential, Credential::ClientSecret { .. }));
    }

    #[test]
    fn managed_identity_needs_no_secret() {
        let s =
            parse(r#"{"subscription_id":"sub-1","use_managed_identity":true,"client_id":"uami"}"#)
                .unwrap();
        assert_eq!(
            s.credential,
            Credential::ManagedIdentity {
                client_id: Some("uami".into())
            }
        );
    }

    #[test]
    fn every_problem_with_its_path() {
        let e = parse(
            r#"{"subscription_id":"sub/../x","resource_groups":["ok","bad rg"],
                "client_id":"c","resource_manager_endpoint":"management.azure.com",
                "machines":false,"connected_clusters":false,"extensions_concurrency":0,
                "machines_api_version":"latest","max_pages":0,"timeout":"30s"}"#,
        )
        .unwrap_err();
        assert_eq!(
            paths(e),
            [
                "subscription_id",
                "resource_groups[1]",
                "tenant_id",
                "client_secret",
                "resource_manager_endpoint",
                "",
                "extensions_concurrency",
                "machines_api_version",
                "max_pages",
                "collect_timeout",
            ]
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(
            serde_json::from_str::<Config>(r#"{"subscription_id":"s","subscriptions":[]}"#)
                .is_err()
        );
    }

    #[test]
    fn secret_is_not_in_debug() {
        let c: Config = serde_json::from_str(
            r#"{"subscription_id":"s","tenant_id":"t","client_id":"c","client_secret":"hunter22"}"#,
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter22"));
        assert!(!format!("{:?}", c.resolve().unwrap()).contains("hunter22"));
    }
}
