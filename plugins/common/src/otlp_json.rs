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
//! Why it is shared: the otlp plugin (receiver and exporter, `encoding: json`) and
//! the kafka plugin (`encoding: otlp_json`) both speak OTLP/JSON; one codec keeps
//! them byte-for-byte the same and is tested once.
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
        let value = self.to_value(msg)?;
        serde_json::to_vec(&value).map_err(|e| format!("encoding {}: {e}", short_name::<T>()))
    }

    /// `msg` as an OTLP/JSON value (what [`JsonCodec::encode`] serializes), for
    /// callers that print or embed it.
    pub fn to_value<T: OtlpMessage>(&self, msg: &T) -> Result<Value, String> {
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
        Ok(value)
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
