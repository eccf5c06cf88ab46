//! One collection: the HTTP conversations with Catalyst Center or the Meraki
//! Dashboard, and the bookkeeping of what failed.
//!
//! - **Catalyst Center** ("Authentication API",
//!   <https://developer.cisco.com/docs/dna-center/authentication-api/>): `POST
//!   /dna/system/api/v1/auth/token` with HTTP Basic answers `{"Token": "..."}`, sent
//!   as `X-Auth-Token` afterwards. A token lives one hour; it is reused for 55
//!   minutes, and a 401 on any call fetches a new one once and repeats the call.
//!   `/network-device` and `/device-health` are read page by page (`offset` starts at
//!   1, `limit` at most 500) until a page is short or `totalCount` is reached.
//! - **Meraki** ("Authorization", "Pagination", "Rate limit" in
//!   <https://developer.cisco.com/meraki/api-v1/>): `Authorization: Bearer <key>`;
//!   list operations follow the `Link: <...>; rel=next` header (RFC 8288) until
//!   there is none, only to the configured API host (the key is never sent
//!   elsewhere); requests are paced to `requests_per_second` (Meraki allows 10 per
//!   second per organization) and a 429 is retried after its `Retry-After` (1 s when
//!   absent) at most `max_retries` times, and only if the wait fits in
//!   `collect_timeout`: never a tight loop, never past the deadline.
//!
//! Every call is one "endpoint" of the collection: its success or failure becomes a
//! `cisco.api.up` point and, when it failed, a line of the instance's health reason.
//! One endpoint failing (a 500 from `client-health`) never loses the others.
//! Secrets (password, API key, token) go only into request headers: no log line,
//! error or health reason contains them.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tfo_plugin_api::{KeyValue, Metric};
use tfo_plugin_common::{
    auth::{basic_auth_value, bearer_auth_value},
    http::{ClientOptions, HttpClient, Method, Request, Response},
    retry::{describe, retry_after_ms},
};

use crate::{
    config::{is_safe_id, ApiType, Config, DnacConfig, MerakiConfig, Secret, UplinkSource},
    map::{self, MetricSet, Org},
};

/// How long a Catalyst Center token is reused (it is valid for 60 minutes).
pub const TOKEN_REUSE: Duration = Duration::from_secs(55 * 60);
/// Wait before retrying a 429 that carries no usable `Retry-After`.
pub const DEFAULT_RETRY_WAIT: Duration = Duration::from_secs(1);
/// Shortest wait before retrying a 429, even when `Retry-After: 0` (no tight loop).
pub const MIN_RETRY_WAIT: Duration = Duration::from_millis(100);
/// Bound on pages of one list (a server that never ends its `Link` chain).
pub const MAX_PAGES: usize = 10_000;

/// One failed call of the last collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Which call (`client-health`, `organization 123 devices/statuses`...).
    pub endpoint: String,
    /// What went wrong (status and body excerpt, or the transport error).
    pub message: String,
}

/// The outcome of the last collection, for `health`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Calls attempted.
    pub endpoints: usize,
    /// Calls that failed.
    pub failures: Vec<Failure>,
}

/// A cached Catalyst Center token.
struct Token {
    value: Secret,
    fetched: Instant,
}

/// Polls one controller or dashboard; owned by the plugin instance.
pub struct Collector {
    client: HttpClient,
    config: Config,
    token: Option<Token>,
    /// Set when the token call failed during the current collection, so the other
    /// endpoints fail at once instead of each retrying the login.
    auth_error: Option<String>,
    next_request: Option<tokio::time::Instant>,
    status: Option<Status>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn origin(url: &str) -> Option<(String, String, u16)> {
    let u: http::Uri = url.parse().ok()?;
    let scheme = u.scheme_str()?.to_ascii_lowercase();
    let host = u.host()?.to_ascii_lowercase();
    let port = u
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    Some((scheme, host, port))
}

impl Collector {
    /// Builds the HTTP client (CA file, TLS options); connects to nothing.
    pub fn new(config: Config) -> Result<Collector, String> {
        let client = HttpClient::new(&ClientOptions {
            timeout: config.timeout,
            ca_file: config.ca_file.clone(),
            insecure_skip_verify: config.tls_skip_verify,
            ..ClientOptions::default()
        })?;
        Ok(Collector {
            client,
            config,
            token: None,
            auth_error: None,
            next_request: None,
            status: None,
        })
    }

