//! The agent's data model -> New Relic's ingest formats. Pure functions,
//! golden-tested against the examples of New Relic's documentation.
//!
//! # Metrics: Metric API, `POST /metric/v1`
//! <https://docs.newrelic.com/docs/data-apis/ingest-apis/metric-api/report-metrics-metric-api/>:
//! a JSON array of `{"common": {"attributes": {...}}, "metrics": [...]}`; a metric
//! is `{"name", "type": gauge|count|summary, "value", "timestamp" (Unix ms, the
//! start of the interval), "interval.ms" (count and summary), "attributes"}`; a
//! summary's value is `{"count", "sum", "min", "max"}`. Mapping:
//! - gauge -> `gauge`;
//! - sum, delta, with a start time -> `count` (`timestamp` = start, `interval.ms`
//!   = the point's interval); cumulative sums (and delta sums without a start
//!   time) -> `gauge` of the value, since turning totals into deltas needs state
//!   across batches, which this stateless encoder does not keep;
//! - histogram, delta, with a start time and known min and max -> `summary`;
//!   other histograms -> `<name>.count` and `<name>.sum` (count when delta with a
//!   start, else gauge) and `<name>.min` / `<name>.max` gauges when known;
//!   bucket counts are not sent (the Metric API has no bucket type);
//! - summary -> `<name>.count`, `<name>.sum` and `<name>.quantile` (attribute
//!   `quantile`) gauges;
//! - NaN and infinite values ("will be dropped" by the API) and values not
//!   matching the metric's kind are skipped and counted.
//!
//! Point attributes keep their JSON types; an attribute named like one of the
//! Metric API's own keys (`interval.ms`, `timestamp`, `value`, `common`, `min`,
//! `max`, `count`, `sum`, `metrics`) or like the metric itself is left out, as
//! "Metric API limits and restricted attributes" forbids them.
//!
//! # Logs: Log API, `POST /log/v1`
//! <https://docs.newrelic.com/docs/logs/log-api/introduction-log-api/>, "detailed"
//! format: `[{"common": {"attributes": {...}}, "logs": [{"timestamp" (ms),
//! "message", "attributes": {...}}]}]`. A record's attributes, plus `level` (its
//! severity text, else a name from its severity number) and `trace.id` /
//! `span.id` (hex, New Relic's logs-in-context attributes) when correlated.
//!
//! # Traces: Trace API, New Relic format, `POST /trace/v1`
//! <https://docs.newrelic.com/docs/distributed-tracing/trace-api/report-new-relic-format-traces-trace-api/>:
//! `[{"common": {"attributes": {...}}, "spans": [{"id", "trace.id", "timestamp"
//! (start, ms), "attributes": {"duration.ms", "name", "parent.id", ...}}]}]`. Ids
//! are lower-case hex (16 and 32 digits). Also set: `span.kind` (lower case, when
//! specified), `otel.status_code` (`OK` / `ERROR`, when set) and `error.message`
//! (the status message of an error). Span events have no place in this format
//! and are not sent.
//!
//! # Common attributes
//! The batch's resource attributes, then `service.name` and `environment` from the
//! config, then the configured `attributes`: shared by every item of a request, so
//! sent once in its `common` block.

use serde_json::{json, Map, Value};
use tfo_plugin_api::{
    AnyValue, Batch, KeyValue, LogRecord, MetricKind, PointValue, Span, SpanKind, StatusCode,
    Temporality,
};

use tfo_plugin_common::{
    chunk::{Entry, Frame},
    hex,
};

use crate::config::{Config, METRIC_RESERVED_KEYS};

/// A value as text.
pub fn value_text(v: &AnyValue) -> String {
    match v {
        AnyValue::Str(s) => s.to_string(),
        AnyValue::Bool(b) => b.to_string(),
        AnyValue::Int(i) => i.to_string(),
        AnyValue::Double(d) => d.to_string(),
        AnyValue::Bytes(b) => tfo_plugin_common::auth::base64(b),
    }
}

