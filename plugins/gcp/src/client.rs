//! Transport: sends the encoded requests with a bearer token and turns the answers
//! into the host's retry vocabulary.
//!
//! - Every call is `POST <url>` with `Content-Type: application/json` and
//!   `Authorization: Bearer <token>` ([`crate::auth`]).
//! - **401** (an expired or revoked token): the token is dropped, a new one fetched
//!   and the request sent once more; a second 401 is a permanent error (so is a
//!   first one with a static `access_token`, which cannot be replaced).
//! - **429 and 5xx** (and transport failures) are retryable, with the server's
//!   `Retry-After`; every other status is permanent. Messages quote the Google
//!   error JSON (`{"error": {"code", "message", "status", "details"}}`, AIP-193:
//!   <https://google.aip.dev/193>) as `STATUS: message`.
//! - **Partial failures**: Cloud Monitoring answers a request where some series were
//!   written with an error whose `details` hold a
//!   `google.monitoring.v3.CreateTimeSeriesSummary` (`totalPointCount`,
//!   `successPointCount`, `errors[{status, pointCount}]`); Cloud Logging, with
//!   `partialSuccess: true`, a `google.logging.v2.WriteLogEntriesPartialErrors`
//!   (`logEntryErrors`, keyed by entry index). Those requests are not retried (the
//!   written part would be refused as out of order, or duplicated); the export ends
//!   with a permanent error naming what was rejected, with `accepted` counting what
//!   was written.
//! - A batch is several requests. After a permanent rejection of one request the
//!   others are still sent (one bad series must not hold back the rest); a failure
//!   to obtain a token stops the batch. When a request fails retryably, the exporter
//!   remembers which requests of that batch are done, and the host's retry of the
//!   same batch sends only the others: no point is written twice.

use std::sync::{
    atomic::{AtomicBool, AtomicU64, Ordering},
    Mutex,
};

use serde_json::Value;
use tfo_plugin_api::{Batch, ErrorKind, ExportOk, PluginError};
use tfo_plugin_common::{
    http::{ClientOptions, HttpClient, Method, Request, Response},
    retry,
};

use crate::{
    auth::TokenProvider,
    config::Settings,
    encode::{Api, ApiRequest, Encoder},
};

/// Counters of one exporter.
#[derive(Debug, Default)]
pub struct Stats {
    /// API requests answered 2xx.
    pub requests_ok: AtomicU64,
    /// Objects (series, entries, spans) the APIs rejected.
    pub rejected: AtomicU64,
    /// Data points not sent because they could not be encoded.
    pub skipped_points: AtomicU64,
}

/// A batch whose first requests were done before a retryable failure.
struct Resume {
    batch: Batch,
    done: Vec<bool>,
    accepted: u64,
    permanent: Option<String>,
}

/// How one request failed.
enum Failure {
    /// Try the request again later.
    Retryable(PluginError),
    /// It will not succeed; `accepted` items of it were written anyway; `abort`
    /// stops the rest of the batch (no token).
    Permanent {
        message: String,
        accepted: u64,
        abort: bool,
    },
}

/// The gcp exporter: encoder, HTTP client, token provider.
pub struct Exporter {
    http: HttpClient,
    tokens: TokenProvider,
    encoder: Encoder,
    stats: Stats,
    resume: Mutex<Option<Resume>>,
    last_error: Mutex<Option<String>>,
    auth_failed: AtomicBool,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("project", &self.encoder.project)
            .finish_non_exhaustive()
    }
}

impl Exporter {
    /// Builds the HTTP client (reads the CA file) and the token provider; connects
    /// nothing yet.
    pub fn new(settings: Settings) -> Result<Exporter, String> {
        let c = &settings.config;
        let http = HttpClient::new(&ClientOptions {
            timeout: c.timeout,
            ca_file: c.ca_file.clone(),
            insecure_skip_verify: c.insecure_skip_verify,
            ..ClientOptions::default()
        })?;
        let encoder = Encoder::new(&settings);
        let scopes = settings.config.scopes.clone();
        let tokens = TokenProvider::new(settings.credentials, scopes, http.clone());
        Ok(Exporter {
            http,
            tokens,
            encoder,
            stats: Stats::default(),
            resume: Mutex::new(None),
            last_error: Mutex::new(None),
            auth_failed: AtomicBool::new(false),
        })
    }

    /// The exporter's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The last permanent failure, for the health reason.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// True while tokens cannot be obtained or are refused.
    pub fn auth_failed(&self) -> bool {
        self.auth_failed.load(Ordering::Relaxed)
    }

    /// The requests `export` would send, as text (`tfo-agent run --once`).
    pub fn preview(&self, batch: &Batch) -> String {
        let enc = self.encoder.encode(batch);
        let mut out = String::new();
        for r in &enc.requests {
            out.push_str(&format!("POST {}\n", r.url));
            out.push_str(&serde_json::to_string_pretty(&r.body).unwrap_or_default());
            out.push('\n');
        }
        if enc.skipped > 0 {
            out.push_str(&format!("# {} data point(s) not sendable\n", enc.skipped));
        }
        out
    }

