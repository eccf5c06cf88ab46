//! Test harness shared by the gcp tests: drives the plugin through its exported root
//! module, the way the agent does, against strict local servers
//! (`tfo_plugin_common::testing::TestServer`) standing in for Google's token
//! endpoint, the GCE metadata server and the three APIs; checks the JWT assertions
//! those servers receive with ring's RSA verifier and a public key made by
//! `openssl` (tests/data), not with the plugin's own key handling.

#![allow(dead_code)] // each test binary uses a different part

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::Engine as _;
use serde_json::{json, Value};
use tfo_plugin_api::{
    AnyValue, Batch, CreateError, KeyValue, LogRecord, Metric, PluginInstanceBox, PluginModRef,
    Resource, Span, SpanKind, StatusCode,
};
use tfo_plugin_common::testing::{RecordedRequest, ScriptedResponse, TestServer};

pub use tfo_plugin_api::testing::TestHost;

/// How long a test waits for requests.
pub const WAIT: Duration = Duration::from_secs(10);

/// The test RSA key (PKCS#8 PEM), see tests/data/README.md.
pub const TEST_KEY_PEM: &str = include_str!("../data/test-sa-key.pem");
/// Its public key (PKCS#1 RSAPublicKey DER, made by openssl).
pub const TEST_PUBLIC_DER: &[u8] = include_bytes!("../data/test-sa-key.pub.der");
/// The service account of the test key file.
pub const CLIENT_EMAIL: &str = "tfo-test@my-proj.iam.gserviceaccount.com";
/// Its key id.
pub const KEY_ID: &str = "0123456789abcdef0123456789abcdef01234567";
/// The project of every test.
pub const PROJECT: &str = "my-proj";

/// The plugin's root module.
pub fn module() -> PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_gcp)
}

/// Calls the plugin's `create` as the agent does.
pub fn create(host: &TestHost, config: &Value) -> Result<PluginInstanceBox, CreateError> {
    tfo_plugin_api::testing::create(module(), host, "gcp", &config.to_string())
}

/// Creates an instance, panicking with the config errors.
pub fn instance(host: &TestHost, config: &Value) -> PluginInstanceBox {
    create(host, config).unwrap_or_else(|e| panic!("create: {e:?}"))
}

/// Writes a service-account key file (the layout IAM downloads) for `pem`, whose
/// `token_uri` is `token_uri`; returns its path inside `dir`.
pub fn key_file(dir: &Path, token_uri: &str, pem: &str) -> PathBuf {
    let key = json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": KEY_ID,
        "private_key": pem,
        "client_email": CLIENT_EMAIL,
        "client_id": "112233445566778899",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/tfo-test%40my-proj.iam.gserviceaccount.com",
        "universe_domain": "googleapis.com"
    });
    let path = dir.join("sa.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&key).unwrap()).unwrap();
    path
}

/// A token endpoint answer (RFC 6749 §5.1, as Google sends it).
pub fn token_response(token: &str, expires_in: u64) -> ScriptedResponse {
    ScriptedResponse::status(200)
        .header("Content-Type", "application/json; charset=utf-8")
        .body(
            json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"})
                .to_string(),
        )
}

/// A Google API error body (AIP-193).
pub fn google_error(code: u16, status: &str, message: &str) -> ScriptedResponse {
    ScriptedResponse::status(code)
        .header("Content-Type", "application/json; charset=UTF-8")
        .body(json!({"error": {"code": code, "message": message, "status": status}}).to_string())
}

/// The plugin config for a key file, with all three APIs on `api`.
pub fn sa_config(key: &Path, api: &TestServer, ca: &Path) -> Value {
    json!({
        "credentials_file": key,
        "region": "europe-west1",
        "resource_labels": {"namespace": "prod"},
        "labels": {"env": "test"},
        "monitoring": {"endpoint": api.url("/v3"), "metric_prefix": "workload.googleapis.com"},
        "logging": {"endpoint": api.url("/v2"), "log_name": "tfo"},
        "trace": {"endpoint": api.url("/v2")},
        "ca_file": ca,
        "timeout": "10s",
    })
}

/// Percent-decodes and splits an `application/x-www-form-urlencoded` body.
pub fn form(body: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' if i + 2 < b.len() => {
                    let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(h, 16).unwrap());
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).unwrap()
    }
    body.split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Checks a token request as Google's token endpoint would (method, content type,
/// grant type), verifies the assertion's RS256 signature with `public_der` (PKCS#1
/// DER) using ring, and returns (header, claims, raw JWT).
pub fn check_token_request(req: &RecordedRequest, public_der: &[u8]) -> (Value, Value, String) {
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let fields = form(&req.text());
    let get = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k} in {fields:?}"))
    };
    assert_eq!(
        get("grant_type"),
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    assert_eq!(fields.len(), 2, "{fields:?}");
    let jwt = get("assertion");
    let (header, claims) = verify_jwt(&jwt, public_der);
    (header, claims, jwt)
}

