//! Pure mapping of Proxmox VE API responses to metrics (golden-tested, no network).
//!
//! Response shapes follow the PVE API viewer
//! (<https://pve.proxmox.com/pve-docs/api-viewer/>): every answer is `{"data": ...}`;
//! `GET /cluster/resources` lists nodes, `qemu`, `lxc` and `storage` entries with
//! `cpu` (fraction), `maxcpu`, `mem`/`maxmem`, `disk`/`maxdisk` (bytes), `netin`/
//! `netout`/`diskread`/`diskwrite` (bytes since the guest started), `uptime` (s) and
//! `status`; `GET /cluster/status` has one `cluster` entry (`quorate`, `nodes`) and
//! one `node` entry per member (`online`); `GET /nodes/{node}/status` has
//! `loadavg` (three strings), `wait`, `memory`/`swap`/`rootfs` (`total`, `used`,
//! `free`), `cpuinfo`; `GET /cluster/ha/status/current` has `quorum`, `master`,
//! `lrm` and `service` entries; `GET /nodes/{node}/replication` lists jobs with
//! `id`, `guest`, `target`, `last_sync`, `duration`, `fail_count`, `error`.
//!
//! Numbers are read leniently (a JSON number or a numeric string, as PVE sends
//! `loadavg`); an entry that is not an object or misses its identity is skipped,
//! never a reason to drop the rest.

use std::collections::BTreeMap;

use serde_json::Value;
use tfo_plugin_api::{AnyValue, DataPoint, KeyValue, Metric, MetricKind, PointValue, Temporality};

/// The `data` member of a PVE answer (`Null` when absent).
pub fn data(body: &Value) -> &Value {
    body.get("data").unwrap_or(&Value::Null)
}

/// A number or a numeric string.
pub fn num(v: &Value, key: &str) -> Option<f64> {
    match v.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// A string (numbers rendered, as `vmid` may come either way).
pub fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
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

    /// `meta` is (name, unit, description).
    fn push(
        &mut self,
        (name, unit, desc): (&str, &str, &str),
        kind: MetricKind,
        start: u64,
        value: f64,
        attrs: &[KeyValue],
    ) {
        let m = self
            .metrics
            .entry(name.to_string())
            .or_insert_with(|| Metric {
                name: name.into(),
                description: desc.into(),
                unit: unit.into(),
                kind,
                temporality: if kind == MetricKind::Sum {
                    Temporality::Cumulative
                } else {
                    Temporality::Unspecified
                },
                is_monotonic: kind == MetricKind::Sum,
                points: Default::default(),
            });
        let mut attributes: Vec<KeyValue> = attrs.to_vec();
        attributes.extend(self.labels.iter().cloned());
        m.points.push(DataPoint {
            attributes: attributes.into(),
            start_time_unix_nano: start,
            time_unix_nano: self.now,
            value: PointValue::Double(value),
        });
    }

    /// Adds a gauge point.
    pub fn gauge(&mut self, name: &str, unit: &str, desc: &str, value: f64, attrs: &[KeyValue]) {
        self.push((name, unit, desc), MetricKind::Gauge, 0, value, attrs);
    }

    /// Adds a cumulative counter point that started `uptime_s` ago.
    pub fn counter(
        &mut self,
        name: &str,
        unit: &str,
        desc: &str,
        uptime_s: Option<f64>,
        value: f64,
        attrs: &[KeyValue],
    ) {
        let start = uptime_s
            .filter(|u| *u > 0.0 && u.is_finite())
            .map(|u| self.now.saturating_sub((u * 1e9) as u64))
            .unwrap_or(0);
        self.push((name, unit, desc), MetricKind::Sum, start, value, attrs);
    }

    /// Adds a gauge when the value is present.
    fn opt_gauge(
        &mut self,
        name: &str,
        unit: &str,
        desc: &str,
        value: Option<f64>,
        attrs: &[KeyValue],
    ) {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            self.gauge(name, unit, desc, v, attrs);
        }
    }

    /// The metrics, sorted by name.
    pub fn into_metrics(self) -> Vec<Metric> {
        self.metrics.into_values().collect()
    }

    /// Number of points so far.
    pub fn points(&self) -> usize {
        self.metrics.values().map(|m| m.points.len()).sum()
    }
}

