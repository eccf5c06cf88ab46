//! One collection of the whole estate through the PVE REST API, and the auth that
//! goes with it.
//!
//! Calls, in this order and one at a time (PVE's API daemon is a small worker
//! pool; a monitoring agent should not add bursts to it):
//! 1. `POST /access/ticket` (ticket auth only, when there is no ticket yet or, at
//!    the start of a collection, it is older than `ticket_refresh` (default 90
//!    minutes; PVE tickets last two hours), and once more after a 401);
//! 2. `GET /cluster/status` (`collect_cluster`);
//! 3. `GET /cluster/resources`: every node, guest and storage of the cluster;
//! 4. `GET /cluster/ha/status/current` (`collect_cluster`);
//! 5. `GET /nodes/{node}/status` for each online node (`collect_node_status`);
//! 6. `GET /nodes/{node}/replication` for each online node (`collect_replication`).
//!
//! Auth (<https://pve.proxmox.com/wiki/Proxmox_VE_API#Authentication>): an API token
//! is sent as `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`; with a
//! password the plugin logs in with `POST /access/ticket` (form-encoded
//! `username`, `password`) and sends the ticket as the `PVEAuthCookie` cookie and
//! the `CSRFPreventionToken` header (PVE only requires the latter on writes; it is
//! harmless on reads and keeps the client correct if a write is ever added).
//!
//! Failures: a failed call is recorded (the plugin's health names it) and the
//! collection goes on with the other calls, so one node answering 500 costs only
//! that node's status. A 429 or 503 with `Retry-After` stops the collection at once
//! and no request is sent again before the time the server asked for (the next
//! `collect` calls return a retryable error carrying the remaining delay): no tight
//! loop. A 401 after a fresh login, or a refused login, stops the collection too.
//! Only when nothing at all could be collected is `collect` an error.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tfo_plugin_api::{ErrorKind, HealthReport, HealthState, Metric, PluginError};
use tfo_plugin_common::{
    http::{HttpClient, Method, Request, Response},
    retry,
};

use crate::{
    config::{Auth, Settings},
    map::{self, MetricSet, Resources},
};

/// A login ticket and when it was issued.
struct Ticket {
    ticket: String,
    csrf: String,
    at: Instant,
}

/// Why a call failed.
#[derive(Debug)]
enum CallError {
    /// The server asked us to slow down (429, or 503 with Retry-After).
    RateLimited(PluginError),
    /// Credentials refused (after a fresh login for ticket auth).
    Auth(PluginError),
    /// Any other failure of this call only.
    Other(PluginError),
}

impl CallError {
    fn error(&self) -> &PluginError {
        match self {
            CallError::RateLimited(e) | CallError::Auth(e) | CallError::Other(e) => e,
        }
    }
}

/// What the last collection achieved, for health.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// API calls attempted.
    pub calls: usize,
    /// `METHOD path: error` of each failed call.
    pub failures: Vec<String>,
    /// Points produced.
    pub points: usize,
}

/// Collects from one Proxmox VE cluster.
pub struct Collector {
    settings: Settings,
    http: HttpClient,
    ticket: Option<Ticket>,
    not_before: Option<Instant>,
    last: Option<Outcome>,
    cluster: Option<String>,
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// `application/x-www-form-urlencoded` value encoding (WHATWG URL standard: every
/// byte but `A-Za-z0-9*-._` as `%XX`, space as `+`).
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Percent-encodes one path segment (node names are plain, but never trust it).
fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Collector {
    /// A collector; builds the HTTP client (CA file read here) but sends nothing.
    pub fn new(settings: Settings) -> Result<Collector, String> {
        let http = HttpClient::new(&settings.client)?;
        Ok(Collector {
            settings,
            http,
            ticket: None,
            not_before: None,
            last: None,
            cluster: None,
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
                "{} of {} Proxmox API call{} failed: {}",
                o.failures.len(),
                o.calls,
                if o.calls == 1 { "" } else { "s" },
                o.failures.join("; ")
            )),
        }
    }

    fn auth_headers(&self, req: Request) -> Request {
        match (&self.settings.auth, &self.ticket) {
            (Auth::Token { full_id, secret }, _) => req.header(
                "Authorization",
                format!("PVEAPIToken={full_id}={}", secret.0),
            ),
            (Auth::Ticket { .. }, Some(t)) => req
                .header("Cookie", format!("PVEAuthCookie={}", t.ticket))
                .header("CSRFPreventionToken", t.csrf.clone()),
            (Auth::Ticket { .. }, None) => req,
        }
    }

