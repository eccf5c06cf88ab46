//! Transport: posts the encoded OTLP requests to `<base>/v1/metrics`,
//! `/v1/traces` and `/v1/logs` through the shared [`HttpClient`], with the
//! headers Instana documents (`x-instana-key: <agent key>`, `x-instana-host:
//! <host>`), and turns the answers into the host's retry vocabulary.
//!
//! Instana's acceptor is an OTLP/HTTP server, so its answers follow the OTLP
//! specification (<https://opentelemetry.io/docs/specs/otlp/#otlphttp-response>):
//! - 200 is success; a `partial_success` in the body (rejected items and a
//!   message) is logged, counted, shown in health and subtracted from
//!   `ExportOk::accepted`, and never retried ("Partial Success");
//! - 429, 502, 503 and 504 are retryable, honouring `Retry-After` ("Retryable
//!   Response Codes", "OTLP/HTTP Throttling");
//! - every other 4xx and 5xx is permanent ("MUST NOT be retried"): a wrong agent
//!   key (401/403) will not become right by retrying;
//! - a `google.rpc.Status` body is decoded for its message;
//! - transport failures are retryable.
//!
//! The agent key never appears in logs or errors: every message passes through
//! [`redact`]. When one signal of a batch fails retryably after another was
//! delivered, the undelivered requests are kept and the retry of the same batch
//! sends only those.

use std::collections::VecDeque;

use tfo_plugin_api::{Batch, ErrorKind, ExportOk, PluginError};
use tfo_plugin_common::{
    http::{ClientOptions, HttpClient, Method, Request, Response},
    otlp::opentelemetry_proto::tonic::collector::{
        logs::v1::ExportLogsServiceResponse, metrics::v1::ExportMetricsServiceResponse,
        trace::v1::ExportTraceServiceResponse,
    },
    retry,
};

use crate::{
    config::{Compression, Config, Signal},
    encode::{self, Outgoing, ResourceExtras},
};

/// `google.rpc.Status`: the body of OTLP/HTTP error answers (spec, "Failures").
/// Only `code` and `message` are read.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    /// `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Explanation.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// Replaces every occurrence of `secret` in `text` with `***`.
pub fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_string()
    } else {
        text.replace(secret, "***")
    }
}

struct Pending {
    batch: Batch,
    host: Option<String>,
    requests: VecDeque<Outgoing>,
    accepted: u64,
    permanent: Option<PluginError>,
}

/// Counters shown in health and logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Requests answered 200.
    pub requests_ok: u64,
    /// Items the acceptor reported rejected in a `partial_success`.
    pub rejected_by_backend: u64,
    /// Metric points the OTLP encoder could not express.
    pub skipped_points: u64,
}

