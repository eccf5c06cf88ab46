//! The agent's data model -> Azure Monitor wire formats. Pure functions, golden-tested.
//!
//! - **Custom metrics** (<https://learn.microsoft.com/en-us/azure/azure-monitor/essentials/metrics-store-custom-rest-api>):
//!   one request per metric name and timestamp,
//!   `{"time", "data": {"baseData": {"metric", "namespace", "dimNames", "series":
//!   [{"dimValues", "min", "max", "sum", "count"}]}}}`. Dimension names are the
//!   sorted union of the point attribute keys of that metric and time (at most 10,
//!   the service's limit; points without a key get `""`). Gauge and sum points
//!   give `min = max = sum = value, count = 1`; histograms their count, sum, min
//!   and max (the mean when min/max are unknown); summaries their count, sum and
//!   the 0 and 1 quantiles (else the mean). Non-finite values and empty
//!   histograms are skipped and counted.
//! - **Logs Ingestion API** (<https://learn.microsoft.com/en-us/azure/azure-monitor/logs/logs-ingestion-api-overview>):
//!   a JSON array of rows `{TimeGenerated, SeverityText, SeverityNumber, Body,
//!   Attributes, Resource, TraceId, SpanId}`, split into calls below 1 MB (the
//!   API's limit). The DCR's stream must declare these columns
//!   (docs/integrations/azure.md shows the declaration).
//! - **Application Insights** (Breeze v2.1 `track`, the envelope format of the
//!   Application Insights SDKs and the Azure Monitor OpenTelemetry exporter): one
//!   envelope per span. Server and consumer spans are requests
//!   (`Microsoft.ApplicationInsights.Request`, `RequestData`); client, producer and
//!   internal spans are dependencies (`Microsoft.ApplicationInsights.RemoteDependency`,
//!   `RemoteDependencyData`). Tags: `ai.operation.id` = trace id,
//!   `ai.operation.parentId` = parent span id, `ai.cloud.role` = `service.name`,
//!   `ai.cloud.roleInstance` = `host.name`. Durations are .NET TimeSpans
//!   `d.hh:mm:ss.fffffff`. Span events are not sent.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};
use tfo_plugin_api::{AnyValue, Batch, KeyValue, PointValue, Span, SpanKind, StatusCode};
use tfo_plugin_common::hex;

/// Most dimensions Azure Monitor accepts on a custom metric.
pub const MAX_DIMENSIONS: usize = 10;
/// Largest Logs Ingestion API call.
pub const MAX_LOGS_CALL_BYTES: usize = 1_000_000;
/// Application Insights' global ingestion endpoint.
pub const DEFAULT_INGESTION_ENDPOINT: &str = "https://dc.services.visualstudio.com";
/// Longest property value Application Insights keeps.
pub const MAX_PROPERTY_LEN: usize = 8192;

/// Formats Unix nanoseconds as RFC 3339 UTC with `frac` fractional digits (0-9).
pub fn rfc3339(unix_nanos: u64, frac: usize) -> String {
    let secs = unix_nanos / 1_000_000_000;
    let nanos = unix_nanos % 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if frac > 0 {
        let digits = format!("{nanos:09}");
        s.push('.');
        s.push_str(&digits[..frac.min(9)]);
    }
    s.push('Z');
    s
}