    /// The outcome of the last collection (`None` before the first).
    pub fn status(&self) -> Option<&Status> {
        self.status.as_ref()
    }

    /// One collection: every enabled call, bounded by `collect_timeout`.
    pub async fn collect(&mut self) -> Vec<Metric> {
        let deadline = Instant::now() + self.config.collect_timeout;
        let mut out = MetricSet::new(now_ns(), &self.config.labels);
        let mut status = Status::default();
        self.auth_error = None;
        match self.config.api_type {
            ApiType::Dnac => self.collect_dnac(deadline, &mut out, &mut status).await,
            ApiType::Meraki => self.collect_meraki(deadline, &mut out, &mut status).await,
        }
        for f in &status.failures {
            tracing::warn!(endpoint = %f.endpoint, "cisco: {}", f.message);
        }
        tracing::debug!(
            points = out.points(),
            endpoints = status.endpoints,
            failed = status.failures.len(),
            "cisco collection done"
        );
        self.status = Some(status);
        out.into_metrics()
    }

    fn record(
        &self,
        out: &mut MetricSet,
        status: &mut Status,
        endpoint: &str,
        org: Option<&Org>,
        result: Result<(), String>,
    ) {
        status.endpoints += 1;
        let mut a = vec![
            KeyValue::new("cisco.api", self.config.api_type.as_str()),
            KeyValue::new("cisco.endpoint", endpoint),
        ];
        if let Some(o) = org {
            a.push(KeyValue::new("organization.id", o.id.as_str()));
        }
        out.gauge("cisco.api.up", result.is_ok() as u8 as f64, a);
        if let Err(message) = result {
            let endpoint = match org {
                Some(o) => format!("organization {} {endpoint}", o.id),
                None => endpoint.to_string(),
            };
            status.failures.push(Failure { endpoint, message });
        }
    }

