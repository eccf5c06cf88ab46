//! OTLP/JSON: the proto3 JSON mapping with OTLP's deviations (spec, "JSON Protobuf
//! Encoding", <https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>):
//! - `traceId`, `spanId` and `parentSpanId` are case-insensitive hex strings, not
//!   base64;
//! - senders write enums as integers; this receiver also accepts the enum names the
//!   standard mapping allows (`"kind": "SPAN_KIND_SERVER"`), being lenient costs
//!   nothing;
//! - receivers ignore unknown fields;
//! - keys are lowerCamelCase (the standard mapping's parsers also accept the original
//!   names, and so does this one);
//! - 64-bit integers are decimal strings when written, numbers or strings when read;
//!   doubles may be `"NaN"`, `"Infinity"`, `"-Infinity"`.
//!
//! The mapping itself is prost-reflect's (a complete proto3 JSON implementation)
//! driven by the descriptors opentelemetry-proto ships, so it always matches the
//! generated message types. opentelemetry-proto's own `with-serde` mapping is not
//! used: it rejects enum names and `"NaN"`/`"Infinity"` in most double fields, and
//! writes NaN as `null`. The hex ids are the only thing rewritten here: from hex to
//! base64 before decoding, and back after encoding.

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use opentelemetry_proto::tonic::collector::{
    logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse},
    metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse},
    trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
};
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};
use serde_json::Value;

/// A generated OTLP message type and its fully qualified protobuf name.
pub trait OtlpMessage: prost::Message + Default {
    /// e.g. `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`.
    const NAME: &'static str;
}

macro_rules! otlp_message {
    ($($t:ty => $name:literal),* $(,)?) => {$(
        impl OtlpMessage for $t {
            const NAME: &'static str = $name;
        }
    )*};
}

otlp_message! {
    ExportTraceServiceRequest => "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest",
    ExportTraceServiceResponse => "opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse",
    ExportMetricsServiceRequest => "opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest",
    ExportMetricsServiceResponse => "opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceResponse",
    ExportLogsServiceRequest => "opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest",
    ExportLogsServiceResponse => "opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse",
}

/// Field names (both spellings) whose bytes are hex in OTLP/JSON.
const HEX_ID_KEYS: [&str; 6] = [
    "traceId",
    "spanId",
    "parentSpanId",
    "trace_id",
    "span_id",
    "parent_span_id",
];

/// Encodes and decodes OTLP messages as OTLP/JSON. Holds the descriptor pool; one
/// per instance (not a static, so nothing outlives the library when it is
/// unloaded).
#[derive(Clone)]
pub struct JsonCodec {
    pool: DescriptorPool,
}

impl std::fmt::Debug for JsonCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonCodec")
    }
}

impl JsonCodec {
    /// Loads the OTLP descriptors shipped with opentelemetry-proto.
    pub fn new() -> Result<Self, String> {
        let pool = DescriptorPool::decode(opentelemetry_proto::DESCRIPTORS)
            .map_err(|e| format!("loading the OTLP descriptors: {e}"))?;
        for name in [
            ExportTraceServiceRequest::NAME,
            ExportMetricsServiceRequest::NAME,
            ExportLogsServiceRequest::NAME,
            ExportTraceServiceResponse::NAME,
            ExportMetricsServiceResponse::NAME,
            ExportLogsServiceResponse::NAME,
        ] {
            if pool.get_message_by_name(name).is_none() {
                return Err(format!("the OTLP descriptors lack {name}"));
            }
        }
        Ok(JsonCodec { pool })
    }

    fn descriptor<T: OtlpMessage>(&self) -> prost_reflect::MessageDescriptor {
        self.pool
            .get_message_by_name(T::NAME)
            .expect("checked in JsonCodec::new")
    }

