//! Transport: turns a batch into requests (split to New Relic's limits), sends them
//! with the shared [`HttpClient`], and tells the host what happened.
//!
//! Requests (every one `POST`, `Content-Type: application/json`, the credential in
//! `Api-Key` or `X-Insert-Key`, `Content-Encoding: gzip` unless `compression:
//! none`):
//! - metrics to the Metric API (default `https://metric-api.newrelic.com/metric/v1`,
//!   EU `https://metric-api.eu.newrelic.com/metric/v1`);
//! - logs to the Log API (`https://log-api.newrelic.com/log/v1`, EU
//!   `https://log-api.eu.newrelic.com/log/v1`);
//! - spans to the Trace API (`https://trace-api.newrelic.com/trace/v1`, EU
//!   `https://trace-api.eu.newrelic.com/trace/v1`) with `Data-Format: newrelic`
//!   and `Data-Format-Version: 1` ("Trace API general requirements and limits",
//!   <https://docs.newrelic.com/docs/distributed-tracing/trace-api/trace-api-general-requirements-limits/>).
//!
//! Limits: all three APIs take at most 1 MB (10^6 bytes) per POST ("Payloads must
//! be under 1MB (10^6 bytes)"; Metric API limits page, Log API "Limits and
//! restricted characters"). Requests are packed up to 10 MB of uncompressed JSON
//! (the plugin's own bound, to keep memory and retries small) and halved until the
//! body as sent is at most 1,000,000 bytes.
//!
//! Answers (the status code tables of the Metric API and Trace API pages):
//! - 202 (any 2xx): accepted. New Relic validates asynchronously and reports
//!   problems as `NrIntegrationError` events in the account; there is no
//!   synchronous partial acceptance. The `requestId` of the answer is logged at
//!   debug level to find those events;
//! - 413: the payload is halved and both halves sent; a single entry still
//!   refused is dropped (counted, not retried);
//! - 400 and the other 4xx (404, 405, 411, 414, 415, 431): that payload is refused
//!   for good; the others of the batch are still sent, and `accepted` says how
//!   many items got through (nothing accepted: a permanent error);
//! - 401 / 403 ("Authentication failure"): permanent, the export stops;
//! - 408, 429 (with `Retry-After`, "how long to wait in seconds") and 5xx
//!   ("please retry"), and transport failures: retryable. Payloads already
//!   delivered are remembered (by content hash) and not sent again when the host
//!   retries the same batch.
//!
//! The key is only ever put in its header; every error message and log line goes
//! through [`Exporter::redact`].

use std::{
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::Value;
use tfo_plugin_api::{Batch, ErrorKind, ExportOk, PluginError};
use tfo_plugin_common::{
    chunk::{self, deliver, Failure, Limits, Packer, Resume},
    http::{ClientOptions, HttpClient, Method, Request, Response},
    retry,
};

use crate::{
    config::{Compression, Config},
    encode,
};

/// Request limits of the three APIs (see the module docs).
pub const LIMITS: Limits = Limits {
    max_entries: usize::MAX,
    max_uncompressed: 10_000_000,
    max_sent: 1_000_000,
};

/// The three signals, in the order they are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Metric API.
    Metrics,
    /// Log API.
    Logs,
    /// Trace API.
    Traces,
}

impl Signal {
    fn index(self) -> usize {
        self as usize
    }
}

/// One request to make (a payload and its signal).
type Job = chunk::Job<Signal>;

struct Plan {
    jobs: Vec<Job>,
    packers: [Packer; 3],
    dropped: Vec<tfo_plugin_common::chunk::Dropped>,
    skipped_points: u64,
    ignored: u64,
}

/// The New Relic exporter of one instance.
pub struct Exporter {
    client: HttpClient,
    cfg: Config,
    resume: Resume,
    last_problem: Mutex<Option<String>>,
    auth_refused: Mutex<bool>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("metrics_url", &self.cfg.metrics_url())
            .finish_non_exhaustive()
    }
}

impl Exporter {
    /// Builds the client (reads the CA file); connects nothing yet.
    pub fn new(cfg: Config) -> Result<Exporter, String> {
        let client = HttpClient::new(&ClientOptions {
            timeout: cfg.timeout,
            ca_file: cfg.ca_file.clone(),
            insecure_skip_verify: cfg.insecure_skip_verify,
            ..ClientOptions::default()
        })?;
        Ok(Exporter {
            client,
            cfg,
            resume: Resume::default(),
            last_problem: Mutex::new(None),
            auth_refused: Mutex::new(false),
        })
    }

