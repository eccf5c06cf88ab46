//! Transport of the alibaba sink: signs and sends a batch's logs to SLS, its
//! metrics to CloudMonitor and its spans to Managed Service for OpenTelemetry.
//!
//! - SLS PutLogs: `POST {scheme}://{project}.{endpoint}/logstores/{logstore}/shards/lb`
//!   with `Content-Type: application/x-protobuf`, `x-log-apiversion: 0.6.0`,
//!   `x-log-signaturemethod: hmac-sha1`, `x-log-bodyrawsize`, `x-log-compresstype`,
//!   `Content-MD5`, `Date`, `x-acs-security-token` (STS) and
//!   `Authorization: LOG id:signature` ([`crate::sign`]). Errors are JSON
//!   `{"errorCode","errorMessage"}`.
//! - CloudMonitor: `POST {endpoint}/` with a form body holding the RPC common
//!   parameters (`Format=JSON`, `SignatureMethod=HMAC-SHA1`, `SignatureVersion=1.0`,
//!   `SignatureNonce`, `Timestamp`, `AccessKeyId`, `SecurityToken`), the
//!   PutCustomMetric parameters and `Signature` (signed as `POST&%2F&...`). The
//!   answer's `Code` must be `"200"`.
//! - Traces: OTLP/HTTP protobuf (`tfo_plugin_common::otlp`) to the console's
//!   OpenTelemetry HTTP endpoint (token in the URL), with an optional
//!   `Authentication: <token>` header.
//!
//! Errors: 408, 429, 5xx, SLS `*QuotaExceed*`/`*Throttl*`/`ServerBusy` codes and
//! CloudMonitor `Throttling*`, `ServiceUnavailable`, `InternalError` and
//! `SignatureNonceUsed` codes are retryable (with `Retry-After` when sent); other
//! 4xx and refused codes (`SignatureNotMatch`, `InvalidAccessKeyId`,
//! `ProjectNotExist`...) are permanent. When a later request of a batch fails
//! retryably, what was delivered is remembered and the host's retry sends only the
//! rest. Secrets (AccessKey secret, STS token, the tracing endpoint and token) are
//! never logged nor put in errors.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::SystemTime,
};

use prost::Message as _;
use serde::Deserialize;
use tfo_plugin_api::{Batch, ErrorKind, ExportOk, PluginError};
use tfo_plugin_common::{
    http::{HttpClient, Method, Request, Response},
    otlp, otlp_http, retry,
};

use crate::{
    config::{Config, OtlpCompression, Secret, SlsCompression},
    encode::{self, GroupSettings},
    sign,
};

/// SLS API version header value.
pub const SLS_API_VERSION: &str = "0.6.0";

/// Counters of one client.
#[derive(Debug, Default)]
pub struct Stats {
    /// Points or records not sent (non-finite values...).
    pub skipped: AtomicU64,
}

struct SlsTarget {
    base_url: String,
    resource: String,
    compression: SlsCompression,
    settings: GroupSettings,
}

struct CmsTarget {
    url: String,
    group_id: String,
    prefix: String,
}

struct ArmsTarget {
    url: Secret,
    redacted: String,
    token: Option<Secret>,
    gzip: bool,
}

#[derive(Default, Clone, Copy)]
struct Progress {
    sls_done: usize,
    cms_done: usize,
    arms_done: bool,
    accepted: u64,
}

struct Resume {
    batch: Batch,
    progress: Progress,
}

#[derive(Deserialize)]
struct SlsError {
    #[serde(default, rename = "errorCode")]
    code: String,
    #[serde(default, rename = "errorMessage")]
    message: String,
}

/// The alibaba sink's client.
pub struct AlibabaClient {
    http: HttpClient,
    access_key_id: String,
    secret: Secret,
    security_token: Option<Secret>,
    labels: BTreeMap<String, String>,
    sls: Option<SlsTarget>,
    cms: Option<CmsTarget>,
    arms: Option<ArmsTarget>,
    resume: Mutex<Option<Resume>>,
    stats: Stats,
}

