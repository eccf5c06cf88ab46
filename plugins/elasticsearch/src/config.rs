//! The elasticsearch integration's configuration: the integration's block of the
//! agent config, handed to the plugin as JSON.
//!
//! ```yaml
//! integrations:
//!   elasticsearch:
//!     enabled: true
//!     endpoints: [https://es1:9200, https://es2:9200]   # or cloud_id
//!     mode: data_stream              # or index
//!     data_stream: { dataset: tfo_agent, namespace: default }
//!     index: "tfo-{type}-%Y.%m.%d"   # mode: index
//!     pipeline: ""                   # ingest pipeline
//!     api_key: ${ES_API_KEY}         # "id:key" or the encoded form; or username/password
//!     metrics: true
//!     logs: true
//!     traces: true
//!     max_bulk_bytes: 5242880
//!     compression: none              # or gzip
//!     timeout: 30s
//!     ca_file: /etc/tfo/es-ca.pem
//!     insecure_skip_verify: false
//!     headers: {}
//! ```
//!
//! Key names follow the older Go agent where it had them (`endpoints`, `index` with
//! `%Y.%m.%d`, `pipeline`, `username`, `password`, `api_key`, `cloud_id`, `metrics`,
//! `logs`, `traces`, `headers`); its `batch_size` and `flush_interval` are the
//! host's `pipeline.*` settings here, and its `tls` block is the flat `ca_file` /
//! `insecure_skip_verify` every HTTP plugin of this agent uses.
//!
//! Unknown keys are rejected (`deny_unknown_fields`); [`Config::validate`] adds the
//! checks serde cannot express, each with its field path.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use base64::Engine as _;
use serde::Deserialize;
use tfo_plugin_api::ConfigError;

/// Default request timeout (the Go agent's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default largest bulk request body: 5 MiB, the low end of the 5-15 MB Elastic
/// suggests as a starting point for bulk sizes ("Tune for indexing speed").
pub const DEFAULT_MAX_BULK_BYTES: u64 = 5 * 1024 * 1024;

/// Default index name template for `mode: index`.
pub const DEFAULT_INDEX: &str = "tfo-{type}-%Y.%m.%d";

/// Where documents go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Data streams `<type>-<dataset>-<namespace>` with the `create` action (the
    /// default: Elasticsearch 8 ships index templates for `logs-*-*` and
    /// `metrics-*-*`).
    #[default]
    DataStream,
    /// Plain indices named from [`Config::index`] with the `index` action.
    Index,
}

/// Request body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain NDJSON.
    #[default]
    None,
    /// `Content-Encoding: gzip` (Elasticsearch accepts it with its default
    /// `http.compression: true`).
    Gzip,
}

/// The data stream naming scheme's two free parts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataStreamConfig {
    /// `data_stream.dataset`: what the data is (no `-`).
    #[serde(default = "default_dataset")]
    pub dataset: String,
    /// `data_stream.namespace`: a user grouping such as an environment (no `-`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

impl Default for DataStreamConfig {
    fn default() -> Self {
        DataStreamConfig {
            dataset: default_dataset(),
            namespace: default_namespace(),
        }
    }
}

