//! Transport of the azure sink: sends a batch's metrics, logs and spans to the
//! configured Azure Monitor APIs with Microsoft Entra tokens ([`tfo_plugin_common::azure_auth`]).
//!
//! - metrics: `POST {base}{resource_id}/metrics`, one request per metric and time
//!   (audience `https://monitoring.azure.com/`);
//! - logs: `POST {dce}/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01`,
//!   gzip JSON arrays below 1 MB (audience `https://monitor.azure.com/`), answered
//!   204;
//! - traces: `POST {ingestion}/v2.1/track`, a JSON array of envelopes, answered
//!   `{itemsReceived, itemsAccepted, errors: [{index, statusCode, message}]}`
//!   (with a token only when `entra_auth`).
//!
//! Errors: a 401 drops the cached token, fetches a new one and resends once; a
//! second 401 is permanent. 408, 429 (with `Retry-After`), 439 (App Insights
//! quota) and 5xx are retryable; other 4xx are permanent. Application Insights
//! partial acceptance (200/206 with `errors`): items whose status is 408, 429,
//! 439, 500 or 503 are kept for the host's retry and only they are resent;
//! other rejected items are dropped, logged and counted.
//!
//! A batch is several requests. When one fails retryably after others were
//! delivered, the host hands the same batch again; the client remembers what was
//! delivered (requests of each signal, accepted envelopes) and sends only the rest.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Mutex,
};

use serde::Deserialize;
use serde_json::Value;
use tfo_plugin_api::{Batch, ErrorKind, ExportOk, PluginError};
use tfo_plugin_common::{
    azure_auth::TokenSource,
    http::{HttpClient, Method, Request, Response},
    retry,
};

use crate::{
    config::{Compression, Config},
    encode,
};

/// Token audience of the custom metrics API.
pub const METRICS_AUDIENCE: &str = "https://monitoring.azure.com/";
/// Token audience of the Logs Ingestion API and Application Insights.
pub const MONITOR_AUDIENCE: &str = "https://monitor.azure.com/";
/// Logs Ingestion API version.
pub const LOGS_API_VERSION: &str = "2023-01-01";

/// Per-item Application Insights statuses worth resending.
pub fn breeze_item_retryable(status: u16) -> bool {
    matches!(status, 408 | 429 | 439 | 500 | 503)
}

/// Counters of one client.
#[derive(Debug, Default)]
pub struct Stats {
    /// Items refused by a backend for good (invalid data), not resent.
    pub rejected: AtomicU64,
    /// Points or rows that could not be encoded (non-finite, too large).
    pub skipped: AtomicU64,
}

#[derive(Debug, Clone, PartialEq)]
enum TraceProgress {
    NotSent,
    /// Envelope indices still to send.
    Pending(Vec<usize>),
    Done,
}

/// What of a batch was delivered before a retryable failure.
struct Resume {
    batch: Batch,
    metrics_done: usize,
    logs_done: usize,
    traces: TraceProgress,
    accepted: u64,
}

struct Progress {
    metrics_done: usize,
    logs_done: usize,
    traces: TraceProgress,
    accepted: u64,
}

#[derive(Deserialize, Default)]
struct BreezeResponse {
    #[serde(default, rename = "itemsReceived")]
    items_received: Option<u64>,
    #[serde(default, rename = "itemsAccepted")]
    items_accepted: Option<u64>,
    #[serde(default)]
    errors: Vec<BreezeError>,
}

#[derive(Deserialize)]
struct BreezeError {
    index: usize,
    #[serde(rename = "statusCode")]
    status_code: u16,
    #[serde(default)]
    message: String,
}

struct TracesTarget {
    url: String,
    ikey: String,
    entra_auth: bool,
}

/// The azure sink's client.
pub struct AzureClient {
    http: HttpClient,
    tokens: Option<TokenSource>,
    metrics: Option<(String, String)>,
    logs: Option<(String, bool)>,
    traces: Option<TracesTarget>,
    resume: Mutex<Option<Resume>>,
    stats: Stats,
    last_rejection: Mutex<Option<String>>,
}

impl std::fmt::Debug for AzureClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureClient")
            .field("metrics", &self.metrics)
            .field("logs", &self.logs)
            .finish_non_exhaustive()
    }
}