/// The Instana exporter of one instance.
pub struct Exporter {
    client: HttpClient,
    key: String,
    base: String,
    host_id: Option<String>,
    signals: Vec<Signal>,
    extras: ResourceExtras,
    gzip: bool,
    headers: Vec<(String, String)>,
    pending: Option<Pending>,
    stats: Stats,
    last_rejection: Option<String>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Exporter {
    /// Builds the HTTP client (reads the CA file); connects nothing yet.
    pub fn new(config: &Config) -> Result<Exporter, String> {
        let client = HttpClient::new(&ClientOptions {
            timeout: config.timeout,
            ca_file: config.ca_file.clone(),
            insecure_skip_verify: config.tls_skip_verify,
            ..ClientOptions::default()
        })?;
        Ok(Exporter {
            client,
            key: config
                .agent_key
                .as_deref()
                .map(str::trim)
                .unwrap_or("")
                .to_string(),
            base: config.base_url(),
            host_id: config.host_id.clone(),
            signals: config.signals.clone(),
            extras: ResourceExtras::new(config.service_name.as_deref(), &config.tags),
            gzip: config.compression == Compression::Gzip,
            headers: config
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            pending: None,
            stats: Stats::default(),
            last_rejection: None,
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The last partial rejection, for health.
    pub fn last_rejection(&self) -> Option<&str> {
        self.last_rejection.as_deref()
    }

    /// What `export` would send, as text (URLs, headers without the key, sizes).
    pub fn preview(&self, batch: &Batch) -> String {
        let (reqs, _) = encode::requests(batch, &self.signals, &self.extras);
        let host = encode::host_header(batch, self.host_id.as_deref());
        reqs.iter()
            .map(|r| {
                format!(
                    "POST {}{}  x-instana-key: ***  x-instana-host: {}  <OTLP protobuf, {} item(s), {} bytes>\n",
                    self.base,
                    r.signal.path(),
                    host.as_deref().unwrap_or("-"),
                    r.items,
                    r.body.len()
                )
            })
            .collect()
    }

    /// Sends the batch; `Ok` once every request was answered 200.
    pub async fn export(&mut self, batch: &Batch) -> Result<ExportOk, PluginError> {
        let mut pending = match self.pending.take() {
            Some(p) if p.batch == *batch => p,
            _ => {
                let (requests, skipped) = encode::requests(batch, &self.signals, &self.extras);
                if skipped > 0 {
                    self.stats.skipped_points += skipped;
                    tracing::warn!(
                        "instana: {skipped} metric point(s) not sent: their value does not match \
                         their metric's kind"
                    );
                }
                Pending {
                    batch: Batch::default(),
                    host: encode::host_header(batch, self.host_id.as_deref()),
                    requests: requests.into(),
                    accepted: 0,
                    permanent: None,
                }
            }
        };
        while let Some(req) = pending.requests.front() {
            match self.send(req, pending.host.as_deref()).await {
                Ok(n) => {
                    pending.accepted += n;
                    pending.requests.pop_front();
                }
                Err(mut e) if e.kind == ErrorKind::Retryable => {
                    e.accepted = pending.accepted;
                    pending.batch = batch.clone();
                    self.pending = Some(pending);
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!("instana: {}", e.message);
                    pending.requests.pop_front();
                    pending.permanent.get_or_insert(e);
                }
            }
        }
        match pending.permanent {
            Some(mut e) => {
                e.accepted = pending.accepted;
                Err(e)
            }
            None => Ok(ExportOk {
                accepted: pending.accepted,
            }),
        }
    }

    async fn send(&mut self, req: &Outgoing, host: Option<&str>) -> Result<u64, PluginError> {
        let url = format!("{}{}", self.base, req.signal.path());
        let mut request = Request::new(Method::POST, url.clone())
            .header("Content-Type", "application/x-protobuf")
            .body(req.body.clone())
            .gzip(self.gzip);
        if !self.key.is_empty() {
            request = request.header("x-instana-key", self.key.clone());
        }
        if let Some(h) = host {
            request = request.header("x-instana-host", h);
        }
        for (k, v) in &self.headers {
            request = request.header(k.clone(), v.clone());
        }
        let resp = match self.client.send(request).await {
            Ok(r) => r,
            Err(e) => return Err(retry::transport(redact(&e, &self.key))),
        };
        if let Err(e) = retry::classify(&resp) {
            return Err(self.error(e, &resp, &url));
        }
        self.stats.requests_ok += 1;
        let (rejected, message) = partial_success(req.signal, &resp);
        if rejected > 0 {
            let text = redact(
                &format!(
                    "{url}: the acceptor rejected {rejected} of {} item(s) (not retried): {message}",
                    req.items
                ),
                &self.key,
            );
            tracing::warn!("instana: {text}");
            self.stats.rejected_by_backend += rejected;
            self.last_rejection = Some(text);
        } else if !message.is_empty() {
            tracing::info!("instana: acceptor warning: {}", redact(&message, &self.key));
        }
        Ok(req.items.saturating_sub(rejected))
    }

    /// Narrows the shared classification to OTLP's retryable codes and quotes the
    /// `Status` message.
    fn error(&self, mut e: PluginError, resp: &Response, url: &str) -> PluginError {
        if e.kind == ErrorKind::Retryable && !matches!(resp.status, 429 | 502 | 503 | 504) {
            e.kind = ErrorKind::Permanent;
            e.retry_after_ms = None.into();
        }
        let status = {
            use prost::Message as _;
            let ct = resp
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if ct.starts_with("application/x-protobuf") {
                Status::decode(&resp.body[..]).ok()
            } else {
                None
            }
        };
        let text = match status {
            Some(s) if !s.message.is_empty() => {
                format!("{url}: HTTP {}: {}", resp.status, s.message)
            }
            _ => format!("{url}: {}", e.message),
        };
        e.message = redact(&text, &self.key).into();
        e
    }
}

/// The `partial_success` of a 200 answer: (rejected items, message). An empty or
/// undecodable body is full success.
fn partial_success(signal: Signal, resp: &Response) -> (u64, String) {
    use prost::Message as _;
    if resp.body.is_empty() {
        return (0, String::new());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        assert_eq!(redact("k=KEY;KEY", "KEY"), "k=***;***");
        assert_eq!(redact("x", ""), "x");
    }
}