    /// Replaces every occurrence of the configured key in `text` with `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for k in [&self.cfg.license_key, &self.cfg.insert_key] {
            if !k.is_blank() {
                out = out.replace(k.expose(), "***");
            }
        }
        out
    }

    /// The last refusal reported by the backend, for health.
    pub fn last_problem(&self) -> Option<String> {
        self.last_problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// True when the last answer refused the key (401/403).
    pub fn auth_refused(&self) -> bool {
        *self.auth_refused.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_problem(&self, p: String) {
        *self.last_problem.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
    }

    fn url(&self, s: Signal) -> String {
        match s {
            Signal::Metrics => self.cfg.metrics_url(),
            Signal::Logs => self.cfg.logs_url(),
            Signal::Traces => self.cfg.traces_url(),
        }
    }

    fn plan(&self, batch: &Batch) -> Result<Plan, PluginError> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let common = encode::common(batch, &self.cfg);
        let gzip = self.cfg.compression == Compression::Gzip;
        let packer = |list: &str| Packer {
            frame: encode::frame(list, &common),
            limits: LIMITS,
            gzip,
        };
        let mut plan = Plan {
            jobs: Vec::new(),
            packers: [packer("metrics"), packer("logs"), packer("spans")],
            dropped: Vec::new(),
            skipped_points: 0,
            ignored: 0,
        };
        let points: u64 = batch.metrics.iter().map(|m| m.points.len() as u64).sum();
        let signals = [
            (Signal::Metrics, self.cfg.metrics, points),
            (Signal::Logs, self.cfg.logs, batch.logs.len() as u64),
            (Signal::Traces, self.cfg.traces, batch.spans.len() as u64),
        ];
        for (signal, enabled, count) in signals {
            if count == 0 {
                continue;
            }
            if !enabled {
                plan.ignored += count;
                continue;
            }
            let entries = match signal {
                Signal::Metrics => {
                    let (e, skipped) = encode::metric_entries(batch, now_ms);
                    plan.skipped_points = skipped;
                    e
                }
                Signal::Logs => encode::log_entries(batch),
                Signal::Traces => encode::span_entries(batch),
            };
            let (payloads, dropped) = plan.packers[signal.index()]
                .pack(entries)
                .map_err(PluginError::permanent)?;
            plan.dropped.extend(dropped);
            plan.jobs
                .extend(payloads.into_iter().map(|payload| Job { signal, payload }));
        }
        Ok(plan)
    }

    /// Sends the batch. `Ok(accepted)` once every payload was answered (some may
    /// have been refused for good: `accepted` is then smaller than the batch).
    pub async fn export(&self, batch: &Batch) -> Result<ExportOk, PluginError> {
        let plan = self.plan(batch)?;
        if plan.skipped_points > 0 {
            tracing::warn!(
                "newrelic: {} metric point(s) not sent: value not finite or not matching the \
                 metric's kind",
                plan.skipped_points
            );
        }
        if plan.ignored > 0 {
            tracing::debug!(
                "newrelic: {} item(s) of a signal this instance does not send",
                plan.ignored
            );
        }
        let mut rejected: Vec<String> = Vec::new();
        for d in &plan.dropped {
            tracing::warn!("newrelic: {} item(s) not sent: {}", d.items, d.reason);
            rejected.push(d.reason.clone());
        }
        let delivery = deliver(
            "newrelic",
            batch,
            plan.jobs,
            &self.resume,
            |s| Some(&plan.packers[s.index()]),
            async |job: &Job| self.send(job).await,
        )
        .await?;
        let accepted = delivery.accepted;
        rejected.extend(delivery.rejected);
        *self.auth_refused.lock().unwrap_or_else(|e| e.into_inner()) = false;
        if let Some(last) = rejected.last() {
            self.set_problem(last.clone());
            if accepted == 0 {
                return Err(PluginError::permanent(format!(
                    "New Relic refused the batch: {}",
                    rejected.join("; ")
                )));
            }
        }
        Ok(ExportOk { accepted })
    }

    /// The request bodies `export` would send, as text (`tfo-agent run --once`).
    pub fn preview(&self, batch: &Batch) -> Result<String, PluginError> {
        let plan = self.plan(batch)?;
        let mut out = String::new();
        for job in &plan.jobs {
            out.push_str(&format!(
                "POST {} ({} item(s), {} bytes, {} as sent)\n",
                self.url(job.signal),
                job.payload.items,
                job.payload.raw_len,
                job.payload.body.len()
            ));
            out.push_str(&String::from_utf8_lossy(
                &plan.packers[job.signal.index()].render(&job.payload.entries),
            ));
            out.push('\n');
        }
        Ok(out)
    }

    async fn send(&self, job: &Job) -> Result<(), Failure> {
        let url = self.url(job.signal);
        let (header, key) = self.cfg.auth_header();
        let mut req = Request::new(Method::POST, url.clone())
            .header("Content-Type", "application/json")
            .header(header, key.expose());
        if self.cfg.compression == Compression::Gzip {
            req = req.header("Content-Encoding", "gzip");
        }
        if job.signal == Signal::Traces {
            req = req
                .header("Data-Format", "newrelic")
                .header("Data-Format-Version", "1");
        }
        let req = req.body(job.payload.body.clone());
        let resp = self
            .client
            .send(req)
            .await
            .map_err(|e| Failure::Stop(retry::transport(self.redact(&e))))?;
        match retry::classify(&resp) {
            Ok(()) => {
                if let Some(id) = serde_json::from_slice::<Value>(&resp.body)
                    .ok()
                    .and_then(|v| {
                        v.get("requestId")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                {
                    tracing::debug!(
                        "newrelic: {url} accepted {} item(s), requestId {id}",
                        job.payload.items
                    );
                }
                Ok(())
            }
            Err(e) => Err(self.failure(e, &resp, &url)),
        }
    }

    fn failure(&self, mut e: PluginError, resp: &Response, url: &str) -> Failure {
        let detail = self.redact(&format!("{url}: {}", e.message));
        e.message = detail.clone().into();
        match resp.status {
            413 => Failure::TooLarge(detail),
            401 | 403 => {
                *self.auth_refused.lock().unwrap_or_else(|e| e.into_inner()) = true;
                let msg = format!(
                    "New Relic refused the key (check license_key / insert_key and region): {detail}"
                );
                self.set_problem(msg.clone());
                Failure::Stop(PluginError::permanent(msg))
            }
            _ if e.kind == ErrorKind::Retryable => Failure::Stop(e),
            _ => Failure::Rejected(detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfo_plugin_common::http::{HeaderMap, HeaderName};

    fn resp(status: u16, headers: &[(&str, &str)]) -> Response {
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
            body: Vec::new(),
        }
    }

    fn kind(f: Failure) -> (&'static str, Option<ErrorKind>, Option<u64>) {
        match f {
            Failure::TooLarge(_) => ("too large", None, None),
            Failure::Rejected(_) => ("rejected", None, None),
            Failure::Stop(e) => ("stop", Some(e.kind), e.retry_after_ms.into_option()),
        }
    }

    #[test]
    fn statuses_are_classified_as_documented() {
        let x = Exporter::new(serde_json::from_str(r#"{"license_key": "secret-key"}"#).unwrap())
            .unwrap();
        let run = |status, headers: &[(&str, &str)]| {
            let r = resp(status, headers);
            kind(x.failure(retry::classify(&r).unwrap_err(), &r, "u"))
        };
        for s in [400, 404, 405, 411, 414, 415, 431] {
            assert_eq!(run(s, &[]), ("rejected", None, None), "{s}");
        }
        assert_eq!(run(413, &[]), ("too large", None, None));
        assert_eq!(run(403, &[]), ("stop", Some(ErrorKind::Permanent), None));
        assert_eq!(
            run(429, &[("retry-after", "30")]),
            ("stop", Some(ErrorKind::Retryable), Some(30_000))
        );
        assert_eq!(run(408, &[]), ("stop", Some(ErrorKind::Retryable), None));
        assert_eq!(run(502, &[]), ("stop", Some(ErrorKind::Retryable), None));
        assert_eq!(x.redact("a secret-key b"), "a *** b");
    }
}
