//! The agent's data model -> Elasticsearch bulk NDJSON; pure and golden-tested.
//!
//! Bulk format (<https://www.elastic.co/guide/en/elasticsearch/reference/current/docs-bulk.html>):
//! newline-delimited JSON, an action line followed by the document, every line
//! (the last one too) ending with `\n`. Data streams accept only the `create`
//! action; plain indices get `index`.
//!
//! Target names:
//! - data streams follow Elastic's naming scheme `<type>-<dataset>-<namespace>`
//!   (<https://www.elastic.co/guide/en/fleet/current/data-streams.html>) with type
//!   `logs`, `metrics` or `traces`, and every document carries the matching
//!   `data_stream.type/dataset/namespace` fields (the built-in templates map them
//!   as `constant_keyword`);
//! - index mode renders a template: `{type}` and the document's UTC date (`%Y`,
//!   `%m`, `%d`, `%H`; `%%` is `%`), e.g. `tfo-logs-2023.11.14`.
//!
//! Documents use Elastic Common Schema names
//! (<https://www.elastic.co/guide/en/ecs/current/ecs-field-reference.html>):
//! `@timestamp` (RFC 3339, milliseconds, UTC), `message`, `log.level`,
//! `event.severity`, `service.name`/`service.version`, `host.name`, `trace.id`,
//! `span.id`, `parent.id`, `event.duration` (nanoseconds), `event.outcome`, and
//! `labels` for every other attribute (resource attributes first, then the
//! record's, which win; `.` in keys becomes `_` as ECS asks of label keys, so
//! `http.method` and `http` cannot collide as object and value). Metrics are one
//! document per data point: `metric.name`, `metric.type`, `metric.unit`, and
//! `value`, `histogram` or `summary`. Spans: `span.name`, `span.kind`,
//! `span.status`, `span.events`.
//!
//! Bad data never poisons a batch: a metric point whose value JSON cannot carry
//! (NaN, infinity), or a histogram whose bucket counts do not match its bounds, is
//! left out and counted in [`Encoded::skipped`] with the first reason; non-finite
//! attribute values are left out of `labels`.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};
use tfo_plugin_api::{
    AnyValue, Batch, KeyValue, LogRecord, Metric, MetricKind, PointValue, Span, SpanKind,
    StatusCode, Temporality,
};
use tfo_plugin_common::hex;

use crate::config::{Config, Mode};

/// Which kind of data a document is (the `<type>` of the data stream name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Log records.
    Logs,
    /// Metric data points.
    Metrics,
    /// Spans.
    Traces,
}

impl Signal {
    /// `logs`, `metrics` or `traces`.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
            Signal::Traces => "traces",
        }
    }
}

/// Where documents go, from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Data streams or plain indices.
    pub mode: Mode,
    /// Data stream dataset.
    pub dataset: String,
    /// Data stream namespace.
    pub namespace: String,
    /// Index name template (index mode).
    pub index: String,
    /// Which signals are sent: logs, metrics, traces.
    pub logs: bool,
    /// Send metrics.
    pub metrics: bool,
    /// Send spans.
    pub traces: bool,
}

impl Target {
    /// The target of a (validated) config.
    pub fn from_config(c: &Config) -> Target {
        Target {
            mode: c.mode,
            dataset: c.data_stream.dataset.clone(),
            namespace: c.data_stream.namespace.clone(),
            index: c.index.clone(),
            logs: c.logs,
            metrics: c.metrics,
            traces: c.traces,
        }
    }

    fn action(&self, signal: Signal, ts_ns: u64) -> String {
        let (verb, name) = match self.mode {
            Mode::DataStream => (
                "create",
                format!("{}-{}-{}", signal.as_str(), self.dataset, self.namespace),
            ),
            Mode::Index => (
                "index",
                // Validated at create: rendering cannot fail here.
                render_index(&self.index, signal.as_str(), ts_ns).unwrap_or_default(),
            ),
        };
        json!({ verb: { "_index": name } }).to_string()
    }

    fn data_stream(&self, signal: Signal) -> Option<Value> {
        (self.mode == Mode::DataStream).then(|| {
            json!({
                "type": signal.as_str(),
                "dataset": self.dataset,
                "namespace": self.namespace,
            })
        })
    }
}

/// One bulk operation: the action line and the document line (without newlines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkItem {
    /// Data type of the document.
    pub signal: Signal,
    /// `{"create":{"_index":...}}` or `{"index":{"_index":...}}`.
    pub action: String,
    /// The document.
    pub source: String,
}