    async fn send(&self, req: Request, deadline: Instant) -> Result<Response, CallError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CallError::Other(PluginError::retryable(
                "collect_timeout reached before this call",
            )));
        }
        match tokio::time::timeout(left, self.http.send(req)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(CallError::Other(retry::transport(e))),
            Err(_) => Err(CallError::Other(PluginError::retryable(
                "collect_timeout reached during this call",
            ))),
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

    /// `POST /access/ticket`.
    async fn login(&mut self, deadline: Instant) -> Result<(), CallError> {
        let Auth::Ticket { user, password } = &self.settings.auth else {
            return Ok(());
        };
        self.ticket = None;
        let body = format!(
            "username={}&password={}",
            form_encode(user),
            form_encode(&password.0)
        );
        let req = Request::new(
            Method::POST,
            format!("{}/access/ticket", self.settings.base),
        )
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json")
        .body(body);
        let resp = self.send(req, deadline).await?;
        // A refused login is 401 with no body.
        Self::check(&resp).map_err(|e| match e {
            CallError::Auth(_) => CallError::Auth(PluginError::permanent(format!(
                "login as {user} refused (HTTP {})",
                resp.status
            ))),
            other => other,
        })?;
        let v: Value = serde_json::from_slice(&resp.body).map_err(|e| {
            CallError::Other(PluginError::retryable(format!(
                "login answer is not JSON: {e}"
            )))
        })?;
        let d = map::data(&v);
        match (
            d.get("ticket").and_then(Value::as_str),
            d.get("CSRFPreventionToken").and_then(Value::as_str),
        ) {
            (Some(t), Some(c)) if !t.is_empty() => {
                self.ticket = Some(Ticket {
                    ticket: t.to_string(),
                    csrf: c.to_string(),
                    at: Instant::now(),
                });
                tracing::debug!(user = %user, "proxmox: logged in");
                Ok(())
            }
            _ => Err(CallError::Other(PluginError::retryable(
                "login answer has no data.ticket / data.CSRFPreventionToken",
            ))),
        }
    }

    /// `GET {base}{path}`, decoded; with ticket auth, logs in first when there is no
    /// ticket and once more after a 401 (an expired or revoked ticket).
    async fn get(&mut self, path: &str, deadline: Instant) -> Result<Value, CallError> {
        let ticket_auth = matches!(self.settings.auth, Auth::Ticket { .. });
        let mut relogged = false;
        loop {
            if ticket_auth && self.ticket.is_none() {
                self.login(deadline).await?;
                relogged = true;
            }
            let req = self.auth_headers(
                Request::new(Method::GET, format!("{}{path}", self.settings.base))
                    .header("Accept", "application/json"),
            );
            let resp = self.send(req, deadline).await?;
            match Self::check(&resp) {
                Err(CallError::Auth(_)) if ticket_auth && !relogged => {
                    self.ticket = None;
                    continue;
                }
                r => r?,
            }
            return serde_json::from_slice(&resp.body).map_err(|e| {
                CallError::Other(PluginError::retryable(format!("answer is not JSON: {e}")))
            });
        }
    }

    /// One collection. `Err` only when nothing could be collected.
    pub async fn collect(&mut self) -> Result<Vec<Metric>, PluginError> {
        if let Some(t) = self.not_before {
            let left = t.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                return Err(PluginError::retryable(format!(
                    "rate limited by the Proxmox API: next request in {}s",
                    left.as_secs().max(1)
                ))
                .with_retry_after(left.as_millis() as u64));
            }
            self.not_before = None;
        }
        let deadline = Instant::now() + self.settings.collect_timeout;
        // An old ticket is dropped here, so the first call of this collection logs
        // in again (checked once per collection: a login never interrupts one).
        if self
            .ticket
            .as_ref()
            .is_some_and(|t| t.at.elapsed() >= self.settings.ticket_refresh)
        {
            self.ticket = None;
        }
        let collect = self.settings.collect;
        let mut set = MetricSet::new(&self.settings.labels, now_ns());
        let mut outcome = Outcome::default();
        let mut stop: Option<CallError> = None;

        // The plan grows once /cluster/resources tells us which nodes are online.
        let mut plan: Vec<Step> = Vec::new();
        if collect.cluster {
            plan.push(Step::ClusterStatus);
        }
        plan.push(Step::Resources);
        if collect.cluster {
            plan.push(Step::Ha);
        }
        let mut i = 0;
        while i < plan.len() {
            let step = plan[i].clone();
            i += 1;
            let path = step.path();
            outcome.calls += 1;
            let res = self.get(&path, deadline).await;
            let mapped = match res {
                Ok(body) => match &step {
                    Step::ClusterStatus => map::cluster_status(&mut set, &body).map(|name| {
                        self.cluster = name;
                    }),
                    Step::Resources => {
                        Resources::parse(&body, self.settings.node.as_deref()).map(|r| {
                            map::resources(&mut set, &r, &collect);
                            let nodes = r.online_nodes();
                            if collect.node_status {
                                plan.extend(nodes.iter().cloned().map(Step::NodeStatus));
                            }
                            if collect.replication {
                                plan.extend(nodes.into_iter().map(Step::Replication));
                            }
                        })
                    }
                    Step::NodeStatus(n) => map::node_status(&mut set, n, &body),
                    Step::Ha => map::ha_status(&mut set, &body),
                    Step::Replication(n) => map::replication(&mut set, n, &body),
                },
                Err(e) => {
                    let fatal = matches!(e, CallError::RateLimited(_) | CallError::Auth(_));
                    outcome
                        .failures
                        .push(format!("GET {path}: {}", e.error().message));
                    tracing::warn!(path = %path, error = %e.error().message, "proxmox API call failed");
                    if fatal {
                        stop = Some(e);
                        break;
                    }
                    continue;
                }
            };
            if let Err(msg) = mapped {
                outcome.failures.push(format!("GET {path}: {msg}"));
                tracing::warn!(path = %path, error = %msg, "proxmox API answer not understood");
            }
        }
        if let Some(CallError::RateLimited(e)) = &stop {
            let wait = e
                .retry_after_ms
                .into_option()
                .map(Duration::from_millis)
                .unwrap_or(Duration::from_secs(60));
            self.not_before = Some(Instant::now() + wait);
        }
        if !plan.is_empty() && i < plan.len() {
            outcome
                .failures
                .push(format!("{} call(s) skipped after that", plan.len() - i));
        }
        outcome.points = set.points();
        let cluster = self.cluster.clone();
        self.last = Some(outcome.clone());
        let mut metrics = set.into_metrics();
        if let Some(c) = cluster {
            // The cluster name on every point, so two clusters never mix.
            for m in metrics.iter_mut() {
                for p in m.points.iter_mut() {
                    if !p.attributes.iter().any(|kv| kv.key == "proxmox.cluster") {
                        p.attributes
                            .push(tfo_plugin_api::KeyValue::new("proxmox.cluster", c.as_str()));
                    }
                }
            }
        }
        if outcome.points == 0 && !outcome.failures.is_empty() {
            let err = match stop {
                Some(e) => e.error().clone(),
                None => PluginError::of(ErrorKind::Retryable, outcome.failures.join("; ")),
            };
            return Err(err);
        }
        Ok(metrics)
    }
}

/// One API call of a collection.
#[derive(Debug, Clone)]
enum Step {
    ClusterStatus,
    Resources,
    NodeStatus(String),
    Ha,
    Replication(String),
}

impl Step {
    fn path(&self) -> String {
        match self {
            Step::ClusterStatus => "/cluster/status".into(),
            Step::Resources => "/cluster/resources".into(),
            Step::NodeStatus(n) => format!("/nodes/{}/status", segment(n)),
            Step::Ha => "/cluster/ha/status/current".into(),
            Step::Replication(n) => format!("/nodes/{}/replication", segment(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_follows_whatwg() {
        assert_eq!(form_encode("root@pam"), "root%40pam");
        assert_eq!(form_encode("a b&c=d+é"), "a+b%26c%3Dd%2B%C3%A9");
        assert_eq!(form_encode("A-z_0.9*"), "A-z_0.9*");
        assert_eq!(segment("pve 1/x"), "pve%201%2Fx");
    }
}
