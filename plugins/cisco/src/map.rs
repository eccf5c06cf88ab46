//! Response bodies -> metrics: pure functions (no I/O, the clock is a parameter), so
//! each mapping is checked by golden tests against fixtures written from the vendor's
//! documented examples.
//!
//! Sources of the shapes:
//! - Catalyst Center Intent API reference (<https://developer.cisco.com/docs/dna-center/>):
//!   "Get Device list" (`/dna/intent/api/v1/network-device`), "Devices"
//!   (`/dna/intent/api/v1/device-health`, note the API's own spelling
//!   `cpuUlitilization`), "Get Overall Network Health" (`/network-health`, note
//!   `healthDistirubution`), "Get Overall Client Health" (`/client-health`). Every
//!   answer is `{"response": ...}`; numbers are read leniently (JSON numbers or
//!   numeric strings) because releases differ.
//! - Meraki Dashboard API v1 (<https://developer.cisco.com/meraki/api-v1/>):
//!   "Get Organizations", "Get Organization Devices Statuses", "Get Organization
//!   Appliance Uplink Statuses", "Get Organization Uplinks Statuses".
//!
//! Naming follows docs/integrations/README.md: `cisco.<object>.<measure>`, the
//! object's identity in attributes (`device.serial`, `organization.id`...), the
//! config's `labels` on every point, and `cisco.api` saying which API it came from.
//! Categorical states (Meraki device and uplink status) are state sets: one point
//! per known state, 1 for the current one and 0 for the others, so a series keeps
//! its identity when the state changes.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use tfo_plugin_api::{KeyValue, Metric};

/// The Meraki device statuses the API documents.
pub const MERAKI_DEVICE_STATUSES: [&str; 4] = ["online", "alerting", "offline", "dormant"];

/// The uplink statuses the two Meraki uplink operations document.
pub const MERAKI_UPLINK_STATUSES: [&str; 5] =
    ["active", "ready", "connecting", "not connected", "failed"];

/// Every metric this plugin produces: name, unit, description (docs and tests use
/// the same table).
pub const METRICS: &[(&str, &str, &str)] = &[
    (
        "cisco.api.up",
        "1",
        "1 when the API call of this collection succeeded, 0 when it failed",
    ),
    (
        "cisco.device.reachable",
        "1",
        "Catalyst Center reachabilityStatus is Reachable (1) or not (0)",
    ),
    (
        "cisco.device.managed",
        "1",
        "Catalyst Center collectionStatus is Managed (1) or not (0)",
    ),
    ("cisco.device.uptime", "s", "device uptime (uptimeSeconds)"),
    (
        "cisco.device.health_score",
        "1",
        "Catalyst Center overall device health score (0-10)",
    ),
    ("cisco.device.cpu.utilization", "%", "CPU utilization"),
    ("cisco.device.memory.utilization", "%", "memory utilization"),
    (
        "cisco.device.issues",
        "{issue}",
        "open Assurance issues of the device",
    ),
    (
        "cisco.network.health_score",
        "%",
        "overall network health (share of healthy devices)",
    ),
    (
        "cisco.network.devices",
        "{device}",
        "devices by monitoring state (healthy, unhealthy, unmonitored)",
    ),
    (
        "cisco.network.category.health_score",
        "%",
        "network health of one device category",
    ),
    (
        "cisco.network.category.devices",
        "{device}",
        "devices of one category by health (good, fair, bad, unmonitored)",
    ),
    (
        "cisco.client.health_score",
        "%",
        "client health score by client type",
    ),
    ("cisco.client.count", "{client}", "clients by client type"),
    (
        "cisco.client.health.count",
        "{client}",
        "clients by client type and health (good, fair, poor, idle, nodata, new)",
    ),
    (
        "cisco.device.status",
        "1",
        "Meraki device status as a state set (online, alerting, offline, dormant)",
    ),
    (
        "cisco.organization.devices",
        "{device}",
        "Meraki devices of an organization by status",
    ),
    (
        "cisco.uplink.status",
        "1",
        "Meraki uplink status as a state set (active, ready, connecting, not connected, failed)",
    ),
];

