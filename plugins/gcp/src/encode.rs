//! The agent's data model -> the JSON bodies of the three Google Cloud APIs. Pure
//! functions (no I/O, no clock), golden-tested in `encode/tests.rs` against payloads
//! written from the API references:
//!
//! - **Cloud Monitoring** `projects.timeSeries.create`
//!   (<https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.timeSeries/create>,
//!   `TimeSeries`: <https://cloud.google.com/monitoring/api/ref_v3/rest/v3/TimeSeries>):
//!   one `TimeSeries` per data point with `metric {type: <prefix>/<name>, labels}`,
//!   the monitored `resource`, `metricKind`, `valueType`, `unit` and exactly one point.
//!   Gauges and non-monotonic sums are `GAUGE`; monotonic sums are `CUMULATIVE` with a
//!   `startTime` (delta sums too: each point is then its own interval); histograms
//!   are `DISTRIBUTION`s with explicit buckets (`CUMULATIVE`, or `GAUGE` without a
//!   temporality); a summary becomes `<name>_count` and `<name>_sum` (`CUMULATIVE`)
//!   and `<name>` (`GAUGE`, one series per quantile, label `quantile`). Integers are
//!   `INT64` (a decimal string in JSON, proto3's int64 form), floats `DOUBLE`.
//!   Requests hold at most `batch_size` (<= 200) series, and never two points of the
//!   same series ("The maximum number of TimeSeries objects per Create request is
//!   200"; "each TimeSeries value must fully specify a unique time series ... each
//!   request can contain only a single point per time series"): a second point of a
//!   series goes into a later request, in time order.
//!   Label keys follow the naming rules (<https://cloud.google.com/monitoring/api/v3/naming-conventions>):
//!   lowercase letters, digits and `_`, starting with a letter, at most 100 bytes;
//!   values at most 1024 bytes; at most 30 labels per series.
//! - **Cloud Logging** `entries.write`
//!   (<https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries/write>,
//!   `LogEntry`: <https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry>):
//!   `logName` `projects/{p}/logs/{url-encoded log id}`, the monitored `resource`,
//!   the configured `labels` as defaults and `partialSuccess: true` at the request
//!   level; per entry `timestamp`, `severity` (mapped from the OpenTelemetry severity
//!   number as in the OpenTelemetry logs data model's appendix for Google Cloud
//!   Logging, else from the severity text), `textPayload` (a string body) or
//!   `jsonPayload` (a string body holding a JSON object, or a non-string body as
//!   `{"message": value}`), `labels` (the record's attributes), `trace`
//!   (`projects/{p}/traces/{32 hex}`) and `spanId` (16 hex). Requests are cut at 1000
//!   entries or about 9 MB (the API's limit is 10 MB per request).
//! - **Cloud Trace v2** `projects.traces.batchWrite`
//!   (<https://cloud.google.com/trace/docs/reference/v2/rest/v2/projects.traces/batchWrite>,
//!   `Span`: <https://cloud.google.com/trace/docs/reference/v2/rest/v2/projects.traces.spans>):
//!   `name` `projects/{p}/traces/{trace}/spans/{span}`, `spanId`, `parentSpanId`,
//!   `displayName` (a `TruncatableString` of at most 128 bytes), `startTime`,
//!   `endTime`, `attributes` (at most 32; keys at most 128 bytes; strings at most 256
//!   bytes, integers as int64 strings, booleans; doubles and bytes as strings; the
//!   rest counted in `droppedAttributesCount`), span events as `timeEvents`
//!   annotations (at most 32), `status` (`{code: 2}`, UNKNOWN, with the message for
//!   errors; `{code: 0}` for OK) and `spanKind`. Requests are cut at 1000 spans or
//!   about 9 MB.
//!
//! Timestamps are RFC 3339 in UTC with nanoseconds, the JSON form of
//! `google.protobuf.Timestamp`. Values JSON cannot carry (NaN, infinities) and
//! malformed histograms are skipped and counted, never sent.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use serde_json::{json, Map, Value};
use tfo_plugin_api::{
    AnyValue, Batch, DataPoint, KeyValue, LogRecord, Metric, MetricKind, PointValue, Span,
    SpanKind, StatusCode, Temporality,
};
use tfo_plugin_common::hex;

use crate::{auth::percent_encode, config::Settings};

#[cfg(test)]
mod tests;

