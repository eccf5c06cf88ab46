//! Shared test harness: the plugin driven through its exported root module (as the
//! agent does), strict local HTTPS servers standing in for Microsoft Entra ID and
//! Azure Resource Manager, the documented example answers as fixtures, and an
//! independent decoder of the token request form.

#![allow(dead_code)] // each test binary uses a different part

use std::{path::PathBuf, time::Duration};

use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, AnyValue, Batch, CreateError, Metric, PluginError,
    PluginInstanceBox, PluginModRef, PointValue,
};
use tfo_plugin_common::testing::{RecordedRequest, ScriptedResponse, TestServer};

pub use tfo_plugin_api::testing::TestHost;

/// How long a test waits for a request.
pub const WAIT: Duration = Duration::from_secs(10);
/// The client secret every test uses; it must never appear in a log or an error.
pub const SECRET: &str = "Arc~Secr3t.Value+/=";
/// The subscription of the fixtures.
pub const SUB: &str = "sub-1";

/// The plugin's root module.
pub fn module() -> PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_azure_arc)
}

/// Calls the plugin's `create` as the agent does.
pub fn create(host: &TestHost, config: &str) -> Result<PluginInstanceBox, CreateError> {
    tfo_plugin_api::testing::create(module(), host, "azure-arc", config)
}

/// One collection through the FFI entry point.
pub fn collect(inst: &mut PluginInstanceBox) -> Result<Batch, PluginError> {
    match inst.collect() {
        RResult::ROk(b) => Ok(b),
        RResult::RErr(e) => Err(e),
    }
}

/// A fixture file of `tests/data`, with `__ARM__` replaced by `arm`.
pub fn fixture(name: &str, arm: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .replace("__ARM__", arm)
}

/// A login server and an ARM server (both HTTPS with their own CAs) plus a CA
/// file trusting both.
pub struct Env {
    /// Stands in for login.microsoftonline.com (and IMDS).
    pub login: TestServer,
    /// Stands in for management.azure.com.
    pub arm: TestServer,
    /// Both CAs, PEM.
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Env {
    /// Starts both servers.
    pub fn new() -> Env {
        let login = TestServer::https();
        let arm = TestServer::https();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, format!("{}{}", login.ca_pem(), arm.ca_pem())).unwrap();
        Env {
            login,
            arm,
            ca_file,
            _dir: dir,
        }
    }

    /// The ARM base URL (no trailing slash).
    pub fn arm_base(&self) -> String {
        self.arm.url("")
    }

    /// A config with client credentials pointing at both servers, plus `extra`
    /// keys (`"connected_clusters": false, ...`).
    pub fn config(&self, extra: &str) -> String {
        let sep = if extra.trim().is_empty() { "" } else { "," };
        format!(
            r#"{{"subscription_id": "{SUB}", "tenant_id": "tenant-1", "client_id": "app-1",
               "client_secret": {}, "authority_host": "{}", "resource_manager_endpoint": "{}",
               "ca_file": {}, "timeout": "5s", "collect_timeout": "15s",
               "extensions_interval": "0s", "extensions_concurrency": 1{sep} {extra}}}"#,
            serde_json::to_string(SECRET).unwrap(),
            self.login.url(""),
            self.arm_base(),
            serde_json::to_string(&self.ca_file).unwrap()
        )
    }

    /// Queues an ARM answer: 200 with a fixture, and a remaining-reads header.
    pub fn arm_ok(&self, fixture_name: &str, remaining_reads: u32) {
        self.arm.push_response(
            ScriptedResponse::status(200)
                .header("Content-Type", "application/json; charset=utf-8")
                .header(
                    "x-ms-ratelimit-remaining-subscription-reads",
                    &remaining_reads.to_string(),
                )
                .body(fixture(fixture_name, &self.arm_base())),
        );
    }

    /// Queues an ARM answer of an empty list.
    pub fn arm_empty(&self) {
        self.arm.push_response(
            ScriptedResponse::status(200)
                .header("Content-Type", "application/json")
                .body(r#"{"value":[]}"#),
        );
    }
}

/// A token endpoint answer.
pub fn token(access_token: &str, expires_in: u64) -> ScriptedResponse {
    ScriptedResponse::status(200)
        .header("Content-Type", "application/json")
        .body(format!(
            r#"{{"token_type":"Bearer","expires_in":{expires_in},"ext_expires_in":{expires_in},"access_token":"{access_token}"}}"#
        ))
}

