//! Test support: drive the plugin through its exported root module as the agent
//! does (a recording [`TestHost`]), read fixtures, find points, and check that no
//! secret leaked into logs, health or errors.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;
pub use tfo_plugin_api::testing::TestHost;
use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, AnyValue, Batch, CreateError, DataPoint,
    HealthReport, PluginInstanceBox, PointValue,
};
pub use tfo_plugin_common::testing::{RecordedRequest, ScriptedResponse, TestServer};

/// Calls the plugin's `create` as the agent does.
pub fn create(h: &TestHost, config: &Value) -> Result<PluginInstanceBox, CreateError> {
    tfo_plugin_api::testing::create(
        tfo_plugin_api::plugin_module!(tfo_cisco),
        h,
        "cisco",
        &config.to_string(),
    )
}

/// A created and started instance.
pub fn instance(h: &TestHost, config: &Value) -> PluginInstanceBox {
    let mut i = create(h, config).unwrap_or_else(|e| panic!("create: {e:?}"));
    assert!(matches!(i.start(), RResult::ROk(())));
    i
}

/// One collection, which must succeed (failures show in points and health).
pub fn collect(inst: &mut PluginInstanceBox) -> Batch {
    match inst.collect() {
        RResult::ROk(b) => b,
        RResult::RErr(e) => panic!("collect failed: {e}"),
    }
}

/// The instance's health.
pub fn health(inst: &PluginInstanceBox) -> HealthReport {
    inst.health()
}

/// A fixture under tests/data.
pub fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A fixture parsed as JSON.
pub fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// 200 with a JSON body.
pub fn ok_json(body: String) -> ScriptedResponse {
    ScriptedResponse::status(200)
        .header("Content-Type", "application/json")
        .body(body)
}

/// A string attribute of a point.
pub fn attr<'a>(p: &'a DataPoint, key: &str) -> Option<&'a str> {
    p.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match &kv.value {
            AnyValue::Str(s) => Some(s.as_str()),
            _ => None,
        })
}

/// A point's value.
pub fn value(p: &DataPoint) -> f64 {
    match p.value {
        PointValue::Double(v) => v,
        PointValue::Int(v) => v as f64,
        _ => panic!("not a number"),
    }
}

/// Every point of metric `name`.
pub fn points<'a>(b: &'a Batch, name: &str) -> Vec<&'a DataPoint> {
    b.metrics
        .iter()
        .filter(|m| m.name == name)
        .flat_map(|m| m.points.iter())
        .collect()
}

/// The value of the single point of `name` whose attributes include all of `want`.
pub fn point(b: &Batch, name: &str, want: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = points(b, name)
        .into_iter()
        .filter(|p| want.iter().all(|(k, v)| attr(p, k) == Some(*v)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{name} {want:?}: {} matching points in {:#?}",
        found.len(),
        points(b, name)
    );
    value(found[0])
}

/// The number of `name` points whose attributes include all of `want`.
pub fn count(b: &Batch, name: &str, want: &[(&str, &str)]) -> usize {
    points(b, name)
        .into_iter()
        .filter(|p| want.iter().all(|(k, v)| attr(p, k) == Some(*v)))
        .count()
}

/// No secret appears in the host's log lines, in the health reason, nor in the
/// batch's attributes.
pub fn assert_no_secrets(h: &TestHost, inst: &PluginInstanceBox, b: &Batch, secrets: &[&str]) {
    let health = health(inst).reason.to_string();
    let logs = h.logs();
    assert!(!logs.is_empty(), "expected some log lines to check");
    let batch = format!("{b:?}");
    for s in secrets {
        for (_, l) in &logs {
            assert!(!l.contains(s), "secret {s:?} in log line {l:?}");
        }
        assert!(!health.contains(s), "secret {s:?} in health {health:?}");
        assert!(!batch.contains(s), "secret {s:?} in the batch");
    }
}

/// The request paths, for messages and order checks.
pub fn paths(reqs: &[RecordedRequest]) -> Vec<String> {
    reqs.iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}
