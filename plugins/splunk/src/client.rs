//! HEC transport: requests, the meaning of HEC answers, indexer acknowledgement.
//!
//! Protocol followed (Splunk docs, "HTTP Event Collector REST API endpoints",
//! "Format events for HTTP Event Collector", "About HTTP Event Collector Indexer
//! Acknowledgment" and "Troubleshoot HTTP Event Collector"):
//! - `POST <endpoint>/services/collector/event` with several JSON events
//!   concatenated in one body, `Authorization: Splunk <token>`,
//!   `Content-Type: application/json`, `X-Splunk-Request-Channel: <uuid>` (one
//!   random channel per instance), optionally `Content-Encoding: gzip`;
//! - a batch is split into requests of at most `batch_size` events and
//!   `max_request_bytes` bytes;
//! - success is `200 {"text":"Success","code":0}`, with `"ackId":N` when the token
//!   has indexer acknowledgement on;
//! - with `ack: true`, after the requests of a batch the plugin polls
//!   `POST <endpoint>/services/collector/ack` (same channel) with
//!   `{"acks":[ids]}` until the answer `{"acks":{"<id>":true,...}}` confirms every
//!   request or `ack_timeout` passes. Only then is the export `Ok`; otherwise it is
//!   a retryable error and the host resends the unconfirmed part: delivery is
//!   at-least-once, a request that was indexed but whose acknowledgement came too
//!   late is indexed twice.
//!
//! HEC status codes (the `code` of the JSON answer) and what the host is told:
//!
//! | code | meaning | HTTP | here |
//! |---|---|---|---|
//! | 1, 4 | token disabled / invalid | 403 | permanent |
//! | 2, 3 | token required / invalid authorization | 401 | permanent |
//! | 5 | no data | 400 | permanent |
//! | 6, 12, 13, 15 | invalid data format, event field required / blank, indexed fields error | 400 | the event at `invalid-event-number` is dropped and counted, the rest of the batch is sent again; without an event number the request's events are dropped |
//! | 7 | incorrect index | 400 | permanent |
//! | 8 | internal server error | 500 | retryable |
//! | 9 | server is busy | 503 | retryable (with `Retry-After` when sent) |
//! | 10, 11 | data channel missing / invalid | 400 | permanent |
//! | 14 | ACK is disabled | 400 | permanent: turn `ack` off or enable acknowledgement on the token |
//! | 16 | query string authorization not enabled | 400 | permanent |
//! | 18, 19, 20 | HEC unhealthy (queues full, ack service unavailable) | 503 | retryable |
//! | other | | 408, 429, 5xx | retryable (with `Retry-After`) |
//! | other | | other 4xx (413: lower `max_request_bytes`) | permanent |
//!
//! HEC processes the events of a request in order and stops at the first bad one;
//! `invalid-event-number` says where it stopped (a Splunk maintainer's description
//! in <https://github.com/open-telemetry/opentelemetry-collector-contrib/issues/36113>).
//! Without acknowledgement the events before it count as delivered and are not
//! sent again; with acknowledgement there is no `ackId` to confirm them, so they
//! are sent again (at-least-once).
//!
//! A batch that needs several requests and fails part-way is remembered: when the
//! host hands the same batch again, the events already delivered (or dropped as
//! bad) are not sent again.

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use serde::Deserialize;
use serde_json::json;
use tfo_plugin_api::{Batch, ErrorKind, ExportOk, PluginError};
use tfo_plugin_common::{
    http::{ClientOptions, HttpClient, Method, Request, Response},
    retry,
};

use crate::{
    config::{Compression, Config},
    encode::{self, Encoded, Options},
};

/// The JSON answer of every HEC endpoint (fields absent on some answers).
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct HecReply {
    /// Human-readable status.
    #[serde(default)]
    pub text: String,
    /// HEC status code (0 = success).
    #[serde(default)]
    pub code: Option<i64>,
    /// Acknowledgement id of an accepted request (indexer acknowledgement on).
    #[serde(default, rename = "ackId")]
    pub ack_id: Option<u64>,
    /// Index in the request of the event where processing stopped.
    #[serde(default, rename = "invalid-event-number")]
    pub invalid_event_number: Option<i64>,
}

