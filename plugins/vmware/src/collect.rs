//! One collection: the vim25 session, the inventory read through a container view
//! and the property collector, the performance counters read with `QueryPerf`, and
//! the mapping of both to metrics.
//!
//! - [`Collector`] keeps the session between collections (`vmware_soap_session`
//!   cookie, the container view, the counter ids resolved once per session). A
//!   `NotAuthenticated` fault (the session expired, vCenter restarted) drops the
//!   session, logs in again and repeats the call, once. `InvalidLogin` is permanent
//!   and says so.
//! - Inventory failure fails the collection; a performance failure does not: the
//!   inventory metrics are still returned and health names what failed.
//! - [`build_metrics`] is the pure mapping from the [`Inventory`] and the
//!   performance samples to metrics, unit-tested without a server.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{SystemTime, UNIX_EPOCH},
};

use tfo_plugin_api::{HealthReport, KeyValue, Metric, PluginError};
use tfo_plugin_common::{
    http::{ClientOptions, HttpClient, Method, Request},
    retry,
};

use crate::{
    config::Settings,
    soap::{self, Fault, MoRef, ObjectContent, PerfCounter, PerfEntity, PerfQuery, ResponseError},
};

/// Name of the session cookie vCenter and ESXi set on `Login`.
pub const SESSION_COOKIE: &str = "vmware_soap_session";

/// Real-time sampling interval of VMs and hosts (the provider's refresh rate).
pub const REALTIME_INTERVAL: i32 = 20;

/// Types the container view holds: the four measured ones plus what their
/// identity is resolved through (folders, datacenters, standalone compute
/// resources).
pub const VIEW_TYPES: &[&str] = &[
    "Folder",
    "Datacenter",
    "ComputeResource",
    "ClusterComputeResource",
    "HostSystem",
    "VirtualMachine",
    "Datastore",
];

const PARENT_PROPS: &[&str] = &["name", "parent"];
const CLUSTER_PROPS: &[&str] = &[
    "name",
    "parent",
    "summary.numHosts",
    "summary.numEffectiveHosts",
    "summary.totalCpu",
    "summary.effectiveCpu",
    "summary.totalMemory",
    "summary.effectiveMemory",
];
const HOST_PROPS: &[&str] = &[
    "name",
    "parent",
    "runtime.connectionState",
    "runtime.powerState",
    "runtime.inMaintenanceMode",
    "summary.hardware.cpuMhz",
    "summary.hardware.numCpuCores",
    "summary.hardware.numCpuThreads",
    "summary.hardware.memorySize",
    "summary.quickStats.overallCpuUsage",
    "summary.quickStats.overallMemoryUsage",
    "summary.quickStats.uptime",
];
const VM_PROPS: &[&str] = &[
    "name",
    "parent",
    "runtime.powerState",
    "runtime.host",
    "summary.config.template",
    "summary.config.numCpu",
    "summary.config.memorySizeMB",
    "summary.quickStats.overallCpuUsage",
    "summary.quickStats.guestMemoryUsage",
    "summary.quickStats.hostMemoryUsage",
    "summary.quickStats.uptimeSeconds",
    "summary.storage.committed",
    "summary.storage.uncommitted",
];
const DATASTORE_PROPS: &[&str] = &[
    "name",
    "parent",
    "summary.capacity",
    "summary.freeSpace",
    "summary.uncommitted",
    "summary.type",
    "summary.accessible",
];

/// The property specs of the inventory query.
pub fn inventory_specs() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("Folder", PARENT_PROPS),
        ("Datacenter", PARENT_PROPS),
        ("ComputeResource", PARENT_PROPS),
        ("ClusterComputeResource", CLUSTER_PROPS),
        ("HostSystem", HOST_PROPS),
        ("VirtualMachine", VM_PROPS),
        ("Datastore", DATASTORE_PROPS),
    ]
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Why a SOAP call failed.
#[derive(Debug, Clone)]
pub enum CallError {
    /// No HTTP answer (connect, TLS, timeout).
    Transport(String),
    /// An HTTP error status without a SOAP fault, classified.
    Http(PluginError),
    /// A SOAP fault.
    Fault(Fault),
    /// An answer we could not read.
    Malformed(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Transport(m) => f.write_str(m),
            CallError::Http(e) => f.write_str(&e.message),
            CallError::Fault(x) => write!(f, "SOAP fault {x}"),
            CallError::Malformed(m) => write!(f, "unexpected response: {m}"),
        }
    }
}

impl CallError {
    /// The host's view: faults about credentials or permissions are permanent,
    /// the rest retryable (an HTTP status keeps its own classification).
    pub fn to_plugin_error(&self, what: &str) -> PluginError {
        match self {
            CallError::Http(e) => {
                let mut e = e.clone();
                e.message = format!("{what}: {}", e.message).into();
                e
            }
            CallError::Fault(f)
                if matches!(
                    f.kind.as_deref(),
                    Some("InvalidLogin") | Some("NoPermission") | Some("NotAuthenticated")
                ) =>
            {
                PluginError::permanent(format!("{what}: {self}"))
            }
            _ => PluginError::retryable(format!("{what}: {self}")),
        }
    }
}

impl From<ResponseError> for CallError {
    fn from(e: ResponseError) -> Self {
        match e {
            ResponseError::Fault(f) => CallError::Fault(f),
            ResponseError::Malformed(m) => CallError::Malformed(m),
        }
    }
}

