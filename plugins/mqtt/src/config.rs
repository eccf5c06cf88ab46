//! The `mqtt` integration's configuration: the block under `integrations.<name>` of
//! the agent config, handed to the plugin as JSON.
//!
//! Unknown keys are rejected (`deny_unknown_fields`) so a typo fails at load time;
//! type errors carry their field path (the SDK adds it). [`Config::resolve`] adds
//! the checks serde cannot express (the broker URL, topic templates and filters,
//! ranges, TLS files) and reports every problem at once, each with its path, e.g.
//! `subscribe[1].mapping.values[0]`.
//!
//! ```yaml
//! mqtt:
//!   broker: "tcp://mqtt:1883"          # or mqtts://host:8883
//!   client_id: "edge-7-tfo-agent"       # default tfo-agent-<hostname>-<instance>
//!   username: "agent"
//!   password: "${MQTT_PASSWORD}"
//!   topic: "telemetry/{type}/{host}"    # publish (sink); placeholders below
//!   format: json                        # json | influx | otlp
//!   qos: 1
//!   subscribe:                          # ingest (source)
//!     - topic: "sensors/+/climate"
//!       format: json
//!       mapping: { values: [temp, humidity], labels: { room: room } }
//! ```

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;
use tfo_plugin_common::config::duration;

use crate::tls;

/// Topic template used when neither `topic` nor `subscribe` is set, so the seed
/// configuration (`mqtt: {broker: ...}`) publishes like the original agent meant
/// to (`telemetryflow/metrics`, `telemetryflow/logs`, `telemetryflow/traces`).
pub const DEFAULT_TOPIC: &str = "telemetryflow/{type}";

/// Largest packet MQTT 3.1.1 can express (remaining length of 268,435,455 bytes).
pub const MQTT_MAX_PACKET: usize = 268_435_455;

/// Payload encoding, for publishing and for each subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per item (see `encode::json`).
    #[default]
    Json,
    /// InfluxDB line protocol (metrics only).
    Influx,
    /// Sink only: one protobuf OTLP export request per signal of a batch.
    Otlp,
}

/// Configuration of one mqtt instance, as written by the user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `tcp://host:1883` (also `mqtt://`) or `mqtts://host:8883` (also `ssl://`,
    /// `tls://`). The port defaults to 1883 / 8883.
    pub broker: String,
    /// MQTT client identifier. It names the persistent session, so it must be
    /// stable across restarts and unique per broker. Default
    /// `tfo-agent-<hostname>-<instance>`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// User name sent in CONNECT.
    #[serde(default)]
    pub username: Option<String>,
    /// Password sent in CONNECT (requires `username`, as MQTT 3.1.1 does).
    #[serde(default)]
    pub password: Option<String>,
    /// TLS settings; only with an `mqtts://` broker.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// MQTT keep-alive: 0 (off) or 1 s to 65535 s, whole seconds. Default 60 s.
    #[serde(default = "d_keep_alive", deserialize_with = "duration")]
    pub keep_alive: Duration,
    /// Bound on connecting (TCP, TLS, CONNECT/CONNACK). Default 10 s.
    #[serde(default = "d_connect_timeout", deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// How long `export` waits for the broker's acknowledgements. Default 10 s.
    #[serde(default = "d_publish_timeout", deserialize_with = "duration")]
    pub publish_timeout: Duration,
    /// First delay before reconnecting after a failure; doubled on each failure.
    #[serde(default = "d_reconnect_min", deserialize_with = "duration")]
    pub reconnect_min_backoff: Duration,
    /// Longest delay between reconnection attempts.
    #[serde(default = "d_reconnect_max", deserialize_with = "duration")]
    pub reconnect_max_backoff: Duration,
    /// `false` (default): a persistent session, so the broker keeps subscriptions
    /// and queues QoS 1/2 messages while the agent is away.
    #[serde(default)]
    pub clean_session: bool,
    /// Most QoS 1/2 publishes awaiting acknowledgement at once.
    #[serde(default = "d_max_inflight")]
    pub max_inflight: u16,

    /// Sink: topic template. Placeholders: `{type}` (`metrics`, `logs`, `traces`),
    /// `{name}`, `{host}`, `{service}`. When unset, the instance publishes to
    /// [`DEFAULT_TOPIC`] if it has no `subscribe` list, and publishes nothing
    /// otherwise.
    #[serde(default)]
    pub topic: Option<String>,
    /// Sink: payload format.
    #[serde(default)]
    pub format: Format,
    /// Sink: QoS of published messages (0, 1 or 2). Default 1.
    #[serde(default = "d_qos")]
    pub qos: u8,
    /// Sink: set the retain flag on published messages.
    #[serde(default)]
    pub retain: bool,
    /// Sink: a message (topic + payload) larger than this is not published.
    #[serde(default = "d_max_message_bytes")]
    pub max_message_bytes: usize,

    /// Source: topic filters to subscribe to.
    #[serde(default)]
    pub subscribe: Vec<Subscription>,
}