/// Which API a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Cloud Monitoring `timeSeries.create`.
    Monitoring,
    /// Cloud Logging `entries:write`.
    Logging,
    /// Cloud Trace `traces:batchWrite`.
    Trace,
}

impl Api {
    /// Short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Api::Monitoring => "monitoring",
            Api::Logging => "logging",
            Api::Trace => "trace",
        }
    }
}

/// One API call.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRequest {
    /// Which API.
    pub api: Api,
    /// Full URL.
    pub url: String,
    /// The JSON body.
    pub body: Value,
    /// Agent items it carries (data points, log records, spans).
    pub items: u64,
    /// Objects in it (time series, entries, spans), what partial errors count.
    pub objects: u64,
}

/// What a batch becomes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encoded {
    /// Requests in sending order.
    pub requests: Vec<ApiRequest>,
    /// Data points not sendable (non-finite values, malformed histograms).
    pub skipped: u64,
}

/// Limits of one Logging or Trace request (ours, under the APIs' 10 MB).
const MAX_OBJECTS_PER_REQUEST: usize = 1000;
const MAX_REQUEST_BYTES: usize = 9 * 1024 * 1024;
/// Monitoring label limits.
const MAX_METRIC_LABELS: usize = 30;
const MAX_LABEL_KEY: usize = 100;
const MAX_LABEL_VALUE: usize = 1024;
/// Trace limits.
const MAX_SPAN_ATTRIBUTES: usize = 32;
const MAX_ANNOTATIONS: usize = 32;
const MAX_DISPLAY_NAME: usize = 128;
const MAX_ATTRIBUTE_KEY: usize = 128;
const MAX_ATTRIBUTE_STRING: usize = 256;

/// Everything the encoder needs from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoder {
    /// Project id.
    pub project: String,
    /// Metric type prefix, without a trailing `/`.
    pub metric_prefix: String,
    /// Log id.
    pub log_name: String,
    /// Monitored resource type.
    pub resource_type: String,
    /// Configured resource labels.
    pub resource_labels: BTreeMap<String, String>,
    /// `location` default.
    pub region: String,
    /// Extra labels on series and entries.
    pub labels: BTreeMap<String, String>,
    /// Series per Monitoring request.
    pub batch_size: usize,
    /// Which signals are sent (metrics, logs, spans).
    pub enabled: [bool; 3],
    /// API base URLs (monitoring, logging, trace), without a trailing `/`.
    pub endpoints: [String; 3],
}

impl Encoder {
    /// The encoder of a checked config.
    pub fn new(s: &Settings) -> Encoder {
        let c = &s.config;
        Encoder {
            project: s.project_id.clone(),
            metric_prefix: c.monitoring.metric_prefix.trim_end_matches('/').to_string(),
            log_name: c.logging.log_name.trim().to_string(),
            resource_type: c.resource_type.clone(),
            resource_labels: c.resource_labels.clone(),
            region: c.region.clone(),
            labels: c.labels.clone(),
            batch_size: c.batch_size,
            enabled: [c.monitoring.enabled, c.logging.enabled, c.trace.enabled],
            endpoints: [
                c.monitoring.endpoint.trim_end_matches('/').to_string(),
                c.logging.endpoint.trim_end_matches('/').to_string(),
                c.trace.endpoint.trim_end_matches('/').to_string(),
            ],
        }
    }

    /// Every request for `batch`, metrics first, then logs, then spans.
    pub fn encode(&self, batch: &Batch) -> Encoded {
        let mut out = Encoded::default();
        if self.enabled[0] && !batch.metrics.is_empty() {
            let (reqs, skipped) = self.metrics(batch);
            out.requests.extend(reqs);
            out.skipped += skipped;
        }
        if self.enabled[1] && !batch.logs.is_empty() {
            out.requests.extend(self.logs(batch));
        }
        if self.enabled[2] && !batch.spans.is_empty() {
            let (reqs, skipped) = self.spans(batch);
            out.requests.extend(reqs);
            out.skipped += skipped;
        }
        out
    }

