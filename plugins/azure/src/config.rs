//! The azure integration's configuration (its block of the agent config, handed to
//! the plugin as JSON). See `plugins/azure/config.example.yaml` and
//! `docs/integrations/azure.md` for every key.
//!
//! ```yaml
//! integrations:
//!   azure:
//!     enabled: true
//!     tenant_id: ${AZURE_TENANT_ID}        # service principal (client credentials)
//!     client_id: ${AZURE_CLIENT_ID}
//!     client_secret: ${AZURE_CLIENT_SECRET}
//!     # use_managed_identity: true         # or the VM's managed identity (IMDS)
//!     metrics:
//!       resource_id: /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<vm>
//!       region: eastus
//!     logs:
//!       endpoint: https://my-dce-abcd.eastus-1.ingest.monitor.azure.com
//!       dcr_immutable_id: dcr-00000000000000000000000000000000
//!       stream_name: Custom-TelemetryFlowLogs_CL
//!     traces:
//!       connection_string: ${APPLICATIONINSIGHTS_CONNECTION_STRING}
//! ```
//!
//! Unknown keys are rejected; [`Config::validate`] adds the checks serde cannot
//! express, each with its path (`logs.endpoint`).

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;
use tfo_plugin_common::azure_auth::{Secret, DEFAULT_AUTHORITY_HOST, DEFAULT_IMDS_ENDPOINT};

use crate::encode::{parse_connection_string, ConnectionString};

/// Default request timeout (the Go agent's `timeout` default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default metric namespace (the Go agent's `metric_namespace` default).
pub const DEFAULT_NAMESPACE: &str = "TelemetryFlow";
/// Default region.
pub const DEFAULT_REGION: &str = "eastus";
/// Default Logs Ingestion stream: a custom table `TelemetryFlowLogs_CL`.
pub const DEFAULT_STREAM: &str = "Custom-TelemetryFlowLogs_CL";

/// Configuration of one azure instance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
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
    /// Custom metrics; absent = metrics are not sent.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// Logs Ingestion API; absent = logs are not sent.
    #[serde(default)]
    pub logs: Option<LogsConfig>,
    /// Application Insights; absent = spans are not sent (`application_insights`
    /// is accepted as the key's old name).
    #[serde(default, alias = "application_insights")]
    pub traces: Option<TracesConfig>,
    /// Whole-request timeout.
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

/// Azure Monitor custom metrics.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `false` turns this signal off without deleting its block.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Full ARM id of the resource the metrics are about
    /// (`/subscriptions/.../resourceGroups/.../providers/...`).
    pub resource_id: String,
    /// Azure region of that resource (`eastus`).
    #[serde(default = "default_region")]
    pub region: String,
    /// Metric namespace shown in metrics explorer.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Base URL override; default `https://{region}.monitoring.azure.com`.
    #[serde(default)]
    pub endpoint: Option<String>,
}

impl MetricsConfig {
    /// Base URL of the regional custom metrics endpoint.
    pub fn base_url(&self) -> String {
        match &self.endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => format!("https://{}.monitoring.azure.com", self.region),
        }
    }
}

/// Request body compression of the Logs Ingestion API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `Content-Encoding: gzip` (default; the API accepts it).
    #[default]
    Gzip,
    /// Uncompressed JSON.
    None,
}

/// Logs Ingestion API target.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    /// `false` turns this signal off without deleting its block.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Data collection endpoint (or the DCR's logs ingestion endpoint).
    pub endpoint: String,
    /// Immutable id of the data collection rule (`dcr-...`).
    pub dcr_immutable_id: String,
    /// Stream declared in the DCR.
    #[serde(default = "default_stream")]
    pub stream_name: String,
    /// `gzip` (default) or `none`.
    #[serde(default)]
    pub compression: Compression,
}

