//! Pure mapping of Nutanix API answers to metrics (golden-tested, no network).
//!
//! Two API families are read into one normalised [`Entity`], then mapped to the
//! same metric names:
//! - Prism Central v3 (<https://www.nutanix.dev/api_references/prism-central-v3/>):
//!   `POST /api/nutanix/v3/{clusters,hosts,vms}/list` answer
//!   `{"metadata": {"total_matches", "offset", "length"}, "entities": [{"metadata":
//!   {"uuid"}, "status": {"name", "cluster_reference", "resources": {...}}}]}`;
//!   they carry inventory only, so performance comes from `POST
//!   /api/nutanix/v3/groups` (the stats query Prism's own UI uses), whose
//!   `group_results[].entity_results[]` hold `entity_id` and `data[] = {"name",
//!   "values": [{"values": ["<number as text>"], "time"}]}`;
//! - Prism Element v2.0 (<https://www.nutanix.dev/api_references/prism-v2-0/>)
//!   `GET /PrismGateway/services/rest/v2.0/{clusters,hosts}/` and v1
//!   `GET /PrismGateway/services/rest/v1/vms/` (the v2.0 VM list has no stats; the
//!   v1 one does, see <https://www.nutanix.dev/2019/09/23/getting-vm-performance-metrics-via-api/>):
//!   entities embed `stats` and `usage_stats` / `usageStats` maps of numbers written
//!   as strings (`"hypervisor_cpu_usage_ppm": "153421"`).
//!
//! Nutanix writes `-1` for "no value"; negative and non-numeric values are dropped,
//! never reported as 0.

use std::collections::BTreeMap;

use serde_json::Value;
use tfo_plugin_api::{AnyValue, DataPoint, KeyValue, Metric, MetricKind, PointValue, Temporality};

/// The stats this plugin asks for and maps: (Nutanix name, metric suffix, unit,
/// divisor, description).
pub const STATS: &[(&str, &str, &str, f64, &str)] = &[
    (
        "hypervisor_cpu_usage_ppm",
        "cpu.utilization",
        "1",
        1e6,
        "CPU usage, 0..1 (Nutanix parts per million / 10^6)",
    ),
    (
        "hypervisor_memory_usage_ppm",
        "memory.utilization",
        "1",
        1e6,
        "Memory usage, 0..1",
    ),
    (
        "controller_num_iops",
        "disk.iops",
        "{operation}/s",
        1.0,
        "Storage controller I/O operations per second",
    ),
    (
        "controller_io_bandwidth_kBps",
        "disk.bandwidth",
        "kBy/s",
        1.0,
        "Storage controller I/O bandwidth",
    ),
    (
        "controller_avg_io_latency_usecs",
        "disk.latency",
        "us",
        1.0,
        "Storage controller average I/O latency",
    ),
    (
        "storage.capacity_bytes",
        "storage.limit",
        "By",
        1.0,
        "Storage capacity",
    ),
    (
        "storage.usage_bytes",
        "storage.usage",
        "By",
        1.0,
        "Storage used",
    ),
];

/// The stat names to request for an entity kind in the groups API.
pub fn stat_names(kind: Kind) -> Vec<&'static str> {
    STATS
        .iter()
        .map(|s| s.0)
        .filter(|n| kind == Kind::Cluster || !n.starts_with("storage."))
        .collect()
}

/// Entity kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A Nutanix cluster (Prism Element).
    Cluster,
    /// A physical node.
    Host,
    /// A virtual machine.
    Vm,
}

impl Kind {
    /// The metric name prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Cluster => "nutanix.cluster",
            Kind::Host => "nutanix.host",
            Kind::Vm => "nutanix.vm",
        }
    }
    /// v3 list `kind` and path segment.
    pub fn v3(self) -> &'static str {
        match self {
            Kind::Cluster => "cluster",
            Kind::Host => "host",
            Kind::Vm => "vm",
        }
    }
    /// The groups API `entity_type`.
    pub fn group_type(self) -> &'static str {
        match self {
            Kind::Cluster => "cluster",
            Kind::Host => "host",
            Kind::Vm => "mh_vm",
        }
    }
}

/// One cluster, host or VM, whichever API it came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entity {
    /// UUID.
    pub uuid: String,
    /// Name.
    pub name: Option<String>,
    /// Owning cluster's UUID (hosts, VMs).
    pub cluster_uuid: Option<String>,
    /// Owning cluster's name, when the answer gives it.
    pub cluster_name: Option<String>,
    /// Host running the VM.
    pub host_uuid: Option<String>,
    /// Software version (clusters) or hypervisor (hosts).
    pub version: Option<String>,
    /// Powered on (VMs) or in NORMAL state (hosts, v2).
    pub up: Option<bool>,
    /// Inventory numbers: `cpu.count`, `cpu.sockets`, `memory.limit` (bytes),
    /// `vms`, `nodes`.
    pub values: BTreeMap<&'static str, f64>,
    /// Raw Nutanix stats by their Nutanix name.
    pub stats: BTreeMap<String, f64>,
}

