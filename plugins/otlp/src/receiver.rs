//! The OTLP/HTTP receiver: an HTTP/1.1 server (hyper) on the instance runtime that
//! accepts `POST /v1/traces`, `/v1/metrics` and `/v1/logs`, converts each request
//! ([`crate::convert`]) and pushes one batch per resource to the host with
//! `emit`.
//!
//! Behaviour, following the OTLP specification
//! (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>, sections "OTLP/HTTP
//! Request" and "OTLP/HTTP Response"):
//! - `Content-Type: application/x-protobuf` or `application/json` (parameters such
//!   as `charset` ignored); the response uses the request's content type;
//!   anything else is **415**;
//! - `Content-Encoding: gzip` bodies are decompressed; another coding is **415**;
//! - a body over `max_body_bytes`, as sent or once decompressed, is **413** (a
//!   `Content-Length` over the limit is refused before the body is read);
//! - a body that does not decode is **400** with a `google.rpc.Status` saying why,
//!   and the connection stays usable;
//! - success is **200** with the `Export*ServiceResponse`; when items were rejected
//!   (see [`crate::convert`] for which) its `partial_success` carries their number
//!   and the reasons (spec, "Partial Success"); the client must not retry them;
//! - when the host's queue is full (`emit` answers `Full`, or `Closed` while the
//!   instance stops) before anything of the request was taken, **503** with
//!   `Retry-After: 1` (spec, "OTLP/HTTP Throttling"), so the client retries the
//!   whole request. If an earlier resource of the same request was already taken,
//!   retrying would duplicate it, so the rest is answered as a partial success
//!   (rejected, counted, logged) instead;
//! - other paths are **404**, other methods on the three paths **405** with
//!   `Allow: POST`; a request whose headers or body do not arrive within 30 s gets
//!   **408** (slow clients cannot hold a connection forever).
//!
//! Every 4xx/5xx body is a `google.rpc.Status` (protobuf, or JSON when the request
//! was JSON), as the spec's "Failures" section requires.
//!
//! The listener is bound in `start` with `SO_REUSEADDR` and `SO_REUSEPORT`, so a new
//! version of the plugin can bind the same address while the old one still runs
//! (make-before-break upgrades). `stop` closes the listener, lets in-flight requests
//! finish (hyper's graceful shutdown) within the deadline, then aborts the rest.

use std::{
    io::Read as _,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use opentelemetry_proto::tonic::collector::{
    logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse},
    metrics::v1::{
        ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    },
    trace::v1::{ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse},
};
use tfo_plugin_api::{Batch, EmitStatus};
use tfo_plugin_common::http_server::{wait_for_room, HttpServer, RateLimit, Reply};

use crate::{
    convert::{self, Converted},
    json::{JsonCodec, OtlpMessage},
    status::{code, Status},
};

/// Seconds a client is asked to wait after a 503.
pub const RETRY_AFTER_SECS: u64 = 1;

/// How long a client may take to send the headers, and then the body.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Where received batches go: the host's `emit` in the plugin, a recorder in tests.
pub type EmitFn = Arc<dyn Fn(Batch) -> EmitStatus + Send + Sync>;

/// Which signal a path carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `/v1/traces`.
    Traces,
    /// `/v1/metrics`.
    Metrics,
    /// `/v1/logs`.
    Logs,
}

impl Signal {
    fn from_path(path: &str) -> Option<Signal> {
        match path {
            "/v1/traces" => Some(Signal::Traces),
            "/v1/metrics" => Some(Signal::Metrics),
            "/v1/logs" => Some(Signal::Logs),
            _ => None,
        }
    }

    /// What the items of this signal are called in messages.
    fn items(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "data points",
            Signal::Logs => "log records",
        }
    }
}

