//! One collection: the Azure Resource Manager requests, their failures, and the
//! plugin's health.
//!
//! - [`Arm`]: authenticated GETs with `nextLink` paging
//!   (<https://learn.microsoft.com/en-us/rest/api/azure/#async-operations-throttling-and-paging>),
//!   a token from the shared `azure_auth` module (audience
//!   `https://management.azure.com/`), one token refresh on HTTP 401, and ARM
//!   throttling (<https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/request-limits-and-throttling>):
//!   a 429 (or 503) whose `Retry-After` fits in `max_retry_wait` and the
//!   collection's deadline is waited for once; a longer one stops the collection
//!   and no request is sent to ARM before it has passed (no tight loop). The
//!   lowest `x-ms-ratelimit-remaining-subscription-reads` (or `-global-reads`,
//!   `-tenant-reads`) header of a collection is reported as a metric, and extensions (one request per machine) are skipped
//!   when fewer reads are left than they would need.
//! - [`Collector`]: machines, then connected clusters, then the extensions of
//!   every machine (bounded concurrency, every `extensions_interval`). A listing that fails only removes its own metrics
//!   (`azure_arc.listing.up` = 0) and makes health say what failed; the others
//!   are still reported.
//!
//! Tokens are never logged: they only ever appear in the `Authorization` header.
//! `nextLink` is followed only to the configured ARM host, so the bearer token is
//! never sent anywhere else.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicI64, Ordering},
        Arc,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tfo_plugin_api::{ErrorKind, HealthReport, KeyValue, Metric, PluginError};
use tfo_plugin_common::{
    azure_auth::TokenSource,
    http::{ClientOptions, HttpClient, Method, Request, Response},
    retry,
};

use crate::{
    config::Settings,
    map::{self, ConnectedCluster, Machine, MachineExtensions, Page},
};

/// Waited for a 429 without `Retry-After` before ARM is asked again.
pub const DEFAULT_THROTTLE: Duration = Duration::from_secs(30);

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Why a request or listing failed.
#[derive(Debug, Clone)]
pub enum ArmError {
    /// ARM asked us to wait (429 / 503) longer than we may wait now.
    Throttled {
        /// How long ARM asked for.
        wait: Duration,
        /// What happened.
        message: String,
    },
    /// Anything else (transport, 4xx/5xx, bad JSON, token).
    Failed(PluginError),
}

impl ArmError {
    /// The message, for health and logs.
    pub fn message(&self) -> String {
        match self {
            ArmError::Throttled { message, .. } => message.clone(),
            ArmError::Failed(e) => e.message.to_string(),
        }
    }
}

/// `(scheme, lower-case host, port)` of an absolute URL, with the default port
/// filled in, so `https://management.azure.com:443/x` matches
/// `https://management.azure.com`.
pub fn origin(url: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let default = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default,
            None => return None,
        };
        (format!("[{h}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (authority.to_string(), default),
        }
    };
    Some((scheme, host.to_ascii_lowercase(), port))
}

/// Authenticated ARM requests (see the module docs).
pub struct Arm {
    http: HttpClient,
    tokens: TokenSource,
    audience: String,
    base: String,
    origin: Option<(String, String, u16)>,
    max_pages: u32,
    max_retry_wait: Duration,
    remaining_reads: AtomicI64,
    stop: AtomicBool,
}