/// Configuration of one elasticsearch instance.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base URLs of the cluster's HTTP endpoints; the first is used, the next one
    /// after a connection failure.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Elastic Cloud deployment id (`name:base64(host$es-uuid$kibana-uuid)`),
    /// instead of `endpoints`.
    #[serde(default)]
    pub cloud_id: Option<String>,
    /// `data_stream` (default) or `index`.
    #[serde(default)]
    pub mode: Mode,
    /// Dataset and namespace of the data stream names.
    #[serde(default)]
    pub data_stream: DataStreamConfig,
    /// Index name template for `mode: index`: `{type}` is `logs`, `metrics` or
    /// `traces`; `%Y`, `%m`, `%d`, `%H` are the document's UTC date; `%%` is `%`.
    #[serde(default = "default_index")]
    pub index: String,
    /// Ingest pipeline run on every document (`?pipeline=`).
    #[serde(default)]
    pub pipeline: Option<String>,
    /// API key: `id:key` (encoded by the plugin) or the base64 `encoded` value
    /// Elasticsearch's create-API-key call returns.
    #[serde(default)]
    pub api_key: Option<String>,
    /// HTTP Basic user name.
    #[serde(default)]
    pub username: Option<String>,
    /// HTTP Basic password.
    #[serde(default)]
    pub password: Option<String>,
    /// Send metrics.
    #[serde(default = "yes")]
    pub metrics: bool,
    /// Send logs.
    #[serde(default = "yes")]
    pub logs: bool,
    /// Send spans.
    #[serde(default = "yes")]
    pub traces: bool,
    /// Largest bulk request body (uncompressed); a batch is split into several
    /// requests below it.
    #[serde(default = "default_max_bulk_bytes")]
    pub max_bulk_bytes: u64,
    /// `none` (default) or `gzip`.
    #[serde(default)]
    pub compression: Compression,
    /// Whole-request timeout.
    #[serde(
        default = "default_timeout",
        deserialize_with = "tfo_plugin_common::config::duration"
    )]
    pub timeout: Duration,
    /// Extra PEM CA certificates trusted for `https://` endpoints.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (test systems only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl std::fmt::Debug for Config {
    // Credentials stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("endpoints", &self.endpoints)
            .field("cloud_id", &self.cloud_id.as_ref().map(|_| "<set>"))
            .field("mode", &self.mode)
            .field("data_stream", &self.data_stream)
            .field("index", &self.index)
            .field("pipeline", &self.pipeline)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("max_bulk_bytes", &self.max_bulk_bytes)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn yes() -> bool {
    true
}
fn default_dataset() -> String {
    "tfo_agent".to_string()
}
fn default_namespace() -> String {
    "default".to_string()
}
fn default_index() -> String {
    DEFAULT_INDEX.to_string()
}
fn default_max_bulk_bytes() -> u64 {
    DEFAULT_MAX_BULK_BYTES
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

/// Headers the plugin sets itself.
const RESERVED_HEADERS: [&str; 5] = [
    "content-type",
    "content-encoding",
    "content-length",
    "host",
    "transfer-encoding",
];

/// Characters Elasticsearch refuses in index names (and so in data stream parts).
const BAD_INDEX_CHARS: &[char] = &['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':'];

impl Config {
    /// Every problem found (empty when usable), each with its field path.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        match (&self.cloud_id, self.endpoints.is_empty()) {
            (None, true) => errors.push(ConfigError::new(
                "endpoints",
                "set at least one endpoint (e.g. https://localhost:9200) or cloud_id",
            )),
            (Some(_), false) => errors.push(ConfigError::new(
                "cloud_id",
                "set either cloud_id or endpoints, not both",
            )),
            (Some(id), true) => {
                if let Err(e) = cloud_id_url(id) {
                    errors.push(ConfigError::new("cloud_id", e));
                }
            }
            (None, false) => {}
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            if let Err(msg) = check_endpoint(e) {
                errors.push(ConfigError::new(format!("endpoints.{i}"), msg));
            }
        }
        match self.mode {
            Mode::DataStream => {
                for (key, v) in [
                    ("dataset", &self.data_stream.dataset),
                    ("namespace", &self.data_stream.namespace),
                ] {
                    if let Err(e) = check_stream_part(v) {
                        errors.push(ConfigError::new(format!("data_stream.{key}"), e));
                    }
                }
            }
            Mode::Index => {
                if let Err(e) = check_index_template(&self.index) {
                    errors.push(ConfigError::new("index", e));
                }
            }
        }
        if let Some(p) = &self.pipeline {
            if p.is_empty() || p.chars().any(|c| c.is_control() || c == ' ') {
                errors.push(ConfigError::new(
                    "pipeline",
                    "must be a non-empty pipeline id without spaces",
                ));
            }
        }
        if let Some(k) = &self.api_key {
            if k.trim().is_empty() || k.chars().any(|c| c.is_control()) {
                errors.push(ConfigError::new("api_key", "must be a non-empty key"));
            }
            if self.username.is_some() || self.password.is_some() {
                errors.push(ConfigError::new(
                    "api_key",
                    "use either api_key or username/password, not both",
                ));
            }
        }
        match (&self.username, &self.password) {
            (Some(_), None) => {
                errors.push(ConfigError::new("password", "username needs a password"))
            }
            (None, Some(_)) => {
                errors.push(ConfigError::new("username", "password needs a username"))
            }
            (Some(u), Some(_)) if u.contains(':') => errors.push(ConfigError::new(
                "username",
                "must not contain ':' (HTTP Basic)",
            )),
            _ => {}
        }
        if !(self.metrics || self.logs || self.traces) {
            errors.push(ConfigError::new(
                "metrics",
                "metrics, logs and traces are all false: nothing would be sent",
            ));
        }
        if self.max_bulk_bytes < 1024 {
            errors.push(ConfigError::new(
                "max_bulk_bytes",
                "must be at least 1024 bytes",
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
        for (name, value) in &self.headers {
            let path = format!("headers.{name}");
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                errors.push(ConfigError::new(path, "is not a valid HTTP header name"));
            } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                errors.push(ConfigError::new(
                    path,
                    "is set by the plugin itself and cannot be configured",
                ));
            } else if name.eq_ignore_ascii_case("authorization")
                && (self.api_key.is_some() || self.username.is_some())
            {
                errors.push(ConfigError::new(
                    path,
                    "conflicts with api_key / username: configure one way to authenticate",
                ));
            } else if http::HeaderValue::from_str(value).is_err() {
                errors.push(ConfigError::new(
                    path,
                    "is not a valid HTTP header value (visible ASCII only)",
                ));
            }
        }
        errors
    }

    /// The base URLs to use, in order (validated config).
    pub fn base_urls(&self) -> Result<Vec<String>, String> {
        if let Some(id) = &self.cloud_id {
            return Ok(vec![cloud_id_url(id)?]);
        }
        Ok(self
            .endpoints
            .iter()
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .collect())
    }

    /// The `Authorization` header value, if any.
    pub fn authorization(&self) -> Option<String> {
        if let Some(k) = &self.api_key {
            return Some(api_key_value(k));
        }
        match (&self.username, &self.password) {
            (Some(u), Some(p)) => Some(tfo_plugin_common::auth::basic_auth_value(u, p)),
            _ => None,
        }
    }
}

/// `ApiKey <base64(id:key)>`: an `id:key` pair is encoded, anything else is taken
/// as the already encoded value (Elasticsearch's "Create API key" answer carries
/// both `id`/`api_key` and the `encoded` form).
pub fn api_key_value(key: &str) -> String {
    let key = key.trim();
    if key.contains(':') {
        format!("ApiKey {}", tfo_plugin_common::auth::base64(key.as_bytes()))
    } else {
        format!("ApiKey {key}")
    }
}

/// The HTTPS URL of an Elastic Cloud id: `<name>:<base64 of
/// "host[:port]$es-uuid$kibana-uuid">` -> `https://<es-uuid>.<host>[:port]`.
pub fn cloud_id_url(id: &str) -> Result<String, String> {
    let encoded = id.rsplit_once(':').map(|(_, e)| e).unwrap_or(id).trim();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| "is not a valid Elastic Cloud id (base64 part does not decode)".to_string())?;
    let text = String::from_utf8(raw).map_err(|_| "is not a valid Elastic Cloud id".to_string())?;
    let mut parts = text.split('$');
    let host = parts.next().unwrap_or("").trim_end_matches('/');
    let es = parts.next().unwrap_or("");
    if host.is_empty() || es.is_empty() {
        return Err("is not a valid Elastic Cloud id (expected host$es-uuid$kibana-uuid)".into());
    }
    let (host, port) = match host.split_once(':') {
        Some((h, p)) if p != "443" => (h, format!(":{p}")),
        Some((h, _)) => (h, String::new()),
        None => (host, String::new()),
    };
    Ok(format!("https://{es}.{host}{port}"))
}