/// Body encoding of a request and its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn from_content_type(ct: Option<&HeaderValue>) -> Option<Encoding> {
        let ct = ct?.to_str().ok()?;
        let media = ct.split(';').next()?.trim();
        if media.eq_ignore_ascii_case("application/x-protobuf") {
            Some(Encoding::Protobuf)
        } else if media.eq_ignore_ascii_case("application/json") {
            Some(Encoding::Json)
        } else {
            None
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Counters of one receiver, logged when it stops.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests answered 200.
    pub requests_ok: AtomicU64,
    /// Requests answered with a 4xx.
    pub requests_refused: AtomicU64,
    /// Requests answered 503 because the host was full.
    pub requests_throttled: AtomicU64,
    /// Requests answered 429 (over `max_requests_per_second`).
    pub requests_rate_limited: AtomicU64,
    /// Connections closed on accept (over `max_connections`).
    pub connections_refused: AtomicU64,
    /// Items handed to the host.
    pub items_accepted: AtomicU64,
    /// Items rejected (invalid, or dropped after a partial emit), reported as partial
    /// success.
    pub items_rejected: AtomicU64,
}

/// Limits of one receiver (from `receiver.*` in the config).
pub use tfo_plugin_common::http_server::ReceiverLimits as Limits;

/// What a request handler needs.
struct Shared {
    rate: Option<RateLimit>,
    max_body: u64,
    queue_wait: std::time::Duration,
    codec: JsonCodec,
    emit: EmitFn,
    stats: Arc<Stats>,
}

/// A running receiver.
pub struct Receiver {
    server: HttpServer,
    stats: Arc<Stats>,
}

impl Receiver {
    /// Binds `addr` (with `SO_REUSEADDR` + `SO_REUSEPORT`) and starts serving on the
    /// current tokio runtime. Must be called from within that runtime.
    pub fn start(
        addr: SocketAddr,
        limits: Limits,
        codec: JsonCodec,
        emit: EmitFn,
    ) -> Result<Receiver, String> {
        let stats = Arc::new(Stats::default());
        let shared = Arc::new(Shared {
            rate: RateLimit::new(limits.max_requests_per_second),
            max_body: limits.max_body,
            queue_wait: limits.queue_wait,
            codec,
            emit,
            stats: stats.clone(),
        });
        let server = HttpServer::start(
            "otlp receiver",
            addr,
            limits.server(READ_TIMEOUT),
            move |req| {
                let shared = shared.clone();
                async move { handle(req, &shared).await }
            },
        )?;
        Ok(Receiver { server, stats })
    }

    /// The bound address (the real port when the config said port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The receiver's counters (`connections_refused` as the listener counted them).
    pub fn stats(&self) -> &Stats {
        self.stats
            .connections_refused
            .store(self.server.connections_refused(), Ordering::Relaxed);
        &self.stats
    }

    /// Closes the listener, lets in-flight requests finish for up to `deadline`,
    /// then aborts what is left. Idempotent.
    pub async fn stop(&mut self, deadline: Duration) {
        self.server.stop(deadline).await;
    }
}

/// Handles one request; never fails (every problem is an HTTP answer).
async fn handle(req: Request<Incoming>, shared: &Shared) -> Reply {
    let (parts, body) = req.into_parts();
    let admitted = match &shared.rate {
        Some(rate) if !rate.take() => {
            shared
                .stats
                .requests_rate_limited
                .fetch_add(1, Ordering::Relaxed);
            let encoding = Encoding::from_content_type(parts.headers.get(header::CONTENT_TYPE))
                .unwrap_or(Encoding::Protobuf);
            let mut resp = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                code::RESOURCE_EXHAUSTED,
                "rate limit of the receiver exceeded (receiver.max_requests_per_second); retry later".into(),
                encoding,
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Err(Box::new(resp))
        }
        _ => admit(&parts, shared),
    };
    match admitted {
        Ok((signal, encoding, gzip)) => receive(signal, encoding, gzip, &parts, body, shared).await,
        Err(resp) => {
            let resp = *resp;
            // Read (and drop) the body of a refused request, so the client's next
            // request can use the same connection; a body over the limit closes it.
            let limit = usize::try_from(shared.max_body).unwrap_or(usize::MAX);
            let _ = tokio::time::timeout(READ_TIMEOUT, Limited::new(body, limit).collect()).await;
            resp
        }
    }
}

