//! OTLP/HTTP transport to a Jaeger collector, the way the agent's `otlp` exporter
//! sends (shared [`HttpClient`], binary protobuf, optional gzip), following the
//! OTLP specification (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>):
//! - `POST <endpoint>/v1/traces`, `Content-Type: application/x-protobuf`, plus the
//!   configured headers and Basic credentials;
//! - 200 is success; a `partial_success` in the `ExportTraceServiceResponse` is not
//!   retried (the spec forbids it): the rejected spans are logged, counted and
//!   taken off `ExportOk::accepted`;
//! - 429, 502, 503 and 504 are retryable with the server's `Retry-After`
//!   ("Retryable Response Codes", "OTLP/HTTP Throttling"); every other 4xx and 5xx
//!   is permanent ("MUST NOT be retried"); a transport failure is retryable;
//! - error messages quote the `google.rpc.Status` message of the body when it
//!   decodes.
//!
//! A batch cut into several requests that fails part-way is remembered: when the
//! host hands the same batch again, the requests already delivered are skipped, so
//! a retry does not store spans twice.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Mutex,
};

use tfo_plugin_api::{Batch, ErrorKind, ExportOk, PluginError};
use tfo_plugin_common::{
    auth,
    http::{ClientOptions, HttpClient, Method, Request, Response},
    otlp::{
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse,
        prost::Message as _,
    },
    retry,
};

use crate::{
    config::{Compression, Config},
    encode::{self, Encoded, Options},
};

/// `google.rpc.Status`, the body of OTLP/HTTP error answers; only `code` (1) and
/// `message` (2) are read (`details` is skipped like any unknown field).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Developer-facing explanation.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The message of an error body: a protobuf or JSON `Status` as the content type
/// says, else `None`.
pub fn status_message(resp: &Response) -> Option<String> {
    let ct = resp
        .headers
        .get(http::header::CONTENT_TYPE)?
        .to_str()
        .ok()?
        .split(';')
        .next()?
        .trim()
        .to_ascii_lowercase();
    let msg = match ct.as_str() {
        "application/x-protobuf" => Status::decode(&resp.body[..]).ok()?.message,
        "application/json" => serde_json::from_slice::<serde_json::Value>(&resp.body)
            .ok()?
            .get("message")?
            .as_str()?
            .to_string(),
        _ => return None,
    };
    (!msg.is_empty()).then_some(msg)
}

/// The error for a non-2xx answer (see the module docs for the classification).
pub fn error_for(resp: &Response, url: &str) -> PluginError {
    let mut e = match retry::classify(resp) {
        Err(e) => e,
        Ok(()) => return PluginError::permanent(format!("{url}: unexpected success")),
    };
    if e.kind == ErrorKind::Retryable && !matches!(resp.status, 429 | 502 | 503 | 504) {
        e.kind = ErrorKind::Permanent;
        e.retry_after_ms = None.into();
    }
    let reason = http::StatusCode::from_u16(resp.status)
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

/// Rejected spans and message of a 2xx answer's `partial_success` (an empty or
/// undecodable body is full success, as some servers answer 200 with nothing).
pub fn partial_success(resp: &Response) -> (u64, String) {
    if resp.body.is_empty() {
        return (0, String::new());
    }
    let json = resp
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if json {
        let v: Option<serde_json::Value> = serde_json::from_slice(&resp.body).ok();
        let p = v.as_ref().and_then(|v| v.get("partialSuccess"));
        let rejected = p
            .and_then(|p| p.get("rejectedSpans"))
            .and_then(|r| r.as_u64().or_else(|| r.as_str()?.parse().ok()))
            .unwrap_or(0);
        let msg = p
            .and_then(|p| p.get("errorMessage"))
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_string();
        return (rejected, msg);
    }
    match ExportTraceServiceResponse::decode(&resp.body[..])
        .ok()
        .and_then(|r| r.partial_success)
    {
        Some(p) => (
            u64::try_from(p.rejected_spans).unwrap_or(0),
            p.error_message,
        ),
        None => (0, String::new()),
    }
}

/// Counters of one sink.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests answered 2xx.
    pub requests_ok: AtomicU64,
    /// Spans not sent (invalid ids, too large).
    pub dropped_spans: AtomicU64,
    /// Spans the collector reported as rejected in a `partial_success`.
    pub rejected_spans: AtomicU64,
}

/// A batch whose first requests were delivered before a retryable failure.
struct Resume {
    batch: Batch,
    delivered: usize,
    accepted: u64,
}

/// Sends batches to one Jaeger collector.
pub struct JaegerClient {
    client: HttpClient,
    url: String,
    headers: Vec<(String, String)>,
    gzip: bool,
    options: Options,
    stats: Stats,
    resume: Mutex<Option<Resume>>,
    last_rejection: Mutex<Option<String>>,
}