/// A value as a JSON attribute value (strings, numbers, booleans; bytes as
/// base64, non-finite doubles as text).
pub fn value_json(v: &AnyValue) -> Value {
    match v {
        AnyValue::Str(s) => Value::String(s.to_string()),
        AnyValue::Bool(b) => Value::Bool(*b),
        AnyValue::Int(i) => json!(i),
        AnyValue::Double(d) if d.is_finite() => json!(d),
        AnyValue::Double(d) => Value::String(d.to_string()),
        AnyValue::Bytes(b) => Value::String(tfo_plugin_common::auth::base64(b)),
    }
}

fn attrs(kvs: &[KeyValue]) -> Map<String, Value> {
    kvs.iter()
        .map(|kv| (kv.key.to_string(), value_json(&kv.value)))
        .collect()
}

/// The `common` attributes of a batch (see the module docs).
pub fn common(batch: &Batch, cfg: &Config) -> Map<String, Value> {
    let mut m = attrs(&batch.resource.attributes);
    if let Some(s) = &cfg.service_name {
        m.insert("service.name".into(), json!(s));
    }
    if let Some(e) = &cfg.environment {
        m.insert("environment".into(), json!(e));
    }
    for (k, v) in &cfg.attributes {
        m.insert(k.clone(), json!(v));
    }
    m
}

/// The frame of one request: `[{"common":{"attributes":...},"<list>":[` ... `]}]`
/// (no `common` when there are no common attributes).
pub fn frame(list: &str, common: &Map<String, Value>) -> Frame {
    let prefix = if common.is_empty() {
        format!("[{{\"{list}\":[")
    } else {
        format!(
            "[{{\"common\":{},\"{list}\":[",
            json!({ "attributes": common })
        )
    };
    Frame {
        prefix,
        separator: ",".into(),
        suffix: "]}]".into(),
    }
}

fn metric(
    name: &str,
    kind: &str,
    value: Value,
    ts_ms: i64,
    interval_ms: Option<i64>,
    attributes: &Map<String, Value>,
) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    m.insert("type".into(), json!(kind));
    m.insert("value".into(), value);
    m.insert("timestamp".into(), json!(ts_ms));
    if let Some(i) = interval_ms {
        m.insert("interval.ms".into(), json!(i));
    }
    let mut a = attributes.clone();
    a.remove(name);
    if !a.is_empty() {
        m.insert("attributes".into(), Value::Object(a));
    }
    Value::Object(m)
}

fn entry(v: Value, items: u64) -> Entry {
    Entry {
        json: v.to_string().into_bytes(),
        items,
    }
}

fn finite(v: f64) -> Option<Value> {
    v.is_finite().then(|| json!(v))
}