impl BulkItem {
    /// Bytes this item adds to a bulk body (both lines and their newlines).
    pub fn wire_len(&self) -> usize {
        self.action.len() + self.source.len() + 2
    }

    /// Appends the two NDJSON lines.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.action.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(self.source.as_bytes());
        out.push(b'\n');
    }
}

/// The documents of one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    /// Bulk operations, in batch order: metrics, spans, logs.
    pub items: Vec<BulkItem>,
    /// Items of the batch not encoded because of their data (NaN values...).
    pub skipped: u64,
    /// Items not encoded because their signal is switched off in the config.
    pub filtered: u64,
    /// Why the first skipped item was skipped.
    pub first_skip_reason: Option<String>,
}

impl Encoded {
    fn skip(&mut self, reason: impl FnOnce() -> String) {
        self.skipped += 1;
        if self.first_skip_reason.is_none() {
            self.first_skip_reason = Some(reason());
        }
    }
}

/// Encodes a batch. `now_ns` stamps records that carry no time at all.
pub fn encode_batch(batch: &Batch, target: &Target, now_ns: u64) -> Encoded {
    let res = ResourceFields::new(&batch.resource.attributes);
    let mut out = Encoded::default();
    for m in batch.metrics.iter() {
        if !target.metrics {
            out.filtered += m.points.len() as u64;
            continue;
        }
        metric_items(m, &res, target, &mut out);
    }
    for s in batch.spans.iter() {
        if !target.traces {
            out.filtered += 1;
            continue;
        }
        let ts = s.start_time_unix_nano;
        let doc = span_doc(s, &res, target.data_stream(Signal::Traces));
        out.items.push(BulkItem {
            signal: Signal::Traces,
            action: target.action(Signal::Traces, ts),
            source: doc.to_string(),
        });
    }
    for l in batch.logs.iter() {
        if !target.logs {
            out.filtered += 1;
            continue;
        }
        let ts = log_time(l, now_ns);
        let doc = log_doc(l, ts, &res, target.data_stream(Signal::Logs));
        out.items.push(BulkItem {
            signal: Signal::Logs,
            action: target.action(Signal::Logs, ts),
            source: doc.to_string(),
        });
    }
    out
}

/// The resource attributes split into the ECS fields they map to and the rest.
struct ResourceFields {
    service: Map<String, Value>,
    host: Map<String, Value>,
    labels: Map<String, Value>,
}

impl ResourceFields {
    fn new(attrs: &[KeyValue]) -> Self {
        let mut r = ResourceFields {
            service: Map::new(),
            host: Map::new(),
            labels: Map::new(),
        };
        for kv in attrs {
            let (obj, field) = match kv.key.as_str() {
                "service.name" => (&mut r.service, "name"),
                "service.version" => (&mut r.service, "version"),
                "host.name" => (&mut r.host, "name"),
                _ => {
                    add_label(&mut r.labels, kv);
                    continue;
                }
            };
            if let Some(v) = label_value(&kv.value) {
                obj.insert(field.to_string(), v);
            }
        }
        r
    }

    /// Adds `service`, `host`, `labels` (resource labels, then `own`) and
    /// `data_stream` to `doc`.
    fn complete(&self, doc: &mut Map<String, Value>, own: &[KeyValue], ds: Option<Value>) {
        if !self.service.is_empty() {
            doc.insert("service".into(), Value::Object(self.service.clone()));
        }
        if !self.host.is_empty() {
            doc.insert("host".into(), Value::Object(self.host.clone()));
        }
        let mut labels = self.labels.clone();
        for kv in own {
            add_label(&mut labels, kv);
        }
        if !labels.is_empty() {
            doc.insert("labels".into(), Value::Object(labels));
        }
        if let Some(ds) = ds {
            doc.insert("data_stream".into(), ds);
        }
    }
}

/// `.` -> `_` in a label key (ECS: label keys must not contain dots).
pub fn label_key(key: &str) -> String {
    key.replace('.', "_")
}

fn add_label(labels: &mut Map<String, Value>, kv: &KeyValue) {
    if let Some(v) = label_value(&kv.value) {
        labels.insert(label_key(&kv.key), v);
    }
}