/// TLS settings of an `mqtts://` connection. Verification is on unless
/// `insecure_skip_verify` says otherwise.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM CA certificates trusted in addition to the system store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain (mutual TLS); needs `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert` (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Accept any broker certificate and name. Test systems only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// One subscription of the source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// MQTT topic filter (`+` and `#` wildcards, `$share/<group>/...`).
    pub topic: String,
    /// Payload format of the messages on this filter.
    #[serde(default)]
    pub format: Format,
    /// Subscription QoS (0, 1 or 2). Default 1: messages published while the agent
    /// is away are kept by the broker for its persistent session.
    #[serde(default = "d_qos")]
    pub qos: u8,
    /// JSON only: which fields hold the value(s), name, timestamp and labels.
    #[serde(default)]
    pub mapping: Option<Mapping>,
}

/// How a JSON message becomes metrics when it is not in the default shapes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Dotted paths of the fields holding values (numbers, booleans or numeric
    /// strings); one metric each.
    pub values: Vec<String>,
    /// Metric name: with one value, the name; with several, a prefix
    /// (`<name>.<path>`). Default: the value's path.
    #[serde(default)]
    pub name: Option<String>,
    /// Instead of `name`: the path of a string field holding the name (or prefix).
    #[serde(default)]
    pub name_field: Option<String>,
    /// Path of the timestamp: a number in `timestamp_unit` since the Unix epoch, or
    /// an RFC 3339 string. Default: the time the message arrived.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Unit of numeric timestamps: `s`, `ms` (default), `us` or `ns`.
    #[serde(default)]
    pub timestamp_unit: TimeUnit,
    /// Label name -> path of the field holding its value.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `gauge` (default) or `counter` (a monotonic cumulative sum).
    #[serde(default)]
    pub kind: ValueKind,
}

/// Unit of a numeric timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    /// Seconds (may have a fraction).
    S,
    /// Milliseconds.
    #[default]
    Ms,
    /// Microseconds.
    Us,
    /// Nanoseconds.
    Ns,
}

/// Instrument of mapped values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    /// Last-value measurement.
    #[default]
    Gauge,
    /// Monotonic cumulative sum.
    Counter,
}

fn d_keep_alive() -> Duration {
    Duration::from_secs(60)
}
fn d_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn d_publish_timeout() -> Duration {
    Duration::from_secs(10)
}
fn d_reconnect_min() -> Duration {
    Duration::from_millis(500)
}
fn d_reconnect_max() -> Duration {
    Duration::from_secs(30)
}
fn d_max_inflight() -> u16 {
    100
}
fn d_qos() -> u8 {
    1
}
fn d_max_message_bytes() -> usize {
    256 * 1024
}

/// Where the broker is, parsed from `broker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    /// Host name or IP address (IPv6 in brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS (`mqtts://`) or plain TCP.
    pub tls: bool,
}

