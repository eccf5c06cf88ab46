//! Shared test harness: the plugin through its exported root module, a strict
//! local HTTPS server standing in for the Alibaba Cloud endpoints, an
//! independently declared LogGroup message set, a form decoder, and the Python
//! verifier (`tests/verify.py`) as an independent implementation of the signatures.

#![allow(dead_code)] // each test binary uses a different part

use std::{
    io::Write,
    process::{Command, Stdio},
};

use serde_json::Value;
use tfo_plugin_api::{CreateError, PluginError, PluginInstanceBox, PluginModRef};

pub use tfo_plugin_api::testing::TestHost;

/// How long a test waits for a request.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// AccessKey pair and STS token of the tests; the secrets must never be logged.
pub const KEY_ID: &str = "LTAI-test-id";
/// The AccessKey secret.
pub const SECRET: &str = "ak-Secret+/=value";
/// The STS token.
pub const STS: &str = "sts-token-CAIS-secret";

/// The plugin's root module.
pub fn module() -> PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_alibaba)
}

/// Calls the plugin's `create` as the agent does.
pub fn create(host: &TestHost, config: &str) -> Result<PluginInstanceBox, CreateError> {
    tfo_plugin_api::testing::create(module(), host, "alibaba", config)
}

/// Credentials part of a config.
pub fn creds_json(ca_file: &std::path::Path) -> String {
    format!(
        r#""access_key_id": "{KEY_ID}", "access_key_secret": {}, "security_token": "{STS}",
           "ca_file": {}, "timeout": "5s""#,
        serde_json::to_string(SECRET).unwrap(),
        serde_json::to_string(ca_file).unwrap()
    )
}

/// `LogGroup` as declared in the SLS SDKs' `log_logs.proto`, written again here
/// (independent of the plugin's declaration).
pub mod wire {
    /// Log.Content
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Content {
        #[prost(string, required, tag = "1")]
        pub key: String,
        #[prost(string, required, tag = "2")]
        pub value: String,
    }
    /// Log
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Log {
        #[prost(uint32, required, tag = "1")]
        pub time: u32,
        #[prost(message, repeated, tag = "2")]
        pub contents: Vec<Content>,
        #[prost(fixed32, optional, tag = "4")]
        pub time_ns: Option<u32>,
    }
    /// LogTag
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LogTag {
        #[prost(string, required, tag = "1")]
        pub key: String,
        #[prost(string, required, tag = "2")]
        pub value: String,
    }
    /// LogGroup
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LogGroup {
        #[prost(message, repeated, tag = "1")]
        pub logs: Vec<Log>,
        #[prost(string, optional, tag = "2")]
        pub reserved: Option<String>,
        #[prost(string, optional, tag = "3")]
        pub topic: Option<String>,
        #[prost(string, optional, tag = "4")]
        pub source: Option<String>,
        #[prost(string, optional, tag = "5")]
        pub machine_uuid: Option<String>,
        #[prost(message, repeated, tag = "6")]
        pub log_tags: Vec<LogTag>,
    }
}

/// Decodes an `application/x-www-form-urlencoded` body (the shared test-side
/// decoder, independent of the plugin's encoder).
#[allow(unused_imports)] // not every test binary decodes forms
pub use tfo_plugin_common::testing_form::form;

fn require_services() -> bool {
    std::env::var("TFO_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Skips (prints why) or, with TFO_REQUIRE_SERVICES=1, fails.
pub fn skip(why: &str) {
    assert!(!require_services(), "TFO_REQUIRE_SERVICES=1 but {why}");
    println!("SKIPPED part of the test: {why}");
}

/// Runs `tests/verify.py` with `input`; `None` (after [`skip`]) when python3 is
/// not available.
pub fn python(input: &Value) -> Option<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/verify.py");
    let child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            skip(&format!(
                "python3 is not available ({e}): no independent signature check"
            ));
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "verify.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// Asserts no log line and no error holds a secret.
pub fn assert_no_secrets(host: &TestHost, errors: &[&PluginError], secrets: &[&str]) {
    let mut texts: Vec<String> = host.logs().into_iter().map(|(_, l)| l).collect();
    texts.extend(errors.iter().map(|e| e.message.to_string()));
    for t in &texts {
        for s in [SECRET, STS].iter().chain(secrets) {
            assert!(!t.contains(s), "secret {s:?} leaked: {t}");
        }
    }
}
