//! The agent's data model -> Datadog's wire formats. Pure functions, golden-tested
//! against the examples of Datadog's API reference.
//!
//! # Metrics: "Submit metrics", `POST /api/v2/series`
//! <https://docs.datadoghq.com/api/latest/metrics/#submit-metrics>. A body is
//! `{"series":[...]}`; each series has `metric`, `type` (0 unspecified, 1 count,
//! 2 rate, 3 gauge), `points` (`{"timestamp": <unix seconds>, "value": <f64>}`),
//! `resources` (`[{"name": <host>, "type": "host"}]`: "Host name is one of the
//! resources in the Resources field"), `tags` (`key:value` strings), `unit` and
//! `interval` (seconds, for count and rate). The v1 API (`api_version: v1`, for
//! receivers that only know it) has the same series with `type` as a string,
//! `points` as `[[<unix seconds>, <value>]]` and a `host` field
//! (<https://docs.datadoghq.com/api/latest/metrics/?tab=v1#submit-metrics>).
//!
//! Mapping (one [`Series`] per metric name, type and tag set; its points are the
//! data points that share them):
//! - gauge -> gauge (3);
//! - sum with delta temporality -> count (1) with `interval` = the point's
//!   interval in seconds (when it has a start time); cumulative (or unspecified)
//!   sums -> gauge (3) of the running total, since Datadog counts are deltas and
//!   turning totals into deltas needs state across batches, which this stateless
//!   encoder does not keep;
//! - histogram -> `<name>.count` and `<name>.sum` (count for delta, gauge for
//!   cumulative) plus `<name>.min` / `<name>.max` gauges when known; bucket counts
//!   are not sent (the series API has no bucket type; distributions are a
//!   different API);
//! - summary -> `<name>.count`, `<name>.sum` and `<name>.quantile` gauges tagged
//!   `quantile:<q>`;
//! - a value that does not fit the metric's kind, or is NaN / infinite (JSON
//!   cannot carry it), is skipped and counted.
//!
//! Tags: `service:`, `env:`, `version:` (from the config, else the resource's
//! `service.name`, `deployment.environment`, `service.version`), the configured
//! `tags`, the other resource attributes, then the point's attributes, each as
//! `key:value`. The host is the configured `hostname`, else the resource's
//! `host.name`.
//!
//! # Logs: "Send logs", `POST /api/v2/logs`
//! <https://docs.datadoghq.com/api/latest/logs/#send-logs>: a JSON array of
//! objects with `ddsource`, `ddtags` (comma-separated), `hostname`, `message`,
//! `service`, plus any attributes. Each record also gets `status` (from its
//! severity), `timestamp` (Unix milliseconds) and, when correlated,
//! `dd.trace_id` / `dd.span_id` (the decimal form of the low 64 bits, which is
//! how Datadog correlates OpenTelemetry ids). Record attributes become top-level
//! attributes; the reserved fields above win over an attribute of the same name.
//! A message over 1 MB (the documented limit of one log) is cut at 1 MB here, as
//! Datadog would truncate it anyway, so the entry always fits in a request.

use std::collections::HashMap;

use serde_json::{json, Map, Value};
use tfo_plugin_api::{AnyValue, Batch, KeyValue, LogRecord, MetricKind, PointValue, Temporality};

use tfo_plugin_common::chunk::Entry;

use crate::config::{ApiVersion, Config};

/// Longest log message sent (Datadog: "Maximum size for a single log: 1MB").
pub const MAX_MESSAGE_BYTES: usize = 1_000_000;

/// What every series and log of a batch shares: host, service, tags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tagging {
    /// Host name (`resources` of a series, `hostname` of a log).
    pub hostname: Option<String>,
    /// Service (`service:` tag of series, `service` of logs).
    pub service: Option<String>,
    /// Tags other than `service:`, in order.
    pub tags: Vec<String>,
    /// `ddsource` of logs.
    pub source: String,
}