/// The `vmware_soap_session` value of a response's `Set-Cookie` headers.
pub fn session_cookie(headers: &tfo_plugin_common::http::HeaderMap) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            let first = v.split(';').next()?.trim();
            let (name, value) = first.split_once('=')?;
            (name.trim() == SESSION_COOKIE && !value.is_empty()).then(|| value.to_string())
        })
        .next()
}

/// A logged-in session.
#[derive(Debug)]
struct Session {
    cookie: String,
    content: soap::ServiceContent,
    soap_action: String,
    view: MoRef,
    /// `group.name.rollup` -> counter, resolved once per session.
    counters: Option<HashMap<String, PerfCounter>>,
}

/// What the last collection found, for health.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// Collections done.
    pub collections: u64,
    /// Why the inventory could not be read, if it could not.
    pub inventory_error: Option<String>,
    /// Why the performance counters could not be read, if they could not.
    pub performance_error: Option<String>,
    /// Configured counters the server does not have.
    pub unknown_counters: Vec<String>,
    /// Logins done (the first one plus re-logins after NotAuthenticated).
    pub logins: u64,
}

/// One inventory object as read.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Every object of the view, by reference.
    pub objects: BTreeMap<MoRef, ObjectContent>,
}

impl Inventory {
    /// Builds it from property collector objects.
    pub fn new(objects: Vec<ObjectContent>) -> Self {
        Inventory {
            objects: objects.into_iter().map(|o| (o.obj.clone(), o)).collect(),
        }
    }

    fn name(&self, r: &MoRef) -> Option<&str> {
        self.objects.get(r).and_then(|o| o.text("name"))
    }

    /// The datacenter above an object (through its parents).
    pub fn datacenter_of(&self, r: &MoRef) -> Option<&str> {
        let mut cur = r.clone();
        for _ in 0..64 {
            if cur.kind == "Datacenter" {
                return self.name(&cur);
            }
            cur = self.objects.get(&cur)?.moref("parent")?;
        }
        None
    }

    /// The cluster a host belongs to, if any.
    pub fn cluster_of_host(&self, host: &MoRef) -> Option<&str> {
        let parent = self.objects.get(host)?.moref("parent")?;
        (parent.kind == "ClusterComputeResource")
            .then(|| self.name(&parent))
            .flatten()
    }

    /// Objects of one type.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a ObjectContent> + 'a {
        self.objects.values().filter(move |o| o.obj.kind == kind)
    }

    /// Objects that sit in one of `datacenters` (all when empty). VMs follow
    /// their host when they have one.
    pub fn in_scope(&self, o: &ObjectContent, datacenters: &[String]) -> bool {
        if datacenters.is_empty() {
            return true;
        }
        let dc = o
            .moref("runtime.host")
            .and_then(|h| self.datacenter_of(&h))
            .or_else(|| self.datacenter_of(&o.obj));
        dc.is_some_and(|d| datacenters.iter().any(|x| x == d))
    }

    /// True for a VM whose real-time statistics exist (powered on, not a
    /// template).
    pub fn vm_has_stats(o: &ObjectContent) -> bool {
        o.text("runtime.powerState") == Some("poweredOn")
            && o.boolean("summary.config.template") != Some(true)
    }

    /// True for a host whose real-time statistics exist (connected, powered on).
    pub fn host_has_stats(o: &ObjectContent) -> bool {
        o.text("runtime.connectionState") == Some("connected")
            && o.text("runtime.powerState")
                .is_none_or(|p| p == "poweredOn")
    }
}