    /// Decodes an OTLP/JSON body into `T`.
    pub fn decode<T: OtlpMessage>(&self, body: &[u8]) -> Result<T, String> {
        let mut value: Value =
            serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
        rewrite_ids(&mut value, &|s| {
            crate::hex::decode(s)
                .map(|b| BASE64.encode(b))
                .ok_or_else(|| format!("{s:?} is not a hex-encoded id"))
        })?;
        let options = DeserializeOptions::new().deny_unknown_fields(false);
        let dynamic =
            DynamicMessage::deserialize_with_options(self.descriptor::<T>(), value, &options)
                .map_err(|e| format!("invalid OTLP/JSON {}: {e}", short_name::<T>()))?;
        dynamic
            .transcode_to::<T>()
            .map_err(|e| format!("invalid OTLP/JSON {}: {e}", short_name::<T>()))
    }

    /// Encodes `msg` as OTLP/JSON: lowerCamelCase keys, integer enums, 64-bit integers
    /// as strings, hex ids, default values omitted.
    pub fn encode<T: OtlpMessage>(&self, msg: &T) -> Result<Vec<u8>, String> {
        let mut dynamic = DynamicMessage::new(self.descriptor::<T>());
        dynamic
            .transcode_from(msg)
            .map_err(|e| format!("encoding {}: {e}", short_name::<T>()))?;
        let options = SerializeOptions::new().use_enum_numbers(true);
        let mut value = dynamic
            .serialize_with_options(serde_json::value::Serializer, &options)
            .map_err(|e| format!("encoding {}: {e}", short_name::<T>()))?;
        rewrite_ids(&mut value, &|s| {
            BASE64
                .decode(s)
                .map(|b| crate::hex::encode(&b))
                .map_err(|e| format!("internal: id {s:?} is not base64: {e}"))
        })?;
        serde_json::to_vec(&value).map_err(|e| format!("encoding {}: {e}", short_name::<T>()))
    }
}

fn short_name<T: OtlpMessage>() -> &'static str {
    T::NAME.rsplit('.').next().unwrap_or(T::NAME)
}