/// Builds the shared tagging of a batch from the config and the batch's resource.
pub fn tagging(batch: &Batch, cfg: &Config) -> Tagging {
    let mut hostname = cfg.hostname.clone();
    let mut service = cfg.service_name.clone();
    let mut env = cfg.environment.clone();
    let mut version = cfg.version.clone();
    let mut others = Vec::new();
    for kv in batch.resource.attributes.iter() {
        let v = value_text(&kv.value);
        match kv.key.as_str() {
            "host.name" => {
                hostname.get_or_insert(v);
            }
            "service.name" => {
                service.get_or_insert(v);
            }
            "deployment.environment" | "deployment.environment.name" => {
                env.get_or_insert(v);
            }
            "service.version" => {
                version.get_or_insert(v);
            }
            k => others.push(format!("{k}:{v}")),
        }
    }
    let mut tags = Vec::new();
    if let Some(e) = env {
        tags.push(format!("env:{e}"));
    }
    if let Some(v) = version {
        tags.push(format!("version:{v}"));
    }
    tags.extend(cfg.tags.iter().map(|t| t.trim().to_string()));
    tags.extend(others);
    Tagging {
        hostname: hostname.filter(|h| !h.is_empty()),
        service: service.filter(|s| !s.is_empty()),
        tags,
        source: cfg.source.clone(),
    }
}

/// A value as tag or message text.
pub fn value_text(v: &AnyValue) -> String {
    match v {
        AnyValue::Str(s) => s.to_string(),
        AnyValue::Bool(b) => b.to_string(),
        AnyValue::Int(i) => i.to_string(),
        AnyValue::Double(d) => d.to_string(),
        AnyValue::Bytes(b) => tfo_plugin_common::auth::base64(b),
    }
}

fn value_json(v: &AnyValue) -> Value {
    match v {
        AnyValue::Str(s) => Value::String(s.to_string()),
        AnyValue::Bool(b) => Value::Bool(*b),
        AnyValue::Int(i) => json!(i),
        AnyValue::Double(d) if d.is_finite() => json!(d),
        AnyValue::Double(d) => Value::String(d.to_string()),
        AnyValue::Bytes(b) => Value::String(tfo_plugin_common::auth::base64(b)),
    }
}

/// Datadog metric types (the v2 `type` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeriesType {
    /// 0.
    Unspecified = 0,
    /// 1: a delta count over `interval`.
    Count = 1,
    /// 2: a per-second rate over `interval`.
    Rate = 2,
    /// 3: a last value.
    Gauge = 3,
}

impl SeriesType {
    fn v1_name(self) -> Option<&'static str> {
        match self {
            SeriesType::Unspecified => None,
            SeriesType::Count => Some("count"),
            SeriesType::Rate => Some("rate"),
            SeriesType::Gauge => Some("gauge"),
        }
    }
}

/// One Datadog series: a metric name, type and tag set, with its points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Metric name.
    pub metric: String,
    /// Type.
    pub kind: SeriesType,
    /// `(unix seconds, value)`.
    pub points: Vec<(i64, f64)>,
    /// Host resource.
    pub host: Option<String>,
    /// `key:value` tags.
    pub tags: Vec<String>,
    /// Datadog unit name, when the OpenTelemetry unit has one.
    pub unit: Option<String>,
    /// Seconds, for counts.
    pub interval: Option<i64>,
    /// Agent data points this series stands for (0 for the companion series of
    /// a histogram or summary point).
    pub items: u64,
}

impl Series {
    /// The v2 JSON of this series.
    pub fn v2(&self) -> Value {
        let mut m = Map::new();
        m.insert("metric".into(), json!(self.metric));
        m.insert("type".into(), json!(self.kind as i32));
        m.insert(
            "points".into(),
            Value::Array(
                self.points
                    .iter()
                    .map(|(t, v)| json!({"timestamp": t, "value": v}))
                    .collect(),
            ),
        );
        if let Some(h) = &self.host {
            m.insert("resources".into(), json!([{"name": h, "type": "host"}]));
        }
        if !self.tags.is_empty() {
            m.insert("tags".into(), json!(self.tags));
        }
        if let Some(u) = &self.unit {
            m.insert("unit".into(), json!(u));
        }
        if let Some(i) = self.interval {
            m.insert("interval".into(), json!(i));
        }
        Value::Object(m)
    }

