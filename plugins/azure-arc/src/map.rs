//! The pure part: Azure Resource Manager list answers -> metrics. No I/O, no clock
//! (the caller passes `now`), so it is golden-tested from the documented example
//! responses (`tests/data/`, `tests/map_golden.rs`).
//!
//! Response shapes, from the REST reference and the azure-rest-api-specs examples:
//! - Arc-enabled servers, `Machines - List By Subscription` /
//!   `List By Resource Group`
//!   (<https://learn.microsoft.com/en-us/rest/api/hybridcompute/machines/list-by-subscription>):
//!   `{"value":[{"id","name","location","properties":{"status","lastStatusChange",
//!   "agentVersion","osType","osName","osSku","provisioningState",...}}],"nextLink"}`,
//!   `status` one of `Connected`, `Disconnected`, `Error` (and `Expired` once a
//!   machine has been disconnected for 45 days).
//! - Connected clusters, `Connected Cluster - List By Subscription`
//!   (<https://learn.microsoft.com/en-us/rest/api/hybridkubernetes/connected-cluster/list-by-subscription>):
//!   `properties.connectivityStatus` (`Connecting`, `Connected`, `Offline`,
//!   `Expired`, `AgentNotInstalled`), `kubernetesVersion`, `agentVersion`,
//!   `totalNodeCount`, `totalCoreCount`, `lastConnectivityTime`, `distribution`,
//!   `infrastructure`.
//! - Machine extensions, `Machine Extensions - List`
//!   (<https://learn.microsoft.com/en-us/rest/api/hybridcompute/machine-extensions/list>):
//!   `properties.publisher`, `type`, `typeHandlerVersion`, `provisioningState`.
//!
//! Every field may be absent or `null`; an item that does not have the expected
//! shape at all is skipped (and counted) rather than failing its page.
//!
//! Naming follows docs/integrations/README.md: `azure_arc.<object>.<measure>`,
//! identity as attributes. docs/integrations/azure-arc.md lists every metric.

use std::collections::BTreeMap;

use serde::Deserialize;
use tfo_plugin_api::{DataPoint, KeyValue, Metric, MetricKind, PointValue, Temporality};

/// Machine statuses always reported by `azure_arc.machines.count` (0 when none).
pub const MACHINE_STATUSES: [&str; 4] = ["Connected", "Disconnected", "Error", "Expired"];
/// Cluster connectivity statuses always reported by `azure_arc.clusters.count`.
pub const CLUSTER_STATUSES: [&str; 5] = [
    "Connected",
    "Connecting",
    "Offline",
    "Expired",
    "AgentNotInstalled",
];

/// One page of an ARM list answer. Items stay JSON until [`parse_items`], so one
/// odd item cannot make the whole page unreadable.
#[derive(Debug, Deserialize)]
pub struct Page {
    /// The items.
    #[serde(default)]
    pub value: Vec<serde_json::Value>,
    /// URL of the next page, absent on the last one.
    #[serde(default, rename = "nextLink")]
    pub next_link: Option<String>,
}

/// Items of type `T` out of raw page items, and how many did not fit `T`.
pub fn parse_items<T: for<'de> Deserialize<'de>>(raw: Vec<serde_json::Value>) -> (Vec<T>, usize) {
    let mut out = Vec::with_capacity(raw.len());
    let mut bad = 0;
    for v in raw {
        match serde_json::from_value(v) {
            Ok(t) => out.push(t),
            Err(_) => bad += 1,
        }
    }
    (out, bad)
}

/// An Arc-enabled server (`Microsoft.HybridCompute/machines`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    /// Full ARM resource id.
    pub id: String,
    /// Resource name.
    #[serde(default)]
    pub name: Option<String>,
    /// Azure region of the resource.
    #[serde(default)]
    pub location: Option<String>,
    /// Properties.
    #[serde(default)]
    pub properties: Option<MachineProperties>,
}