impl HecReply {
    /// Parses a body; `None` when it is not a HEC answer.
    pub fn parse(body: &[u8]) -> Option<HecReply> {
        serde_json::from_slice(body).ok()
    }
}

/// What an answer to one request of `len` events means.
#[derive(Debug)]
pub enum Outcome {
    /// Accepted (with its acknowledgement id when acknowledgement is on).
    Accepted {
        /// `ackId` of the answer.
        ack_id: Option<u64>,
    },
    /// Event `index` of the request is bad; the ones before it were processed.
    BadEvent {
        /// Position in the request.
        index: usize,
        /// The server's explanation.
        message: String,
    },
    /// The request's data was refused without saying which event.
    BadRequest {
        /// The server's explanation.
        message: String,
    },
    /// Try again later; `processed` events at the start of the request were
    /// processed before the server stopped.
    Retry {
        /// The error for the host.
        error: PluginError,
        /// Events processed, when the server said.
        processed: Option<usize>,
    },
    /// Nothing of this batch can succeed (token, index, channel, ack setting).
    Fatal(PluginError),
}

/// Classifies the answer to a request of `len` events sent to `url`.
pub fn classify(resp: &Response, len: usize, url: &str) -> Outcome {
    let reply = HecReply::parse(&resp.body);
    if (200..300).contains(&resp.status) {
        return Outcome::Accepted {
            ack_id: reply.and_then(|r| r.ack_id),
        };
    }
    let reply = reply.unwrap_or_default();
    let message = format!("{url}: {}", retry::describe(resp));
    let event_no = reply
        .invalid_event_number
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n < len);
    let hint = |extra: &str| PluginError::permanent(format!("{message} ({extra})"));
    match reply.code {
        Some(6 | 12 | 13 | 15) => match event_no {
            Some(index) => Outcome::BadEvent { index, message },
            None => Outcome::BadRequest { message },
        },
        Some(1..=4) => Outcome::Fatal(hint("check the HEC token and that it is enabled")),
        Some(7) => Outcome::Fatal(hint(
            "the index does not exist or is not allowed for this token",
        )),
        Some(10 | 11) => Outcome::Fatal(hint("request channel refused")),
        Some(14) => Outcome::Fatal(hint(
            "set ack: false, or enable indexer acknowledgement on the token",
        )),
        Some(8 | 9 | 18..=20) => {
            let mut error = match retry::classify(resp) {
                Err(e) if e.kind == ErrorKind::Retryable => e,
                _ => PluginError::retryable(String::new()),
            };
            error.message = message.into();
            Outcome::Retry {
                error,
                processed: event_no,
            }
        }
        _ => match retry::classify(resp) {
            Err(mut e) if e.kind == ErrorKind::Retryable => {
                e.message = message.into();
                Outcome::Retry {
                    error: e,
                    processed: event_no,
                }
            }
            _ if resp.status == 413 => Outcome::Fatal(hint("lower max_request_bytes")),
            _ => Outcome::Fatal(PluginError::permanent(message)),
        },
    }
}

/// The events of `events` (skipping `done` ones) from `start` that fit in one
/// request: at most `max_events` and `max_bytes` (an event alone is always taken;
/// the encoder never makes one larger than `max_bytes`).
pub fn next_chunk(
    events: &[encode::Event],
    done: &[bool],
    start: usize,
    max_events: usize,
    max_bytes: usize,
) -> Vec<usize> {
    let mut chunk = Vec::new();
    let mut bytes = 0usize;
    for i in start..events.len() {
        if done[i] {
            continue;
        }
        let len = events[i].json.len();
        if !chunk.is_empty() && (chunk.len() >= max_events || bytes + len > max_bytes) {
            break;
        }
        chunk.push(i);
        bytes += len;
    }
    chunk
}

/// The body of a request: the events concatenated (the HEC batch format).
pub fn body(events: &[encode::Event], chunk: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.iter().map(|i| events[*i].json.len()).sum());
    for i in chunk {
        out.extend_from_slice(&events[*i].json);
    }
    out
}

/// Counters of one sink.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests answered with success.
    pub requests_ok: AtomicU64,
    /// Items dropped before sending (bad data, see [`crate::encode`]).
    pub dropped_items: AtomicU64,
    /// Items the server refused as bad data (HEC codes 6, 12, 13, 15).
    pub rejected_items: AtomicU64,
    /// Attribute names rewritten or dropped to be valid field names.
    pub renamed_keys: AtomicU64,
    /// Requests confirmed by indexer acknowledgement.
    pub acked_requests: AtomicU64,
}

