//! Push transport: the request, credentials, and what Loki's answers mean.
//!
//! `POST <endpoint>/loki/api/v1/push` with `Content-Type: application/x-protobuf`
//! (Snappy-compressed body, no `Content-Encoding`) or `application/json`,
//! `X-Scope-OrgID: <tenant_id>` when set, and Basic or Bearer credentials
//! (<https://grafana.com/docs/loki/latest/reference/loki-http-api/#ingest-logs>).
//!
//! Answers (Loki answers 204 on success):
//! - 2xx: the push was ingested;
//! - 429 (rate limited: `Retry-After` is honoured), 408, 5xx, transport errors:
//!   retryable. The batch's pushes already ingested are not sent again when the
//!   host retries it (the plugin remembers the encoded pushes of the failed batch
//!   and resumes at the failed one);
//! - 400 (and 413, 422): Loki refused entries for good — out of order, "entry too
//!   far behind", too old, line too long, invalid labels. Loki ingests the valid
//!   entries of such a push and reports the rest (`total ignored: N out of M` for
//!   ingester rejections); the plugin counts N (or the whole push when Loki gives
//!   no count) as dropped, logs the count with Loki's message, and goes on with
//!   the next push: these entries are never retried;
//! - 401, 403, 404 and other 4xx: permanent error (credentials, tenant, URL).

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Mutex,
};

use http::Method;
use tfo_plugin_api::{Batch, ErrorKind, ExportOk, PluginError};
use tfo_plugin_common::{
    auth,
    http::{ClientOptions, HttpClient, Request, Response},
    retry,
};

use crate::{
    config::{push_url, Config, Encoding},
    encode::{self, Options},
};

/// Counters of one instance.
#[derive(Debug, Default)]
pub struct Stats {
    /// Pushes answered 2xx.
    pub pushes_ok: AtomicU64,
    /// Entries ingested.
    pub entries_sent: AtomicU64,
    /// Entries refused for good by Loki (400).
    pub entries_dropped: AtomicU64,
    /// Lines cut to `max_line_bytes`.
    pub lines_cut: AtomicU64,
}

/// One encoded push: body and entry count.
struct Body {
    bytes: Vec<u8>,
    entries: u64,
}

/// A batch that failed retryably after some of its pushes were ingested.
struct Resume {
    batch: Batch,
    bodies: Vec<Body>,
    next: usize,
    accepted: u64,
    dropped: u64,
    first_drop: Option<String>,
}

enum Sent {
    Ok,
    Retry(PluginError),
    /// Entries refused for good: how many, and Loki's message.
    Refused(u64, String),
    Fatal(PluginError),
}

