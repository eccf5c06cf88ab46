//! Test support: the plugin driven through its exported root module (as the agent
//! does), the fixtures of tests/data served by the strict local HTTPS TestServer,
//! and independent readers of what the server received and what the plugin
//! returned.
#![allow(dead_code)]

use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, AnyValue, Batch, CreateError, HealthReport,
    PluginError, PluginInstanceBox, PluginModRef, PointValue,
};
use tfo_plugin_common::testing::{RecordedRequest, ScriptedResponse, TestServer};

pub use tfo_plugin_api::testing::TestHost;

/// The password every test uses; it must never be logged.
pub const PASSWORD: &str = "Nx!pa55:w0rd/with=chars";
/// `Basic base64("monitoring:" + PASSWORD)`, computed independently (RFC 7617).
pub const BASIC: &str = "Basic bW9uaXRvcmluZzpOeCFwYTU1OncwcmQvd2l0aD1jaGFycw==";

/// The plugin's root module.
pub fn module() -> PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_nutanix)
}

/// Calls the plugin's `create` as the agent does.
pub fn create(
    host: &TestHost,
    config: &serde_json::Value,
) -> Result<PluginInstanceBox, CreateError> {
    tfo_plugin_api::testing::create(module(), host, "nutanix", &config.to_string())
}

/// A created and started instance.
pub fn instance(host: &TestHost, config: &serde_json::Value) -> PluginInstanceBox {
    let mut i = create(host, config).unwrap_or_else(|e| panic!("create failed: {e:?}"));
    assert!(matches!(i.start(), RResult::ROk(())));
    i
}

/// One collection through the FFI entry point.
pub fn collect(inst: &mut PluginInstanceBox) -> Result<Batch, PluginError> {
    match inst.collect() {
        RResult::ROk(b) => Ok(b),
        RResult::RErr(e) => Err(e),
    }
}

/// The instance's health.
pub fn health(inst: &PluginInstanceBox) -> HealthReport {
    inst.health()
}

/// A fixture's text.
pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A 200 answer with a fixture as JSON body.
pub fn ok(name: &str) -> ScriptedResponse {
    ScriptedResponse::status(200)
        .header("Content-Type", "application/json")
        .body(fixture(name))
}

/// A Prism Central config for `server`, two entities per page.
pub fn v3_config(server: &TestServer) -> serde_json::Value {
    serde_json::json!({
        "prism_central_url": server.url(""),
        "username": "monitoring",
        "password": PASSWORD,
        "ca_file": server.ca_file(),
        "page_size": 2,
        "timeout": "5s",
        "labels": {"site": "dc1"},
    })
}

/// A Prism Element config for `server`, two entities per page.
pub fn v2_config(server: &TestServer) -> serde_json::Value {
    serde_json::json!({
        "prism_element_url": server.url(""),
        "api_version": "v2.0",
        "username": "monitoring",
        "password": PASSWORD,
        "ca_file": server.ca_file(),
        "page_size": 2,
        "timeout": "5s",
    })
}

