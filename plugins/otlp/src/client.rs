//! The OTLP/HTTP exporter: posts a batch's metrics, spans and logs to
//! `<endpoint>/v1/metrics`, `/v1/traces` and `/v1/logs` (only the signals the batch
//! holds), through the shared [`HttpClient`] (TLS, pooling, gzip, timeout).
//!
//! Behaviour, following the OTLP specification
//! (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>):
//! - bodies are binary protobuf (`application/x-protobuf`) or OTLP/JSON
//!   (`application/json`, [`crate::json`]), optionally gzip-compressed with
//!   `Content-Encoding: gzip` ("OTLP/HTTP Request");
//! - 200 is success. A `partial_success` in the response body (spec, "Partial
//!   Success") is not retried, as the spec requires: the rejected count and the
//!   server's message are logged as a warning, added to
//!   [`ExporterStats::rejected_by_backend`] and shown in the plugin's health
//!   reason, and `ExportOk::accepted` is reduced by that count;
//! - 429, 502, 503 and 504 are retryable, with the server's `Retry-After` passed to
//!   the host ("Retryable Response Codes", "OTLP/HTTP Throttling"); every other 4xx
//!   and 5xx is permanent, because the spec says they "MUST NOT be retried" (the
//!   shared classifier would also retry 408 and other 5xx; that is narrowed here);
//!   transport failures are retryable ("All Other Responses");
//! - error messages quote the `google.rpc.Status` message of the response body
//!   when it decodes.
//!
//! The classification of error answers is the shared
//! [`tfo_plugin_common::otlp_http`] module's (the same for every OTLP/HTTP sink);
//! `partial_success` is read here because OTLP/JSON answers go through this
//! plugin's JSON codec.
//!
//! A batch with several signals is several requests. When one fails retryably after
//! another was delivered, the host will hand the same batch again; the exporter
//! remembers which signals of that batch were delivered and sends only the rest,
//! so a retry does not duplicate data at the backend.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Mutex,
};

use http::Method;
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceResponse, metrics::v1::ExportMetricsServiceResponse,
    trace::v1::ExportTraceServiceResponse,
};
use tfo_plugin_api::{Batch, ErrorKind, ExportOk, PluginError};
use tfo_plugin_common::{
    http::{ClientOptions, HttpClient, Request, Response},
    otlp as encode, otlp_http, retry,
};

use crate::{
    config::{Compression, Encoding, ExporterConfig},
    json::{JsonCodec, OtlpMessage},
};

/// Counters of one exporter.
#[derive(Debug, Default)]
pub struct ExporterStats {
    /// HTTP requests answered 2xx.
    pub requests_ok: AtomicU64,
    /// Items the backend reported as rejected in a `partial_success`.
    pub rejected_by_backend: AtomicU64,
    /// Metric points not sent because their value did not fit their metric's kind.
    pub skipped_points: AtomicU64,
}

/// The signals of a batch, in the order they are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Metrics,
    Traces,
    Logs,
}

impl Signal {
    const ALL: [Signal; 3] = [Signal::Metrics, Signal::Traces, Signal::Logs];

    fn path(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Traces => "traces",
            Signal::Logs => "logs",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A batch whose first signals were delivered before a retryable failure.
struct Resume {
    batch: Batch,
    delivered: [bool; 3],
}

/// An OTLP/HTTP exporter.
pub struct Exporter {
    client: HttpClient,
    config: ExporterConfig,
    codec: JsonCodec,
    stats: ExporterStats,
    resume: Mutex<Option<Resume>>,
    last_rejection: Mutex<Option<String>>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("endpoint", &self.config.endpoint)
            .finish_non_exhaustive()
    }
}

/// One encoded request.
struct Encoded {
    signal: Signal,
    body: Vec<u8>,
    items: u64,
}

impl Exporter {
    /// Builds the HTTP client (reads the CA file); connects nothing yet.
    pub fn new(config: ExporterConfig, codec: JsonCodec) -> Result<Exporter, String> {
        let client = HttpClient::new(&ClientOptions {
            timeout: config.timeout,
            ca_file: config.ca_file.clone(),
            insecure_skip_verify: config.insecure_skip_verify,
            ..ClientOptions::default()
        })?;
        Ok(Exporter {
            client,
            config,
            codec,
            stats: ExporterStats::default(),
            resume: Mutex::new(None),
            last_rejection: Mutex::new(None),
        })
    }

    /// The exporter's counters.
    pub fn stats(&self) -> &ExporterStats {
        &self.stats
    }