    /// The v1 JSON of this series.
    pub fn v1(&self) -> Value {
        let mut m = Map::new();
        m.insert("metric".into(), json!(self.metric));
        if let Some(t) = self.kind.v1_name() {
            m.insert("type".into(), json!(t));
        }
        m.insert(
            "points".into(),
            Value::Array(self.points.iter().map(|(t, v)| json!([t, v])).collect()),
        );
        if let Some(h) = &self.host {
            m.insert("host".into(), json!(h));
        }
        if !self.tags.is_empty() {
            m.insert("tags".into(), json!(self.tags));
        }
        if let Some(i) = self.interval {
            m.insert("interval".into(), json!(i));
        }
        Value::Object(m)
    }
}

/// OpenTelemetry (UCUM) unit -> Datadog unit name, for the common ones; others
/// are left out rather than guessed.
pub fn unit(ucum: &str) -> Option<&'static str> {
    Some(match ucum {
        "By" => "byte",
        "KiBy" => "kibibyte",
        "MiBy" => "mebibyte",
        "GiBy" => "gibibyte",
        "bit" => "bit",
        "s" => "second",
        "ms" => "millisecond",
        "us" => "microsecond",
        "ns" => "nanosecond",
        "min" => "minute",
        "h" => "hour",
        "%" => "percent",
        "Hz" => "hertz",
        _ => return None,
    })
}

struct SeriesSet {
    series: Vec<Series>,
    index: HashMap<String, usize>,
}

impl SeriesSet {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        t: &Tagging,
        metric: String,
        kind: SeriesType,
        interval: Option<i64>,
        unit: Option<&str>,
        tags: &[String],
        point: (i64, f64),
        items: u64,
    ) {
        let key = format!(
            "{metric}\u{0}{}\u{0}{interval:?}\u{0}{unit:?}\u{0}{}",
            kind as i32,
            tags.join("\u{0}")
        );
        let i = *self.index.entry(key).or_insert_with(|| {
            self.series.push(Series {
                metric,
                kind,
                points: Vec::new(),
                host: t.hostname.clone(),
                tags: tags.to_vec(),
                unit: unit.map(str::to_string),
                interval,
                items: 0,
            });
            self.series.len() - 1
        });
        self.series[i].points.push(point);
        self.series[i].items += items;
    }
}

/// The series of a batch and the number of data points skipped (value not
/// fitting the metric's kind, or not finite). `now_secs` stands in for a point
/// without a timestamp.
pub fn series(batch: &Batch, t: &Tagging, now_secs: i64) -> (Vec<Series>, u64) {
    let mut set = SeriesSet {
        series: Vec::new(),
        index: HashMap::new(),
    };
    let mut skipped = 0u64;
    let mut base = Vec::with_capacity(t.tags.len() + 1);
    if let Some(s) = &t.service {
        base.push(format!("service:{s}"));
    }
    base.extend(t.tags.iter().cloned());
    for m in batch.metrics.iter() {
        let name = m.name.to_string();
        let u = unit(m.unit.as_str());
        for p in m.points.iter() {
            let ts = if p.time_unix_nano == 0 {
                now_secs
            } else {
                (p.time_unix_nano / 1_000_000_000) as i64
            };
            let interval = (m.temporality == Temporality::Delta
                && p.start_time_unix_nano > 0
                && p.time_unix_nano > p.start_time_unix_nano)
                .then(|| {
                    ((p.time_unix_nano - p.start_time_unix_nano) / 1_000_000_000).max(1) as i64
                });
            let mut tags = base.clone();
            tags.extend(point_tags(&p.attributes));
            let delta = m.temporality == Temporality::Delta;
            let (sum_kind, sum_interval) = if delta {
                (SeriesType::Count, interval)
            } else {
                (SeriesType::Gauge, None)
            };
            match (m.kind, &p.value) {
                (
                    MetricKind::Gauge | MetricKind::Sum,
                    PointValue::Double(_) | PointValue::Int(_),
                ) => {
                    let v = match p.value {
                        PointValue::Double(d) => d,
                        PointValue::Int(i) => i as f64,
                        _ => unreachable!("matched above"),
                    };
                    if !v.is_finite() {
                        skipped += 1;
                        continue;
                    }
                    let (kind, iv) = if m.kind == MetricKind::Gauge {
                        (SeriesType::Gauge, None)
                    } else {
                        (sum_kind, sum_interval)
                    };
                    set.add(t, name.clone(), kind, iv, u, &tags, (ts, v), 1);
                }
                (MetricKind::Histogram, PointValue::Histogram(h)) => {
                    let sum = h.sum.into_option();
                    if sum.is_some_and(|s| !s.is_finite()) {
                        skipped += 1;
                        continue;
                    }
                    set.add(
                        t,
                        format!("{name}.count"),
                        sum_kind,
                        sum_interval,
                        None,
                        &tags,
                        (ts, h.count as f64),
                        1,
                    );
                    if let Some(s) = sum {
                        set.add(
                            t,
                            format!("{name}.sum"),
                            sum_kind,
                            sum_interval,
                            u,
                            &tags,
                            (ts, s),
                            0,
                        );
                    }
                    for (suffix, v) in [("min", h.min.into_option()), ("max", h.max.into_option())]
                    {
                        if let Some(v) = v.filter(|v| v.is_finite()) {
                            set.add(
                                t,
                                format!("{name}.{suffix}"),
                                SeriesType::Gauge,
                                None,
                                u,
                                &tags,
                                (ts, v),
                                0,
                            );
                        }
                    }
                }
                (MetricKind::Summary, PointValue::Summary(s)) => {
                    if !s.sum.is_finite() {
                        skipped += 1;
                        continue;
                    }
                    set.add(
                        t,
                        format!("{name}.count"),
                        SeriesType::Gauge,
                        None,
                        None,
                        &tags,
                        (ts, s.count as f64),
                        1,
                    );
                    set.add(
                        t,
                        format!("{name}.sum"),
                        SeriesType::Gauge,
                        None,
                        u,
                        &tags,
                        (ts, s.sum),
                        0,
                    );
                    for q in s.quantiles.iter() {
                        if !q.value.is_finite() {
                            continue;
                        }
                        let mut qt = tags.clone();
                        qt.push(format!("quantile:{}", q.quantile));
                        set.add(
                            t,
                            format!("{name}.quantile"),
                            SeriesType::Gauge,
                            None,
                            u,
                            &qt,
                            (ts, q.value),
                            0,
                        );
                    }
                }
                _ => skipped += 1,
            }
        }
    }
    (set.series, skipped)
}