/// A duration in nanoseconds as a .NET TimeSpan string, `d.hh:mm:ss.fffffff`.
pub fn timespan(nanos: u64) -> String {
    let ticks = nanos / 100;
    let frac = ticks % 10_000_000;
    let secs = ticks / 10_000_000;
    format!(
        "{}.{:02}:{:02}:{:02}.{frac:07}",
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// An attribute value as text (properties and dimensions are strings).
pub fn value_text(v: &AnyValue) -> String {
    match v {
        AnyValue::Str(s) => s.to_string(),
        AnyValue::Bool(b) => b.to_string(),
        AnyValue::Int(i) => i.to_string(),
        AnyValue::Double(d) => d.to_string(),
        AnyValue::Bytes(b) => tfo_plugin_common::auth::base64(b),
    }
}

/// An attribute value as JSON (log rows keep types).
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

fn attrs_json(attrs: &[KeyValue]) -> Value {
    Value::Object(
        attrs
            .iter()
            .map(|kv| (kv.key.to_string(), value_json(&kv.value)))
            .collect(),
    )
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn attr_text(attrs: &[KeyValue], keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| attr(attrs, k).map(value_text))
}

/// One custom-metrics request: the JSON body and the points it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRequest {
    /// The request body.
    pub body: Value,
    /// Data points in it.
    pub points: u64,
}

/// What [`metric_requests`] could not send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Points with a non-finite value or an empty histogram/summary.
    pub points: u64,
    /// Dimensions dropped above [`MAX_DIMENSIONS`].
    pub dimensions: u64,
}

/// (min, max, sum, count) of a point, `None` when it cannot be sent.
fn aggregate(v: &PointValue) -> Option<(f64, f64, f64, u64)> {
    let r = match v {
        PointValue::Double(d) => (*d, *d, *d, 1),
        PointValue::Int(i) => {
            let d = *i as f64;
            (d, d, d, 1)
        }
        PointValue::Histogram(h) => {
            if h.count == 0 {
                return None;
            }
            let sum = h.sum.into_option().unwrap_or(0.0);
            let mean = sum / h.count as f64;
            (
                h.min.into_option().unwrap_or(mean),
                h.max.into_option().unwrap_or(mean),
                sum,
                h.count,
            )
        }
        PointValue::Summary(s) => {
            if s.count == 0 {
                return None;
            }
            let mean = s.sum / s.count as f64;
            let q = |want: f64| {
                s.quantiles
                    .iter()
                    .find(|q| q.quantile == want)
                    .map(|q| q.value)
            };
            (
                q(0.0).unwrap_or(mean),
                q(1.0).unwrap_or(mean),
                s.sum,
                s.count,
            )
        }
    };
    (r.0.is_finite() && r.1.is_finite() && r.2.is_finite()).then_some(r)
}