/// Metrics being built for one collection: one [`Metric`] per name, points appended
/// in the order they are produced, every point timestamped `now_ns` and carrying
/// the config labels after its identity attributes.
pub struct MetricSet {
    now_ns: u64,
    labels: Vec<KeyValue>,
    metrics: Vec<Metric>,
    index: HashMap<&'static str, usize>,
}

impl MetricSet {
    /// An empty set for a collection taken at `now_ns`.
    pub fn new(now_ns: u64, labels: &BTreeMap<String, String>) -> Self {
        MetricSet {
            now_ns,
            labels: labels
                .iter()
                .map(|(k, v)| KeyValue::new(k.as_str(), v.as_str()))
                .collect(),
            metrics: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Adds one gauge point to metric `name` (which must be in [`METRICS`]).
    pub fn gauge(&mut self, name: &'static str, value: f64, mut attrs: Vec<KeyValue>) {
        for l in &self.labels {
            if !attrs.iter().any(|a| a.key == l.key) {
                attrs.push(l.clone());
            }
        }
        let i = match self.index.get(name) {
            Some(i) => *i,
            None => {
                let (unit, desc) = METRICS
                    .iter()
                    .find(|(n, _, _)| *n == name)
                    .map(|(_, u, d)| (*u, *d))
                    .unwrap_or(("1", ""));
                let mut m = Metric::gauge(name, unit, self.now_ns, value, attrs);
                m.description = desc.into();
                self.metrics.push(m);
                self.index.insert(name, self.metrics.len() - 1);
                return;
            }
        };
        let mut m = Metric::gauge(name, "", self.now_ns, value, attrs);
        let p = m.points.pop().expect("one point");
        self.metrics[i].points.push(p);
    }

    /// Number of points so far.
    pub fn points(&self) -> usize {
        self.metrics.iter().map(|m| m.points.len()).sum()
    }

    /// The metrics.
    pub fn into_metrics(self) -> Vec<Metric> {
        self.metrics
    }
}

/// A number from a JSON number or a numeric string (`"12"`, `"3.5"`); `None` for
/// anything else, so an odd field never fails a whole answer.
pub fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64().filter(|f| f.is_finite()),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Adds `key = item[field]` when that is a non-empty string (or a number).
fn attr(attrs: &mut Vec<KeyValue>, key: &str, item: &Value, field: &str) {
    match item.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            attrs.push(KeyValue::new(key, s.trim()));
        }
        Some(Value::Number(n)) => attrs.push(KeyValue::new(key, n.to_string())),
        _ => {}
    }
}

/// Parses a body as JSON; the error names what was expected.
pub fn parse_json(body: &[u8], what: &str) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("{what}: answer is not JSON: {e}"))
}

/// The `response` array of a Catalyst Center answer and its `totalCount` when
/// given.
pub fn dnac_list(body: &Value, what: &str) -> Result<(Vec<Value>, Option<u64>), String> {
    let list = body
        .get("response")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{what}: answer has no \"response\" array"))?;
    let total = num(body.get("totalCount")).map(|t| t.max(0.0) as u64);
    Ok((list.clone(), total))
}

fn dnac_attrs() -> Vec<KeyValue> {
    vec![KeyValue::new("cisco.api", "dnac")]
}

/// `/network-device` items -> `cisco.device.reachable`, `cisco.device.managed`,
/// `cisco.device.uptime`.
pub fn dnac_network_devices(items: &[Value], out: &mut MetricSet) {
    for d in items {
        let mut a = dnac_attrs();
        attr(&mut a, "device.id", d, "id");
        attr(&mut a, "device.name", d, "hostname");
        attr(&mut a, "device.ip", d, "managementIpAddress");
        attr(&mut a, "device.serial", d, "serialNumber");
        attr(&mut a, "device.platform", d, "platformId");
        attr(&mut a, "device.family", d, "family");
        attr(&mut a, "device.type", d, "type");
        attr(&mut a, "device.role", d, "role");
        attr(&mut a, "device.software_version", d, "softwareVersion");
        if let Some(s) = text(d, "reachabilityStatus") {
            let v = s.eq_ignore_ascii_case("reachable") as u8;
            out.gauge("cisco.device.reachable", v.into(), a.clone());
        }
        if let Some(s) = text(d, "collectionStatus") {
            let v = s.eq_ignore_ascii_case("managed") as u8;
            out.gauge("cisco.device.managed", v.into(), a.clone());
        }
        if let Some(up) = num(d.get("uptimeSeconds")).filter(|v| *v >= 0.0) {
            out.gauge("cisco.device.uptime", up, a);
        }
    }
}

