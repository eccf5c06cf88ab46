//! The gcp integration's configuration: the integration's block of the agent config,
//! handed to the plugin as JSON.
//!
//! ```yaml
//! integrations:
//!   gcp:
//!     enabled: true
//!     project_id: my-project            # default: the key file's project_id
//!     region: us-central1               # `location` label of the monitored resource
//!     credentials_file: /etc/tfo/sa.json   # one of the four auth methods (see below)
//!     monitoring: { enabled: true, metric_prefix: custom.googleapis.com/telemetryflow }
//!     logging:    { enabled: true, log_name: telemetryflow-agent }
//!     trace:      { enabled: true }
//!     resource_type: generic_node
//!     resource_labels: { namespace: prod }
//!     labels: { team: infra }
//! ```
//!
//! Keys are the ones of the TelemetryFlow Go agent's YAML (`project_id`,
//! `credentials_file`, `region`, `monitoring.metric_prefix`, `logging.log_name`,
//! `trace`, `resource_type`, `resource_labels`, `batch_size`, `timeout`, `labels`) plus
//! what real authentication and tests need: `credentials_json`, `access_token`,
//! `use_metadata_server`, `scopes`, `token_url`, `metadata_url`, the three API
//! `endpoint`s, `ca_file` and `insecure_skip_verify`.
//!
//! Authentication: at most one of `credentials_file`, `credentials_json`,
//! `access_token` and `use_metadata_server: true`; with none, the GCE/GKE metadata
//! server is used (what Google's client libraries do on Google Cloud when no key is
//! given). Unknown keys are rejected, and every problem carries its field path.

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;

use crate::auth::{Credentials, ServiceAccount};

/// Default `monitoring.metric_prefix`: the Go agent's, a user-defined metric domain.
pub const DEFAULT_METRIC_PREFIX: &str = "custom.googleapis.com/telemetryflow";
/// Default `logging.log_name` (the Go agent's YAML example).
pub const DEFAULT_LOG_NAME: &str = "telemetryflow-agent";
/// Cloud Monitoring API v3 base URL.
pub const DEFAULT_MONITORING_ENDPOINT: &str = "https://monitoring.googleapis.com/v3";
/// Cloud Logging API v2 base URL.
pub const DEFAULT_LOGGING_ENDPOINT: &str = "https://logging.googleapis.com/v2";
/// Cloud Trace API v2 base URL.
pub const DEFAULT_TRACE_ENDPOINT: &str = "https://cloudtrace.googleapis.com/v2";
/// The GCE metadata server (plain HTTP by design: it is link-local to the VM).
pub const DEFAULT_METADATA_URL: &str = "http://metadata.google.internal";
/// Google's OAuth 2.0 token endpoint, used when a key file has no `token_uri`.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Default monitored resource type: a host running the agent.
pub const DEFAULT_RESOURCE_TYPE: &str = "generic_node";
/// Cloud Monitoring's limit of time series in one `timeSeries.create` request.
pub const MAX_SERIES_PER_REQUEST: usize = 200;
/// Default request timeout (the Go agent's).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The narrowest OAuth scopes that allow writing to the three APIs.
pub const DEFAULT_SCOPES: [&str; 3] = [
    "https://www.googleapis.com/auth/monitoring.write",
    "https://www.googleapis.com/auth/logging.write",
    "https://www.googleapis.com/auth/trace.append",
];