fn kv(k: &str, v: impl Into<AnyValue>) -> KeyValue {
    KeyValue::new(k, v)
}

/// What `/cluster/resources` says, split by type (after the node filter).
#[derive(Debug, Default, Clone)]
pub struct Resources {
    /// `type == node`.
    pub nodes: Vec<Value>,
    /// `type == qemu` (templates skipped).
    pub vms: Vec<Value>,
    /// `type == lxc` (templates skipped).
    pub containers: Vec<Value>,
    /// `type == storage`.
    pub storage: Vec<Value>,
}

impl Resources {
    /// Splits the `data` array; `node` keeps only that node's entries.
    pub fn parse(body: &Value, node: Option<&str>) -> Result<Resources, String> {
        let list = data(body)
            .as_array()
            .ok_or("cluster/resources: `data` is not an array")?;
        let mut r = Resources::default();
        for e in list.iter().filter(|e| e.is_object()) {
            if let Some(n) = node {
                if e.get("node").and_then(Value::as_str) != Some(n) {
                    continue;
                }
            }
            let template = num(e, "template").unwrap_or(0.0) != 0.0;
            match e.get("type").and_then(Value::as_str) {
                Some("node") => r.nodes.push(e.clone()),
                Some("qemu") if !template => r.vms.push(e.clone()),
                Some("lxc") if !template => r.containers.push(e.clone()),
                Some("storage") => r.storage.push(e.clone()),
                _ => {}
            }
        }
        Ok(r)
    }