impl std::fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "tcp" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// Parses `tcp://host:1883`, `mqtt://host`, `mqtts://host:8883`, `ssl://host`...
pub fn parse_broker(url: &str) -> Result<BrokerAddr, String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        format!("{url:?} is not a broker URL (expected tcp://host:1883 or mqtts://host:8883)")
    })?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "tcp" | "mqtt" => false,
        "mqtts" | "ssl" | "tls" => true,
        other => {
            return Err(format!(
                "unsupported scheme {other:?} (use tcp://, mqtt://, mqtts:// or ssl://)"
            ))
        }
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        return Err("credentials do not belong in the URL; use `username` and `password`".into());
    }
    if rest.contains('/') || rest.contains('?') || rest.contains('#') {
        return Err(format!(
            "{url:?} has a path or query; only scheme://host:port is used"
        ));
    }
    let default_port = if tls { 8883 } else { 1883 };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("unclosed '[' in {url:?}"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("unexpected {p:?} after the IPv6 address"))?,
            ),
        };
        (format!("[{addr}]"), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (rest.to_string(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("{url:?} has no host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("invalid port {p:?}")),
            Ok(n) => n,
        },
    };
    if tls && host.starts_with('[') {
        return Err(
            "an IPv6 address literal cannot be used with TLS (the certificate name check needs a host name)"
                .into(),
        );
    }
    Ok(BrokerAddr { host, port, tls })
}

/// One piece of a topic template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicPart {
    /// Literal text.
    Lit(String),
    /// `{type}`: `metrics`, `logs` or `traces`.
    Type,
    /// `{name}`: metric name, span name, or the log's severity text.
    Name,
    /// `{host}`: resource `host.name`.
    Host,
    /// `{service}`: resource `service.name`.
    Service,
}

/// A parsed `topic` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    /// The pieces, in order.
    pub parts: Vec<TopicPart>,
}

impl TopicTemplate {
    /// Parses and checks a template: known placeholders only, no wildcards, not a
    /// `$` (broker-reserved) topic.
    pub fn parse(s: &str) -> Result<TopicTemplate, String> {
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.starts_with('$') {
            return Err("topics starting with '$' are reserved for the broker".into());
        }
        if s.len() > 65535 {
            return Err("longer than the 65535 bytes MQTT allows".into());
        }
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            match c {
                '{' => {
                    let end = rest
                        .find('}')
                        .ok_or_else(|| format!("unclosed '{{' in {s:?}"))?;
                    let part = match &rest[1..end] {
                        "type" => TopicPart::Type,
                        "name" => TopicPart::Name,
                        "host" => TopicPart::Host,
                        "service" => TopicPart::Service,
                        other => {
                            return Err(format!(
                                "unknown placeholder {{{other}}} (use {{type}}, {{name}}, {{host}} or {{service}})"
                            ))
                        }
                    };
                    if !lit.is_empty() {
                        parts.push(TopicPart::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(part);
                    rest = &rest[end + 1..];
                }
                '}' => return Err(format!("unmatched '}}' in {s:?}")),
                '+' | '#' => {
                    return Err(format!(
                        "wildcard {c:?} is not allowed in a topic to publish to"
                    ))
                }
                '\0' => return Err("NUL is not allowed in a topic".into()),
                _ => {
                    lit.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        if !lit.is_empty() {
            parts.push(TopicPart::Lit(lit));
        }
        Ok(TopicTemplate { parts })
    }
}

/// Checks an MQTT topic filter (MQTT 3.1.1 §4.7): `#` only as the last level,
/// `+` only as a whole level, no NUL, at most 65535 bytes.
pub fn check_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("must not be empty".into());
    }
    if filter.len() > 65535 {
        return Err("longer than the 65535 bytes MQTT allows".into());
    }
    if filter.contains('\0') {
        return Err("NUL is not allowed in a topic filter".into());
    }
    let body = match filter.strip_prefix("$share/") {
        Some(rest) => {
            let (group, f) = rest
                .split_once('/')
                .ok_or("a shared subscription is $share/<group>/<filter>")?;
            if group.is_empty() || group.contains(['+', '#']) {
                return Err("invalid share group name".into());
            }
            if f.is_empty() {
                return Err("a shared subscription is $share/<group>/<filter>".into());
            }
            f
        }
        None => filter,
    };
    let levels: Vec<&str> = body.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err("'#' must be the whole last level".into());
        }
        if level.contains('+') && *level != "+" {
            return Err("'+' must be a whole level".into());
        }
    }
    Ok(())
}