fn refuse(
    shared: &Shared,
    status: StatusCode,
    code: i32,
    message: String,
    encoding: Encoding,
) -> Reply {
    shared
        .stats
        .requests_refused
        .fetch_add(1, Ordering::Relaxed);
    tracing::debug!("otlp receiver: {status}: {message}");
    error_response(status, code, message, encoding)
}

/// Checks path, method, content type and encoding: `(signal, encoding, gzip)` or
/// the refusal.
fn admit(
    parts: &http::request::Parts,
    shared: &Shared,
) -> Result<(Signal, Encoding, bool), Box<Reply>> {
    let content_type = parts.headers.get(header::CONTENT_TYPE);
    let reply = Encoding::from_content_type(content_type).unwrap_or(Encoding::Protobuf);
    let Some(signal) = Signal::from_path(parts.uri.path()) else {
        return Err(Box::new(refuse(
            shared,
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            format!(
                "unknown path {}: use /v1/traces, /v1/metrics or /v1/logs",
                parts.uri.path()
            ),
            reply,
        )));
    };
    if parts.method != Method::POST {
        let mut resp = refuse(
            shared,
            StatusCode::METHOD_NOT_ALLOWED,
            code::UNIMPLEMENTED,
            format!("method {} not allowed: use POST", parts.method),
            reply,
        );
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Err(Box::new(resp));
    }
    let Some(encoding) = Encoding::from_content_type(content_type) else {
        return Err(Box::new(refuse(
            shared,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::INVALID_ARGUMENT,
            format!(
                "unsupported Content-Type {:?}: use application/x-protobuf or application/json",
                content_type
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default()
            ),
            reply,
        )));
    };
    let coding = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let gzip = match coding.as_deref() {
        None | Some("") | Some("identity") => false,
        Some("gzip") => true,
        Some(other) => {
            return Err(Box::new(refuse(
                shared,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code::INVALID_ARGUMENT,
                format!("unsupported Content-Encoding {other:?}: use gzip or none"),
                encoding,
            )))
        }
    };
    Ok((signal, encoding, gzip))
}

/// Reads, decompresses, decodes and delivers an admitted request.
async fn receive(
    signal: Signal,
    encoding: Encoding,
    gzip: bool,
    parts: &http::request::Parts,
    body: Incoming,
    shared: &Shared,
) -> Reply {
    let refuse = |status, code, message| refuse(shared, status, code, message, encoding);
    let too_large = || {
        format!(
            "request body larger than the receiver's limit of {} bytes",
            shared.max_body
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > shared.max_body) {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::RESOURCE_EXHAUSTED,
            too_large(),
        );
    }
    // Ask the agent first (an empty emit takes nothing): while its queue is full the
    // request waits unread (TCP slows the sender) for up to `receiver.queue_wait`,
    // then is refused before its body is read and decoded.
    let probe = wait_for_room(|| (shared.emit)(Batch::default()), shared.queue_wait).await;
    if probe != EmitStatus::Accepted {
        return unavailable(shared, probe, encoding);
    }
    let limit = usize::try_from(shared.max_body).unwrap_or(usize::MAX);
    let body = match tokio::time::timeout(READ_TIMEOUT, Limited::new(body, limit).collect()).await {
        Err(_) => {
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                code::DEADLINE_EXCEEDED,
                format!("request body not received within {READ_TIMEOUT:?}"),
            )
        }
        Ok(Err(e)) if e.is::<LengthLimitError>() => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                code::RESOURCE_EXHAUSTED,
                too_large(),
            )
        }
        Ok(Err(e)) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                code::INVALID_ARGUMENT,
                format!("reading the request body: {e}"),
            )
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let body = if gzip {
        match gunzip(&body, shared.max_body) {
            Ok(b) => Bytes::from(b),
            Err(GunzipError::TooLarge) => {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    code::RESOURCE_EXHAUSTED,
                    format!("decompressed {}", too_large()),
                )
            }
            Err(GunzipError::Invalid(e)) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    code::INVALID_ARGUMENT,
                    format!("invalid gzip body: {e}"),
                )
            }
        }
    } else {
        body
    };
    let converted = match decode(signal, encoding, &body, &shared.codec) {
        Ok(c) => c,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, code::INVALID_ARGUMENT, e),
    };
    deliver(signal, encoding, converted, shared)
}