/// `/device-health` items -> `cisco.device.health_score`, `.cpu.utilization`,
/// `.memory.utilization`, `.issues`. Negative values (no data) are skipped.
pub fn dnac_device_health(items: &[Value], out: &mut MetricSet) {
    for d in items {
        let mut a = dnac_attrs();
        attr(&mut a, "device.name", d, "name");
        attr(&mut a, "device.ip", d, "ipAddress");
        attr(&mut a, "device.model", d, "model");
        attr(&mut a, "device.family", d, "deviceFamily");
        attr(&mut a, "device.type", d, "deviceType");
        attr(&mut a, "device.location", d, "location");
        let nonneg = |v: Option<f64>| v.filter(|x| *x >= 0.0);
        if let Some(v) = nonneg(num(d.get("overallHealth"))) {
            out.gauge("cisco.device.health_score", v, a.clone());
        }
        // The API spells it `cpuUlitilization`; accept the corrected name too.
        let cpu = num(d.get("cpuUlitilization")).or_else(|| num(d.get("cpuUtilization")));
        if let Some(v) = nonneg(cpu) {
            out.gauge("cisco.device.cpu.utilization", v, a.clone());
        }
        if let Some(v) = nonneg(num(d.get("memoryUtilization"))) {
            out.gauge("cisco.device.memory.utilization", v, a.clone());
        }
        if let Some(v) = nonneg(num(d.get("issueCount"))) {
            out.gauge("cisco.device.issues", v, a);
        }
    }
}

/// `/network-health` answer -> `cisco.network.health_score`, `cisco.network.devices`
/// and the per-category metrics of `healthDistirubution`.
pub fn dnac_network_health(body: &Value, out: &mut MetricSet) {
    let score = num(body.get("latestHealthScore")).or_else(|| {
        body.get("response")
            .and_then(Value::as_array)
            .and_then(|r| r.last())
            .and_then(|p| num(p.get("healthScore")))
    });
    if let Some(s) = score.filter(|s| *s >= 0.0) {
        out.gauge("cisco.network.health_score", s, dnac_attrs());
    }
    for (field, state) in [
        ("monitoredHealthyDevices", "healthy"),
        ("monitoredUnHealthyDevices", "unhealthy"),
        ("unMonitoredDevices", "unmonitored"),
    ] {
        if let Some(v) = num(body.get(field)) {
            let mut a = dnac_attrs();
            a.push(KeyValue::new("state", state));
            out.gauge("cisco.network.devices", v, a);
        }
    }
    let dist = body
        .get("healthDistirubution")
        .or_else(|| body.get("healthDistribution"))
        .and_then(Value::as_array);
    for c in dist.into_iter().flatten() {
        let Some(cat) = text(c, "category") else {
            continue;
        };
        let mut a = dnac_attrs();
        a.push(KeyValue::new("category", cat));
        if let Some(v) = num(c.get("healthScore")).filter(|v| *v >= 0.0) {
            out.gauge("cisco.network.category.health_score", v, a.clone());
        }
        for (field, health) in [
            ("goodCount", "good"),
            ("fairCount", "fair"),
            ("badCount", "bad"),
            ("unmonCount", "unmonitored"),
        ] {
            if let Some(v) = num(c.get(field)) {
                let mut a = a.clone();
                a.push(KeyValue::new("health", health));
                out.gauge("cisco.network.category.devices", v, a);
            }
        }
    }
}

fn category(v: &Value, kind: &str) -> Option<String> {
    let c = v.get("scoreCategory")?;
    if text(c, "scoreCategory")? != kind {
        return None;
    }
    text(c, "value").map(str::to_ascii_lowercase)
}