impl std::fmt::Debug for Arm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arm")
            .field("base", &self.base)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl Arm {
    /// A client for the ARM base URL of the settings; nothing is sent yet.
    pub fn new(s: &Settings) -> Result<Arm, String> {
        let http = HttpClient::new(&ClientOptions {
            timeout: s.timeout,
            ca_file: s.ca_file.clone(),
            insecure_skip_verify: s.insecure_skip_verify,
            ..ClientOptions::default()
        })?;
        let tokens = TokenSource::new(s.credential.clone(), s.endpoints.clone(), http.clone());
        Ok(Arm {
            http,
            tokens,
            audience: s.audience.clone(),
            base: s.arm.clone(),
            origin: origin(&s.arm),
            max_pages: s.max_pages,
            max_retry_wait: s.max_retry_wait,
            remaining_reads: AtomicI64::new(i64::MAX),
            stop: AtomicBool::new(false),
        })
    }

    /// The ARM base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Tokens fetched so far.
    pub fn token_fetches(&self) -> u64 {
        self.tokens.fetch_count()
    }

    fn begin(&self) {
        self.remaining_reads.store(i64::MAX, Ordering::Relaxed);
        self.stop.store(false, Ordering::Relaxed);
    }

    /// The lowest remaining-reads header seen since the collection began.
    pub fn remaining_reads(&self) -> Option<i64> {
        let v = self.remaining_reads.load(Ordering::Relaxed);
        (v != i64::MAX).then_some(v)
    }

    fn note_rate_limit(&self, resp: &Response) {
        for name in [
            "x-ms-ratelimit-remaining-subscription-reads",
            "x-ms-ratelimit-remaining-subscription-global-reads",
            "x-ms-ratelimit-remaining-tenant-reads",
        ] {
            if let Some(n) = resp
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
            {
                self.remaining_reads.fetch_min(n, Ordering::Relaxed);
            }
        }
    }

    /// One authenticated GET, with one token refresh on 401 and one wait for a
    /// short `Retry-After`.
    pub async fn get(
        &self,
        url: &str,
        what: &str,
        deadline: Instant,
    ) -> Result<Response, ArmError> {
        let mut refreshed = false;
        let mut waited = false;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err(ArmError::Failed(PluginError::retryable(format!(
                    "{what}: not sent, ARM is throttling this collection"
                ))));
            }
            let token = self
                .tokens
                .token(&self.audience)
                .await
                .map_err(ArmError::Failed)?;
            let req = Request::new(Method::GET, url)
                .header("Authorization", format!("Bearer {}", token.expose()))
                .header("Accept", "application/json");
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ArmError::Failed(PluginError::retryable(format!(
                    "{what}: collect_timeout reached"
                ))));
            }
            let resp = match tokio::time::timeout(left, self.http.send(req)).await {
                Err(_) => {
                    return Err(ArmError::Failed(PluginError::retryable(format!(
                        "{what}: collect_timeout reached"
                    ))))
                }
                Ok(Err(e)) => {
                    return Err(ArmError::Failed(retry::transport(format!("{what}: {e}"))))
                }
                Ok(Ok(r)) => r,
            };
            self.note_rate_limit(&resp);
            match resp.status {
                200..=299 => return Ok(resp),
                401 if !refreshed => {
                    // The token was revoked or expired early: one fresh one.
                    refreshed = true;
                    self.tokens.invalidate(&self.audience).await;
                    tracing::info!("{what}: ARM answered 401, fetching a new token");
                }
                429 | 503 => {
                    let asked = retry::retry_after_ms(&resp.headers, SystemTime::now())
                        .map(Duration::from_millis);
                    let wait = asked.unwrap_or(DEFAULT_THROTTLE);
                    let message = format!(
                        "{what}: throttled by ARM ({}), Retry-After {}s",
                        retry::describe(&resp),
                        wait.as_secs_f64()
                    );
                    let fits = asked.is_some()
                        && wait <= self.max_retry_wait
                        && Instant::now() + wait < deadline;
                    if waited || !fits {
                        self.stop.store(true, Ordering::Relaxed);
                        return Err(ArmError::Throttled { wait, message });
                    }
                    waited = true;
                    tracing::info!("{message}; waiting");
                    tokio::time::sleep(wait).await;
                }
                _ => {
                    let e = retry::classify(&resp)
                        .err()
                        .unwrap_or_else(|| PluginError::retryable(retry::describe(&resp)));
                    let msg = format!("{what}: {}", e.message);
                    return Err(ArmError::Failed(PluginError {
                        message: msg.into(),
                        ..e
                    }));
                }
            }
        }
    }

    /// Every item of a list operation, following `nextLink` (only to the ARM
    /// host) up to `max_pages` pages.
    pub async fn list(
        &self,
        first: String,
        what: &str,
        deadline: Instant,
    ) -> Result<Vec<serde_json::Value>, ArmError> {
        let mut url = first;
        let mut items = Vec::new();
        for page_no in 1..=self.max_pages {
            let resp = self.get(&url, what, deadline).await?;
            let page: Page = serde_json::from_slice(&resp.body).map_err(|e| {
                ArmError::Failed(PluginError::retryable(format!(
                    "{what}: page {page_no} is not an ARM list answer: {e}"
                )))
            })?;
            items.extend(page.value);
            match page.next_link.filter(|l| !l.trim().is_empty()) {
                None => return Ok(items),
                Some(next) => {
                    if self.origin.is_none() || origin(&next) != self.origin {
                        return Err(ArmError::Failed(PluginError::permanent(format!(
                            "{what}: nextLink points outside {} ({}); not following it",
                            self.base,
                            next.split('?').next().unwrap_or("")
                        ))));
                    }
                    url = next;
                }
            }
        }
        Err(ArmError::Failed(PluginError::permanent(format!(
            "{what}: more than max_pages ({}) pages",
            self.max_pages
        ))))
    }
}