/// The machine properties the metrics use.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MachineProperties {
    /// `Connected`, `Disconnected`, `Error`, `Expired`.
    #[serde(default)]
    pub status: Option<String>,
    /// RFC 3339 time of the last status change.
    #[serde(default)]
    pub last_status_change: Option<String>,
    /// Connected Machine agent version.
    #[serde(default)]
    pub agent_version: Option<String>,
    /// `windows` / `linux`.
    #[serde(default)]
    pub os_type: Option<String>,
    /// OS name reported by the agent.
    #[serde(default)]
    pub os_name: Option<String>,
    /// OS SKU, e.g. `Windows Server 2022 Datacenter`.
    #[serde(default)]
    pub os_sku: Option<String>,
}

/// A connected Kubernetes cluster (`Microsoft.Kubernetes/connectedClusters`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConnectedCluster {
    /// Full ARM resource id.
    pub id: String,
    /// Resource name.
    #[serde(default)]
    pub name: Option<String>,
    /// Azure region of the resource.
    #[serde(default)]
    pub location: Option<String>,
    /// Properties.
    #[serde(default)]
    pub properties: Option<ClusterProperties>,
}

/// The cluster properties the metrics use.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterProperties {
    /// `Connecting`, `Connected`, `Offline`, `Expired`, `AgentNotInstalled`.
    #[serde(default)]
    pub connectivity_status: Option<String>,
    /// Kubernetes version.
    #[serde(default)]
    pub kubernetes_version: Option<String>,
    /// Arc agent version.
    #[serde(default)]
    pub agent_version: Option<String>,
    /// Number of nodes.
    #[serde(default)]
    pub total_node_count: Option<f64>,
    /// Number of CPU cores.
    #[serde(default)]
    pub total_core_count: Option<f64>,
    /// RFC 3339 time the cluster last talked to Azure.
    #[serde(default)]
    pub last_connectivity_time: Option<String>,
    /// Kubernetes distribution (`AKS`, `k3s`, `openshift`...).
    #[serde(default)]
    pub distribution: Option<String>,
    /// Where it runs (`azure_stack_hci`, `generic`...).
    #[serde(default)]
    pub infrastructure: Option<String>,
}

/// A machine extension (`Microsoft.HybridCompute/machines/extensions`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Extension {
    /// Full ARM resource id.
    #[serde(default)]
    pub id: Option<String>,
    /// Extension name.
    #[serde(default)]
    pub name: Option<String>,
    /// Properties.
    #[serde(default)]
    pub properties: Option<ExtensionProperties>,
}

/// The extension properties the metrics use.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionProperties {
    /// Publisher, e.g. `Microsoft.Azure.Monitor`.
    #[serde(default)]
    pub publisher: Option<String>,
    /// Extension type, e.g. `AzureMonitorLinuxAgent`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Handler version.
    #[serde(default)]
    pub type_handler_version: Option<String>,
    /// `Succeeded`, `Creating`, `Failed`...
    #[serde(default)]
    pub provisioning_state: Option<String>,
}

/// The extensions of one machine.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineExtensions {
    /// The machine's resource id.
    pub machine_id: String,
    /// The machine's name.
    pub machine_name: String,
    /// Its extensions.
    pub extensions: Vec<Extension>,
}

/// The resource group named in an ARM id (`.../resourceGroups/<rg>/...`).
pub fn resource_group(id: &str) -> Option<&str> {
    let mut it = id.split('/');
    while let Some(seg) = it.next() {
        if seg.eq_ignore_ascii_case("resourceGroups") {
            return it.next().filter(|s| !s.is_empty());
        }
    }
    None
}

/// The last segment of an ARM id (the resource name) when `name` is absent.
fn name_or_id(name: &Option<String>, id: &str) -> String {
    name.clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| id.rsplit('/').next().unwrap_or("").to_string())
}

/// Nanoseconds since the Unix epoch of an RFC 3339 time (`2024-05-01T10:00:00Z`,
/// any number of fractional digits, any offset; a time without an offset is read
/// as UTC). `None` when unreadable.
pub fn parse_time_ns(s: &str) -> Option<i128> {
    use time::{format_description::well_known::Rfc3339, OffsetDateTime};
    let s = s.trim();
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(&format!("{s}Z"), &Rfc3339))
        .ok()?;
    Some(t.unix_timestamp_nanos())
}