/// Pushes batches to one Loki.
pub struct Pusher {
    client: HttpClient,
    url: String,
    headers: Vec<(String, String)>,
    encoding: Encoding,
    opts: Options,
    stats: Stats,
    resume: Mutex<Option<Resume>>,
    last_error: Mutex<Option<String>>,
    last_drop: Mutex<Option<String>>,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The sum of the `total ignored: N out of M` counts in a Loki 400 message.
pub fn ignored_count(body: &str) -> Option<u64> {
    const NEEDLE: &str = "total ignored: ";
    let mut total = None;
    let mut rest = body;
    while let Some(i) = rest.find(NEEDLE) {
        rest = &rest[i + NEEDLE.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse::<u64>() {
            total = Some(total.unwrap_or(0) + n);
        }
    }
    total
}

impl Pusher {
    /// Prepares the client for a validated config (reads the CA file).
    pub fn new(cfg: &Config) -> Result<Pusher, String> {
        let client = HttpClient::new(&ClientOptions {
            timeout: cfg.timeout,
            ca_file: cfg.ca_file.clone(),
            insecure_skip_verify: cfg.insecure_skip_verify,
            ..ClientOptions::default()
        })?;
        let content_type = match cfg.encoding {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        };
        let mut headers = vec![("Content-Type".to_string(), content_type.to_string())];
        if let Some(t) = &cfg.tenant_id {
            headers.push(("X-Scope-OrgID".into(), t.clone()));
        }
        if let Some(b) = &cfg.basic_auth {
            headers.push((
                "Authorization".into(),
                auth::basic_auth_value(&b.username, &b.password),
            ));
        }
        if let Some(t) = &cfg.bearer_token {
            headers.push(("Authorization".into(), auth::bearer_auth_value(t)));
        }
        headers.extend(cfg.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(Pusher {
            client,
            url: push_url(&cfg.endpoint)?,
            headers,
            encoding: cfg.encoding,
            opts: Options::from_config(cfg),
            stats: Stats::default(),
            resume: Mutex::new(None),
            last_error: Mutex::new(None),
            last_drop: Mutex::new(None),
        })
    }

    /// The push URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The last export failure, cleared by a successful export.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    /// The last report of entries Loki refused.
    pub fn last_drop(&self) -> Option<String> {
        lock(&self.last_drop).clone()
    }

    fn bodies(&self, batch: &Batch, now_ns: u64) -> Result<Vec<Body>, PluginError> {
        let enc = encode::encode_batch(batch, &self.opts, now_ns);
        if enc.lines_cut + enc.label_values_cut + enc.metadata_dropped > 0 {
            self.stats
                .lines_cut
                .fetch_add(enc.lines_cut, Ordering::Relaxed);
            tracing::warn!(
                "loki: {} line(s) cut to max_line_bytes ({}), {} label value(s) cut to 2048 \
                 bytes, {} structured metadata pair(s) over Loki's limits left out",
                enc.lines_cut,
                self.opts.max_line_bytes,
                enc.label_values_cut,
                enc.metadata_dropped
            );
        }
        enc.pushes
            .iter()
            .map(|p| {
                let bytes = match self.encoding {
                    Encoding::Protobuf => {
                        encode::protobuf_body(p).map_err(PluginError::permanent)?
                    }
                    Encoding::Json => encode::json_body(p),
                };
                Ok(Body {
                    bytes,
                    entries: p.entries(),
                })
            })
            .collect()
    }

    /// What `export` would send, as text (JSON bodies; protobuf shown as the
    /// equivalent JSON), for `--once` previews.
    pub fn preview(&self, batch: &Batch, now_ns: u64) -> String {
        let enc = encode::encode_batch(batch, &self.opts, now_ns);
        let mut out = String::new();
        for (i, p) in enc.pushes.iter().enumerate() {
            out.push_str(&format!(
                "# POST {} (push {}, {:?}; shown as JSON)\n",
                self.url,
                i + 1,
                self.encoding
            ));
            out.push_str(&String::from_utf8_lossy(&encode::json_body(p)));
            out.push('\n');
        }
        out
    }

    /// Delivers the batch's log records (see the module docs).
    pub async fn export(&self, batch: &Batch, now_ns: u64) -> Result<ExportOk, PluginError> {
        let result = self.export_inner(batch, now_ns).await;
        *lock(&self.last_error) = result.as_ref().err().map(|e| e.message.to_string());
        result
    }

    async fn export_inner(&self, batch: &Batch, now_ns: u64) -> Result<ExportOk, PluginError> {
        // Metrics and spans are not for this sink: the host's router still hands
        // mixed batches over; they are not counted as drops.
        let others = batch.item_count() - batch.logs.len() as u64;
        if batch.logs.is_empty() {
            return Ok(ExportOk { accepted: others });
        }
        let resumed = lock(&self.resume).take().filter(|r| r.batch == *batch);
        let (bodies, next, mut accepted, mut dropped, mut first_drop) = match resumed {
            Some(r) => (r.bodies, r.next, r.accepted, r.dropped, r.first_drop),
            None => (self.bodies(batch, now_ns)?, 0, others, 0, None),
        };
        for i in next..bodies.len() {
            let body = &bodies[i];
            match self.send(&body.bytes).await {
                Sent::Ok => {
                    accepted += body.entries;
                    self.stats
                        .entries_sent
                        .fetch_add(body.entries, Ordering::Relaxed);
                }
                Sent::Refused(n, why) => {
                    let n = n.min(body.entries);
                    dropped += n;
                    accepted += body.entries - n;
                    first_drop.get_or_insert(why);
                }
                Sent::Retry(mut e) => {
                    e.accepted = accepted;
                    *lock(&self.resume) = Some(Resume {
                        batch: batch.clone(),
                        bodies,
                        next: i,
                        accepted,
                        dropped,
                        first_drop,
                    });
                    return Err(e);
                }
                Sent::Fatal(mut e) => {
                    e.accepted = accepted;
                    return Err(e);
                }
            }
        }
        if dropped > 0 {
            let text = format!(
                "Loki refused {dropped} entr{} for good (not retried): {}",
                if dropped == 1 { "y" } else { "ies" },
                first_drop.unwrap_or_default()
            );
            tracing::warn!("loki: {text}");
            self.stats
                .entries_dropped
                .fetch_add(dropped, Ordering::Relaxed);
            *lock(&self.last_drop) = Some(text);
        }
        Ok(ExportOk { accepted })
    }

    async fn send(&self, body: &[u8]) -> Sent {
        let mut req = Request::new(Method::POST, self.url.clone()).body(body.to_vec());
        for (k, v) in &self.headers {
            req = req.header(k.clone(), v.clone());
        }
        match self.client.send(req).await {
            Ok(resp) => self.classify(&resp),
            Err(e) => Sent::Retry(retry::transport(format!("loki: {e}"))),
        }
    }

    fn classify(&self, resp: &Response) -> Sent {
        match retry::classify(resp) {
            Ok(()) => {
                self.stats.pushes_ok.fetch_add(1, Ordering::Relaxed);
                Sent::Ok
            }
            Err(mut e) => {
                e.message = format!("loki: {}: {}", self.url, e.message).into();
                match (e.kind, resp.status) {
                    (ErrorKind::Retryable, _) => Sent::Retry(e),
                    (_, 400 | 413 | 422) => {
                        let n = ignored_count(&resp.text()).unwrap_or(u64::MAX);
                        Sent::Refused(n, retry::describe(resp))
                    }
                    _ => Sent::Fatal(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_counts_are_summed() {
        let body = "entry with timestamp 2023-11-14 22:13:20 +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2023-11-14T22:13:20Z, oldest acceptable timestamp is: 2023-11-14T23:00:00Z',\nuser 'fake', total ignored: 2 out of 3 for stream: {job=\"a\"}\nuser 'fake', total ignored: 1 out of 1 for stream: {job=\"b\"}";
        assert_eq!(ignored_count(body), Some(3));
        assert_eq!(
            ignored_count("error at least one label pair is required per stream"),
            None
        );
    }
}