/// True when `topic` matches `filter` (MQTT 3.1.1 §4.7; `$share/<group>/` is
/// stripped; a filter starting with a wildcard does not match `$` topics).
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    let filter = match filter.strip_prefix("$share/") {
        Some(rest) => rest.split_once('/').map(|(_, f)| f).unwrap_or(""),
        None => filter,
    };
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut t = topic.split('/');
    for f in filter.split('/') {
        if f == "#" {
            return true;
        }
        match t.next() {
            Some(level) if f == "+" || f == level => {}
            _ => return false,
        }
    }
    t.next().is_none()
}

/// True when some topic rendered from `template` could match `filter`: the
/// instance would then ingest its own messages and, with the host's default routing
/// (every source feeds every sink, this instance included), publish them again.
pub fn template_may_match(template: &TopicTemplate, filter: &str) -> bool {
    #[derive(Clone, Copy)]
    enum P<'a> {
        Lit(&'a str),
        Any,
    }
    // The template's levels; a placeholder stays within one level and is never empty.
    let mut levels: Vec<Vec<P>> = vec![Vec::new()];
    for part in &template.parts {
        match part {
            TopicPart::Lit(s) => {
                let mut pieces = s.split('/');
                if let Some(first) = pieces.next() {
                    levels.last_mut().unwrap().push(P::Lit(first));
                }
                for piece in pieces {
                    levels.push(vec![P::Lit(piece)]);
                }
            }
            _ => levels.last_mut().unwrap().push(P::Any),
        }
    }
    fn glob(parts: &[P], text: &str) -> bool {
        match parts.split_first() {
            None => text.is_empty(),
            Some((P::Lit(l), rest)) => text.strip_prefix(l).is_some_and(|t| glob(rest, t)),
            Some((P::Any, rest)) => (1..=text.len())
                .filter(|i| text.is_char_boundary(*i))
                .any(|i| glob(rest, &text[i..])),
        }
    }
    fn overlap(t: &[Vec<P>], f: &[&str]) -> bool {
        match (t.split_first(), f.split_first()) {
            (_, Some((&"#", _))) => true,
            (None, None) => true,
            (Some((level, t_rest)), Some((fl, f_rest))) => {
                (*fl == "+" || glob(level, fl)) && overlap(t_rest, f_rest)
            }
            _ => false,
        }
    }
    let filter = match filter.strip_prefix("$share/") {
        Some(rest) => rest.split_once('/').map(|(_, f)| f).unwrap_or(""),
        None => filter,
    };
    let f: Vec<&str> = filter.split('/').collect();
    overlap(&levels, &f)
}

/// A validated configuration, ready for the client.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Parsed broker address.
    pub broker: BrokerAddr,
    /// The `broker` string as written (for messages).
    pub broker_url: String,
    /// Client identifier.
    pub client_id: String,
    /// User name and password.
    pub credentials: Option<(String, String)>,
    /// rustls client configuration for `mqtts://`.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Keep-alive (whole seconds, or zero).
    pub keep_alive: Duration,
    /// Connect timeout (whole seconds, at least 1).
    pub connect_timeout: Duration,
    /// Acknowledgement wait of `export`.
    pub publish_timeout: Duration,
    /// Reconnection back-off bounds.
    pub reconnect_min: Duration,
    /// Longest reconnection delay.
    pub reconnect_max: Duration,
    /// Clean (true) or persistent (false) session.
    pub clean_session: bool,
    /// Most unacknowledged QoS 1/2 publishes.
    pub max_inflight: u16,
    /// Sink settings; `None` when the instance does not publish.
    pub publish: Option<PublishSettings>,
    /// Source subscriptions.
    pub subscribe: Vec<Subscription>,
}

/// What the sink publishes and how.
#[derive(Debug, Clone)]
pub struct PublishSettings {
    /// The topic template.
    pub topic: TopicTemplate,
    /// Payload format.
    pub format: Format,
    /// QoS (0, 1, 2).
    pub qos: u8,
    /// Retain flag.
    pub retain: bool,
    /// Size limit of one message.
    pub max_message_bytes: usize,
}

impl Config {
    /// Checks everything serde could not and builds the [`Settings`]; every problem
    /// is reported, each with its field path. `instance` and `hostname` make the
    /// default client id.
    pub fn resolve(self, instance: &str, hostname: &str) -> Result<Settings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut err = |path: &str, msg: String| errors.push(ConfigError::new(path, msg));

