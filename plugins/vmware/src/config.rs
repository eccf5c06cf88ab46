//! The plugin's configuration: the integration's block of the agent config, handed
//! over as JSON.
//!
//! ```yaml
//! integrations:
//!   vmware:
//!     enabled: true
//!     interval: 60s
//!     url: https://vcenter.example.com/sdk   # `/sdk` is added when the path is empty
//!     username: monitor@vsphere.local
//!     password: ${VSPHERE_PASSWORD}
//!     ca_file: /etc/tfo-agent/vcenter-ca.pem  # extra trusted CA (PEM)
//!     insecure_skip_verify: false
//!     timeout: 30s
//!     datacenters: []                         # names; empty = every datacenter
//!     collect_vms: true
//!     collect_hosts: true
//!     collect_clusters: true
//!     collect_datastores: true
//!     performance:
//!       enabled: true
//!       vm_counters: [cpu.usage.average, cpu.usagemhz.average, ...]
//!       host_counters: [cpu.usage.average, ...]
//!       max_entities_per_query: 64
//!     labels: { site: paris }
//! ```
//!
//! The upstream Go agent's keys are accepted as aliases (`vcenter_url`,
//! `tls_skip_verify`). Unknown keys are rejected (`deny_unknown_fields`), and
//! [`Config::resolve`] reports every problem at once with its field path. The
//! password never appears in `Debug` output or messages.

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;

/// Default bound of one SOAP exchange.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default bound of one whole collection, below the host's 30 s call timeout.
pub const DEFAULT_COLLECT_TIMEOUT: Duration = Duration::from_secs(25);

/// Default objects per property collector page (`RetrievePropertiesEx`
/// `maxObjects`); vCenter's own default is 100, larger pages mean fewer round trips.
pub const DEFAULT_MAX_OBJECTS: u32 = 500;

/// Default entities per `QueryPerf` call. VMware advises keeping queries small
/// (vCenter's `config.vpxd.stats.maxQueryMetrics` limits metrics per query to 64 by
/// default for historical intervals; real-time queries are cheaper).
pub const DEFAULT_MAX_ENTITIES_PER_QUERY: u32 = 64;

/// Counters queried for each powered-on VM by default (real-time, 20 s).
pub const DEFAULT_VM_COUNTERS: &[&str] = &[
    "cpu.usage.average",
    "cpu.usagemhz.average",
    "cpu.ready.summation",
    "mem.usage.average",
    "mem.consumed.average",
    "mem.active.average",
    "disk.usage.average",
    "disk.read.average",
    "disk.write.average",
    "net.usage.average",
    "net.received.average",
    "net.transmitted.average",
];

/// Counters queried for each connected host by default (real-time, 20 s).
pub const DEFAULT_HOST_COUNTERS: &[&str] = &[
    "cpu.usage.average",
    "cpu.usagemhz.average",
    "mem.usage.average",
    "mem.consumed.average",
    "mem.active.average",
    "disk.usage.average",
    "net.usage.average",
    "net.received.average",
    "net.transmitted.average",
];

/// Attribute names the plugin sets itself; `labels` may not reuse them.
pub const RESERVED_LABELS: &[&str] = &[
    "vcenter",
    "datacenter",
    "cluster",
    "host",
    "vm",
    "datastore",
    "power_state",
    "connection_state",
    "type",
];

/// A string that is never printed (the password).
#[derive(Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// The secret value, for the Login body only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

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
fn default_max_objects() -> u32 {
    DEFAULT_MAX_OBJECTS
}
fn default_max_entities() -> u32 {
    DEFAULT_MAX_ENTITIES_PER_QUERY
}
fn default_vm_counters() -> Vec<String> {
    DEFAULT_VM_COUNTERS.iter().map(|s| s.to_string()).collect()
}
fn default_host_counters() -> Vec<String> {
    DEFAULT_HOST_COUNTERS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Configuration of one vSphere instance, as written by the user.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// vCenter or ESXi SDK URL, `https://host/sdk` (`/sdk` added to a bare host).
    #[serde(alias = "vcenter_url")]
    pub url: String,
    /// Login user.
    pub username: String,
    /// Login password.
    pub password: Secret,
    /// Extra PEM CA certificates trusted for the server (a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (test systems only).
    #[serde(default, alias = "tls_skip_verify")]
    pub insecure_skip_verify: bool,
    /// Bound of one SOAP exchange. Default 10s.
    #[serde(
        default = "default_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub timeout: Duration,
    /// Bound of one whole collection (login, inventory, performance). Default 25s,
    /// below the agent's 30 s `pipeline.call_timeout`.
    #[serde(
        default = "default_collect_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub collect_timeout: Duration,
    /// The `vcenter` attribute; default the URL's host.
    #[serde(default)]
    pub vcenter: Option<String>,
    /// Only these datacenters (by name); empty = all.
    #[serde(default)]
    pub datacenters: Vec<String>,
    /// VM metrics. Default true.
    #[serde(default = "yes")]
    pub collect_vms: bool,
    /// Host metrics. Default true.
    #[serde(default = "yes")]
    pub collect_hosts: bool,
    /// Cluster metrics. Default true.
    #[serde(default = "yes")]
    pub collect_clusters: bool,
    /// Datastore metrics. Default true.
    #[serde(default = "yes")]
    pub collect_datastores: bool,
    /// Property collector page size. Default 500.
    #[serde(default = "default_max_objects")]
    pub max_objects: u32,
    /// Performance counters.
    #[serde(default)]
    pub performance: PerformanceConfig,
    /// Extra attributes on every point.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Which performance counters to query.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerformanceConfig {
    /// Query PerformanceManager at all. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `group.name.rollup` counters for powered-on VMs.
    #[serde(default = "default_vm_counters")]
    pub vm_counters: Vec<String>,
    /// `group.name.rollup` counters for connected hosts.
    #[serde(default = "default_host_counters")]
    pub host_counters: Vec<String>,
    /// Entities per `QueryPerf` call. Default 64.
    #[serde(default = "default_max_entities")]
    pub max_entities_per_query: u32,
}