impl std::fmt::Debug for JaegerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JaegerClient")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl JaegerClient {
    /// Prepares the client (reads the CA file) for a validated config; connects
    /// nothing yet.
    pub fn new(config: &Config) -> Result<JaegerClient, String> {
        let client = HttpClient::new(&ClientOptions {
            timeout: config.timeout,
            ca_file: config.tls.ca_file.clone(),
            insecure_skip_verify: config.tls.insecure_skip_verify,
            ..ClientOptions::default()
        })?;
        let mut headers: Vec<(String, String)> =
            vec![("Content-Type".into(), "application/x-protobuf".into())];
        headers.extend(config.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(u) = &config.username {
            headers.push((
                "Authorization".into(),
                auth::basic_auth_value(u, config.password.as_deref().unwrap_or("")),
            ));
        }
        Ok(JaegerClient {
            client,
            url: config.traces_url(),
            headers,
            gzip: config.compression == Compression::Gzip,
            options: Options {
                service_name: config.service_name.clone(),
                tags: config
                    .tags
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                batch_size: config.batch_size,
                max_request_bytes: config.max_request_bytes,
            },
            stats: Stats::default(),
            resume: Mutex::new(None),
            last_rejection: Mutex::new(None),
        })
    }

    /// The traces endpoint URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The last `partial_success` rejection, if any (for health).
    pub fn last_rejection(&self) -> Option<String> {
        self.last_rejection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The requests `export` would send for `batch`.
    pub fn encode(&self, batch: &Batch) -> Encoded {
        encode::encode(batch, &self.options)
    }

    /// Sends the spans of a batch; `Ok` once every request was answered 2xx.
    /// Metrics and logs in the batch are not for Jaeger and count as accepted.
    pub async fn export(&self, batch: &Batch) -> Result<ExportOk, PluginError> {
        let other = batch.item_count() - batch.spans.len() as u64;
        let enc = self.encode(batch);
        if enc.dropped > 0 {
            self.stats
                .dropped_spans
                .fetch_add(enc.dropped, Ordering::Relaxed);
            tracing::warn!(
                "jaeger: {} span(s) not sent: {}",
                enc.dropped,
                enc.problems.join("; ")
            );
        }
        let (mut next, mut accepted) = self.take_resume(batch);
        while next < enc.requests.len() {
            let req = &enc.requests[next];
            match self.send(req).await {
                Ok(rejected) => {
                    accepted += req.spans.saturating_sub(rejected);
                    next += 1;
                }
                Err(mut e) => {
                    e.accepted = accepted + other;
                    if e.kind == ErrorKind::Retryable && next > 0 {
                        *self.resume.lock().unwrap_or_else(|e| e.into_inner()) = Some(Resume {
                            batch: batch.clone(),
                            delivered: next,
                            accepted,
                        });
                    }
                    return Err(e);
                }
            }
        }
        Ok(ExportOk {
            accepted: accepted + other,
        })
    }

    fn take_resume(&self, batch: &Batch) -> (usize, u64) {
        let resume = self.resume.lock().unwrap_or_else(|e| e.into_inner()).take();
        match resume {
            Some(r) if r.batch == *batch => {
                tracing::debug!(
                    "jaeger: retrying a batch, skipping the requests already delivered"
                );
                (r.delivered, r.accepted)
            }
            _ => (0, 0),
        }
    }

    /// Posts one request; `Ok(rejected spans)` on 2xx.
    async fn send(&self, req: &encode::Request) -> Result<u64, PluginError> {
        let mut request = Request::new(Method::POST, self.url.clone())
            .body(req.body.clone())
            .gzip(self.gzip);
        for (k, v) in &self.headers {
            request = request.header(k.clone(), v.clone());
        }
        let resp = self.client.send(request).await.map_err(retry::transport)?;
        if !(200..300).contains(&resp.status) {
            return Err(error_for(&resp, &self.url));
        }
        self.stats.requests_ok.fetch_add(1, Ordering::Relaxed);
        let (rejected, message) = partial_success(&resp);
        if rejected > 0 {
            let text = format!(
                "{}: the collector rejected {rejected} of {} spans: {message}",
                self.url, req.spans
            );
            tracing::warn!("jaeger: {text}");
            self.stats
                .rejected_spans
                .fetch_add(rejected, Ordering::Relaxed);
            *self
                .last_rejection
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(text);
        } else if !message.is_empty() {
            tracing::info!("jaeger: collector warning: {message}");
        }
        Ok(rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfo_plugin_common::http::{HeaderMap, HeaderName};

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
    fn status_messages_are_quoted() {
        let body = Status {
            code: 3,
            message: "bad span id".into(),
        }
        .encode_to_vec();
        assert_eq!(
            body,
            [0x08, 3, 0x12, 11, b'b', b'a', b'd', b' ', b's', b'p', b'a', b'n', b' ', b'i', b'd']
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
                &[("content-type", "application/json")],
                br#"{"code":13,"message":"db down"}"#.to_vec(),
            ),
            "u",
        );
        assert!(e.message.ends_with("db down"), "{e}");
        let e = error_for(
            &resp(500, &[("content-type", "text/plain")], b"oops".to_vec()),
            "u",
        );
        assert!(e.message.contains("oops"), "{e}");
    }

    #[test]
    fn partial_success_is_read_in_both_encodings() {
        use tfo_plugin_common::otlp::opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
        let body = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 2,
                error_message: "too old".into(),
            }),
        }
        .encode_to_vec();
        assert_eq!(
            partial_success(&resp(
                200,
                &[("content-type", "application/x-protobuf")],
                body
            )),
            (2, "too old".to_string())
        );
        assert_eq!(
            partial_success(&resp(
                200,
                &[("content-type", "application/json")],
                br#"{"partialSuccess":{"rejectedSpans":"3","errorMessage":"x"}}"#.to_vec()
            )),
            (3, "x".to_string())
        );
        assert_eq!(partial_success(&resp(200, &[], vec![])), (0, String::new()));
        assert_eq!(partial_success(&resp(200, &[], b"garbage".to_vec())).0, 0);
    }
}