impl std::fmt::Debug for AlibabaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlibabaClient")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// `scheme://host/<redacted>` for a URL holding a token in its path.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split('/').next().unwrap_or("");
            format!("{scheme}://{host}/<redacted>")
        }
        None => "<redacted>".to_string(),
    }
}

fn with_retry_after(e: PluginError, resp: &Response) -> PluginError {
    match retry::retry_after_ms(&resp.headers, SystemTime::now()) {
        Some(ms) => e.with_retry_after(ms),
        None => e,
    }
}

/// SLS answer -> delivered, retryable or permanent.
pub fn classify_sls(resp: &Response) -> Result<(), PluginError> {
    if (200..300).contains(&resp.status) {
        return Ok(());
    }
    let (code, message) = match serde_json::from_slice::<SlsError>(&resp.body) {
        Ok(e) if !e.code.is_empty() => (e.code, e.message),
        _ => (String::new(), String::new()),
    };
    let msg = if code.is_empty() {
        format!("SLS PutLogs: {}", retry::describe(resp))
    } else {
        let m: String = message.chars().take(retry::BODY_EXCERPT).collect();
        format!("SLS PutLogs: HTTP {} {code}: {m}", resp.status)
    };
    let code_retryable = code.contains("QuotaExceed")
        || code.contains("Throttl")
        || code == "ServerBusy"
        || code == "InternalServerError"
        || code == "RequestTimeout";
    if code_retryable || matches!(resp.status, 408 | 429 | 500..=599) {
        return Err(with_retry_after(PluginError::retryable(msg), resp));
    }
    Err(PluginError::permanent(msg))
}

/// CloudMonitor answer -> delivered, retryable or permanent.
pub fn classify_cms(resp: &Response) -> Result<(), PluginError> {
    let answer = encode::cms_answer(&resp.body);
    if (200..300).contains(&resp.status) {
        match &answer {
            Some((code, _)) if code == "200" => return Ok(()),
            // No Code at all: nothing says it failed.
            None => return Ok(()),
            _ => {}
        }
    }
    let (code, message) = answer.unwrap_or_default();
    let msg = if code.is_empty() {
        format!("CloudMonitor PutCustomMetric: {}", retry::describe(resp))
    } else {
        let m: String = message.chars().take(retry::BODY_EXCERPT).collect();
        format!(
            "CloudMonitor PutCustomMetric: HTTP {} {code}: {m}",
            resp.status
        )
    };
    let code_retryable = code.starts_with("Throttling")
        || code == "ServiceUnavailable"
        || code == "InternalError"
        || code == "SignatureNonceUsed";
    if code_retryable || matches!(resp.status, 408 | 429 | 500..=599) {
        return Err(with_retry_after(PluginError::retryable(msg), resp));
    }
    Err(PluginError::permanent(msg))
}

impl AlibabaClient {
    /// Builds the client from a validated config.
    pub fn new(config: &Config, http: HttpClient) -> Self {
        let sls = config.sls.as_ref().map(|s| SlsTarget {
            base_url: s.base_url(&config.region),
            resource: format!("/logstores/{}/shards/lb", s.logstore),
            compression: s.compression,
            settings: GroupSettings {
                topic: s.topic.clone(),
                source: s.source.clone(),
                labels: config.labels.clone(),
            },
        });
        let cms = config.cms.as_ref().map(|c| CmsTarget {
            url: format!("{}/", c.url(&config.region)),
            group_id: c.group_id.clone(),
            prefix: c.metric_prefix.clone(),
        });
        let arms = config.arms.as_ref().map(|a| ArmsTarget {
            redacted: redact_url(a.endpoint.expose()),
            url: a.endpoint.clone(),
            token: a.token.clone(),
            gzip: a.compression == OtlpCompression::Gzip,
        });
        AlibabaClient {
            http,
            access_key_id: config.access_key_id.clone().unwrap_or_default(),
            secret: config
                .access_key_secret
                .clone()
                .unwrap_or_else(|| Secret::new("")),
            security_token: config.security_token.clone(),
            labels: config.labels.clone(),
            sls,
            cms,
            arms,
            resume: Mutex::new(None),
            stats: Stats::default(),
        }
    }