        let broker = match parse_broker(&self.broker) {
            Ok(b) => Some(b),
            Err(e) => {
                err("broker", e);
                None
            }
        };

        let client_id = self
            .client_id
            .clone()
            .unwrap_or_else(|| format!("tfo-agent-{hostname}-{instance}"));
        if client_id.is_empty() {
            err(
                "client_id",
                "must not be empty (it names the persistent session)".into(),
            );
        } else if client_id.len() > 65535 || client_id.contains('\0') {
            err(
                "client_id",
                "must be at most 65535 bytes without NUL".into(),
            );
        }

        let credentials = match (&self.username, &self.password) {
            (Some(u), p) => Some((u.clone(), p.clone().unwrap_or_default())),
            (None, Some(_)) => {
                err(
                    "password",
                    "needs `username` (MQTT 3.1.1 sends a password only with a user name)".into(),
                );
                None
            }
            (None, None) => None,
        };

        let mut tls_config = None;
        match (&broker, &self.tls) {
            (Some(b), Some(_)) if !b.tls => err(
                "tls",
                "TLS settings need an mqtts:// (or ssl://) broker URL".into(),
            ),
            (Some(b), t) if b.tls => {
                let t = t.clone().unwrap_or_default();
                match tls::client_config(&t) {
                    Ok(c) => tls_config = Some(c),
                    Err((path, msg)) => err(&path, msg),
                }
            }
            _ => {}
        }

        if !self.keep_alive.is_zero()
            && (self.keep_alive < Duration::from_secs(1) || self.keep_alive.as_secs() > 65535)
        {
            err(
                "keep_alive",
                "must be 0 (off) or between 1s and 65535s".into(),
            );
        }
        if self.connect_timeout < Duration::from_secs(1) {
            err("connect_timeout", "must be at least 1s".into());
        }
        if self.publish_timeout.is_zero() {
            err("publish_timeout", "must be greater than 0".into());
        }
        if self.reconnect_min_backoff.is_zero() {
            err("reconnect_min_backoff", "must be greater than 0".into());
        }
        if self.reconnect_max_backoff < self.reconnect_min_backoff {
            err(
                "reconnect_max_backoff",
                "must not be smaller than reconnect_min_backoff".into(),
            );
        }
        if self.max_inflight == 0 {
            err("max_inflight", "must be at least 1".into());
        }
        if self.qos > 2 {
            err(
                "qos",
                format!("{} is not a QoS level (0, 1 or 2)", self.qos),
            );
        }
        if self.max_message_bytes == 0 || self.max_message_bytes > MQTT_MAX_PACKET {
            err(
                "max_message_bytes",
                format!("must be between 1 and {MQTT_MAX_PACKET}"),
            );
        }

        let template = match (&self.topic, self.subscribe.is_empty()) {
            (Some(t), _) => match TopicTemplate::parse(t) {
                Ok(t) => Some(t),
                Err(e) => {
                    err("topic", e);
                    None
                }
            },
            (None, true) => TopicTemplate::parse(DEFAULT_TOPIC).ok(),
            (None, false) => None,
        };

