//! A batch's spans -> OTLP/HTTP request bodies for a Jaeger collector.
//!
//! Jaeger receives OpenTelemetry data natively: its collector serves the OTLP/HTTP
//! receiver on port 4318, `POST /v1/traces` with an `ExportTraceServiceRequest` in
//! binary protobuf (<https://www.jaegertracing.io/docs/latest/apis/#opentelemetry-protocol-stable>,
//! and the OTLP specification <https://opentelemetry.io/docs/specs/otlp/#otlphttp>).
//! The message itself is built by the agent's shared OTLP encoder
//! ([`tfo_plugin_common::otlp::traces`]); this module only prepares its input and
//! cuts it into requests:
//! - the resource gets `service.name` = the configured `service_name` when it has
//!   none (Jaeger files spans without it under `unknown_service`) and the configured
//!   `tags` it does not already have;
//! - spans with an all-zero trace id or span id (invalid in OpenTelemetry, and
//!   refused by Jaeger's storage) are dropped and counted instead of risking the
//!   request;
//! - at most `batch_size` spans per request; a request whose body would exceed
//!   `max_request_bytes` is split in halves until it fits, and a single span that
//!   alone exceeds it is dropped and counted.

use tfo_plugin_api::{AnyValue, Batch, KeyValue, Resource, Span};
use tfo_plugin_common::otlp::{self, prost::Message as _};

/// What the encoder needs from the config.
#[derive(Debug, Clone)]
pub struct Options {
    /// `service.name` of resources without one.
    pub service_name: String,
    /// Attributes added to the resource when absent.
    pub tags: Vec<(String, String)>,
    /// Most spans per request.
    pub batch_size: usize,
    /// Most bytes per request body.
    pub max_request_bytes: usize,
}

/// One request body and the spans it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `ExportTraceServiceRequest`, binary protobuf.
    pub body: Vec<u8>,
    /// Spans in it.
    pub spans: u64,
}

/// A batch's spans as requests.
#[derive(Debug, Default, Clone)]
pub struct Encoded {
    /// The requests, in span order.
    pub requests: Vec<Request>,
    /// Spans not sent (invalid ids, too large).
    pub dropped: u64,
    /// Why (one line per distinct reason).
    pub problems: Vec<String>,
}

impl Encoded {
    fn problem(&mut self, n: u64, why: String) {
        self.dropped += n;
        if self.problems.len() < 20 && !self.problems.contains(&why) {
            self.problems.push(why);
        }
    }
}

/// The resource as sent: the batch's, plus `service.name` and the tags it lacks.
pub fn resource(r: &Resource, opts: &Options) -> Resource {
    let mut attrs: Vec<KeyValue> = r.attributes.to_vec();
    let has = |attrs: &[KeyValue], k: &str| attrs.iter().any(|kv| kv.key.as_str() == k);
    let has_service = attrs.iter().any(|kv| {
        kv.key.as_str() == "service.name" && !matches!(&kv.value, AnyValue::Str(s) if s.is_empty())
    });
    if !has_service {
        attrs.retain(|kv| kv.key.as_str() != "service.name");
        attrs.push(KeyValue::new("service.name", opts.service_name.as_str()));
    }
    for (k, v) in &opts.tags {
        if !has(&attrs, k) {
            attrs.push(KeyValue::new(k.as_str(), v.as_str()));
        }
    }
    Resource {
        attributes: attrs.into(),
    }
}

fn body(resource: &Resource, spans: &[Span]) -> Vec<u8> {
    let b = Batch {
        resource: resource.clone(),
        spans: spans.to_vec().into(),
        ..Default::default()
    };
    otlp::traces(&b)
        .map(|req| req.encode_to_vec())
        .unwrap_or_default()
}

/// Encodes the spans of a batch (metrics and logs are not Jaeger's business and
/// are ignored).
pub fn encode(batch: &Batch, opts: &Options) -> Encoded {
    let mut out = Encoded::default();
    let resource = resource(&batch.resource, opts);
    let mut valid = Vec::with_capacity(batch.spans.len());
    for s in batch.spans.iter() {
        if s.trace_id.iter().all(|b| *b == 0) || s.span_id.iter().all(|b| *b == 0) {
            out.problem(
                1,
                "span with an all-zero trace id or span id (invalid in OpenTelemetry)".into(),
            );
        } else {
            valid.push(s.clone());
        }
    }
    for chunk in valid.chunks(opts.batch_size.max(1)) {
        split(&resource, chunk, opts, &mut out);
    }
    out
}

