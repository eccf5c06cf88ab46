//! The OTLP receiver's decoders (protobuf and JSON, each signal) and the conversion
//! to the agent's data model, on arbitrary request bodies.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tfo_otlp::{json::JsonCodec, receiver::decode_body};

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static CODEC: JsonCodec = JsonCodec::new().expect("descriptors");
    }
    CODEC.with(|codec| {
        for path in ["/v1/traces", "/v1/metrics", "/v1/logs"] {
            for ct in ["application/x-protobuf", "application/json"] {
                let _ = decode_body(path, ct, data, codec);
            }
        }
    });
});