impl AzureClient {
    /// Builds the client from a validated config.
    pub fn new(
        config: &Config,
        http: HttpClient,
        tokens: Option<TokenSource>,
    ) -> Result<Self, String> {
        let metrics = config.metrics.as_ref().map(|m| {
            (
                format!(
                    "{}{}/metrics",
                    m.base_url(),
                    m.resource_id.trim_end_matches('/')
                ),
                m.namespace.clone(),
            )
        });
        let logs = config.logs.as_ref().map(|l| {
            (
                format!(
                    "{}/dataCollectionRules/{}/streams/{}?api-version={LOGS_API_VERSION}",
                    l.endpoint.trim_end_matches('/'),
                    l.dcr_immutable_id,
                    l.stream_name
                ),
                l.compression == Compression::Gzip,
            )
        });
        let traces = match &config.traces {
            Some(t) => {
                let cs = t.resolve().map_err(|e| e.message.to_string())?;
                Some(TracesTarget {
                    url: format!("{}/v2.1/track", cs.ingestion_endpoint),
                    ikey: cs.instrumentation_key,
                    entra_auth: cs.entra_auth,
                })
            }
            None => None,
        };
        Ok(AzureClient {
            http,
            tokens,
            metrics,
            logs,
            traces,
            resume: Mutex::new(None),
            stats: Stats::default(),
            last_rejection: Mutex::new(None),
        })
    }

    /// The client's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The token source, when one is configured.
    pub fn tokens(&self) -> Option<&TokenSource> {
        self.tokens.as_ref()
    }

