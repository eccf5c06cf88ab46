//! Transport: turns a batch into requests (split to Datadog's limits), sends them
//! with the shared [`HttpClient`], and tells the host what happened.
//!
//! Requests:
//! - metrics: `POST <metrics_endpoint>` (default `https://api.<site>/api/v2/series`),
//!   `Content-Type: application/json`, `DD-API-KEY`. Limits from "Submit metrics"
//!   (<https://docs.datadoghq.com/api/latest/metrics/#submit-metrics>): "The maximum
//!   payload size is 500 kilobytes (512000 bytes). Compressed payloads must have a
//!   decompressed size of less than 5 megabytes (5242880 bytes)."
//! - logs: `POST <logs_endpoint>` (default
//!   `https://http-intake.logs.<site>/api/v2/logs`), same headers. Limits from "Send
//!   logs" (<https://docs.datadoghq.com/api/latest/logs/#send-logs>): 5 MB
//!   uncompressed per payload, 1000 entries, 1 MB per log.
//! - traces: OTLP/HTTP protobuf (`POST <traces_endpoint>`, default
//!   `http://localhost:4318/v1/traces`) to the OTLP receiver of a Datadog Agent
//!   ("OTLP Ingest in the Agent",
//!   <https://docs.datadoghq.com/opentelemetry/setup/otlp_ingest_in_the_agent/>).
//!   Datadog has no public trace intake for third-party senders: its own tracers
//!   post to the local Agent (`/v0.4/traces`, msgpack, port 8126), and the Agent
//!   (or an OpenTelemetry Collector with the Datadog exporter) forwards to
//!   Datadog. Of the two Agent inputs, OTLP is the documented, versioned one and
//!   reuses the shared, tested encoder (`tfo_plugin_common::otlp`); the v0.4 API is
//!   an internal tracer protocol. No API key is sent there: the Agent has its own.
//!
//! With `compression: gzip` (the default) bodies are gzip-compressed here, before
//! their size is checked against the limits, and sent with
//! `Content-Encoding: gzip`.
//!
//! Answers (both APIs document 202 Accepted, 400, 403, 408, 413 and 429; the
//! "Rate Limits" page, <https://docs.datadoghq.com/api/latest/rate-limits/>,
//! names the `X-RateLimit-*` headers):
//! - 2xx: delivered. A v2 series answer's `errors` list (non-fatal errors) is
//!   logged as a warning and shown in health;
//! - 413: the payload is halved and both halves sent; a single entry still
//!   refused is dropped (counted, not retried);
//! - 400 and other 4xx: that payload is refused for good; the others of the batch
//!   are still sent, and `accepted` says how many items got through (a batch of
//!   which nothing got through is a permanent error);
//! - 401 / 403: the key is refused; the export stops with a permanent error;
//! - 408, 429 and 5xx: retryable, with the delay from `Retry-After` or, failing
//!   that, `X-RateLimit-Reset` (seconds until the limit resets); transport
//!   failures: retryable. Payloads of the batch already delivered are remembered
//!   (by content hash) and not sent again when the host retries the same batch.
//!   Traces follow OTLP instead: only 429, 502, 503 and 504 are retryable.
//!
//! The API key is only ever put in the `DD-API-KEY` header; every error message and
//! log line goes through [`Exporter::redact`] so a server echoing it back cannot
//! leak it into the agent's log.

use std::{
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::Value;
use tfo_plugin_api::{AnyValue, Batch, ErrorKind, ExportOk, PluginError};
use tfo_plugin_common::{
    chunk::{self, deliver, Dropped, Failure, Frame, Limits, Packer, Payload, Resume},
    http::{gzip, ClientOptions, HttpClient, Method, Request, Response},
    otlp::{self, prost::Message as _},
    otlp_http, retry,
};

use crate::{
    config::{Compression, Config},
    encode,
};

/// Series API limits (see the module docs): 512000 bytes as sent, less than
/// 5242880 bytes decompressed.
pub const SERIES_LIMITS: Limits = Limits {
    max_entries: usize::MAX,
    max_uncompressed: 5_242_879,
    max_sent: 512_000,
};

/// Logs intake limits: 1000 entries, 5 MB uncompressed (taken as 5,000,000 bytes,
/// the smaller reading of "5MB").
pub const LOGS_LIMITS: Limits = Limits {
    max_entries: 1000,
    max_uncompressed: 5_000_000,
    max_sent: 5_000_000,
};

/// `{"series":[` ... `]}`.
pub fn series_frame() -> Frame {
    Frame {
        prefix: "{\"series\":[".into(),
        separator: ",".into(),
        suffix: "]}".into(),
    }
}

/// The three signals, in the order they are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Series API.
    Metrics,
    /// Logs intake.
    Logs,
    /// Agent OTLP receiver.
    Traces,
}