    /// The monitored resource of a batch: `project_id`, derived labels for the known
    /// generic types, then the configured labels (which win).
    pub fn resource(&self, batch: &Batch) -> Value {
        let attr = |k: &str| resource_attr(batch, k);
        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        labels.insert("project_id".into(), self.project.clone());
        match self.resource_type.as_str() {
            "generic_node" => {
                labels.insert("location".into(), self.region.clone());
                labels.insert(
                    "namespace".into(),
                    attr("service.namespace").unwrap_or_default(),
                );
                labels.insert(
                    "node_id".into(),
                    attr("host.name")
                        .or_else(|| attr("service.instance.id"))
                        .unwrap_or_default(),
                );
            }
            "generic_task" => {
                labels.insert("location".into(), self.region.clone());
                labels.insert(
                    "namespace".into(),
                    attr("service.namespace").unwrap_or_default(),
                );
                labels.insert("job".into(), attr("service.name").unwrap_or_default());
                labels.insert(
                    "task_id".into(),
                    attr("service.instance.id")
                        .or_else(|| attr("host.name"))
                        .unwrap_or_default(),
                );
            }
            _ => {}
        }
        for (k, v) in &self.resource_labels {
            labels.insert(k.clone(), v.clone());
        }
        json!({"type": self.resource_type, "labels": labels})
    }

    // ---- Cloud Monitoring -------------------------------------------------------

    /// `timeSeries.create` requests and the number of skipped points.
    pub fn metrics(&self, batch: &Batch) -> (Vec<ApiRequest>, u64) {
        let resource = self.resource(batch);
        let common = self.common_metric_labels(batch);
        let mut series: Vec<Series> = Vec::new();
        let mut skipped = 0;
        for m in batch.metrics.iter() {
            for p in m.points.iter() {
                let before = series.len();
                if !self.point_series(m, p, &common, &resource, &mut series) {
                    skipped += 1;
                    series.truncate(before);
                }
            }
        }
        // Round r holds the (r+1)-th point of each series, in time order, so a series
        // never has two points in one request and its points arrive in order.
        series.sort_by_key(|s| s.end);
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut rounds: Vec<Vec<Series>> = Vec::new();
        for s in series {
            let n = seen.entry(s.identity.clone()).or_insert(0);
            if rounds.len() <= *n {
                rounds.push(Vec::new());
            }
            rounds[*n].push(s);
            *n += 1;
        }
        let url = format!(
            "{}/projects/{}/timeSeries",
            self.endpoints[0],
            percent_encode(&self.project)
        );
        let mut out = Vec::new();
        for round in rounds {
            let mut it = round.into_iter().peekable();
            while it.peek().is_some() {
                let chunk: Vec<Series> = it.by_ref().take(self.batch_size).collect();
                let items = chunk.iter().map(|s| s.weight).sum();
                let objects = chunk.len() as u64;
                let ts: Vec<Value> = chunk.into_iter().map(|s| s.json).collect();
                out.push(ApiRequest {
                    api: Api::Monitoring,
                    url: url.clone(),
                    body: json!({ "timeSeries": ts }),
                    items,
                    objects,
                });
            }
        }
        (out, skipped)
    }