/// A number, or a number written as a string; `None` for anything else and for
/// Nutanix's negative "no value".
pub fn number(v: &Value) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }?;
    (n.is_finite() && n >= 0.0).then_some(n)
}

fn s(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    match cur {
        Value::String(x) if !x.is_empty() => Some(x.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn n(v: &Value, path: &[&str]) -> Option<f64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    number(cur)
}

fn stats_map(v: Option<&Value>, into: &mut BTreeMap<String, f64>) {
    if let Some(Value::Object(m)) = v {
        for (k, val) in m {
            if let Some(x) = number(val) {
                into.insert(k.clone(), x);
            }
        }
    }
}

/// The `entities` array of a list answer.
pub fn entities(body: &Value) -> Result<&Vec<Value>, String> {
    body.get("entities")
        .and_then(Value::as_array)
        .ok_or_else(|| "answer has no `entities` array".to_string())
}

const MIB: f64 = 1024.0 * 1024.0;

/// One v3 list entity; `None` when it has no UUID, or is Prism Central itself
/// (which `clusters/list` includes).
pub fn v3_entity(kind: Kind, e: &Value) -> Option<Entity> {
    let uuid = s(e, &["metadata", "uuid"])?;
    let st = e.get("status")?;
    let r = st.get("resources").unwrap_or(&Value::Null);
    let mut out = Entity {
        uuid,
        name: s(st, &["name"]),
        cluster_uuid: s(st, &["cluster_reference", "uuid"]),
        cluster_name: s(st, &["cluster_reference", "name"]),
        ..Entity::default()
    };
    match kind {
        Kind::Cluster => {
            let services = r
                .get("config")
                .and_then(|c| c.get("service_list"))
                .and_then(Value::as_array);
            if services.is_some_and(|l| l.iter().any(|x| x == "PRISM_CENTRAL")) {
                return None;
            }
            out.version = s(r, &["config", "build", "version"])
                .or_else(|| s(r, &["config", "software_map", "NOS", "version"]));
            if let Some(l) = r
                .get("nodes")
                .and_then(|x| x.get("hypervisor_server_list"))
                .and_then(Value::as_array)
            {
                out.values.insert("nodes", l.len() as f64);
            }
        }
        Kind::Host => {
            out.version = s(r, &["hypervisor", "hypervisor_full_name"]);
            put(&mut out, "cpu.count", n(r, &["num_cpu_cores"]));
            put(&mut out, "cpu.sockets", n(r, &["num_cpu_sockets"]));
            put(
                &mut out,
                "memory.limit",
                n(r, &["memory_capacity_mib"]).map(|m| m * MIB),
            );
            put(&mut out, "vms", n(r, &["hypervisor", "num_vms"]));
        }
        Kind::Vm => {
            out.host_uuid = s(r, &["host_reference", "uuid"]);
            out.up = r
                .get("power_state")
                .and_then(Value::as_str)
                .map(|p| p.eq_ignore_ascii_case("on"));
            let vcpus = match (n(r, &["num_sockets"]), n(r, &["num_vcpus_per_socket"])) {
                (Some(a), Some(b)) => Some(a * b),
                (Some(a), None) => Some(a),
                _ => None,
            };
            put(&mut out, "cpu.count", vcpus);
            put(
                &mut out,
                "memory.limit",
                n(r, &["memory_size_mib"]).map(|m| m * MIB),
            );
        }
    }
    Some(out)
}

fn put(e: &mut Entity, k: &'static str, v: Option<f64>) {
    if let Some(v) = v {
        e.values.insert(k, v);
    }
}

/// `metadata.total_matches` of a v3 list answer.
pub fn v3_total(body: &Value) -> Option<u64> {
    body.get("metadata")
        .and_then(|m| m.get("total_matches"))
        .and_then(Value::as_u64)
}

/// Raw stats (by Nutanix name) of each entity, by UUID.
pub type StatsByUuid = BTreeMap<String, BTreeMap<String, f64>>;

/// Stats by entity UUID from one page of a v3 groups answer, and the
/// `filtered_entity_count` (total across pages).
pub fn v3_groups(body: &Value) -> Result<(StatsByUuid, Option<u64>), String> {
    let groups = body
        .get("group_results")
        .and_then(Value::as_array)
        .ok_or("groups answer has no `group_results` array")?;
    let mut out = BTreeMap::new();
    for g in groups {
        let Some(list) = g.get("entity_results").and_then(Value::as_array) else {
            continue;
        };
        for e in list {
            let Some(id) = s(e, &["entity_id"]) else {
                continue;
            };
            let mut stats = BTreeMap::new();
            for d in e
                .get("data")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(name) = s(d, &["name"]) else {
                    continue;
                };
                // The latest sample: the first value of the first series.
                let v = d
                    .get("values")
                    .and_then(Value::as_array)
                    .and_then(|vs| vs.first())
                    .and_then(|v| v.get("values"))
                    .and_then(Value::as_array)
                    .and_then(|vs| vs.first())
                    .and_then(number);
                if let Some(v) = v {
                    stats.insert(name, v);
                }
            }
            out.insert(id, stats);
        }
    }
    let total = body.get("filtered_entity_count").and_then(Value::as_u64);
    Ok((out, total))
}

/// One Prism Element entity: v2.0 clusters and hosts, v1 VMs.
pub fn v2_entity(kind: Kind, e: &Value) -> Option<Entity> {
    let mut out = Entity::default();
    match kind {
        Kind::Cluster => {
            out.uuid = s(e, &["uuid"])?;
            out.name = s(e, &["name"]);
            out.version = s(e, &["version"]);
            put(&mut out, "nodes", n(e, &["num_nodes"]));
            stats_map(e.get("stats"), &mut out.stats);
            stats_map(e.get("usage_stats"), &mut out.stats);
        }
        Kind::Host => {
            out.uuid = s(e, &["uuid"])?;
            out.name = s(e, &["name"]);
            out.cluster_uuid = s(e, &["cluster_uuid"]);
            out.version = s(e, &["hypervisor_full_name"]);
            out.up = s(e, &["state"]).map(|st| st == "NORMAL");
            put(&mut out, "cpu.count", n(e, &["num_cpu_cores"]));
            put(&mut out, "cpu.sockets", n(e, &["num_cpu_sockets"]));
            put(
                &mut out,
                "memory.limit",
                n(e, &["memory_capacity_in_bytes"]),
            );
            put(&mut out, "vms", n(e, &["num_vms"]));
            stats_map(e.get("stats"), &mut out.stats);
        }
        Kind::Vm => {
            out.uuid = s(e, &["uuid"])?;
            out.name = s(e, &["vmName"]);
            out.cluster_uuid = s(e, &["clusterUuid"]);
            out.host_uuid = s(e, &["hostUuid"]);
            out.up = s(e, &["powerState"]).map(|p| p.eq_ignore_ascii_case("on"));
            put(&mut out, "cpu.count", n(e, &["numVCpus"]));
            put(&mut out, "memory.limit", n(e, &["memoryCapacityInBytes"]));
            stats_map(e.get("stats"), &mut out.stats);
        }
    }
    Some(out)
}

/// Total entities of a v2.0 (`grand_total_entities`) or v1 (`grandTotalEntities`)
/// list answer.
pub fn v2_total(body: &Value) -> Option<u64> {
    let m = body.get("metadata")?;
    m.get("grand_total_entities")
        .or_else(|| m.get("grandTotalEntities"))
        .or_else(|| m.get("total_entities"))
        .or_else(|| m.get("totalEntities"))
        .and_then(Value::as_u64)
}

/// Metrics being built: one [`Metric`] per name, points appended in order.
#[derive(Debug, Default)]
pub struct MetricSet {
    metrics: BTreeMap<String, Metric>,
    labels: Vec<KeyValue>,
    now: u64,
}

impl MetricSet {
    /// A set whose points carry `labels` and time `now_ns`.
    pub fn new(labels: &BTreeMap<String, String>, now_ns: u64) -> Self {
        MetricSet {
            metrics: BTreeMap::new(),
            labels: labels
                .iter()
                .map(|(k, v)| KeyValue::new(k.as_str(), v.as_str()))
                .collect(),
            now: now_ns,
        }
    }

    /// Adds a gauge point.
    pub fn gauge(&mut self, name: &str, unit: &str, desc: &str, value: f64, attrs: &[KeyValue]) {
        let m = self
            .metrics
            .entry(name.to_string())
            .or_insert_with(|| Metric {
                name: name.into(),
                description: desc.into(),
                unit: unit.into(),
                kind: MetricKind::Gauge,
                temporality: Temporality::Unspecified,
                is_monotonic: false,
                points: Default::default(),
            });
        let mut attributes: Vec<KeyValue> = attrs.to_vec();
        attributes.extend(self.labels.iter().cloned());
        m.points.push(DataPoint {
            attributes: attributes.into(),
            start_time_unix_nano: 0,
            time_unix_nano: self.now,
            value: PointValue::Double(value),
        });
    }

    /// Number of points so far.
    pub fn points(&self) -> usize {
        self.metrics.values().map(|m| m.points.len()).sum()
    }

    /// The metrics, sorted by name.
    pub fn into_metrics(self) -> Vec<Metric> {
        self.metrics.into_values().collect()
    }
}

/// Inventory metrics: (key in [`Entity::values`], suffix, unit, description).
const INVENTORY: &[(&str, &str, &str, &str)] = &[
    ("nodes", "nodes", "{node}", "Nodes in the cluster"),
    (
        "cpu.count",
        "cpu.count",
        "{cpu}",
        "CPU cores (hosts) or vCPUs (VMs)",
    ),
    ("cpu.sockets", "cpu.sockets", "{socket}", "CPU sockets"),
    (
        "memory.limit",
        "memory.limit",
        "By",
        "Memory installed (hosts) or assigned (VMs)",
    ),
    ("vms", "vms", "{vm}", "VMs on the host"),
];

/// Adds every metric of `e`. `clusters` names clusters by UUID for hosts and VMs
/// whose answer only gives the UUID.
pub fn entity(set: &mut MetricSet, kind: Kind, e: &Entity, clusters: &BTreeMap<String, String>) {
    let p = kind.prefix();
    let mut a = Vec::new();
    match kind {
        Kind::Cluster => {
            a.push(KeyValue::new("nutanix.cluster.uuid", e.uuid.as_str()));
            if let Some(n) = &e.name {
                a.push(KeyValue::new("nutanix.cluster.name", n.as_str()));
            }
        }
        Kind::Host | Kind::Vm => {
            let key = if kind == Kind::Host {
                "nutanix.host"
            } else {
                "nutanix.vm"
            };
            a.push(KeyValue::new(format!("{key}.uuid"), e.uuid.as_str()));
            if let Some(n) = &e.name {
                a.push(KeyValue::new(format!("{key}.name"), n.as_str()));
            }
            if let Some(c) = &e.cluster_uuid {
                a.push(KeyValue::new("nutanix.cluster.uuid", c.as_str()));
                if let Some(n) = e.cluster_name.as_ref().or_else(|| clusters.get(c)) {
                    a.push(KeyValue::new("nutanix.cluster.name", n.as_str()));
                }
            }
            if let Some(h) = &e.host_uuid {
                a.push(KeyValue::new("nutanix.host.uuid", h.as_str()));
            }
        }
    }
    if let Some(up) = e.up {
        let desc = if kind == Kind::Vm {
            "1 when the VM is powered on"
        } else {
            "1 when the host is in the NORMAL state"
        };
        set.gauge(
            &format!("{p}.up"),
            "1",
            desc,
            if up { 1.0 } else { 0.0 },
            &a,
        );
    }
    for (key, suffix, unit, desc) in INVENTORY {
        if let Some(v) = e.values.get(key) {
            set.gauge(&format!("{p}.{suffix}"), unit, desc, *v, &a);
        }
    }
    for (raw, suffix, unit, divisor, desc) in STATS {
        if let Some(v) = e.stats.get(*raw) {
            set.gauge(&format!("{p}.{suffix}"), unit, desc, v / divisor, &a);
        }
    }
    if kind == Kind::Cluster {
        if let Some(v) = &e.version {
            let mut a = a.clone();
            a.push(KeyValue::new("nutanix.version", v.as_str()));
            set.gauge(
                "nutanix.cluster.info",
                "1",
                "Always 1; the software version is an attribute",
                1.0,
                &a,
            );
        }
    }
}

/// One line per point, `name{k=v,...} unit value`, sorted: the text form the
/// golden tests compare.
pub fn render(metrics: &[Metric]) -> String {
    let mut lines: Vec<String> = Vec::new();
    for m in metrics {
        for p in m.points.iter() {
            let attrs: Vec<String> = p
                .attributes
                .iter()
                .map(|kv| match &kv.value {
                    AnyValue::Str(s) => format!("{}={}", kv.key, s),
                    other => format!("{}={other:?}", kv.key),
                })
                .collect();
            let v = match &p.value {
                PointValue::Double(d) => d.to_string(),
                other => format!("{other:?}"),
            };
            lines.push(format!(
                "{}{{{}}} [{}] {v}",
                m.name,
                attrs.join(","),
                m.unit
            ));
        }
    }
    lines.sort();
    lines.join("\n") + "\n"
}