/// JSON value of an attribute; `None` for a non-finite double.
fn label_value(v: &AnyValue) -> Option<Value> {
    Some(match v {
        AnyValue::Str(s) => Value::String(s.to_string()),
        AnyValue::Bool(b) => Value::Bool(*b),
        AnyValue::Int(i) => Value::from(*i),
        AnyValue::Double(d) => finite(*d)?,
        AnyValue::Bytes(b) => Value::String(tfo_plugin_common::auth::base64(b)),
    })
}

fn finite(d: f64) -> Option<Value> {
    if d.is_finite() {
        serde_json::Number::from_f64(d).map(Value::Number)
    } else {
        None
    }
}

fn any_text(v: &AnyValue) -> String {
    match v {
        AnyValue::Str(s) => s.to_string(),
        AnyValue::Bool(b) => b.to_string(),
        AnyValue::Int(i) => i.to_string(),
        AnyValue::Double(d) => d.to_string(),
        AnyValue::Bytes(b) => tfo_plugin_common::auth::base64(b),
    }
}

fn log_time(l: &LogRecord, now_ns: u64) -> u64 {
    if l.time_unix_nano != 0 {
        l.time_unix_nano
    } else if l.observed_time_unix_nano != 0 {
        l.observed_time_unix_nano
    } else {
        now_ns
    }
}

/// The level name of an OpenTelemetry severity number (log data model, "Severity
/// Fields" ranges), for records without a severity text.
pub fn severity_name(n: u8) -> Option<&'static str> {
    Some(match n {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => return None,
    })
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0)
}

/// The ECS document of one log record.
fn log_doc(l: &LogRecord, ts: u64, res: &ResourceFields, ds: Option<Value>) -> Value {
    let mut doc = Map::new();
    doc.insert("@timestamp".into(), Value::String(rfc3339_millis(ts)));
    doc.insert("message".into(), Value::String(any_text(&l.body)));
    let level = if l.severity_text.is_empty() {
        severity_name(l.severity_number).map(str::to_string)
    } else {
        Some(l.severity_text.to_string())
    };
    if let Some(level) = level {
        doc.insert("log".into(), json!({ "level": level }));
    }
    if l.severity_number != 0 {
        doc.insert("event".into(), json!({ "severity": l.severity_number }));
    }
    if !is_zero(&l.trace_id) {
        doc.insert("trace".into(), json!({ "id": hex::encode(&l.trace_id) }));
    }
    if !is_zero(&l.span_id) {
        doc.insert("span".into(), json!({ "id": hex::encode(&l.span_id) }));
    }
    res.complete(&mut doc, &l.attributes, ds);
    Value::Object(doc)
}

fn metric_items(m: &Metric, res: &ResourceFields, target: &Target, out: &mut Encoded) {
    let mut meta = Map::new();
    meta.insert("name".into(), Value::String(m.name.to_string()));
    if !m.unit.is_empty() {
        meta.insert("unit".into(), Value::String(m.unit.to_string()));
    }
    let kind = match m.kind {
        MetricKind::Gauge => "gauge",
        MetricKind::Sum => "sum",
        MetricKind::Histogram => "histogram",
        MetricKind::Summary => "summary",
    };
    meta.insert("type".into(), Value::String(kind.into()));
    if m.kind == MetricKind::Sum {
        meta.insert("monotonic".into(), Value::Bool(m.is_monotonic));
    }
    match m.temporality {
        Temporality::Delta => {
            meta.insert("temporality".into(), "delta".into());
        }
        Temporality::Cumulative => {
            meta.insert("temporality".into(), "cumulative".into());
        }
        Temporality::Unspecified => {}
    }
    for p in m.points.iter() {
        let mut doc = Map::new();
        doc.insert(
            "@timestamp".into(),
            Value::String(rfc3339_millis(p.time_unix_nano)),
        );
        doc.insert("metric".into(), Value::Object(meta.clone()));
        match point_value(&p.value) {
            Ok((field, v)) => {
                doc.insert(field.into(), v);
            }
            Err(why) => {
                out.skip(|| format!("metric {}: {why}", m.name));
                continue;
            }
        }
        res.complete(&mut doc, &p.attributes, target.data_stream(Signal::Metrics));
        out.items.push(BulkItem {
            signal: Signal::Metrics,
            action: target.action(Signal::Metrics, p.time_unix_nano),
            source: Value::Object(doc).to_string(),
        });
    }
}

