//! The `kafka` integration's configuration: the block under `integrations.<name>` of
//! the agent config, handed to the plugin as JSON, and its translation into
//! librdkafka properties (`CONFIGURATION.md` of librdkafka,
//! <https://github.com/confluentinc/librdkafka/blob/v2.0.2/CONFIGURATION.md>).
//!
//! Unknown keys are rejected (`deny_unknown_fields`) so a typo fails at load time;
//! type errors carry their field path (the SDK adds it). [`Config::resolve`] adds the
//! checks serde cannot express and reports every problem at once, each with its
//! path; it also hands the final property list to librdkafka's own parser
//! (`rd_kafka_conf_set`, no client is created), so a bad `producer_config` entry is
//! refused by `tfo-agent validate` with the property's path, not at the first export.
//!
//! ```yaml
//! kafka:
//!   brokers: ["kafka-1:9092", "kafka-2:9092"]
//!   topics: { metrics: otlp_metrics, logs: otlp_logs, traces: otlp_spans }
//!   encoding: otlp_proto          # otlp_proto | otlp_json | json
//!   compression: zstd             # none | gzip | snappy | lz4 | zstd
//!   sasl: { mechanism: SCRAM-SHA-512, username: agent, password: "${KAFKA_PASSWORD}" }
//!   tls: { enabled: true, ca_file: /etc/ssl/kafka-ca.pem }
//!   producer_config: { "linger.ms": 20 }
//! ```
//!
//! Keys of the older Go agent kept: `brokers`, `client_id`, `compression`,
//! `required_acks`, `metrics_topic` (and its documented spelling `topic`),
//! `logs_topic`, `traces_topic`, `encoding`, nested `sasl {enabled, mechanism,
//! username, password}` and `tls {enabled, ...}`.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use rdkafka::ClientConfig;
use serde::Deserialize;
use tfo_plugin_api::ConfigError;
use tfo_plugin_common::config::duration;

/// Default metrics topic: the OpenTelemetry Collector kafka exporter's.
pub const DEFAULT_METRICS_TOPIC: &str = "otlp_metrics";
/// Default logs topic: the OpenTelemetry Collector kafka exporter's.
pub const DEFAULT_LOGS_TOPIC: &str = "otlp_logs";
/// Default traces topic: the OpenTelemetry Collector kafka exporter's.
pub const DEFAULT_TRACES_TOPIC: &str = "otlp_spans";
/// Default largest message: librdkafka's own `message.max.bytes` default, just
/// under the broker's default `message.max.bytes` (1048588).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;
/// Smallest `max_message_bytes` librdkafka accepts.
pub const MIN_MAX_MESSAGE_BYTES: usize = 1_000;
/// Largest `max_message_bytes` librdkafka accepts.
pub const MAX_MAX_MESSAGE_BYTES: usize = 1_000_000_000;

/// Payload encoding of the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Protobuf `Export{Metrics,Trace,Logs}ServiceRequest` (the Collector's
    /// `otlp_proto`).
    #[default]
    #[serde(alias = "protobuf", alias = "otlp")]
    OtlpProto,
    /// The same requests in OTLP/JSON (the Collector's `otlp_json`).
    OtlpJson,
    /// One plain JSON object per metric point, span or log record (the Go agent's
    /// `json`).
    Json,
}

impl Encoding {
    /// Name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::OtlpProto => "otlp_proto",
            Encoding::OtlpJson => "otlp_json",
            Encoding::Json => "json",
        }
    }
}

/// Producer-side compression (librdkafka `compression.codec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Uncompressed (the Collector's default).
    #[default]
    None,
    /// gzip.
    Gzip,
    /// Snappy (the Go agent's default).
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard (needs brokers >= 2.1).
    Zstd,
}

impl Compression {
    fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// `required_acks`: `all` (or `-1`), `1` or `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// Every in-sync replica (`acks=all`), required by the idempotent producer.
    #[default]
    All,
    /// The partition leader only.
    Leader,
    /// No acknowledgement: a delivery report says only that the message was sent.
    None,
}

impl<'de> Deserialize<'de> for Acks {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            N(i64),
        }
        let text = match Raw::deserialize(d)? {
            Raw::S(s) => s,
            Raw::N(n) => n.to_string(),
        };
        match text.trim().to_ascii_lowercase().as_str() {
            "all" | "-1" => Ok(Acks::All),
            "1" => Ok(Acks::Leader),
            "0" => Ok(Acks::None),
            other => Err(serde::de::Error::custom(format!(
                "invalid required_acks {other:?} (all, 1 or 0)"
            ))),
        }
    }
}

impl Acks {
    fn as_str(self) -> &'static str {
        match self {
            Acks::All => "all",
            Acks::Leader => "1",
            Acks::None => "0",
        }
    }
}