/// A secret config value: deserialized like a string, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Configuration of one gcp instance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Project the data is written to; defaults to the key file's `project_id`.
    #[serde(default)]
    pub project_id: Option<String>,
    /// `location` label of `generic_node` / `generic_task` resources.
    #[serde(default = "default_region")]
    pub region: String,
    /// Path of a service-account key file (JSON, as downloaded from IAM).
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// The same key file's content, inline (e.g. `${GCP_SA_KEY}`).
    #[serde(default)]
    pub credentials_json: Option<Secret>,
    /// A ready OAuth 2.0 access token; never refreshed (a 401 is permanent).
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// Use the GCE/GKE metadata server's default service account.
    #[serde(default)]
    pub use_metadata_server: Option<bool>,
    /// OAuth scopes requested with a key file.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Overrides the key file's `token_uri` (tests, private endpoints).
    #[serde(default)]
    pub token_url: Option<String>,
    /// Base URL of the metadata server.
    #[serde(default = "default_metadata_url")]
    pub metadata_url: String,
    /// Cloud Monitoring.
    #[serde(default)]
    pub monitoring: MonitoringConfig,
    /// Cloud Logging.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// Cloud Trace.
    #[serde(default)]
    pub trace: TraceConfig,
    /// Monitored resource type of metrics and log entries.
    #[serde(default = "default_resource_type")]
    pub resource_type: String,
    /// Monitored resource labels (added to, and overriding, the derived ones).
    #[serde(default)]
    pub resource_labels: BTreeMap<String, String>,
    /// Labels added to every time series and log entry.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Time series per `timeSeries.create` request (at most 200).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Whole-request timeout (API calls and token requests).
    #[serde(
        default = "default_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub timeout: Duration,
    /// Extra PEM CA certificates trusted for https endpoints.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (test systems only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// The `monitoring` block.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringConfig {
    /// Send metrics.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Metric type prefix: `custom.googleapis.com[/...]` or `workload.googleapis.com[/...]`.
    #[serde(default = "default_metric_prefix")]
    pub metric_prefix: String,
    /// API base URL.
    #[serde(default = "default_monitoring_endpoint")]
    pub endpoint: String,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        MonitoringConfig {
            enabled: true,
            metric_prefix: default_metric_prefix(),
            endpoint: default_monitoring_endpoint(),
        }
    }
}

/// The `logging` block.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// Send logs.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Log id: entries go to `projects/{project}/logs/{log_name}`.
    #[serde(default = "default_log_name")]
    pub log_name: String,
    /// API base URL.
    #[serde(default = "default_logging_endpoint")]
    pub endpoint: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            enabled: true,
            log_name: default_log_name(),
            endpoint: default_logging_endpoint(),
        }
    }
}

