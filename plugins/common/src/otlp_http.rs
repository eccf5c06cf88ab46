//! Sending OTLP protobuf over HTTP and reading the answers as the OTLP
//! specification defines them (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>).
//!
//! Why it is shared: several sinks post OTLP/HTTP (the otlp exporter, jaeger,
//! instana, manageengine, and the trace parts of dynatrace, datadog and alibaba),
//! and each had its own copy of the same rules. They live here once, tested once:
//! - [`protobuf_request`]: `POST`, `Content-Type: application/x-protobuf`, the body,
//!   optional gzip (`Content-Encoding: gzip`) ("OTLP/HTTP Request");
//! - [`narrow`] / [`error_for`]: 429, 502, 503 and 504 are retryable with the
//!   server's `Retry-After` ("Retryable Response Codes", "OTLP/HTTP Throttling");
//!   every other 4xx and 5xx is permanent ("MUST NOT be retried"). The shared
//!   [`retry::classify`] would also retry 408 and every 5xx: that is narrowed here.
//!   A vendor that documents more retryable codes (Dynatrace retries 500) keeps
//!   [`retry::classify`] and uses only [`partial_success`];
//! - [`Status`] / [`status_message`]: the `google.rpc.Status` body of error answers
//!   ("Failures"), protobuf or JSON as the content type says, quoted in messages;
//! - [`partial_success`]: the rejected count and message of a 200 answer ("Partial
//!   Success"), which must not be retried;
//! - [`Pending`]: the requests of a batch not yet delivered when a retryable failure
//!   stopped it, so the host's retry of the same batch sends only those and the
//!   backend does not store data twice.

use std::collections::VecDeque;

use prost::Message as _;
use serde::{Deserialize, Serialize};
use tfo_plugin_api::{Batch, ErrorKind, ExportOk, PluginError};

use crate::{
    http::{header::CONTENT_TYPE, Method, Request, Response, StatusCode},
    otlp::opentelemetry_proto::tonic::collector::{
        logs::v1::ExportLogsServiceResponse, metrics::v1::ExportMetricsServiceResponse,
        trace::v1::ExportTraceServiceResponse,
    },
    retry,
};

/// The statuses the OTLP specification lists as retryable.
pub const RETRYABLE_STATUSES: [u16; 4] = [429, 502, 503, 504];

/// The three OTLP signals, each with its own export path and response message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `/v1/metrics`, `ExportMetricsServiceResponse`.
    Metrics,
    /// `/v1/traces`, `ExportTraceServiceResponse`.
    Traces,
    /// `/v1/logs`, `ExportLogsServiceResponse`.
    Logs,
}

impl Signal {
    /// The OTLP/HTTP path of the signal (appended to a base URL).
    pub fn path(self) -> &'static str {
        match self {
            Signal::Metrics => "/v1/metrics",
            Signal::Traces => "/v1/traces",
            Signal::Logs => "/v1/logs",
        }
    }
}

/// `google.rpc.Status`, the body of every OTLP/HTTP 4xx and 5xx answer (spec,
/// "Failures"). Only `code` (1) and `message` (2) are used; `details` (3, repeated
/// `Any`) is skipped like any unknown field. Declared with prost's derive rather
/// than pulling a crate of Google API types for two fields.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    /// A `google.rpc.Code`; the spec says clients must not act on it.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Developer-facing explanation.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// Reads a [`Status`] from an error body, protobuf or JSON as the content type
/// says; `None` when it is neither or does not decode.
pub fn parse_status(content_type: Option<&str>, body: &[u8]) -> Option<Status> {
    let media = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    match media.as_str() {
        "application/x-protobuf" => Status::decode(body).ok(),
        // Leniently: proto3 JSON allows an int32 as a number or a string, and a
        // message is worth quoting even when another field is odd.
        "application/json" => {
            let v: serde_json::Value = serde_json::from_slice(body).ok()?;
            let o = v.as_object()?;
            let code = o
                .get("code")
                .and_then(|c| c.as_i64().or_else(|| c.as_str()?.trim().parse().ok()))
                .and_then(|c| i32::try_from(c).ok())
                .unwrap_or(0);
            let message = o.get("message").and_then(|m| m.as_str()).unwrap_or("");
            Some(Status {
                code,
                message: message.to_string(),
            })
        }
        _ => None,
    }
}