/// Topic of each signal.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topics {
    /// Metrics topic. Default `otlp_metrics`.
    #[serde(default)]
    pub metrics: Option<String>,
    /// Logs topic. Default `otlp_logs`.
    #[serde(default)]
    pub logs: Option<String>,
    /// Traces topic. Default `otlp_spans`.
    #[serde(default)]
    pub traces: Option<String>,
}

/// SASL authentication (librdkafka `sasl.mechanisms`, `sasl.username`,
/// `sasl.password`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// The Go agent's switch; `false` ignores the block. Default `true`.
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// `PLAIN` (default), `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    #[serde(default = "d_mechanism")]
    pub mechanism: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// TLS to the brokers (librdkafka `ssl.*`). Certificate and host name
/// verification are on unless `insecure_skip_verify` says otherwise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The Go agent's switch; `false` ignores the block. Default `true`.
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// PEM CA certificate(s) to verify the brokers with (default: the system
    /// store, as librdkafka finds it).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (mutual TLS); needs `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Password of an encrypted `key_file`.
    #[serde(default)]
    pub key_password: Option<String>,
    /// Accept any broker certificate and name. Test systems only.
    #[serde(default, alias = "skip_verify")]
    pub insecure_skip_verify: bool,
}

/// A `producer_config` value: librdkafka takes every property as a string, YAML
/// users write numbers and booleans.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PropValue {
    /// `"20"`, `"all"`.
    Str(String),
    /// `20`.
    Int(i64),
    /// `0.5`.
    Float(f64),
    /// `true`.
    Bool(bool),
}

impl PropValue {
    fn text(&self) -> String {
        match self {
            PropValue::Str(s) => s.clone(),
            PropValue::Int(i) => i.to_string(),
            PropValue::Float(f) => f.to_string(),
            PropValue::Bool(b) => b.to_string(),
        }
    }
}

/// Configuration of one kafka instance, as written by the user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Bootstrap brokers, `host:port` (librdkafka `bootstrap.servers`). Required.
    #[serde(default)]
    pub brokers: Vec<String>,
    /// Client id the brokers log and quota by (librdkafka `client.id`).
    #[serde(default = "d_client_id")]
    pub client_id: String,
    /// Topic per signal.
    #[serde(default)]
    pub topics: Topics,
    /// The Go agent's metrics topic key (same as `topics.metrics`).
    #[serde(default, alias = "topic")]
    pub metrics_topic: Option<String>,
    /// The Go agent's logs topic key (same as `topics.logs`).
    #[serde(default)]
    pub logs_topic: Option<String>,
    /// The Go agent's traces topic key (same as `topics.traces`).
    #[serde(default)]
    pub traces_topic: Option<String>,
    /// Payload encoding. Default `otlp_proto`.
    #[serde(default)]
    pub encoding: Encoding,
    /// Compression codec. Default `none`.
    #[serde(default)]
    pub compression: Compression,
    /// Acknowledgements required from the brokers. Default `all`.
    #[serde(default)]
    pub required_acks: Acks,
    /// Idempotent producer (librdkafka `enable.idempotence`): no duplicates or
    /// reordering from librdkafka's own retries. Default `true`; needs
    /// `required_acks: all`.
    #[serde(default = "d_true")]
    pub idempotent: bool,
    /// How long a message may take to be delivered, retries included (librdkafka
    /// `message.timeout.ms`); `export` waits at most this long plus 3 s. Default
    /// 10 s; keep it below the host's `pipeline.call_timeout` (30 s) minus 3 s, or
    /// the host abandons the call and restarts the instance.
    #[serde(default = "d_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Largest message (key + value + record overhead) the producer sends
    /// (librdkafka `message.max.bytes`); requests are split to stay under it.
    /// Default 1000000.
    #[serde(default = "d_max_message_bytes")]
    pub max_message_bytes: usize,
    /// SASL authentication.
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
    /// TLS to the brokers.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Extra librdkafka properties, passed through last (they override the ones
    /// derived from the keys above).
    #[serde(default)]
    pub producer_config: BTreeMap<String, PropValue>,
}

fn d_true() -> bool {
    true
}
fn d_mechanism() -> String {
    "PLAIN".to_string()
}
fn d_client_id() -> String {
    "tfo-agent".to_string()
}
fn d_timeout() -> Duration {
    Duration::from_secs(10)
}
fn d_max_message_bytes() -> usize {
    DEFAULT_MAX_MESSAGE_BYTES
}

/// The validated settings an instance runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Bootstrap brokers, for messages.
    pub brokers: String,
    /// Topic of metrics.
    pub metrics_topic: String,
    /// Topic of logs.
    pub logs_topic: String,
    /// Topic of spans.
    pub traces_topic: String,
    /// Payload encoding.
    pub encoding: Encoding,
    /// How long `export` waits for delivery reports.
    pub timeout: Duration,
    /// Largest message, as librdkafka counts it.
    pub max_message_bytes: usize,
    /// The librdkafka properties, in the order they are set.
    pub properties: Vec<(String, String)>,
}