    /// Labels every series of the batch gets: the service identity of the resource
    /// (as the OpenTelemetry Google Cloud exporter does) and the configured labels.
    fn common_metric_labels(&self, batch: &Batch) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        for (attr, label) in [
            ("service.name", "service_name"),
            ("service.namespace", "service_namespace"),
            ("service.instance.id", "service_instance_id"),
        ] {
            if let Some(v) = resource_attr(batch, attr) {
                labels.insert(label.to_string(), truncate(&v, MAX_LABEL_VALUE).0);
            }
        }
        for (k, v) in &self.labels {
            labels.insert(label_key(k), truncate(v, MAX_LABEL_VALUE).0);
        }
        labels
    }

    /// Appends the series of one point; false when the point cannot be sent.
    fn point_series(
        &self,
        m: &Metric,
        p: &DataPoint,
        common: &BTreeMap<String, String>,
        resource: &Value,
        out: &mut Vec<Series>,
    ) -> bool {
        let mut labels = common.clone();
        for kv in p.attributes.iter() {
            labels.insert(label_key(&kv.key), label_value(&kv.value));
        }
        let name = metric_name(&m.name);
        let end = p.time_unix_nano;
        let cumulative_start = || {
            let start = p.start_time_unix_nano;
            if m.temporality == Temporality::Delta && start > 0 && start + 1_000_000 < end {
                // Consecutive delta intervals touch (start = previous end); a new
                // CUMULATIVE start must come after the previous point's end.
                start + 1_000_000
            } else if start > 0 && start < end {
                start
            } else {
                // CUMULATIVE needs start < end; an unknown start is 1 ms before.
                end.saturating_sub(1_000_000)
            }
        };
        let mk = |suffix: &str, extra: Option<(&str, String)>| {
            let mut l = labels.clone();
            if let Some((k, v)) = extra {
                l.insert(k.to_string(), v);
            }
            while l.len() > MAX_METRIC_LABELS {
                let last = l.keys().next_back().cloned().unwrap_or_default();
                l.remove(&last);
            }
            (format!("{}/{name}{suffix}", self.metric_prefix), l)
        };
        let unit = m.unit.as_str();
        match (&p.value, m.kind) {
            (PointValue::Double(_) | PointValue::Int(_), MetricKind::Gauge | MetricKind::Sum) => {
                let cumulative = m.kind == MetricKind::Sum
                    && m.is_monotonic
                    && m.temporality != Temporality::Unspecified;
                let Some((vt, value)) = scalar(&p.value) else {
                    return false;
                };
                let (ty, l) = mk("", None);
                let start = cumulative.then(cumulative_start);
                out.push(Series::new(
                    ty,
                    l,
                    resource,
                    kind(cumulative),
                    vt,
                    unit,
                    start,
                    end,
                    value,
                    1,
                ));
                true
            }
            (PointValue::Histogram(h), MetricKind::Histogram) => {
                let n = h.bounds.len();
                let ordered = h.bounds.windows(2).all(|w| w[0] < w[1]);
                if h.bucket_counts.len() != n + 1
                    || !ordered
                    || h.bounds.iter().any(|b| !b.is_finite())
                {
                    return false;
                }
                let sum = h.sum.into_option().unwrap_or(0.0);
                if !sum.is_finite() {
                    return false;
                }
                let mean = if h.count > 0 {
                    sum / h.count as f64
                } else {
                    0.0
                };
                let value = json!({"distributionValue": {
                    "count": h.count.to_string(),
                    "mean": mean,
                    "bucketOptions": {"explicitBuckets": {"bounds": h.bounds.to_vec()}},
                    "bucketCounts": h.bucket_counts.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                }});
                let cumulative = m.temporality != Temporality::Unspecified;
                let (ty, l) = mk("", None);
                let start = cumulative.then(cumulative_start);
                out.push(Series::new(
                    ty,
                    l,
                    resource,
                    kind(cumulative),
                    "DISTRIBUTION",
                    unit,
                    start,
                    end,
                    value,
                    1,
                ));
                true
            }
            (PointValue::Summary(s), MetricKind::Summary) => {
                if !s.sum.is_finite() || s.quantiles.iter().any(|q| !q.value.is_finite()) {
                    return false;
                }
                let start = Some(cumulative_start());
                let (ty, l) = mk("_count", None);
                out.push(Series::new(
                    ty,
                    l,
                    resource,
                    "CUMULATIVE",
                    "INT64",
                    "1",
                    start,
                    end,
                    json!({"int64Value": s.count.to_string()}),
                    1,
                ));
                let (ty, l) = mk("_sum", None);
                out.push(Series::new(
                    ty,
                    l,
                    resource,
                    "CUMULATIVE",
                    "DOUBLE",
                    unit,
                    start,
                    end,
                    json!({ "doubleValue": s.sum }),
                    0,
                ));
                for q in s.quantiles.iter() {
                    let (ty, l) = mk("", Some(("quantile", q.quantile.to_string())));
                    out.push(Series::new(
                        ty,
                        l,
                        resource,
                        "GAUGE",
                        "DOUBLE",
                        unit,
                        None,
                        end,
                        json!({ "doubleValue": q.value }),
                        0,
                    ));
                }
                true
            }
            // A value that does not fit its metric's kind.
            _ => false,
        }
    }

    // ---- Cloud Logging ----------------------------------------------------------

    /// `entries:write` requests.
    pub fn logs(&self, batch: &Batch) -> Vec<ApiRequest> {
        let log_name = format!(
            "projects/{}/logs/{}",
            self.project,
            percent_encode(&self.log_name)
        );
        let resource = self.resource(batch);
        let url = format!("{}/entries:write", self.endpoints[1]);
        let entries: Vec<(Value, u64)> = batch.logs.iter().map(|r| (self.entry(r), 1)).collect();
        chunk(entries, |chunk| {
            let mut body = json!({
                "logName": log_name,
                "resource": resource,
                "partialSuccess": true,
                "entries": chunk,
            });
            if !self.labels.is_empty() {
                body["labels"] = json!(self.labels);
            }
            body
        })
        .into_iter()
        .map(|(body, items, objects)| ApiRequest {
            api: Api::Logging,
            url: url.clone(),
            body,
            items,
            objects,
        })
        .collect()
    }

    /// One `LogEntry`.
    pub fn entry(&self, r: &LogRecord) -> Value {
        let mut e = Map::new();
        let t = if r.time_unix_nano > 0 {
            r.time_unix_nano
        } else {
            r.observed_time_unix_nano
        };
        if t > 0 {
            e.insert("timestamp".into(), rfc3339(t).into());
        }
        e.insert("severity".into(), severity(r).into());
        match &r.body {
            AnyValue::Str(s) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(o)) => {
                    e.insert("jsonPayload".into(), Value::Object(o));
                }
                _ => {
                    e.insert("textPayload".into(), s.as_str().into());
                }
            },
            AnyValue::Bytes(b) => {
                e.insert("textPayload".into(), b64(b).into());
            }
            other => {
                e.insert(
                    "jsonPayload".into(),
                    json!({ "message": json_value(other) }),
                );
            }
        }
        if !r.attributes.is_empty() {
            let labels: BTreeMap<String, String> = r
                .attributes
                .iter()
                .map(|kv| (kv.key.to_string(), value_text(&kv.value)))
                .collect();
            e.insert("labels".into(), json!(labels));
        }
        if r.trace_id != [0; 16] {
            e.insert(
                "trace".into(),
                format!(
                    "projects/{}/traces/{}",
                    self.project,
                    hex::encode(&r.trace_id)
                )
                .into(),
            );
            if r.span_id != [0; 8] {
                e.insert("spanId".into(), hex::encode(&r.span_id).into());
            }
        }
        Value::Object(e)
    }

    // ---- Cloud Trace ------------------------------------------------------------

    /// `traces:batchWrite` requests, and the number of spans skipped because their
    /// trace or span id is all zero (invalid in a span name).
    pub fn spans(&self, batch: &Batch) -> (Vec<ApiRequest>, u64) {
        let url = format!(
            "{}/projects/{}/traces:batchWrite",
            self.endpoints[2],
            percent_encode(&self.project)
        );
        let valid = |s: &&Span| s.trace_id != [0; 16] && s.span_id != [0; 8];
        let skipped = batch.spans.iter().filter(|s| !valid(s)).count() as u64;
        let spans: Vec<(Value, u64)> = batch
            .spans
            .iter()
            .filter(valid)
            .map(|s| (self.span(s, &batch.resource.attributes), 1))
            .collect();
        let reqs = chunk(spans, |chunk| json!({ "spans": chunk }))
            .into_iter()
            .map(|(body, items, objects)| ApiRequest {
                api: Api::Trace,
                url: url.clone(),
                body,
                items,
                objects,
            })
            .collect();
        (reqs, skipped)
    }

    /// One v2 `Span`; resource attributes follow the span's own (which win).
    pub fn span(&self, s: &Span, resource: &[KeyValue]) -> Value {
        let trace = hex::encode(&s.trace_id);
        let id = hex::encode(&s.span_id);
        let mut v = Map::new();
        v.insert(
            "name".into(),
            format!("projects/{}/traces/{trace}/spans/{id}", self.project).into(),
        );
        v.insert("spanId".into(), id.into());
        if s.parent_span_id != [0; 8] {
            v.insert("parentSpanId".into(), hex::encode(&s.parent_span_id).into());
        }
        v.insert("displayName".into(), truncatable(&s.name, MAX_DISPLAY_NAME));
        v.insert("startTime".into(), rfc3339(s.start_time_unix_nano).into());
        v.insert("endTime".into(), rfc3339(s.end_time_unix_nano).into());
        let all = s.attributes.iter().chain(
            resource
                .iter()
                .filter(|r| !s.attributes.iter().any(|a| a.key == r.key)),
        );
        v.insert("attributes".into(), attributes(all, MAX_SPAN_ATTRIBUTES));
        if !s.events.is_empty() {
            let events: Vec<Value> = s
                .events
                .iter()
                .take(MAX_ANNOTATIONS)
                .map(|e| {
                    json!({
                        "time": rfc3339(e.time_unix_nano),
                        "annotation": {
                            "description": truncatable(&e.name, MAX_ATTRIBUTE_STRING),
                            "attributes": attributes(e.attributes.iter(), MAX_SPAN_ATTRIBUTES),
                        }
                    })
                })
                .collect();
            let mut te = json!({ "timeEvent": events });
            let dropped = s.events.len().saturating_sub(MAX_ANNOTATIONS);
            if dropped > 0 {
                te["droppedAnnotationsCount"] = dropped.into();
            }
            v.insert("timeEvents".into(), te);
        }
        match s.status_code {
            StatusCode::Error => {
                let mut st = json!({"code": 2});
                if !s.status_message.is_empty() {
                    st["message"] = s.status_message.as_str().into();
                }
                v.insert("status".into(), st);
            }
            StatusCode::Ok => {
                v.insert("status".into(), json!({"code": 0}));
            }
            StatusCode::Unset => {}
        }
        let kind = match s.kind {
            SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
            SpanKind::Internal => "INTERNAL",
            SpanKind::Server => "SERVER",
            SpanKind::Client => "CLIENT",
            SpanKind::Producer => "PRODUCER",
            SpanKind::Consumer => "CONSUMER",
        };
        v.insert("spanKind".into(), kind.into());
        Value::Object(v)
    }
}