        for (i, s) in self.subscribe.iter().enumerate() {
            let p = format!("subscribe[{i}]");
            if let Err(e) = check_filter(&s.topic) {
                err(&format!("{p}.topic"), e);
            }
            if s.qos > 2 {
                err(
                    &format!("{p}.qos"),
                    format!("{} is not a QoS level (0, 1 or 2)", s.qos),
                );
            }
            if s.format == Format::Otlp {
                // Ingesting OTLP would need the otlp receiver's OTLP -> model
                // conversion, which lives in the otlp plugin; the source ingests
                // metrics from JSON and line protocol only.
                err(
                    &format!("{p}.format"),
                    "otlp is a publishing format only; subscriptions accept json or influx \
                     (receive OTLP with the otlp integration)"
                        .into(),
                );
            }
            if let Some(m) = &s.mapping {
                if s.format != Format::Json {
                    err(
                        &format!("{p}.mapping"),
                        "a mapping applies to JSON payloads only".into(),
                    );
                }
                check_mapping(m, &format!("{p}.mapping"), &mut err);
            }
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        let Some(broker) = broker else {
            return Err(vec![ConfigError::new("broker", "invalid")]);
        };
        let publish = template.map(|topic| PublishSettings {
            topic,
            format: self.format,
            qos: self.qos,
            retain: self.retain,
            max_message_bytes: self.max_message_bytes,
        });
        Ok(Settings {
            broker,
            broker_url: self.broker,
            client_id,
            credentials,
            tls: tls_config,
            keep_alive: Duration::from_secs(self.keep_alive.as_secs()),
            connect_timeout: Duration::from_secs(self.connect_timeout.as_secs().max(1)),
            publish_timeout: self.publish_timeout,
            reconnect_min: self.reconnect_min_backoff,
            reconnect_max: self.reconnect_max_backoff,
            clean_session: self.clean_session,
            max_inflight: self.max_inflight,
            publish,
            subscribe: self.subscribe,
        })
    }
}

fn check_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("must not be empty");
    }
    if path.split('.').any(str::is_empty) {
        return Err("a dotted path must not have empty parts");
    }
    Ok(())
}

fn check_mapping(m: &Mapping, p: &str, err: &mut impl FnMut(&str, String)) {
    if m.values.is_empty() {
        err(&format!("{p}.values"), "list at least one field".into());
    }
    for (i, v) in m.values.iter().enumerate() {
        if let Err(e) = check_path(v) {
            err(&format!("{p}.values[{i}]"), e.into());
        }
    }
    if m.name.is_some() && m.name_field.is_some() {
        err(
            &format!("{p}.name_field"),
            "set either `name` or `name_field`, not both".into(),
        );
    }
    if let Some(n) = &m.name {
        if n.is_empty() {
            err(&format!("{p}.name"), "must not be empty".into());
        }
    }
    if let Some(f) = &m.name_field {
        if let Err(e) = check_path(f) {
            err(&format!("{p}.name_field"), e.into());
        }
    }
    if let Some(t) = &m.timestamp {
        if let Err(e) = check_path(t) {
            err(&format!("{p}.timestamp"), e.into());
        }
    }
    for (label, path) in &m.labels {
        if label.is_empty() {
            err(
                &format!("{p}.labels"),
                "a label name must not be empty".into(),
            );
        }
        if let Err(e) = check_path(path) {
            err(&format!("{p}.labels.{label}"), e.into());
        }
    }
}

