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
//! These rules are the shared [`tfo_plugin_common::otlp_http`] module's (the same
//! for every OTLP/HTTP sink, tested there).
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
    http::{ClientOptions, HttpClient},
    otlp_http, retry,
};

use crate::{
    config::{Compression, Config},
    encode::{self, Encoded, Options},
};

/// `google.rpc.Status` and the OTLP answer rules (which codes retry, the
/// `Status` message, `partial_success`), from the shared OTLP/HTTP module.
pub use tfo_plugin_common::otlp_http::{error_for, status_message, Status};

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
        let mut headers: Vec<(String, String)> = config
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
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
        let mut request =
            otlp_http::protobuf_request(self.url.clone(), req.body.clone(), self.gzip);
        for (k, v) in &self.headers {
            request = request.header(k.clone(), v.clone());
        }
        let resp = self.client.send(request).await.map_err(retry::transport)?;
        if !(200..300).contains(&resp.status) {
            return Err(error_for(&resp, &self.url));
        }
        self.stats.requests_ok.fetch_add(1, Ordering::Relaxed);
        let (rejected, message) = otlp_http::partial_success(otlp_http::Signal::Traces, &resp);
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