/// The custom-metrics requests for a batch, in a stable order (by metric name,
/// then time).
pub fn metric_requests(batch: &Batch, namespace: &str) -> (Vec<MetricRequest>, Skipped) {
    type Series = Vec<(Vec<(String, String)>, (f64, f64, f64, u64))>;
    let mut groups: BTreeMap<(String, u64), Series> = BTreeMap::new();
    let mut skipped = Skipped::default();
    for m in batch.metrics.iter() {
        for p in m.points.iter() {
            let Some(agg) = aggregate(&p.value) else {
                skipped.points += 1;
                continue;
            };
            let dims = p
                .attributes
                .iter()
                .map(|kv| (kv.key.to_string(), value_text(&kv.value)))
                .collect();
            // Azure keeps one-second timestamps; group on them.
            groups
                .entry((m.name.to_string(), p.time_unix_nano / 1_000_000_000))
                .or_default()
                .push((dims, agg));
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for ((name, secs), series) in groups {
        let all: BTreeSet<&str> = series
            .iter()
            .flat_map(|(d, _)| d.iter().map(|(k, _)| k.as_str()))
            .collect();
        if all.len() > MAX_DIMENSIONS {
            skipped.dimensions += (all.len() - MAX_DIMENSIONS) as u64;
        }
        let names: Vec<&str> = all.into_iter().take(MAX_DIMENSIONS).collect();
        let series_json: Vec<Value> = series
            .iter()
            .map(|(dims, (min, max, sum, count))| {
                let values: Vec<String> = names
                    .iter()
                    .map(|n| {
                        dims.iter()
                            .find(|(k, _)| k == n)
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    })
                    .collect();
                let mut s = Map::new();
                if !names.is_empty() {
                    s.insert("dimValues".into(), json!(values));
                }
                s.insert("min".into(), json!(min));
                s.insert("max".into(), json!(max));
                s.insert("sum".into(), json!(sum));
                s.insert("count".into(), json!(count));
                Value::Object(s)
            })
            .collect();
        let mut base = Map::new();
        base.insert("metric".into(), json!(name));
        base.insert("namespace".into(), json!(namespace));
        if !names.is_empty() {
            base.insert("dimNames".into(), json!(names));
        }
        base.insert("series".into(), Value::Array(series_json));
        out.push(MetricRequest {
            body: json!({
                "time": rfc3339(secs * 1_000_000_000, 0),
                "data": { "baseData": Value::Object(base) },
            }),
            points: series.len() as u64,
        });
    }
    (out, skipped)
}

/// One Logs Ingestion row per log record.
pub fn log_rows(batch: &Batch, now_unix_nanos: u64) -> Vec<Value> {
    let resource = attrs_json(&batch.resource.attributes);
    batch
        .logs
        .iter()
        .map(|l| {
            let t = if l.time_unix_nano != 0 {
                l.time_unix_nano
            } else if l.observed_time_unix_nano != 0 {
                l.observed_time_unix_nano
            } else {
                now_unix_nanos
            };
            let mut row = Map::new();
            row.insert("TimeGenerated".into(), json!(rfc3339(t, 6)));
            row.insert("SeverityText".into(), json!(l.severity_text.as_str()));
            row.insert("SeverityNumber".into(), json!(l.severity_number));
            row.insert(
                "Body".into(),
                match &l.body {
                    AnyValue::Str(s) => json!(s.as_str()),
                    other => json!(value_text(other)),
                },
            );
            row.insert("Attributes".into(), attrs_json(&l.attributes));
            row.insert("Resource".into(), resource.clone());
            if l.trace_id != [0; 16] {
                row.insert("TraceId".into(), json!(hex::encode(&l.trace_id)));
            }
            if l.span_id != [0; 8] {
                row.insert("SpanId".into(), json!(hex::encode(&l.span_id)));
            }
            Value::Object(row)
        })
        .collect()
}

/// One Logs Ingestion call: a JSON array body and the indices of its rows.
pub type Chunk = (Vec<u8>, Vec<usize>);

/// Splits rows into JSON arrays of at most `max_bytes` each. Returns the bodies
/// with the row indices in each, and the indices of rows too large to send alone.
pub fn chunk_rows(rows: &[Value], max_bytes: usize) -> (Vec<Chunk>, Vec<usize>) {
    let mut chunks = Vec::new();
    let mut too_large = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut idx = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let s = serde_json::to_vec(row).unwrap_or_default();
        if s.len() + 2 > max_bytes {
            too_large.push(i);
            continue;
        }
        // "[" + rows joined by "," + "]"
        if !idx.is_empty() && cur.len() + 1 + s.len() + 1 > max_bytes {
            cur.push(b']');
            chunks.push((std::mem::take(&mut cur), std::mem::take(&mut idx)));
        }
        cur.push(if idx.is_empty() { b'[' } else { b',' });
        cur.extend_from_slice(&s);
        idx.push(i);
    }
    if !idx.is_empty() {
        cur.push(b']');
        chunks.push((cur, idx));
    }
    (chunks, too_large)
}

/// Application Insights connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// `iKey` of every envelope.
    pub instrumentation_key: String,
    /// Base URL; `/v2.1/track` is appended.
    pub ingestion_endpoint: String,
    /// `Authorization=AAD`: send a Microsoft Entra token.
    pub entra_auth: bool,
}