/// The 503 (with `Retry-After`) for a request of which nothing was taken: the
/// agent's queue is full or the receiver is stopping.
fn unavailable(shared: &Shared, status: EmitStatus, encoding: Encoding) -> Reply {
    shared
        .stats
        .requests_throttled
        .fetch_add(1, Ordering::Relaxed);
    let why = if status == EmitStatus::Full {
        "the agent's queue is full"
    } else {
        "the receiver is shutting down"
    };
    tracing::debug!("otlp receiver: 503: {why}");
    let mut resp = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        code::UNAVAILABLE,
        format!("{why}; retry later"),
        encoding,
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    resp
}

/// Emits the batches and builds the answer (200, 200 with partial success, or 503).
fn deliver(signal: Signal, encoding: Encoding, mut converted: Converted, shared: &Shared) -> Reply {
    let batches = std::mem::take(&mut converted.batches);
    let mut accepted = 0u64;
    let mut dropped = 0u64;
    let mut full = None;
    for batch in batches {
        let n = batch.item_count();
        if full.is_some() {
            dropped += n;
            continue;
        }
        match (shared.emit)(batch) {
            EmitStatus::Accepted => accepted += n,
            status => {
                if accepted == 0 {
                    // Nothing taken yet: the client may retry the whole request.
                    return unavailable(shared, status, encoding);
                }
                full = Some(status);
                dropped += n;
            }
        }
    }
    if dropped > 0 {
        tracing::warn!(
            "otlp receiver: the agent's queue filled up during a request: {dropped} {} dropped \
             (answered as partial success, the client will not resend them)",
            signal.items()
        );
        converted.reject(
            dropped,
            format!(
                "{dropped} {} dropped: the agent's queue is full",
                signal.items()
            ),
        );
    }
    shared.stats.requests_ok.fetch_add(1, Ordering::Relaxed);
    shared
        .stats
        .items_accepted
        .fetch_add(accepted, Ordering::Relaxed);
    shared
        .stats
        .items_rejected
        .fetch_add(converted.rejected, Ordering::Relaxed);
    if converted.rejected > 0 {
        tracing::debug!(
            "otlp receiver: rejected {} {}: {}",
            converted.rejected,
            signal.items(),
            converted.error_message()
        );
    }
    let body = success_body(signal, encoding, &converted, &shared.codec);
    match body {
        Ok(body) => ok_response(body, encoding),
        // Encoding a response of two fields cannot fail short of a bug; say so.
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            13,
            format!("encoding the response: {e}"),
            encoding,
        ),
    }
}

/// Decodes a request body exactly as the receiver does after admitting it (signal
/// from the URL path, encoding from the `Content-Type`), without a server: the entry
/// point of the fuzz target `otlp_decode` (fuzz/).
pub fn decode_body(
    path: &str,
    content_type: &str,
    body: &[u8],
    codec: &JsonCodec,
) -> Result<Converted, String> {
    let signal = Signal::from_path(path).ok_or_else(|| format!("no signal at {path}"))?;
    let ct = HeaderValue::from_str(content_type).map_err(|e| e.to_string())?;
    let encoding = Encoding::from_content_type(Some(&ct))
        .ok_or_else(|| format!("unsupported content type {content_type}"))?;
    decode(signal, encoding, body, codec)
}

fn decode(
    signal: Signal,
    encoding: Encoding,
    body: &[u8],
    codec: &JsonCodec,
) -> Result<Converted, String> {
    fn message<T: OtlpMessage>(
        encoding: Encoding,
        body: &[u8],
        codec: &JsonCodec,
    ) -> Result<T, String> {
        match encoding {
            Encoding::Protobuf => T::decode(body).map_err(|e| {
                format!(
                    "invalid protobuf {}: {e}",
                    T::NAME.rsplit('.').next().unwrap_or(T::NAME)
                )
            }),
            Encoding::Json => codec.decode(body),
        }
    }
    Ok(match signal {
        Signal::Traces => {
            convert::traces(message::<ExportTraceServiceRequest>(encoding, body, codec)?)
        }
        Signal::Metrics => convert::metrics(message::<ExportMetricsServiceRequest>(
            encoding, body, codec,
        )?),
        Signal::Logs => convert::logs(message::<ExportLogsServiceRequest>(encoding, body, codec)?),
    })
}