    /// Sends `req`, waiting out 429 answers (Retry-After, bounded retries, within the
    /// deadline). Any other answer is returned as it is.
    async fn send(
        &mut self,
        req: Request,
        deadline: Instant,
        max_retries: u32,
        pace: Option<f64>,
    ) -> Result<Response, String> {
        let mut retries = 0;
        loop {
            if let Some(rps) = pace {
                let now = tokio::time::Instant::now();
                if let Some(at) = self.next_request.filter(|at| *at > now) {
                    if at.into_std() > deadline {
                        return Err("collect_timeout reached (request pacing)".into());
                    }
                    tokio::time::sleep_until(at).await;
                }
                self.next_request =
                    Some(tokio::time::Instant::now() + Duration::from_secs_f64(1.0 / rps));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("collect_timeout reached before this call".into());
            }
            let resp = match tokio::time::timeout(left, self.client.send(req.clone())).await {
                Ok(r) => r?,
                Err(_) => return Err("collect_timeout reached during this call".into()),
            };
            if resp.status != 429 {
                return Ok(resp);
            }
            if retries >= max_retries {
                return Err(format!(
                    "{} (still rate limited after {retries} retries)",
                    describe(&resp)
                ));
            }
            let wait = retry_after_ms(&resp.headers, SystemTime::now())
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_RETRY_WAIT)
                .max(MIN_RETRY_WAIT);
            if Instant::now() + wait > deadline {
                return Err(format!(
                    "{}: Retry-After {:.1}s does not fit in collect_timeout",
                    describe(&resp),
                    wait.as_secs_f64()
                ));
            }
            retries += 1;
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                retries,
                "cisco: rate limited, waiting"
            );
            tokio::time::sleep(wait).await;
        }
    }

    // ----- Catalyst Center -----

    fn dnac(&self) -> &DnacConfig {
        self.config.dnac.as_ref().expect("validated: dnac block")
    }

    fn dnac_url(&self, path: &str) -> String {
        format!("{}{path}", self.dnac().endpoint.trim_end_matches('/'))
    }

    async fn dnac_auth(&mut self, deadline: Instant) -> Result<(), String> {
        if let Some(e) = &self.auth_error {
            return Err(e.clone());
        }
        let d = self.dnac();
        let req = Request::new(Method::POST, self.dnac_url("/dna/system/api/v1/auth/token"))
            .header(
                "Authorization",
                basic_auth_value(&d.username, d.password.expose()),
            )
            .header("Content-Type", "application/json")
            .header("Accept", "application/json");
        let result = async {
            let resp = self
                .send(req, deadline, crate::config::DEFAULT_MAX_RETRIES, None)
                .await?;
            if !(200..300).contains(&resp.status) {
                return Err(describe(&resp));
            }
            let body = map::parse_json(&resp.body, "token")?;
            match body.get("Token").and_then(Value::as_str) {
                Some(t) if !t.is_empty() => Ok(t.to_string()),
                _ => Err("token answer has no \"Token\"".to_string()),
            }
        }
        .await;
        match result {
            Ok(t) => {
                self.token = Some(Token {
                    value: Secret(t),
                    fetched: Instant::now(),
                });
                Ok(())
            }
            Err(e) => {
                let e = format!("authentication failed: {e}");
                self.token = None;
                self.auth_error = Some(e.clone());
                Err(e)
            }
        }
    }

    async fn dnac_get(&mut self, path: &str, deadline: Instant) -> Result<Value, String> {
        if self
            .token
            .as_ref()
            .is_none_or(|t| t.fetched.elapsed() >= TOKEN_REUSE)
        {
            self.dnac_auth(deadline).await?;
        }
        let mut reauthenticated = false;
        loop {
            let token = self
                .token
                .as_ref()
                .map(|t| t.value.clone())
                .unwrap_or_default();
            let req = Request::new(Method::GET, self.dnac_url(path))
                .header("X-Auth-Token", token.expose())
                .header("Accept", "application/json");
            let resp = self
                .send(req, deadline, crate::config::DEFAULT_MAX_RETRIES, None)
                .await?;
            if resp.status == 401 && !reauthenticated {
                // Expired or revoked token: log in again once and repeat the call.
                tracing::debug!("cisco: token refused, authenticating again");
                self.token = None;
                self.dnac_auth(deadline).await?;
                reauthenticated = true;
                continue;
            }
            if !(200..300).contains(&resp.status) {
                return Err(describe(&resp));
            }
            return map::parse_json(&resp.body, path.split('?').next().unwrap_or(path));
        }
    }

    /// Reads an offset/limit-paged list, handing each page to `f`.
    async fn dnac_pages(
        &mut self,
        path: &str,
        what: &str,
        deadline: Instant,
        out: &mut MetricSet,
        f: fn(&[Value], &mut MetricSet),
    ) -> Result<(), String> {
        let limit = self.dnac().page_size as usize;
        let mut offset = 1usize;
        let mut seen = 0u64;
        for _ in 0..MAX_PAGES {
            let body = self
                .dnac_get(&format!("{path}?offset={offset}&limit={limit}"), deadline)
                .await?;
            let (items, total) = map::dnac_list(&body, what)?;
            f(&items, out);
            seen += items.len() as u64;
            if items.len() < limit || total.is_some_and(|t| seen >= t) {
                return Ok(());
            }
            offset += limit;
        }
        Err(format!("more than {MAX_PAGES} pages"))
    }

    async fn collect_dnac(&mut self, deadline: Instant, out: &mut MetricSet, status: &mut Status) {
        let d = self.dnac().clone();
        if d.collect_devices {
            let r = self
                .dnac_pages(
                    "/dna/intent/api/v1/network-device",
                    "network-device",
                    deadline,
                    out,
                    map::dnac_network_devices,
                )
                .await;
            self.record(out, status, "network-device", None, r);
        }
        if d.collect_device_health {
            let r = self
                .dnac_pages(
                    "/dna/intent/api/v1/device-health",
                    "device-health",
                    deadline,
                    out,
                    map::dnac_device_health,
                )
                .await;
            self.record(out, status, "device-health", None, r);
        }
        if d.collect_network_health {
            let r = self
                .dnac_get("/dna/intent/api/v1/network-health", deadline)
                .await
                .map(|b| map::dnac_network_health(&b, out));
            self.record(out, status, "network-health", None, r);
        }
        if d.collect_client_health {
            let r = self
                .dnac_get("/dna/intent/api/v1/client-health", deadline)
                .await
                .map(|b| map::dnac_client_health(&b, out));
            self.record(out, status, "client-health", None, r);
        }
    }

    // ----- Meraki -----

    fn meraki(&self) -> &MerakiConfig {
        self.config
            .meraki
            .as_ref()
            .expect("validated: meraki block")
    }

    /// GETs `url` and every page its `Link: rel=next` chain names, concatenating the
    /// JSON arrays.
    async fn meraki_list(&mut self, url: String, deadline: Instant) -> Result<Vec<Value>, String> {
        let m = self.meraki().clone();
        let home = origin(&m.base_url).ok_or("invalid base_url")?;
        let mut url = url;
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let req = Request::new(Method::GET, url.clone())
                .header("Authorization", bearer_auth_value(m.api_key.expose()))
                .header("Accept", "application/json");
            let resp = self
                .send(req, deadline, m.max_retries, Some(m.requests_per_second))
                .await?;
            if !(200..300).contains(&resp.status) {
                return Err(describe(&resp));
            }
            let body = map::parse_json(&resp.body, "list")?;
            let Value::Array(items) = body else {
                return Err("answer is not a JSON array".into());
            };
            all.extend(items);
            let next = resp
                .headers
                .get_all("link")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(map::link_next);
            match next {
                None => return Ok(all),
                Some(n) => {
                    if origin(&n).as_ref() != Some(&home) {
                        return Err(format!(
                            "the next page is on another host ({n:?}); not sending the API key there"
                        ));
                    }
                    url = n;
                }
            }
        }
        Err(format!("more than {MAX_PAGES} pages"))
    }

    async fn collect_meraki(
        &mut self,
        deadline: Instant,
        out: &mut MetricSet,
        status: &mut Status,
    ) {
        let m = self.meraki().clone();
        let base = m.base_url.trim_end_matches('/').to_string();
        let orgs = if m.org_ids.is_empty() {
            let r = self
                .meraki_list(format!("{base}/organizations"), deadline)
                .await;
            match r {
                Ok(items) => {
                    self.record(out, status, "organizations", None, Ok(()));
                    map::meraki_organizations(&items)
                }
                Err(e) => {
                    self.record(out, status, "organizations", None, Err(e));
                    return;
                }
            }
        } else {
            m.org_ids
                .iter()
                .map(|id| Org {
                    id: id.clone(),
                    name: None,
                    api_enabled: true,
                })
                .collect()
        };
        for org in orgs {
            if !org.api_enabled {
                tracing::debug!(organization = %org.id, "cisco: API access disabled in this organization, skipped");
                continue;
            }
            if !is_safe_id(&org.id) {
                let e = format!("organization id {:?} cannot be used in a URL", org.id);
                self.record(out, status, "devices/statuses", Some(&org), Err(e));
                continue;
            }
            let url = format!(
                "{base}/organizations/{}/devices/statuses?perPage={}",
                org.id, m.per_page
            );
            let r = self
                .meraki_list(url, deadline)
                .await
                .map(|items| map::meraki_device_statuses(&items, &org, out));
            self.record(out, status, "devices/statuses", Some(&org), r);
            if m.collect_uplinks {
                let (path, name) = match m.uplinks {
                    UplinkSource::Appliance => {
                        ("appliance/uplink/statuses", "appliance/uplink/statuses")
                    }
                    UplinkSource::All => ("uplinks/statuses", "uplinks/statuses"),
                };
                let url = format!(
                    "{base}/organizations/{}/{path}?perPage={}",
                    org.id, m.per_page
                );
                let r = self
                    .meraki_list(url, deadline)
                    .await
                    .map(|items| map::meraki_uplinks(&items, &org, out));
                self.record(out, status, name, Some(&org), r);
            }
        }
    }
}