/// One time series with one point, and what it is sorted and grouped by.
struct Series {
    identity: String,
    end: u64,
    weight: u64,
    json: Value,
}

impl Series {
    #[allow(clippy::too_many_arguments)]
    fn new(
        metric_type: String,
        labels: BTreeMap<String, String>,
        resource: &Value,
        kind: &str,
        value_type: &str,
        unit: &str,
        start: Option<u64>,
        end: u64,
        value: Value,
        weight: u64,
    ) -> Series {
        let metric = json!({"type": metric_type, "labels": labels});
        let identity = metric.to_string();
        let mut interval = json!({ "endTime": rfc3339(end) });
        if let Some(s) = start {
            interval["startTime"] = rfc3339(s).into();
        }
        let mut ts = json!({
            "metric": metric,
            "resource": resource,
            "metricKind": kind,
            "valueType": value_type,
            "points": [{"interval": interval, "value": value}],
        });
        if !unit.is_empty() {
            ts["unit"] = unit.into();
        }
        Series {
            identity,
            end,
            weight,
            json: ts,
        }
    }
}

fn kind(cumulative: bool) -> &'static str {
    if cumulative {
        "CUMULATIVE"
    } else {
        "GAUGE"
    }
}

/// `(valueType, TypedValue)` of a scalar point; `None` for NaN and infinities.
fn scalar(v: &PointValue) -> Option<(&'static str, Value)> {
    match v {
        PointValue::Int(i) => Some(("INT64", json!({"int64Value": i.to_string()}))),
        PointValue::Double(d) if d.is_finite() => Some(("DOUBLE", json!({ "doubleValue": d }))),
        _ => None,
    }
}