/// Seconds from `at` (RFC 3339) to `now_ns`, never negative (clock skew).
fn age_seconds(at: Option<&str>, now_ns: u64) -> Option<f64> {
    let t = parse_time_ns(at?)?;
    let d = i128::from(now_ns) - t;
    Some((d.max(0) as f64) / 1e9)
}

fn text(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn gauge(name: &str, unit: &str, description: &str, points: Vec<DataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: unit.into(),
        kind: MetricKind::Gauge,
        temporality: Temporality::Unspecified,
        is_monotonic: false,
        points: points.into(),
    }
}

fn point(now_ns: u64, value: PointValue, attributes: Vec<KeyValue>) -> DataPoint {
    DataPoint {
        attributes: attributes.into(),
        start_time_unix_nano: 0,
        time_unix_nano: now_ns,
        value,
    }
}

/// Counts by attribute value; `always` values appear even at 0.
fn counts(
    now_ns: u64,
    key: &str,
    always: &[&str],
    values: impl Iterator<Item = String>,
) -> Vec<DataPoint> {
    let mut m: BTreeMap<String, i64> = always.iter().map(|s| (s.to_string(), 0)).collect();
    for v in values {
        *m.entry(v).or_default() += 1;
    }
    m.into_iter()
        .map(|(k, n)| point(now_ns, PointValue::Int(n), vec![KeyValue::new(key, k)]))
        .collect()
}

/// Pushes `key=value` when the value is present and not blank.
fn push(attrs: &mut Vec<KeyValue>, key: &str, value: Option<&str>) {
    if let Some(v) = value.map(str::trim).filter(|s| !s.is_empty()) {
        attrs.push(KeyValue::new(key, v));
    }
}

/// A known status spelled the documented way whatever its case; others as sent.
fn canonical(status: Option<&str>, known: &[&str]) -> String {
    match status {
        None => "Unknown".to_string(),
        Some(s) => known
            .iter()
            .find(|k| k.eq_ignore_ascii_case(s))
            .map(|k| k.to_string())
            .unwrap_or_else(|| s.to_string()),
    }
}