impl Default for PerformanceConfig {
    fn default() -> Self {
        PerformanceConfig {
            enabled: true,
            vm_counters: default_vm_counters(),
            host_counters: default_host_counters(),
            max_entities_per_query: default_max_entities(),
        }
    }
}

/// The validated settings the collector runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Full SDK URL.
    pub url: String,
    /// `vcenter` attribute value.
    pub vcenter: String,
    /// Login user.
    pub username: String,
    /// Login password.
    pub password: Secret,
    /// Extra CA file.
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification.
    pub insecure_skip_verify: bool,
    /// Exchange timeout.
    pub timeout: Duration,
    /// Whole-collection bound.
    pub collect_timeout: Duration,
    /// Datacenter filter (names).
    pub datacenters: Vec<String>,
    /// VM metrics.
    pub collect_vms: bool,
    /// Host metrics.
    pub collect_hosts: bool,
    /// Cluster metrics.
    pub collect_clusters: bool,
    /// Datastore metrics.
    pub collect_datastores: bool,
    /// Property collector page size.
    pub max_objects: u32,
    /// Query performance counters.
    pub performance: bool,
    /// VM counters (`group.name.rollup`).
    pub vm_counters: Vec<String>,
    /// Host counters.
    pub host_counters: Vec<String>,
    /// Entities per QueryPerf.
    pub max_entities_per_query: u32,
    /// Extra attributes.
    pub labels: BTreeMap<String, String>,
}

/// Checks `group.name.rollup` (ASCII letters, digits and `_` in each part).
fn valid_counter(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() >= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// Splits an `http(s)://host[:port][/path]` URL; returns (scheme, authority, path).
fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    Some((scheme, authority, path))
}