/// `/client-health` answer -> `cisco.client.health_score`, `cisco.client.count`
/// (per `CLIENT_TYPE`: all, wired, wireless) and `cisco.client.health.count` (per
/// `SCORE_TYPE` inside each type). A score of -1 (no data) is skipped.
pub fn dnac_client_health(body: &Value, out: &mut MetricSet) {
    let sites = body.get("response").and_then(Value::as_array);
    for site in sites.into_iter().flatten() {
        let details = site.get("scoreDetail").and_then(Value::as_array);
        for d in details.into_iter().flatten() {
            let Some(ctype) = category(d, "CLIENT_TYPE") else {
                continue;
            };
            let mut a = dnac_attrs();
            attr(&mut a, "site.id", site, "siteId");
            a.push(KeyValue::new("client.type", ctype));
            if let Some(v) = num(d.get("scoreValue")).filter(|v| *v >= 0.0) {
                out.gauge("cisco.client.health_score", v, a.clone());
            }
            if let Some(v) = num(d.get("clientCount")) {
                out.gauge("cisco.client.count", v, a.clone());
            }
            let list = d.get("scoreList").and_then(Value::as_array);
            for s in list.into_iter().flatten() {
                let (Some(h), Some(v)) = (category(s, "SCORE_TYPE"), num(s.get("clientCount")))
                else {
                    continue;
                };
                let mut a = a.clone();
                a.push(KeyValue::new("health", h));
                out.gauge("cisco.client.health.count", v, a);
            }
        }
    }
}

/// One Meraki organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    /// Organization id (a decimal string).
    pub id: String,
    /// Organization name, when known (not when ids come from the config).
    pub name: Option<String>,
    /// `api.enabled`: organizations with the API switched off refuse every call.
    pub api_enabled: bool,
}

/// `GET /organizations` items -> organizations (entries without an id are skipped).
pub fn meraki_organizations(items: &[Value]) -> Vec<Org> {
    items
        .iter()
        .filter_map(|o| {
            let id = match o.get("id")? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some(Org {
                id,
                name: text(o, "name").map(str::to_string),
                api_enabled: o
                    .get("api")
                    .and_then(|a| a.get("enabled"))
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
            })
        })
        .collect()
}

fn org_attrs(org: &Org) -> Vec<KeyValue> {
    let mut a = vec![
        KeyValue::new("cisco.api", "meraki"),
        KeyValue::new("organization.id", org.id.as_str()),
    ];
    if let Some(n) = &org.name {
        a.push(KeyValue::new("organization.name", n.as_str()));
    }
    a
}

fn state_set(
    out: &mut MetricSet,
    name: &'static str,
    known: &[&str],
    current: &str,
    attrs: &[KeyValue],
) {
    let mut states: Vec<&str> = known.to_vec();
    if !states.contains(&current) {
        states.push(current);
    }
    for s in states {
        let mut a = attrs.to_vec();
        a.push(KeyValue::new("status", s));
        out.gauge(name, (s == current) as u8 as f64, a);
    }
}

/// `devices/statuses` items of one organization -> `cisco.device.status` per device
/// and `cisco.organization.devices` per status (every documented status, 0 when
/// none; an undocumented one as it comes).
pub fn meraki_device_statuses(items: &[Value], org: &Org, out: &mut MetricSet) {
    let mut counts: BTreeMap<String, u64> = MERAKI_DEVICE_STATUSES
        .iter()
        .map(|s| (s.to_string(), 0))
        .collect();
    for d in items {
        let Some(status) = text(d, "status").map(str::to_ascii_lowercase) else {
            continue;
        };
        *counts.entry(status.clone()).or_default() += 1;
        let mut a = org_attrs(org);
        attr(&mut a, "network.id", d, "networkId");
        attr(&mut a, "device.serial", d, "serial");
        attr(&mut a, "device.name", d, "name");
        attr(&mut a, "device.model", d, "model");
        attr(&mut a, "device.product_type", d, "productType");
        state_set(
            out,
            "cisco.device.status",
            &MERAKI_DEVICE_STATUSES,
            &status,
            &a,
        );
    }
    let order = MERAKI_DEVICE_STATUSES
        .iter()
        .map(|s| s.to_string())
        .chain(
            counts
                .keys()
                .filter(|k| !MERAKI_DEVICE_STATUSES.contains(&k.as_str()))
                .cloned(),
        )
        .collect::<Vec<_>>();
    for s in order {
        let mut a = org_attrs(org);
        a.push(KeyValue::new("status", s.as_str()));
        out.gauge("cisco.organization.devices", counts[&s] as f64, a);
    }
}