impl Settings {
    /// The librdkafka client configuration.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// A property's final value, if set.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A topic name as Kafka allows it: 1 to 249 characters of `[a-zA-Z0-9._-]`, not
/// `.` or `..`.
fn check_topic(t: &str) -> Option<String> {
    if t.is_empty() {
        return Some("must not be empty".into());
    }
    if t.len() > 249 {
        return Some("longer than 249 characters".into());
    }
    if t == "." || t == ".." {
        return Some(format!("{t:?} is not a valid topic name"));
    }
    if let Some(c) = t
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "{t:?}: {c:?} is not allowed in a topic name (letters, digits, '.', '_', '-')"
        ));
    }
    None
}

impl Config {
    /// Checks everything and returns the settings, or every problem found.
    pub fn resolve(&self) -> Result<Settings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut err = |path: &str, msg: String| errors.push(ConfigError::new(path, msg));

        if self.brokers.is_empty() {
            err(
                "brokers",
                "at least one broker (host:port) is required".into(),
            );
        }
        for (i, b) in self.brokers.iter().enumerate() {
            let b = b.trim();
            let ok = b
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok || b.contains(',') || b.contains("://") {
                err(
                    &format!("brokers[{i}]"),
                    format!("{b:?} is not host:port (e.g. kafka-1:9092)"),
                );
            }
        }
        if self.client_id.trim().is_empty() {
            err("client_id", "must not be empty".into());
        }

        let mut topic = |nested: &Option<String>,
                         flat: &Option<String>,
                         nested_path: &str,
                         flat_path: &str,
                         default: &str| {
            let t = match (nested, flat) {
                (Some(_), Some(_)) => {
                    err(
                        flat_path,
                        format!("set either {nested_path} or {flat_path}, not both"),
                    );
                    String::new()
                }
                (Some(t), None) => t.clone(),
                (None, Some(t)) => t.clone(),
                (None, None) => default.to_string(),
            };
            let path = if flat.is_some() {
                flat_path
            } else {
                nested_path
            };
            if !(nested.is_some() && flat.is_some()) {
                if let Some(m) = check_topic(&t) {
                    err(path, m);
                }
            }
            t
        };
        let metrics_topic = topic(
            &self.topics.metrics,
            &self.metrics_topic,
            "topics.metrics",
            "metrics_topic",
            DEFAULT_METRICS_TOPIC,
        );
        let logs_topic = topic(
            &self.topics.logs,
            &self.logs_topic,
            "topics.logs",
            "logs_topic",
            DEFAULT_LOGS_TOPIC,
        );
        let traces_topic = topic(
            &self.topics.traces,
            &self.traces_topic,
            "topics.traces",
            "traces_topic",
            DEFAULT_TRACES_TOPIC,
        );

        if self.idempotent && self.required_acks != Acks::All {
            err(
                "required_acks",
                "the idempotent producer needs `all`; set `idempotent: false` to use 1 or 0".into(),
            );
        }
        if self.timeout < Duration::from_millis(1) || self.timeout > Duration::from_secs(3600) {
            err(
                "timeout",
                format!("{:?} is out of range (1ms to 1h)", self.timeout),
            );
        }
        if !(MIN_MAX_MESSAGE_BYTES..=MAX_MAX_MESSAGE_BYTES).contains(&self.max_message_bytes) {
            err(
                "max_message_bytes",
                format!(
                    "{} is out of range ({MIN_MAX_MESSAGE_BYTES} to {MAX_MAX_MESSAGE_BYTES})",
                    self.max_message_bytes
                ),
            );
        }

        let sasl = self.sasl.as_ref().filter(|s| s.enabled);
        if let Some(s) = sasl {
            if !matches!(
                s.mechanism.as_str(),
                "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512"
            ) {
                err(
                    "sasl.mechanism",
                    format!(
                        "{:?} is not supported (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)",
                        s.mechanism
                    ),
                );
            }
            if s.username.is_empty() {
                err("sasl.username", "must not be empty".into());
            }
        }
        let tls = self.tls.as_ref().filter(|t| t.enabled);
        if let Some(t) = tls {
            for (path, file) in [
                ("tls.ca_file", &t.ca_file),
                ("tls.cert_file", &t.cert_file),
                ("tls.key_file", &t.key_file),
            ] {
                if let Some(f) = file {
                    if !f.is_file() {
                        err(path, format!("{} is not a readable file", f.display()));
                    }
                }
            }
            if t.cert_file.is_some() != t.key_file.is_some() {
                err(
                    "tls.key_file",
                    "cert_file and key_file go together (mutual TLS)".into(),
                );
            }
        }