/// Parses `Key=Value;Key=Value` (keys case-insensitive): `InstrumentationKey`
/// (required), `IngestionEndpoint`, else `EndpointSuffix` (+ `Location`) giving
/// `https://[{Location}.]dc.{EndpointSuffix}`, else the global endpoint;
/// `Authorization=AAD`.
pub fn parse_connection_string(s: &str) -> Result<ConnectionString, String> {
    let mut map = BTreeMap::new();
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not Key=Value"))?;
        map.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let ikey = map
        .get("instrumentationkey")
        .filter(|v| !v.is_empty())
        .ok_or("InstrumentationKey is missing")?
        .clone();
    let endpoint = if let Some(e) = map.get("ingestionendpoint").filter(|v| !v.is_empty()) {
        e.trim_end_matches('/').to_string()
    } else if let Some(suffix) = map.get("endpointsuffix").filter(|v| !v.is_empty()) {
        let suffix = suffix.trim_matches('.');
        match map.get("location").filter(|v| !v.is_empty()) {
            Some(loc) => format!("https://{loc}.dc.{suffix}"),
            None => format!("https://dc.{suffix}"),
        }
    } else {
        DEFAULT_INGESTION_ENDPOINT.to_string()
    };
    let entra_auth = map
        .get("authorization")
        .is_some_and(|v| v.eq_ignore_ascii_case("aad"));
    Ok(ConnectionString {
        instrumentation_key: ikey,
        ingestion_endpoint: endpoint,
        entra_auth,
    })
}

fn is_request(kind: SpanKind) -> bool {
    matches!(kind, SpanKind::Server | SpanKind::Consumer)
}