/// Application Insights target.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracesConfig {
    /// `false` turns this signal off without deleting its block.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Connection string (`InstrumentationKey=...;IngestionEndpoint=...`).
    #[serde(default)]
    pub connection_string: Option<String>,
    /// Instrumentation key, when no connection string is given.
    #[serde(default)]
    pub instrumentation_key: Option<String>,
    /// Ingestion endpoint override (default from the connection string, else
    /// `https://dc.services.visualstudio.com`).
    #[serde(default)]
    pub ingestion_endpoint: Option<String>,
    /// Send a Microsoft Entra token (audience `https://monitor.azure.com/`), for
    /// resources with local authentication disabled. Also turned on by
    /// `Authorization=AAD` in the connection string.
    #[serde(default)]
    pub entra_auth: bool,
}

impl TracesConfig {
    /// The resolved connection settings.
    pub fn resolve(&self) -> Result<ConnectionString, ConfigError> {
        let mut cs = match &self.connection_string {
            Some(s) => parse_connection_string(s)
                .map_err(|e| ConfigError::new("traces.connection_string", e))?,
            None => match &self.instrumentation_key {
                Some(k) if !k.trim().is_empty() => ConnectionString {
                    instrumentation_key: k.trim().to_string(),
                    ingestion_endpoint: crate::encode::DEFAULT_INGESTION_ENDPOINT.to_string(),
                    entra_auth: false,
                },
                _ => {
                    return Err(ConfigError::new(
                        "traces",
                        "set connection_string (or instrumentation_key)",
                    ))
                }
            },
        };
        if let Some(e) = &self.ingestion_endpoint {
            cs.ingestion_endpoint = e.trim_end_matches('/').to_string();
        }
        cs.entra_auth |= self.entra_auth;
        Ok(cs)
    }
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
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_region() -> String {
    DEFAULT_REGION.to_string()
}
fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_string()
}
fn default_stream() -> String {
    DEFAULT_STREAM.to_string()
}

fn check_url(errors: &mut Vec<ConfigError>, path: &str, url: &str) {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.split("://").nth(1).is_some_and(|h| {
            let host = h.split('/').next().unwrap_or("");
            !host.is_empty()
        })
        && !url.contains('?')
        && !url.contains(char::is_whitespace);
    if !ok {
        errors.push(ConfigError::new(
            path,
            format!("{url:?} is not an http:// or https:// URL with a host (and no query)"),
        ));
    }
}

fn check_segment(errors: &mut Vec<ConfigError>, path: &str, v: &str) {
    if v.is_empty()
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        errors.push(ConfigError::new(
            path,
            format!("{v:?} must be non-empty letters, digits, '-', '_' or '.'"),
        ));
    }
}

impl Config {
    /// Drops the signal blocks written with `enabled: false`.
    pub fn normalize(mut self) -> Self {
        self.metrics = self.metrics.filter(|b| b.enabled);
        self.logs = self.logs.filter(|b| b.enabled);
        self.traces = self.traces.filter(|b| b.enabled);
        self
    }

    /// True when some signal needs a Microsoft Entra token.
    pub fn needs_token(&self) -> bool {
        self.metrics.is_some()
            || self.logs.is_some()
            || self
                .traces
                .as_ref()
                .and_then(|t| t.resolve().ok())
                .is_some_and(|c| c.entra_auth)
    }

