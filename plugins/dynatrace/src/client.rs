//! Transport: posts a batch's encoded requests to the three Dynatrace APIs through
//! the shared [`HttpClient`] (TLS verification, pooling, timeout) and turns every
//! answer into the host's retry vocabulary.
//!
//! Authentication: `Authorization: Api-Token <token>` on every request ("Tokens and
//! authentication"; scopes `metrics.ingest`, `logs.ingest`,
//! `openTelemetryTrace.ingest`). The token never appears in a log line or an error
//! message: every message passes through [`redact`] first.
//!
//! Answers, per API page:
//! - **Metrics** (`POST /api/v2/metrics/ingest`, "Metrics API - POST ingest data
//!   points"): 202 with a `ValidationResponse` (`linesOk`, `linesInvalid`,
//!   `error.invalidLines[]`); **400 with a `ValidationResponse`** means "some data
//!   points are invalid; valid data points are accepted": that is a partial success,
//!   never retried (the invalid lines would be refused again and the valid ones
//!   would be duplicated). The invalid lines are logged (first few), counted and
//!   shown in health; `ExportOk::accepted` is reduced. A 400 that accepted no line
//!   is a permanent error.
//! - **Logs** (`POST /api/v2/logs/ingest`, "Log Monitoring API - POST ingest
//!   logs"): 204 success; 200 "only a part of input events were ingested" (partial
//!   success, logged, not retried); 429, 502, 503, 504 are documented as retryable
//!   with backoff; 400, 402, 404, 413 and 501 are permanent.
//! - **Traces** (`POST /api/v2/otlp/v1/traces`, "OpenTelemetry trace ingest API"):
//!   200 (an OTLP `partial_success` in the body is honoured as in the OTLP spec);
//!   400, 413, 415 permanent; 500 and 503 retryable.
//!
//! Everything else follows [`tfo_plugin_common::retry`]: 408, 429 and 5xx retryable
//! with the server's `Retry-After` ("Dynatrace API - Access limit": a full request
//! queue answers 429), other statuses permanent, transport failures retryable.
//!
//! A batch becomes several requests (one per signal, and metrics and logs in chunks).
//! When one fails retryably after others were delivered, the requests not yet
//! delivered are kept, already encoded, and the host's retry of the same batch
//! sends only those: nothing is duplicated, and the cumulative-to-delta memory is
//! not advanced twice.

use serde::Deserialize;
use tfo_plugin_api::{Batch, ExportOk, PluginError};
use tfo_plugin_common::{
    http::{ClientOptions, HttpClient, Method, Request, Response},
    otlp_http::{self, Pending},
    retry,
};

use crate::{
    config::{Config, Endpoints, Signal},
    encode::{self, MetricEncoder, MAX_METRICS_PAYLOAD_BYTES},
};

/// How many invalid lines a partial-success warning quotes.
const QUOTED_INVALID_LINES: usize = 5;

/// Replaces every occurrence of the token in a text with `***` (shared helper).
pub use tfo_plugin_common::otlp_http::redact;

/// One encoded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Which API it goes to.
    pub signal: Signal,
    /// The body.
    pub body: Vec<u8>,
    /// Items (lines, records, spans) it carries.
    pub items: u64,
}

/// Counters shown in health and logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Requests answered with success (partial included).
    pub requests_ok: u64,
    /// Metric lines or log records the backend reported invalid.
    pub rejected_by_backend: u64,
    /// Points the encoder could not express (see `encode`).
    pub skipped_points: u64,
}