/// Applies `f` to every string value under a hex-id key, at any depth. Object keys in
/// OTLP/JSON are always field names (attribute maps are arrays of `{key, value}`), so
/// matching on the key is exact.
fn rewrite_ids(v: &mut Value, f: &dyn Fn(&str) -> Result<String, String>) -> Result<(), String> {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if HEX_ID_KEYS.contains(&k.as_str()) {
                    if let Value::String(s) = child {
                        *s = f(s).map_err(|e| format!("{k}: {e}"))?;
                    }
                } else {
                    rewrite_ids(child, f)?;
                }
            }
        }
        Value::Array(items) => {
            for child in items {
                rewrite_ids(child, f)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::{
        collector::{logs::v1::ExportLogsPartialSuccess, trace::v1::ExportTracePartialSuccess},
        common::v1::any_value,
        metrics::v1::{metric, number_data_point},
    };

    fn codec() -> JsonCodec {
        JsonCodec::new().unwrap()
    }

    fn example(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn decodes_the_official_trace_example() {
        let req: ExportTraceServiceRequest = codec().decode(&example("trace.json")).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            crate::hex::encode(&span.trace_id),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(crate::hex::encode(&span.span_id), "eee19b7ec3c1b174");
        assert_eq!(crate::hex::encode(&span.parent_span_id), "eee19b7ec3c1b173");
        assert_eq!(span.kind, 2);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.name, "I'm a server span");
    }

    #[test]
    fn decodes_the_official_metrics_and_logs_examples() {
        let req: ExportMetricsServiceRequest = codec().decode(&example("metrics.json")).unwrap();
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let Some(metric::Data::Sum(sum)) = &metrics[0].data else {
            panic!("{:?}", metrics[0])
        };
        assert_eq!(sum.aggregation_temporality, 1);
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.data_points[0].value,
            Some(number_data_point::Value::AsDouble(5.0))
        );
        assert!(metrics
            .iter()
            .any(|m| matches!(m.data, Some(metric::Data::Histogram(_)))));

        let req: ExportLogsServiceRequest = codec().decode(&example("logs.json")).unwrap();
        let rec = &req.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(rec.severity_number, 10);
        assert_eq!(rec.trace_id.len(), 16);
        let int_attr = rec
            .attributes
            .iter()
            .find(|a| a.key == "int.attribute")
            .unwrap();
        assert_eq!(
            int_attr.value.as_ref().unwrap().value,
            Some(any_value::Value::IntValue(10))
        );
    }

    #[test]
    fn accepts_enum_names_numbers_as_numbers_nan_and_unknown_fields() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
            "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174",
            "kind":"SPAN_KIND_CLIENT","startTimeUnixNano":1544712660000000000,
            "status":{"code":"STATUS_CODE_ERROR"},"futureField":{"x":1},
            "attributes":[{"key":"n","value":{"doubleValue":"NaN"}}]}]}]}],
            "somethingNew":true}"#;
        let req: ExportTraceServiceRequest = codec().decode(body).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.kind, 3);
        assert_eq!(span.status.as_ref().unwrap().code, 2);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        let Some(any_value::Value::DoubleValue(d)) =
            span.attributes[0].value.as_ref().unwrap().value
        else {
            panic!()
        };
        assert!(d.is_nan());
    }

    #[test]
    fn null_means_absent() {
        let body = br#"{"resourceSpans":[{"resource":null,"scopeSpans":[{"scope":null,
            "spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":null,
            "attributes":null,"kind":null,"startTimeUnixNano":null}]}]}]}"#;
        let req: ExportTraceServiceRequest = codec().decode(body).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert!(span.span_id.is_empty() && span.attributes.is_empty());
        assert_eq!((span.kind, span.start_time_unix_nano), (0, 0));
        assert!(req.resource_spans[0].resource.is_none());
    }

    #[test]
    fn rejects_malformed_bodies_with_a_reason() {
        let c = codec();
        for (body, want) in [
            (&b"{"[..], "invalid JSON"),
            (b"[]", "ExportTraceServiceRequest"),
            (
                br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#,
                "traceId",
            ),
            (
                br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}"#,
                "ExportTraceServiceRequest",
            ),
        ] {
            let e = c.decode::<ExportTraceServiceRequest>(body).unwrap_err();
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(body));
        }
        // An enum name this version does not know is treated like an unknown field
        // (proto3 JSON with unknown fields ignored): the default value.
        let req: ExportTraceServiceRequest = c
            .decode(br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_NEW"}]}]}]}"#)
            .unwrap();
        assert_eq!(req.resource_spans[0].scope_spans[0].spans[0].kind, 0);
    }

    #[test]
    fn encodes_hex_ids_integer_enums_and_string_int64() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
            "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "kind":2,"startTimeUnixNano":"1544712660000000000","name":"x"}]}]}]}"#;
        let c = codec();
        let req: ExportTraceServiceRequest = c.decode(body).unwrap();
        let out: Value = serde_json::from_slice(&c.encode(&req).unwrap()).unwrap();
        let span = &out["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "5b8efff798038103d269b633813fc60c");
        assert_eq!(span["spanId"], "eee19b7ec3c1b174");
        assert_eq!(span["kind"], 2);
        assert_eq!(span["startTimeUnixNano"], "1544712660000000000");
        assert!(span.get("parentSpanId").is_none(), "{span}");
        // And back.
        let again: ExportTraceServiceRequest =
            c.decode(&serde_json::to_vec(&out).unwrap()).unwrap();
        assert_eq!(again, req);
    }

    #[test]
    fn responses_round_trip_with_partial_success() {
        let c = codec();
        let resp = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "bad ids".into(),
            }),
        };
        let json: Value = serde_json::from_slice(&c.encode(&resp).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"partialSuccess": {"rejectedSpans": "3", "errorMessage": "bad ids"}})
        );
        let empty = c.encode(&ExportLogsServiceResponse::default()).unwrap();
        assert_eq!(empty, b"{}");
        let back: ExportLogsServiceResponse = c
            .decode(br#"{"partialSuccess":{"rejectedLogRecords":2}}"#)
            .unwrap();
        assert_eq!(
            back.partial_success,
            Some(ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: String::new()
            })
        );
    }
}