    /// Names of the nodes that are online, sorted: the ones worth asking.
    pub fn online_nodes(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.get("status").and_then(Value::as_str) == Some("online"))
            .filter_map(|n| text(n, "node"))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Node, guest and storage metrics from `/cluster/resources`.
pub fn resources(set: &mut MetricSet, r: &Resources, collect: &crate::config::Collect) {
    for n in &r.nodes {
        let Some(name) = text(n, "node") else {
            continue;
        };
        let a = [kv("proxmox.node", name)];
        let online = n.get("status").and_then(Value::as_str) == Some("online");
        set.gauge(
            "proxmox.node.up",
            "1",
            "1 when the cluster reports the node online",
            if online { 1.0 } else { 0.0 },
            &a,
        );
        if !online {
            continue;
        }
        set.opt_gauge(
            "proxmox.node.cpu.utilization",
            "1",
            "CPU usage of the node, 0..1",
            num(n, "cpu"),
            &a,
        );
        set.opt_gauge(
            "proxmox.node.cpu.count",
            "{cpu}",
            "Logical CPUs",
            num(n, "maxcpu"),
            &a,
        );
        set.opt_gauge(
            "proxmox.node.memory.usage",
            "By",
            "Memory used",
            num(n, "mem"),
            &a,
        );
        set.opt_gauge(
            "proxmox.node.memory.limit",
            "By",
            "Memory installed",
            num(n, "maxmem"),
            &a,
        );
        set.opt_gauge(
            "proxmox.node.disk.usage",
            "By",
            "Root file system used",
            num(n, "disk"),
            &a,
        );
        set.opt_gauge(
            "proxmox.node.disk.limit",
            "By",
            "Root file system size",
            num(n, "maxdisk"),
            &a,
        );
        set.opt_gauge(
            "proxmox.node.uptime",
            "s",
            "Node uptime",
            num(n, "uptime"),
            &a,
        );
    }
    if collect.vms {
        guests(set, "proxmox.vm", &r.vms, collect.network);
    }
    if collect.containers {
        guests(set, "proxmox.container", &r.containers, collect.network);
    }
    if collect.storage {
        for s in &r.storage {
            let (Some(node), Some(storage)) = (text(s, "node"), text(s, "storage")) else {
                continue;
            };
            let mut a = vec![kv("proxmox.node", node), kv("proxmox.storage", storage)];
            if let Some(t) = text(s, "plugintype") {
                a.push(kv("proxmox.storage.type", t));
            }
            a.push(kv(
                "proxmox.storage.shared",
                num(s, "shared").unwrap_or(0.0) != 0.0,
            ));
            let up = s.get("status").and_then(Value::as_str) == Some("available");
            set.gauge(
                "proxmox.storage.up",
                "1",
                "1 when the storage is available on the node",
                if up { 1.0 } else { 0.0 },
                &a,
            );
            set.opt_gauge(
                "proxmox.storage.usage",
                "By",
                "Space used",
                num(s, "disk"),
                &a,
            );
            set.opt_gauge(
                "proxmox.storage.limit",
                "By",
                "Space in all",
                num(s, "maxdisk"),
                &a,
            );
        }
    }
}

fn guests(set: &mut MetricSet, prefix: &str, list: &[Value], network: bool) {
    let name = |m: &str| format!("{prefix}.{m}");
    for g in list {
        let (Some(node), Some(vmid)) = (text(g, "node"), text(g, "vmid")) else {
            continue;
        };
        let mut a = vec![kv("proxmox.node", node), kv("proxmox.vmid", vmid)];
        if let Some(n) = text(g, "name") {
            a.push(kv("proxmox.guest.name", n));
        }
        let running = g.get("status").and_then(Value::as_str) == Some("running");
        set.gauge(
            &name("up"),
            "1",
            "1 when the guest is running",
            if running { 1.0 } else { 0.0 },
            &a,
        );
        let uptime = num(g, "uptime");
        set.opt_gauge(
            &name("cpu.utilization"),
            "1",
            "CPU usage relative to the guest's vCPUs, 0..1",
            num(g, "cpu"),
            &a,
        );
        set.opt_gauge(
            &name("cpu.count"),
            "{cpu}",
            "vCPUs assigned",
            num(g, "maxcpu"),
            &a,
        );
        set.opt_gauge(
            &name("memory.usage"),
            "By",
            "Memory used",
            num(g, "mem"),
            &a,
        );
        set.opt_gauge(
            &name("memory.limit"),
            "By",
            "Memory assigned",
            num(g, "maxmem"),
            &a,
        );
        set.opt_gauge(
            &name("disk.usage"),
            "By",
            "Disk space used",
            num(g, "disk"),
            &a,
        );
        set.opt_gauge(
            &name("disk.limit"),
            "By",
            "Disk space assigned",
            num(g, "maxdisk"),
            &a,
        );
        set.opt_gauge(&name("uptime"), "s", "Guest uptime", uptime, &a);
        if !running {
            continue;
        }
        if network {
            for (key, dir) in [("netin", "receive"), ("netout", "transmit")] {
                if let Some(v) = num(g, key) {
                    let mut a = a.clone();
                    a.push(kv("network.io.direction", dir));
                    set.counter(
                        &name("network.io"),
                        "By",
                        "Bytes through the guest's NICs since it started",
                        uptime,
                        v,
                        &a,
                    );
                }
            }
        }
        for (key, dir) in [("diskread", "read"), ("diskwrite", "write")] {
            if let Some(v) = num(g, key) {
                let mut a = a.clone();
                a.push(kv("disk.io.direction", dir));
                set.counter(
                    &name("disk.io"),
                    "By",
                    "Bytes read and written by the guest's disks since it started",
                    uptime,
                    v,
                    &a,
                );
            }
        }
    }
}

/// Cluster name and quorum metrics from `/cluster/status`; returns the cluster name.
pub fn cluster_status(set: &mut MetricSet, body: &Value) -> Result<Option<String>, String> {
    let list = data(body)
        .as_array()
        .ok_or("cluster/status: `data` is not an array")?;
    let cluster = list
        .iter()
        .find(|e| e.get("type").and_then(Value::as_str) == Some("cluster"));
    let name = cluster.and_then(|c| text(c, "name"));
    let a: Vec<KeyValue> = name
        .iter()
        .map(|n| kv("proxmox.cluster", n.as_str()))
        .collect();
    let members: Vec<&Value> = list
        .iter()
        .filter(|e| e.get("type").and_then(Value::as_str) == Some("node"))
        .collect();
    if let Some(c) = cluster {
        set.opt_gauge(
            "proxmox.cluster.quorate",
            "1",
            "1 when the cluster has quorum",
            num(c, "quorate"),
            &a,
        );
    }
    let configured = cluster
        .and_then(|c| num(c, "nodes"))
        .unwrap_or(members.len() as f64);
    set.gauge(
        "proxmox.cluster.nodes",
        "{node}",
        "Nodes configured in the cluster",
        configured,
        &a,
    );
    let online = members
        .iter()
        .filter(|m| num(m, "online").unwrap_or(0.0) != 0.0)
        .count();
    set.gauge(
        "proxmox.cluster.nodes.online",
        "{node}",
        "Cluster members online",
        online as f64,
        &a,
    );
    Ok(name)
}

/// Load, iowait, swap and root fs from `/nodes/{node}/status`.
pub fn node_status(set: &mut MetricSet, node: &str, body: &Value) -> Result<(), String> {
    let s = data(body);
    if !s.is_object() {
        return Err(format!("nodes/{node}/status: `data` is not an object"));
    }
    let a = [kv("proxmox.node", node)];
    if let Some(l) = s.get("loadavg").and_then(Value::as_array) {
        for (i, w) in ["1m", "5m", "15m"].iter().enumerate() {
            let v = match l.get(i) {
                Some(Value::String(x)) => x.trim().parse().ok(),
                Some(Value::Number(x)) => x.as_f64(),
                _ => None,
            };
            set.opt_gauge(
                &format!("proxmox.node.load.{w}"),
                "{thread}",
                "Load average",
                v,
                &a,
            );
        }
    }
    set.opt_gauge(
        "proxmox.node.cpu.iowait",
        "1",
        "Share of CPU time waiting for I/O, 0..1",
        num(s, "wait"),
        &a,
    );
    let empty = Value::Null;
    let swap = s.get("swap").unwrap_or(&empty);
    set.opt_gauge(
        "proxmox.node.swap.usage",
        "By",
        "Swap used",
        num(swap, "used"),
        &a,
    );
    set.opt_gauge(
        "proxmox.node.swap.limit",
        "By",
        "Swap size",
        num(swap, "total"),
        &a,
    );
    let mem = s.get("memory").unwrap_or(&empty);
    set.opt_gauge(
        "proxmox.node.memory.free",
        "By",
        "Memory free",
        num(mem, "free"),
        &a,
    );
    let root = s.get("rootfs").unwrap_or(&empty);
    set.opt_gauge(
        "proxmox.node.rootfs.available",
        "By",
        "Root file system space available",
        num(root, "avail"),
        &a,
    );
    let cpu = s.get("cpuinfo").unwrap_or(&empty);
    set.opt_gauge(
        "proxmox.node.cpu.sockets",
        "{socket}",
        "CPU sockets",
        num(cpu, "sockets"),
        &a,
    );
    Ok(())
}

/// HA quorum and per-service state from `/cluster/ha/status/current`.
pub fn ha_status(set: &mut MetricSet, body: &Value) -> Result<(), String> {
    let list = data(body)
        .as_array()
        .ok_or("cluster/ha/status/current: `data` is not an array")?;
    for e in list {
        match e.get("type").and_then(Value::as_str) {
            Some("quorum") => {
                let mut a = Vec::new();
                if let Some(n) = text(e, "node") {
                    a.push(kv("proxmox.node", n));
                }
                set.opt_gauge(
                    "proxmox.ha.quorate",
                    "1",
                    "1 when the HA manager sees quorum",
                    num(e, "quorate"),
                    &a,
                );
            }
            Some("service") => {
                let Some(sid) = text(e, "sid") else { continue };
                let state = text(e, "state").unwrap_or_else(|| "unknown".into());
                let mut a = vec![kv("proxmox.ha.sid", sid)];
                if let Some(n) = text(e, "node") {
                    a.push(kv("proxmox.node", n));
                }
                let ok = !matches!(state.as_str(), "error" | "fence" | "recovery" | "unknown");
                a.push(kv("proxmox.ha.state", state));
                set.gauge(
                    "proxmox.ha.service.ok",
                    "1",
                    "0 when the HA service is in error, fence or recovery; the state is an attribute",
                    if ok { 1.0 } else { 0.0 },
                    &a,
                );
            }
            _ => {}
        }
    }
    Ok(())
}

/// Replication jobs of one node from `/nodes/{node}/replication`.
pub fn replication(set: &mut MetricSet, node: &str, body: &Value) -> Result<(), String> {
    let list = data(body)
        .as_array()
        .ok_or_else(|| format!("nodes/{node}/replication: `data` is not an array"))?;
    for j in list {
        let Some(id) = text(j, "id") else { continue };
        let mut a = vec![kv("proxmox.node", node), kv("proxmox.replication.job", id)];
        if let Some(g) = text(j, "guest") {
            a.push(kv("proxmox.vmid", g));
        }
        if let Some(t) = text(j, "target") {
            a.push(kv("proxmox.replication.target", t));
        }
        let failed = j.get("error").is_some_and(|e| !e.is_null())
            || num(j, "fail_count").unwrap_or(0.0) > 0.0;
        set.gauge(
            "proxmox.replication.ok",
            "1",
            "0 when the job's last run failed (see fail_count)",
            if failed { 0.0 } else { 1.0 },
            &a,
        );
        set.opt_gauge(
            "proxmox.replication.fail_count",
            "{failure}",
            "Consecutive failed runs",
            num(j, "fail_count"),
            &a,
        );
        set.opt_gauge(
            "proxmox.replication.last_sync",
            "s",
            "Unix time of the last successful sync",
            num(j, "last_sync"),
            &a,
        );
        set.opt_gauge(
            "proxmox.replication.duration",
            "s",
            "Duration of the last run",
            num(j, "duration"),
            &a,
        );
    }
    Ok(())
}

/// One line per point, `name{k=v,...} kind value start`, sorted: the text form the
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
                    AnyValue::Bool(b) => format!("{}={b}", kv.key),
                    AnyValue::Int(i) => format!("{}={i}", kv.key),
                    AnyValue::Double(d) => format!("{}={d}", kv.key),
                    AnyValue::Bytes(_) => format!("{}=<bytes>", kv.key),
                })
                .collect();
            let v = match &p.value {
                PointValue::Double(d) => d.to_string(),
                PointValue::Int(i) => i.to_string(),
                other => format!("{other:?}"),
            };
            let kind = match m.kind {
                MetricKind::Sum if p.start_time_unix_nano == 0 => {
                    format!("counter[{}] start=unknown", m.unit)
                }
                MetricKind::Sum => format!(
                    "counter[{}] start=now-{}s",
                    m.unit,
                    p.time_unix_nano.saturating_sub(p.start_time_unix_nano) / 1_000_000_000
                ),
                _ => format!("gauge[{}]", m.unit),
            };
            lines.push(format!("{}{{{}}} {kind} {v}", m.name, attrs.join(",")));
        }
    }
    lines.sort();
    lines.join("\n") + "\n"
}