/// Verifies an RS256 JWT with ring and returns its decoded header and claims.
pub fn verify_jwt(jwt: &str, public_der: &[u8]) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS compact serialization has 3 parts");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let sig = b64.decode(parts[2]).expect("base64url signature");
    let signed = format!("{}.{}", parts[0], parts[1]);
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_der,
    )
    .verify(signed.as_bytes(), &sig)
    .expect("the JWT signature verifies with the key file's public key");
    let header: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    (header, claims)
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Asserts the claims Google requires (service-account page, "Creating a JWT").
pub fn check_claims(header: &Value, claims: &Value, token_uri: &str) {
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], KEY_ID);
    assert_eq!(claims["iss"], CLIENT_EMAIL);
    assert_eq!(claims["aud"], token_uri);
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/monitoring.write \
         https://www.googleapis.com/auth/logging.write \
         https://www.googleapis.com/auth/trace.append"
    );
    let iat = claims["iat"].as_u64().expect("iat is a number");
    let exp = claims["exp"].as_u64().expect("exp is a number");
    assert_eq!(exp - iat, 3600);
    assert!(iat.abs_diff(now()) < 60, "iat {iat} is not now");
}

/// Decodes a request body as JSON.
pub fn body(req: &RecordedRequest) -> Value {
    serde_json::from_slice(&req.body)
        .unwrap_or_else(|e| panic!("{} {}: body is not JSON: {e}", req.method, req.path))
}

/// Checks an API request's method, content type and bearer token.
pub fn check_api_request(req: &RecordedRequest, path: &str, token: &str) {
    assert_eq!(req.method, "POST", "{}", req.path);
    assert_eq!(req.path, path);
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {token}").as_str()),
        "{}",
        req.path
    );
}

pub const TRACE_ID: [u8; 16] = [
    0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c,
];
pub const SPAN_ID: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74];
pub const T0: u64 = 1_700_000_000_000_000_000;
pub const T1: u64 = 1_700_000_010_000_000_000;

/// A batch with one gauge, one counter, one log record and one span.
pub fn sample_batch() -> Batch {
    Batch {
        resource: Resource {
            attributes: vec![
                KeyValue::new("host.name", "web-1"),
                KeyValue::new("service.name", "shop"),
            ]
            .into(),
        },
        metrics: vec![
            Metric::gauge(
                "system.memory.usage",
                "By",
                T1,
                1024.0,
                vec![KeyValue::new("state", "used")],
            ),
            Metric::counter("http.requests", "1", T0, T1, 17.0, vec![]),
        ]
        .into(),
        logs: vec![LogRecord {
            time_unix_nano: T1,
            observed_time_unix_nano: T1,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: AnyValue::Str("payment failed".into()),
            attributes: vec![KeyValue::new("order", "A-17")].into(),
            trace_id: TRACE_ID,
            span_id: SPAN_ID,
        }]
        .into(),
        spans: vec![Span {
            trace_id: TRACE_ID,
            span_id: SPAN_ID,
            parent_span_id: [0; 8],
            name: "POST /pay".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: T0,
            end_time_unix_nano: T1,
            status_code: StatusCode::Error,
            status_message: "card declined".into(),
            attributes: vec![KeyValue::new("http.status_code", 402i64)].into(),
            events: vec![].into(),
        }]
        .into(),
    }
}

/// A batch with only `n` gauges (distinct series).
pub fn metrics_batch(n: usize) -> Batch {
    Batch {
        metrics: (0..n)
            .map(|i| Metric::gauge(&format!("g{i}"), "1", T1, i as f64, vec![]))
            .collect::<Vec<_>>()
            .into(),
        ..Default::default()
    }
}

/// True when `python3` can import `modules`. When it cannot, prints what is skipped
/// and why and returns false, unless `TFO_REQUIRE_SERVICES=1`, which makes it a
/// failure (CI installs the packages).
pub fn python_has(modules: &str, what: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        let msg = format!(
            "SKIP {what}: python3 cannot import {modules} (pip install cryptography google-auth)"
        );
        if std::env::var("TFO_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{msg}, and TFO_REQUIRE_SERVICES=1");
        }
        println!("{msg}");
        eprintln!("{msg}");
    }
    ok
}

/// Runs `tests/<script>` with `args` and `stdin`; panics with its stderr when it
/// fails; returns its stdout.
pub fn run_python(script: &str, args: &[&str], stdin: &[u8]) -> String {
    use std::io::Write as _;
    let path = format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("python3")
        .arg(&path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