/// An ARM error answer (`{"error":{"code","message"}}`, the documented shape).
pub fn arm_error(status: u16, code: &str, message: &str) -> ScriptedResponse {
    ScriptedResponse::status(status)
        .header("Content-Type", "application/json")
        .body(format!(
            r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#
        ))
}

/// Decodes an `application/x-www-form-urlencoded` body (the shared test-side
/// decoder, independent of the plugin's encoder).
#[allow(unused_imports)] // not every test binary decodes forms
pub use tfo_plugin_common::testing_form::form;

/// Checks a recorded client-credentials token request for ARM.
pub fn check_token_request(r: &RecordedRequest) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/tenant-1/oauth2/v2.0/token");
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let f = form(&r.body);
    assert_eq!(f["grant_type"], "client_credentials");
    assert_eq!(f["client_id"], "app-1");
    assert_eq!(f["client_secret"], SECRET);
    assert_eq!(f["scope"], "https://management.azure.com//.default");
    assert_eq!(f.len(), 4, "{f:?}");
}

/// Checks a recorded ARM request: GET, the path and query, the bearer token.
pub fn check_arm_request(r: &RecordedRequest, path: &str, token: &str) {
    assert_eq!(r.method, "GET", "{}", r.path);
    assert_eq!(r.path, path);
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {token}").as_str()),
        "{}",
        r.path
    );
    assert_eq!(r.header("accept"), Some("application/json"));
    assert!(r.body.is_empty());
}

/// First-page path of the subscription-wide machine listing.
pub fn machines_path() -> String {
    format!(
        "/subscriptions/{SUB}/providers/Microsoft.HybridCompute/machines?api-version=2024-07-10"
    )
}

/// First-page path of the subscription-wide cluster listing.
pub fn clusters_path() -> String {
    format!(
        "/subscriptions/{SUB}/providers/Microsoft.Kubernetes/connectedClusters?api-version=2024-01-01"
    )
}

/// Path of one machine's extension listing.
pub fn extensions_path(rg: &str, machine: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.HybridCompute/machines/{machine}/extensions?api-version=2024-07-10"
    )
}

/// An attribute's value as text.
pub fn attr_text(v: &AnyValue) -> String {
    match v {
        AnyValue::Str(s) => s.to_string(),
        AnyValue::Int(i) => i.to_string(),
        AnyValue::Double(d) => d.to_string(),
        AnyValue::Bool(b) => b.to_string(),
        AnyValue::Bytes(b) => format!("{b:?}"),
    }
}

/// One line per point: `name{k="v",...} value` (point order kept), for golden
/// files and lookups.
pub fn render(metrics: &[Metric]) -> String {
    let mut out = String::new();
    for m in metrics {
        for p in m.points.iter() {
            let attrs: Vec<String> = p
                .attributes
                .iter()
                .map(|kv| format!("{}={:?}", kv.key, attr_text(&kv.value)))
                .collect();
            let v = match &p.value {
                PointValue::Int(i) => i.to_string(),
                PointValue::Double(d) => format!("{d}"),
                other => format!("{other:?}"),
            };
            out.push_str(&format!("{}{{{}}} {v}\n", m.name, attrs.join(",")));
        }
    }
    out
}

/// The value of the single point of `name` whose attributes include all of
/// `want`; panics when there is not exactly one.
pub fn value(metrics: &[Metric], name: &str, want: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = metrics
        .iter()
        .filter(|m| m.name.as_str() == name)
        .flat_map(|m| m.points.iter())
        .filter(|p| {
            want.iter().all(|(k, v)| {
                p.attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == *k && attr_text(&kv.value) == *v)
            })
        })
        .map(|p| match p.value {
            PointValue::Int(i) => i as f64,
            PointValue::Double(d) => d,
            _ => f64::NAN,
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{name} {want:?}: {} point(s) in\n{}",
        found.len(),
        render(metrics)
    );
    found[0]
}

/// True when some metric is called `name`.
pub fn has(metrics: &[Metric], name: &str) -> bool {
    metrics.iter().any(|m| m.name.as_str() == name)
}

/// Asserts no log line and no error message contains the secret or a token.
pub fn assert_no_secrets(host: &TestHost, errors: &[&PluginError], tokens: &[&str]) {
    let mut texts: Vec<String> = host.logs().into_iter().map(|(_, l)| l).collect();
    texts.extend(errors.iter().map(|e| e.message.to_string()));
    for t in &texts {
        assert!(!t.contains(SECRET), "secret leaked: {t}");
        for tok in tokens {
            assert!(!t.contains(tok), "token {tok} leaked: {t}");
        }
    }
}