/// The field and value of a data point, or why it cannot be sent.
fn point_value(v: &PointValue) -> Result<(&'static str, Value), String> {
    match v {
        PointValue::Int(i) => Ok(("value", Value::from(*i))),
        PointValue::Double(d) => finite(*d)
            .map(|v| ("value", v))
            .ok_or_else(|| format!("value {d} cannot be represented in JSON")),
        PointValue::Histogram(h) => {
            if h.bucket_counts.len() != h.bounds.len() + 1 {
                return Err(format!(
                    "histogram has {} bucket counts for {} bounds (want bounds + 1)",
                    h.bucket_counts.len(),
                    h.bounds.len()
                ));
            }
            if h.bounds.iter().any(|b| !b.is_finite()) {
                return Err("histogram bound is not finite".into());
            }
            let mut o = Map::new();
            o.insert("count".into(), Value::from(h.count));
            for (k, v) in [("sum", h.sum), ("min", h.min), ("max", h.max)] {
                if let Some(v) = v.into_option().and_then(finite) {
                    o.insert(k.into(), v);
                }
            }
            o.insert("bounds".into(), json!(h.bounds.as_slice()));
            o.insert("counts".into(), json!(h.bucket_counts.as_slice()));
            Ok(("histogram", Value::Object(o)))
        }
        PointValue::Summary(s) => {
            let mut o = Map::new();
            o.insert("count".into(), Value::from(s.count));
            if let Some(v) = finite(s.sum) {
                o.insert("sum".into(), v);
            }
            let qs: Vec<Value> = s
                .quantiles
                .iter()
                .filter_map(|q| {
                    Some(json!({ "quantile": finite(q.quantile)?, "value": finite(q.value)? }))
                })
                .collect();
            o.insert("quantiles".into(), Value::Array(qs));
            Ok(("summary", Value::Object(o)))
        }
    }
}

/// The ECS-style document of one span.
fn span_doc(s: &Span, res: &ResourceFields, ds: Option<Value>) -> Value {
    let mut doc = Map::new();
    doc.insert(
        "@timestamp".into(),
        Value::String(rfc3339_millis(s.start_time_unix_nano)),
    );
    doc.insert("trace".into(), json!({ "id": hex::encode(&s.trace_id) }));
    let mut span = Map::new();
    span.insert("id".into(), Value::String(hex::encode(&s.span_id)));
    span.insert("name".into(), Value::String(s.name.to_string()));
    let kind = match s.kind {
        SpanKind::Unspecified => "unspecified",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    };
    span.insert("kind".into(), kind.into());
    let (code, outcome) = match s.status_code {
        StatusCode::Unset => ("unset", "unknown"),
        StatusCode::Ok => ("ok", "success"),
        StatusCode::Error => ("error", "failure"),
    };
    let mut status = Map::new();
    status.insert("code".into(), code.into());
    if !s.status_message.is_empty() {
        status.insert(
            "message".into(),
            Value::String(s.status_message.to_string()),
        );
    }
    span.insert("status".into(), Value::Object(status));
    if !s.events.is_empty() {
        let events: Vec<Value> = s
            .events
            .iter()
            .map(|e| {
                let mut o = Map::new();
                o.insert("name".into(), Value::String(e.name.to_string()));
                o.insert(
                    "@timestamp".into(),
                    Value::String(rfc3339_millis(e.time_unix_nano)),
                );
                let mut labels = Map::new();
                for kv in e.attributes.iter() {
                    add_label(&mut labels, kv);
                }
                if !labels.is_empty() {
                    o.insert("labels".into(), Value::Object(labels));
                }
                Value::Object(o)
            })
            .collect();
        span.insert("events".into(), Value::Array(events));
    }
    doc.insert("span".into(), Value::Object(span));
    if !is_zero(&s.parent_span_id) {
        doc.insert(
            "parent".into(),
            json!({ "id": hex::encode(&s.parent_span_id) }),
        );
    }
    doc.insert(
        "event".into(),
        json!({
            "duration": s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano),
            "outcome": outcome,
        }),
    );
    res.complete(&mut doc, &s.attributes, ds);
    Value::Object(doc)
}

/// Splits items into bulk bodies of at most `max_bytes`; an item alone larger
/// than that is returned in the second list (it can never be sent).
pub fn split(
    indices: &[usize],
    items: &[BulkItem],
    max_bytes: usize,
) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut chunks = Vec::new();
    let mut oversized = Vec::new();
    let mut cur = Vec::new();
    let mut size = 0usize;
    for &i in indices {
        let n = items[i].wire_len();
        if n > max_bytes {
            oversized.push(i);
            continue;
        }
        if size + n > max_bytes && !cur.is_empty() {
            chunks.push(std::mem::take(&mut cur));
            size = 0;
        }
        cur.push(i);
        size += n;
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    (chunks, oversized)
}