/// The metric data points of a batch as payload entries, and the number of data
/// points skipped. `now_ms` stands in for a point without a timestamp.
pub fn metric_entries(batch: &Batch, now_ms: i64) -> (Vec<Entry>, u64) {
    let mut out = Vec::new();
    let mut skipped = 0u64;
    for m in batch.metrics.iter() {
        let name = m.name.as_str();
        for p in m.points.iter() {
            let end_ms = if p.time_unix_nano == 0 {
                now_ms
            } else {
                (p.time_unix_nano / 1_000_000) as i64
            };
            let start_ms = (p.start_time_unix_nano / 1_000_000) as i64;
            // A delta interval New Relic can take: a start, strictly before the end.
            let interval = (m.temporality == Temporality::Delta
                && p.start_time_unix_nano > 0
                && start_ms < end_ms)
                .then_some(end_ms - start_ms);
            let mut a = attrs(&p.attributes);
            a.retain(|k, _| !METRIC_RESERVED_KEYS.contains(&k.as_str()));
            match (m.kind, &p.value) {
                (
                    MetricKind::Gauge | MetricKind::Sum,
                    PointValue::Double(_) | PointValue::Int(_),
                ) => {
                    let v = match p.value {
                        PointValue::Int(i) => json!(i),
                        PointValue::Double(d) => match finite(d) {
                            Some(v) => v,
                            None => {
                                skipped += 1;
                                continue;
                            }
                        },
                        _ => unreachable!("matched above"),
                    };
                    let e = match (m.kind, interval) {
                        (MetricKind::Sum, Some(i)) => {
                            metric(name, "count", v, start_ms, Some(i), &a)
                        }
                        _ => metric(name, "gauge", v, end_ms, None, &a),
                    };
                    out.push(entry(e, 1));
                }
                (MetricKind::Histogram, PointValue::Histogram(h)) => {
                    let sum = h.sum.into_option();
                    if sum.is_some_and(|s| !s.is_finite()) {
                        skipped += 1;
                        continue;
                    }
                    let (min, max) = (
                        h.min.into_option().filter(|v| v.is_finite()),
                        h.max.into_option().filter(|v| v.is_finite()),
                    );
                    match (interval, sum, min, max) {
                        (Some(i), Some(sum), Some(min), Some(max)) => {
                            let v = json!({"count": h.count, "sum": sum, "min": min, "max": max});
                            out.push(entry(metric(name, "summary", v, start_ms, Some(i), &a), 1));
                        }
                        _ => {
                            let (kind, ts) = match interval {
                                Some(_) => ("count", start_ms),
                                None => ("gauge", end_ms),
                            };
                            out.push(entry(
                                metric(
                                    &format!("{name}.count"),
                                    kind,
                                    json!(h.count),
                                    ts,
                                    interval,
                                    &a,
                                ),
                                1,
                            ));
                            if let Some(s) = sum {
                                out.push(entry(
                                    metric(
                                        &format!("{name}.sum"),
                                        kind,
                                        json!(s),
                                        ts,
                                        interval,
                                        &a,
                                    ),
                                    0,
                                ));
                            }
                            for (suffix, v) in [("min", min), ("max", max)] {
                                if let Some(v) = v {
                                    out.push(entry(
                                        metric(
                                            &format!("{name}.{suffix}"),
                                            "gauge",
                                            json!(v),
                                            end_ms,
                                            None,
                                            &a,
                                        ),
                                        0,
                                    ));
                                }
                            }
                        }
                    }
                }
                (MetricKind::Summary, PointValue::Summary(s)) => {
                    let Some(sum) = finite(s.sum) else {
                        skipped += 1;
                        continue;
                    };
                    out.push(entry(
                        metric(
                            &format!("{name}.count"),
                            "gauge",
                            json!(s.count),
                            end_ms,
                            None,
                            &a,
                        ),
                        1,
                    ));
                    out.push(entry(
                        metric(&format!("{name}.sum"), "gauge", sum, end_ms, None, &a),
                        0,
                    ));
                    for q in s.quantiles.iter() {
                        if let Some(v) = finite(q.value) {
                            let mut qa = a.clone();
                            qa.insert("quantile".into(), json!(q.quantile));
                            out.push(entry(
                                metric(&format!("{name}.quantile"), "gauge", v, end_ms, None, &qa),
                                0,
                            ));
                        }
                    }
                }
                _ => skipped += 1,
            }
        }
    }
    (out, skipped)
}

/// A log `level` for a record: its severity text, else a name for its number.
pub fn level(number: u8, text: &str) -> Option<String> {
    if !text.trim().is_empty() {
        return Some(text.trim().to_string());
    }
    Some(
        match number {
            1..=4 => "TRACE",
            5..=8 => "DEBUG",
            9..=12 => "INFO",
            13..=16 => "WARN",
            17..=20 => "ERROR",
            21..=24 => "FATAL",
            _ => return None,
        }
        .to_string(),
    )
}