/// A batch that failed part-way: which of its events are settled.
struct Resume {
    batch: Batch,
    done: Vec<bool>,
    rejected: Vec<bool>,
}

/// Sends batches to one HEC.
pub struct HecClient {
    client: HttpClient,
    event_url: String,
    ack_url: String,
    auth: String,
    channel: String,
    gzip: bool,
    batch_size: usize,
    max_request_bytes: usize,
    ack: bool,
    ack_timeout: Duration,
    ack_poll_interval: Duration,
    options: Options,
    stats: Stats,
    resume: Mutex<Option<Resume>>,
    warned_no_ack_id: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for HecClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HecClient")
            .field("event_url", &self.event_url)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl HecClient {
    /// Prepares the client (reads the CA file) for a validated config and a request
    /// channel; connects nothing yet.
    pub fn new(config: &Config, channel: String) -> Result<HecClient, String> {
        let client = HttpClient::new(&ClientOptions {
            timeout: config.timeout,
            ca_file: config.tls.ca_file.clone(),
            insecure_skip_verify: config.tls.insecure_skip_verify,
            ..ClientOptions::default()
        })?;
        Ok(HecClient {
            client,
            event_url: config.event_url(),
            ack_url: config.ack_url(),
            auth: format!("Splunk {}", config.token),
            channel,
            gzip: config.compression == Compression::Gzip,
            batch_size: config.batch_size,
            max_request_bytes: config.max_request_bytes,
            ack: config.ack,
            ack_timeout: config.ack_timeout,
            ack_poll_interval: config.ack_poll_interval,
            options: Options::from_config(config),
            stats: Stats::default(),
            resume: Mutex::new(None),
            warned_no_ack_id: Default::default(),
        })
    }

    /// The request channel (a UUID).
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The event endpoint URL.
    pub fn event_url(&self) -> &str {
        &self.event_url
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Encodes a batch and logs what had to be dropped or renamed.
    pub fn encode(&self, batch: &Batch) -> Encoded {
        encode::encode(batch, &self.options)
    }

    /// The request bodies `export` would send for `batch` (for `preview`).
    pub fn preview(&self, batch: &Batch) -> Vec<Vec<u8>> {
        let enc = self.encode(batch);
        let done = vec![false; enc.events.len()];
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let chunk = next_chunk(
                &enc.events,
                &done,
                start,
                self.batch_size,
                self.max_request_bytes,
            );
            let Some(last) = chunk.last() else { break };
            start = last + 1;
            out.push(body(&enc.events, &chunk));
        }
        out
    }

    fn request(&self, url: &str, body: Vec<u8>) -> Request {
        Request::new(Method::POST, url)
            .header("Authorization", self.auth.clone())
            .header("Content-Type", "application/json")
            .header("X-Splunk-Request-Channel", self.channel.clone())
            .body(body)
            .gzip(self.gzip)
    }

    /// (done, rejected) flags of the events of `batch`: from the last attempt when
    /// it is the batch that failed last, else all false.
    fn take_resume(&self, batch: &Batch, n: usize) -> (Vec<bool>, Vec<bool>) {
        let resume = self.resume.lock().unwrap_or_else(|e| e.into_inner()).take();
        match resume {
            Some(r) if r.done.len() == n && r.batch == *batch => {
                tracing::debug!("splunk: retrying a batch, skipping the events already settled");
                (r.done, r.rejected)
            }
            _ => (vec![false; n], vec![false; n]),
        }
    }

    /// Sends a batch; `Ok` once every event was accepted (and, with `ack`,
    /// acknowledged) or dropped as bad data.
    pub async fn export(&self, batch: &Batch) -> Result<ExportOk, PluginError> {
        let enc = self.encode(batch);
        if enc.dropped_items > 0 {
            self.stats
                .dropped_items
                .fetch_add(enc.dropped_items, Ordering::Relaxed);
            tracing::warn!(
                "splunk: {} item(s) not sent: {}",
                enc.dropped_items,
                enc.problems.join("; ")
            );
        } else if !enc.problems.is_empty() {
            tracing::warn!("splunk: {}", enc.problems.join("; "));
        }
        if enc.renamed_keys > 0 {
            self.stats
                .renamed_keys
                .fetch_add(enc.renamed_keys, Ordering::Relaxed);
            tracing::debug!(
                "splunk: {} attribute name(s) rewritten to valid field names",
                enc.renamed_keys
            );
        }
        let events = &enc.events;
        let (mut done, mut rejected) = self.take_resume(batch, events.len());
        let rejected_before = rejected.clone();
        let mut pending_acks: Vec<(u64, Vec<usize>)> = Vec::new();
        let mut failure: Option<PluginError> = None;
        let mut start = 0;
        loop {
            let chunk = next_chunk(
                events,
                &done,
                start,
                self.batch_size,
                self.max_request_bytes,
            );
            let Some(&last) = chunk.last() else { break };
            let req = self.request(&self.event_url, body(events, &chunk));
            let outcome = match self.client.send(req).await {
                Ok(resp) => classify(&resp, chunk.len(), &self.event_url),
                Err(e) => Outcome::Retry {
                    error: retry::transport(e),
                    processed: None,
                },
            };
            match outcome {
                Outcome::Accepted { ack_id } => {
                    self.stats.requests_ok.fetch_add(1, Ordering::Relaxed);
                    match (self.ack, ack_id) {
                        (true, Some(id)) => pending_acks.push((id, chunk)),
                        (true, None) => {
                            if !self.warned_no_ack_id.swap(true, Ordering::Relaxed) {
                                tracing::warn!(
                                    "splunk: ack is on but the HEC answered without an ackId \
                                     (indexer acknowledgement is off for this token): delivery \
                                     is confirmed by the HTTP answer only"
                                );
                            }
                            chunk.iter().for_each(|i| done[*i] = true);
                        }
                        (false, _) => chunk.iter().for_each(|i| done[*i] = true),
                    }
                    start = last + 1;
                }
                Outcome::BadEvent { index, message } => {
                    let bad = chunk[index];
                    tracing::warn!(
                        "splunk: event {index} of a request refused, dropped ({} item(s)): {message}",
                        events[bad].items
                    );
                    done[bad] = true;
                    rejected[bad] = true;
                    if self.ack {
                        // No ackId confirms the events before it: send them again.
                        start = chunk[0];
                    } else {
                        chunk[..index].iter().for_each(|i| done[*i] = true);
                        start = bad + 1;
                    }
                }
                Outcome::BadRequest { message } => {
                    tracing::warn!(
                        "splunk: a request of {} event(s) refused as bad data, dropped: {message}",
                        chunk.len()
                    );
                    for i in &chunk {
                        done[*i] = true;
                        rejected[*i] = true;
                    }
                    start = last + 1;
                }
                Outcome::Retry { error, processed } => {
                    if let (false, Some(n)) = (self.ack, processed) {
                        chunk[..n].iter().for_each(|i| done[*i] = true);
                    }
                    failure = Some(error);
                    break;
                }
                Outcome::Fatal(error) => {
                    *self.resume.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    let mut error = error;
                    error.accepted = settled_items(&enc, &done, &rejected);
                    return Err(error);
                }
            }
        }
        if !pending_acks.is_empty() {
            let sent = pending_acks.clone();
            let waited = self.wait_for_acks(&mut pending_acks).await;
            // Whatever was confirmed is settled, even when the rest was not
            // (`wait_for_acks` leaves only the unconfirmed requests in the list).
            let unconfirmed: BTreeSet<u64> = pending_acks.iter().map(|(id, _)| *id).collect();
            for (id, chunk) in &sent {
                if !unconfirmed.contains(id) {
                    chunk.iter().for_each(|i| done[*i] = true);
                }
            }
            match waited {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::Permanent => {
                    *self.resume.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    let mut e = e;
                    e.accepted = settled_items(&enc, &done, &rejected);
                    return Err(e);
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        // Newly refused in this attempt (a resumed batch carries earlier ones).
        let rejected_items: u64 = events
            .iter()
            .zip(rejected.iter().zip(&rejected_before))
            .filter(|(_, (now, before))| **now && !**before)
            .map(|(e, _)| e.items)
            .sum();
        if rejected_items > 0 {
            self.stats
                .rejected_items
                .fetch_add(rejected_items, Ordering::Relaxed);
        }
        if let Some(mut error) = failure {
            error.accepted = settled_items(&enc, &done, &rejected);
            *self.resume.lock().unwrap_or_else(|e| e.into_inner()) = Some(Resume {
                batch: batch.clone(),
                done,
                rejected,
            });
            return Err(error);
        }
        *self.resume.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(ExportOk {
            accepted: settled_items(&enc, &done, &rejected) + enc.disabled_items,
        })
    }

    /// Polls the acknowledgement endpoint until every id in `pending` is confirmed
    /// or `ack_timeout` passes. Confirmed entries are removed from `pending`.
    async fn wait_for_acks(&self, pending: &mut Vec<(u64, Vec<usize>)>) -> Result<(), PluginError> {
        let deadline = Instant::now() + self.ack_timeout;
        let mut last_problem = String::new();
        loop {
            let ids: Vec<u64> = pending.iter().map(|(id, _)| *id).collect();
            let body = serde_json::to_vec(&json!({ "acks": ids })).unwrap_or_default();
            let req = self.request(&self.ack_url, body);
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left.max(Duration::from_millis(1)), self.client.send(req))
                .await
            {
                Ok(Ok(resp)) if (200..300).contains(&resp.status) => {
                    match serde_json::from_slice::<AckReply>(&resp.body) {
                        Ok(reply) => {
                            let before = pending.len();
                            pending.retain(|(id, _)| {
                                !reply.acks.get(&id.to_string()).copied().unwrap_or(false)
                            });
                            self.stats
                                .acked_requests
                                .fetch_add((before - pending.len()) as u64, Ordering::Relaxed);
                        }
                        Err(e) => {
                            last_problem = format!("{}: unreadable answer: {e}", self.ack_url)
                        }
                    }
                }
                Ok(Ok(resp)) => match classify(&resp, 0, &self.ack_url) {
                    Outcome::Fatal(e) => return Err(e),
                    _ => last_problem = format!("{}: {}", self.ack_url, retry::describe(&resp)),
                },
                Ok(Err(e)) => last_problem = e,
                Err(_) => {}
            }
            if pending.is_empty() {
                return Ok(());
            }
            let now = Instant::now();
            if now + self.ack_poll_interval > deadline {
                let mut msg = format!(
                    "{} request(s) not acknowledged by the indexers within {:?} (ack_timeout); \
                     they will be sent again",
                    pending.len(),
                    self.ack_timeout
                );
                if !last_problem.is_empty() {
                    msg.push_str(&format!(" (last poll: {last_problem})"));
                }
                return Err(PluginError::retryable(msg));
            }
            tokio::time::sleep(self.ack_poll_interval).await;
        }
    }
}

/// `{"acks":{"0":true,"1":false}}`.
#[derive(Debug, Deserialize)]
struct AckReply {
    acks: std::collections::HashMap<String, bool>,
}

/// Items of the events settled as delivered (done and not rejected).
fn settled_items(enc: &Encoded, done: &[bool], rejected: &[bool]) -> u64 {
    enc.events
        .iter()
        .zip(done.iter().zip(rejected))
        .filter(|(_, (d, r))| **d && !**r)
        .map(|(e, _)| e.items)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfo_plugin_common::http::HeaderMap;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
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
            body: body.as_bytes().to_vec(),
        }
    }

    fn kind(o: &Outcome) -> &'static str {
        match o {
            Outcome::Accepted { .. } => "accepted",
            Outcome::BadEvent { .. } => "bad-event",
            Outcome::BadRequest { .. } => "bad-request",
            Outcome::Retry { .. } => "retry",
            Outcome::Fatal(e) => {
                assert_eq!(e.kind, ErrorKind::Permanent);
                "fatal"
            }
        }
    }