/// One listing's outcome.
type Listed<T> = Result<(Vec<T>, usize), ArmError>;

/// Runs the collections of one instance and remembers what failed for health.
pub struct Collector {
    arm: Arc<Arm>,
    s: Settings,
    throttled_until: Option<Instant>,
    last_extensions: Option<Instant>,
    problems: Vec<String>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("arm", &self.arm)
            .field("problems", &self.problems)
            .finish_non_exhaustive()
    }
}

impl Collector {
    /// A collector for validated settings; fails only on an unreadable CA file.
    pub fn new(s: Settings) -> Result<Collector, String> {
        Ok(Collector {
            arm: Arc::new(Arm::new(&s)?),
            s,
            throttled_until: None,
            last_extensions: None,
            problems: Vec::new(),
        })
    }

    /// The ARM client (tests read its counters).
    pub fn arm(&self) -> &Arm {
        &self.arm
    }

    /// The resource attributes of every batch: Azure, this subscription.
    pub fn resource(&self) -> Vec<KeyValue> {
        vec![
            KeyValue::new("cloud.provider", "azure"),
            KeyValue::new("cloud.account.id", self.s.subscription_id.as_str()),
        ]
    }

    /// Healthy when the last collection read everything; otherwise what failed.
    pub fn health(&self) -> HealthReport {
        if self.problems.is_empty() {
            HealthReport::healthy()
        } else {
            HealthReport::unhealthy(self.problems.join("; "))
        }
    }

    /// The first-page URLs of a list operation: one per resource group, or one
    /// for the subscription.
    fn urls(&self, provider_type: &str, api_version: &str) -> Vec<String> {
        let sub = format!("{}/subscriptions/{}", self.s.arm, self.s.subscription_id);
        if self.s.resource_groups.is_empty() {
            vec![format!(
                "{sub}/providers/{provider_type}?api-version={api_version}"
            )]
        } else {
            self.s
                .resource_groups
                .iter()
                .map(|rg| {
                    format!(
                        "{sub}/resourceGroups/{rg}/providers/{provider_type}?api-version={api_version}"
                    )
                })
                .collect()
        }
    }

    async fn list_all<T: for<'de> serde::Deserialize<'de>>(
        arm: &Arm,
        urls: Vec<String>,
        what: &str,
        deadline: Instant,
    ) -> Listed<T> {
        let mut raw = Vec::new();
        for u in urls {
            raw.extend(arm.list(u, what, deadline).await?);
        }
        Ok(map::parse_items(raw))
    }

