//! OTLP/JSON encoding of the OTLP requests built by [`tfo_plugin_common::otlp`]
//! (spec: <https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>): the
//! proto3 JSON mapping, with OTLP's deviation that `traceId`, `spanId` and
//! `parentSpanId` are hex strings instead of base64.
//!
//! The mapping itself is prost-reflect's (a complete proto3 JSON implementation)
//! driven by the descriptors opentelemetry-proto ships, so it always matches the
//! generated message types; only the ids are rewritten here. This is the encode half
//! of `plugins/otlp/src/json.rs` (the otlp plugin's codec, which cannot be linked
//! from another cdylib); it belongs in `tfo-plugin-common` next to the protobuf
//! encoder once that crate is open for changes. opentelemetry-proto's own
//! `with-serde` mapping is not used: it writes NaN as `null`.

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::Value;

/// A generated OTLP request type and its fully qualified protobuf name.
pub trait OtlpMessage: prost::Message + Default {
    /// e.g. `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`.
    const NAME: &'static str;
}

impl OtlpMessage for ExportTraceServiceRequest {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest";
}
impl OtlpMessage for ExportMetricsServiceRequest {
    const NAME: &'static str =
        "opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest";
}
impl OtlpMessage for ExportLogsServiceRequest {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest";
}

/// Field names whose bytes are hex in OTLP/JSON.
const HEX_ID_KEYS: [&str; 3] = ["traceId", "spanId", "parentSpanId"];

/// Encodes OTLP requests as OTLP/JSON. Holds the descriptor pool; one per instance
/// (not a static, so nothing outlives the library when it is unloaded).
#[derive(Clone)]
pub struct OtlpJson {
    pool: DescriptorPool,
}

impl std::fmt::Debug for OtlpJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtlpJson")
    }
}

impl OtlpJson {
    /// Loads the OTLP descriptors shipped with opentelemetry-proto.
    pub fn new() -> Result<Self, String> {
        let pool = DescriptorPool::decode(opentelemetry_proto::DESCRIPTORS)
            .map_err(|e| format!("loading the OTLP descriptors: {e}"))?;
        for name in [
            ExportTraceServiceRequest::NAME,
            ExportMetricsServiceRequest::NAME,
            ExportLogsServiceRequest::NAME,
        ] {
            if pool.get_message_by_name(name).is_none() {
                return Err(format!("the OTLP descriptors lack {name}"));
            }
        }
        Ok(OtlpJson { pool })
    }

    /// `msg` as OTLP/JSON bytes.
    pub fn encode<T: OtlpMessage>(&self, msg: &T) -> Vec<u8> {
        self.to_value(msg)
            .and_then(|v| serde_json::to_vec(&v).map_err(|e| e.to_string()))
            // The descriptors and the generated types come from one crate version
            // (checked in `new`), so this cannot fail; an empty request is the
            // harmless answer if it ever did.
            .unwrap_or_else(|_| b"{}".to_vec())
    }

    /// `msg` as an OTLP/JSON value.
    pub fn to_value<T: OtlpMessage>(&self, msg: &T) -> Result<Value, String> {
        let desc = self
            .pool
            .get_message_by_name(T::NAME)
            .ok_or_else(|| format!("no descriptor for {}", T::NAME))?;
        let mut dynamic = DynamicMessage::new(desc);
        dynamic
            .transcode_from(msg)
            .map_err(|e| format!("transcoding {}: {e}", T::NAME))?;
        let options = SerializeOptions::new().use_enum_numbers(true);
        let mut value = dynamic
            .serialize_with_options(serde_json::value::Serializer, &options)
            .map_err(|e| format!("serializing {}: {e}", T::NAME))?;
        ids_to_hex(&mut value);
        Ok(value)
    }
}

/// Rewrites every base64 id under a hex-id key into hex, at any depth. Object keys
/// in OTLP/JSON are always field names (attribute maps are arrays of `{key,
/// value}`), so matching on the key is exact.
fn ids_to_hex(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if HEX_ID_KEYS.contains(&k.as_str()) {
                    if let Value::String(s) = child {
                        if let Ok(bytes) = BASE64.decode(s.as_bytes()) {
                            *s = crate::encode::hex(&bytes);
                        }
                    }
                } else {
                    ids_to_hex(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(ids_to_hex),
        _ => {}
    }
}
