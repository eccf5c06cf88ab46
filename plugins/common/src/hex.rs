//! Lowercase hex for trace and span ids.
//!
//! Why it is shared: OTLP/JSON (spec, "JSON Protobuf Encoding": case-insensitive
//! hex, not base64) and most vendor JSON formats write trace and span ids as hex,
//! so nearly every plugin that sends spans or logs needs it; a dozen lines do not
//! justify a dependency, and they should not be written once per plugin either.

/// Lowercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Decodes hex in either case; `None` for an odd length or a non-hex digit.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.chunks_exact(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_case_insensitivity() {
        assert_eq!(super::encode(&[0x5b, 0x8e, 0x00, 0xff]), "5b8e00ff");
        assert_eq!(super::decode("5B8eFF00").unwrap(), [0x5b, 0x8e, 0xff, 0x00]);
        assert_eq!(super::decode("").unwrap(), Vec::<u8>::new());
        assert!(super::decode("abc").is_none());
        assert!(super::decode("zz").is_none());
        assert!(super::decode("+1").is_none());
    }
}