/// The non-empty `Status` message of an error answer, if its body has one.
pub fn status_message(resp: &Response) -> Option<String> {
    let ct = resp.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    parse_status(ct, &resp.body)
        .map(|s| s.message)
        .filter(|m| !m.is_empty())
}

/// An OTLP/HTTP export request: `POST url`, `Content-Type:
/// application/x-protobuf`, `body`, gzip-compressed when `gzip` is set. Callers
/// add their own headers (credentials, vendor headers).
pub fn protobuf_request(url: impl Into<String>, body: Vec<u8>, gzip: bool) -> Request {
    Request::new(Method::POST, url)
        .header("Content-Type", "application/x-protobuf")
        .body(body)
        .gzip(gzip)
}

/// Narrows an error from [`retry::classify`] to the OTLP rules: retryable only for
/// [`RETRYABLE_STATUSES`] (then keeping the server's `Retry-After`), permanent
/// otherwise. The message is left as it is.
pub fn narrow(mut e: PluginError, resp: &Response) -> PluginError {
    if e.kind == ErrorKind::Retryable && !RETRYABLE_STATUSES.contains(&resp.status) {
        e.kind = ErrorKind::Permanent;
        e.retry_after_ms = None.into();
    }
    e
}

/// The error for a non-2xx OTLP answer: classified by [`narrow`], with the message
/// `<url>: HTTP <code> <reason>: <Status message>` when the body holds a `Status`,
/// else `<url>: <status and body excerpt>`.
pub fn error_for(resp: &Response, url: &str) -> PluginError {
    let e = match retry::classify(resp) {
        Err(e) => e,
        Ok(()) => return PluginError::permanent(format!("{url}: unexpected success")),
    };
    let mut e = narrow(e, resp);
    let reason = StatusCode::from_u16(resp.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    e.message = match status_message(resp) {
        Some(m) => format!("{url}: HTTP {} {reason}: {m}", resp.status),
        None => format!("{url}: {}", e.message),
    }
    .into();
    e
}

/// Rejected items and message of a 2xx answer's `partial_success`: protobuf, or
/// OTLP/JSON (`partialSuccess`, int64 counts as numbers or strings) when the
/// content type says JSON. An empty or undecodable body is full success, as some
/// servers answer 200 with nothing.
pub fn partial_success(signal: Signal, resp: &Response) -> (u64, String) {
    if resp.body.is_empty() {
        return (0, String::new());
    }
    let json = resp
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if json {
        let count_key = match signal {
            Signal::Metrics => "rejectedDataPoints",
            Signal::Traces => "rejectedSpans",
            Signal::Logs => "rejectedLogRecords",
        };
        let v: Option<serde_json::Value> = serde_json::from_slice(&resp.body).ok();
        let p = v.as_ref().and_then(|v| v.get("partialSuccess"));
        let rejected = p
            .and_then(|p| p.get(count_key))
            .and_then(|r| r.as_u64().or_else(|| r.as_str()?.parse().ok()))
            .unwrap_or(0);
        let msg = p
            .and_then(|p| p.get("errorMessage"))
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_string();
        return (rejected, msg);
    }
    let b = &resp.body[..];
    let found = match signal {
        Signal::Traces => ExportTraceServiceResponse::decode(b)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_spans, p.error_message)),
        Signal::Metrics => ExportMetricsServiceResponse::decode(b)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_data_points, p.error_message)),
        Signal::Logs => ExportLogsServiceResponse::decode(b)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_log_records, p.error_message)),
    };
    match found {
        Some((n, m)) => (u64::try_from(n).unwrap_or(0), m),
        None => (0, String::new()),
    }
}

/// Replaces every occurrence of `secret` in `text` with `***`, so a credential
/// that a server or a URL echoes never reaches a log line or an error.
pub fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_string()
    } else {
        text.replace(secret, "***")
    }
}