    /// Sends the batch; `Ok` once every request was written.
    pub async fn export(&self, batch: &Batch) -> Result<ExportOk, PluginError> {
        let enc = self.encoder.encode(batch);
        if enc.skipped > 0 {
            self.stats
                .skipped_points
                .fetch_add(enc.skipped, Ordering::Relaxed);
            tracing::warn!(
                "gcp: {} data point(s) not sent: non-finite values, malformed histograms or \
                 values that do not match their metric's kind",
                enc.skipped
            );
        }
        let mut st = self.take_resume(batch, enc.requests.len());
        for (i, req) in enc.requests.iter().enumerate() {
            if st.done[i] {
                continue;
            }
            match self.send(req).await {
                Ok(()) => {
                    st.done[i] = true;
                    st.accepted += req.items;
                    self.stats.requests_ok.fetch_add(1, Ordering::Relaxed);
                    self.auth_failed.store(false, Ordering::Relaxed);
                }
                Err(Failure::Permanent {
                    message,
                    accepted,
                    abort,
                }) => {
                    st.done[i] = true;
                    st.accepted += accepted;
                    tracing::warn!("gcp: {message}");
                    *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(message.clone());
                    st.permanent.get_or_insert(message);
                    if abort {
                        break;
                    }
                }
                Err(Failure::Retryable(mut e)) => {
                    e.accepted = st.accepted;
                    if st.done.iter().any(|d| *d) {
                        *self.resume.lock().unwrap_or_else(|e| e.into_inner()) = Some(Resume {
                            batch: batch.clone(),
                            ..st
                        });
                    }
                    return Err(e);
                }
            }
        }
        match st.permanent {
            Some(message) => {
                let mut e = PluginError::permanent(message);
                e.accepted = st.accepted;
                Err(e)
            }
            None => Ok(ExportOk {
                accepted: st.accepted,
            }),
        }
    }

    /// What was already done of `batch`, if it is the batch that failed last.
    fn take_resume(&self, batch: &Batch, n: usize) -> Resume {
        let resume = self.resume.lock().unwrap_or_else(|e| e.into_inner()).take();
        match resume {
            Some(r) if r.done.len() == n && r.batch == *batch => {
                tracing::debug!("gcp: retrying a batch, skipping the requests already written");
                r
            }
            _ => Resume {
                batch: Batch::default(),
                done: vec![false; n],
                accepted: 0,
                permanent: None,
            },
        }
    }

    async fn token(&self) -> Result<String, Failure> {
        self.tokens.token().await.map_err(|e| self.auth_failure(e))
    }

    fn auth_failure(&self, e: PluginError) -> Failure {
        if e.kind == ErrorKind::Retryable {
            return Failure::Retryable(e);
        }
        self.auth_failed.store(true, Ordering::Relaxed);
        Failure::Permanent {
            message: e.message.to_string(),
            accepted: 0,
            abort: true,
        }
    }

    async fn post(&self, url: &str, body: &[u8], token: &str) -> Result<Response, Failure> {
        let req = Request::new(Method::POST, url)
            .header("Content-Type", "application/json")
            .header("Authorization", format!("Bearer {token}"))
            .body(body.to_vec());
        self.http
            .send(req)
            .await
            .map_err(|e| Failure::Retryable(retry::transport(e)))
    }

    /// Sends one request, with one token refresh on 401.
    async fn send(&self, req: &ApiRequest) -> Result<(), Failure> {
        let body = serde_json::to_vec(&req.body).map_err(|e| Failure::Permanent {
            message: format!("{}: encoding the request: {e}", req.api.name()),
            accepted: 0,
            abort: false,
        })?;
        let token = self.token().await?;
        let mut resp = self.post(&req.url, &body, &token).await?;
        if resp.status == 401 {
            if !self.tokens.can_refresh() {
                self.auth_failed.store(true, Ordering::Relaxed);
                return Err(Failure::Permanent {
                    message: format!(
                        "{}: the configured access_token was refused: {}",
                        req.api.name(),
                        error_text(&resp)
                    ),
                    accepted: 0,
                    abort: true,
                });
            }
            tracing::info!(
                "gcp: {} answered 401; fetching a new access token and retrying once",
                req.api.name()
            );
            let fresh = self
                .tokens
                .refresh(&token)
                .await
                .map_err(|e| self.auth_failure(e))?;
            resp = self.post(&req.url, &body, &fresh).await?;
            if resp.status == 401 {
                self.auth_failed.store(true, Ordering::Relaxed);
                return Err(Failure::Permanent {
                    message: format!(
                        "{}: refused even with a freshly obtained token: {}",
                        req.api.name(),
                        error_text(&resp)
                    ),
                    accepted: 0,
                    abort: true,
                });
            }
        }
        if (200..300).contains(&resp.status) {
            return Ok(());
        }
        if let Some((accepted, rejected, detail)) = partial(req, &resp) {
            self.stats.rejected.fetch_add(rejected, Ordering::Relaxed);
            return Err(Failure::Permanent {
                message: format!(
                    "{}: {rejected} of {} {} rejected ({}): {detail}",
                    req.api.name(),
                    req.objects,
                    objects_name(req.api),
                    error_text(&resp)
                ),
                accepted,
                abort: false,
            });
        }
        let base = retry::classify(&resp).expect_err("not a 2xx answer");
        let message = format!("{} {}: {}", req.api.name(), req.url, error_text(&resp));
        if base.kind == ErrorKind::Retryable {
            let mut e = PluginError::retryable(message);
            e.retry_after_ms = base.retry_after_ms;
            return Err(Failure::Retryable(e));
        }
        self.stats
            .rejected
            .fetch_add(req.objects, Ordering::Relaxed);
        Err(Failure::Permanent {
            message,
            accepted: 0,
            abort: false,
        })
    }
}