    /// One collection. `Err` only when every enabled listing failed (or ARM
    /// still throttles us); partial failures return what was read, and health
    /// says what failed.
    pub async fn collect(&mut self) -> Result<Vec<Metric>, PluginError> {
        if let Some(until) = self.throttled_until {
            let now = Instant::now();
            if now < until {
                let left = until - now;
                let msg = format!(
                    "ARM throttled this subscription; next request in {:.0}s",
                    left.as_secs_f64().ceil()
                );
                self.problems = vec![msg.clone()];
                return Err(PluginError::retryable(msg).with_retry_after(left.as_millis() as u64));
            }
            self.throttled_until = None;
        }
        let started = Instant::now();
        let deadline = started + self.s.collect_timeout;
        let now = now_ns();
        self.arm.begin();

        let arm = Arc::clone(&self.arm);
        let machine_urls = self.s.machines.then(|| {
            self.urls(
                "Microsoft.HybridCompute/machines",
                &self.s.machines_api_version,
            )
        });
        let cluster_urls = self.s.connected_clusters.then(|| {
            self.urls(
                "Microsoft.Kubernetes/connectedClusters",
                &self.s.connected_clusters_api_version,
            )
        });
        // One listing after the other: they share the subscription's read budget,
        // and a throttled first listing stops the second from being sent.
        let machines = match machine_urls {
            Some(u) => Some(
                Self::list_all::<Machine>(&arm, u, "listing Arc-enabled servers", deadline).await,
            ),
            None => None,
        };
        let clusters = match cluster_urls {
            Some(u) => Some(
                Self::list_all::<ConnectedCluster>(&arm, u, "listing connected clusters", deadline)
                    .await,
            ),
            None => None,
        };

        let mut problems = Vec::new();
        let mut throttle: Option<Duration> = None;
        let mut up: Vec<(&str, bool)> = Vec::new();
        let mut metrics = Vec::new();
        let mut any_ok = false;
        let mut last_error: Option<PluginError> = None;
        let mut note = |e: &ArmError, problems: &mut Vec<String>| {
            problems.push(e.message());
            match e {
                ArmError::Throttled { wait, .. } => {
                    throttle = Some(throttle.map_or(*wait, |t| t.max(*wait)));
                }
                ArmError::Failed(pe) => last_error = Some(pe.clone()),
            }
        };

        let mut machine_list = Vec::new();
        if let Some(r) = machines {
            match r {
                Ok((ms, skipped)) => {
                    any_ok = true;
                    if skipped > 0 {
                        problems.push(format!(
                            "{skipped} Arc-enabled server item(s) had an unexpected shape and were skipped"
                        ));
                    }
                    metrics.extend(map::machine_metrics(&ms, now));
                    up.push(("machines", true));
                    machine_list = ms;
                }
                Err(e) => {
                    note(&e, &mut problems);
                    up.push(("machines", false));
                }
            }
        }
        if let Some(r) = clusters {
            match r {
                Ok((cs, skipped)) => {
                    any_ok = true;
                    if skipped > 0 {
                        problems.push(format!(
                            "{skipped} connected cluster item(s) had an unexpected shape and were skipped"
                        ));
                    }
                    metrics.extend(map::cluster_metrics(&cs, now));
                    up.push(("connected_clusters", true));
                }
                Err(e) => {
                    note(&e, &mut problems);
                    up.push(("connected_clusters", false));
                }
            }
        }

        let due = self.s.extensions
            && up.contains(&("machines", true))
            && throttle.is_none()
            && self
                .last_extensions
                .is_none_or(|t| t.elapsed() >= self.s.extensions_interval);
        if due {
            self.last_extensions = Some(Instant::now());
            let needed = machine_list.len() as i64;
            match self.arm.remaining_reads() {
                Some(left) if left < needed => {
                    problems.push(format!(
                        "extensions not listed: ARM reports {left} reads left for this \
                         subscription, {needed} would be needed"
                    ));
                    up.push(("extensions", false));
                }
                _ => {
                    let (lists, errors) = self.list_extensions(&machine_list, deadline).await;
                    metrics.extend(map::extension_metrics(&lists, now));
                    if errors.is_empty() {
                        up.push(("extensions", true));
                    } else {
                        up.push(("extensions", false));
                        let n = errors.len();
                        let first = errors[0].clone();
                        for e in &errors {
                            if let ArmError::Throttled { wait, .. } = e {
                                throttle = Some(throttle.map_or(*wait, |t| t.max(*wait)));
                            }
                        }
                        problems.push(format!(
                            "extensions of {n} of {} machine(s) could not be listed; first: {}",
                            machine_list.len(),
                            first.message()
                        ));
                    }
                }
            }
        }

        if let Some(wait) = throttle {
            self.throttled_until = Some(Instant::now() + wait);
        }
        if let Some(r) = self.arm.remaining_reads() {
            metrics.push(map::remaining_reads(r, now));
        }
        metrics.push(map::listing_up(&up, now));
        for p in &problems {
            tracing::warn!("{p}");
        }
        self.problems = problems;
        if !any_ok {
            let msg = self.problems.join("; ");
            return Err(match throttle {
                Some(w) => PluginError::retryable(msg).with_retry_after(w.as_millis() as u64),
                None => {
                    let kind = last_error.map_or(ErrorKind::Retryable, |e| e.kind);
                    PluginError::of(kind, msg)
                }
            });
        }
        Ok(metrics)
    }