    /// The client's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn take_resume(&self, batch: &Batch) -> Progress {
        let r = self.resume.lock().unwrap_or_else(|e| e.into_inner()).take();
        match r {
            Some(r) if r.batch == *batch => r.progress,
            _ => Progress::default(),
        }
    }

    fn fail(&self, batch: &Batch, p: Progress, mut e: PluginError) -> PluginError {
        e.accepted = p.accepted;
        if e.kind == ErrorKind::Retryable {
            *self.resume.lock().unwrap_or_else(|e| e.into_inner()) = Some(Resume {
                batch: batch.clone(),
                progress: p,
            });
        }
        e
    }

    /// Sends what the batch holds to the configured services.
    pub async fn export(&self, batch: &Batch, now: SystemTime) -> Result<ExportOk, PluginError> {
        let mut p = self.take_resume(batch);
        let now_nanos = now
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);

        if let Some(sls) = &self.sls {
            if !batch.logs.is_empty() {
                let groups = encode::log_groups(batch, &sls.settings, now_nanos);
                for (i, g) in groups.iter().enumerate() {
                    if i < p.sls_done {
                        continue;
                    }
                    let res = self
                        .put_logs(sls, &g.raw, now)
                        .await
                        .and_then(|r| classify_sls(&r));
                    if let Err(e) = res {
                        return Err(self.fail(batch, p, e));
                    }
                    p.sls_done = i + 1;
                    p.accepted += g.records;
                }
            }
        }

        if let Some(cms) = &self.cms {
            if !batch.metrics.is_empty() {
                let (points, skipped) = encode::cms_points(batch, &cms.prefix, &self.labels);
                if skipped > 0 && p.cms_done == 0 {
                    self.stats.skipped.fetch_add(skipped, Ordering::Relaxed);
                    tracing::warn!(
                        "alibaba cms: {skipped} point(s) not sent (non-finite value or empty \
                         histogram)"
                    );
                }
                for (i, chunk) in points.chunks(encode::MAX_METRICS_PER_CALL).enumerate() {
                    if i < p.cms_done {
                        continue;
                    }
                    let res = self
                        .put_custom_metric(cms, chunk, now)
                        .await
                        .and_then(|r| classify_cms(&r));
                    if let Err(e) = res {
                        return Err(self.fail(batch, p, e));
                    }
                    p.cms_done = i + 1;
                    p.accepted += chunk.len() as u64;
                }
            }
        }

        if let Some(arms) = &self.arms {
            if !batch.spans.is_empty() && !p.arms_done {
                if let Some(req) = otlp::traces(batch) {
                    let res = self
                        .post_traces(arms, req.encode_to_vec())
                        .await
                        .and_then(|r| {
                            retry::classify(&r).map_err(|mut e| {
                                e.message = format!("traces: {}", e.message).into();
                                e
                            })
                        });
                    if let Err(e) = res {
                        return Err(self.fail(batch, p, e));
                    }
                }
                p.arms_done = true;
                p.accepted += batch.spans.len() as u64;
            }
        }
        Ok(ExportOk {
            accepted: p.accepted,
        })
    }

    async fn put_logs(
        &self,
        sls: &SlsTarget,
        raw: &[u8],
        now: SystemTime,
    ) -> Result<Response, PluginError> {
        let body = encode::compress(raw, sls.compression);
        let md5 = sign::content_md5(&body);
        let date = sign::http_date(now);
        let content_type = "application/x-protobuf";
        let mut headers: Vec<(String, String)> = vec![
            ("x-log-apiversion".into(), SLS_API_VERSION.into()),
            ("x-log-signaturemethod".into(), "hmac-sha1".into()),
            ("x-log-bodyrawsize".into(), raw.len().to_string()),
            (
                "x-log-compresstype".into(),
                encode::compress_type(sls.compression).into(),
            ),
        ];
        if let Some(t) = &self.security_token {
            headers.push(("x-acs-security-token".into(), t.expose().to_string()));
        }
        let sts = sign::sls_string_to_sign(
            "POST",
            &md5,
            content_type,
            &date,
            &headers,
            &sls.resource,
            &BTreeMap::new(),
        );
        let auth = sign::sls_authorization(&self.access_key_id, self.secret.expose(), &sts);
        let mut req = Request::new(Method::POST, format!("{}{}", sls.base_url, sls.resource))
            .header("Content-Type", content_type)
            .header("Content-MD5", md5)
            .header("Date", date)
            .header("Authorization", auth)
            .body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        self.http
            .send(req)
            .await
            .map_err(|e| PluginError::retryable(format!("SLS PutLogs: {e}")))
    }

    async fn put_custom_metric(
        &self,
        cms: &CmsTarget,
        points: &[encode::CmsPoint],
        now: SystemTime,
    ) -> Result<Response, PluginError> {
        let mut params = encode::cms_params(points, &cms.group_id);
        params.insert("Format".into(), "JSON".into());
        params.insert("AccessKeyId".into(), self.access_key_id.clone());
        params.insert("SignatureMethod".into(), "HMAC-SHA1".into());
        params.insert("SignatureVersion".into(), "1.0".into());
        params.insert("SignatureNonce".into(), sign::nonce());
        params.insert("Timestamp".into(), sign::iso8601(now));
        if let Some(t) = &self.security_token {
            params.insert("SecurityToken".into(), t.expose().to_string());
        }
        let signature = sign::rpc_signature("POST", &params, self.secret.expose());
        let body = format!(
            "{}&Signature={}",
            sign::rpc_canonical_query(&params),
            sign::percent_encode(&signature)
        );
        let req = Request::new(Method::POST, cms.url.clone())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(body);
        self.http
            .send(req)
            .await
            .map_err(|e| PluginError::retryable(format!("CloudMonitor PutCustomMetric: {e}")))
    }

    async fn post_traces(&self, arms: &ArmsTarget, body: Vec<u8>) -> Result<Response, PluginError> {
        let mut req = otlp_http::protobuf_request(arms.url.expose(), body, arms.gzip);
        if let Some(t) = &arms.token {
            req = req.header("Authentication", t.expose());
        }
        self.http.send(req).await.map_err(|e| {
            // The endpoint holds the token: never let it into a message.
            let e = e.replace(arms.url.expose(), &arms.redacted);
            PluginError::retryable(format!("traces: {e}"))
        })
    }

    /// What `export` would send, as text (no network, no signatures).
    pub fn preview(&self, batch: &Batch, now: SystemTime) -> String {
        let mut out = String::new();
        let now_nanos = now
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        if let Some(sls) = &self.sls {
            for g in encode::log_groups(batch, &sls.settings, now_nanos) {
                if let Ok(lg) = encode::LogGroup::decode(&g.raw[..]) {
                    out.push_str(&format!("POST {}{}\n{lg:#?}\n", sls.base_url, sls.resource));
                }
            }
        }
        if let Some(cms) = &self.cms {
            let (points, _) = encode::cms_points(batch, &cms.prefix, &self.labels);
            for chunk in points.chunks(encode::MAX_METRICS_PER_CALL) {
                out.push_str(&format!(
                    "POST {}\n{:#?}\n",
                    cms.url,
                    encode::cms_params(chunk, &cms.group_id)
                ));
            }
        }
        if let Some(arms) = &self.arms {
            if let Some(req) = otlp::traces(batch) {
                out.push_str(&format!("POST {}\n{req:#?}\n", arms.redacted));
            }
        }
        out
    }
}