/// One request to make (a payload and its signal).
type Job = chunk::Job<Signal>;

/// The requests of one batch.
struct Plan {
    jobs: Vec<Job>,
    dropped: Vec<Dropped>,
    skipped_points: u64,
    ignored: u64,
}

/// A batch of which some payloads were delivered before a retryable failure.
/// The Datadog exporter of one instance.
pub struct Exporter {
    client: HttpClient,
    cfg: Config,
    series: Packer,
    logs: Packer,
    resume: Resume,
    last_problem: Mutex<Option<String>>,
    auth_refused: Mutex<bool>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("metrics_url", &self.cfg.metrics_url())
            .field("logs_url", &self.cfg.logs_url())
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
        let gzip = cfg.compression == Compression::Gzip;
        Ok(Exporter {
            client,
            series: Packer {
                frame: series_frame(),
                limits: SERIES_LIMITS,
                gzip,
            },
            logs: Packer {
                frame: Frame::json_array(),
                limits: LOGS_LIMITS,
                gzip,
            },
            cfg,
            resume: Resume::default(),
            last_problem: Mutex::new(None),
            auth_refused: Mutex::new(false),
        })
    }

    /// The config in use.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Replaces every occurrence of the API key in `text` with `***`.
    pub fn redact(&self, text: &str) -> String {
        let key = self.cfg.api_key.expose();
        if key.is_empty() {
            text.to_string()
        } else {
            text.replace(key, "***")
        }
    }

    /// The last refusal or warning from the backend, for health.
    pub fn last_problem(&self) -> Option<String> {
        self.last_problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// True when the last answer refused the API key (401/403).
    pub fn auth_refused(&self) -> bool {
        *self.auth_refused.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_problem(&self, p: String) {
        *self.last_problem.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
    }

    fn packer(&self, s: Signal) -> Option<&Packer> {
        match s {
            Signal::Metrics => Some(&self.series),
            Signal::Logs => Some(&self.logs),
            Signal::Traces => None,
        }
    }

    fn url(&self, s: Signal) -> String {
        match s {
            Signal::Metrics => self.cfg.metrics_url(),
            Signal::Logs => self.cfg.logs_url(),
            Signal::Traces => self.cfg.traces_url(),
        }
    }

    fn plan(&self, batch: &Batch) -> Result<Plan, PluginError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let tagging = encode::tagging(batch, &self.cfg);
        let mut plan = Plan {
            jobs: Vec::new(),
            dropped: Vec::new(),
            skipped_points: 0,
            ignored: 0,
        };
        let points: u64 = batch.metrics.iter().map(|m| m.points.len() as u64).sum();
        if self.cfg.metrics && points > 0 {
            let (series, skipped) = encode::series(batch, &tagging, now);
            plan.skipped_points = skipped;
            let entries = encode::series_entries(&series, self.cfg.api_version);
            let (payloads, dropped) = self.series.pack(entries).map_err(PluginError::permanent)?;
            plan.dropped.extend(dropped);
            plan.jobs.extend(payloads.into_iter().map(|payload| Job {
                signal: Signal::Metrics,
                payload,
            }));
        } else {
            plan.ignored += points;
        }
        if self.cfg.logs && !batch.logs.is_empty() {
            let entries = encode::log_entries(batch, &tagging);
            let (payloads, dropped) = self.logs.pack(entries).map_err(PluginError::permanent)?;
            plan.dropped.extend(dropped);
            plan.jobs.extend(payloads.into_iter().map(|payload| Job {
                signal: Signal::Logs,
                payload,
            }));
        } else {
            plan.ignored += batch.logs.len() as u64;
        }
        if self.cfg.traces && !batch.spans.is_empty() {
            plan.jobs.push(Job {
                signal: Signal::Traces,
                payload: self.traces_payload(batch)?,
            });
        } else {
            plan.ignored += batch.spans.len() as u64;
        }
        Ok(plan)
    }

    /// The OTLP traces request, with the configured service, environment and
    /// version added to the resource when it lacks them.
    fn traces_payload(&self, batch: &Batch) -> Result<Payload, PluginError> {
        let mut req = otlp::traces(batch).ok_or_else(|| PluginError::permanent("no spans"))?;
        let extra = [
            ("service.name", &self.cfg.service_name),
            ("deployment.environment", &self.cfg.environment),
            ("service.version", &self.cfg.version),
            ("host.name", &self.cfg.hostname),
        ];
        for rs in req.resource_spans.iter_mut() {
            let res = rs.resource.get_or_insert_with(Default::default);
            for (key, value) in &extra {
                if let Some(v) = value {
                    if !res.attributes.iter().any(|kv| kv.key == *key) {
                        res.attributes.push(
                            otlp::opentelemetry_proto::tonic::common::v1::KeyValue {
                                key: key.to_string(),
                                value: Some(otlp::any_value(&AnyValue::from(v.as_str()))),
                                ..Default::default()
                            },
                        );
                    }
                }
            }
        }
        let raw = req.encode_to_vec();
        let body = if self.cfg.compression == Compression::Gzip {
            gzip(&raw).map_err(|e| PluginError::permanent(format!("compressing traces: {e}")))?
        } else {
            raw.clone()
        };
        Ok(Payload {
            entries: Vec::new(),
            raw_len: raw.len(),
            body,
            items: batch.spans.len() as u64,
        })
    }

    /// Sends the batch. `Ok(accepted)` once every payload was answered (some may
    /// have been refused for good: `accepted` is then smaller than the batch).
    pub async fn export(&self, batch: &Batch) -> Result<ExportOk, PluginError> {
        let plan = self.plan(batch)?;
        if plan.skipped_points > 0 {
            tracing::warn!(
                "datadog: {} metric point(s) not sent: value not finite or not matching the \
                 metric's kind",
                plan.skipped_points
            );
        }
        if plan.ignored > 0 {
            tracing::debug!(
                "datadog: {} item(s) of a signal this instance does not send (metrics/logs/traces \
                 switched off)",
                plan.ignored
            );
        }
        let mut rejected_msgs: Vec<String> = Vec::new();
        for d in &plan.dropped {
            tracing::warn!("datadog: {} item(s) not sent: {}", d.items, d.reason);
            rejected_msgs.push(d.reason.clone());
        }
        let delivery = deliver(
            "datadog",
            batch,
            plan.jobs,
            &self.resume,
            |s| self.packer(s),
            async |job: &Job| self.send(job).await,
        )
        .await?;
        let accepted = delivery.accepted;
        rejected_msgs.extend(delivery.rejected);
        *self.auth_refused.lock().unwrap_or_else(|e| e.into_inner()) = false;
        if let Some(last) = rejected_msgs.last() {
            self.set_problem(last.clone());
            if accepted == 0 {
                return Err(PluginError::permanent(format!(
                    "datadog refused the batch: {}",
                    rejected_msgs.join("; ")
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
            let url = self.url(job.signal);
            match self.packer(job.signal) {
                Some(p) => {
                    out.push_str(&format!(
                        "POST {url} ({} item(s), {} bytes, {} as sent)\n",
                        job.payload.items,
                        job.payload.raw_len,
                        job.payload.body.len()
                    ));
                    out.push_str(&String::from_utf8_lossy(&p.render(&job.payload.entries)));
                    out.push('\n');
                }
                None => out.push_str(&format!(
                    "POST {url} (OTLP protobuf ExportTraceServiceRequest, {} span(s), {} bytes)\n",
                    job.payload.items, job.payload.raw_len
                )),
            }
        }
        Ok(out)
    }

    async fn send(&self, job: &Job) -> Result<(), Failure> {
        let url = self.url(job.signal);
        let content_type = match job.signal {
            Signal::Traces => "application/x-protobuf",
            _ => "application/json",
        };
        let mut req = Request::new(Method::POST, url.clone())
            .header("Content-Type", content_type)
            .header("Accept", "application/json");
        if job.signal != Signal::Traces {
            req = req.header("DD-API-KEY", self.cfg.api_key.expose());
        }
        if self.cfg.compression == Compression::Gzip {
            req = req.header("Content-Encoding", "gzip");
        }
        let req = req.body(job.payload.body.clone());
        let resp = match self.client.send(req).await {
            Ok(r) => r,
            Err(e) => {
                return Err(Failure::Stop(retry::transport(self.redact(&e))));
            }
        };
        if job.signal == Signal::Traces {
            return self.traces_answer(&resp, &url, job.payload.items);
        }
        match retry::classify(&resp) {
            Ok(()) => {
                self.note_errors(&resp, &url);
                Ok(())
            }
            Err(e) => Err(self.failure(e, &resp, &url)),
        }
    }

    /// Non-fatal `errors` of a 2xx answer (v2 series: `IntakePayloadAccepted`).
    fn note_errors(&self, resp: &Response, url: &str) {
        let Ok(v) = serde_json::from_slice::<Value>(&resp.body) else {
            return;
        };
        let errors: Vec<String> = v
            .get("errors")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|e| {
                        e.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| e.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !errors.is_empty() {
            let msg = self.redact(&format!(
                "{url} accepted the payload with errors: {}",
                errors.join("; ")
            ));
            tracing::warn!("datadog: {msg}");
            self.set_problem(msg);
        }
    }

    fn failure(&self, mut e: PluginError, resp: &Response, url: &str) -> Failure {
        let detail = self.redact(&format!("{url}: {}", e.message));
        e.message = detail.clone().into();
        match resp.status {
            413 => Failure::TooLarge(detail),
            401 | 403 => {
                *self.auth_refused.lock().unwrap_or_else(|e| e.into_inner()) = true;
                let msg =
                    format!("the Datadog API key was refused (check api_key and site): {detail}");
                self.set_problem(msg.clone());
                Failure::Stop(PluginError::permanent(msg))
            }
            _ if e.kind == ErrorKind::Retryable => {
                if e.retry_after_ms.is_none() {
                    if let Some(ms) = rate_limit_reset_ms(resp) {
                        e = e.with_retry_after(ms);
                    }
                }
                Failure::Stop(e)
            }
            _ => Failure::Rejected(detail),
        }
    }

    /// OTLP answer rules (spec, "OTLP/HTTP Response"): 2xx (with a possible
    /// `partial_success`), 429/502/503/504 retryable, anything else permanent.
    fn traces_answer(&self, resp: &Response, url: &str, items: u64) -> Result<(), Failure> {
        match retry::classify(resp) {
            Ok(()) => {
                let (rejected, message) =
                    otlp_http::partial_success(otlp_http::Signal::Traces, resp);
                if rejected > 0 {
                    let msg = self.redact(&format!(
                        "{url}: the Datadog Agent rejected {rejected} of {items} span(s): {message}"
                    ));
                    tracing::warn!("datadog: {msg}");
                    self.set_problem(msg);
                }
                Ok(())
            }
            Err(e) => {
                let mut e = otlp_http::narrow(e, resp);
                e.message = self.redact(&format!("{url}: {}", e.message)).into();
                if e.kind == ErrorKind::Retryable {
                    Err(Failure::Stop(e))
                } else {
                    Err(Failure::Rejected(e.message.to_string()))
                }
            }
        }
    }
}

/// `X-RateLimit-Reset` (seconds until the rate limit resets) in milliseconds.
pub fn rate_limit_reset_ms(resp: &Response) -> Option<u64> {
    let v = resp.headers.get("x-ratelimit-reset")?.to_str().ok()?.trim();
    let secs: u64 = v.parse().ok()?;
    Some(secs.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfo_plugin_common::http::HeaderMap;

    fn resp(status: u16, headers: &[(&str, &str)]) -> Response {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                tfo_plugin_common::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Response {
            status,
            headers: map,
            body: b"{\"errors\":[\"nope\"]}".to_vec(),
        }
    }

    fn exporter() -> Exporter {
        Exporter::new(
            serde_json::from_str(r#"{"api_key": "0123456789abcdef0123456789abcdef"}"#).unwrap(),
        )
        .unwrap()
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
        let x = exporter();
        let run = |status, headers: &[(&str, &str)]| {
            let r = resp(status, headers);
            kind(x.failure(retry::classify(&r).unwrap_err(), &r, "u"))
        };
        assert_eq!(run(400, &[]), ("rejected", None, None));
        assert_eq!(run(413, &[]), ("too large", None, None));
        assert_eq!(run(403, &[]), ("stop", Some(ErrorKind::Permanent), None));
        assert_eq!(run(401, &[]), ("stop", Some(ErrorKind::Permanent), None));
        assert_eq!(run(408, &[]), ("stop", Some(ErrorKind::Retryable), None));
        assert_eq!(run(500, &[]), ("stop", Some(ErrorKind::Retryable), None));
        assert_eq!(
            run(503, &[("retry-after", "3")]),
            ("stop", Some(ErrorKind::Retryable), Some(3000))
        );
        assert_eq!(
            run(429, &[("x-ratelimit-reset", "7")]),
            ("stop", Some(ErrorKind::Retryable), Some(7000))
        );
        // Retry-After wins over X-RateLimit-Reset.
        assert_eq!(
            run(429, &[("x-ratelimit-reset", "7"), ("retry-after", "2")]),
            ("stop", Some(ErrorKind::Retryable), Some(2000))
        );
        assert!(x.auth_refused());
    }

    #[test]
    fn the_key_is_redacted() {
        let x = exporter();
        assert_eq!(
            x.redact("echo 0123456789abcdef0123456789abcdef!"),
            "echo ***!"
        );
    }
}
