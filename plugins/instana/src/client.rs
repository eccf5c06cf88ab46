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
//! These rules, the request shape and the resume bookkeeping are the shared
//! [`tfo_plugin_common::otlp_http`] module's (the same for every OTLP/HTTP sink);
//! this file adds the vendor's headers and wording.
//!
//! The agent key never appears in logs or errors: every message passes through
//! [`redact`]. When one signal of a batch fails retryably after another was
//! delivered, the undelivered requests are kept and the retry of the same batch
//! sends only those.

use tfo_plugin_api::{Batch, ExportOk, PluginError};
use tfo_plugin_common::{
    http::{ClientOptions, HttpClient, Response},
    otlp_http::{self, Pending},
    retry,
};

use crate::{
    config::{Compression, Config, Signal},
    encode::{self, Outgoing, ResourceExtras},
};

/// `google.rpc.Status` (the body of OTLP/HTTP error answers) and the secret
/// redaction, from the shared OTLP/HTTP module.
pub use tfo_plugin_common::otlp_http::{redact, Status};

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
    pending: Option<Pending<Outgoing>>,
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
        let mut pending = match Pending::resume(&mut self.pending, batch, "instana") {
            Some(p) => p,
            None => {
                let (requests, skipped) = encode::requests(batch, &self.signals, &self.extras);
                if skipped > 0 {
                    self.stats.skipped_points += skipped;
                    tracing::warn!(
                        "instana: {skipped} metric point(s) not sent: their value does not match \
                         their metric's kind"
                    );
                }
                Pending::new(requests, 0)
            }
        };
        let host = encode::host_header(batch, self.host_id.as_deref());
        while let Some(req) = pending.next() {
            match self.send(req, host.as_deref()).await {
                Ok(n) => pending.delivered(n),
                Err(e) => {
                    if let Some(e) = pending.failed(e, "instana") {
                        self.pending = Some(pending.keep_for(batch));
                        return Err(e);
                    }
                }
            }
        }
        pending.finish()
    }

    async fn send(&mut self, req: &Outgoing, host: Option<&str>) -> Result<u64, PluginError> {
        let url = format!("{}{}", self.base, req.signal.path());
        let mut request = otlp_http::protobuf_request(url.clone(), req.body.clone(), self.gzip);
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
        let (rejected, message) = otlp_http::partial_success(otlp_signal(req.signal), &resp);
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
    fn error(&self, e: PluginError, resp: &Response, url: &str) -> PluginError {
        let mut e = otlp_http::narrow(e, resp);
        let text = match otlp_http::status_message(resp) {
            Some(m) => format!("{url}: HTTP {}: {m}", resp.status),
            None => format!("{url}: {}", e.message),
        };
        e.message = redact(&text, &self.key).into();
        e
    }
}

/// The OTLP signal (response message type) of a request.
fn otlp_signal(s: Signal) -> otlp_http::Signal {
    match s {
        Signal::Metrics => otlp_http::Signal::Metrics,
        Signal::Traces => otlp_http::Signal::Traces,
        Signal::Logs => otlp_http::Signal::Logs,
    }
}