/// The host name used in the default client id: `/proc/sys/kernel/hostname`, else
/// `$HOSTNAME`, else `localhost`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, serde_json::Error> {
        serde_json::from_str(json)
    }

    fn resolve(json: &str) -> Result<Settings, Vec<ConfigError>> {
        parse(json).unwrap().resolve("mqtt", "h1")
    }

    fn paths(errors: &[ConfigError]) -> Vec<&str> {
        errors.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn seed_config_publishes_to_the_default_topics() {
        let s = resolve(r#"{"broker": "tcp://mqtt:1883"}"#).unwrap();
        assert_eq!(
            s.broker,
            BrokerAddr {
                host: "mqtt".into(),
                port: 1883,
                tls: false
            }
        );
        assert_eq!(s.client_id, "tfo-agent-h1-mqtt");
        assert!(!s.clean_session);
        assert_eq!(s.keep_alive, Duration::from_secs(60));
        let p = s.publish.unwrap();
        assert_eq!(
            p.topic,
            TopicTemplate::parse("telemetryflow/{type}").unwrap()
        );
        assert_eq!((p.format, p.qos, p.retain), (Format::Json, 1, false));
        assert!(s.tls.is_none());
    }

    #[test]
    fn subscribe_only_instances_do_not_publish() {
        let s = resolve(r#"{"broker": "tcp://b", "subscribe": [{"topic": "a/#"}]}"#).unwrap();
        assert!(s.publish.is_none());
        assert_eq!(s.subscribe[0].qos, 1);
        assert_eq!(s.subscribe[0].format, Format::Json);
    }

    #[test]
    fn broker_urls() {
        let b = |s| parse_broker(s);
        assert_eq!(
            b("tcp://h:1").unwrap(),
            BrokerAddr {
                host: "h".into(),
                port: 1,
                tls: false
            }
        );
        assert_eq!(b("mqtt://h").unwrap().port, 1883);
        assert_eq!(
            b("mqtts://h").unwrap(),
            BrokerAddr {
                host: "h".into(),
                port: 8883,
                tls: true
            }
        );
        assert!(b("ssl://h:8884/").unwrap().tls);
        assert_eq!(b("tcp://[::1]:1884").unwrap().host, "[::1]");
        assert!(b("h:1883").unwrap_err().contains("not a broker URL"));
        assert!(b("http://h").unwrap_err().contains("unsupported scheme"));
        assert!(b("tcp://u:p@h").unwrap_err().contains("username"));
        assert!(b("tcp://h:0").unwrap_err().contains("invalid port"));
        assert!(b("tcp://h:99999").unwrap_err().contains("invalid port"));
        assert!(b("tcp://h/x").unwrap_err().contains("path"));
        assert!(b("tcp://:1883").unwrap_err().contains("no host"));
        assert!(b("mqtts://[::1]").unwrap_err().contains("IPv6"));
    }

    #[test]
    fn templates() {
        let t = TopicTemplate::parse("a/{type}/{host}-{service}/{name}").unwrap();
        assert_eq!(
            t.parts,
            vec![
                TopicPart::Lit("a/".into()),
                TopicPart::Type,
                TopicPart::Lit("/".into()),
                TopicPart::Host,
                TopicPart::Lit("-".into()),
                TopicPart::Service,
                TopicPart::Lit("/".into()),
                TopicPart::Name,
            ]
        );
        assert!(TopicTemplate::parse("a/{nme}")
            .unwrap_err()
            .contains("unknown placeholder {nme}"));
        assert!(TopicTemplate::parse("a/{type")
            .unwrap_err()
            .contains("unclosed"));
        assert!(TopicTemplate::parse("a/}")
            .unwrap_err()
            .contains("unmatched"));
        assert!(TopicTemplate::parse("a/+/b")
            .unwrap_err()
            .contains("wildcard"));
        assert!(TopicTemplate::parse("a/#")
            .unwrap_err()
            .contains("wildcard"));
        assert!(TopicTemplate::parse("$SYS/x")
            .unwrap_err()
            .contains("reserved"));
        assert!(TopicTemplate::parse("").is_err());
    }

    #[test]
    fn filters() {
        for ok in [
            "a",
            "a/+/c",
            "a/#",
            "#",
            "+",
            "+/+",
            "$share/g/a/#",
            "$SYS/#",
            "/a",
        ] {
            assert!(check_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/#/c", "a#", "a/b+", "$share/g", "$share//a", "a\0b"] {
            assert!(check_filter(bad).is_err(), "{bad:?}");
        }
        assert!(topic_matches("a/+/c", "a/b/c"));
        assert!(!topic_matches("a/+/c", "a/b/d"));
        assert!(topic_matches("a/#", "a"));
        assert!(topic_matches("a/#", "a/b/c"));
        assert!(!topic_matches("a/b", "a/b/c"));
        assert!(!topic_matches("a/b/c", "a/b"));
        assert!(topic_matches("#", "x/y"));
        assert!(!topic_matches("#", "$SYS/x"));
        assert!(topic_matches("$SYS/#", "$SYS/x"));
        assert!(topic_matches("$share/g/s/+", "s/1"));
        assert!(topic_matches("+/+", "/a"));
    }

    #[test]
    fn self_feeding_topics_are_detected() {
        let t = TopicTemplate::parse("tfo/{type}/{host}-x/{name}").unwrap();
        for f in [
            "#",
            "tfo/#",
            "tfo/+/+/+",
            "tfo/metrics/web-x/#",
            "+/logs/a-x/cpu",
            "$share/g/tfo/#",
        ] {
            assert!(template_may_match(&t, f), "{f}");
        }
        for f in [
            "tfo",
            "tfo/+/+",
            "tfo/+/web/+",
            "tfo/+/+/+/+",
            "other/#",
            "tfo/+/-x/+",
        ] {
            assert!(!template_may_match(&t, f), "{f}");
        }
        let plain = TopicTemplate::parse("a/b").unwrap();
        assert!(template_may_match(&plain, "a/b"));
        assert!(template_may_match(&plain, "a/#"));
        assert!(!template_may_match(&plain, "a/b/c"));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = parse(r#"{"broker": "tcp://b", "qos_level": 1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `qos_level`"), "{e}");
        let e = parse(r#"{"broker": "tcp://b", "subscribe": [{"topic": "a", "fmt": "json"}]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `fmt`"), "{e}");
        let e = parse(r#"{"broker": "tcp://b", "format": "xml"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `xml`"), "{e}");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let e = resolve(
            r#"{"broker": "tcp://b", "client_id": "", "password": "p", "tls": {},
                "keep_alive": "500ms", "connect_timeout": 0, "publish_timeout": 0,
                "reconnect_min_backoff": "2s", "reconnect_max_backoff": "1s",
                "max_inflight": 0, "qos": 3, "max_message_bytes": 0, "topic": "a/{x}",
                "subscribe": [
                    {"topic": "a/#/b", "qos": 5},
                    {"topic": "ok", "format": "influx", "mapping": {"values": []}},
                    {"topic": "ok", "mapping": {"values": ["a..b"], "name": "n", "name_field": "f",
                     "timestamp": "", "labels": {"l": ""}}}
                ]}"#,
        )
        .unwrap_err();
        assert_eq!(
            paths(&e),
            [
                "client_id",
                "password",
                "tls",
                "keep_alive",
                "connect_timeout",
                "publish_timeout",
                "reconnect_max_backoff",
                "max_inflight",
                "qos",
                "max_message_bytes",
                "topic",
                "subscribe[0].topic",
                "subscribe[0].qos",
                "subscribe[1].mapping",
                "subscribe[1].mapping.values",
                "subscribe[2].mapping.values[0]",
                "subscribe[2].mapping.name_field",
                "subscribe[2].mapping.timestamp",
                "subscribe[2].mapping.labels.l",
            ]
        );
    }

    #[test]
    fn otlp_is_a_publishing_format_only() {
        let s = resolve(r#"{"broker": "tcp://b", "topic": "t/{type}", "format": "otlp"}"#).unwrap();
        assert_eq!(s.publish.unwrap().format, Format::Otlp);
        let e = resolve(
            r#"{"broker": "tcp://b", "subscribe": [{"topic": "a"}, {"topic": "b", "format": "otlp"}]}"#,
        )
        .unwrap_err();
        assert_eq!(paths(&e), ["subscribe[1].format"]);
        assert!(e[0].message.contains("publishing format only"), "{e:?}");
    }

    #[test]
    fn bad_broker_is_reported_with_its_path() {
        let e = resolve(r#"{"broker": "localhost"}"#).unwrap_err();
        assert_eq!(paths(&e), ["broker"]);
    }

    #[test]
    fn tls_files_are_checked_at_load() {
        let e = resolve(r#"{"broker": "mqtts://b", "tls": {"ca_file": "/nonexistent/ca.pem"}}"#)
            .unwrap_err();
        assert_eq!(paths(&e), ["tls.ca_file"]);
        assert!(e[0].message.contains("/nonexistent/ca.pem"), "{e:?}");
        let e = resolve(r#"{"broker": "mqtts://b", "tls": {"client_cert": "/nonexistent/c.pem"}}"#)
            .unwrap_err();
        assert_eq!(paths(&e), ["tls.client_key"]);
        let s = resolve(r#"{"broker": "mqtts://b"}"#).unwrap();
        assert!(
            s.tls.is_some(),
            "mqtts:// without a tls block verifies against the system CAs"
        );
    }

    #[test]
    fn keep_alive_zero_means_off() {
        let s = resolve(r#"{"broker": "tcp://b", "keep_alive": 0}"#).unwrap();
        assert_eq!(s.keep_alive, Duration::ZERO);
        let s = resolve(r#"{"broker": "tcp://b", "keep_alive": "1.7s"}"#).unwrap();
        assert_eq!(s.keep_alive, Duration::from_secs(1));
    }
}