/// Metrics of the Arc-enabled servers: counts by status, agent version and OS,
/// and per machine its status (1 = Connected) and the seconds since its last
/// status change.
pub fn machine_metrics(machines: &[Machine], now_ns: u64) -> Vec<Metric> {
    let empty = MachineProperties::default();
    let props = |m: &Machine| m.properties.as_ref().unwrap_or(&empty).clone();
    let status = |m: &Machine| canonical(text(&props(m).status), &MACHINE_STATUSES);

    let by_status = counts(
        now_ns,
        "azure_arc.status",
        &MACHINE_STATUSES,
        machines.iter().map(status),
    );
    let by_version = counts(
        now_ns,
        "azure_arc.agent.version",
        &[],
        machines.iter().map(|m| {
            text(&props(m).agent_version)
                .unwrap_or("unknown")
                .to_string()
        }),
    );
    let mut by_os: BTreeMap<(String, String), i64> = BTreeMap::new();
    for m in machines {
        let p = props(m);
        let os_type = text(&p.os_type).unwrap_or("unknown").to_ascii_lowercase();
        let os_name = text(&p.os_sku)
            .or(text(&p.os_name))
            .unwrap_or("unknown")
            .to_string();
        *by_os.entry((os_type, os_name)).or_default() += 1;
    }
    let by_os = by_os
        .into_iter()
        .map(|((t, n), c)| {
            point(
                now_ns,
                PointValue::Int(c),
                vec![KeyValue::new("os.type", t), KeyValue::new("os.name", n)],
            )
        })
        .collect();

    let mut status_points = Vec::new();
    let mut age_points = Vec::new();
    for m in machines {
        let p = props(m);
        let st = status(m);
        let mut attrs = vec![
            KeyValue::new("cloud.resource_id", m.id.as_str()),
            KeyValue::new("azure_arc.machine.name", name_or_id(&m.name, &m.id)),
        ];
        push(&mut attrs, "azure.resource_group", resource_group(&m.id));
        push(&mut attrs, "cloud.region", m.location.as_deref());
        let identity = attrs.clone();
        attrs.push(KeyValue::new("azure_arc.status", st.as_str()));
        push(
            &mut attrs,
            "os.type",
            text(&p.os_type).map(str::to_ascii_lowercase).as_deref(),
        );
        push(
            &mut attrs,
            "azure_arc.agent.version",
            text(&p.agent_version),
        );
        let up = i64::from(st == "Connected");
        status_points.push(point(now_ns, PointValue::Int(up), attrs));
        if let Some(age) = age_seconds(text(&p.last_status_change), now_ns) {
            age_points.push(point(now_ns, PointValue::Double(age), identity));
        }
    }

    let mut out = vec![
        gauge(
            "azure_arc.machines.count",
            "{machine}",
            "Arc-enabled servers by status",
            by_status,
        ),
        gauge(
            "azure_arc.machines.by_agent_version",
            "{machine}",
            "Arc-enabled servers by Connected Machine agent version",
            by_version,
        ),
        gauge(
            "azure_arc.machines.by_os",
            "{machine}",
            "Arc-enabled servers by operating system",
            by_os,
        ),
    ];
    if !status_points.is_empty() {
        out.push(gauge(
            "azure_arc.machine.connected",
            "1",
            "1 when the Arc-enabled server's status is Connected, else 0 (status in azure_arc.status)",
            status_points,
        ));
    }
    if !age_points.is_empty() {
        out.push(gauge(
            "azure_arc.machine.status_change.age",
            "s",
            "seconds since the server's status last changed",
            age_points,
        ));
    }
    out
}

/// Metrics of the connected Kubernetes clusters: counts by connectivity status,
/// and per cluster its connectivity (1 = Connected, with the versions as
/// attributes), node and core counts and seconds since it last connected.
pub fn cluster_metrics(clusters: &[ConnectedCluster], now_ns: u64) -> Vec<Metric> {
    let empty = ClusterProperties::default();
    let status = |c: &ConnectedCluster| {
        canonical(
            text(&c.properties.as_ref().unwrap_or(&empty).connectivity_status),
            &CLUSTER_STATUSES,
        )
    };
    let by_status = counts(
        now_ns,
        "azure_arc.connectivity_status",
        &CLUSTER_STATUSES,
        clusters.iter().map(status),
    );
    let mut connected = Vec::new();
    let mut nodes = Vec::new();
    let mut cores = Vec::new();
    let mut ages = Vec::new();
    for c in clusters {
        let p = c.properties.as_ref().unwrap_or(&empty);
        let mut attrs = vec![
            KeyValue::new("cloud.resource_id", c.id.as_str()),
            KeyValue::new("k8s.cluster.name", name_or_id(&c.name, &c.id)),
        ];
        push(&mut attrs, "azure.resource_group", resource_group(&c.id));
        push(&mut attrs, "cloud.region", c.location.as_deref());
        let identity = attrs.clone();
        let st = status(c);
        attrs.push(KeyValue::new("azure_arc.connectivity_status", st.as_str()));
        push(
            &mut attrs,
            "azure_arc.kubernetes.version",
            text(&p.kubernetes_version),
        );
        push(
            &mut attrs,
            "azure_arc.agent.version",
            text(&p.agent_version),
        );
        push(&mut attrs, "azure_arc.distribution", text(&p.distribution));
        push(
            &mut attrs,
            "azure_arc.infrastructure",
            text(&p.infrastructure),
        );
        connected.push(point(
            now_ns,
            PointValue::Int(i64::from(st == "Connected")),
            attrs,
        ));
        if let Some(n) = p.total_node_count.filter(|n| n.is_finite()) {
            nodes.push(point(now_ns, PointValue::Int(n as i64), identity.clone()));
        }
        if let Some(n) = p.total_core_count.filter(|n| n.is_finite()) {
            cores.push(point(now_ns, PointValue::Int(n as i64), identity.clone()));
        }
        if let Some(age) = age_seconds(text(&p.last_connectivity_time), now_ns) {
            ages.push(point(now_ns, PointValue::Double(age), identity));
        }
    }
    let mut out = vec![gauge(
        "azure_arc.clusters.count",
        "{cluster}",
        "connected Kubernetes clusters by connectivity status",
        by_status,
    )];
    for (name, unit, desc, points) in [
        (
            "azure_arc.cluster.connected",
            "1",
            "1 when the cluster's connectivityStatus is Connected, else 0",
            connected,
        ),
        (
            "azure_arc.cluster.nodes",
            "{node}",
            "nodes of the connected cluster (totalNodeCount)",
            nodes,
        ),
        (
            "azure_arc.cluster.cores",
            "{core}",
            "CPU cores of the connected cluster (totalCoreCount)",
            cores,
        ),
        (
            "azure_arc.cluster.last_connectivity.age",
            "s",
            "seconds since the cluster last connected to Azure",
            ages,
        ),
    ] {
        if !points.is_empty() {
            out.push(gauge(name, unit, desc, points));
        }
    }
    out
}

