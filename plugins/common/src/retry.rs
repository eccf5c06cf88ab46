//! Turns HTTP outcomes into the host's retry vocabulary.
//!
//! The host owns retries (backoff with jitter, queueing); a plugin only says
//! whether trying again can help and how long the server asked it to wait:
//! - 2xx: delivered;
//! - 408 Request Timeout, 429 Too Many Requests and every 5xx: retryable, carrying
//!   the server's `Retry-After` (RFC 9110 §10.2.3: delta-seconds or an HTTP-date)
//!   so the host waits at least that long;
//! - any other status (other 4xx, an unexpected 1xx or 3xx): permanent, since the
//!   same request will be refused again;
//! - a transport failure (DNS, connect, TLS, timeout): retryable.
//!
//! Error messages carry the status and the start of the body (at most
//! [`BODY_EXCERPT`] bytes), which is where backends explain what they rejected.

use std::time::SystemTime;

use http::{header::RETRY_AFTER, HeaderMap, StatusCode};
use tfo_plugin_api::PluginError;

use crate::http::Response;

/// How many bytes of a response body an error message quotes.
pub const BODY_EXCERPT: usize = 300;

/// `Ok` for a 2xx answer, otherwise the error the host should act on (see the
/// module docs for the classification).
pub fn classify(resp: &Response) -> Result<(), PluginError> {
    classify_at(resp, SystemTime::now())
}

/// [`classify`] with an explicit clock, for an HTTP-date `Retry-After`.
pub fn classify_at(resp: &Response, now: SystemTime) -> Result<(), PluginError> {
    let status = resp.status;
    if (200..300).contains(&status) {
        return Ok(());
    }
    let message = describe(resp);
    if status == 408 || status == 429 || (500..600).contains(&status) {
        let err = PluginError::retryable(message);
        return Err(match retry_after_ms(&resp.headers, now) {
            Some(ms) => err.with_retry_after(ms),
            None => err,
        });
    }
    Err(PluginError::permanent(message))
}

/// A transport error (no HTTP answer): always retryable.
pub fn transport(err: String) -> PluginError {
    PluginError::retryable(err)
}

/// `HTTP <status> <reason>: <first bytes of the body>`.
pub fn describe(resp: &Response) -> String {
    let reason = StatusCode::from_u16(resp.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let excerpt = &resp.body[..resp.body.len().min(BODY_EXCERPT)];
    let text = String::from_utf8_lossy(excerpt);
    let text = text.trim();
    let mut msg = format!("HTTP {}", resp.status);
    if !reason.is_empty() {
        msg.push(' ');
        msg.push_str(reason);
    }
    if !text.is_empty() {
        msg.push_str(": ");
        msg.push_str(text);
        if resp.body.len() > BODY_EXCERPT {
            msg.push_str("...");
        }
    }
    msg
}

/// The delay a `Retry-After` header asks for, in milliseconds: delta-seconds
/// (`120`) or an HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`, a date in the past
/// meaning 0). `None` when absent or unparseable.
pub fn retry_after_ms(headers: &HeaderMap, now: SystemTime) -> Option<u64> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() {
        // Saturate absurd values instead of failing to parse them.
        let secs: u64 = value.parse().unwrap_or(u64::MAX);
        return Some(secs.saturating_mul(1000));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64)
            .unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tfo_plugin_api::ErrorKind;

    use super::*;

    fn retry_after(e: &PluginError) -> Option<u64> {
        e.retry_after_ms.into_option()
    }

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Response {
            status,
            headers: map,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn success_statuses() {
        for s in [200, 201, 202, 204, 299] {
            assert!(classify(&resp(s, &[], "")).is_ok(), "{s}");
        }
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 429, 500, 502, 503, 504, 599] {
            let e = classify(&resp(s, &[], "busy")).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Retryable, "{s}");
            assert!(e.message.contains(&s.to_string()), "{e}");
            assert!(e.message.contains("busy"), "{e}");
            assert_eq!(retry_after(&e), None);
        }
    }

    #[test]
    fn permanent_statuses() {
        for s in [400, 401, 403, 404, 413, 422, 301, 302, 101] {
            let e = classify(&resp(s, &[], "no")).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Permanent, "{s}");
        }
    }

    #[test]
    fn retry_after_delta_seconds() {
        let e = classify(&resp(429, &[("Retry-After", "7")], "")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Retryable);
        assert_eq!(retry_after(&e), Some(7000));
        let e = classify(&resp(503, &[("retry-after", " 0 ")], "")).unwrap_err();
        assert_eq!(retry_after(&e), Some(0));
    }

    #[test]
    fn retry_after_http_date() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        let later = "Wed, 21 Oct 2015 07:28:30 GMT";
        let e = classify_at(&resp(503, &[("Retry-After", later)], ""), now).unwrap_err();
        assert_eq!(retry_after(&e), Some(30_000));
        // A date in the past means "now".
        let e = classify_at(
            &resp(503, &[("Retry-After", later)], ""),
            now + Duration::from_secs(60),
        )
        .unwrap_err();
        assert_eq!(retry_after(&e), Some(0));
    }

    #[test]
    fn bad_or_missing_retry_after_is_ignored() {
        for v in ["soon", "-5", "1.5", ""] {
            let e = classify(&resp(429, &[("Retry-After", v)], "")).unwrap_err();
            assert_eq!(retry_after(&e), None, "{v:?}");
        }
        let huge = "99999999999999999999999";
        let e = classify(&resp(429, &[("Retry-After", huge)], "")).unwrap_err();
        assert_eq!(retry_after(&e), Some(u64::MAX));
    }

    #[test]
    fn retry_after_is_not_attached_to_permanent_errors() {
        let e = classify(&resp(400, &[("Retry-After", "5")], "bad")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Permanent);
        assert_eq!(retry_after(&e), None);
    }

    #[test]
    fn message_quotes_at_most_300_bytes_of_body() {
        let body = format!("{}{}", "a".repeat(300), "TAIL");
        let e = classify(&resp(400, &[], &body)).unwrap_err();
        assert!(e.message.starts_with("HTTP 400 Bad Request: aaa"), "{e}");
        assert!(!e.message.contains("TAIL"), "{e}");
        assert!(e.message.ends_with("..."), "{e}");
        // A multi-byte character cut in half does not break the message.
        let body = format!("{}é", "a".repeat(299));
        let e = classify(&resp(500, &[], &body)).unwrap_err();
        assert!(e.message.contains('\u{fffd}'), "{e}");
        // No body, no colon.
        let e = classify(&resp(404, &[], "")).unwrap_err();
        assert_eq!(e.message.as_str(), "HTTP 404 Not Found");
    }

    #[test]
    fn transport_errors_are_retryable() {
        let e = transport("connection refused".into());
        assert_eq!(e.kind, ErrorKind::Retryable);
        assert_eq!(e.message.as_str(), "connection refused");
    }
}