    /// The last `partial_success` the backend answered with, if any (for health).
    pub fn last_rejection(&self) -> Option<String> {
        self.last_rejection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends the batch; `Ok` once every signal in it was answered 2xx.
    pub async fn export(&self, batch: &Batch) -> Result<ExportOk, PluginError> {
        let (requests, skipped) = self.encode(batch)?;
        if skipped > 0 {
            self.stats
                .skipped_points
                .fetch_add(skipped, Ordering::Relaxed);
            tracing::warn!(
                "otlp exporter: {skipped} metric point(s) not sent: their value does not match \
                 their metric's kind"
            );
        }
        let mut delivered = self.take_resume(batch);
        let mut accepted = 0u64;
        for req in requests {
            if delivered[req.signal.index()] {
                accepted += req.items;
                continue;
            }
            match self.send(&req).await {
                Ok(rejected) => {
                    delivered[req.signal.index()] = true;
                    accepted += req.items.saturating_sub(rejected);
                }
                Err(mut e) => {
                    e.accepted = accepted;
                    if e.kind == ErrorKind::Retryable && delivered.iter().any(|d| *d) {
                        *self.resume.lock().unwrap_or_else(|e| e.into_inner()) = Some(Resume {
                            batch: batch.clone(),
                            delivered,
                        });
                    }
                    return Err(e);
                }
            }
        }
        Ok(ExportOk { accepted })
    }

    /// What was already delivered of `batch`, if it is the batch that failed last.
    fn take_resume(&self, batch: &Batch) -> [bool; 3] {
        let resume = self.resume.lock().unwrap_or_else(|e| e.into_inner()).take();
        match resume {
            Some(r) if r.batch == *batch => {
                tracing::debug!(
                    "otlp exporter: retrying a batch, skipping the signals already delivered"
                );
                r.delivered
            }
            _ => [false; 3],
        }
    }

    /// The request bodies of a batch and the number of metric points skipped.
    fn encode(&self, batch: &Batch) -> Result<(Vec<Encoded>, u64), PluginError> {
        let mut out = Vec::new();
        let mut skipped = 0;
        for signal in Signal::ALL {
            let encoded = match signal {
                Signal::Metrics => {
                    let (req, bad) = encode::metrics(batch);
                    skipped = bad;
                    req.map(|r| self.body(&r))
                }
                Signal::Traces => encode::traces(batch).map(|r| self.body(&r)),
                Signal::Logs => encode::logs(batch).map(|r| self.body(&r)),
            };
            if let Some(body) = encoded {
                let items = match signal {
                    Signal::Metrics => {
                        batch
                            .metrics
                            .iter()
                            .map(|m| m.points.len() as u64)
                            .sum::<u64>()
                            - skipped
                    }
                    Signal::Traces => batch.spans.len() as u64,
                    Signal::Logs => batch.logs.len() as u64,
                };
                out.push(Encoded {
                    signal,
                    body: body.map_err(PluginError::permanent)?,
                    items,
                });
            }
        }
        Ok((out, skipped))
    }

    fn body<T: OtlpMessage>(&self, msg: &T) -> Result<Vec<u8>, String> {
        match self.config.encoding {
            Encoding::Protobuf => Ok(msg.encode_to_vec()),
            Encoding::Json => self.codec.encode(msg),
        }
    }

    fn content_type(&self) -> &'static str {
        match self.config.encoding {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }

    /// Posts one request; `Ok(rejected)` on 2xx with the backend's rejected count.
    async fn send(&self, req: &Encoded) -> Result<u64, PluginError> {
        let url = self.config.url(req.signal.path());
        let mut request = Request::new(Method::POST, url.clone())
            .header("Content-Type", self.content_type())
            .body(req.body.clone())
            .gzip(self.config.compression == Compression::Gzip);
        for (k, v) in &self.config.headers {
            request = request.header(k.clone(), v.clone());
        }
        let resp = self.client.send(request).await.map_err(retry::transport)?;
        if !(200..300).contains(&resp.status) {
            return Err(otlp_http::error_for(&resp, &url));
        }
        self.stats.requests_ok.fetch_add(1, Ordering::Relaxed);
        let (rejected, message) = self.partial_success(req.signal, &resp);
        if rejected > 0 || !message.is_empty() {
            let text = format!(
                "{url}: the backend rejected {rejected} of {} {}: {message}",
                req.items,
                match req.signal {
                    Signal::Metrics => "data points",
                    Signal::Traces => "spans",
                    Signal::Logs => "log records",
                }
            );
            if rejected > 0 {
                tracing::warn!("otlp exporter: {text}");
                self.stats
                    .rejected_by_backend
                    .fetch_add(rejected, Ordering::Relaxed);
                *self
                    .last_rejection
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(text);
            } else {
                tracing::info!("otlp exporter: backend warning: {text}");
            }
        }
        Ok(rejected)
    }

    /// The `partial_success` of a 2xx response: (rejected items, message). An empty
    /// or undecodable body counts as full success (some servers answer 200 with
    /// nothing).
    fn partial_success(&self, signal: Signal, resp: &Response) -> (u64, String) {
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
        fn decode<T: OtlpMessage>(json: bool, body: &[u8], codec: &JsonCodec) -> Option<T> {
            if json {
                codec.decode(body).ok()
            } else {
                T::decode(body).ok()
            }
        }
        let body = &resp.body;
        let found = match signal {
            Signal::Traces => decode::<ExportTraceServiceResponse>(json, body, &self.codec)
                .and_then(|r| r.partial_success)
                .map(|p| (p.rejected_spans, p.error_message)),
            Signal::Metrics => decode::<ExportMetricsServiceResponse>(json, body, &self.codec)
                .and_then(|r| r.partial_success)
                .map(|p| (p.rejected_data_points, p.error_message)),
            Signal::Logs => decode::<ExportLogsServiceResponse>(json, body, &self.codec)
                .and_then(|r| r.partial_success)
                .map(|p| (p.rejected_log_records, p.error_message)),
        };
        match found {
            Some((n, msg)) => (u64::try_from(n).unwrap_or(0), msg),
            None => (0, String::new()),
        }
    }
}
