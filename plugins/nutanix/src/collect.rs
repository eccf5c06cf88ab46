//! One collection: the paged list calls, the stats, partial failures, rate limits
//! and health.
//!
//! Prism Central (v3), one request at a time, in this order:
//! 1. `POST /api/nutanix/v3/clusters/list`, `/hosts/list`, `/vms/list` with
//!    `{"kind": K, "length": page_size, "offset": M}`, paged until
//!    `metadata.total_matches` entities were read (or a short page);
//! 2. `POST /api/nutanix/v3/groups` per kind with `{"entity_type": "cluster" |
//!    "host" | "mh_vm", "group_member_attributes": [...stats...],
//!    "group_member_count": page_size, "group_member_offset": M}`, paged until
//!    `filtered_entity_count`; the stats join the inventory by UUID.
//!
//! Prism Element (v2): `GET /PrismGateway/services/rest/v2.0/clusters/`,
//! `.../v2.0/hosts/` and `.../v1/vms/`, each with `?count=page_size&page=P`
//! (1-based) until `metadata.grand_total_entities`; stats are embedded.
//!
//! Every request carries HTTP basic auth (RFC 7617) and `Accept:
//! application/json`. A failed call is recorded (health names it) and the
//! collection goes on; a 429 (or a 503 with `Retry-After`) stops it and nothing is
//! sent before the delay the server asked for; a 401 stops it. Only when nothing
//! could be collected is `collect` an error.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::{json, Value};
use tfo_plugin_api::{ErrorKind, HealthReport, HealthState, Metric, PluginError};
use tfo_plugin_common::{
    auth::basic_auth_value,
    http::{HttpClient, Method, Request, Response},
    retry,
};

use crate::{
    config::{Api, Settings},
    map::{self, Entity, Kind, MetricSet},
};

/// Most pages read from one list, whatever the server says (a bound against a
/// server that never ends a listing).
pub const MAX_PAGES: u64 = 10_000;

#[derive(Debug)]
enum CallError {
    RateLimited(PluginError),
    Auth(PluginError),
    Other(PluginError),
}

impl CallError {
    fn error(&self) -> &PluginError {
        match self {
            CallError::RateLimited(e) | CallError::Auth(e) | CallError::Other(e) => e,
        }
    }
    fn stops(&self) -> bool {
        matches!(self, CallError::RateLimited(_) | CallError::Auth(_))
    }
}

/// What the last collection achieved, for health.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// HTTP requests sent.
    pub calls: usize,
    /// `what: error` of each failure.
    pub failures: Vec<String>,
    /// Points produced.
    pub points: usize,
}

/// Collects from one Prism Central or Prism Element.
pub struct Collector {
    settings: Settings,
    http: HttpClient,
    auth: String,
    not_before: Option<Instant>,
    last: Option<Outcome>,
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// State of one collection.
struct Run {
    deadline: Instant,
    outcome: Outcome,
    stop: Option<CallError>,
}

impl Run {
    fn fail(&mut self, what: &str, e: CallError) {
        tracing::warn!(call = %what, error = %e.error().message, "nutanix API call failed");
        self.outcome
            .failures
            .push(format!("{what}: {}", e.error().message));
        if e.stops() {
            self.stop = Some(e);
        }
    }
}

impl Collector {
    /// A collector; builds the HTTP client (CA file read here) but sends nothing.
    pub fn new(settings: Settings) -> Result<Collector, String> {
        let http = HttpClient::new(&settings.client)?;
        let auth = basic_auth_value(&settings.username, &settings.password.0);
        Ok(Collector {
            settings,
            http,
            auth,
            not_before: None,
            last: None,
        })
    }

    /// The last collection's outcome (`None` before the first).
    pub fn last(&self) -> Option<&Outcome> {
        self.last.as_ref()
    }

    /// Health from the last collection.
    pub fn health(&self) -> HealthReport {
        match &self.last {
            None => HealthReport {
                state: HealthState::Initializing,
                reason: "no collection yet".into(),
            },
            Some(o) if o.failures.is_empty() => HealthReport::healthy(),
            Some(o) => HealthReport::unhealthy(format!(
                "{} Nutanix API failure{} ({} request{}): {}",
                o.failures.len(),
                if o.failures.len() == 1 { "" } else { "s" },
                o.calls,
                if o.calls == 1 { "" } else { "s" },
                o.failures.join("; ")
            )),
        }
    }

