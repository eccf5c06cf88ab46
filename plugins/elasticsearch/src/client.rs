//! Bulk transport: requests, auth, what Elasticsearch's answers mean, and the
//! item-level retry bookkeeping.
//!
//! Each request is `POST <endpoint>/_bulk[?pipeline=<id>]` with
//! `Content-Type: application/x-ndjson`, the configured credentials
//! (`Authorization: ApiKey ...` or `Basic ...`) and optionally a gzip body
//! (<https://www.elastic.co/guide/en/elasticsearch/reference/current/docs-bulk.html>).
//! A batch larger than `max_bulk_bytes` becomes several requests.
//!
//! Answers:
//! - 2xx with `errors: false`: every document indexed;
//! - 2xx with `errors: true`: each item has its own `status`. 2xx items are done;
//!   429 and 5xx items (`es_rejected_execution_exception`, unavailable shards) are
//!   kept and the export returns a retryable error, so the host backs off and
//!   hands the same batch again: then **only those items** are sent (the plugin
//!   remembers the encoded items of the failed batch). Every other item status
//!   (400 `mapper_parsing_exception`, 409...) will fail again: the item is dropped,
//!   counted, and the first reason logged;
//! - whole-request 429, 408 and 5xx, and transport errors: retryable, with the
//!   server's `Retry-After`; the documents not yet confirmed are kept for the
//!   retry, those confirmed are not sent twice. A transport error also moves to
//!   the next configured endpoint;
//! - whole-request 400 and 413 (a body the server refuses as a whole): that
//!   request's documents are dropped and counted, the other requests still go;
//! - 401, 403 (credentials or privileges), 404 and other 4xx: permanent error.
//!
//! Delivery is at least once: a request whose answer is lost (timeout) is sent
//! again whole.

use std::sync::{
    atomic::{AtomicU64, AtomicUsize, Ordering},
    Mutex,
};

use http::Method;
use tfo_plugin_api::{Batch, ErrorKind, ExportOk, PluginError};
use tfo_plugin_common::{
    http::{ClientOptions, HttpClient, Request, Response},
    retry,
};

use crate::{
    config::{Compression, Config},
    encode::{self, BulkItem, ItemResult, Target},
};

/// Counters of one instance.
#[derive(Debug, Default)]
pub struct Stats {
    /// Bulk requests answered 2xx.
    pub requests_ok: AtomicU64,
    /// Documents indexed.
    pub indexed: AtomicU64,
    /// Documents dropped: refused permanently by Elasticsearch, too large, or not
    /// encodable (NaN values).
    pub dropped: AtomicU64,
    /// Documents sent again alone after an item-level 429/5xx.
    pub item_retries: AtomicU64,
}

/// A batch that failed retryably: its encoded items and which are still due.
struct Resume {
    batch: Batch,
    items: Vec<BulkItem>,
    pending: Vec<usize>,
    accepted: u64,
    dropped: u64,
    first_drop: Option<String>,
}

/// The outcome of one bulk request.
enum Sent {
    /// 2xx: per-item results, in request order.
    Items(Vec<ItemResult>),
    /// Whole request retryable (429/5xx/transport).
    Retry(PluginError),
    /// The request's documents were refused as a whole (400, 413).
    DropAll(String),
    /// Nothing will work until the config changes (401, 403, 404...).
    Fatal(PluginError),
}

/// Sends batches to one cluster.
pub struct BulkClient {
    client: HttpClient,
    urls: Vec<String>,
    current: AtomicUsize,
    query: String,
    headers: Vec<(String, String)>,
    gzip: bool,
    max_bulk_bytes: usize,
    target: Target,
    stats: Stats,
    resume: Mutex<Option<Resume>>,
    last_error: Mutex<Option<String>>,
    last_drop: Mutex<Option<String>>,
}