/// Metrics of the machine extensions: counts by provisioning state, and per
/// extension 1 when its provisioning state is `Succeeded` (else 0).
pub fn extension_metrics(list: &[MachineExtensions], now_ns: u64) -> Vec<Metric> {
    let empty = ExtensionProperties::default();
    let state = |e: &Extension| {
        text(&e.properties.as_ref().unwrap_or(&empty).provisioning_state)
            .unwrap_or("Unknown")
            .to_string()
    };
    let by_state = counts(
        now_ns,
        "azure_arc.provisioning_state",
        &[],
        list.iter().flat_map(|m| m.extensions.iter().map(state)),
    );
    let mut points = Vec::new();
    for m in list {
        for e in &m.extensions {
            let p = e.properties.as_ref().unwrap_or(&empty);
            let mut attrs = Vec::new();
            push(&mut attrs, "cloud.resource_id", e.id.as_deref());
            attrs.push(KeyValue::new(
                "azure_arc.machine.name",
                m.machine_name.as_str(),
            ));
            push(
                &mut attrs,
                "azure.resource_group",
                resource_group(&m.machine_id),
            );
            push(&mut attrs, "azure_arc.extension.name", text(&e.name));
            push(
                &mut attrs,
                "azure_arc.extension.publisher",
                text(&p.publisher),
            );
            push(&mut attrs, "azure_arc.extension.type", text(&p.kind));
            push(
                &mut attrs,
                "azure_arc.extension.version",
                text(&p.type_handler_version),
            );
            let st = state(e);
            attrs.push(KeyValue::new("azure_arc.provisioning_state", st.as_str()));
            let ok = i64::from(st.eq_ignore_ascii_case("Succeeded"));
            points.push(point(now_ns, PointValue::Int(ok), attrs));
        }
    }
    let mut out = vec![gauge(
        "azure_arc.extensions.count",
        "{extension}",
        "machine extensions by provisioning state",
        by_state,
    )];
    if !points.is_empty() {
        out.push(gauge(
            "azure_arc.extension.succeeded",
            "1",
            "1 when the extension's provisioningState is Succeeded, else 0",
            points,
        ));
    }
    out
}

/// `azure_arc.listing.up`: 1 when a listing (`machines`, `connected_clusters`,
/// `extensions`) was read completely in this collection, else 0.
pub fn listing_up(results: &[(&str, bool)], now_ns: u64) -> Metric {
    gauge(
        "azure_arc.listing.up",
        "1",
        "1 when the ARM listing was read completely in this collection, else 0",
        results
            .iter()
            .map(|(l, ok)| {
                point(
                    now_ns,
                    PointValue::Int(i64::from(*ok)),
                    vec![KeyValue::new("azure_arc.listing", *l)],
                )
            })
            .collect(),
    )
}