/// Uplink status items (either operation) of one organization ->
/// `cisco.uplink.status` per device uplink.
pub fn meraki_uplinks(items: &[Value], org: &Org, out: &mut MetricSet) {
    for d in items {
        let mut base = org_attrs(org);
        attr(&mut base, "network.id", d, "networkId");
        attr(&mut base, "device.serial", d, "serial");
        attr(&mut base, "device.model", d, "model");
        let uplinks = d.get("uplinks").and_then(Value::as_array);
        for u in uplinks.into_iter().flatten() {
            let Some(status) = text(u, "status").map(str::to_ascii_lowercase) else {
                continue;
            };
            let mut a = base.clone();
            attr(&mut a, "uplink.interface", u, "interface");
            state_set(
                out,
                "cisco.uplink.status",
                &MERAKI_UPLINK_STATUSES,
                &status,
                &a,
            );
        }
    }
}

/// The `rel="next"` target of an RFC 8288 `Link` header value (Meraki writes
/// `<url>; rel=next`, quotes optional), if any.
pub fn link_next(header: &str) -> Option<String> {
    let mut rest = header;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after.find('>')?;
        let url = &after[..end];
        let params_end = after[end..]
            .find('<')
            .map(|i| end + i)
            .unwrap_or(after.len());
        let params = &after[end + 1..params_end];
        let is_next = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            let Some(v) = p.strip_prefix("rel=") else {
                return false;
            };
            v.trim_matches('"')
                .split_ascii_whitespace()
                .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(url.to_string());
        }
        rest = &after[params_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tfo_plugin_api::{AnyValue, PointValue};

    const NOW: u64 = 1_764_000_000_000_000_000;

    /// Renders metrics as sorted `name{k=v,...} value` lines: the golden format.
    pub fn render(ms: &[Metric]) -> Vec<String> {
        let mut out = Vec::new();
        for m in ms {
            for p in m.points.iter() {
                let attrs: Vec<String> = p
                    .attributes
                    .iter()
                    .map(|kv| {
                        let v = match &kv.value {
                            AnyValue::Str(s) => s.to_string(),
                            other => format!("{other:?}"),
                        };
                        format!("{}={}", kv.key, v)
                    })
                    .collect();
                let PointValue::Double(v) = p.value else {
                    panic!("not a double")
                };
                assert_eq!(p.time_unix_nano, NOW);
                out.push(format!("{}{{{}}} {}", m.name, attrs.join(","), v));
            }
        }
        out
    }

    fn set() -> MetricSet {
        MetricSet::new(NOW, &BTreeMap::from([("site".into(), "paris".into())]))
    }

    #[test]
    fn network_devices_golden() {
        let body = json!({"response": [
            {"id": "f0cb8464-1ce7-4afe-9c0d-a4b0cc5ee84c", "hostname": "cat_9k_1.abc.inc",
             "managementIpAddress": "10.10.22.66", "serialNumber": "FCW2136L0AK",
             "platformId": "C9300-24U", "family": "Switches and Hubs",
             "type": "Cisco Catalyst 9300 Switch", "role": "ACCESS",
             "softwareVersion": "16.6.1", "reachabilityStatus": "Reachable",
             "collectionStatus": "Managed", "uptimeSeconds": 3849120,
             "upTime": "44 days, 13:12:00.00"},
            {"id": "x", "hostname": "ap-1", "reachabilityStatus": "Unreachable",
             "collectionStatus": "Could Not Synchronize", "uptimeSeconds": "oops"}
        ], "version": "1.0"});
        let (items, total) = dnac_list(&body, "network-device").unwrap();
        assert_eq!(total, None);
        let mut s = set();
        dnac_network_devices(&items, &mut s);
        let ms = s.into_metrics();
        assert_eq!(ms[0].unit.as_str(), "1");
        assert_eq!(ms[2].unit.as_str(), "s");
        let full = "cisco.api=dnac,device.id=f0cb8464-1ce7-4afe-9c0d-a4b0cc5ee84c,device.name=cat_9k_1.abc.inc,device.ip=10.10.22.66,device.serial=FCW2136L0AK,device.platform=C9300-24U,device.family=Switches and Hubs,device.type=Cisco Catalyst 9300 Switch,device.role=ACCESS,device.software_version=16.6.1,site=paris";
        assert_eq!(
            render(&ms),
            vec![
                format!("cisco.device.reachable{{{full}}} 1"),
                "cisco.device.reachable{cisco.api=dnac,device.id=x,device.name=ap-1,site=paris} 0"
                    .to_string(),
                format!("cisco.device.managed{{{full}}} 1"),
                "cisco.device.managed{cisco.api=dnac,device.id=x,device.name=ap-1,site=paris} 0"
                    .to_string(),
                format!("cisco.device.uptime{{{full}}} 3849120"),
            ]
        );
    }

    #[test]
    fn device_health_golden() {
        let body = json!({"version": "1.0", "totalCount": 1, "response": [
            {"name": "cat_9k_1", "model": "C9300-24U", "osVersion": "16.6.1",
             "ipAddress": "10.10.22.66", "overallHealth": 10, "issueCount": 2,
             "location": "Global/SJC/Bld23", "deviceFamily": "SWITCHES_AND_HUBS",
             "deviceType": "Cisco Catalyst 9300 Switch", "macAddress": "00:11:22:33:44:55",
             "cpuUlitilization": 3.5, "cpuHealth": 10, "memoryUtilization": 53,
             "reachabilityHealth": "REACHABLE"},
            {"name": "ap-2", "overallHealth": -1, "cpuUtilization": "7"}
        ]});
        let (items, total) = dnac_list(&body, "device-health").unwrap();
        assert_eq!(total, Some(1));
        let mut s = MetricSet::new(NOW, &BTreeMap::new());
        dnac_device_health(&items, &mut s);
        let a = "cisco.api=dnac,device.name=cat_9k_1,device.ip=10.10.22.66,device.model=C9300-24U,device.family=SWITCHES_AND_HUBS,device.type=Cisco Catalyst 9300 Switch,device.location=Global/SJC/Bld23";
        assert_eq!(
            render(&s.into_metrics()),
            vec![
                format!("cisco.device.health_score{{{a}}} 10"),
                format!("cisco.device.cpu.utilization{{{a}}} 3.5"),
                "cisco.device.cpu.utilization{cisco.api=dnac,device.name=ap-2} 7".to_string(),
                format!("cisco.device.memory.utilization{{{a}}} 53"),
                format!("cisco.device.issues{{{a}}} 2"),
            ]
        );
    }

    #[test]
    fn network_health_golden() {
        let body = json!({
            "version": "1.0",
            "response": [{"time": "2025-11-25T10:00:00.000+0000", "healthScore": 90,
                          "totalCount": 10, "goodCount": 9, "unmonCount": 0, "fairCount": 0,
                          "badCount": 1, "entity": null, "timeinMillis": 1764064800000u64}],
            "measuredBy": "global", "latestMeasuredByEntity": null,
            "latestHealthScore": 90, "monitoredDevices": 10, "monitoredHealthyDevices": 9,
            "monitoredUnHealthyDevices": 1, "unMonitoredDevices": 2,
            "healthDistirubution": [
                {"category": "Access", "totalCount": 4, "healthScore": 75,
                 "goodPercentage": 75, "badPercentage": 25, "fairPercentage": 0,
                 "unmonPercentage": 0, "goodCount": 3, "badCount": 1, "fairCount": 0,
                 "unmonCount": 0, "kpiMetrics": []}
            ]
        });
        let mut s = MetricSet::new(NOW, &BTreeMap::new());
        dnac_network_health(&body, &mut s);
        assert_eq!(
            render(&s.into_metrics()),
            vec![
                "cisco.network.health_score{cisco.api=dnac} 90",
                "cisco.network.devices{cisco.api=dnac,state=healthy} 9",
                "cisco.network.devices{cisco.api=dnac,state=unhealthy} 1",
                "cisco.network.devices{cisco.api=dnac,state=unmonitored} 2",
                "cisco.network.category.health_score{cisco.api=dnac,category=Access} 75",
                "cisco.network.category.devices{cisco.api=dnac,category=Access,health=good} 3",
                "cisco.network.category.devices{cisco.api=dnac,category=Access,health=fair} 0",
                "cisco.network.category.devices{cisco.api=dnac,category=Access,health=bad} 1",
                "cisco.network.category.devices{cisco.api=dnac,category=Access,health=unmonitored} 0",
            ]
        );
    }

    #[test]
    fn client_health_golden() {
        let cat = |k: &str, v: &str| json!({"scoreCategory": k, "value": v});
        let body = json!({"response": [{"siteId": "global", "scoreDetail": [
            {"scoreCategory": cat("CLIENT_TYPE", "ALL"), "scoreValue": 36, "clientCount": 66,
             "clientUniqueCount": 66, "starttime": 1, "endtime": 2},
            {"scoreCategory": cat("CLIENT_TYPE", "WIRED"), "scoreValue": -1, "clientCount": 2,
             "scoreList": [
                {"scoreCategory": cat("SCORE_TYPE", "POOR"), "scoreValue": -1, "clientCount": 0},
                {"scoreCategory": cat("SCORE_TYPE", "GOOD"), "scoreValue": -1, "clientCount": 2}
             ]}
        ]}]});
        let mut s = MetricSet::new(NOW, &BTreeMap::new());
        dnac_client_health(&body, &mut s);
        assert_eq!(
            render(&s.into_metrics()),
            vec![
                "cisco.client.health_score{cisco.api=dnac,site.id=global,client.type=all} 36",
                "cisco.client.count{cisco.api=dnac,site.id=global,client.type=all} 66",
                "cisco.client.count{cisco.api=dnac,site.id=global,client.type=wired} 2",
                "cisco.client.health.count{cisco.api=dnac,site.id=global,client.type=wired,health=poor} 0",
                "cisco.client.health.count{cisco.api=dnac,site.id=global,client.type=wired,health=good} 2",
            ]
        );
    }

    #[test]
    fn meraki_devices_and_counts_golden() {
        let orgs = meraki_organizations(&[
            json!({"id": "2930418", "name": "My organization", "url": "https://dashboard.meraki.com/o/VjjsAd/manage/organization/overview", "api": {"enabled": true}}),
            json!({"id": 549236, "name": "Off", "api": {"enabled": false}}),
            json!({"name": "no id"}),
        ]);
        assert_eq!(orgs.len(), 2);
        assert_eq!(orgs[1].id, "549236");
        assert!(!orgs[1].api_enabled);
        let items = vec![
            json!({"name": "My AP", "serial": "Q234-ABCD-5678", "mac": "00:11:22:33:44:55",
                   "publicIp": "123.123.123.1", "networkId": "N_24329156", "status": "online",
                   "lastReportedAt": "2018-02-11T00:00:00.090210Z", "productType": "wireless",
                   "model": "MR34", "tags": ["tag1"]}),
            json!({"serial": "Q234-ABCD-0002", "status": "Alerting"}),
        ];
        let mut s = MetricSet::new(NOW, &BTreeMap::new());
        meraki_device_statuses(&items, &orgs[0], &mut s);
        let o = "cisco.api=meraki,organization.id=2930418,organization.name=My organization";
        let d1 = format!("{o},network.id=N_24329156,device.serial=Q234-ABCD-5678,device.name=My AP,device.model=MR34,device.product_type=wireless");
        let d2 = format!("{o},device.serial=Q234-ABCD-0002");
        let mut want = Vec::new();
        for (d, cur) in [(&d1, "online"), (&d2, "alerting")] {
            for st in MERAKI_DEVICE_STATUSES {
                want.push(format!(
                    "cisco.device.status{{{d},status={st}}} {}",
                    (st == cur) as u8
                ));
            }
        }
        for (st, n) in [
            ("online", 1),
            ("alerting", 1),
            ("offline", 0),
            ("dormant", 0),
        ] {
            want.push(format!("cisco.organization.devices{{{o},status={st}}} {n}"));
        }
        assert_eq!(render(&s.into_metrics()), want);
    }

    #[test]
    fn meraki_uplinks_golden() {
        let org = Org {
            id: "1".into(),
            name: None,
            api_enabled: true,
        };
        let items = vec![
            json!({"networkId": "N_24329156", "serial": "Q234-ABCD-5678",
            "model": "MX68C", "lastReportedAt": "2018-02-11T00:00:00Z",
            "uplinks": [
                {"interface": "wan1", "status": "active", "ip": "1.2.3.4", "ipAssignedBy": "static"},
                {"interface": "cellular", "status": "weird", "provider": "at&t"}
            ]}),
        ];
        let mut s = MetricSet::new(NOW, &BTreeMap::new());
        meraki_uplinks(&items, &org, &mut s);
        let lines = render(&s.into_metrics());
        let b = "cisco.api=meraki,organization.id=1,network.id=N_24329156,device.serial=Q234-ABCD-5678,device.model=MX68C";
        assert_eq!(lines.len(), 5 + 6);
        assert_eq!(
            lines[0],
            format!("cisco.uplink.status{{{b},uplink.interface=wan1,status=active}} 1")
        );
        assert_eq!(
            lines[3],
            format!("cisco.uplink.status{{{b},uplink.interface=wan1,status=not connected}} 0")
        );
        assert_eq!(
            lines[10],
            format!("cisco.uplink.status{{{b},uplink.interface=cellular,status=weird}} 1")
        );
    }

    #[test]
    fn lenient_numbers_and_bad_shapes() {
        assert_eq!(num(Some(&json!("12"))), Some(12.0));
        assert_eq!(num(Some(&json!(" 3.5 "))), Some(3.5));
        assert_eq!(num(Some(&json!("n/a"))), None);
        assert_eq!(num(Some(&json!(null))), None);
        assert_eq!(num(None), None);
        assert!(dnac_list(&json!({"response": {}}), "x").is_err());
        assert!(dnac_list(&json!([1]), "x").is_err());
        assert!(parse_json(b"<html>", "x").is_err());
        // Wrong shapes inside items never panic.
        let mut s = MetricSet::new(NOW, &BTreeMap::new());
        dnac_network_devices(&[json!(1), json!(null), json!({"hostname": 5})], &mut s);
        dnac_network_health(
            &json!({"healthDistirubution": [1, {"category": 2}]}),
            &mut s,
        );
        dnac_client_health(
            &json!({"response": [{"scoreDetail": [{"scoreCategory": 1}]}]}),
            &mut s,
        );
        meraki_uplinks(
            &[json!({"uplinks": [{"status": 1}]})],
            &Org {
                id: "1".into(),
                name: None,
                api_enabled: true,
            },
            &mut s,
        );
        assert_eq!(s.points(), 0);
    }

    #[test]
    fn link_header_next() {
        let h = "<https://api.meraki.com/api/v1/organizations/1/devices/statuses?perPage=3&startingAfter=0000-0000-0000>; rel=first, <https://api.meraki.com/api/v1/organizations/1/devices/statuses?perPage=3&startingAfter=Q234-ABCD-0003>; rel=next, <https://api.meraki.com/api/v1/organizations/1/devices/statuses?endingBefore=ZZZZ-ZZZZ-ZZZZ&perPage=3>; rel=last";
        assert_eq!(
            link_next(h).as_deref(),
            Some("https://api.meraki.com/api/v1/organizations/1/devices/statuses?perPage=3&startingAfter=Q234-ABCD-0003")
        );
        assert_eq!(
            link_next(r#"<https://a/x?p=2>; rel="next""#).as_deref(),
            Some("https://a/x?p=2")
        );
        assert_eq!(link_next(r#"<https://a/1>; rel="prev first""#), None);
        assert_eq!(link_next("<https://a/1>; rel=last"), None);
        assert_eq!(link_next("garbage <unterminated"), None);
        assert_eq!(link_next(""), None);
    }

    #[test]
    fn every_metric_name_follows_the_naming_rule() {
        for (n, u, d) in METRICS {
            assert!(n.starts_with("cisco.") && !d.is_empty() && !u.is_empty());
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'),
                "{n}"
            );
        }
    }
}