/// The Dynatrace exporter of one instance.
pub struct Exporter {
    client: HttpClient,
    token: String,
    endpoints: Endpoints,
    headers: Vec<(String, String)>,
    signals: Vec<Signal>,
    tags: Vec<(String, String)>,
    max_lines: usize,
    max_logs: usize,
    metrics: MetricEncoder,
    pending: Option<Pending<Outgoing>>,
    stats: Stats,
    last_rejection: Option<String>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// `ValidationResponse` of the metrics ingest API.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ValidationResponse {
    lines_ok: Option<u64>,
    lines_invalid: Option<u64>,
    error: Option<MetricIngestError>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricIngestError {
    message: Option<String>,
    #[serde(default)]
    invalid_lines: Vec<InvalidLine>,
}

#[derive(Debug, Default, Deserialize)]
struct InvalidLine {
    line: Option<u64>,
    error: Option<String>,
}

/// `ErrorEnvelope` / `SuccessEnvelope` messages of the other APIs.
#[derive(Debug, Default, Deserialize)]
struct Envelope {
    error: Option<EnvelopeDetail>,
    details: Option<EnvelopeDetail>,
}

#[derive(Debug, Default, Deserialize)]
struct EnvelopeDetail {
    message: Option<String>,
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
        let tags: Vec<(String, String)> = config
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Exporter {
            client,
            token: config.api_token.trim().to_string(),
            endpoints: config.endpoints(),
            headers: config
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            signals: config.signals.clone(),
            metrics: MetricEncoder::new(
                config.metric_prefix.as_deref(),
                &tags,
                config.resource_dimensions,
            ),
            tags,
            max_lines: config.max_lines_per_request,
            max_logs: config.max_logs_per_request,
            pending: None,
            stats: Stats::default(),
            last_rejection: None,
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The last partial rejection the backend reported, for health.
    pub fn last_rejection(&self) -> Option<&str> {
        self.last_rejection.as_deref()
    }

    /// The requests `batch` becomes, and the items consumed without a request
    /// (cumulative baselines). Advances the cumulative-to-delta memory.
    pub fn encode(&mut self, batch: &Batch) -> (Vec<Outgoing>, u64) {
        let mut out = Vec::new();
        let mut consumed = 0;
        if self.signals.contains(&Signal::Metrics) && !batch.metrics.is_empty() {
            let m = self.metrics.encode(batch);
            consumed += m.baselines;
            if m.skipped > 0 {
                self.stats.skipped_points += m.skipped;
                tracing::warn!(
                    "dynatrace: {} metric point(s) not sent: no Dynatrace mapping (cumulative \
                     histogram, summary), invalid name or value, or line too long",
                    m.skipped
                );
            }
            if m.dropped_dimensions > 0 {
                tracing::warn!(
                    "dynatrace: {} dimension(s) dropped past the limit of {} per line",
                    m.dropped_dimensions,
                    encode::MAX_DIMENSIONS
                );
            }
            for (body, n) in
                encode::chunk_lines(&m.lines, self.max_lines, MAX_METRICS_PAYLOAD_BYTES)
            {
                out.push(Outgoing {
                    signal: Signal::Metrics,
                    body: body.into_bytes(),
                    items: n as u64,
                });
            }
        }
        if self.signals.contains(&Signal::Logs) && !batch.logs.is_empty() {
            let (bodies, skipped) = encode::log_bodies(batch, &self.tags, self.max_logs);
            if skipped > 0 {
                tracing::warn!("dynatrace: {skipped} log record(s) over the request size limit");
            }
            for (body, n) in bodies {
                out.push(Outgoing {
                    signal: Signal::Logs,
                    body,
                    items: n as u64,
                });
            }
        }
        if self.signals.contains(&Signal::Traces) && !batch.spans.is_empty() {
            for (body, n) in encode::trace_bodies(batch) {
                out.push(Outgoing {
                    signal: Signal::Traces,
                    body,
                    items: n as u64,
                });
            }
        }
        (out, consumed)
    }

    /// What `export` would send for `batch`, as text, without sending or changing
    /// any state.
    pub fn preview(&self, batch: &Batch) -> String {
        let mut metrics = self.metrics.clone();
        let mut text = String::new();
        if self.signals.contains(&Signal::Metrics) {
            for l in metrics.encode(batch).lines {
                text.push_str(&format!("POST {}  {l}\n", self.endpoints.metrics));
            }
        }
        if self.signals.contains(&Signal::Logs) {
            for (body, _) in encode::log_bodies(batch, &self.tags, self.max_logs).0 {
                text.push_str(&format!(
                    "POST {}  {}\n",
                    self.endpoints.logs,
                    String::from_utf8_lossy(&body)
                ));
            }
        }
        if self.signals.contains(&Signal::Traces) {
            for (body, n) in encode::trace_bodies(batch) {
                text.push_str(&format!(
                    "POST {}  <OTLP protobuf, {n} span(s), {} bytes>\n",
                    self.endpoints.traces,
                    body.len()
                ));
            }
        }
        text
    }

    /// Sends the batch; `Ok` once every request was answered with (partial)
    /// success.
    pub async fn export(&mut self, batch: &Batch) -> Result<ExportOk, PluginError> {
        let mut pending = match Pending::resume(&mut self.pending, batch, "dynatrace") {
            Some(p) => p,
            None => {
                let (requests, consumed) = self.encode(batch);
                Pending::new(requests, consumed)
            }
        };
        while let Some(req) = pending.next() {
            match self.send(req).await {
                Ok(accepted) => pending.delivered(accepted),
                Err(e) => {
                    if let Some(e) = pending.failed(e, "dynatrace") {
                        self.pending = Some(pending.keep_for(batch));
                        return Err(e);
                    }
                }
            }
        }
        pending.finish()
    }

    fn url(&self, s: Signal) -> &str {
        match s {
            Signal::Metrics => &self.endpoints.metrics,
            Signal::Logs => &self.endpoints.logs,
            Signal::Traces => &self.endpoints.traces,
        }
    }

    /// Posts one request; `Ok(items accepted)`.
    async fn send(&mut self, req: &Outgoing) -> Result<u64, PluginError> {
        let url = self.url(req.signal).to_string();
        let content_type = match req.signal {
            Signal::Metrics => "text/plain; charset=utf-8",
            Signal::Logs => "application/json; charset=utf-8",
            Signal::Traces => "application/x-protobuf",
        };
        let mut request = Request::new(Method::POST, url.clone())
            .header("Authorization", format!("Api-Token {}", self.token))
            .header("Content-Type", content_type)
            .body(req.body.clone());
        for (k, v) in &self.headers {
            request = request.header(k.clone(), v.clone());
        }
        let resp = match self.client.send(request).await {
            Ok(r) => r,
            Err(e) => return Err(retry::transport(redact(&e, &self.token))),
        };
        let result = match req.signal {
            Signal::Metrics => self.metrics_answer(req, &resp),
            Signal::Logs => self.logs_answer(req, &resp),
            Signal::Traces => self.traces_answer(req, &resp),
        };
        match result {
            Ok(n) => {
                self.stats.requests_ok += 1;
                Ok(n)
            }
            Err(mut e) => {
                e.message = redact(&format!("{url}: {}", e.message), &self.token).into();
                Err(e)
            }
        }
    }

    fn partial(&mut self, text: String, rejected: u64) {
        let text = redact(&text, &self.token);
        tracing::warn!("dynatrace: {text}");
        self.stats.rejected_by_backend += rejected;
        self.last_rejection = Some(text);
    }

    fn metrics_answer(&mut self, req: &Outgoing, resp: &Response) -> Result<u64, PluginError> {
        let validation = serde_json::from_slice::<ValidationResponse>(&resp.body).ok();
        let is_validation = validation
            .as_ref()
            .is_some_and(|v| v.lines_ok.is_some() || v.lines_invalid.is_some());
        if resp.status == 202 || (resp.status == 400 && is_validation) {
            let v = validation.unwrap_or_default();
            let ok = v
                .lines_ok
                .unwrap_or(if resp.status == 202 { req.items } else { 0 });
            let invalid = v.lines_invalid.unwrap_or(0);
            let detail = v.error.map(describe_invalid).unwrap_or_default();
            if ok == 0 && invalid > 0 {
                return Err(PluginError::permanent(format!(
                    "HTTP {}: all {invalid} line(s) invalid{detail}",
                    resp.status
                )));
            }
            if invalid > 0 {
                self.partial(
                    format!(
                        "{}: {invalid} of {} metric line(s) rejected as invalid (not retried){detail}",
                        self.endpoints.metrics, req.items
                    ),
                    invalid,
                );
            }
            return Ok(ok);
        }
        retry::classify(resp).map(|_| req.items)
    }

    fn logs_answer(&mut self, req: &Outgoing, resp: &Response) -> Result<u64, PluginError> {
        match resp.status {
            204 => Ok(req.items),
            200 => {
                let msg = serde_json::from_slice::<Envelope>(&resp.body)
                    .ok()
                    .and_then(|e| e.details.or(e.error))
                    .and_then(|d| d.message)
                    .unwrap_or_else(|| resp.text());
                self.partial(
                    format!(
                        "{}: only part of {} log record(s) were ingested (not retried): {msg}",
                        self.endpoints.logs, req.items
                    ),
                    0,
                );
                Ok(req.items)
            }
            // "does not recognize the request method" / storage not enabled: a
            // retry cannot help.
            501 => Err(PluginError::permanent(retry::describe(resp))),
            _ => retry::classify(resp).map(|_| req.items),
        }
    }

    fn traces_answer(&mut self, req: &Outgoing, resp: &Response) -> Result<u64, PluginError> {
        // Dynatrace documents 500 as retryable: the shared classification (408, 429,
        // 5xx), not the narrower OTLP one; only `partial_success` is OTLP's.
        retry::classify(resp)?;
        match otlp_http::partial_success(otlp_http::Signal::Traces, resp) {
            (n, msg) if n > 0 => {
                self.partial(
                    format!(
                        "{}: {n} of {} span(s) rejected (not retried): {msg}",
                        self.endpoints.traces, req.items
                    ),
                    n,
                );
                Ok(req.items.saturating_sub(n))
            }
            _ => Ok(req.items),
        }
    }
}

/// `: <message>; line 3: <error>; ...` from a metrics ingest error.
fn describe_invalid(e: MetricIngestError) -> String {
    let mut s = String::new();
    if let Some(m) = e.message.filter(|m| !m.is_empty()) {
        s.push_str(": ");
        s.push_str(&m);
    }
    for l in e.invalid_lines.iter().take(QUOTED_INVALID_LINES) {
        s.push_str(&format!(
            "; line {}: {}",
            l.line.unwrap_or(0),
            l.error.as_deref().unwrap_or("invalid")
        ));
    }
    if e.invalid_lines.len() > QUOTED_INVALID_LINES {
        s.push_str("; ...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_lines_are_described() {
        let e: MetricIngestError = serde_json::from_str(
            r#"{"code":400,"message":"1 invalid line","invalidLines":[{"line":2,"error":"invalid dimension key"}]}"#,
        )
        .unwrap();
        assert_eq!(
            describe_invalid(e),
            ": 1 invalid line; line 2: invalid dimension key"
        );
    }
}