        // The properties, derived keys first so producer_config can override them.
        let mut props: Vec<(String, String, String)> = Vec::new(); // (key, value, config path)
        let mut set = |k: &str, v: String, path: &str| props.push((k.into(), v, path.into()));
        set(
            "bootstrap.servers",
            self.brokers
                .iter()
                .map(|b| b.trim())
                .collect::<Vec<_>>()
                .join(","),
            "brokers",
        );
        set("client.id", self.client_id.clone(), "client_id");
        set(
            "enable.idempotence",
            self.idempotent.to_string(),
            "idempotent",
        );
        set("acks", self.required_acks.as_str().into(), "required_acks");
        set(
            "compression.codec",
            self.compression.as_str().into(),
            "compression",
        );
        set(
            "message.timeout.ms",
            self.timeout.as_millis().max(1).to_string(),
            "timeout",
        );
        set(
            "message.max.bytes",
            self.max_message_bytes.to_string(),
            "max_message_bytes",
        );
        let protocol = match (sasl.is_some(), tls.is_some()) {
            (false, false) => "plaintext",
            (false, true) => "ssl",
            (true, false) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        };
        set("security.protocol", protocol.into(), "tls");
        if let Some(s) = sasl {
            set("sasl.mechanisms", s.mechanism.clone(), "sasl.mechanism");
            set("sasl.username", s.username.clone(), "sasl.username");
            set("sasl.password", s.password.clone(), "sasl.password");
        }
        if let Some(t) = tls {
            let path = |p: &PathBuf| p.display().to_string();
            if let Some(f) = &t.ca_file {
                set("ssl.ca.location", path(f), "tls.ca_file");
            }
            if let Some(f) = &t.cert_file {
                set("ssl.certificate.location", path(f), "tls.cert_file");
            }
            if let Some(f) = &t.key_file {
                set("ssl.key.location", path(f), "tls.key_file");
            }
            if let Some(p) = &t.key_password {
                set("ssl.key.password", p.clone(), "tls.key_password");
            }
            if t.insecure_skip_verify {
                set(
                    "enable.ssl.certificate.verification",
                    "false".into(),
                    "tls.insecure_skip_verify",
                );
                set(
                    "ssl.endpoint.identification.algorithm",
                    "none".into(),
                    "tls.insecure_skip_verify",
                );
            } else {
                set(
                    "ssl.endpoint.identification.algorithm",
                    "https".into(),
                    "tls",
                );
            }
        }
        for (k, v) in &self.producer_config {
            let path = format!("producer_config.{k}");
            if k.trim().is_empty() {
                err(&path, "empty property name".into());
                continue;
            }
            set(k, v.text(), &path);
        }

        // librdkafka's own parser checks names and values one by one.
        for (k, v, path) in &props {
            let mut one = ClientConfig::new();
            one.set(k, v);
            if let Err(e) = one.create_native_config() {
                let msg = match e {
                    rdkafka::error::KafkaError::ClientConfig(_, desc, _, _) => desc,
                    other => other.to_string(),
                };
                err(path, format!("librdkafka refuses {k}={v:?}: {msg}"));
            }
        }
        // What rd_kafka_new would refuse although each property parses.
        let final_value = |key: &str| {
            props
                .iter()
                .rev()
                .find(|(k, _, _)| k == key)
                .map(|(_, v, p)| (v.clone(), p.clone()))
        };
        if let (Some((idem, _)), Some((acks, path))) =
            (final_value("enable.idempotence"), final_value("acks"))
        {
            if idem == "true" && !matches!(acks.as_str(), "all" | "-1") && path != "required_acks" {
                err(&path, "the idempotent producer needs acks=all".to_string());
            }
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        // producer_config may have overridden the two properties export relies on.
        let max_message_bytes = final_value("message.max.bytes")
            .and_then(|(v, _)| v.parse().ok())
            .unwrap_or(self.max_message_bytes);
        let timeout = ["message.timeout.ms", "delivery.timeout.ms"]
            .iter()
            .filter_map(|k| props.iter().rposition(|(key, _, _)| key == k))
            .max()
            .and_then(|i| props[i].1.parse::<u64>().ok())
            .filter(|ms| *ms > 0) // 0 is "forever" to librdkafka; export keeps its bound
            .map(Duration::from_millis)
            .unwrap_or(self.timeout);
        Ok(Settings {
            brokers: self.brokers.join(","),
            metrics_topic,
            logs_topic,
            traces_topic,
            encoding: self.encoding,
            timeout,
            max_message_bytes,
            properties: props.into_iter().map(|(k, v, _)| (k, v)).collect(),
        })
    }
}