fn objects_name(api: Api) -> &'static str {
    match api {
        Api::Monitoring => "time series",
        Api::Logging => "log entries",
        Api::Trace => "spans",
    }
}

/// `HTTP <status>: <STATUS>: <message>` from a Google error body, else the shared
/// description with a body excerpt.
fn error_text(resp: &Response) -> String {
    match google_error_message(resp) {
        Some(m) => format!("HTTP {}: {m}", resp.status),
        None => retry::describe(resp),
    }
}

/// `STATUS: message` of a Google API error body
/// (`{"error": {"code", "message", "status"}}`), if the body is one.
pub fn google_error_message(resp: &Response) -> Option<String> {
    let v: Value = serde_json::from_slice(&resp.body).ok()?;
    let err = v.get("error")?;
    let message = err.get("message").and_then(Value::as_str).unwrap_or("");
    match err.get("status").and_then(Value::as_str) {
        Some(s) if !message.is_empty() => Some(format!("{s}: {message}")),
        Some(s) => Some(s.to_string()),
        None if !message.is_empty() => Some(message.to_string()),
        None => None,
    }
}

/// A partial write: `(items accepted, objects rejected, per-object errors)` when the
/// error body's details say some of the request was written.
fn partial(req: &ApiRequest, resp: &Response) -> Option<(u64, u64, String)> {
    let v: Value = serde_json::from_slice(&resp.body).ok()?;
    let details = v.get("error")?.get("details")?.as_array()?;
    for d in details {
        let ty = d.get("@type").and_then(Value::as_str).unwrap_or("");
        if req.api == Api::Monitoring
            && ty.ends_with("google.monitoring.v3.CreateTimeSeriesSummary")
        {
            let num = |k: &str| {
                d.get(k)
                    .and_then(|x| x.as_u64().or_else(|| x.as_str()?.parse().ok()))
                    .unwrap_or(0)
            };
            let total = num("totalPointCount").max(req.objects);
            let ok = num("successPointCount").min(total);
            if ok == 0 && retry::classify(resp).is_err_and(|e| e.kind == ErrorKind::Retryable) {
                // Nothing was written: an ordinary retryable failure.
                return None;
            }
            let errors: Vec<String> = d
                .get("errors")
                .and_then(Value::as_array)
                .map(|errs| {
                    errs.iter()
                        .map(|e| {
                            let msg = match e.pointer("/status/message").and_then(Value::as_str) {
                                Some(m) if !m.is_empty() => m.to_string(),
                                _ => format!(
                                    "status code {}",
                                    e.pointer("/status/code")
                                        .and_then(Value::as_i64)
                                        .unwrap_or(0)
                                ),
                            };
                            let n = e
                                .get("pointCount")
                                .and_then(|x| x.as_u64().or_else(|| x.as_str()?.parse().ok()))
                                .unwrap_or(0);
                            format!("{n} point(s): {msg}")
                        })
                        .collect()
                })
                .unwrap_or_default();
            // Items and series differ for summaries: scale.
            let accepted = req.items * ok / req.objects.max(1);
            return Some((accepted, total - ok, errors.join("; ")));
        }
        if req.api == Api::Logging && ty.ends_with("google.logging.v2.WriteLogEntriesPartialErrors")
        {
            let errs = d.get("logEntryErrors")?.as_object()?;
            let failed = (errs.len() as u64).min(req.objects);
            let mut detail: Vec<String> = errs
                .iter()
                .take(5)
                .map(|(i, st)| {
                    let msg = st.get("message").and_then(Value::as_str).unwrap_or("");
                    format!("entry {i}: {msg}")
                })
                .collect();
            if errs.len() > 5 {
                detail.push(format!("and {} more", errs.len() - 5));
            }
            return Some((req.items - failed, failed, detail.join("; ")));
        }
    }
    None
}