/// Splits objects into bodies of at most [`MAX_OBJECTS_PER_REQUEST`] objects and about
/// [`MAX_REQUEST_BYTES`]; returns `(body, items, objects)`.
fn chunk(objects: Vec<(Value, u64)>, wrap: impl Fn(Vec<Value>) -> Value) -> Vec<(Value, u64, u64)> {
    let mut out = Vec::new();
    let mut cur: Vec<Value> = Vec::new();
    let (mut bytes, mut items) = (0usize, 0u64);
    for (obj, n) in objects {
        let size = obj.to_string().len() + 1;
        if !cur.is_empty()
            && (cur.len() >= MAX_OBJECTS_PER_REQUEST || bytes + size > MAX_REQUEST_BYTES)
        {
            let len = cur.len() as u64;
            out.push((wrap(std::mem::take(&mut cur)), items, len));
            bytes = 0;
            items = 0;
        }
        bytes += size;
        items += n;
        cur.push(obj);
    }
    if !cur.is_empty() {
        let len = cur.len() as u64;
        out.push((wrap(cur), items, len));
    }
    out
}

/// Trace `Attributes` from key-values, at most `max`, the rest counted as dropped.
fn attributes<'a>(kvs: impl Iterator<Item = &'a KeyValue>, max: usize) -> Value {
    let mut map = Map::new();
    let mut dropped = 0u64;
    for kv in kvs {
        if kv.key.len() > MAX_ATTRIBUTE_KEY || map.len() >= max {
            dropped += 1;
            continue;
        }
        let v = match &kv.value {
            AnyValue::Int(i) => json!({"intValue": i.to_string()}),
            AnyValue::Bool(b) => json!({ "boolValue": b }),
            other => json!({
                "stringValue": truncatable(&value_text(other), MAX_ATTRIBUTE_STRING)
            }),
        };
        map.insert(kv.key.to_string(), v);
    }
    let mut out = json!({ "attributeMap": map });
    if dropped > 0 {
        out["droppedAttributesCount"] = dropped.into();
    }
    out
}