/// The requests of one full v3 collection: (path, fixture, expected JSON body
/// fields).
pub fn v3_plan() -> Vec<(&'static str, &'static str, serde_json::Value)> {
    use serde_json::json;
    vec![
        (
            "/api/nutanix/v3/clusters/list",
            "v3_clusters.json",
            json!({"kind": "cluster", "length": 2, "offset": 0}),
        ),
        (
            "/api/nutanix/v3/hosts/list",
            "v3_hosts.json",
            json!({"kind": "host", "length": 2, "offset": 0}),
        ),
        (
            "/api/nutanix/v3/vms/list",
            "v3_vms_page1.json",
            json!({"kind": "vm", "length": 2, "offset": 0}),
        ),
        (
            "/api/nutanix/v3/vms/list",
            "v3_vms_page2.json",
            json!({"kind": "vm", "length": 2, "offset": 2}),
        ),
        (
            "/api/nutanix/v3/vms/list",
            "v3_vms_page3.json",
            json!({"kind": "vm", "length": 2, "offset": 4}),
        ),
        (
            "/api/nutanix/v3/groups",
            "v3_groups_cluster.json",
            json!({"entity_type": "cluster", "group_member_count": 2, "group_member_offset": 0}),
        ),
        (
            "/api/nutanix/v3/groups",
            "v3_groups_host.json",
            json!({"entity_type": "host", "group_member_count": 2, "group_member_offset": 0}),
        ),
        (
            "/api/nutanix/v3/groups",
            "v3_groups_vm_page1.json",
            json!({"entity_type": "mh_vm", "group_member_count": 2, "group_member_offset": 0, "filter_criteria": "is_cvm==0"}),
        ),
        (
            "/api/nutanix/v3/groups",
            "v3_groups_vm_page2.json",
            json!({"entity_type": "mh_vm", "group_member_count": 2, "group_member_offset": 2}),
        ),
        (
            "/api/nutanix/v3/groups",
            "v3_groups_vm_page3.json",
            json!({"entity_type": "mh_vm", "group_member_count": 2, "group_member_offset": 4}),
        ),
    ]
}

/// Queues the answers of one full v3 collection.
pub fn script_v3(server: &TestServer) {
    for (_, f, _) in v3_plan() {
        server.push_response(ok(f));
    }
}

/// Checks one recorded request: basic auth, JSON, method, path and the body
/// fields (decoded independently with serde_json).
pub fn assert_v3_request(r: &RecordedRequest, path: &str, fields: &serde_json::Value) {
    assert_eq!(r.method.as_str(), "POST", "{path}");
    assert_eq!(r.path, path);
    assert_eq!(r.header("authorization"), Some(BASIC), "{path}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
    assert_eq!(r.header("accept"), Some("application/json"), "{path}");
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON body");
    for (k, v) in fields.as_object().unwrap() {
        assert_eq!(&body[k], v, "{path} {k} in {body}");
    }
    if body.get("entity_type").is_some() {
        let attrs: Vec<&str> = body["group_member_attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["attribute"].as_str().unwrap())
            .collect();
        assert!(attrs.contains(&"hypervisor_cpu_usage_ppm"), "{attrs:?}");
        assert!(
            attrs.contains(&"controller_avg_io_latency_usecs"),
            "{attrs:?}"
        );
    }
}

fn attr_is(attrs: &[tfo_plugin_api::KeyValue], k: &str, v: &str) -> bool {
    attrs
        .iter()
        .any(|kv| kv.key.as_str() == k && matches!(&kv.value, AnyValue::Str(s) if s.as_str() == v))
}

/// The value of the one point of `name` whose attributes include `attrs`.
pub fn value(batch: &Batch, name: &str, attrs: &[(&str, &str)]) -> Option<f64> {
    let m = batch.metrics.iter().find(|m| m.name.as_str() == name)?;
    let found: Vec<f64> = m
        .points
        .iter()
        .filter(|p| attrs.iter().all(|(k, v)| attr_is(&p.attributes, k, v)))
        .map(|p| match p.value {
            PointValue::Double(d) => d,
            _ => f64::NAN,
        })
        .collect();
    assert!(
        found.len() <= 1,
        "{name} {attrs:?} matches {} points",
        found.len()
    );
    found.first().copied()
}

/// Number of points of `name`.
pub fn count(batch: &Batch, name: &str) -> usize {
    batch
        .metrics
        .iter()
        .find(|m| m.name.as_str() == name)
        .map_or(0, |m| m.points.len())
}

/// Every text the plugin produced that a user could see: log lines, health,
/// and the given errors.
pub fn visible_text(host: &TestHost, inst: &PluginInstanceBox, errors: &[PluginError]) -> String {
    let mut t: Vec<String> = host.logs().into_iter().map(|(_, l)| l).collect();
    t.push(health(inst).reason.to_string());
    t.extend(errors.iter().map(|e| e.message.to_string()));
    t.join("\n")
}