    /// The extensions of every machine, `extensions_concurrency` requests at a
    /// time; returns the lists read and the errors of the others.
    async fn list_extensions(
        &self,
        machines: &[Machine],
        deadline: Instant,
    ) -> (Vec<MachineExtensions>, Vec<ArmError>) {
        let sem = Arc::new(tokio::sync::Semaphore::new(self.s.extensions_concurrency));
        let mut set = tokio::task::JoinSet::new();
        let mut errors = Vec::new();
        for (i, m) in machines.iter().enumerate() {
            if !safe_id(&m.id) {
                errors.push(ArmError::Failed(PluginError::permanent(format!(
                    "machine id {:?} is not a resource id this plugin can request",
                    m.id
                ))));
                continue;
            }
            let url = format!(
                "{}{}/extensions?api-version={}",
                self.s.arm, m.id, self.s.machines_api_version
            );
            let name = m
                .name
                .clone()
                .unwrap_or_else(|| m.id.rsplit('/').next().unwrap_or("").to_string());
            let machine_id = m.id.clone();
            let arm = Arc::clone(&self.arm);
            // Taken here, in the machines' order, not inside the task: spawned tasks
            // start in any order, so with one permit the requests would too.
            let permit = Arc::clone(&sem).acquire_owned().await;
            set.spawn(async move {
                let _permit = permit;
                let what = format!("listing the extensions of {name}");
                let r = arm.list(url, &what, deadline).await.map(|raw| {
                    let (extensions, _skipped) = map::parse_items(raw);
                    MachineExtensions {
                        machine_id,
                        machine_name: name,
                        extensions,
                    }
                });
                (i, r)
            });
        }
        let mut done = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((i, Ok(list))) => done.push((i, list)),
                Ok((_, Err(e))) => errors.push(e),
                Err(e) => errors.push(ArmError::Failed(PluginError::retryable(format!(
                    "an extension listing task failed: {e}"
                )))),
            }
        }
        // Answer order is arbitrary: report in the machines' order.
        done.sort_by_key(|(i, _)| *i);
        (done.into_iter().map(|(_, l)| l).collect(), errors)
    }
}

/// A machine id safe to append to the ARM base URL as a path: it starts with
/// `/subscriptions/`, and holds only characters Azure allows in resource names
/// (no query, fragment, `..`, whitespace or percent signs).
pub fn safe_id(id: &str) -> bool {
    id.starts_with("/subscriptions/")
        && !id.contains("..")
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.()".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let arm = origin("https://management.azure.com");
        assert_eq!(
            arm,
            Some(("https".into(), "management.azure.com".into(), 443))
        );
        assert_eq!(
            origin("https://Management.Azure.com:443/subscriptions/x?y"),
            arm
        );
        assert_ne!(origin("https://management.azure.com.evil.example/x"), arm);
        assert_ne!(origin("http://management.azure.com/x"), arm);
        assert_ne!(origin("https://management.azure.com:8443/x"), arm);
        assert_eq!(origin("https://user@management.azure.com/x"), None);
        assert_eq!(
            origin("https://127.0.0.1:4000/a"),
            Some(("https".into(), "127.0.0.1".into(), 4000))
        );
        assert_eq!(
            origin("https://[::1]:4000/a"),
            Some(("https".into(), "[::1]".into(), 4000))
        );
        assert_eq!(origin("ftp://x/"), None);
        assert_eq!(origin("nonsense"), None);
    }

    #[test]
    fn ids_that_may_become_paths() {
        assert!(safe_id(
            "/subscriptions/s/resourceGroups/rg_1/providers/Microsoft.HybridCompute/machines/m-1.x"
        ));
        assert!(!safe_id("/subscriptions/s/../../other"));
        assert!(!safe_id("/subscriptions/s/x?api-version=1"));
        assert!(!safe_id("/subscriptions/s/x y"));
        assert!(!safe_id("/subscriptions/s/%2e%2e"));
        assert!(!safe_id("https://elsewhere/subscriptions/s"));
    }
}