/// A `TruncatableString` of at most `max` bytes (cut at a character boundary).
fn truncatable(s: &str, max: usize) -> Value {
    let (value, cut) = truncate(s, max);
    let mut v = json!({ "value": value });
    if cut > 0 {
        v["truncatedByteCount"] = cut.into();
    }
    v
}

/// `s` cut to at most `max` bytes at a character boundary, and the bytes cut.
fn truncate(s: &str, max: usize) -> (String, usize) {
    if s.len() <= max {
        return (s.to_string(), 0);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (s[..end].to_string(), s.len() - end)
}

/// A Monitoring label key: lowercase letters, digits and `_`, starting with a
/// letter, at most 100 bytes.
pub fn label_key(k: &str) -> String {
    let mut out: String = k
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "key_");
    }
    out.truncate(MAX_LABEL_KEY);
    out
}

fn label_value(v: &AnyValue) -> String {
    truncate(&value_text(v), MAX_LABEL_VALUE).0
}

/// The metric name part of a type: letters, digits, `_`, `.` and `/` are kept,
/// anything else becomes `_`.
pub fn metric_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches('/');
    if trimmed.is_empty() {
        "unnamed".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Cloud Logging severity: from the OpenTelemetry severity number (the logs data
/// model's Google Cloud Logging mapping, reversed), else from the text.
pub fn severity(r: &LogRecord) -> &'static str {
    match r.severity_number {
        1..=8 => "DEBUG",
        9 => "INFO",
        10..=12 => "NOTICE",
        13..=16 => "WARNING",
        17..=20 => "ERROR",
        21 => "CRITICAL",
        22 | 23 => "ALERT",
        24 => "EMERGENCY",
        _ => match r.severity_text.trim().to_ascii_lowercase().as_str() {
            "trace" | "debug" => "DEBUG",
            "info" | "information" => "INFO",
            "notice" => "NOTICE",
            "warn" | "warning" => "WARNING",
            "error" | "err" => "ERROR",
            "fatal" | "critical" | "crit" => "CRITICAL",
            "alert" => "ALERT",
            "emergency" | "emerg" => "EMERGENCY",
            _ => "DEFAULT",
        },
    }
}

fn resource_attr(batch: &Batch, key: &str) -> Option<String> {
    batch
        .resource
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| value_text(&kv.value))
        .filter(|s| !s.is_empty())
}

/// An attribute value as text (bytes as base64).
pub fn value_text(v: &AnyValue) -> String {
    match v {
        AnyValue::Str(s) => s.to_string(),
        AnyValue::Bool(b) => b.to_string(),
        AnyValue::Int(i) => i.to_string(),
        AnyValue::Double(d) => d.to_string(),
        AnyValue::Bytes(b) => b64(b),
    }
}

fn json_value(v: &AnyValue) -> Value {
    match v {
        AnyValue::Str(s) => s.as_str().into(),
        AnyValue::Bool(b) => (*b).into(),
        AnyValue::Int(i) => (*i).into(),
        // serde_json turns non-finite doubles into null.
        AnyValue::Double(d) => (*d).into(),
        AnyValue::Bytes(b) => b64(b).into(),
    }
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// RFC 3339 UTC with nanoseconds (`google.protobuf.Timestamp` JSON).
pub fn rfc3339(unix_nanos: u64) -> String {
    let secs = unix_nanos / 1_000_000_000;
    let ns = unix_nanos % 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, mo, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if ns > 0 {
        out.push_str(&format!(".{ns:09}"));
    }
    out.push('Z');
    out
}

/// Days since 1970-01-01 -> (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`, <https://howardhinnant.github.io/date_algorithms.html>).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}