    fn check(resp: &Response) -> Result<(), CallError> {
        match retry::classify(resp) {
            Ok(()) => Ok(()),
            Err(e) if resp.status == 429 => Err(CallError::RateLimited(e)),
            Err(e) if resp.status == 503 && e.retry_after_ms.is_some() => {
                Err(CallError::RateLimited(e))
            }
            Err(e) if resp.status == 401 => Err(CallError::Auth(PluginError::permanent(format!(
                "authentication refused ({})",
                e.message
            )))),
            Err(e) => Err(CallError::Other(e)),
        }
    }

    async fn call(
        &self,
        run: &mut Run,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let left = run.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CallError::Other(PluginError::retryable(
                "collect_timeout reached before this call",
            )));
        }
        let mut req = Request::new(method, format!("{}{path}", self.settings.base))
            .header("Authorization", self.auth.clone())
            .header("Accept", "application/json");
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        run.outcome.calls += 1;
        let resp = match tokio::time::timeout(left, self.http.send(req)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(CallError::Other(retry::transport(e))),
            Err(_) => {
                return Err(CallError::Other(PluginError::retryable(
                    "collect_timeout reached during this call",
                )))
            }
        };
        Self::check(&resp)?;
        serde_json::from_slice(&resp.body).map_err(|e| {
            CallError::Other(PluginError::retryable(format!("answer is not JSON: {e}")))
        })
    }

    /// Every entity of a v3 list, page by page.
    async fn v3_list(&self, run: &mut Run, kind: Kind) -> Vec<Entity> {
        let path = format!("/api/nutanix/v3/{}s/list", kind.v3());
        let page = u64::from(self.settings.page_size);
        let mut out = Vec::new();
        let mut offset = 0u64;
        for _ in 0..MAX_PAGES {
            let body = json!({"kind": kind.v3(), "length": page, "offset": offset});
            let what = format!("POST {path} offset {offset}");
            let v = match self.call(run, Method::POST, &path, Some(&body)).await {
                Ok(v) => v,
                Err(e) => {
                    run.fail(&what, e);
                    break;
                }
            };
            let list = match map::entities(&v) {
                Ok(l) => l,
                Err(msg) => {
                    run.fail(&what, CallError::Other(PluginError::retryable(msg)));
                    break;
                }
            };
            out.extend(list.iter().filter_map(|e| map::v3_entity(kind, e)));
            offset += list.len() as u64;
            let done = match map::v3_total(&v) {
                Some(total) => offset >= total,
                None => (list.len() as u64) < page,
            };
            if done || list.is_empty() {
                break;
            }
        }
        out
    }

    /// Stats of every entity of `kind` from the v3 groups API, by UUID.
    async fn v3_stats(&self, run: &mut Run, kind: Kind) -> map::StatsByUuid {
        let path = "/api/nutanix/v3/groups";
        let page = u64::from(self.settings.page_size);
        let attrs: Vec<Value> = map::stat_names(kind)
            .into_iter()
            .map(|a| json!({"attribute": a}))
            .collect();
        let mut out = BTreeMap::new();
        let mut offset = 0u64;
        for _ in 0..MAX_PAGES {
            let mut body = json!({
                "entity_type": kind.group_type(),
                "group_member_attributes": attrs,
                "group_member_count": page,
                "group_member_offset": offset,
            });
            if kind == Kind::Vm {
                // Controller VMs are not in vms/list; do not page through them.
                body["filter_criteria"] = json!("is_cvm==0");
            }
            let what = format!("POST {path} {} offset {offset}", kind.group_type());
            let v = match self.call(run, Method::POST, path, Some(&body)).await {
                Ok(v) => v,
                Err(e) => {
                    run.fail(&what, e);
                    break;
                }
            };
            let (stats, total) = match map::v3_groups(&v) {
                Ok(x) => x,
                Err(msg) => {
                    run.fail(&what, CallError::Other(PluginError::retryable(msg)));
                    break;
                }
            };
            let n = stats.len() as u64;
            out.extend(stats);
            offset += n;
            let done = match total {
                Some(t) => offset >= t,
                None => n < page,
            };
            if done || n == 0 {
                break;
            }
        }
        out
    }

    /// Every entity of a Prism Element list, page by page.
    async fn v2_list(&self, run: &mut Run, kind: Kind) -> Vec<Entity> {
        let path = match kind {
            Kind::Cluster => "/PrismGateway/services/rest/v2.0/clusters/",
            Kind::Host => "/PrismGateway/services/rest/v2.0/hosts/",
            Kind::Vm => "/PrismGateway/services/rest/v1/vms/",
        };
        let count = u64::from(self.settings.page_size);
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let full = format!("{path}?count={count}&page={page}");
            let what = format!("GET {full}");
            let v = match self.call(run, Method::GET, &full, None).await {
                Ok(v) => v,
                Err(e) => {
                    run.fail(&what, e);
                    break;
                }
            };
            let list = match map::entities(&v) {
                Ok(l) => l,
                Err(msg) => {
                    run.fail(&what, CallError::Other(PluginError::retryable(msg)));
                    break;
                }
            };
            out.extend(list.iter().filter_map(|e| map::v2_entity(kind, e)));
            let done = match map::v2_total(&v) {
                Some(total) => page * count >= total,
                None => (list.len() as u64) < count,
            };
            if done || list.is_empty() {
                break;
            }
        }
        if !self.settings.stats {
            for e in &mut out {
                e.stats.clear();
            }
        }
        out
    }

    /// One collection. `Err` only when nothing could be collected.
    pub async fn collect(&mut self) -> Result<Vec<Metric>, PluginError> {
        if let Some(t) = self.not_before {
            let left = t.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                return Err(PluginError::retryable(format!(
                    "rate limited by the Nutanix API: next request in {}s",
                    left.as_secs().max(1)
                ))
                .with_retry_after(left.as_millis() as u64));
            }
            self.not_before = None;
        }
        let mut run = Run {
            deadline: Instant::now() + self.settings.collect_timeout,
            outcome: Outcome::default(),
            stop: None,
        };
        let s = &self.settings;
        let kinds: Vec<Kind> = [
            (Kind::Cluster, s.clusters),
            (Kind::Host, s.hosts),
            (Kind::Vm, s.vms),
        ]
        .into_iter()
        .filter_map(|(k, on)| on.then_some(k))
        .collect();
        let mut found: BTreeMap<Kind, Vec<Entity>> = BTreeMap::new();
        for &kind in &kinds {
            if run.stop.is_some() {
                break;
            }
            let list = match s.api {
                Api::V3 => self.v3_list(&mut run, kind).await,
                Api::V2 => self.v2_list(&mut run, kind).await,
            };
            found.insert(kind, list);
        }
        if s.api == Api::V3 && s.stats {
            for &kind in &kinds {
                if run.stop.is_some() {
                    break;
                }
                if found.get(&kind).is_none_or(Vec::is_empty) {
                    continue;
                }
                let stats = self.v3_stats(&mut run, kind).await;
                if let Some(list) = found.get_mut(&kind) {
                    for e in list.iter_mut() {
                        if let Some(st) = stats.get(&e.uuid) {
                            e.stats.clone_from(st);
                        }
                    }
                }
            }
        }
        if let Some(CallError::RateLimited(e)) = &run.stop {
            let wait = e
                .retry_after_ms
                .into_option()
                .map(Duration::from_millis)
                .unwrap_or(Duration::from_secs(60));
            self.not_before = Some(Instant::now() + wait);
            run.outcome
                .failures
                .push("the rest of this collection was skipped".to_string());
        }
        let clusters: BTreeMap<String, String> = found
            .get(&Kind::Cluster)
            .into_iter()
            .flatten()
            .filter_map(|c| c.name.clone().map(|n| (c.uuid.clone(), n)))
            .collect();
        let mut set = MetricSet::new(&self.settings.labels, now_ns());
        for (kind, list) in &found {
            for e in list {
                map::entity(&mut set, *kind, e, &clusters);
            }
        }
        run.outcome.points = set.points();
        self.last = Some(run.outcome.clone());
        if run.outcome.points == 0 && !run.outcome.failures.is_empty() {
            return Err(match run.stop {
                Some(e) => e.error().clone(),
                None => PluginError::of(ErrorKind::Retryable, run.outcome.failures.join("; ")),
            });
        }
        Ok(set.into_metrics())
    }
}