fn point_tags(attrs: &[KeyValue]) -> impl Iterator<Item = String> + '_ {
    attrs
        .iter()
        .map(|kv| format!("{}:{}", kv.key, value_text(&kv.value)))
}

/// The series as payload entries for `version`.
pub fn series_entries(series: &[Series], version: ApiVersion) -> Vec<Entry> {
    series
        .iter()
        .map(|s| Entry {
            json: match version {
                ApiVersion::V2 => s.v2(),
                ApiVersion::V1 => s.v1(),
            }
            .to_string()
            .into_bytes(),
            items: s.items,
        })
        .collect()
}

/// Datadog log `status` for an OpenTelemetry severity (number first, text when the
/// number is unset).
pub fn status(number: u8, text: &str) -> String {
    match number {
        1..=4 => "trace".into(),
        5..=8 => "debug".into(),
        9..=12 => "info".into(),
        13..=16 => "warning".into(),
        17..=20 => "error".into(),
        21..=24 => "critical".into(),
        _ if !text.trim().is_empty() => text.trim().to_ascii_lowercase(),
        _ => "info".into(),
    }
}

/// The decimal form of the low 64 bits of an id (Datadog's trace and span id
/// format); `None` for an all-zero id.
pub fn dd_id(id: &[u8]) -> Option<String> {
    if id.iter().all(|b| *b == 0) {
        return None;
    }
    let low = &id[id.len().saturating_sub(8)..];
    let mut v = 0u64;
    for b in low {
        v = (v << 8) | u64::from(*b);
    }
    Some(v.to_string())
}