/// The NDJSON body of `indices`.
pub fn body(indices: &[usize], items: &[BulkItem]) -> Vec<u8> {
    let mut out = Vec::with_capacity(indices.iter().map(|i| items[*i].wire_len()).sum());
    for &i in indices {
        items[i].write_to(&mut out);
    }
    out
}

/// What the bulk response says about one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemResult {
    /// Indexed (2xx).
    Ok,
    /// Refused for now (429, 5xx): send again later.
    Retry(String),
    /// Refused for good (mapping errors and other 4xx): dropped.
    Drop(String),
}

/// Reads a 2xx bulk response for a request of `n` items. Per the Bulk API, the
/// `items` are in request order, one object per action whose single value holds
/// `status` and, on failure, `error` (`type`, `reason`). `errors: false` means
/// every item succeeded.
pub fn parse_bulk_response(body: &[u8], n: usize) -> Result<Vec<ItemResult>, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the bulk response is not JSON: {e}"))?;
    let errors = v
        .get("errors")
        .and_then(Value::as_bool)
        .ok_or_else(|| "the bulk response has no `errors` flag".to_string())?;
    if !errors {
        return Ok(vec![ItemResult::Ok; n]);
    }
    let items = v
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| "the bulk response has `errors: true` but no `items`".to_string())?;
    if items.len() != n {
        return Err(format!(
            "the bulk response has {} items for {n} operations",
            items.len()
        ));
    }
    Ok(items
        .iter()
        .map(|item| {
            let Some(result) = item.as_object().and_then(|o| o.values().next()) else {
                return ItemResult::Drop("malformed item in the bulk response".into());
            };
            let status = result.get("status").and_then(Value::as_u64).unwrap_or(0);
            if (200..300).contains(&status) {
                return ItemResult::Ok;
            }
            let reason = match result.get("error") {
                Some(Value::Object(e)) => format!(
                    "{} {}: {}",
                    status,
                    e.get("type").and_then(Value::as_str).unwrap_or("error"),
                    e.get("reason").and_then(Value::as_str).unwrap_or("")
                ),
                Some(Value::String(s)) => format!("{status}: {s}"),
                _ => format!("status {status}"),
            };
            if status == 429 || (500..600).contains(&status) {
                ItemResult::Retry(reason)
            } else {
                ItemResult::Drop(reason)
            }
        })
        .collect())
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// UTC calendar fields of a nanosecond timestamp: (y, m, d, H, M, S, millis).
fn utc(ns: u64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let secs = (ns / 1_000_000_000) as i64;
    let millis = ((ns % 1_000_000_000) / 1_000_000) as u32;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u32;
    (y, mo, d, sod / 3600, sod % 3600 / 60, sod % 60, millis)
}

/// `2023-11-14T22:13:20.123Z`.
pub fn rfc3339_millis(ns: u64) -> String {
    let (y, mo, d, h, mi, s, ms) = utc(ns);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// Renders an index name template for a document of `signal` at `ns`: `{type}`,
/// `%Y`, `%m`, `%d`, `%H`, `%%`. Unknown placeholders are errors.
pub fn render_index(template: &str, signal: &str, ns: u64) -> Result<String, String> {
    let (y, mo, d, h, ..) = utc(ns);
    let mut out = String::with_capacity(template.len() + 8);
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '%' => match chars.next() {
                Some('Y') => {
                    let _ = write!(out, "{y:04}");
                }
                Some('m') => {
                    let _ = write!(out, "{mo:02}");
                }
                Some('d') => {
                    let _ = write!(out, "{d:02}");
                }
                Some('H') => {
                    let _ = write!(out, "{h:02}");
                }
                Some('%') => out.push('%'),
                Some(o) => return Err(format!("unknown date specifier %{o} (use %Y %m %d %H)")),
                None => return Err("a trailing % (write %% for a literal %)".into()),
            },
            '{' => {
                let mut rest = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    rest.push(c);
                }
                if !closed || rest != "type" {
                    return Err(format!("unknown placeholder {{{rest}}} (only {{type}})"));
                }
                out.push_str(signal);
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
