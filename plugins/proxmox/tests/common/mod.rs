//! Test support: the plugin driven through its exported root module (as the agent
//! does), the fixtures of tests/data served by the strict local HTTPS TestServer,
//! and independent readers of what the server received and what the plugin
//! returned.
#![allow(dead_code)]

use std::time::Duration;

use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, AnyValue, Batch, CreateError, HealthReport,
    PluginError, PluginInstanceBox, PluginModRef, PointValue,
};
use tfo_plugin_common::testing::{RecordedRequest, ScriptedResponse, TestServer};

pub use tfo_plugin_api::testing::TestHost;

/// How long a test waits for anything.
pub const WAIT: Duration = Duration::from_secs(10);
/// The API token secret every token test uses; it must never be logged.
pub const TOKEN_SECRET: &str = "5f2c6a0e-7d1b-4c8e-9a3f-0b1d2e3f4a5b";
/// The password every ticket test uses; it must never be logged.
pub const PASSWORD: &str = "Pr0x&mox=pa ss%word";

/// The plugin's root module.
pub fn module() -> PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_proxmox)
}

/// Calls the plugin's `create` as the agent does.
pub fn create(
    host: &TestHost,
    config: &serde_json::Value,
) -> Result<PluginInstanceBox, CreateError> {
    tfo_plugin_api::testing::create(module(), host, "proxmox", &config.to_string())
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
        .header("Content-Type", "application/json;charset=UTF-8")
        .body(fixture(name))
}

/// A token-auth config for `server`.
pub fn token_config(server: &TestServer) -> serde_json::Value {
    serde_json::json!({
        "api_url": server.url(""),
        "username": "monitoring",
        "realm": "pve",
        "token_id": "tfo",
        "token_secret": TOKEN_SECRET,
        "ca_file": server.ca_file(),
        "timeout": "5s",
        "labels": {"env": "prod"},
    })
}

/// A password (ticket) config for `server`.
pub fn ticket_config(server: &TestServer) -> serde_json::Value {
    serde_json::json!({
        "api_url": server.url(""),
        "username": "monitoring@pve",
        "password": PASSWORD,
        "ca_file": server.ca_file(),
        "timeout": "5s",
    })
}

/// The GETs of one full collection of the fixture cluster, in order.
pub const PATHS: [&str; 7] = [
    "/api2/json/cluster/status",
    "/api2/json/cluster/resources",
    "/api2/json/cluster/ha/status/current",
    "/api2/json/nodes/pve1/status",
    "/api2/json/nodes/pve2/status",
    "/api2/json/nodes/pve1/replication",
    "/api2/json/nodes/pve2/replication",
];

/// The fixture answering each of [`PATHS`].
pub const FIXTURES: [&str; 7] = [
    "cluster_status.json",
    "cluster_resources.json",
    "ha_status.json",
    "node_status_pve1.json",
    "node_status_pve2.json",
    "replication_pve1.json",
    "replication_pve2.json",
];

/// Queues the answers of one full collection.
pub fn script_all(server: &TestServer) {
    for f in FIXTURES {
        server.push_response(ok(f));
    }
}

/// Checks that every request is a GET of `paths` in order, JSON accepted.
pub fn assert_gets(reqs: &[RecordedRequest], paths: &[&str]) {
    let got: Vec<String> = reqs
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let want: Vec<String> = paths.iter().map(|p| format!("GET {p}")).collect();
    assert_eq!(got, want);
    for r in reqs {
        assert_eq!(r.header("accept"), Some("application/json"), "{}", r.path);
        assert!(r.body.is_empty(), "{}", r.path);
    }
}

/// Decodes an `application/x-www-form-urlencoded` body (independently of the
/// plugin's encoder).
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    fn dec(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("bad %XX"));
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }
    std::str::from_utf8(body)
        .unwrap()
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("k=v");
            (dec(k), dec(v))
        })
        .collect()
}

fn attr_is(attrs: &[tfo_plugin_api::KeyValue], k: &str, v: &str) -> bool {
    attrs.iter().any(|kv| {
        kv.key.as_str() == k
            && match &kv.value {
                AnyValue::Str(s) => s.as_str() == v,
                AnyValue::Bool(b) => b.to_string() == v,
                AnyValue::Int(i) => i.to_string() == v,
                _ => false,
            }
    })
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
            PointValue::Int(i) => i as f64,
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

/// Every text the plugin produced that a user could see: log lines, health,
/// and the given errors.
pub fn visible_text(host: &TestHost, inst: &PluginInstanceBox, errors: &[PluginError]) -> String {
    let mut t: Vec<String> = host.logs().into_iter().map(|(_, l)| l).collect();
    t.push(health(inst).reason.to_string());
    t.extend(errors.iter().map(|e| e.message.to_string()));
    t.join("\n")
}