    /// Every problem serde cannot see, with its path.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if self.metrics.is_none() && self.logs.is_none() && self.traces.is_none() {
            errors.push(ConfigError::new(
                "",
                "configure at least one of metrics, logs and traces",
            ));
        }
        if self.needs_token() {
            if self.use_managed_identity {
                if self.client_secret.is_some() {
                    errors.push(ConfigError::new(
                        "client_secret",
                        "not used with use_managed_identity (client_id selects a \
                         user-assigned identity)",
                    ));
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
            }
            check_url(&mut errors, "authority_host", &self.authority_host);
            check_url(&mut errors, "imds_endpoint", &self.imds_endpoint);
        }
        if let Some(m) = &self.metrics {
            let segs: Vec<&str> = m.resource_id.split('/').collect();
            let valid = m.resource_id.starts_with("/subscriptions/")
                && segs.len() >= 3
                && segs.iter().skip(1).all(|s| !s.is_empty())
                && !m
                    .resource_id
                    .contains(|c: char| c.is_whitespace() || c == '?');
            if !valid {
                errors.push(ConfigError::new(
                    "metrics.resource_id",
                    "must be a full resource id: /subscriptions/<id>/resourceGroups/<rg>/providers/<type>/<name>",
                ));
            }
            if m.endpoint.is_none() {
                check_segment(&mut errors, "metrics.region", &m.region);
            }
            if m.namespace.trim().is_empty() {
                errors.push(ConfigError::new("metrics.namespace", "must not be empty"));
            }
            if let Some(e) = &m.endpoint {
                check_url(&mut errors, "metrics.endpoint", e);
            }
        }
        if let Some(l) = &self.logs {
            check_url(&mut errors, "logs.endpoint", &l.endpoint);
            check_segment(&mut errors, "logs.dcr_immutable_id", &l.dcr_immutable_id);
            check_segment(&mut errors, "logs.stream_name", &l.stream_name);
        }
        if let Some(t) = &self.traces {
            match t.resolve() {
                Ok(cs) => check_url(
                    &mut errors,
                    if t.ingestion_endpoint.is_some() {
                        "traces.ingestion_endpoint"
                    } else {
                        "traces.connection_string"
                    },
                    &cs.ingestion_endpoint,
                ),
                Err(e) => errors.push(e),
            }
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
    fn needs_a_signal() {
        assert_eq!(paths(&parse("{}")), vec![""]);
    }

    #[test]
    fn client_credentials_are_required_for_metrics_and_logs() {
        let c = parse(
            r#"{"metrics": {"resource_id": "/subscriptions/s/resourceGroups/r/providers/P/t/n"}}"#,
        );
        assert_eq!(paths(&c), vec!["tenant_id", "client_id", "client_secret"]);
        let c = parse(
            r#"{"use_managed_identity": true,
                "metrics": {"resource_id": "/subscriptions/s/resourceGroups/r/providers/P/t/n"}}"#,
        );
        assert!(paths(&c).is_empty());
    }

    #[test]
    fn traces_with_a_connection_string_need_no_credentials() {
        let c = parse(r#"{"traces": {"connection_string": "InstrumentationKey=abc"}}"#);
        assert!(paths(&c).is_empty(), "{:?}", c.validate());
        let c = parse(r#"{"traces": {}}"#);
        assert_eq!(paths(&c), vec!["traces"]);
        let c = parse(
            r#"{"traces": {"connection_string": "InstrumentationKey=abc;Authorization=AAD"}}"#,
        );
        assert_eq!(paths(&c), vec!["tenant_id", "client_id", "client_secret"]);
    }

    #[test]
    fn bad_values_carry_their_paths() {
        let c = parse(
            r#"{"use_managed_identity": true, "timeout": 0,
                "metrics": {"resource_id": "vm1", "region": "east us", "namespace": " "},
                "logs": {"endpoint": "dce.example", "dcr_immutable_id": "dcr/1", "stream_name": ""},
                "traces": {"connection_string": "IngestionEndpoint=https://x"}}"#,
        );
        assert_eq!(
            paths(&c),
            vec![
                "metrics.resource_id",
                "metrics.region",
                "metrics.namespace",
                "logs.endpoint",
                "logs.dcr_immutable_id",
                "logs.stream_name",
                "traces.connection_string",
                "timeout"
            ]
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = serde_json::from_str::<Config>(r#"{"subscription_id": "x"}"#).unwrap_err();
        assert!(
            e.to_string().contains("unknown field `subscription_id`"),
            "{e}"
        );
    }

    #[test]
    fn disabled_blocks_and_old_key_names() {
        let c = parse(
            r#"{"application_insights": {"enabled": false, "instrumentation_key": "k"},
                "metrics": {"enabled": false, "resource_id": "bad"}}"#,
        )
        .normalize();
        assert!(c.traces.is_none() && c.metrics.is_none());
        assert_eq!(paths(&c), vec![""]);
        let c = parse(r#"{"application_insights": {"instrumentation_key": "k"}}"#).normalize();
        assert!(paths(&c).is_empty());
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = parse(r#"{"client_secret": "s3cr3t-value"}"#);
        assert!(!format!("{c:?}").contains("s3cr3t-value"));
    }
}