    /// The last permanent rejection of items, for health.
    pub fn last_rejection(&self) -> Option<String> {
        self.last_rejection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn note_rejection(&self, n: u64, msg: String) {
        self.stats.rejected.fetch_add(n, Ordering::Relaxed);
        tracing::warn!("{msg}");
        *self
            .last_rejection
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(msg);
    }

    fn take_resume(&self, batch: &Batch) -> Progress {
        let r = self.resume.lock().unwrap_or_else(|e| e.into_inner()).take();
        match r {
            Some(r) if r.batch == *batch => Progress {
                metrics_done: r.metrics_done,
                logs_done: r.logs_done,
                traces: r.traces,
                accepted: r.accepted,
            },
            _ => Progress {
                metrics_done: 0,
                logs_done: 0,
                traces: TraceProgress::NotSent,
                accepted: 0,
            },
        }
    }

    fn fail(&self, batch: &Batch, p: Progress, mut e: PluginError) -> PluginError {
        e.accepted = p.accepted;
        if e.kind == ErrorKind::Retryable {
            *self.resume.lock().unwrap_or_else(|e| e.into_inner()) = Some(Resume {
                batch: batch.clone(),
                metrics_done: p.metrics_done,
                logs_done: p.logs_done,
                traces: p.traces,
                accepted: p.accepted,
            });
        }
        e
    }

    /// Sends what the batch holds to the configured targets; `Ok` once everything
    /// sendable was accepted (permanently rejected items are logged and counted).
    pub async fn export(
        &self,
        batch: &Batch,
        now_unix_nanos: u64,
    ) -> Result<ExportOk, PluginError> {
        let mut p = self.take_resume(batch);

        if let Some((url, namespace)) = &self.metrics {
            if !batch.metrics.is_empty() {
                let (reqs, skipped) = encode::metric_requests(batch, namespace);
                if p.metrics_done == 0 {
                    self.warn_skipped_metrics(&skipped);
                }
                for (i, r) in reqs.iter().enumerate() {
                    if i < p.metrics_done {
                        continue;
                    }
                    let body = serde_json::to_vec(&r.body).unwrap_or_default();
                    let res = self
                        .send("custom metrics", url, body, Some(METRICS_AUDIENCE), false)
                        .await
                        .and_then(|resp| retry::classify(&resp));
                    if let Err(e) = res {
                        return Err(self.fail(batch, p, prefix("Azure Monitor custom metrics", e)));
                    }
                    p.metrics_done = i + 1;
                    p.accepted += r.points;
                }
            }
        }

        if let Some((url, gzip)) = &self.logs {
            if !batch.logs.is_empty() {
                let rows = encode::log_rows(batch, now_unix_nanos);
                let (chunks, too_large) = encode::chunk_rows(&rows, encode::MAX_LOGS_CALL_BYTES);
                if p.logs_done == 0 && !too_large.is_empty() {
                    self.stats
                        .skipped
                        .fetch_add(too_large.len() as u64, Ordering::Relaxed);
                    tracing::warn!(
                        "azure logs: {} record(s) not sent: each is larger than the Logs \
                         Ingestion API's 1 MB call limit",
                        too_large.len()
                    );
                }
                for (i, (body, idx)) in chunks.into_iter().enumerate() {
                    if i < p.logs_done {
                        continue;
                    }
                    let res = self
                        .send(
                            "Logs Ingestion API",
                            url,
                            body,
                            Some(MONITOR_AUDIENCE),
                            *gzip,
                        )
                        .await
                        .and_then(|resp| retry::classify(&resp));
                    if let Err(e) = res {
                        return Err(self.fail(
                            batch,
                            p,
                            prefix("Azure Monitor Logs Ingestion API", e),
                        ));
                    }
                    p.logs_done = i + 1;
                    p.accepted += idx.len() as u64;
                }
            }
        }

        if let Some(t) = &self.traces {
            if !batch.spans.is_empty() && p.traces != TraceProgress::Done {
                let all = encode::envelopes(batch, &t.ikey);
                let indices: Vec<usize> = match &p.traces {
                    TraceProgress::Pending(v) => v.clone(),
                    _ => (0..all.len()).collect(),
                };
                match self.send_traces(t, &all, &indices).await {
                    Ok(accepted) => {
                        p.accepted += accepted;
                        p.traces = TraceProgress::Done;
                    }
                    Err((accepted, pending, e)) => {
                        p.accepted += accepted;
                        if let Some(pending) = pending {
                            p.traces = TraceProgress::Pending(pending);
                        }
                        return Err(self.fail(batch, p, e));
                    }
                }
            }
        }
        Ok(ExportOk {
            accepted: p.accepted,
        })
    }

    fn warn_skipped_metrics(&self, s: &encode::Skipped) {
        if s.points > 0 {
            self.stats.skipped.fetch_add(s.points, Ordering::Relaxed);
            tracing::warn!(
                "azure metrics: {} point(s) not sent (non-finite value or empty histogram)",
                s.points
            );
        }
        if s.dimensions > 0 {
            tracing::warn!(
                "azure metrics: {} dimension(s) dropped: Azure Monitor accepts at most {} per \
                 metric",
                s.dimensions,
                encode::MAX_DIMENSIONS
            );
        }
    }

    /// Sends the envelopes at `indices`. Ok(accepted) when nothing is left to
    /// resend; otherwise (accepted, indices still to send, error).
    async fn send_traces(
        &self,
        t: &TracesTarget,
        all: &[Value],
        indices: &[usize],
    ) -> Result<u64, (u64, Option<Vec<usize>>, PluginError)> {
        const WHAT: &str = "Application Insights";
        let items: Vec<&Value> = indices.iter().filter_map(|i| all.get(*i)).collect();
        let body = serde_json::to_vec(&items).unwrap_or_default();
        let audience = t.entra_auth.then_some(MONITOR_AUDIENCE);
        let resp = self
            .send(WHAT, &t.url, body, audience, false)
            .await
            .map_err(|e| (0, None, e))?;
        let sent = indices.len() as u64;
        let per_item = matches!(resp.status, 200 | 206 | 400);
        if !per_item {
            if resp.status == 439 {
                let e = PluginError::retryable(format!(
                    "{WHAT}: daily quota exceeded ({})",
                    retry::describe(&resp)
                ));
                let e = match retry::retry_after_ms(&resp.headers, std::time::SystemTime::now()) {
                    Some(ms) => e.with_retry_after(ms),
                    None => e,
                };
                return Err((0, None, e));
            }
            return match retry::classify(&resp) {
                Ok(()) => Ok(sent),
                Err(e) => Err((0, None, prefix(WHAT, e))),
            };
        }
        let parsed: Option<BreezeResponse> = serde_json::from_slice(&resp.body).ok();
        let Some(parsed) = parsed else {
            return match resp.status {
                200 => Ok(sent),
                206 => Err((
                    0,
                    None,
                    PluginError::retryable(format!(
                        "{WHAT}: partial success (206) without a readable item list"
                    )),
                )),
                _ => Err((
                    0,
                    None,
                    prefix(WHAT, PluginError::permanent(retry::describe(&resp))),
                )),
            };
        };
        let mut pending = Vec::new();
        let mut rejected = 0u64;
        let mut first_rejection = None;
        let mut first_retry = None;
        for e in &parsed.errors {
            let Some(orig) = indices.get(e.index) else {
                continue;
            };
            if breeze_item_retryable(e.status_code) {
                pending.push(*orig);
                first_retry.get_or_insert_with(|| format!("{}: {}", e.status_code, e.message));
            } else {
                rejected += 1;
                first_rejection.get_or_insert_with(|| format!("{}: {}", e.status_code, e.message));
            }
        }
        pending.sort_unstable();
        pending.dedup();
        let accepted = parsed
            .items_accepted
            .unwrap_or_else(|| sent.saturating_sub(pending.len() as u64 + rejected));
        if rejected > 0 {
            self.note_rejection(
                rejected,
                format!(
                    "{WHAT} rejected {rejected} of {} item(s) for good (not resent); first: {}",
                    parsed.items_received.unwrap_or(sent),
                    first_rejection.unwrap_or_default()
                ),
            );
        }
        if !pending.is_empty() {
            let n = pending.len();
            return Err((
                accepted,
                Some(pending),
                PluginError::retryable(format!(
                    "{WHAT} accepted {accepted} of {sent} item(s); {n} to resend ({})",
                    first_retry.unwrap_or_default()
                )),
            ));
        }
        if resp.status == 400 && accepted == 0 {
            return Err((
                0,
                None,
                PluginError::permanent(format!(
                    "{WHAT} refused the whole request: {}",
                    retry::describe(&resp)
                )),
            ));
        }
        Ok(accepted)
    }

    /// POSTs a JSON body, with a bearer token for `audience` when given. A 401
    /// drops the token and resends once with a new one; a second 401 is permanent.
    async fn send(
        &self,
        what: &str,
        url: &str,
        body: Vec<u8>,
        audience: Option<&str>,
        gzip: bool,
    ) -> Result<Response, PluginError> {
        let mut refreshed = false;
        loop {
            let mut req = Request::new(Method::POST, url)
                .header("Content-Type", "application/json")
                .body(body.clone())
                .gzip(gzip);
            let tokens = match audience {
                Some(aud) => {
                    let tokens = self.tokens.as_ref().ok_or_else(|| {
                        PluginError::permanent(format!("{what}: no credentials configured"))
                    })?;
                    let token = tokens.token(aud).await?;
                    req = req.header("Authorization", format!("Bearer {}", token.expose()));
                    Some((tokens, aud))
                }
                None => None,
            };
            let resp = self
                .http
                .send(req)
                .await
                .map_err(|e| PluginError::retryable(format!("{what}: {e}")))?;
            if resp.status == 401 {
                if let Some((tokens, aud)) = tokens {
                    if !refreshed {
                        refreshed = true;
                        tracing::info!(
                            "{what} answered 401: fetching a new access token and sending once more"
                        );
                        tokens.invalidate(aud).await;
                        continue;
                    }
                    return Err(PluginError::permanent(format!(
                        "{what} refused a freshly issued access token (HTTP 401 twice); check the \
                         identity's role assignment: {}",
                        retry::describe(&resp)
                    )));
                }
            }
            return Ok(resp);
        }
    }

    /// The request bodies `export` would send, as text (no network).
    pub fn preview(&self, batch: &Batch, now_unix_nanos: u64) -> String {
        let mut out = String::new();
        if let Some((url, ns)) = &self.metrics {
            for r in encode::metric_requests(batch, ns).0 {
                out.push_str(&format!("POST {url}\n{}\n", r.body));
            }
        }
        if let Some((url, _)) = &self.logs {
            let rows = encode::log_rows(batch, now_unix_nanos);
            for (body, _) in encode::chunk_rows(&rows, encode::MAX_LOGS_CALL_BYTES).0 {
                out.push_str(&format!("POST {url}\n{}\n", String::from_utf8_lossy(&body)));
            }
        }
        if let Some(t) = &self.traces {
            if !batch.spans.is_empty() {
                let e = Value::Array(encode::envelopes(batch, &t.ikey));
                out.push_str(&format!("POST {}\n{e}\n", t.url));
            }
        }
        out
    }
}

fn prefix(what: &str, mut e: PluginError) -> PluginError {
    if !e.message.starts_with(what) {
        e.message = format!("{what}: {}", e.message).into();
    }
    e
}