/// One log record as a Datadog log object.
pub fn log(rec: &LogRecord, t: &Tagging) -> Value {
    let mut m = Map::new();
    for kv in rec.attributes.iter() {
        m.insert(kv.key.to_string(), value_json(&kv.value));
    }
    let mut message = value_text(&rec.body);
    if message.len() > MAX_MESSAGE_BYTES {
        let mut cut = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    m.insert("ddsource".into(), json!(t.source));
    if !t.tags.is_empty() {
        m.insert("ddtags".into(), json!(t.tags.join(",")));
    }
    if let Some(h) = &t.hostname {
        m.insert("hostname".into(), json!(h));
    }
    m.insert("message".into(), json!(message));
    if let Some(s) = &t.service {
        m.insert("service".into(), json!(s));
    }
    m.insert(
        "status".into(),
        json!(status(rec.severity_number, &rec.severity_text)),
    );
    let ts = if rec.time_unix_nano != 0 {
        rec.time_unix_nano
    } else {
        rec.observed_time_unix_nano
    };
    if ts != 0 {
        m.insert("timestamp".into(), json!(ts / 1_000_000));
    }
    if let Some(id) = dd_id(&rec.trace_id) {
        m.insert("dd.trace_id".into(), json!(id));
    }
    if let Some(id) = dd_id(&rec.span_id) {
        m.insert("dd.span_id".into(), json!(id));
    }
    Value::Object(m)
}

/// The logs of a batch as payload entries (one record each).
pub fn log_entries(batch: &Batch, t: &Tagging) -> Vec<Entry> {
    batch
        .logs
        .iter()
        .map(|r| Entry {
            json: log(r, t).to_string().into_bytes(),
            items: 1,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfo_plugin_api::{DataPoint, HistogramValue, Metric, Quantile, Resource, SummaryValue};

    fn cfg() -> Config {
        serde_json::from_str(r#"{"api_key": "k"}"#).unwrap()
    }

    fn batch_with(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> Batch {
        Batch {
            resource: Resource {
                attributes: resource.into(),
            },
            metrics: metrics.into(),
            ..Default::default()
        }
    }

    /// The request body example of "Submit metrics" (v2): one series
    /// `system.load.1`, one point, host `dummyhost` as a resource. Our gauge has
    /// type 3 where the example leaves it unspecified (0).
    #[test]
    fn golden_v2_series_from_the_api_reference() {
        let b = batch_with(
            vec![KeyValue::new("host.name", "dummyhost")],
            vec![Metric::gauge(
                "system.load.1",
                "",
                1_636_629_071_000_000_000,
                0.7,
                vec![],
            )],
        );
        let t = tagging(&b, &cfg());
        let (s, skipped) = series(&b, &t, 0);
        assert_eq!(skipped, 0);
        let body: Value = serde_json::from_slice(
            &tfo_plugin_common::chunk::Packer {
                frame: crate::client::series_frame(),
                limits: crate::client::SERIES_LIMITS,
                gzip: false,
            }
            .render(&series_entries(&s, ApiVersion::V2)),
        )
        .unwrap();
        let want: Value = serde_json::from_str(
            r#"{"series":[{"metric":"system.load.1","type":3,
                 "points":[{"timestamp":1636629071,"value":0.7}],
                 "resources":[{"name":"dummyhost","type":"host"}]}]}"#,
        )
        .unwrap();
        assert_eq!(body, want);
    }

    /// The v1 example of "Submit metrics": `points` as `[[ts, value]]`, `host`,
    /// `type` as a string.
    #[test]
    fn golden_v1_series() {
        let b = batch_with(
            vec![KeyValue::new("host.name", "test.example.com")],
            vec![Metric::gauge(
                "system.load.1",
                "",
                1_575_317_847_000_000_000,
                0.7,
                vec![KeyValue::new("environment", "test")],
            )],
        );
        let (s, _) = series(&b, &tagging(&b, &cfg()), 0);
        let want: Value = serde_json::from_str(
            r#"{"metric":"system.load.1","type":"gauge","points":[[1575317847,0.7]],
                "host":"test.example.com","tags":["environment:test"]}"#,
        )
        .unwrap();
        assert_eq!(s[0].v1(), want);
    }

    #[test]
    fn kinds_map_to_datadog_types() {
        let mut delta = Metric::counter(
            "req",
            "1",
            1_000_000_000_000,
            1_010_000_000_000,
            5.0,
            vec![],
        );
        delta.temporality = Temporality::Delta;
        let cumulative = Metric::counter("total", "By", 1, 1_010_000_000_000, 7.0, vec![]);
        let mut hist = Metric::gauge("lat", "ms", 1_010_000_000_000, 0.0, vec![]);
        hist.kind = MetricKind::Histogram;
        hist.temporality = Temporality::Delta;
        hist.points[0].start_time_unix_nano = 1_000_000_000_000;
        hist.points[0].value = PointValue::Histogram(HistogramValue {
            count: 3,
            sum: Some(12.0).into(),
            bounds: vec![1.0].into(),
            bucket_counts: vec![1, 2].into(),
            min: Some(1.0).into(),
            max: None.into(),
        });
        let mut summ = Metric::gauge("rpc", "s", 1_010_000_000_000, 0.0, vec![]);
        summ.kind = MetricKind::Summary;
        summ.points[0].value = PointValue::Summary(SummaryValue {
            count: 4,
            sum: 2.0,
            quantiles: vec![Quantile {
                quantile: 0.99,
                value: 0.9,
            }]
            .into(),
        });
        let mut bad = Metric::gauge("bad", "", 1_010_000_000_000, f64::NAN, vec![]);
        bad.points.push(DataPoint {
            attributes: Default::default(),
            start_time_unix_nano: 0,
            time_unix_nano: 1_010_000_000_000,
            value: PointValue::Summary(SummaryValue {
                count: 1,
                sum: 1.0,
                quantiles: Default::default(),
            }),
        });
        let b = batch_with(vec![], vec![delta, cumulative, hist, summ, bad]);
        let (s, skipped) = series(&b, &tagging(&b, &cfg()), 0);
        assert_eq!(skipped, 2);
        type Row = (String, SeriesType, Option<i64>, Option<String>, f64, u64);
        let got: Vec<Row> = s
            .iter()
            .map(|x| {
                (
                    x.metric.clone(),
                    x.kind,
                    x.interval,
                    x.unit.clone(),
                    x.points[0].1,
                    x.items,
                )
            })
            .collect();
        let g = |n: &str, k, i, u: Option<&str>, v, items| {
            (n.to_string(), k, i, u.map(str::to_string), v, items)
        };
        assert_eq!(
            got,
            vec![
                g("req", SeriesType::Count, Some(10), None, 5.0, 1),
                g("total", SeriesType::Gauge, None, Some("byte"), 7.0, 1),
                g("lat.count", SeriesType::Count, Some(10), None, 3.0, 1),
                g(
                    "lat.sum",
                    SeriesType::Count,
                    Some(10),
                    Some("millisecond"),
                    12.0,
                    0
                ),
                g(
                    "lat.min",
                    SeriesType::Gauge,
                    None,
                    Some("millisecond"),
                    1.0,
                    0
                ),
                g("rpc.count", SeriesType::Gauge, None, None, 4.0, 1),
                g("rpc.sum", SeriesType::Gauge, None, Some("second"), 2.0, 0),
                g(
                    "rpc.quantile",
                    SeriesType::Gauge,
                    None,
                    Some("second"),
                    0.9,
                    0
                ),
            ]
        );
        assert_eq!(s[7].tags, ["quantile:0.99"]);
        assert_eq!(s[0].points[0].0, 1010);
    }

    #[test]
    fn points_sharing_tags_share_a_series_and_tags_are_ordered() {
        let mut m = Metric::gauge(
            "cpu",
            "%",
            2_000_000_000,
            1.0,
            vec![KeyValue::new("core", 0i64)],
        );
        let mut p = m.points[0].clone();
        p.time_unix_nano = 3_000_000_000;
        p.value = PointValue::Int(2);
        m.points.push(p);
        let mut other = m.points[0].clone();
        other.attributes = vec![KeyValue::new("core", 1i64)].into();
        m.points.push(other);
        let b = batch_with(
            vec![
                KeyValue::new("service.name", "shop"),
                KeyValue::new("deployment.environment", "prod"),
                KeyValue::new("service.version", "1.2"),
                KeyValue::new("region", "eu"),
                KeyValue::new("host.name", "h1"),
            ],
            vec![m],
        );
        let mut c = cfg();
        c.tags = vec!["team:infra".into()];
        let (s, _) = series(&b, &tagging(&b, &c), 0);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].points, [(2, 1.0), (3, 2.0)]);
        assert_eq!(s[0].items, 2);
        assert_eq!(
            s[0].tags,
            [
                "service:shop",
                "env:prod",
                "version:1.2",
                "team:infra",
                "region:eu",
                "core:0"
            ]
        );
        assert_eq!(s[0].host.as_deref(), Some("h1"));
        assert_eq!(s[0].unit.as_deref(), Some("percent"));
    }

    #[test]
    fn config_overrides_resource_identity() {
        let b = batch_with(
            vec![
                KeyValue::new("host.name", "h1"),
                KeyValue::new("service.name", "a"),
            ],
            vec![],
        );
        let mut c = cfg();
        c.hostname = Some("h2".into());
        c.service_name = Some("b".into());
        c.environment = Some("staging".into());
        let t = tagging(&b, &c);
        assert_eq!(t.hostname.as_deref(), Some("h2"));
        assert_eq!(t.service.as_deref(), Some("b"));
        assert_eq!(t.tags, ["env:staging"]);
    }

    /// The request body example of "Send logs" (v2).
    #[test]
    fn golden_log_from_the_api_reference() {
        let b = Batch {
            resource: Resource {
                attributes: vec![
                    KeyValue::new("host.name", "i-012345678"),
                    KeyValue::new("service.name", "payment"),
                    KeyValue::new("deployment.environment", "staging"),
                    KeyValue::new("service.version", "5.1"),
                ]
                .into(),
            },
            ..Default::default()
        };
        let mut c = cfg();
        c.source = "nginx".into();
        let t = tagging(&b, &c);
        let rec = LogRecord {
            time_unix_nano: 0,
            observed_time_unix_nano: 0,
            severity_number: 0,
            severity_text: "".into(),
            body: AnyValue::from("2019-11-19T14:37:58,995 INFO [process.name][20081] Hello World"),
            attributes: Default::default(),
            trace_id: [0; 16],
            span_id: [0; 8],
        };
        let want: Value = serde_json::from_str(
            r#"{"ddsource":"nginx","ddtags":"env:staging,version:5.1","hostname":"i-012345678",
                "message":"2019-11-19T14:37:58,995 INFO [process.name][20081] Hello World",
                "service":"payment","status":"info"}"#,
        )
        .unwrap();
        assert_eq!(log(&rec, &t), want);
    }

    #[test]
    fn log_fields_severity_ids_and_attributes() {
        let t = Tagging {
            source: "tfo-agent".into(),
            ..Default::default()
        };
        let mut trace_id = [0u8; 16];
        trace_id[15] = 1;
        trace_id[0] = 0xff; // high half ignored
        let rec = LogRecord {
            time_unix_nano: 1_700_000_000_123_456_789,
            observed_time_unix_nano: 0,
            severity_number: 17,
            severity_text: "whatever".into(),
            body: AnyValue::Int(42),
            attributes: vec![
                KeyValue::new("status", "spoofed"),
                KeyValue::new("http.code", 500i64),
                KeyValue::new("ratio", f64::INFINITY),
            ]
            .into(),
            trace_id,
            span_id: [0, 0, 0, 0, 0, 0, 1, 0],
        };
        let v = log(&rec, &t);
        assert_eq!(v["status"], "error");
        assert_eq!(v["message"], "42");
        assert_eq!(v["timestamp"], 1_700_000_000_123i64);
        assert_eq!(v["http.code"], 500);
        assert_eq!(v["ratio"], "inf");
        assert_eq!(v["dd.trace_id"], "1");
        assert_eq!(v["dd.span_id"], "256");
        assert!(v.get("hostname").is_none() && v.get("ddtags").is_none());
        assert_eq!(status(0, " WARN "), "warn");
        assert_eq!(status(0, ""), "info");
        assert_eq!(status(10, "x"), "info");
    }

    #[test]
    fn huge_messages_are_cut_at_a_char_boundary() {
        let t = Tagging::default();
        let rec = LogRecord {
            time_unix_nano: 0,
            observed_time_unix_nano: 0,
            severity_number: 9,
            severity_text: "".into(),
            body: AnyValue::from("é".repeat(MAX_MESSAGE_BYTES)),
            attributes: Default::default(),
            trace_id: [0; 16],
            span_id: [0; 8],
        };
        let m = log(&rec, &t)["message"].as_str().unwrap().len();
        assert!(
            (MAX_MESSAGE_BYTES - 1..=MAX_MESSAGE_BYTES).contains(&m),
            "{m}"
        );
    }
}