/// Runs collections against one vCenter or ESXi.
pub struct Collector {
    settings: Settings,
    http: HttpClient,
    session: Option<Session>,
    status: Status,
    warned: HashSet<String>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("url", &self.settings.url)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Collector {
    /// Prepares the HTTP client (TLS trust); connects nothing.
    pub fn new(settings: Settings) -> Result<Self, String> {
        let http = HttpClient::new(&ClientOptions {
            timeout: settings.timeout,
            ca_file: settings.ca_file.clone(),
            insecure_skip_verify: settings.insecure_skip_verify,
            ..ClientOptions::default()
        })?;
        Ok(Collector {
            settings,
            http,
            session: None,
            status: Status::default(),
            warned: HashSet::new(),
        })
    }

    /// What the last collection found.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Health from the last collection.
    pub fn health(&self) -> HealthReport {
        let s = &self.status;
        if let Some(e) = &s.inventory_error {
            return HealthReport::unhealthy(format!("inventory: {e}"));
        }
        if let Some(e) = &s.performance_error {
            return HealthReport::unhealthy(format!(
                "inventory collected; performance counters failed: {e}"
            ));
        }
        HealthReport::healthy()
    }

    async fn post(
        &self,
        body: String,
        cookie: Option<&str>,
        soap_action: &str,
    ) -> Result<tfo_plugin_common::http::Response, CallError> {
        let mut req = Request::new(Method::POST, self.settings.url.clone())
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", soap_action)
            .body(body.into_bytes());
        if let Some(c) = cookie {
            req = req.header("Cookie", format!("{SESSION_COOKIE}={c}"));
        }
        self.http.send(req).await.map_err(CallError::Transport)
    }

    /// Reads a response: a SOAP fault (HTTP 500) is a fault, any other non-200
    /// status is classified as HTTP, and a 200 is parsed with `parse`.
    fn read<T>(
        resp: &tfo_plugin_common::http::Response,
        parse: impl Fn(&[u8]) -> Result<T, ResponseError>,
    ) -> Result<T, CallError> {
        match parse(&resp.body) {
            Err(ResponseError::Fault(f)) => Err(CallError::Fault(f)),
            Ok(v) if resp.status == 200 => Ok(v),
            Err(ResponseError::Malformed(m)) if resp.status == 200 => Err(CallError::Malformed(m)),
            _ => Err(CallError::Http(match retry::classify(resp) {
                Err(e) => e,
                Ok(()) => PluginError::retryable(retry::describe(resp)),
            })),
        }
    }

    async fn connect(&mut self) -> Result<Session, PluginError> {
        let url = self.settings.url.clone();
        let resp = self
            .post(soap::retrieve_service_content(), None, "urn:vim25")
            .await
            .map_err(|e| e.to_plugin_error(&format!("RetrieveServiceContent at {url}")))?;
        let content = Self::read(&resp, soap::parse_service_content)
            .map_err(|e| e.to_plugin_error(&format!("RetrieveServiceContent at {url}")))?;
        let soap_action = if content.api_version.is_empty() {
            "urn:vim25".to_string()
        } else {
            format!("urn:vim25/{}", content.api_version)
        };
        let body = soap::login(
            &content.session_manager,
            &self.settings.username,
            self.settings.password.expose(),
        );
        let resp = self
            .post(body, None, &soap_action)
            .await
            .map_err(|e| e.to_plugin_error(&format!("Login at {url}")))?;
        self.status.logins += 1;
        match Self::read(&resp, soap::parse_login) {
            Ok(()) => {}
            Err(CallError::Fault(f)) if f.kind.as_deref() == Some("InvalidLogin") => {
                return Err(PluginError::permanent(format!(
                    "vSphere login refused for user {:?} at {url} (InvalidLogin: {}): check username and password",
                    self.settings.username, f.message
                )));
            }
            Err(e) => return Err(e.to_plugin_error(&format!("Login at {url}"))),
        }
        let cookie = session_cookie(&resp.headers).ok_or_else(|| {
            PluginError::retryable(format!(
                "Login at {url}: the answer set no {SESSION_COOKIE} cookie"
            ))
        })?;
        let body =
            soap::create_container_view(&content.view_manager, &content.root_folder, VIEW_TYPES);
        let resp = self
            .post(body, Some(&cookie), &soap_action)
            .await
            .map_err(|e| e.to_plugin_error("CreateContainerView"))?;
        let view = Self::read(&resp, soap::parse_create_container_view)
            .map_err(|e| e.to_plugin_error("CreateContainerView"))?;
        tracing::info!(
            url = %url,
            server = %content.full_name,
            api_version = %content.api_version,
            "vSphere session opened"
        );
        Ok(Session {
            cookie,
            content,
            soap_action,
            view,
            counters: None,
        })
    }

    /// One call in the session (logging in first if needed); a
    /// `NotAuthenticated` fault logs in again and repeats the call once.
    async fn rpc<T>(
        &mut self,
        what: &str,
        build: impl Fn(&Session) -> String,
        parse: impl Fn(&[u8]) -> Result<T, ResponseError>,
    ) -> Result<T, PluginError> {
        for attempt in 0..2 {
            if self.session.is_none() {
                self.session = Some(self.connect().await?);
            }
            let Some(session) = self.session.as_ref() else {
                continue;
            };
            let body = build(session);
            let cookie = session.cookie.clone();
            let action = session.soap_action.clone();
            let resp = self
                .post(body, Some(&cookie), &action)
                .await
                .map_err(|e| e.to_plugin_error(what))?;
            match Self::read(&resp, &parse) {
                Ok(v) => return Ok(v),
                Err(CallError::Fault(f)) if f.is_not_authenticated() && attempt == 0 => {
                    tracing::info!("vSphere session no longer valid ({what}): logging in again");
                    self.session = None;
                }
                Err(e) => return Err(e.to_plugin_error(what)),
            }
        }
        Err(PluginError::permanent(format!(
            "{what}: NotAuthenticated again right after a fresh login"
        )))
    }

    /// Reads every object of the view, page by page.
    async fn inventory(&mut self) -> Result<Inventory, PluginError> {
        let max = self.settings.max_objects;
        let specs = inventory_specs();
        let parse_first = |b: &[u8]| -> Result<soap::RetrieveResult, ResponseError> {
            let r = soap::parse_retrieve_result(b, "RetrievePropertiesExResponse")?;
            // vcsim and some servers report a missing session per property
            // instead of a fault: treat it the same way.
            not_authenticated_in(&r)?;
            Ok(r)
        };
        let mut page = self
            .rpc(
                "RetrievePropertiesEx",
                |s| {
                    soap::retrieve_view_properties(
                        &s.content.property_collector,
                        &s.view,
                        &specs,
                        max,
                    )
                },
                parse_first,
            )
            .await?;
        let mut objects = std::mem::take(&mut page.objects);
        let mut pages = 1;
        while let Some(token) = page.token.take() {
            pages += 1;
            if pages > 100_000 {
                return Err(PluginError::retryable(
                    "RetrievePropertiesEx: the server keeps returning continuation tokens",
                ));
            }
            page = self
                .rpc(
                    "ContinueRetrievePropertiesEx",
                    |s| {
                        soap::continue_retrieve_properties_ex(&s.content.property_collector, &token)
                    },
                    |b| soap::parse_retrieve_result(b, "ContinueRetrievePropertiesExResponse"),
                )
                .await?;
            objects.append(&mut page.objects);
        }
        Ok(Inventory::new(objects))
    }

    /// Resolves the configured counters once per session.
    async fn counters(&mut self) -> Result<HashMap<String, PerfCounter>, PluginError> {
        if let Some(c) = self.session.as_ref().and_then(|s| s.counters.clone()) {
            return Ok(c);
        }
        let list = self
            .rpc(
                "PerformanceManager.perfCounter",
                |s| {
                    let pm = s
                        .content
                        .perf_manager
                        .clone()
                        .unwrap_or_else(|| MoRef::new("PerformanceManager", "PerfMgr"));
                    soap::retrieve_object_properties(
                        &s.content.property_collector,
                        &pm,
                        &["perfCounter"],
                    )
                },
                soap::parse_perf_counters,
            )
            .await?;
        let mut map = HashMap::new();
        for c in list {
            map.entry(c.full_name()).or_insert(c);
        }
        let mut unknown = Vec::new();
        for name in self
            .settings
            .vm_counters
            .iter()
            .chain(&self.settings.host_counters)
        {
            if !map.contains_key(name) && !unknown.contains(name) {
                unknown.push(name.clone());
                if self.warned.insert(name.clone()) {
                    tracing::warn!(counter = %name, "the server has no such performance counter: skipped");
                }
            }
        }
        self.status.unknown_counters = unknown;
        if let Some(s) = self.session.as_mut() {
            s.counters = Some(map.clone());
        }
        Ok(map)
    }

    async fn performance(
        &mut self,
        inv: &Inventory,
    ) -> Result<Vec<(PerfEntity, &'static str)>, PluginError> {
        let counters = self.counters().await?;
        let ids = |names: &[String]| -> Vec<i32> {
            names
                .iter()
                .filter_map(|n| counters.get(n).map(|c| c.key))
                .collect()
        };
        let vm_ids = ids(&self.settings.vm_counters);
        let host_ids = ids(&self.settings.host_counters);
        let mut queries = Vec::new();
        if self.settings.collect_vms && !vm_ids.is_empty() {
            for o in inv.of_kind("VirtualMachine") {
                if Inventory::vm_has_stats(o) && inv.in_scope(o, &self.settings.datacenters) {
                    queries.push(PerfQuery {
                        entity: o.obj.clone(),
                        counter_ids: vm_ids.clone(),
                        interval_id: REALTIME_INTERVAL,
                    });
                }
            }
        }
        if self.settings.collect_hosts && !host_ids.is_empty() {
            for o in inv.of_kind("HostSystem") {
                if Inventory::host_has_stats(o) && inv.in_scope(o, &self.settings.datacenters) {
                    queries.push(PerfQuery {
                        entity: o.obj.clone(),
                        counter_ids: host_ids.clone(),
                        interval_id: REALTIME_INTERVAL,
                    });
                }
            }
        }
        let mut out = Vec::new();
        for chunk in queries.chunks(self.settings.max_entities_per_query as usize) {
            let chunk = chunk.to_vec();
            let res = self
                .rpc(
                    "QueryPerf",
                    |s| {
                        let pm = s
                            .content
                            .perf_manager
                            .clone()
                            .unwrap_or_else(|| MoRef::new("PerformanceManager", "PerfMgr"));
                        soap::query_perf(&pm, &chunk)
                    },
                    soap::parse_query_perf,
                )
                .await?;
            for e in res {
                let object = if e.entity.kind == "VirtualMachine" {
                    "vm"
                } else {
                    "host"
                };
                out.push((e, object));
            }
        }
        Ok(out)
    }

    /// One collection within `collect_timeout`: inventory (an error fails the
    /// collection), then the performance counters (an error is reported in health,
    /// the inventory metrics are returned anyway).
    pub async fn collect(&mut self) -> Result<Vec<Metric>, PluginError> {
        let limit = self.settings.collect_timeout;
        match tokio::time::timeout(limit, self.collect_unbounded()).await {
            Ok(r) => r,
            Err(_) => {
                let msg = format!(
                    "the collection from {} took longer than collect_timeout ({limit:?})",
                    self.settings.url
                );
                self.status.inventory_error = Some(msg.clone());
                Err(PluginError::retryable(msg))
            }
        }
    }

    async fn collect_unbounded(&mut self) -> Result<Vec<Metric>, PluginError> {
        self.status.collections += 1;
        let inv = match self.inventory().await {
            Ok(i) => i,
            Err(e) => {
                self.status.inventory_error = Some(e.message.to_string());
                return Err(e);
            }
        };
        self.status.inventory_error = None;
        let wanted = self.settings.performance
            && ((self.settings.collect_vms && !self.settings.vm_counters.is_empty())
                || (self.settings.collect_hosts && !self.settings.host_counters.is_empty()));
        let perf = if wanted {
            match self.performance(&inv).await {
                Ok(p) => {
                    self.status.performance_error = None;
                    p
                }
                Err(e) => {
                    tracing::warn!(error = %e.message, "vSphere performance query failed; sending the inventory metrics only");
                    self.status.performance_error = Some(e.message.to_string());
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let counters = self
            .session
            .as_ref()
            .and_then(|s| s.counters.clone())
            .unwrap_or_default();
        let by_key: HashMap<i32, PerfCounter> =
            counters.into_values().map(|c| (c.key, c)).collect();
        Ok(build_metrics(
            &self.settings,
            &inv,
            &perf,
            &by_key,
            now_ns(),
        ))
    }

    /// Ends the session (destroys the view, logs out); best effort.
    pub async fn close(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = self
                .post(soap::destroy_view(&s.view), Some(&s.cookie), &s.soap_action)
                .await;
            let _ = self
                .post(
                    soap::logout(&s.content.session_manager),
                    Some(&s.cookie),
                    &s.soap_action,
                )
                .await;
        }
    }
}

fn not_authenticated_in(r: &soap::RetrieveResult) -> Result<(), ResponseError> {
    for o in &r.objects {
        if let Some((path, _)) = o.missing.iter().find(|(_, k)| k == "NotAuthenticated") {
            return Err(ResponseError::Fault(Fault {
                code: "ServerFaultCode".into(),
                message: format!(
                    "property {path} of {} not readable without a session",
                    o.obj
                ),
                kind: Some("NotAuthenticated".into()),
            }));
        }
    }
    Ok(())
}

/// `maxTotalLatency` -> `max_total_latency`.
pub fn snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Metric name of a counter for an object kind (`vm`, `host`):
/// `vsphere.vm.cpu.usagemhz`; the `maximum` / `minimum` rollups get a `_max` /
/// `_min` suffix, the others (average, summation, latest, none) none.
pub fn counter_metric_name(object: &str, c: &PerfCounter) -> String {
    let suffix = match c.rollup.as_str() {
        "maximum" => "_max",
        "minimum" => "_min",
        _ => "",
    };
    format!(
        "vsphere.{object}.{}.{}{suffix}",
        snake(&c.group),
        snake(&c.name)
    )
}

/// Converts a raw counter value to the metric's unit: percentages come in
/// hundredths of a percent, sizes in kilobytes, rates in kilobytes per second.
pub fn convert(unit: &str, raw: i64) -> (f64, &'static str) {
    let v = raw as f64;
    match unit {
        "percent" => (v / 100.0, "%"),
        "kiloBytes" => (v * 1024.0, "By"),
        "megaBytes" => (v * 1_048_576.0, "By"),
        "teraBytes" => (v * 1_099_511_627_776.0, "By"),
        "kiloBytesPerSecond" => (v * 1024.0, "By/s"),
        "megaBytesPerSecond" => (v * 1_048_576.0, "By/s"),
        "kiloBitsPerSecond" => (v * 1000.0, "bit/s"),
        "megaBitsPerSecond" => (v * 1_000_000.0, "bit/s"),
        "megaHertz" => (v, "MHz"),
        "millisecond" => (v, "ms"),
        "microsecond" => (v, "us"),
        "second" => (v, "s"),
        "watt" => (v, "W"),
        "joule" => (v, "J"),
        "celsius" => (v, "Cel"),
        _ => (v, "1"),
    }
}

struct MetricSet {
    metrics: BTreeMap<String, Metric>,
}

impl MetricSet {
    fn add(&mut self, name: &str, unit: &str, t: u64, value: f64, attrs: &[KeyValue]) {
        let m = self.metrics.entry(name.to_string()).or_insert_with(|| {
            let mut m = Metric::gauge(name, unit, t, value, Vec::new());
            m.points.clear();
            m
        });
        m.points.push(tfo_plugin_api::DataPoint {
            attributes: attrs.to_vec().into(),
            start_time_unix_nano: 0,
            time_unix_nano: t,
            value: tfo_plugin_api::PointValue::Double(value),
        });
    }
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// The pure mapping from what was read to metrics (see docs/integrations/vmware.md
/// for the list).
pub fn build_metrics(
    s: &Settings,
    inv: &Inventory,
    perf: &[(PerfEntity, &'static str)],
    counters: &HashMap<i32, PerfCounter>,
    now: u64,
) -> Vec<Metric> {
    let mut set = MetricSet {
        metrics: BTreeMap::new(),
    };
    let base = |pairs: &[(&str, Option<&str>)]| -> Vec<KeyValue> {
        let mut a = vec![KeyValue::new("vcenter", s.vcenter.as_str())];
        for (k, v) in pairs {
            if let Some(v) = v {
                a.push(KeyValue::new(*k, *v));
            }
        }
        for (k, v) in &s.labels {
            a.push(KeyValue::new(k.as_str(), v.as_str()));
        }
        a
    };
    let mib = 1_048_576.0;
    // Identity of hosts and VMs, also used for the performance points.
    let mut identity: HashMap<MoRef, Vec<KeyValue>> = HashMap::new();
    let mut host_vms: HashMap<MoRef, u64> = HashMap::new();
    let mut cluster_vms: HashMap<String, (u64, u64)> = HashMap::new();

    for h in inv.of_kind("HostSystem") {
        if !inv.in_scope(h, &s.datacenters) {
            continue;
        }
        let attrs = base(&[
            ("datacenter", inv.datacenter_of(&h.obj)),
            ("cluster", inv.cluster_of_host(&h.obj)),
            ("host", h.text("name")),
        ]);
        identity.insert(h.obj.clone(), attrs);
    }
    for vm in inv.of_kind("VirtualMachine") {
        if !inv.in_scope(vm, &s.datacenters) {
            continue;
        }
        let host = vm.moref("runtime.host");
        let host_name = host.as_ref().and_then(|h| inv.name(h));
        let cluster = host.as_ref().and_then(|h| inv.cluster_of_host(h));
        let dc = host
            .as_ref()
            .and_then(|h| inv.datacenter_of(h))
            .or_else(|| inv.datacenter_of(&vm.obj));
        let on = vm.text("runtime.powerState") == Some("poweredOn");
        if let Some(h) = &host {
            *host_vms.entry(h.clone()).or_default() += 1;
        }
        if let Some(c) = cluster {
            let e = cluster_vms.entry(c.to_string()).or_default();
            e.0 += 1;
            e.1 += u64::from(on);
        }
        let attrs = base(&[
            ("datacenter", dc),
            ("cluster", cluster),
            ("host", host_name),
            ("vm", vm.text("name")),
        ]);
        identity.insert(vm.obj.clone(), attrs.clone());
        if !s.collect_vms {
            continue;
        }
        set.add("vsphere.vm.powered_on", "1", now, flag(on), &attrs);
        let n = |p: &str| vm.number(p);
        if let Some(v) = n("summary.config.numCpu") {
            set.add("vsphere.vm.cpu.count", "1", now, v, &attrs);
        }
        if let Some(v) = n("summary.config.memorySizeMB") {
            set.add("vsphere.vm.memory.size", "By", now, v * mib, &attrs);
        }
        if let Some(v) = n("summary.storage.committed") {
            set.add("vsphere.vm.storage.committed", "By", now, v, &attrs);
        }
        if let Some(v) = n("summary.storage.uncommitted") {
            set.add("vsphere.vm.storage.uncommitted", "By", now, v, &attrs);
        }
        if on {
            if let Some(v) = n("summary.quickStats.overallCpuUsage") {
                set.add("vsphere.vm.cpu.overall_usage", "MHz", now, v, &attrs);
            }
            if let Some(v) = n("summary.quickStats.guestMemoryUsage") {
                set.add("vsphere.vm.memory.guest_usage", "By", now, v * mib, &attrs);
            }
            if let Some(v) = n("summary.quickStats.hostMemoryUsage") {
                set.add("vsphere.vm.memory.host_usage", "By", now, v * mib, &attrs);
            }
            if let Some(v) = n("summary.quickStats.uptimeSeconds") {
                set.add("vsphere.vm.uptime", "s", now, v, &attrs);
            }
        }
    }
    if s.collect_hosts {
        for h in inv.of_kind("HostSystem") {
            let Some(attrs) = identity.get(&h.obj) else {
                continue;
            };
            let n = |p: &str| h.number(p);
            set.add(
                "vsphere.host.connected",
                "1",
                now,
                flag(h.text("runtime.connectionState") == Some("connected")),
                attrs,
            );
            if let Some(p) = h.text("runtime.powerState") {
                set.add(
                    "vsphere.host.powered_on",
                    "1",
                    now,
                    flag(p == "poweredOn"),
                    attrs,
                );
            }
            if let Some(m) = h.boolean("runtime.inMaintenanceMode") {
                set.add("vsphere.host.maintenance_mode", "1", now, flag(m), attrs);
            }
            if let Some(v) = n("summary.hardware.numCpuCores") {
                set.add("vsphere.host.cpu.cores", "1", now, v, attrs);
                if let Some(mhz) = n("summary.hardware.cpuMhz") {
                    set.add("vsphere.host.cpu.capacity", "MHz", now, v * mhz, attrs);
                }
            }
            if let Some(v) = n("summary.hardware.numCpuThreads") {
                set.add("vsphere.host.cpu.threads", "1", now, v, attrs);
            }
            if let Some(v) = n("summary.hardware.memorySize") {
                set.add("vsphere.host.memory.size", "By", now, v, attrs);
            }
            if let Some(v) = n("summary.quickStats.overallCpuUsage") {
                set.add("vsphere.host.cpu.overall_usage", "MHz", now, v, attrs);
            }
            if let Some(v) = n("summary.quickStats.overallMemoryUsage") {
                set.add(
                    "vsphere.host.memory.overall_usage",
                    "By",
                    now,
                    v * mib,
                    attrs,
                );
            }
            if let Some(v) = n("summary.quickStats.uptime") {
                set.add("vsphere.host.uptime", "s", now, v, attrs);
            }
            let vms = host_vms.get(&h.obj).copied().unwrap_or(0);
            set.add("vsphere.host.vms", "1", now, vms as f64, attrs);
        }
    }
    if s.collect_clusters {
        for c in inv.of_kind("ClusterComputeResource") {
            if !inv.in_scope(c, &s.datacenters) {
                continue;
            }
            let name = c.text("name");
            let attrs = base(&[("datacenter", inv.datacenter_of(&c.obj)), ("cluster", name)]);
            let n = |p: &str| c.number(p);
            let pairs: [(&str, &str, &str, f64); 6] = [
                ("summary.numHosts", "vsphere.cluster.hosts", "1", 1.0),
                (
                    "summary.numEffectiveHosts",
                    "vsphere.cluster.hosts.effective",
                    "1",
                    1.0,
                ),
                (
                    "summary.totalCpu",
                    "vsphere.cluster.cpu.capacity",
                    "MHz",
                    1.0,
                ),
                (
                    "summary.effectiveCpu",
                    "vsphere.cluster.cpu.effective",
                    "MHz",
                    1.0,
                ),
                (
                    "summary.totalMemory",
                    "vsphere.cluster.memory.size",
                    "By",
                    1.0,
                ),
                (
                    "summary.effectiveMemory",
                    "vsphere.cluster.memory.effective",
                    "By",
                    mib,
                ),
            ];
            for (prop, metric, unit, scale) in pairs {
                if let Some(v) = n(prop) {
                    set.add(metric, unit, now, v * scale, &attrs);
                }
            }
            let (vms, on) = name
                .and_then(|n| cluster_vms.get(n).copied())
                .unwrap_or((0, 0));
            set.add("vsphere.cluster.vms", "1", now, vms as f64, &attrs);
            set.add(
                "vsphere.cluster.vms.powered_on",
                "1",
                now,
                on as f64,
                &attrs,
            );
        }
    }
    if s.collect_datastores {
        for d in inv.of_kind("Datastore") {
            if !inv.in_scope(d, &s.datacenters) {
                continue;
            }
            let attrs = base(&[
                ("datacenter", inv.datacenter_of(&d.obj)),
                ("datastore", d.text("name")),
                ("type", d.text("summary.type")),
            ]);
            if let Some(a) = d.boolean("summary.accessible") {
                set.add("vsphere.datastore.accessible", "1", now, flag(a), &attrs);
            }
            let cap = d.number("summary.capacity");
            let free = d.number("summary.freeSpace");
            if let Some(c) = cap {
                set.add("vsphere.datastore.capacity", "By", now, c, &attrs);
            }
            if let Some(f) = free {
                set.add("vsphere.datastore.free", "By", now, f, &attrs);
            }
            if let (Some(c), Some(f)) = (cap, free) {
                let used = (c - f).max(0.0);
                set.add("vsphere.datastore.used", "By", now, used, &attrs);
                if c > 0.0 {
                    set.add(
                        "vsphere.datastore.utilization",
                        "%",
                        now,
                        used / c * 100.0,
                        &attrs,
                    );
                }
                if let Some(u) = d.number("summary.uncommitted") {
                    set.add("vsphere.datastore.provisioned", "By", now, used + u, &attrs);
                }
            }
        }
    }
    for (e, object) in perf {
        let Some(attrs) = identity.get(&e.entity) else {
            continue;
        };
        let t = e
            .timestamp
            .as_deref()
            .and_then(soap::parse_datetime_ns)
            .unwrap_or(now);
        for v in &e.values {
            if !v.instance.is_empty() {
                continue;
            }
            let Some(c) = counters.get(&v.counter_id) else {
                continue;
            };
            let (value, unit) = convert(&c.unit, v.value);
            set.add(&counter_metric_name(object, c), unit, t, value, attrs);
        }
    }
    set.metrics.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Config,
        soap::{PerfValue, RetrieveResult},
    };

    fn settings(extra: &str) -> Settings {
        let json = format!(r#"{{"url":"https://vc","username":"u","password":"p"{extra}}}"#);
        serde_json::from_str::<Config>(&json)
            .unwrap()
            .resolve()
            .unwrap()
    }

    fn obj(
        kind: &str,
        id: &str,
        props: &[(&str, &str)],
        refs: &[(&str, &str, &str)],
    ) -> ObjectContent {
        let mut p = BTreeMap::new();
        for (k, v) in props {
            p.insert(
                k.to_string(),
                soap::Node {
                    name: "val".into(),
                    text: v.to_string(),
                    ..Default::default()
                },
            );
        }
        for (k, t, v) in refs {
            p.insert(
                k.to_string(),
                soap::Node {
                    name: "val".into(),
                    attrs: vec![("type".into(), t.to_string())],
                    text: v.to_string(),
                    ..Default::default()
                },
            );
        }
        ObjectContent {
            obj: MoRef::new(kind, id),
            props: p,
            missing: vec![],
        }
    }

    fn inventory() -> Inventory {
        Inventory::new(vec![
            obj("Datacenter", "dc-1", &[("name", "Paris")], &[]),
            obj("Datacenter", "dc-2", &[("name", "Lyon")], &[]),
            obj(
                "Folder",
                "h-1",
                &[("name", "host")],
                &[("parent", "Datacenter", "dc-1")],
            ),
            obj(
                "Folder",
                "h-2",
                &[("name", "host")],
                &[("parent", "Datacenter", "dc-2")],
            ),
            obj(
                "ComputeResource",
                "cr-9",
                &[("name", "esx9")],
                &[("parent", "Folder", "h-2")],
            ),
            obj(
                "ClusterComputeResource",
                "c-1",
                &[("name", "C1"), ("summary.effectiveMemory", "2")],
                &[("parent", "Folder", "h-1")],
            ),
            obj(
                "HostSystem",
                "host-1",
                &[
                    ("name", "esx1"),
                    ("runtime.connectionState", "connected"),
                    ("runtime.powerState", "poweredOn"),
                ],
                &[("parent", "ClusterComputeResource", "c-1")],
            ),
            obj(
                "HostSystem",
                "host-9",
                &[
                    ("name", "esx9"),
                    ("runtime.connectionState", "disconnected"),
                ],
                &[("parent", "ComputeResource", "cr-9")],
            ),
            obj(
                "VirtualMachine",
                "vm-1",
                &[
                    ("name", "a"),
                    ("runtime.powerState", "poweredOn"),
                    ("summary.config.template", "false"),
                ],
                &[
                    ("runtime.host", "HostSystem", "host-1"),
                    ("parent", "Folder", "nowhere"),
                ],
            ),
            obj(
                "VirtualMachine",
                "vm-2",
                &[("name", "b"), ("runtime.powerState", "poweredOff")],
                &[("runtime.host", "HostSystem", "host-9")],
            ),
            obj(
                "VirtualMachine",
                "vm-3",
                &[
                    ("name", "tpl"),
                    ("runtime.powerState", "poweredOn"),
                    ("summary.config.template", "true"),
                ],
                &[("runtime.host", "HostSystem", "host-1")],
            ),
        ])
    }

    fn pts(ms: &[Metric], name: &str) -> Vec<(String, f64)> {
        ms.iter()
            .filter(|m| m.name.as_str() == name)
            .flat_map(|m| m.points.iter())
            .map(|p| {
                let who = p
                    .attributes
                    .iter()
                    .filter(|kv| ["vm", "host", "cluster", "datastore"].contains(&kv.key.as_str()))
                    .map(|kv| format!("{}={:?}", kv.key, kv.value))
                    .collect::<Vec<_>>()
                    .join(",");
                let v = match p.value {
                    tfo_plugin_api::PointValue::Double(d) => d,
                    _ => f64::NAN,
                };
                (who, v)
            })
            .collect()
    }

    #[test]
    fn names_units_and_conversions() {
        assert_eq!(snake("maxTotalLatency"), "max_total_latency");
        assert_eq!(snake("usagemhz"), "usagemhz");
        let c = |g: &str, n: &str, r: &str| PerfCounter {
            key: 1,
            group: g.into(),
            name: n.into(),
            rollup: r.into(),
            unit: "percent".into(),
            stats_type: "rate".into(),
        };
        assert_eq!(
            counter_metric_name("vm", &c("cpu", "usage", "average")),
            "vsphere.vm.cpu.usage"
        );
        assert_eq!(
            counter_metric_name("host", &c("cpu", "usage", "maximum")),
            "vsphere.host.cpu.usage_max"
        );
        assert_eq!(
            counter_metric_name("vm", &c("disk", "maxTotalLatency", "latest")),
            "vsphere.vm.disk.max_total_latency"
        );
        assert_eq!(convert("percent", 1234), (12.34, "%"));
        assert_eq!(convert("kiloBytes", 2), (2048.0, "By"));
        assert_eq!(convert("kiloBytesPerSecond", 3), (3072.0, "By/s"));
        assert_eq!(convert("megaHertz", 7), (7.0, "MHz"));
        assert_eq!(convert("whatever", 7), (7.0, "1"));
    }

    #[test]
    fn identity_comes_from_the_parents_and_stats_only_for_live_objects() {
        let inv = inventory();
        assert_eq!(
            inv.datacenter_of(&MoRef::new("HostSystem", "host-1")),
            Some("Paris")
        );
        assert_eq!(
            inv.cluster_of_host(&MoRef::new("HostSystem", "host-1")),
            Some("C1")
        );
        assert_eq!(
            inv.cluster_of_host(&MoRef::new("HostSystem", "host-9")),
            None
        );
        // A broken parent chain gives no datacenter rather than a loop or a panic.
        assert_eq!(
            inv.datacenter_of(&MoRef::new("VirtualMachine", "vm-1")),
            None
        );
        let vm = |id: &str| inv.objects.get(&MoRef::new("VirtualMachine", id)).unwrap();
        assert!(Inventory::vm_has_stats(vm("vm-1")));
        assert!(!Inventory::vm_has_stats(vm("vm-2")));
        assert!(!Inventory::vm_has_stats(vm("vm-3")));
        let host = |id: &str| inv.objects.get(&MoRef::new("HostSystem", id)).unwrap();
        assert!(Inventory::host_has_stats(host("host-1")));
        assert!(!Inventory::host_has_stats(host("host-9")));
    }

    #[test]
    fn metrics_with_a_datacenter_filter_and_perf_samples() {
        let s = settings(r#","datacenters":["Paris"]"#);
        let counters: HashMap<i32, PerfCounter> = [(
            2,
            PerfCounter {
                key: 2,
                group: "cpu".into(),
                name: "usage".into(),
                rollup: "average".into(),
                unit: "percent".into(),
                stats_type: "rate".into(),
            },
        )]
        .into();
        let perf = vec![(
            PerfEntity {
                entity: MoRef::new("VirtualMachine", "vm-1"),
                timestamp: Some("2024-01-01T00:00:20Z".into()),
                values: vec![
                    PerfValue {
                        counter_id: 2,
                        instance: String::new(),
                        value: 2550,
                    },
                    PerfValue {
                        counter_id: 2,
                        instance: "0".into(),
                        value: 9999,
                    },
                    PerfValue {
                        counter_id: 77,
                        instance: String::new(),
                        value: 1,
                    },
                ],
            },
            "vm",
        )];
        let ms = build_metrics(&s, &inventory(), &perf, &counters, 5);
        // Lyon's host and VM are out of scope.
        assert_eq!(
            pts(&ms, "vsphere.host.connected"),
            vec![(r#"cluster=Str("C1"),host=Str("esx1")"#.into(), 1.0)]
        );
        let on = pts(&ms, "vsphere.vm.powered_on");
        assert_eq!(on.len(), 2, "{on:?}");
        let cpu = pts(&ms, "vsphere.vm.cpu.usage");
        assert_eq!(
            cpu,
            vec![(
                r#"cluster=Str("C1"),host=Str("esx1"),vm=Str("a")"#.into(),
                25.5
            )]
        );
        let m = ms
            .iter()
            .find(|m| m.name.as_str() == "vsphere.vm.cpu.usage")
            .unwrap();
        assert_eq!(m.points[0].time_unix_nano, 1_704_067_220_000_000_000);
        assert_eq!(
            pts(&ms, "vsphere.cluster.memory.effective")[0].1,
            2.0 * 1_048_576.0
        );
        assert_eq!(pts(&ms, "vsphere.host.vms")[0].1, 2.0);
    }

    #[test]
    fn missing_session_in_properties_counts_as_not_authenticated() {
        let mut o = obj("HostSystem", "h", &[], &[]);
        o.missing.push(("name".into(), "NotAuthenticated".into()));
        let r = RetrieveResult {
            token: None,
            objects: vec![o],
        };
        match not_authenticated_in(&r) {
            Err(ResponseError::Fault(f)) => assert!(f.is_not_authenticated()),
            other => panic!("{other:?}"),
        }
    }
}
