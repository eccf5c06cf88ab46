//! The line-protocol **receiver**: an HTTP/1.1 server (hyper) on the instance
//! runtime that takes the writes Telegraf, the `influx` CLI, client libraries and
//! anything speaking InfluxDB's write API send, and pushes them to the agent's
//! pipeline with `emit` (what Telegraf's `influxdb_listener` and vmagent's `/write`
//! offer).
//!
//! Endpoints (vendor docs:
//! <https://docs.influxdata.com/influxdb/v1/tools/api/#write-http-endpoint>,
//! <https://docs.influxdata.com/influxdb/v2/api/#operation/PostWrite>):
//! - `POST /write` (1.x): query `db` (becomes the `db` attribute of every point
//!   whose line has no `db` tag, as vmagent does), `precision` (`n`/`ns`, `u`/`us`,
//!   `ms`, `s`, `m`, `h`), `rp`/`u`/`p` accepted and ignored;
//! - `POST /api/v2/write` (2.x): query `bucket` (becomes `db`, like vmagent), `org`
//!   (ignored), `precision` (`ns`, `us`, `ms`, `s`);
//! - `GET`/`HEAD /ping`: 204, what clients use to check the server.
//!
//! Answers, as InfluxDB gives them:
//! - **204** when every line was taken;
//! - **400** with InfluxDB's JSON error (`{"error": ...}` on `/write`,
//!   `{"code": "invalid", "message": ...}` on `/api/v2/write`) when lines did not
//!   parse: the good lines of the body are still taken (a partial write) and the
//!   message says how many were dropped and why (first line numbers);
//! - **413** for a body over `max_body_bytes` (as sent, or once gunzipped);
//! - **429** + `Retry-After` over `max_requests_per_second`; **503** + `Retry-After`
//!   when the agent's queue stayed full for `queue_wait` (`emit` answered `Full`;
//!   meanwhile the request waits with its body unread, so a sender that ignores
//!   `Retry-After` is slowed by TCP instead of resending) or the instance stops:
//!   nothing of the request was taken, so the client retries it whole;
//! - `Content-Encoding: gzip` bodies are decompressed; other codings are **415**;
//!   unknown paths **404**, other methods **405**; slow clients get **408**.
//!
//! The listener (`tfo_plugin_common::http_server`, shared with the OTLP receiver)
//! is bound in `start` with `SO_REUSEADDR` + `SO_REUSEPORT` (make-before-break
//! upgrades); `stop` closes it and lets in-flight requests finish.

use std::{
    io::Read as _,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use tfo_plugin_api::{Batch, EmitStatus};
use tfo_plugin_common::http_server::{wait_for_room, HttpServer, RateLimit, Reply};

use crate::lineproto::{self, Precision};

/// Seconds a client is asked to wait after a 429 or 503.
pub const RETRY_AFTER_SECS: u64 = 1;
/// How long a client may take to send the headers, and then the body.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Where received batches go: the host's `emit` in the plugin, a recorder in tests.
pub type EmitFn = Arc<dyn Fn(Batch) -> EmitStatus + Send + Sync>;

/// Where exported batches come back from, to be parsed into
/// (`Context::reclaimed_batch` in the plugin).
pub type ReclaimFn = Arc<dyn Fn() -> Option<Batch> + Send + Sync>;

/// Limits of one receiver (from `receiver.*` in the config).
pub use tfo_plugin_common::http_server::ReceiverLimits as Limits;

/// Counters of one receiver, logged when it stops.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests answered 204.
    pub requests_ok: AtomicU64,
    /// Requests answered 4xx (400 included).
    pub requests_refused: AtomicU64,
    /// Requests answered 429 or 503.
    pub requests_throttled: AtomicU64,
    /// Points handed to the host.
    pub points_accepted: AtomicU64,
    /// Lines that did not parse.
    pub lines_rejected: AtomicU64,
    /// String fields skipped.
    pub string_fields_skipped: AtomicU64,
}

/// Which write API a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    V1,
    V2,
}

struct Shared {
    rate: Option<RateLimit>,
    max_body: u64,
    queue_wait: Duration,
    emit: EmitFn,
    reclaimed: Option<ReclaimFn>,
    /// Memory of reclaimed batches not used by the body that took them apart
    /// (the host hands back batches merged from several requests).
    spare: std::sync::Mutex<lineproto::Spare>,
    stats: Arc<Stats>,
}