impl std::fmt::Debug for BulkClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkClient")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl BulkClient {
    /// Prepares the client for a validated config (reads the CA file); connects
    /// nothing yet.
    pub fn new(cfg: &Config) -> Result<BulkClient, String> {
        let client = HttpClient::new(&ClientOptions {
            timeout: cfg.timeout,
            ca_file: cfg.ca_file.clone(),
            insecure_skip_verify: cfg.insecure_skip_verify,
            ..ClientOptions::default()
        })?;
        let mut headers = vec![(
            "Content-Type".to_string(),
            "application/x-ndjson".to_string(),
        )];
        if let Some(a) = cfg.authorization() {
            headers.push(("Authorization".into(), a));
        }
        headers.extend(cfg.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(BulkClient {
            client,
            urls: cfg.base_urls()?,
            current: AtomicUsize::new(0),
            query: cfg
                .pipeline
                .as_deref()
                .map(|p| format!("?pipeline={}", query_escape(p)))
                .unwrap_or_default(),
            headers,
            gzip: cfg.compression == Compression::Gzip,
            max_bulk_bytes: usize::try_from(cfg.max_bulk_bytes).unwrap_or(usize::MAX),
            target: Target::from_config(cfg),
            stats: Stats::default(),
            resume: Mutex::new(None),
            last_error: Mutex::new(None),
            last_drop: Mutex::new(None),
        })
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The last export failure, cleared by a successful export (for health).
    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    /// The last drop report (count and first reason), for health.
    pub fn last_drop(&self) -> Option<String> {
        lock(&self.last_drop).clone()
    }

    /// The bulk URL of the endpoint in use.
    pub fn url(&self) -> String {
        let i = self.current.load(Ordering::Relaxed) % self.urls.len().max(1);
        format!("{}/_bulk{}", self.urls[i], self.query)
    }

    /// The NDJSON bodies `export` would send for `batch` (for `--once` previews).
    pub fn preview(&self, batch: &Batch, now_ns: u64) -> String {
        let enc = encode::encode_batch(batch, &self.target, now_ns);
        let all: Vec<usize> = (0..enc.items.len()).collect();
        let (chunks, oversized) = encode::split(&all, &enc.items, self.max_bulk_bytes);
        let mut out = String::new();
        for (i, c) in chunks.iter().enumerate() {
            out.push_str(&format!("# POST {} (request {})\n", self.url(), i + 1));
            out.push_str(&String::from_utf8_lossy(&encode::body(c, &enc.items)));
        }
        if enc.skipped + oversized.len() as u64 > 0 {
            out.push_str(&format!(
                "# {} item(s) would be dropped; first: {}\n",
                enc.skipped + oversized.len() as u64,
                enc.first_skip_reason
                    .unwrap_or_else(|| "document larger than max_bulk_bytes".into())
            ));
        }
        out
    }

    fn take_resume(&self, batch: &Batch) -> Option<Resume> {
        let r = lock(&self.resume).take()?;
        (r.batch == *batch).then_some(r)
    }

    /// Delivers a batch (see the module docs for the outcome of each answer).
    pub async fn export(&self, batch: &Batch, now_ns: u64) -> Result<ExportOk, PluginError> {
        let result = self.export_inner(batch, now_ns).await;
        *lock(&self.last_error) = result.as_ref().err().map(|e| e.message.to_string());
        result
    }

    async fn export_inner(&self, batch: &Batch, now_ns: u64) -> Result<ExportOk, PluginError> {
        let (items, pending, mut accepted, mut dropped, mut first_drop) =
            match self.take_resume(batch) {
                Some(r) => {
                    tracing::debug!(
                        "elasticsearch: retrying {} document(s) of a partly delivered batch",
                        r.pending.len()
                    );
                    self.stats
                        .item_retries
                        .fetch_add(r.pending.len() as u64, Ordering::Relaxed);
                    (r.items, r.pending, r.accepted, r.dropped, r.first_drop)
                }
                None => {
                    let enc = encode::encode_batch(batch, &self.target, now_ns);
                    let pending = (0..enc.items.len()).collect();
                    (
                        enc.items,
                        pending,
                        enc.filtered,
                        enc.skipped,
                        enc.first_skip_reason,
                    )
                }
            };
        let (chunks, oversized) = encode::split(&pending, &items, self.max_bulk_bytes);
        for &i in &oversized {
            dropped += 1;
            first_drop.get_or_insert_with(|| {
                format!(
                    "a {} document of {} bytes is larger than max_bulk_bytes ({})",
                    items[i].signal.as_str(),
                    items[i].wire_len(),
                    self.max_bulk_bytes
                )
            });
        }

        let mut later: Vec<usize> = Vec::new();
        let mut first_retry: Option<String> = None;
        let mut whole_retry: Option<PluginError> = None;
        for chunk in &chunks {
            if whole_retry.is_some() {
                // The cluster is refusing requests: keep the rest for the retry.
                later.extend_from_slice(chunk);
                continue;
            }
            match self.send(chunk, &items).await {
                Sent::Items(results) => {
                    for (&i, r) in chunk.iter().zip(results) {
                        match r {
                            ItemResult::Ok => accepted += 1,
                            ItemResult::Retry(why) => {
                                later.push(i);
                                first_retry.get_or_insert(why);
                            }
                            ItemResult::Drop(why) => {
                                dropped += 1;
                                first_drop.get_or_insert(why);
                            }
                        }
                    }
                }
                Sent::Retry(e) => {
                    later.extend_from_slice(chunk);
                    whole_retry = Some(e);
                }
                Sent::DropAll(why) => {
                    dropped += chunk.len() as u64;
                    first_drop.get_or_insert(why);
                }
                Sent::Fatal(mut e) => {
                    e.accepted = accepted;
                    return Err(e);
                }
            }
        }
        self.stats.indexed.fetch_add(accepted, Ordering::Relaxed);

        if !later.is_empty() {
            let n = later.len();
            let mut e = whole_retry.unwrap_or_else(|| {
                PluginError::retryable(format!(
                    "elasticsearch: {n} document(s) refused for now and kept for the retry \
                     (only they are sent again); first: {}",
                    first_retry.unwrap_or_default()
                ))
            });
            e.accepted = accepted;
            *lock(&self.resume) = Some(Resume {
                batch: batch.clone(),
                items,
                pending: later,
                accepted,
                dropped,
                first_drop,
            });
            return Err(e);
        }
        if dropped > 0 {
            let text = format!(
                "{dropped} document(s) dropped; first reason: {}",
                first_drop.unwrap_or_default()
            );
            tracing::warn!("elasticsearch: {text}");
            self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
            *lock(&self.last_drop) = Some(text);
        }
        Ok(ExportOk { accepted })
    }

    async fn send(&self, chunk: &[usize], items: &[BulkItem]) -> Sent {
        let url = self.url();
        let mut req = Request::new(Method::POST, url.clone())
            .body(encode::body(chunk, items))
            .gzip(self.gzip);
        for (k, v) in &self.headers {
            req = req.header(k.clone(), v.clone());
        }
        let resp = match self.client.send(req).await {
            Ok(r) => r,
            Err(e) => {
                // Try the next endpoint on the next request.
                self.current.fetch_add(1, Ordering::Relaxed);
                return Sent::Retry(retry::transport(format!("elasticsearch: {e}")));
            }
        };
        classify(&resp, &url, chunk.len(), &self.stats)
    }
}

/// What an HTTP answer to a bulk request of `n` documents means.
fn classify(resp: &Response, url: &str, n: usize, stats: &Stats) -> Sent {
    match retry::classify(resp) {
        Ok(()) => {
            stats.requests_ok.fetch_add(1, Ordering::Relaxed);
            match encode::parse_bulk_response(&resp.body, n) {
                Ok(r) => Sent::Items(r),
                Err(why) => {
                    // A 2xx whose body we cannot read (a proxy?): the request was
                    // accepted; resending could only duplicate documents.
                    tracing::warn!("elasticsearch: {url}: {why}; counting the request as indexed");
                    Sent::Items(vec![ItemResult::Ok; n])
                }
            }
        }
        Err(mut e) => {
            e.message = format!("elasticsearch: {url}: {}", e.message).into();
            match (e.kind, resp.status) {
                (ErrorKind::Retryable, _) => Sent::Retry(e),
                (_, 400 | 413) => Sent::DropAll(e.message.to_string()),
                _ => Sent::Fatal(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_ids_are_escaped() {
        assert_eq!(query_escape("my-pipe_1.x"), "my-pipe_1.x");
        assert_eq!(query_escape("a&b=c/d"), "a%26b%3Dc%2Fd");
    }

    fn cfg(json: &str) -> Config {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn urls_and_headers() {
        let c = BulkClient::new(&cfg(
            r#"{"endpoints": ["http://a:9200/", "http://b:9200"], "pipeline": "p&1",
                "api_key": "id:key", "headers": {"X-Opaque-Id": "tfo"}}"#,
        ))
        .unwrap();
        assert_eq!(c.url(), "http://a:9200/_bulk?pipeline=p%261");
        c.current.fetch_add(1, Ordering::Relaxed);
        assert_eq!(c.url(), "http://b:9200/_bulk?pipeline=p%261");
        c.current.fetch_add(1, Ordering::Relaxed);
        assert_eq!(c.url(), "http://a:9200/_bulk?pipeline=p%261");
        assert_eq!(
            c.headers,
            [
                (
                    "Content-Type".to_string(),
                    "application/x-ndjson".to_string()
                ),
                ("Authorization".to_string(), "ApiKey aWQ6a2V5".to_string()),
                ("X-Opaque-Id".to_string(), "tfo".to_string()),
            ]
        );
    }
}