/// One log record as a Log API entry.
pub fn log(rec: &LogRecord) -> Value {
    let mut m = Map::new();
    let ts = if rec.time_unix_nano != 0 {
        rec.time_unix_nano
    } else {
        rec.observed_time_unix_nano
    };
    if ts != 0 {
        m.insert("timestamp".into(), json!(ts / 1_000_000));
    }
    m.insert("message".into(), json!(value_text(&rec.body)));
    let mut a = attrs(&rec.attributes);
    if let Some(l) = level(rec.severity_number, &rec.severity_text) {
        a.insert("level".into(), json!(l));
    }
    if rec.trace_id.iter().any(|b| *b != 0) {
        a.insert("trace.id".into(), json!(hex::encode(&rec.trace_id)));
    }
    if rec.span_id.iter().any(|b| *b != 0) {
        a.insert("span.id".into(), json!(hex::encode(&rec.span_id)));
    }
    if !a.is_empty() {
        m.insert("attributes".into(), Value::Object(a));
    }
    Value::Object(m)
}

/// The logs of a batch as payload entries.
pub fn log_entries(batch: &Batch) -> Vec<Entry> {
    batch.logs.iter().map(|r| entry(log(r), 1)).collect()
}

fn kind_name(k: SpanKind) -> Option<&'static str> {
    Some(match k {
        SpanKind::Unspecified => return None,
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    })
}

/// One span as a Trace API (New Relic format) span.
pub fn span(s: &Span) -> Value {
    let mut a = attrs(&s.attributes);
    a.insert("name".into(), json!(s.name.as_str()));
    let dur_ns = s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano);
    a.insert("duration.ms".into(), json!(dur_ns as f64 / 1e6));
    if s.parent_span_id.iter().any(|b| *b != 0) {
        a.insert("parent.id".into(), json!(hex::encode(&s.parent_span_id)));
    }
    if let Some(k) = kind_name(s.kind) {
        a.insert("span.kind".into(), json!(k));
    }
    match s.status_code {
        StatusCode::Unset => {}
        StatusCode::Ok => {
            a.insert("otel.status_code".into(), json!("OK"));
        }
        StatusCode::Error => {
            a.insert("otel.status_code".into(), json!("ERROR"));
            if !s.status_message.is_empty() {
                a.insert("error.message".into(), json!(s.status_message.as_str()));
            }
        }
    }
    json!({
        "id": hex::encode(&s.span_id),
        "trace.id": hex::encode(&s.trace_id),
        "timestamp": s.start_time_unix_nano / 1_000_000,
        "attributes": a,
    })
}