/// The `trace` block.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceConfig {
    /// Send spans.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// API base URL.
    #[serde(default = "default_trace_endpoint")]
    pub endpoint: String,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            enabled: true,
            endpoint: default_trace_endpoint(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_region() -> String {
    "global".to_string()
}
fn default_scopes() -> Vec<String> {
    DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect()
}
fn default_metadata_url() -> String {
    DEFAULT_METADATA_URL.to_string()
}
fn default_resource_type() -> String {
    DEFAULT_RESOURCE_TYPE.to_string()
}
fn default_batch_size() -> usize {
    MAX_SERIES_PER_REQUEST
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_metric_prefix() -> String {
    DEFAULT_METRIC_PREFIX.to_string()
}
fn default_log_name() -> String {
    DEFAULT_LOG_NAME.to_string()
}
fn default_monitoring_endpoint() -> String {
    DEFAULT_MONITORING_ENDPOINT.to_string()
}
fn default_logging_endpoint() -> String {
    DEFAULT_LOGGING_ENDPOINT.to_string()
}
fn default_trace_endpoint() -> String {
    DEFAULT_TRACE_ENDPOINT.to_string()
}

/// Labels each known resource type needs that the plugin cannot derive itself
/// (<https://cloud.google.com/monitoring/api/resources>).
fn required_resource_labels(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "gce_instance" => &["instance_id", "zone"],
        "k8s_container" => &[
            "location",
            "cluster_name",
            "namespace_name",
            "pod_name",
            "container_name",
        ],
        "k8s_node" => &["location", "cluster_name", "node_name"],
        _ => &[],
    }
}

/// The checked config, ready to build an instance from.
#[derive(Debug)]
pub struct Settings {
    /// The original config (endpoints, labels, ...).
    pub config: Config,
    /// The project everything is written to.
    pub project_id: String,
    /// How access tokens are obtained.
    pub credentials: Credentials,
}

impl Config {
    /// Checks everything and reads the credentials; every problem comes back with its
    /// field path.
    pub fn into_settings(mut self) -> Result<Settings, Vec<ConfigError>> {
        self.unset_empty();
        let mut errors = Vec::new();
        let credentials = match self.credentials() {
            Ok(c) => Some(c),
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let key_project = match &credentials {
            Some(Credentials::ServiceAccount(sa)) => sa.project_id.clone(),
            _ => None,
        };
        let project_id = match self.project_id.clone().or(key_project) {
            Some(p) => {
                if let Err(e) = check_project(&p) {
                    errors.push(ConfigError::new("project_id", e));
                }
                p
            }
            None => {
                errors.push(ConfigError::new(
                    "project_id",
                    "is required (or use a key file that has a project_id)",
                ));
                String::new()
            }
        };
        self.validate_into(&mut errors);
        match credentials {
            Some(credentials) if errors.is_empty() => Ok(Settings {
                config: self,
                project_id,
                credentials,
            }),
            _ => Err(errors),
        }
    }

    /// An empty value means "not set", so `${VAR:-}` substitutions can leave a key
    /// out (`project_id: ${GCP_PROJECT_ID:-}` falls back to the key file's).
    fn unset_empty(&mut self) {
        fn blank(s: &str) -> bool {
            s.trim().is_empty()
        }
        if self.project_id.as_deref().is_some_and(blank) {
            self.project_id = None;
        }
        if self
            .credentials_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            self.credentials_file = None;
        }
        if self.credentials_json.as_ref().is_some_and(|s| blank(&s.0)) {
            self.credentials_json = None;
        }
        if self.access_token.as_ref().is_some_and(|s| blank(&s.0)) {
            self.access_token = None;
        }
        if self.token_url.as_deref().is_some_and(blank) {
            self.token_url = None;
        }
    }

    fn validate_into(&self, errors: &mut Vec<ConfigError>) {
        if !self.monitoring.enabled && !self.logging.enabled && !self.trace.enabled {
            errors.push(ConfigError::new(
                "monitoring.enabled",
                "monitoring, logging and trace are all disabled: nothing would be sent",
            ));
        }
        if let Err(e) = check_metric_prefix(&self.monitoring.metric_prefix) {
            errors.push(ConfigError::new("monitoring.metric_prefix", e));
        }
        let log = self.logging.log_name.trim();
        if log.is_empty() || log.len() > 512 {
            errors.push(ConfigError::new(
                "logging.log_name",
                "must be 1 to 512 characters",
            ));
        }
        for (path, url) in [
            ("monitoring.endpoint", &self.monitoring.endpoint),
            ("logging.endpoint", &self.logging.endpoint),
            ("trace.endpoint", &self.trace.endpoint),
            ("metadata_url", &self.metadata_url),
        ] {
            if let Err(e) = check_url(url) {
                errors.push(ConfigError::new(path, e));
            }
        }
        if let Some(u) = &self.token_url {
            if let Err(e) = check_url(u) {
                errors.push(ConfigError::new("token_url", e));
            }
        }
        if self.scopes.is_empty() || self.scopes.iter().any(|s| s.trim().is_empty()) {
            errors.push(ConfigError::new(
                "scopes",
                "must list at least one non-empty OAuth scope",
            ));
        }
        if self.resource_type.trim().is_empty() {
            errors.push(ConfigError::new("resource_type", "must not be empty"));
        }
        for label in required_resource_labels(&self.resource_type) {
            if !self.resource_labels.contains_key(*label) {
                errors.push(ConfigError::new(
                    format!("resource_labels.{label}"),
                    format!("is required for resource_type {}", self.resource_type),
                ));
            }
        }
        if self.batch_size == 0 || self.batch_size > MAX_SERIES_PER_REQUEST {
            errors.push(ConfigError::new(
                "batch_size",
                format!("must be 1 to {MAX_SERIES_PER_REQUEST} (Cloud Monitoring's limit)"),
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
    }

    /// The configured authentication method (reads and checks the key file).
    fn credentials(&self) -> Result<Credentials, ConfigError> {
        let mut chosen = Vec::new();
        if self.credentials_file.is_some() {
            chosen.push("credentials_file");
        }
        if self.credentials_json.is_some() {
            chosen.push("credentials_json");
        }
        if self.access_token.is_some() {
            chosen.push("access_token");
        }
        if self.use_metadata_server == Some(true) {
            chosen.push("use_metadata_server");
        }
        if chosen.len() > 1 {
            return Err(ConfigError::new(
                chosen[1],
                format!(
                    "choose one authentication method, not {}",
                    chosen.join(" and ")
                ),
            ));
        }
        if let Some(path) = &self.credentials_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(
                    "credentials_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let sa = ServiceAccount::from_json(&text, self.token_url.as_deref())
                .map_err(|e| ConfigError::new("credentials_file", e))?;
            return Ok(Credentials::ServiceAccount(Box::new(sa)));
        }
        if let Some(json) = &self.credentials_json {
            let sa = ServiceAccount::from_json(&json.0, self.token_url.as_deref())
                .map_err(|e| ConfigError::new("credentials_json", e))?;
            return Ok(Credentials::ServiceAccount(Box::new(sa)));
        }
        if let Some(token) = &self.access_token {
            let t = token.0.trim();
            if t.is_empty() || http_header_unsafe(t) {
                return Err(ConfigError::new(
                    "access_token",
                    "must be a non-empty token of visible ASCII characters",
                ));
            }
            return Ok(Credentials::Static(Secret(t.to_string())));
        }
        Ok(Credentials::Metadata {
            token_url: format!(
                "{}/computeMetadata/v1/instance/service-accounts/default/token",
                self.metadata_url.trim_end_matches('/')
            ),
        })
    }
}

fn http_header_unsafe(s: &str) -> bool {
    s.bytes().any(|b| !(0x21..=0x7e).contains(&b))
}

/// A project id: 6 to 30 lowercase letters, digits and hyphens
/// (<https://cloud.google.com/resource-manager/docs/creating-managing-projects>); a
/// numeric project number is also accepted by the APIs.
fn check_project(p: &str) -> Result<(), String> {
    let ok = !p.is_empty()
        && p.len() <= 30
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{p:?} is not a project id (lowercase letters, digits and hyphens, at most 30)"
        ))
    }
}

/// The two user-writable metric domains
/// (<https://cloud.google.com/monitoring/custom-metrics#identifier>).
fn check_metric_prefix(p: &str) -> Result<(), String> {
    let p = p.trim_end_matches('/');
    for domain in ["custom.googleapis.com", "workload.googleapis.com"] {
        if let Some(rest) = p.strip_prefix(domain) {
            if rest.is_empty() || rest.starts_with('/') {
                return Ok(());
            }
        }
    }
    Err(format!(
        "{p:?} must start with custom.googleapis.com or workload.googleapis.com"
    ))
}

fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if url.contains('?') || url.contains('#') {
        return Err(format!("{url:?} must not have a query or fragment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Config {
        serde_json::from_str(json).unwrap()
    }

    fn paths(r: Result<Settings, Vec<ConfigError>>) -> Vec<String> {
        r.unwrap_err()
            .into_iter()
            .map(|e| e.path.to_string())
            .collect()
    }

    #[test]
    fn defaults() {
        let c = parse(r#"{"project_id": "my-proj", "access_token": "ya29.x"}"#);
        assert_eq!(c.monitoring.metric_prefix, DEFAULT_METRIC_PREFIX);
        assert_eq!(c.logging.log_name, DEFAULT_LOG_NAME);
        assert_eq!(c.resource_type, "generic_node");
        assert_eq!(c.batch_size, 200);
        assert_eq!(c.timeout, Duration::from_secs(30));
        let s = c.into_settings().unwrap();
        assert_eq!(s.project_id, "my-proj");
        assert!(matches!(s.credentials, Credentials::Static(_)));
    }

    #[test]
    fn metadata_server_is_the_default_auth() {
        let s = parse(r#"{"project_id": "p-123456", "metadata_url": "http://127.0.0.1:9"}"#)
            .into_settings()
            .unwrap();
        match s.credentials {
            Credentials::Metadata { token_url } => assert_eq!(
                token_url,
                "http://127.0.0.1:9/computeMetadata/v1/instance/service-accounts/default/token"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_carry_paths() {
        let r = parse(
            r#"{"project_id": "Bad/Project", "access_token": "t", "use_metadata_server": true,
                "monitoring": {"metric_prefix": "example.com/x", "endpoint": "ftp://x"},
                "logging": {"log_name": ""}, "batch_size": 201, "timeout": "0s",
                "resource_type": "gce_instance", "scopes": []}"#,
        )
        .into_settings();
        let p = paths(r);
        for want in [
            "use_metadata_server",
            "project_id",
            "monitoring.metric_prefix",
            "monitoring.endpoint",
            "logging.log_name",
            "batch_size",
            "timeout",
            "resource_labels.instance_id",
            "resource_labels.zone",
            "scopes",
        ] {
            assert!(p.iter().any(|x| x == want), "{want} missing from {p:?}");
        }
    }

    #[test]
    fn project_is_required_without_a_key_file() {
        let p = paths(parse(r#"{"access_token": "t"}"#).into_settings());
        assert_eq!(p, vec!["project_id"]);
        // An empty substitution counts as unset.
        let p = paths(parse(r#"{"access_token": "t", "project_id": ""}"#).into_settings());
        assert_eq!(p, vec!["project_id"]);
    }

    #[test]
    fn empty_values_are_unset() {
        let s = parse(
            r#"{"project_id": "p-1", "credentials_file": "", "credentials_json": " ",
                "access_token": "tok", "token_url": ""}"#,
        )
        .into_settings()
        .unwrap();
        assert!(matches!(s.credentials, Credentials::Static(_)));
    }

    #[test]
    fn unreadable_or_bad_key_files_are_config_errors() {
        let p = paths(
            parse(r#"{"project_id": "p-1", "credentials_file": "/nonexistent/key.json"}"#)
                .into_settings(),
        );
        assert_eq!(p, vec!["credentials_file"]);
        let r = parse(
            r#"{"project_id": "p-1", "credentials_json": "{\"type\": \"service_account\"}"}"#,
        )
        .into_settings()
        .unwrap_err();
        assert_eq!(r[0].path.as_str(), "credentials_json");
        assert!(r[0].message.contains("client_email"), "{:?}", r[0]);
    }

    #[test]
    fn all_signals_disabled_is_an_error() {
        let p = paths(
            parse(
                r#"{"project_id": "p-1", "access_token": "t", "monitoring": {"enabled": false},
                    "logging": {"enabled": false}, "trace": {"enabled": false}}"#,
            )
            .into_settings(),
        );
        assert_eq!(p, vec!["monitoring.enabled"]);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = parse(
            r#"{"project_id": "p-1", "access_token": "ya29.SECRET", "credentials_json": "{\"private_key\": \"KEYDATA\"}"}"#,
        );
        let text = format!("{c:?}");
        assert!(!text.contains("SECRET"), "{text}");
        assert!(!text.contains("KEYDATA"), "{text}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(serde_json::from_str::<Config>(r#"{"projectid": "x"}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"monitoring": {"prefix": "x"}}"#).is_err());
    }
}