fn check_endpoint(e: &str) -> Result<(), String> {
    let uri: http::Uri = e
        .trim()
        .parse()
        .map_err(|_| format!("{e:?} is not a URL (e.g. https://localhost:9200)"))?;
    if !matches!(uri.scheme_str(), Some("http") | Some("https")) {
        return Err(format!("{e:?}: the scheme must be http or https"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{e:?} has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("{e:?}: a query string is not allowed here"));
    }
    Ok(())
}

/// Data stream naming scheme: lowercase, no `-`, none of the characters index
/// names refuse, at most 100 characters.
fn check_stream_part(v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > 100 {
        return Err("must be 1 to 100 characters".into());
    }
    if v.contains('-') || v.chars().any(|c| BAD_INDEX_CHARS.contains(&c)) {
        return Err(format!(
            "{v:?} must not contain '-', spaces or any of \\ / * ? \" < > | , # :"
        ));
    }
    if v.chars().any(|c| c.is_uppercase()) {
        return Err(format!("{v:?} must be lowercase"));
    }
    Ok(())
}

/// Index templates: known placeholders only, and a result Elasticsearch accepts.
fn check_index_template(t: &str) -> Result<(), String> {
    // Render with a sample date: every specifier must be known.
    let sample = crate::encode::render_index(t, "logs", 1_700_000_000_000_000_000)?;
    if sample.is_empty() || sample.len() > 255 {
        return Err("the index name must be 1 to 255 bytes".into());
    }
    if sample.starts_with(['-', '_', '+', '.']) {
        return Err(format!(
            "{t:?}: an index name must not start with - _ + or ."
        ));
    }
    if sample
        .chars()
        .any(|c| c.is_uppercase() || BAD_INDEX_CHARS.contains(&c))
    {
        return Err(format!(
            "{t:?}: an index name must be lowercase, without spaces or \\ / * ? \" < > | , # :"
        ));
    }
    Ok(())
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
    fn defaults() {
        let c = parse(r#"{"endpoints": ["http://localhost:9200/"]}"#).unwrap();
        assert!(c.validate().is_empty());
        assert_eq!(c.mode, Mode::DataStream);
        assert_eq!(c.data_stream, DataStreamConfig::default());
        assert_eq!(c.data_stream.dataset, "tfo_agent");
        assert_eq!(c.index, "tfo-{type}-%Y.%m.%d");
        assert!(c.metrics && c.logs && c.traces);
        assert_eq!(c.max_bulk_bytes, 5 * 1024 * 1024);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.base_urls().unwrap(), ["http://localhost:9200"]);
        assert_eq!(c.authorization(), None);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        for json in [
            r#"{"endpoints": ["http://x"], "batch_size": 5}"#,
            r#"{"endpoints": ["http://x"], "data_stream": {"type": "logs"}}"#,
        ] {
            let e = parse(json).unwrap_err();
            assert!(e.to_string().contains("unknown field"), "{json}: {e}");
        }
    }

    #[test]
    fn api_key_forms() {
        // The encoded value is base64("id:key").
        assert_eq!(
            api_key_value("VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw"),
            "ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
        );
        assert_eq!(
            api_key_value("VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="),
            "ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
        );
        let c = parse(
            r#"{"endpoints": ["http://x"], "username": "Aladdin", "password": "open sesame"}"#,
        )
        .unwrap();
        assert_eq!(
            c.authorization().as_deref(),
            Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        );
    }

    #[test]
    fn cloud_id_decodes() {
        // base64("us-east-1.aws.found.io$cd9f...$kib") with a name prefix.
        let inner = "us-east-1.aws.found.io$0123abcd$kib4567";
        let id = format!(
            "my-deployment:{}",
            tfo_plugin_common::auth::base64(inner.as_bytes())
        );
        assert_eq!(
            cloud_id_url(&id).unwrap(),
            "https://0123abcd.us-east-1.aws.found.io"
        );
        let inner = "eu.example.com:9243$es$kb";
        let id = format!("x:{}", tfo_plugin_common::auth::base64(inner.as_bytes()));
        assert_eq!(cloud_id_url(&id).unwrap(), "https://es.eu.example.com:9243");
        assert!(cloud_id_url("x:%%%").is_err());
        assert!(
            cloud_id_url(&format!("x:{}", tfo_plugin_common::auth::base64(b"nohost"))).is_err()
        );
    }

    #[test]
    fn bad_values_are_reported_with_their_paths() {
        let c = parse(
            r#"{"endpoints": ["ftp://x", "http://ok:9200"],
                "data_stream": {"dataset": "my-app", "namespace": "Prod"},
                "api_key": "a:b", "username": "u",
                "metrics": false, "logs": false, "traces": false,
                "max_bulk_bytes": 10, "timeout": 0,
                "ca_file": "/nonexistent/ca.pem",
                "headers": {"Content-Type": "x", "bad name": "v", "Authorization": "x"}}"#,
        )
        .unwrap();
        assert_eq!(
            paths(&c),
            [
                "endpoints.0",
                "data_stream.dataset",
                "data_stream.namespace",
                "api_key",
                "password",
                "metrics",
                "max_bulk_bytes",
                "timeout",
                "ca_file",
                "headers.Authorization",
                "headers.Content-Type",
                "headers.bad name",
            ]
        );
    }

    #[test]
    fn endpoint_or_cloud_id_is_required() {
        assert_eq!(paths(&parse("{}").unwrap()), ["endpoints"]);
        let id = format!("x:{}", tfo_plugin_common::auth::base64(b"h$e$k"));
        let both = format!(r#"{{"endpoints": ["http://x"], "cloud_id": "{id}"}}"#);
        assert_eq!(paths(&parse(&both).unwrap()), ["cloud_id"]);
        let only = format!(r#"{{"cloud_id": "{id}"}}"#);
        let c = parse(&only).unwrap();
        assert!(c.validate().is_empty());
        assert_eq!(c.base_urls().unwrap(), ["https://e.h"]);
    }

    #[test]
    fn index_templates_are_checked() {
        for good in ["tfo-{type}-%Y.%m.%d", "logs-%Y.%m", "{type}", "a%%b-%H"] {
            let c = parse(&format!(
                r#"{{"endpoints": ["http://x"], "mode": "index", "index": "{good}"}}"#
            ))
            .unwrap();
            assert!(c.validate().is_empty(), "{good}: {:?}", c.validate());
        }
        for bad in ["Tfo-%Y", "tfo-%Q", "tfo-%", "_tfo", "a b", "tfo-{kind}", ""] {
            let c = parse(&format!(
                r#"{{"endpoints": ["http://x"], "mode": "index", "index": "{bad}"}}"#
            ))
            .unwrap();
            assert_eq!(paths(&c), ["index"], "{bad}");
        }
    }
}
