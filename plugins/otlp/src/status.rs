//! `google.rpc.Status`, the body of every OTLP/HTTP 4xx and 5xx response (spec,
//! "Failures": <https://opentelemetry.io/docs/specs/otlp/#failures-1>).
//!
//! Only `code` (1) and `message` (2) are used; `details` (3, repeated `Any`) is
//! never written, and skipped like any unknown field when read. The type and its
//! parser are `tfo_plugin_common::otlp_http`'s (every OTLP/HTTP sink reads it);
//! the receiver's `google.rpc.Code` values are here.

/// `google.rpc.Status` with its `code` and `message` fields, shared with the other
/// OTLP/HTTP plugins (the exporter reads it, the receiver writes it).
pub use tfo_plugin_common::otlp_http::Status;

/// `google.rpc.Code` values used by the receiver.
pub mod code {
    /// The request was malformed (400, 413, 415).
    pub const INVALID_ARGUMENT: i32 = 3;
    /// The request took too long to arrive (408).
    pub const DEADLINE_EXCEEDED: i32 = 4;
    /// Unknown path (404).
    pub const NOT_FOUND: i32 = 5;
    /// Body over the size limit (413).
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    /// Method not supported (405).
    pub const UNIMPLEMENTED: i32 = 12;
    /// Try again later (503).
    pub const UNAVAILABLE: i32 = 14;
}

/// Reads a Status from an error response body, protobuf or JSON as the content type
/// says; `None` when it is neither or does not decode (shared implementation).
pub use tfo_plugin_common::otlp_http::parse_status as parse;

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn protobuf_wire_format() {
        let s = Status {
            code: 3,
            message: "bad".into(),
        };
        assert_eq!(s.encode_to_vec(), [0x08, 3, 0x12, 3, b'b', b'a', b'd']);
        // A `details` entry (field 3) is skipped.
        let with_details = [0x08, 3, 0x12, 1, b'x', 0x1a, 2, 0x0a, 0];
        assert_eq!(
            parse(Some("application/x-protobuf"), &with_details).unwrap(),
            Status {
                code: 3,
                message: "x".into()
            }
        );
    }

    #[test]
    fn json_form() {
        let s = parse(
            Some("application/json; charset=utf-8"),
            br#"{"code":14,"message":"later","details":[]}"#,
        )
        .unwrap();
        assert_eq!((s.code, s.message.as_str()), (14, "later"));
        assert!(parse(Some("text/plain"), b"x").is_none());
        assert!(parse(None, b"x").is_none());
    }
}