fn dependency_type(s: &Span) -> String {
    let a = &s.attributes;
    if attr(a, "http.request.method").is_some() || attr(a, "http.method").is_some() {
        "HTTP".into()
    } else if let Some(v) = attr_text(a, &["db.system.name", "db.system"]) {
        v
    } else if let Some(v) = attr_text(a, &["rpc.system"]) {
        v
    } else if let Some(v) = attr_text(a, &["messaging.system"]) {
        v
    } else if s.kind == SpanKind::Internal || s.kind == SpanKind::Unspecified {
        "InProc".into()
    } else {
        "Dependency".into()
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// One Breeze envelope per span, in batch order.
pub fn envelopes(batch: &Batch, ikey: &str) -> Vec<Value> {
    let res = &batch.resource.attributes;
    let role = attr_text(res, &["service.name"]);
    let instance = attr_text(res, &["host.name", "service.instance.id"]);
    batch
        .spans
        .iter()
        .map(|s| {
            let request = is_request(s.kind);
            let mut tags = Map::new();
            tags.insert("ai.operation.id".into(), json!(hex::encode(&s.trace_id)));
            if s.parent_span_id != [0; 8] {
                tags.insert(
                    "ai.operation.parentId".into(),
                    json!(hex::encode(&s.parent_span_id)),
                );
            }
            if request {
                tags.insert("ai.operation.name".into(), json!(s.name.as_str()));
            }
            if let Some(r) = &role {
                tags.insert("ai.cloud.role".into(), json!(r));
            }
            if let Some(i) = &instance {
                tags.insert("ai.cloud.roleInstance".into(), json!(i));
            }
            tags.insert(
                "ai.internal.sdkVersion".into(),
                json!(concat!("tfo-agent:", env!("CARGO_PKG_VERSION"))),
            );
            let mut props = Map::new();
            for kv in s.attributes.iter() {
                props.insert(
                    truncate(kv.key.to_string(), 150),
                    json!(truncate(value_text(&kv.value), MAX_PROPERTY_LEN)),
                );
            }
            if s.status_code == StatusCode::Error && !s.status_message.is_empty() {
                props.insert(
                    "otel.status_description".into(),
                    json!(truncate(s.status_message.to_string(), MAX_PROPERTY_LEN)),
                );
            }
            let code = attr_text(
                &s.attributes,
                &[
                    "http.response.status_code",
                    "http.status_code",
                    "rpc.grpc.status_code",
                ],
            )
            .unwrap_or_else(|| "0".into());
            let mut base = Map::new();
            base.insert("ver".into(), json!(2));
            base.insert("id".into(), json!(hex::encode(&s.span_id)));
            base.insert("name".into(), json!(s.name.as_str()));
            base.insert(
                "duration".into(),
                json!(timespan(
                    s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano)
                )),
            );
            base.insert("success".into(), json!(s.status_code != StatusCode::Error));
            if request {
                base.insert("responseCode".into(), json!(code));
                if let Some(u) = attr_text(&s.attributes, &["url.full", "http.url"]) {
                    base.insert("url".into(), json!(u));
                }
            } else {
                base.insert("resultCode".into(), json!(code));
                base.insert("type".into(), json!(dependency_type(s)));
                if let Some(t) = attr_text(
                    &s.attributes,
                    &["server.address", "net.peer.name", "peer.service", "db.name"],
                ) {
                    base.insert("target".into(), json!(t));
                }
                if let Some(d) = attr_text(&s.attributes, &["url.full", "http.url", "db.statement"])
                {
                    base.insert("data".into(), json!(truncate(d, MAX_PROPERTY_LEN)));
                }
            }
            if !props.is_empty() {
                base.insert("properties".into(), Value::Object(props));
            }
            let (name, base_type) = if request {
                ("Microsoft.ApplicationInsights.Request", "RequestData")
            } else {
                (
                    "Microsoft.ApplicationInsights.RemoteDependency",
                    "RemoteDependencyData",
                )
            };
            json!({
                "name": name,
                "time": rfc3339(s.start_time_unix_nano, 6),
                "iKey": ikey,
                "tags": Value::Object(tags),
                "data": { "baseType": base_type, "baseData": Value::Object(base) },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use tfo_plugin_api::{DataPoint, HistogramValue, LogRecord, Metric, Resource};

    use super::*;

    const T: u64 = 1_700_000_010_123_456_789; // 2023-11-14T22:13:30.123456789Z

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(T, 6), "2023-11-14T22:13:30.123456Z");
        assert_eq!(rfc3339(T, 9), "2023-11-14T22:13:30.123456789Z");
        // 2000-02-29 (leap day), 951782400 s.
        assert_eq!(rfc3339(951_782_400_000_000_000, 0), "2000-02-29T00:00:00Z");
        assert_eq!(
            rfc3339(4_102_444_799_000_000_000, 0),
            "2099-12-31T23:59:59Z"
        );
    }

    #[test]
    fn timespans() {
        assert_eq!(timespan(0), "0.00:00:00.0000000");
        assert_eq!(timespan(1_500_000_000), "0.00:00:01.5000000");
        assert_eq!(timespan(123_456_789), "0.00:00:00.1234567");
        assert_eq!(
            timespan((86_400 + 2 * 3600 + 3 * 60 + 4) * 1_000_000_000 + 100),
            "1.02:03:04.0000001"
        );
    }

    #[test]
    fn connection_strings() {
        let c = parse_connection_string(
            "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/",
        )
        .unwrap();
        assert_eq!(
            c.instrumentation_key,
            "00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(
            c.ingestion_endpoint,
            "https://westeurope-5.in.applicationinsights.azure.com"
        );
        assert!(!c.entra_auth);
        let c = parse_connection_string(
            "instrumentationkey=k;EndpointSuffix=ai.contoso.com;Location=westus2;Authorization=AAD",
        )
        .unwrap();
        assert_eq!(c.ingestion_endpoint, "https://westus2.dc.ai.contoso.com");
        assert!(c.entra_auth);
        let c = parse_connection_string("InstrumentationKey=k").unwrap();
        assert_eq!(c.ingestion_endpoint, DEFAULT_INGESTION_ENDPOINT);
        assert!(parse_connection_string("IngestionEndpoint=https://x").is_err());
        assert!(parse_connection_string("garbage").is_err());
    }

    fn point(t: u64, v: PointValue, attrs: Vec<KeyValue>) -> DataPoint {
        DataPoint {
            attributes: attrs.into(),
            start_time_unix_nano: 0,
            time_unix_nano: t,
            value: v,
        }
    }

    #[test]
    fn metrics_golden() {
        let mut h = Metric::gauge("latency", "ms", T, 0.0, vec![]);
        h.points = vec![
            point(
                T,
                PointValue::Histogram(HistogramValue {
                    count: 4,
                    sum: Some(10.0).into(),
                    bounds: vec![].into(),
                    bucket_counts: vec![4].into(),
                    min: Some(1.0).into(),
                    max: Some(4.0).into(),
                }),
                vec![],
            ),
            point(
                T,
                PointValue::Histogram(HistogramValue {
                    count: 0,
                    sum: None.into(),
                    bounds: vec![].into(),
                    bucket_counts: vec![0].into(),
                    min: None.into(),
                    max: None.into(),
                }),
                vec![],
            ),
        ]
        .into();
        let mut q = Metric::gauge("queue", "1", T, 0.0, vec![]);
        q.points = vec![
            point(T, PointValue::Int(3), vec![KeyValue::new("queue", "a")]),
            point(
                T,
                PointValue::Double(5.5),
                vec![KeyValue::new("kind", "jpeg"), KeyValue::new("queue", "b")],
            ),
            point(T + 60_000_000_000, PointValue::Double(f64::NAN), vec![]),
        ]
        .into();
        let batch = Batch {
            metrics: vec![q, h].into(),
            ..Batch::default()
        };
        let (reqs, skipped) = metric_requests(&batch, "NS");
        assert_eq!(
            skipped,
            Skipped {
                points: 2,
                dimensions: 0
            }
        );
        let bodies: Vec<Value> = reqs.iter().map(|r| r.body.clone()).collect();
        assert_eq!(
            Value::Array(bodies),
            json!([
                {"time": "2023-11-14T22:13:30Z", "data": {"baseData": {
                    "metric": "latency", "namespace": "NS",
                    "series": [{"min": 1.0, "max": 4.0, "sum": 10.0, "count": 4}]}}},
                {"time": "2023-11-14T22:13:30Z", "data": {"baseData": {
                    "metric": "queue", "namespace": "NS", "dimNames": ["kind", "queue"],
                    "series": [
                        {"dimValues": ["", "a"], "min": 3.0, "max": 3.0, "sum": 3.0, "count": 1},
                        {"dimValues": ["jpeg", "b"], "min": 5.5, "max": 5.5, "sum": 5.5, "count": 1}
                    ]}}}
            ])
        );
        assert_eq!(reqs.iter().map(|r| r.points).sum::<u64>(), 3);
    }

    #[test]
    fn at_most_ten_dimensions() {
        let attrs: Vec<KeyValue> = (0..12)
            .map(|i| KeyValue::new(format!("k{i:02}"), i as i64))
            .collect();
        let batch = Batch {
            metrics: vec![Metric::gauge("m", "1", T, 1.0, attrs)].into(),
            ..Batch::default()
        };
        let (reqs, skipped) = metric_requests(&batch, "NS");
        assert_eq!(skipped.dimensions, 2);
        let names = reqs[0].body["data"]["baseData"]["dimNames"]
            .as_array()
            .unwrap();
        assert_eq!(names.len(), 10);
        assert_eq!(names[9], "k09");
    }

    #[test]
    fn log_rows_golden() {
        let batch = Batch {
            resource: Resource {
                attributes: vec![KeyValue::new("host.name", "h1")].into(),
            },
            logs: vec![
                LogRecord {
                    time_unix_nano: T,
                    observed_time_unix_nano: 0,
                    severity_number: 17,
                    severity_text: "ERROR".into(),
                    body: "disk full".into(),
                    attributes: vec![KeyValue::new("n", 3i64), KeyValue::new("ok", false)].into(),
                    trace_id: [1; 16],
                    span_id: [2; 8],
                },
                LogRecord {
                    time_unix_nano: 0,
                    observed_time_unix_nano: 0,
                    severity_number: 0,
                    severity_text: "".into(),
                    body: AnyValue::Int(7),
                    attributes: vec![].into(),
                    trace_id: [0; 16],
                    span_id: [0; 8],
                },
            ]
            .into(),
            ..Batch::default()
        };
        let rows = log_rows(&batch, 1_000_000_000);
        assert_eq!(
            Value::Array(rows.clone()),
            json!([
                {"TimeGenerated": "2023-11-14T22:13:30.123456Z", "SeverityText": "ERROR",
                 "SeverityNumber": 17, "Body": "disk full", "Attributes": {"n": 3, "ok": false},
                 "Resource": {"host.name": "h1"},
                 "TraceId": "01010101010101010101010101010101", "SpanId": "0202020202020202"},
                {"TimeGenerated": "1970-01-01T00:00:01.000000Z", "SeverityText": "",
                 "SeverityNumber": 0, "Body": "7", "Attributes": {}, "Resource": {"host.name": "h1"}}
            ])
        );
        // Chunking: each chunk is a valid JSON array under the limit.
        let many: Vec<Value> = (0..50)
            .map(|i| json!({"i": i, "pad": "x".repeat(100)}))
            .collect();
        let (chunks, too_large) = chunk_rows(&many, 1000);
        assert!(too_large.is_empty());
        assert!(chunks.len() > 1);
        let mut seen = Vec::new();
        for (body, idx) in &chunks {
            assert!(body.len() <= 1000);
            let arr: Vec<Value> = serde_json::from_slice(body).unwrap();
            assert_eq!(arr.len(), idx.len());
            seen.extend(idx.iter().copied());
        }
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        let (_, too_large) = chunk_rows(&[json!({"pad": "x".repeat(2000)})], 1000);
        assert_eq!(too_large, vec![0]);
    }

    #[test]
    fn envelopes_golden() {
        let span = |kind, parent: [u8; 8], status, attrs: Vec<KeyValue>| Span {
            trace_id: [0xab; 16],
            span_id: [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08],
            parent_span_id: parent,
            name: "GET /items".into(),
            kind,
            start_time_unix_nano: T,
            end_time_unix_nano: T + 1_500_000_000,
            status_code: status,
            status_message: "boom".into(),
            attributes: attrs.into(),
            events: vec![].into(),
        };
        let batch = Batch {
            resource: Resource {
                attributes: vec![
                    KeyValue::new("service.name", "shop"),
                    KeyValue::new("host.name", "h1"),
                ]
                .into(),
            },
            spans: vec![
                span(
                    SpanKind::Server,
                    [0; 8],
                    StatusCode::Unset,
                    vec![KeyValue::new("http.response.status_code", 200i64)],
                ),
                span(
                    SpanKind::Client,
                    [9; 8],
                    StatusCode::Error,
                    vec![
                        KeyValue::new("db.system", "postgresql"),
                        KeyValue::new("server.address", "db1"),
                    ],
                ),
            ]
            .into(),
            ..Batch::default()
        };
        let e = envelopes(&batch, "ikey-1");
        let sdk = concat!("tfo-agent:", env!("CARGO_PKG_VERSION"));
        assert_eq!(
            Value::Array(e),
            json!([
                {"name": "Microsoft.ApplicationInsights.Request",
                 "time": "2023-11-14T22:13:30.123456Z", "iKey": "ikey-1",
                 "tags": {"ai.operation.id": "abababababababababababababababab",
                          "ai.operation.name": "GET /items", "ai.cloud.role": "shop",
                          "ai.cloud.roleInstance": "h1", "ai.internal.sdkVersion": sdk},
                 "data": {"baseType": "RequestData", "baseData": {
                    "ver": 2, "id": "0102030405060708", "name": "GET /items",
                    "duration": "0.00:00:01.5000000", "success": true, "responseCode": "200",
                    "properties": {"http.response.status_code": "200"}}}},
                {"name": "Microsoft.ApplicationInsights.RemoteDependency",
                 "time": "2023-11-14T22:13:30.123456Z", "iKey": "ikey-1",
                 "tags": {"ai.operation.id": "abababababababababababababababab",
                          "ai.operation.parentId": "0909090909090909",
                          "ai.cloud.role": "shop", "ai.cloud.roleInstance": "h1",
                          "ai.internal.sdkVersion": sdk},
                 "data": {"baseType": "RemoteDependencyData", "baseData": {
                    "ver": 2, "id": "0102030405060708", "name": "GET /items",
                    "duration": "0.00:00:01.5000000", "success": false, "resultCode": "0",
                    "type": "postgresql", "target": "db1",
                    "properties": {"db.system": "postgresql", "server.address": "db1",
                                   "otel.status_description": "boom"}}}}
            ])
        );
    }
}
