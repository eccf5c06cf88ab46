//! Credential helpers shared by HTTP plugins.
//!
//! HTTP Basic authentication (RFC 7617) is `base64(user ":" password)` in the
//! `Authorization` header; base64 is the standard alphabet with padding (RFC 4648
//! §4), from the `base64` crate (already used by the OTLP plugin).

use base64::Engine as _;

/// Standard base64 with padding (RFC 4648 §4), used for Basic credentials and for
/// wire formats that carry bytes as text (OpenTelemetry bytes attributes).
pub fn base64(input: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(input)
}

/// The `Authorization` header value for HTTP Basic authentication (RFC 7617):
/// `Basic base64(user:password)`.
pub fn basic_auth_value(username: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64(format!("{username}:{password}").as_bytes())
    )
}

/// The `Authorization` header value for a bearer token (RFC 6750).
pub fn bearer_auth_value(token: &str) -> String {
    format!("Bearer {token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_test_vectors() {
        // RFC 4648 §10.
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, want) in cases {
            assert_eq!(base64(input.as_bytes()), want, "{input:?}");
        }
    }

    #[test]
    fn high_bytes_use_plus_and_slash() {
        assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
        assert_eq!(base64(&[0, 0, 0]), "AAAA");
    }

    #[test]
    fn basic_auth_matches_rfc7617_example() {
        // RFC 7617 §2: Aladdin / open sesame.
        assert_eq!(
            basic_auth_value("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(bearer_auth_value("abc"), "Bearer abc");
    }
}