/// The requests of one batch still to send, and what the sent ones achieved.
///
/// Use: [`Pending::resume`] the stored one when the host hands the same batch
/// again, else [`Pending::new`]; loop over [`Pending::next`], calling
/// [`Pending::delivered`] or [`Pending::failed`]; a retryable failure is returned
/// to the host after storing [`Pending::keep_for`]; at the end [`Pending::finish`].
/// A permanent failure of one request does not stop the others (they go to other
/// endpoints or carry other data); it is reported at the end.
#[derive(Debug)]
pub struct Pending<T> {
    batch: Batch,
    requests: VecDeque<T>,
    accepted: u64,
    permanent: Option<PluginError>,
}

impl<T> Pending<T> {
    /// Fresh requests of a batch; `accepted` counts items consumed without a
    /// request (e.g. cumulative baselines).
    pub fn new(requests: Vec<T>, accepted: u64) -> Self {
        Pending {
            batch: Batch::default(),
            requests: requests.into(),
            accepted,
            permanent: None,
        }
    }

    /// Takes the stored progress out of `slot` and returns it when it belongs to
    /// `batch` (the host's retry of it); `label` prefixes the debug log line.
    pub fn resume(slot: &mut Option<Pending<T>>, batch: &Batch, label: &str) -> Option<Self> {
        match slot.take() {
            Some(p) if p.batch == *batch => {
                tracing::debug!(
                    "{label}: retrying a batch; {} request(s) left to send",
                    p.requests.len()
                );
                Some(p)
            }
            _ => None,
        }
    }

    /// The next request to send.
    pub fn next(&self) -> Option<&T> {
        self.requests.front()
    }

    /// The next request was answered with success; `accepted` of its items count.
    pub fn delivered(&mut self, accepted: u64) {
        self.accepted += accepted;
        self.requests.pop_front();
    }

    /// The next request failed. A retryable error is returned (with the items
    /// accepted so far) for the caller to store [`Pending::keep_for`] and hand it to
    /// the host; a permanent one is logged under `label`, the request dropped, and
    /// the error kept for [`Pending::finish`].
    pub fn failed(&mut self, mut e: PluginError, label: &str) -> Option<PluginError> {
        if e.kind == ErrorKind::Retryable {
            e.accepted = self.accepted;
            return Some(e);
        }
        tracing::warn!("{label}: {}", e.message);
        self.requests.pop_front();
        self.permanent.get_or_insert(e);
        None
    }

    /// The progress to store after a retryable failure of `batch`.
    pub fn keep_for(mut self, batch: &Batch) -> Self {
        self.batch = batch.clone();
        self
    }