impl Config {
    /// Validates everything serde cannot, reporting every problem with its path.
    pub fn resolve(self) -> Result<Settings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut url = self.url.trim().to_string();
        let mut host = String::new();
        match split_url(&url) {
            Some((scheme, authority, path)) => {
                if scheme != "http" && scheme != "https" {
                    errors.push(ConfigError::new("url", "the scheme must be https or http"));
                }
                if authority.contains('@') {
                    errors.push(ConfigError::new(
                        "url",
                        "put the credentials in username and password, not in the URL",
                    ));
                }
                if authority.is_empty() {
                    errors.push(ConfigError::new("url", "no host in the URL"));
                }
                host = authority
                    .rsplit_once(':')
                    .filter(|(h, p)| !h.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
                    .map(|(h, _)| h)
                    .unwrap_or(authority)
                    .trim_matches(|c| c == '[' || c == ']')
                    .to_string();
                if path.is_empty() || path == "/" {
                    url = format!("{scheme}://{authority}/sdk");
                }
            }
            None => errors.push(ConfigError::new(
                "url",
                "expected an absolute URL such as https://vcenter.example.com/sdk",
            )),
        }
        if self.username.trim().is_empty() {
            errors.push(ConfigError::new("username", "must not be empty"));
        }
        if self.password.0.is_empty() {
            errors.push(ConfigError::new("password", "must not be empty"));
        }
        if self.timeout.is_zero() {
            errors.push(ConfigError::new("timeout", "must be greater than 0"));
        }
        if self.collect_timeout.is_zero() {
            errors.push(ConfigError::new(
                "collect_timeout",
                "must be greater than 0",
            ));
        }
        if let Some(ca) = &self.ca_file {
            if self.insecure_skip_verify {
                errors.push(ConfigError::new(
                    "ca_file",
                    "ca_file and insecure_skip_verify contradict each other: choose one",
                ));
            } else if !ca.is_file() {
                errors.push(ConfigError::new(
                    "ca_file",
                    format!("{} is not a readable file", ca.display()),
                ));
            }
        }
        if !(1..=10_000).contains(&self.max_objects) {
            errors.push(ConfigError::new(
                "max_objects",
                "must be between 1 and 10000",
            ));
        }
        let p = &self.performance;
        if !(1..=1000).contains(&p.max_entities_per_query) {
            errors.push(ConfigError::new(
                "performance.max_entities_per_query",
                "must be between 1 and 1000",
            ));
        }
        for (field, list) in [
            ("vm_counters", &p.vm_counters),
            ("host_counters", &p.host_counters),
        ] {
            for (i, c) in list.iter().enumerate() {
                if !valid_counter(c) {
                    errors.push(ConfigError::new(
                        format!("performance.{field}[{i}]"),
                        format!("{c:?} is not a counter name group.name.rollup (e.g. cpu.usage.average)"),
                    ));
                }
            }
        }
        for (i, d) in self.datacenters.iter().enumerate() {
            if d.trim().is_empty() {
                errors.push(ConfigError::new(
                    format!("datacenters[{i}]"),
                    "must not be empty",
                ));
            }
        }
        for k in self.labels.keys() {
            if k.is_empty() {
                errors.push(ConfigError::new("labels", "a label name must not be empty"));
            } else if RESERVED_LABELS.contains(&k.as_str()) {
                errors.push(ConfigError::new(
                    format!("labels.{k}"),
                    "this attribute is set by the plugin itself",
                ));
            }
        }
        if !(self.collect_vms
            || self.collect_hosts
            || self.collect_clusters
            || self.collect_datastores)
        {
            errors.push(ConfigError::new(
                "collect_vms",
                "every collect_* switch is off: nothing would be collected",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Settings {
            url,
            vcenter: self
                .vcenter
                .filter(|v| !v.trim().is_empty())
                .unwrap_or(host),
            username: self.username,
            password: self.password,
            ca_file: self.ca_file,
            insecure_skip_verify: self.insecure_skip_verify,
            timeout: self.timeout,
            collect_timeout: self.collect_timeout,
            datacenters: self.datacenters,
            collect_vms: self.collect_vms,
            collect_hosts: self.collect_hosts,
            collect_clusters: self.collect_clusters,
            collect_datastores: self.collect_datastores,
            max_objects: self.max_objects,
            performance: p.enabled,
            vm_counters: p.vm_counters.clone(),
            host_counters: p.host_counters.clone(),
            max_entities_per_query: p.max_entities_per_query,
            labels: self.labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    fn paths(errs: &[ConfigError]) -> Vec<String> {
        errs.iter().map(|e| e.path.to_string()).collect()
    }

    #[test]
    fn minimal_config_gets_defaults_and_sdk_path() {
        let s = parse(r#"{"url":"https://vc.example.com","username":"u","password":"p"}"#)
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(s.url, "https://vc.example.com/sdk");
        assert_eq!(s.vcenter, "vc.example.com");
        assert_eq!(s.timeout, DEFAULT_TIMEOUT);
        assert!(s.collect_vms && s.collect_hosts && s.collect_clusters && s.collect_datastores);
        assert!(s.performance);
        assert_eq!(s.vm_counters.len(), DEFAULT_VM_COUNTERS.len());
        assert_eq!(s.max_entities_per_query, 64);
    }

    #[test]
    fn upstream_aliases_are_accepted() {
        let s = parse(
            r#"{"vcenter_url":"https://10.0.0.5:8443/sdk","username":"u","password":"p","tls_skip_verify":true}"#,
        )
        .unwrap()
        .resolve()
        .unwrap();
        assert!(s.insecure_skip_verify);
        assert_eq!(s.vcenter, "10.0.0.5");
        assert_eq!(s.url, "https://10.0.0.5:8443/sdk");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let errs = parse(
            r#"{"url":"ftp://x","username":"","password":"","timeout":"0s","max_objects":0,
                "performance":{"vm_counters":["cpu.usage"],"max_entities_per_query":0},
                "labels":{"vm":"x"},"datacenters":[""]}"#,
        )
        .unwrap()
        .resolve()
        .unwrap_err();
        let p = paths(&errs);
        for want in [
            "url",
            "username",
            "password",
            "timeout",
            "max_objects",
            "performance.max_entities_per_query",
            "performance.vm_counters[0]",
            "labels.vm",
            "datacenters[0]",
        ] {
            assert!(p.contains(&want.to_string()), "{want} missing from {p:?}");
        }
    }

    #[test]
    fn unknown_keys_and_credentials_in_url_are_refused() {
        assert!(
            parse(r#"{"url":"https://x","username":"u","password":"p","pasword":"x"}"#)
                .unwrap_err()
                .contains("unknown field")
        );
        let errs = parse(r#"{"url":"https://u:pw@x/sdk","username":"u","password":"p"}"#)
            .unwrap()
            .resolve()
            .unwrap_err();
        assert_eq!(paths(&errs), vec!["url"]);
    }

    #[test]
    fn the_password_is_never_in_debug_output() {
        let c = parse(r#"{"url":"https://x","username":"u","password":"hunter2-secret"}"#).unwrap();
        assert!(!format!("{c:?}").contains("hunter2-secret"));
        let s = c.resolve().unwrap();
        assert!(!format!("{s:?}").contains("hunter2-secret"));
    }
}