/// `azure_arc.arm.ratelimit.remaining_reads`: the lowest
/// `x-ms-ratelimit-remaining-{subscription,subscription-global,tenant}-reads` ARM
/// reported in this collection.
pub fn remaining_reads(value: i64, now_ns: u64) -> Metric {
    gauge(
        "azure_arc.arm.ratelimit.remaining_reads",
        "{request}",
        "reads left before ARM throttles (lowest x-ms-ratelimit-remaining-*-reads of the collection)",
        vec![point(now_ns, PointValue::Int(value), vec![])],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_group_from_id() {
        assert_eq!(
            resource_group("/subscriptions/s/resourceGroups/rg-1/providers/X/y/n"),
            Some("rg-1")
        );
        assert_eq!(
            resource_group("/subscriptions/s/resourcegroups/RG/providers/X"),
            Some("RG")
        );
        assert_eq!(resource_group("/subscriptions/s"), None);
        assert_eq!(resource_group(""), None);
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_time_ns("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(
            parse_time_ns("2020-12-17T07:06:33.9173186Z"),
            Some(1_608_188_793_917_318_600)
        );
        assert_eq!(
            parse_time_ns("1970-01-01T01:00:01+01:00"),
            Some(1_000_000_000)
        );
        assert_eq!(parse_time_ns("1970-01-01T00:00:02"), Some(2_000_000_000));
        assert_eq!(parse_time_ns("yesterday"), None);
        assert_eq!(parse_time_ns(""), None);
    }

    #[test]
    fn ages_never_go_negative() {
        assert_eq!(age_seconds(Some("2100-01-01T00:00:00Z"), 0), Some(0.0));
        assert_eq!(
            age_seconds(Some("1970-01-01T00:00:10Z"), 70_000_000_000),
            Some(60.0)
        );
        assert_eq!(age_seconds(Some("bad"), 1), None);
    }

    #[test]
    fn odd_items_are_skipped_not_fatal() {
        let page: Page = serde_json::from_str(
            r#"{"value":[{"id":"/subscriptions/s/resourceGroups/r/providers/Microsoft.HybridCompute/machines/a","properties":{"status":"Connected"}},
                         {"id":42},"nonsense",
                         {"id":"/x/b","properties":{"status":null,"agentVersion":7}}]}"#,
        )
        .unwrap();
        let (machines, bad) = parse_items::<Machine>(page.value);
        assert_eq!(machines.len(), 1);
        assert_eq!(bad, 3);
    }

    #[test]
    fn empty_inventory_still_reports_zero_counts() {
        let m = machine_metrics(&[], 5);
        assert_eq!(m[0].name.as_str(), "azure_arc.machines.count");
        assert_eq!(m[0].points.len(), 4);
        assert!(m[0]
            .points
            .iter()
            .all(|p| p.value == PointValue::Int(0) && p.time_unix_nano == 5));
        assert_eq!(m.len(), 3, "no per-machine metrics without machines");
        let c = cluster_metrics(&[], 5);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].points.len(), 5);
    }

    #[test]
    fn status_case_is_normalised_and_unknown_kept() {
        let ms = vec![
            Machine {
                id: "/a".into(),
                properties: Some(MachineProperties {
                    status: Some("connected".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Machine {
                id: "/b".into(),
                properties: Some(MachineProperties {
                    status: Some("Provisioning".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Machine {
                id: "/c".into(),
                ..Default::default()
            },
        ];
        let m = machine_metrics(&ms, 1);
        let counts: Vec<(String, PointValue)> = m[0]
            .points
            .iter()
            .map(|p| (format!("{:?}", p.attributes[0].value), p.value.clone()))
            .collect();
        assert_eq!(counts.len(), 6);
        let connected = m
            .iter()
            .find(|x| x.name.as_str() == "azure_arc.machine.connected")
            .unwrap();
        let vals: Vec<_> = connected.points.iter().map(|p| p.value.clone()).collect();
        assert_eq!(
            vals,
            [PointValue::Int(1), PointValue::Int(0), PointValue::Int(0)]
        );
    }
}