    #[test]
    fn documented_answers() {
        let u = "https://s/services/collector/event";
        let cases = [
            (200, r#"{"text":"Success","code":0}"#, "accepted"),
            (403, r#"{"text":"Token disabled","code":1}"#, "fatal"),
            (401, r#"{"text":"Token is required","code":2}"#, "fatal"),
            (401, r#"{"text":"Invalid authorization","code":3}"#, "fatal"),
            (403, r#"{"text":"Invalid token","code":4}"#, "fatal"),
            (400, r#"{"text":"No data","code":5}"#, "fatal"),
            (
                400,
                r#"{"text":"Invalid data format","code":6,"invalid-event-number":1}"#,
                "bad-event",
            ),
            (
                400,
                r#"{"text":"Invalid data format","code":6}"#,
                "bad-request",
            ),
            (
                400,
                r#"{"text":"Invalid data format","code":6,"invalid-event-number":9}"#,
                "bad-request",
            ),
            (
                400,
                r#"{"text":"Incorrect index","code":7,"invalid-event-number":1}"#,
                "fatal",
            ),
            (500, r#"{"text":"Internal server error","code":8}"#, "retry"),
            (503, r#"{"text":"Server is busy","code":9}"#, "retry"),
            (
                400,
                r#"{"text":"Data channel is missing","code":10}"#,
                "fatal",
            ),
            (400, r#"{"text":"Invalid data channel","code":11}"#, "fatal"),
            (
                400,
                r#"{"text":"Event field is required","code":12,"invalid-event-number":0}"#,
                "bad-event",
            ),
            (
                400,
                r#"{"text":"Event field cannot be blank","code":13,"invalid-event-number":0}"#,
                "bad-event",
            ),
            (400, r#"{"text":"ACK is disabled","code":14}"#, "fatal"),
            (
                400,
                r#"{"text":"Error in handling indexed fields","code":15,"invalid-event-number":2}"#,
                "bad-event",
            ),
            (
                400,
                r#"{"text":"Query string authorization is not enabled","code":16}"#,
                "fatal",
            ),
            (
                503,
                r#"{"text":"HEC is unhealthy, queues are full","code":18}"#,
                "retry",
            ),
            (
                503,
                r#"{"text":"HEC is unhealthy, ack service unavailable","code":19}"#,
                "retry",
            ),
            (429, "", "retry"),
            (502, "<html>bad gateway</html>", "retry"),
            (413, "too large", "fatal"),
            (404, "not found", "fatal"),
        ];
        for (status, body, want) in cases {
            let o = classify(&resp(status, &[], body), 3, u);
            assert_eq!(kind(&o), want, "{status} {body}");
        }
    }

    #[test]
    fn retry_after_and_processed_events_are_kept() {
        let o = classify(
            &resp(
                503,
                &[("retry-after", "7")],
                r#"{"text":"Server is busy","code":9,"invalid-event-number":2}"#,
            ),
            5,
            "u",
        );
        match o {
            Outcome::Retry { error, processed } => {
                assert_eq!(error.kind, ErrorKind::Retryable);
                assert_eq!(error.retry_after_ms.into_option(), Some(7000));
                assert!(error.message.contains("Server is busy"), "{error}");
                assert_eq!(processed, Some(2));
            }
            other => panic!("{other:?}"),
        }
        match classify(
            &resp(200, &[], r#"{"text":"Success","code":0,"ackId":12}"#),
            1,
            "u",
        ) {
            Outcome::Accepted { ack_id } => assert_eq!(ack_id, Some(12)),
            other => panic!("{other:?}"),
        }
        match classify(
            &resp(401, &[], r#"{"text":"Invalid authorization","code":3}"#),
            1,
            "u",
        ) {
            Outcome::Fatal(e) => assert!(e.message.contains("HEC token"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    fn ev(n: usize) -> encode::Event {
        encode::Event {
            json: vec![b'x'; n],
            items: 1,
        }
    }

    #[test]
    fn chunks_respect_count_size_and_done() {
        let events = vec![ev(10), ev(10), ev(10), ev(30), ev(10)];
        let mut done = vec![false; 5];
        assert_eq!(next_chunk(&events, &done, 0, 2, 100), [0, 1]);
        assert_eq!(next_chunk(&events, &done, 0, 10, 35), [0, 1, 2]);
        assert_eq!(next_chunk(&events, &done, 3, 10, 35), [3]);
        // An event alone larger than the limit still goes (the encoder prevents it).
        assert_eq!(next_chunk(&events, &done, 3, 10, 20), [3]);
        done[1] = true;
        assert_eq!(next_chunk(&events, &done, 0, 2, 100), [0, 2]);
        assert!(next_chunk(&events, &done, 5, 2, 100).is_empty());
        assert_eq!(body(&events, &[0, 2]).len(), 20);
    }
}