/// Adds the requests for `spans`, halving until each fits.
fn split(resource: &Resource, spans: &[Span], opts: &Options, out: &mut Encoded) {
    let b = body(resource, spans);
    if b.len() <= opts.max_request_bytes {
        out.requests.push(Request {
            body: b,
            spans: spans.len() as u64,
        });
    } else if spans.len() == 1 {
        out.problem(
            1,
            format!(
                "span {:?} alone is {} bytes, more than max_request_bytes ({})",
                spans[0].name.as_str(),
                b.len(),
                opts.max_request_bytes
            ),
        );
    } else {
        let (a, z) = spans.split_at(spans.len() / 2);
        split(resource, a, opts, out);
        split(resource, z, opts, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otlp::opentelemetry_proto::tonic::{
        collector::trace::v1::ExportTraceServiceRequest, common::v1::any_value::Value,
    };
    use tfo_plugin_api::{SpanKind, StatusCode};

    fn opts() -> Options {
        Options {
            service_name: "tfo-agent".into(),
            tags: vec![("env".into(), "prod".into())],
            batch_size: 1000,
            max_request_bytes: 4 << 20,
        }
    }

    fn span(i: u8, name: &str) -> Span {
        Span {
            trace_id: [0x5b; 16],
            span_id: [i + 1; 8],
            parent_span_id: [0; 8],
            name: name.into(),
            kind: SpanKind::Client,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_100_000_000,
            status_code: StatusCode::Unset,
            status_message: "".into(),
            attributes: vec![].into(),
            events: vec![].into(),
        }
    }

    fn decode(r: &Request) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest::decode(&r.body[..]).unwrap()
    }

    fn resource_attrs(req: &ExportTraceServiceRequest) -> Vec<(String, String)> {
        req.resource_spans[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .map(|kv| {
                let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(Value::StringValue(s)) => s.clone(),
                    other => format!("{other:?}"),
                };
                (kv.key.clone(), v)
            })
            .collect()
    }

    /// Golden bytes of the smallest request, written from the protobuf encoding
    /// rules and opentelemetry-proto's field numbers: ExportTraceServiceRequest
    /// {resource_spans(1): ResourceSpans {resource(1): Resource {attributes(1):
    /// KeyValue {key(1) "service.name", value(2) AnyValue {string_value(1) "s"}}},
    /// scope_spans(2): ScopeSpans {scope(1): {}, spans(2): Span {trace_id(1) 16 x
    /// 0x01, span_id(2) 8 x 0x02, name(5) "n", kind(6) 2 (SERVER),
    /// start_time_unix_nano(7) fixed64 1, end_time_unix_nano(8) fixed64 2}}}}.
    #[test]
    fn golden_minimal_request() {
        let batch = Batch {
            resource: Resource {
                attributes: vec![KeyValue::new("service.name", "s")].into(),
            },
            spans: vec![Span {
                trace_id: [1; 16],
                span_id: [2; 8],
                parent_span_id: [0; 8],
                name: "n".into(),
                kind: SpanKind::Server,
                start_time_unix_nano: 1,
                end_time_unix_nano: 2,
                status_code: StatusCode::Unset,
                status_message: "".into(),
                attributes: vec![].into(),
                events: vec![].into(),
            }]
            .into(),
            ..Default::default()
        };
        let e = encode(
            &batch,
            &Options {
                tags: vec![],
                ..opts()
            },
        );
        assert_eq!(e.requests.len(), 1);
        let mut span = vec![0x0a, 16];
        span.extend([1u8; 16]);
        span.extend([0x12, 8]);
        span.extend([2u8; 8]);
        span.extend([0x2a, 1, b'n', 0x30, 2]);
        span.extend([0x39, 1, 0, 0, 0, 0, 0, 0, 0]);
        span.extend([0x41, 2, 0, 0, 0, 0, 0, 0, 0]);
        let mut scope_spans = vec![0x0a, 0]; // scope: empty InstrumentationScope
        scope_spans.push(0x12);
        scope_spans.push(span.len() as u8);
        scope_spans.extend(&span);
        let any = [0x0a, 1, b's'];
        let mut kv = vec![0x0a, 12];
        kv.extend(b"service.name");
        kv.push(0x12);
        kv.push(any.len() as u8);
        kv.extend(any);
        let mut res = vec![0x0a, kv.len() as u8];
        res.extend(&kv);
        let mut rs = vec![0x0a, res.len() as u8];
        rs.extend(&res);
        rs.push(0x12);
        rs.push(scope_spans.len() as u8);
        rs.extend(&scope_spans);
        let mut want = vec![0x0a, rs.len() as u8];
        want.extend(&rs);
        assert_eq!(e.requests[0].body, want);
    }

    #[test]
    fn service_name_and_tags_are_added_only_when_missing() {
        let mut batch = Batch {
            spans: vec![span(0, "a")].into(),
            ..Default::default()
        };
        let req = decode(&encode(&batch, &opts()).requests[0]);
        assert_eq!(
            resource_attrs(&req),
            [
                ("service.name".to_string(), "tfo-agent".to_string()),
                ("env".to_string(), "prod".to_string())
            ]
        );
        batch.resource.attributes = vec![
            KeyValue::new("service.name", "shop"),
            KeyValue::new("env", "dev"),
        ]
        .into();
        let req = decode(&encode(&batch, &opts()).requests[0]);
        assert_eq!(
            resource_attrs(&req),
            [
                ("service.name".to_string(), "shop".to_string()),
                ("env".to_string(), "dev".to_string())
            ]
        );
        // An empty service.name is replaced.
        batch.resource.attributes = vec![KeyValue::new("service.name", "")].into();
        let req = decode(&encode(&batch, &opts()).requests[0]);
        assert_eq!(resource_attrs(&req)[0].1, "tfo-agent");
    }

    #[test]
    fn invalid_ids_are_dropped_alone() {
        let mut bad_trace = span(0, "bad-trace");
        bad_trace.trace_id = [0; 16];
        let mut bad_span = span(1, "bad-span");
        bad_span.span_id = [0; 8];
        let batch = Batch {
            spans: vec![bad_trace, span(2, "ok"), bad_span].into(),
            ..Default::default()
        };
        let e = encode(&batch, &opts());
        assert_eq!(e.dropped, 2);
        assert_eq!(e.problems.len(), 1);
        assert_eq!(e.requests.len(), 1);
        assert_eq!(e.requests[0].spans, 1);
        let req = decode(&e.requests[0]);
        assert_eq!(req.resource_spans[0].scope_spans[0].spans[0].name, "ok");
    }

    #[test]
    fn splitting_by_count_and_size() {
        let batch = Batch {
            spans: (0..5).map(|i| span(i, "s")).collect(),
            ..Default::default()
        };
        let e = encode(
            &batch,
            &Options {
                batch_size: 2,
                ..opts()
            },
        );
        assert_eq!(
            e.requests.iter().map(|r| r.spans).collect::<Vec<_>>(),
            [2, 2, 1]
        );

        // Big spans: each ~600 bytes; a 1500-byte limit forces small requests, and
        // one span of 5000 bytes is dropped alone.
        let mut spans: Vec<Span> = (0..6).map(|i| span(i, &"x".repeat(600))).collect();
        spans.insert(3, span(9, &"y".repeat(5000)));
        let batch = Batch {
            spans: spans.into(),
            ..Default::default()
        };
        let e = encode(
            &batch,
            &Options {
                max_request_bytes: 1500,
                ..opts()
            },
        );
        assert_eq!(e.dropped, 1, "{:?}", e.problems);
        assert!(e.requests.iter().all(|r| r.body.len() <= 1500));
        assert_eq!(e.requests.iter().map(|r| r.spans).sum::<u64>(), 6);
        let names: Vec<usize> = e
            .requests
            .iter()
            .flat_map(|r| decode(r).resource_spans[0].scope_spans[0].spans.clone())
            .map(|s| s.name.len())
            .collect();
        assert_eq!(names, [600; 6], "order kept, the big one left out");
    }

    #[test]
    fn no_spans_no_requests() {
        let batch = Batch::default();
        assert!(encode(&batch, &opts()).requests.is_empty());
    }
}