fn success_body(
    signal: Signal,
    encoding: Encoding,
    c: &Converted,
    codec: &JsonCodec,
) -> Result<Vec<u8>, String> {
    // Set only when something was rejected or there is a warning (spec: "MUST leave
    // the partial_success field unset in case of a successful response").
    let partial = c.rejected > 0 || !c.reasons.is_empty();
    let rejected = i64::try_from(c.rejected).unwrap_or(i64::MAX);
    let error_message = c.error_message();
    fn encode<T: OtlpMessage>(
        msg: &T,
        encoding: Encoding,
        codec: &JsonCodec,
    ) -> Result<Vec<u8>, String> {
        match encoding {
            Encoding::Protobuf => Ok(msg.encode_to_vec()),
            Encoding::Json => codec.encode(msg),
        }
    }
    match signal {
        Signal::Traces => encode(
            &ExportTraceServiceResponse {
                partial_success: partial.then_some(ExportTracePartialSuccess {
                    rejected_spans: rejected,
                    error_message,
                }),
            },
            encoding,
            codec,
        ),
        Signal::Metrics => encode(
            &ExportMetricsServiceResponse {
                partial_success: partial.then_some(ExportMetricsPartialSuccess {
                    rejected_data_points: rejected,
                    error_message,
                }),
            },
            encoding,
            codec,
        ),
        Signal::Logs => encode(
            &ExportLogsServiceResponse {
                partial_success: partial.then_some(ExportLogsPartialSuccess {
                    rejected_log_records: rejected,
                    error_message,
                }),
            },
            encoding,
            codec,
        ),
    }
}

enum GunzipError {
    TooLarge,
    Invalid(std::io::Error),
}

/// Decompresses at most `max` bytes; more is [`GunzipError::TooLarge`].
fn gunzip(data: &[u8], max: u64) -> Result<Vec<u8>, GunzipError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .take(max.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(GunzipError::Invalid)?;
    if out.len() as u64 > max {
        return Err(GunzipError::TooLarge);
    }
    Ok(out)
}

fn ok_response(body: Vec<u8>, encoding: Encoding) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    resp
}

fn error_response(status: StatusCode, code: i32, message: String, encoding: Encoding) -> Reply {
    let st = Status { code, message };
    let body = match encoding {
        Encoding::Protobuf => prost::Message::encode_to_vec(&st),
        Encoding::Json => serde_json::to_vec(&st).unwrap_or_default(),
    };
    let mut resp = ok_response(body, encoding);
    *resp.status_mut() = status;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_matched_on_the_media_type() {
        let ct = |s: &'static str| Encoding::from_content_type(Some(&HeaderValue::from_static(s)));
        assert_eq!(ct("application/x-protobuf"), Some(Encoding::Protobuf));
        assert_eq!(ct("Application/JSON; charset=utf-8"), Some(Encoding::Json));
        assert_eq!(ct("application/protobuf"), None);
        assert_eq!(ct("text/plain"), None);
        assert_eq!(Encoding::from_content_type(None), None);
    }

    #[test]
    fn gunzip_limits_the_decompressed_size() {
        use std::io::Write as _;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&[0u8; 10_000]).unwrap();
        let gz = enc.finish().unwrap();
        assert!(gz.len() < 200);
        assert_eq!(gunzip(&gz, 10_000).ok().unwrap().len(), 10_000);
        assert!(matches!(gunzip(&gz, 9_999), Err(GunzipError::TooLarge)));
        assert!(matches!(
            gunzip(b"not gzip", 100),
            Err(GunzipError::Invalid(_))
        ));
    }
}