/// The spans of a batch as payload entries.
pub fn span_entries(batch: &Batch) -> Vec<Entry> {
    batch.spans.iter().map(|s| entry(span(s), 1)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfo_plugin_api::{HistogramValue, Metric, Quantile, Resource, SummaryValue};
    use tfo_plugin_common::chunk::Packer;

    fn render(list: &str, common: &Map<String, Value>, entries: &[Entry]) -> Value {
        let p = Packer {
            frame: frame(list, common),
            limits: crate::client::LIMITS,
            gzip: false,
        };
        serde_json::from_slice(&p.render(entries)).unwrap()
    }

    const T: u64 = 1_531_414_060_739;

    fn ns(ms: u64) -> u64 {
        ms * 1_000_000
    }

    /// "JSON payload with three metric types" of "Report metrics via the Metric
    /// API", with CURRENT_TIME = 1531414060739.
    #[test]
    fn golden_three_metric_types() {
        let mut count = Metric::counter(
            "cache.misses",
            "1",
            ns(T),
            ns(T + 10_000),
            0.0,
            vec![
                KeyValue::new("cache.name", "myCache"),
                KeyValue::new("host.name", "dev.server.com"),
            ],
        );
        count.temporality = Temporality::Delta;
        count.points[0].value = PointValue::Int(15);
        let mut gauge = Metric::gauge(
            "temperature",
            "",
            ns(T),
            0.0,
            vec![
                KeyValue::new("city", "Portland"),
                KeyValue::new("state", "Oregon"),
            ],
        );
        gauge.points[0].value = PointValue::Int(15);
        let mut summary = Metric::gauge(
            "service.response.duration",
            "s",
            ns(T + 10_000),
            0.0,
            vec![
                KeyValue::new("host.name", "dev.server.com"),
                KeyValue::new("app.name", "foo"),
            ],
        );
        summary.kind = MetricKind::Histogram;
        summary.temporality = Temporality::Delta;
        summary.points[0].start_time_unix_nano = ns(T);
        summary.points[0].value = PointValue::Histogram(HistogramValue {
            count: 5,
            sum: Some(0.004382655).into(),
            bounds: vec![0.001].into(),
            bucket_counts: vec![3, 2].into(),
            min: Some(0.0005093).into(),
            max: Some(0.001708826).into(),
        });
        let b = Batch {
            metrics: vec![count, gauge, summary].into(),
            ..Default::default()
        };
        let (entries, skipped) = metric_entries(&b, 0);
        assert_eq!(skipped, 0);
        let want: Value = serde_json::from_str(
            r#"[{"metrics": [
              {"name": "cache.misses", "type": "count", "value": 15, "timestamp": 1531414060739,
               "interval.ms": 10000, "attributes": {"cache.name": "myCache", "host.name": "dev.server.com"}},
              {"name": "temperature", "type": "gauge", "value": 15, "timestamp": 1531414060739,
               "attributes": {"city": "Portland", "state": "Oregon"}},
              {"name": "service.response.duration", "type": "summary",
               "value": {"count": 5, "sum": 0.004382655, "min": 0.0005093, "max": 0.001708826},
               "interval.ms": 10000, "timestamp": 1531414060739,
               "attributes": {"host.name": "dev.server.com", "app.name": "foo"}}
            ]}]"#,
        )
        .unwrap();
        assert_eq!(render("metrics", &Map::new(), &entries), want);
    }

    /// The `common` example: shared attributes once per request.
    #[test]
    fn golden_common_block() {
        let b = Batch {
            resource: Resource {
                attributes: vec![
                    KeyValue::new("app.name", "foo"),
                    KeyValue::new("host.name", "dev.server.com"),
                ]
                .into(),
            },
            ..Default::default()
        };
        let cfg: Config = serde_json::from_str(r#"{"license_key": "k"}"#).unwrap();
        let c = common(&b, &cfg);
        let mut m = Metric::gauge("service.memory", "", ns(T), 2.7, vec![]);
        m.points[0].attributes = vec![KeyValue::new("service.response.statuscode", "400")].into();
        let b2 = Batch {
            metrics: vec![m].into(),
            ..Default::default()
        };
        let (entries, _) = metric_entries(&b2, 0);
        let want: Value = serde_json::from_str(
            r#"[{"common": {"attributes": {"app.name": "foo", "host.name": "dev.server.com"}},
                 "metrics": [{"name": "service.memory", "type": "gauge", "value": 2.7,
                   "timestamp": 1531414060739, "attributes": {"service.response.statuscode": "400"}}]}]"#,
        )
        .unwrap();
        assert_eq!(render("metrics", &c, &entries), want);
    }

    #[test]
    fn other_kinds_and_restricted_attributes() {
        let cumulative = Metric::counter(
            "total",
            "1",
            ns(T),
            ns(T + 5),
            7.0,
            vec![KeyValue::new("count", 1i64)],
        );
        let mut self_named = Metric::gauge(
            "x",
            "",
            ns(T),
            1.0,
            vec![KeyValue::new("x", "dup"), KeyValue::new("ok", true)],
        );
        self_named.points[0]
            .attributes
            .push(KeyValue::new("interval.ms", 3i64));
        let mut hist = Metric::gauge("lat", "", ns(T), 0.0, vec![]);
        hist.kind = MetricKind::Histogram;
        hist.temporality = Temporality::Cumulative;
        hist.points[0].value = PointValue::Histogram(HistogramValue {
            count: 2,
            sum: Some(3.0).into(),
            bounds: Default::default(),
            bucket_counts: vec![2].into(),
            min: None.into(),
            max: Some(2.0).into(),
        });
        let mut summ = Metric::gauge("rpc", "", ns(T), 0.0, vec![]);
        summ.kind = MetricKind::Summary;
        summ.points[0].value = PointValue::Summary(SummaryValue {
            count: 4,
            sum: 2.0,
            quantiles: vec![Quantile {
                quantile: 0.5,
                value: 0.4,
            }]
            .into(),
        });
        let nan = Metric::gauge("nan", "", ns(T), f64::NAN, vec![]);
        let b = Batch {
            metrics: vec![cumulative, self_named, hist, summ, nan].into(),
            ..Default::default()
        };
        let (entries, skipped) = metric_entries(&b, 0);
        assert_eq!(skipped, 1);
        let got: Vec<Value> = entries
            .iter()
            .map(|e| serde_json::from_slice(&e.json).unwrap())
            .collect();
        let items: Vec<u64> = entries.iter().map(|e| e.items).collect();
        assert_eq!(items, [1, 1, 1, 0, 0, 1, 0, 0]);
        assert_eq!(
            got[0],
            json!({"name": "total", "type": "gauge", "value": 7.0, "timestamp": T + 5})
        );
        assert_eq!(got[1]["attributes"], json!({"ok": true}));
        assert_eq!(
            got[2],
            json!({"name": "lat.count", "type": "gauge", "value": 2, "timestamp": T})
        );
        assert_eq!(got[3]["name"], "lat.sum");
        assert_eq!(got[4]["name"], "lat.max");
        assert_eq!(got[5]["name"], "rpc.count");
        assert_eq!(
            got[7],
            json!({"name": "rpc.quantile", "type": "gauge", "value": 0.4, "timestamp": T, "attributes": {"quantile": 0.5}})
        );
    }

    /// "Log POST message example" of "Introduction to the Log API".
    #[test]
    fn golden_log_example() {
        let b = Batch {
            resource: Resource {
                attributes: vec![
                    KeyValue::new("logtype", "accesslogs"),
                    KeyValue::new("service", "login-service"),
                    KeyValue::new("hostname", "login.example.com"),
                ]
                .into(),
            },
            logs: vec![
                rec("User 'xyz' logged in", vec![]),
                rec(
                    "User 'xyz' logged out",
                    vec![KeyValue::new("auditId", 123i64)],
                ),
            ]
            .into(),
            ..Default::default()
        };
        let cfg: Config = serde_json::from_str(r#"{"license_key": "k"}"#).unwrap();
        let want: Value = serde_json::from_str(
            r#"[{"common": {"attributes": {"logtype": "accesslogs", "service": "login-service",
                   "hostname": "login.example.com"}},
                 "logs": [{"timestamp": 1550086450124, "message": "User 'xyz' logged in"},
                          {"timestamp": 1550086450124, "message": "User 'xyz' logged out",
                           "attributes": {"auditId": 123}}]}]"#,
        )
        .unwrap();
        assert_eq!(render("logs", &common(&b, &cfg), &log_entries(&b)), want);
    }

    fn rec(msg: &str, attributes: Vec<KeyValue>) -> LogRecord {
        LogRecord {
            time_unix_nano: ns(1_550_086_450_124),
            observed_time_unix_nano: 0,
            severity_number: 0,
            severity_text: "".into(),
            body: AnyValue::from(msg),
            attributes: attributes.into(),
            trace_id: [0; 16],
            span_id: [0; 8],
        }
    }

    #[test]
    fn log_level_and_correlation() {
        let mut r = rec("x", vec![]);
        r.severity_number = 17;
        r.trace_id = [0xab; 16];
        r.span_id = [1, 2, 3, 4, 5, 6, 7, 8];
        r.body = AnyValue::Double(1.5);
        let v = log(&r);
        assert_eq!(v["message"], "1.5");
        assert_eq!(v["attributes"]["level"], "ERROR");
        assert_eq!(v["attributes"]["trace.id"], "ab".repeat(16));
        assert_eq!(v["attributes"]["span.id"], "0102030405060708");
        assert_eq!(level(0, " warn "), Some("warn".into()));
        assert_eq!(level(0, ""), None);
    }

    /// The two-span example of "Report traces via the Trace API (New Relic
    /// format)", with our hex ids in place of the example's ids and
    /// `duration.ms` as the float the docs type it as.
    #[test]
    fn golden_trace_example() {
        let trace_id = [0x12; 16];
        let root = Span {
            trace_id,
            span_id: [0xab; 8],
            parent_span_id: [0; 8],
            name: "my-span".into(),
            kind: SpanKind::Unspecified,
            start_time_unix_nano: ns(1_603_336_834_823),
            end_time_unix_nano: ns(1_603_336_834_823 + 750),
            status_code: StatusCode::Unset,
            status_message: "".into(),
            attributes: vec![
                KeyValue::new("user.email", "bob@newr.com"),
                KeyValue::new("service.name", "my-service"),
            ]
            .into(),
            events: Default::default(),
        };
        let child = Span {
            span_id: [0xde; 8],
            parent_span_id: [0xab; 8],
            name: "second-span".into(),
            start_time_unix_nano: ns(1_603_336_834_899),
            end_time_unix_nano: ns(1_603_336_834_899 + 750),
            attributes: vec![KeyValue::new("service.name", "second-service")].into(),
            ..root.clone()
        };
        let b = Batch {
            resource: Resource {
                attributes: vec![KeyValue::new("host", "host123.example.com")].into(),
            },
            spans: vec![root, child].into(),
            ..Default::default()
        };
        let cfg: Config = serde_json::from_str(r#"{"license_key": "k"}"#).unwrap();
        let tid = "12".repeat(16);
        let want: Value = serde_json::from_str(&format!(
            r#"[{{"common": {{"attributes": {{"host": "host123.example.com"}}}},
                 "spans": [
                   {{"trace.id": "{tid}", "id": "abababababababab", "timestamp": 1603336834823,
                     "attributes": {{"user.email": "bob@newr.com", "service.name": "my-service",
                                     "duration.ms": 750.0, "name": "my-span"}}}},
                   {{"trace.id": "{tid}", "id": "dededededededede", "timestamp": 1603336834899,
                     "attributes": {{"parent.id": "abababababababab", "service.name": "second-service",
                                     "duration.ms": 750.0, "name": "second-span"}}}}]}}]"#
        ))
        .unwrap();
        assert_eq!(render("spans", &common(&b, &cfg), &span_entries(&b)), want);
    }

    #[test]
    fn span_kind_and_status() {
        let s = Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: [0; 8],
            name: "GET /".into(),
            kind: SpanKind::Client,
            start_time_unix_nano: 1_000_000,
            end_time_unix_nano: 3_500_000,
            status_code: StatusCode::Error,
            status_message: "boom".into(),
            attributes: Default::default(),
            events: Default::default(),
        };
        let v = span(&s);
        assert_eq!(v["attributes"]["span.kind"], "client");
        assert_eq!(v["attributes"]["otel.status_code"], "ERROR");
        assert_eq!(v["attributes"]["error.message"], "boom");
        assert_eq!(v["attributes"]["duration.ms"], 2.5);
        assert_eq!(v["timestamp"], 1);
        assert!(v["attributes"].get("parent.id").is_none());
    }

    #[test]
    fn config_identity_goes_to_common() {
        let b = Batch {
            resource: Resource {
                attributes: vec![KeyValue::new("service.name", "a")].into(),
            },
            ..Default::default()
        };
        let cfg: Config = serde_json::from_str(
            r#"{"license_key": "k", "service_name": "b", "environment": "prod", "attributes": {"team": "infra"}}"#,
        )
        .unwrap();
        assert_eq!(
            Value::Object(common(&b, &cfg)),
            json!({"service.name": "b", "environment": "prod", "team": "infra"})
        );
        assert_eq!(frame("logs", &Map::new()).prefix, "[{\"logs\":[");
    }
}