/// Points' memory kept between requests at most (attribute vectors with their
/// strings, ~300 bytes each with three tags): more than a few requests of the
/// usual size in flight, a few MiB kept after a burst.
const MAX_SPARE_POINTS: usize = 16_384;

/// A running receiver.
#[derive(Debug)]
pub struct Receiver {
    server: HttpServer,
    stats: Arc<Stats>,
}

impl Receiver {
    /// Binds `addr` (`SO_REUSEADDR` + `SO_REUSEPORT`) and serves on the current tokio
    /// runtime; must be called from within it.
    pub fn start(addr: SocketAddr, limits: Limits, emit: EmitFn) -> Result<Receiver, String> {
        Self::start_reclaiming(addr, limits, emit, None)
    }

    /// [`Receiver::start`] parsing each body into a batch from `reclaimed` when
    /// it has one (memory reused instead of allocated, `parse_body_reusing`).
    pub fn start_reclaiming(
        addr: SocketAddr,
        limits: Limits,
        emit: EmitFn,
        reclaimed: Option<ReclaimFn>,
    ) -> Result<Receiver, String> {
        let stats = Arc::new(Stats::default());
        let shared = Arc::new(Shared {
            rate: RateLimit::new(limits.max_requests_per_second),
            max_body: limits.max_body,
            queue_wait: limits.queue_wait,
            emit,
            reclaimed,
            spare: Default::default(),
            stats: stats.clone(),
        });
        let server = HttpServer::start(
            "influxdb receiver",
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

    /// The receiver's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Closes the listener, lets in-flight requests finish for up to `deadline`,
    /// then aborts the rest. Idempotent.
    pub async fn stop(&mut self, deadline: Duration) {
        self.server.stop(deadline).await;
    }
}

/// The JSON error body InfluxDB answers with on each API.
fn error_body(api: Api, code: &str, message: &str) -> Bytes {
    let v = match api {
        Api::V1 => serde_json::json!({ "error": message }),
        Api::V2 => serde_json::json!({ "code": code, "message": message }),
    };
    Bytes::from(v.to_string())
}

fn reply(status: StatusCode, body: Option<Bytes>) -> Reply {
    let mut resp = Response::new(Full::new(body.clone().unwrap_or_default()));
    *resp.status_mut() = status;
    if body.is_some() {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    resp
}

fn error(shared: &Shared, api: Api, status: StatusCode, code: &str, message: String) -> Reply {
    let counter = match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
            &shared.stats.requests_throttled
        }
        _ => &shared.stats.requests_refused,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    tracing::debug!("influxdb receiver: {status}: {message}");
    let mut resp = reply(status, Some(error_body(api, code, &message)));
    if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    resp
}

/// Query parameters of a request (percent-decoded).
fn query(uri: &http::Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(req: Request<Incoming>, shared: &Shared) -> Reply {
    let (parts, body) = req.into_parts();
    let api = match parts.uri.path() {
        "/write" => Api::V1,
        "/api/v2/write" => Api::V2,
        "/ping" if matches!(parts.method, Method::GET | Method::HEAD) => {
            return reply(StatusCode::NO_CONTENT, None)
        }
        other => {
            let msg = format!("unknown path {other}: use /write or /api/v2/write");
            return drain(
                body,
                shared,
                error(shared, Api::V2, StatusCode::NOT_FOUND, "not found", msg),
            )
            .await;
        }
    };
    if parts.method != Method::POST {
        let mut resp = error(
            shared,
            api,
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
            format!("method {} not allowed: use POST", parts.method),
        );
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return drain(body, shared, resp).await;
    }
    if let Some(rate) = &shared.rate {
        if !rate.take() {
            let resp = error(
                shared,
                api,
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests",
                "rate limit of the receiver exceeded (receiver.max_requests_per_second); retry later".into(),
            );
            return drain(body, shared, resp).await;
        }
    }
    let params = query(&parts.uri);
    let param = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let precision_raw = param("precision").unwrap_or("");
    let Some(precision) = Precision::parse(precision_raw) else {
        let msg = format!("invalid precision {precision_raw:?}: use ns, us, ms or s");
        return drain(
            body,
            shared,
            error(shared, api, StatusCode::BAD_REQUEST, "invalid", msg),
        )
        .await;
    };
    let db = match api {
        Api::V1 => param("db"),
        Api::V2 => param("bucket"),
    }
    .filter(|d| !d.is_empty());
    let extra: Vec<(String, String)> = db
        .map(|d| ("db".to_string(), d.to_string()))
        .into_iter()
        .collect();
    let coding = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let gzip = match coding.as_deref() {
        None | Some("") | Some("identity") => false,
        Some("gzip") => true,
        Some(other) => {
            let msg = format!("unsupported Content-Encoding {other:?}: use gzip or none");
            let resp = error(
                shared,
                api,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported media type",
                msg,
            );
            return drain(body, shared, resp).await;
        }
    };
    let too_large = |what: &str| {
        error(
            shared,
            api,
            StatusCode::PAYLOAD_TOO_LARGE,
            "request too large",
            format!("{what}request body larger than the receiver's limit of {} bytes (receiver.max_body_bytes)", shared.max_body),
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > shared.max_body) {
        return too_large("");
    }
    // Ask the agent first (an empty emit takes nothing): while its queue is full the
    // request waits unread (TCP slows the sender) for up to `receiver.queue_wait`,
    // then is refused before its body is read and parsed, so overload costs little
    // CPU.
    let waiting_since = tokio::time::Instant::now();
    let probe = wait_for_room(|| (shared.emit)(Batch::default()), shared.queue_wait).await;
    if probe != EmitStatus::Accepted {
        return drain(body, shared, unavailable(shared, api, probe)).await;
    }
    let limit = usize::try_from(shared.max_body).unwrap_or(usize::MAX);
    let raw = match tokio::time::timeout(READ_TIMEOUT, Limited::new(body, limit).collect()).await {
        Err(_) => {
            return error(
                shared,
                api,
                StatusCode::REQUEST_TIMEOUT,
                "request timeout",
                format!("request body not received within {READ_TIMEOUT:?}"),
            )
        }
        Ok(Err(e)) if e.is::<LengthLimitError>() => return too_large(""),
        Ok(Err(e)) => {
            return error(
                shared,
                api,
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("reading the request body: {e}"),
            )
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    let body = if gzip {
        match gunzip(&raw, shared.max_body) {
            Ok(b) => Bytes::from(b),
            Err(None) => return too_large("decompressed "),
            Err(Some(e)) => {
                return error(
                    shared,
                    api,
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!("invalid gzip body: {e}"),
                )
            }
        }
    } else {
        raw
    };
    deliver(api, &body, precision, &extra, shared, waiting_since).await
}

/// The 503 for a batch the agent did not take (`Full` or `Closed`).
fn unavailable(shared: &Shared, api: Api, status: EmitStatus) -> Reply {
    let why = if status == EmitStatus::Full {
        "the agent's queue is full"
    } else {
        "the receiver is shutting down"
    };
    error(
        shared,
        api,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("{why}; retry later"),
    )
}

/// Parses and emits a body; the answer (204, 400 partial, 503). When the queue
/// filled between the probe and the parsed batch (other requests were admitted at
/// the same time), the request waits for room again within what is left of
/// `receiver.queue_wait` and the body is parsed again (`emit` consumed the batch).
async fn deliver(
    api: Api,
    body: &[u8],
    precision: Precision,
    extra: &[(String, String)],
    shared: &Shared,
    waiting_since: tokio::time::Instant,
) -> Reply {
    let received_ns = now_ns();
    let parsed = loop {
        let mut parsed = parse(shared, body, precision, received_ns, extra);
        let points = parsed.batch.item_count();
        if points == 0 {
            break parsed;
        }
        match (shared.emit)(std::mem::take(&mut parsed.batch)) {
            EmitStatus::Accepted => {
                shared
                    .stats
                    .points_accepted
                    .fetch_add(points, Ordering::Relaxed);
                break parsed;
            }
            EmitStatus::Full => {
                let left = shared.queue_wait.saturating_sub(waiting_since.elapsed());
                if left.is_zero() {
                    return unavailable(shared, api, EmitStatus::Full);
                }
                let again = wait_for_room(|| (shared.emit)(Batch::default()), left).await;
                if again != EmitStatus::Accepted {
                    return unavailable(shared, api, again);
                }
                tracing::trace!(
                    "influxdb receiver: the queue filled meanwhile; {} line(s) parsed again",
                    parsed.lines_ok
                );
            }
            status => return unavailable(shared, api, status),
        }
    };
    shared
        .stats
        .string_fields_skipped
        .fetch_add(parsed.string_fields, Ordering::Relaxed);
    if parsed.lines_bad > 0 {
        shared
            .stats
            .lines_rejected
            .fetch_add(parsed.lines_bad, Ordering::Relaxed);
        let first: Vec<String> = parsed
            .errors
            .iter()
            .map(|(n, e)| format!("line {n}: {e}"))
            .collect();
        let msg = format!(
            "partial write: {} line(s) accepted, {} dropped (unable to parse): {}",
            parsed.lines_ok,
            parsed.lines_bad,
            first.join("; ")
        );
        return error(shared, api, StatusCode::BAD_REQUEST, "invalid", msg);
    }
    shared.stats.requests_ok.fetch_add(1, Ordering::Relaxed);
    reply(StatusCode::NO_CONTENT, None)
}

/// Parses `body` into the memory of batches handed back by the host when there
/// are any (the shared spare first), keeping what is left for the next request.
fn parse(
    shared: &Shared,
    body: &[u8],
    precision: Precision,
    received_ns: u64,
    extra: &[(String, String)],
) -> lineproto::Parsed {
    let Some(reclaimed) = &shared.reclaimed else {
        return lineproto::parse_body(body, precision, received_ns, extra);
    };
    let lock = || shared.spare.lock().unwrap_or_else(|e| e.into_inner());
    let mut spare = std::mem::take(&mut *lock());
    let parsed =
        lineproto::parse_body_with(body, precision, received_ns, extra, &mut spare, &mut || {
            reclaimed()
        });
    let mut kept = lock();
    // Requests parsed at the same time each took what the others had left.
    kept.merge(std::mem::take(&mut spare));
    let excess = kept.split_excess(MAX_SPARE_POINTS, 64);
    drop(kept);
    drop(excess);
    parsed
}

/// Reads and drops the body of a refused request so the connection stays usable.
async fn drain(body: Incoming, shared: &Shared, resp: Reply) -> Reply {
    let limit = usize::try_from(shared.max_body).unwrap_or(usize::MAX);
    let _ = tokio::time::timeout(READ_TIMEOUT, Limited::new(body, limit).collect()).await;
    resp
}

/// Gunzips at most `max` bytes: `Err(None)` when larger, `Err(Some(why))` when not gzip.
fn gunzip(data: &[u8], max: u64) -> Result<Vec<u8>, Option<String>> {
    let mut out = Vec::new();
    let mut dec = flate2::read::MultiGzDecoder::new(data).take(max.saturating_add(1));
    dec.read_to_end(&mut out).map_err(|e| Some(e.to_string()))?;
    if out.len() as u64 > max {
        return Err(None);
    }
    Ok(out)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(u128::from(u64::MAX)) as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_percent_decoded() {
        let uri: http::Uri = "/write?db=my%20db&precision=s&x=%zz&y=%".parse().unwrap();
        assert_eq!(
            query(&uri),
            [
                ("db".to_string(), "my db".to_string()),
                ("precision".into(), "s".into()),
                ("x".into(), "%zz".into()),
                ("y".into(), "%".into())
            ]
        );
    }

    #[test]
    fn error_bodies_follow_each_api() {
        assert_eq!(
            &error_body(Api::V1, "invalid", "bad")[..],
            br#"{"error":"bad"}"#
        );
        assert_eq!(
            &error_body(Api::V2, "invalid", "bad")[..],
            br#"{"code":"invalid","message":"bad"}"#
        );
    }

    #[test]
    fn gunzip_limits() {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&[b'a'; 100]).unwrap();
        let gz = e.finish().unwrap();
        assert_eq!(gunzip(&gz, 100).unwrap().len(), 100);
        assert_eq!(gunzip(&gz, 99), Err(None));
        assert!(matches!(gunzip(b"nope", 100), Err(Some(_))));
    }
}
