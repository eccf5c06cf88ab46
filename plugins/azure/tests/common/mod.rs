//! Shared test harness: the plugin driven through its exported root module (as the
//! agent does), strict local HTTPS servers standing in for Microsoft Entra ID and
//! the Azure Monitor APIs, and independent decoders for what they receive.

#![allow(dead_code)] // each test binary uses a different part

use std::{path::PathBuf, time::Duration};

use tfo_plugin_api::{CreateError, PluginError, PluginInstanceBox, PluginModRef};
use tfo_plugin_common::testing::{RecordedRequest, ScriptedResponse, TestServer};

pub use tfo_plugin_api::testing::TestHost;

/// How long a test waits for a request.
pub const WAIT: Duration = Duration::from_secs(10);
/// The client secret every test uses; it must never appear in a log or an error.
pub const SECRET: &str = "Sup3r~Secret.Value+/=";

/// The plugin's root module.
pub fn module() -> PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_azure)
}

/// Calls the plugin's `create` as the agent does.
pub fn create(host: &TestHost, config: &str) -> Result<PluginInstanceBox, CreateError> {
    tfo_plugin_api::testing::create(module(), host, "azure", config)
}

/// A login server and an API server (both HTTPS with their own CAs) plus a CA file
/// trusting both.
pub struct Env {
    /// Stands in for login.microsoftonline.com.
    pub login: TestServer,
    /// Stands in for the Azure Monitor endpoints.
    pub api: TestServer,
    /// Both CAs, PEM.
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Env {
    /// Starts both servers.
    pub fn new() -> Env {
        let login = TestServer::https();
        let api = TestServer::https();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, format!("{}{}", login.ca_pem(), api.ca_pem())).unwrap();
        Env {
            login,
            api,
            ca_file,
            _dir: dir,
        }
    }

    /// The credential and endpoint part of a config (client credentials).
    pub fn auth_json(&self) -> String {
        format!(
            r#""tenant_id": "tenant-1", "client_id": "app-1", "client_secret": {},
               "authority_host": "{}", "ca_file": {}, "timeout": "5s""#,
            serde_json::to_string(SECRET).unwrap(),
            self.login.url(""),
            serde_json::to_string(&self.ca_file).unwrap()
        )
    }

    /// A metrics block pointing at the API server.
    pub fn metrics_json(&self) -> String {
        format!(
            r#""metrics": {{"resource_id": "{RESOURCE}", "region": "westeurope",
                            "namespace": "NS", "endpoint": "{}"}}"#,
            self.api.url("")
        )
    }
}

/// The resource the tests send metrics about.
pub const RESOURCE: &str =
    "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Compute/virtualMachines/vm-1";

/// A token endpoint answer.
pub fn token(access_token: &str, expires_in: u64) -> ScriptedResponse {
    ScriptedResponse::status(200)
        .header("Content-Type", "application/json")
        .body(format!(
            r#"{{"token_type":"Bearer","expires_in":{expires_in},"ext_expires_in":{expires_in},"access_token":"{access_token}"}}"#
        ))
}

/// Decodes an `application/x-www-form-urlencoded` body (the shared test-side
/// decoder, independent of the plugin's encoder).
#[allow(unused_imports)] // not every test binary decodes forms
pub use tfo_plugin_common::testing_form::form;

/// Checks a recorded token request: method, path, content type and the form.
pub fn check_token_request(r: &RecordedRequest, scope: &str) {
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
    assert_eq!(f["scope"], scope);
    assert_eq!(f.len(), 4, "{f:?}");
}

/// The body as JSON.
pub fn json(r: &RecordedRequest) -> serde_json::Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{} {}: not JSON ({e}): {}", r.method, r.path, r.text()))
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