    /// The outcome once every request was tried: the first permanent error (with
    /// the items accepted), else success.
    pub fn finish(self) -> Result<ExportOk, PluginError> {
        match self.permanent {
            Some(mut e) => {
                e.accepted = self.accepted;
                Err(e)
            }
            None => Ok(ExportOk {
                accepted: self.accepted,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        http::{HeaderMap, HeaderName},
        otlp::opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess,
    };

    fn resp(status: u16, headers: &[(&str, &str)], body: Vec<u8>) -> Response {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Response {
            status,
            headers: map,
            body,
        }
    }

    #[test]
    fn only_the_spec_codes_are_retryable() {
        for code in [429, 502, 503, 504] {
            let e = error_for(&resp(code, &[("retry-after", "7")], vec![]), "u");
            assert_eq!(e.kind, ErrorKind::Retryable, "{code}");
            assert_eq!(e.retry_after_ms.into_option(), Some(7000), "{code}");
        }
        for code in [400, 401, 403, 404, 408, 413, 500, 501] {
            let e = error_for(&resp(code, &[("retry-after", "7")], vec![]), "u");
            assert_eq!(e.kind, ErrorKind::Permanent, "{code}");
            assert_eq!(e.retry_after_ms.into_option(), None, "{code}");
        }
    }

    #[test]
    fn status_wire_format_and_messages() {
        let body = Status {
            code: 3,
            message: "bad span id".into(),
        }
        .encode_to_vec();
        assert_eq!(
            body,
            [0x08, 3, 0x12, 11, b'b', b'a', b'd', b' ', b's', b'p', b'a', b'n', b' ', b'i', b'd']
        );
        // A `details` entry (field 3) is skipped.
        let with_details = [0x08, 3, 0x12, 1, b'x', 0x1a, 2, 0x0a, 0];
        assert_eq!(
            parse_status(Some("application/x-protobuf"), &with_details).unwrap(),
            Status {
                code: 3,
                message: "x".into()
            }
        );
        let e = error_for(
            &resp(400, &[("content-type", "application/x-protobuf")], body),
            "http://j/v1/traces",
        );
        assert_eq!(
            e.message.as_str(),
            "http://j/v1/traces: HTTP 400 Bad Request: bad span id"
        );
        let e = error_for(
            &resp(
                500,
                &[("content-type", "application/json; charset=utf-8")],
                br#"{"code":13,"message":"db down","details":[]}"#.to_vec(),
            ),
            "u",
        );
        assert!(e.message.ends_with("db down"), "{e}");
        let st = parse_status(
            Some("application/json"),
            br#"{"code":"14","message":"later"}"#,
        )
        .unwrap();
        assert_eq!((st.code, st.message.as_str()), (14, "later"));
        assert!(parse_status(Some("application/json"), b"[]").is_none());
        let e = error_for(
            &resp(500, &[("content-type", "text/plain")], b"oops".to_vec()),
            "u",
        );
        assert!(e.message.contains("oops"), "{e}");
        assert!(parse_status(None, b"x").is_none());
    }

    #[test]
    fn partial_success_is_read_in_both_encodings() {
        let body = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 2,
                error_message: "too old".into(),
            }),
        }
        .encode_to_vec();
        let pb = [("content-type", "application/x-protobuf")];
        assert_eq!(
            partial_success(Signal::Traces, &resp(200, &pb, body)),
            (2, "too old".to_string())
        );
        assert_eq!(
            partial_success(
                Signal::Traces,
                &resp(
                    200,
                    &[("content-type", "application/json")],
                    br#"{"partialSuccess":{"rejectedSpans":"3","errorMessage":"x"}}"#.to_vec()
                )
            ),
            (3, "x".to_string())
        );
        assert_eq!(
            partial_success(
                Signal::Logs,
                &resp(
                    200,
                    &[("content-type", "application/json")],
                    br#"{"partialSuccess":{"rejectedLogRecords":4}}"#.to_vec()
                )
            ),
            (4, String::new())
        );
        assert_eq!(
            partial_success(Signal::Metrics, &resp(200, &[], vec![])),
            (0, String::new())
        );
        assert_eq!(
            partial_success(Signal::Metrics, &resp(200, &[], b"garbage".to_vec())).0,
            0
        );
    }

    #[test]
    fn redaction() {
        assert_eq!(redact("k=KEY;KEY", "KEY"), "k=***;***");
        assert_eq!(redact("x", ""), "x");
    }

    #[test]
    fn pending_keeps_what_was_not_delivered() {
        let batch = Batch::default();
        let mut p = Pending::new(vec![1, 2, 3], 5);
        assert_eq!(p.next(), Some(&1));
        p.delivered(10);
        assert!(p.failed(PluginError::permanent("no"), "t").is_none());
        let e = p.failed(PluginError::retryable("later"), "t").unwrap();
        assert_eq!(e.accepted, 15);
        let mut keep = Some(p.keep_for(&batch));
        let mut other = Batch::default();
        other
            .resource
            .attributes
            .push(tfo_plugin_api::KeyValue::new("host.name", "h"));
        assert!(Pending::resume(&mut keep, &other, "t").is_none());
        assert!(keep.is_none(), "a different batch discards the progress");
        let mut slot = Some(Pending::new(vec![3], 15).keep_for(&batch));
        let mut p = Pending::resume(&mut slot, &batch, "t").unwrap();
        assert_eq!(p.next(), Some(&3));
        p.delivered(1);
        assert!(p.next().is_none());
        assert_eq!(p.finish().unwrap().accepted, 16);
        let mut p = Pending::new(vec![1], 0);
        assert!(p.failed(PluginError::permanent("no"), "t").is_none());
        let e = p.finish().unwrap_err();
        assert_eq!((e.kind, e.accepted), (ErrorKind::Permanent, 0));
    }
}
