//! Catalyst Center contract tests: the plugin, driven through its exported root
//! module as the agent drives it, talks to the strict local HTTPS server of
//! `tfo-plugin-common` (its own CA; verification stays on). The server answers from
//! fixtures written from the Intent API reference (tests/data/dnac) and records each
//! request; the tests check method, path and query (paging), the Basic credentials
//! of the token call and the `X-Auth-Token` of every other call, read the values
//! back from the batch and compare them with the fixtures, and play the documented
//! failures: 401 on an expired token, 401 on the token call, a 500 from one
//! endpoint.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tfo_plugin_api::HealthState;

const USER: &str = "devnetuser";
const PASSWORD: &str = "Cisco123!";
/// `Basic base64("devnetuser:Cisco123!")`, computed outside the code under test.
const BASIC: &str = "Basic ZGV2bmV0dXNlcjpDaXNjbzEyMyE=";
const WAIT: Duration = Duration::from_secs(10);

fn token(name: &str) -> String {
    fixture_json(name)["Token"].as_str().unwrap().to_string()
}

fn config(server: &TestServer, extra: Value) -> Value {
    let mut c = json!({
        "api_type": "dnac",
        "ca_file": server.ca_file(),
        "labels": {"site": "sjc"},
        "dnac": {"endpoint": server.url(""), "username": USER, "password": PASSWORD, "page_size": 2}
    });
    if let Value::Object(m) = extra {
        for (k, v) in m {
            if k == "dnac" {
                for (k2, v2) in v.as_object().unwrap() {
                    c["dnac"][k2] = v2.clone();
                }
            } else {
                c[k] = v;
            }
        }
    }
    c
}

/// Queues the answers of one complete collection after a token call.
fn script_collection(server: &TestServer) {
    server.push_response(ok_json(fixture("dnac/network-device-1.json")));
    server.push_response(ok_json(fixture("dnac/network-device-2.json")));
    server.push_response(ok_json(fixture("dnac/device-health.json")));
    server.push_response(ok_json(fixture("dnac/network-health.json")));
    server.push_response(ok_json(fixture("dnac/client-health.json")));
}

const COLLECTION_PATHS: [&str; 5] = [
    "GET /dna/intent/api/v1/network-device?offset=1&limit=2",
    "GET /dna/intent/api/v1/network-device?offset=3&limit=2",
    "GET /dna/intent/api/v1/device-health?offset=1&limit=2",
    "GET /dna/intent/api/v1/network-health",
    "GET /dna/intent/api/v1/client-health",
];

fn check_token_call(r: &RecordedRequest) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/dna/system/api/v1/auth/token");
    assert_eq!(r.header("authorization"), Some(BASIC));
    assert!(r.header("x-auth-token").is_none());
}

fn check_api_call(r: &RecordedRequest, token: &str) {
    assert_eq!(r.method, "GET");
    assert_eq!(r.header("x-auth-token"), Some(token), "{}", r.path);
    assert!(r.header("authorization").is_none(), "{}", r.path);
}

/// Every value in the batch equals the fixture it came from.
fn check_values(b: &tfo_plugin_api::Batch) {
    // Inventory: both pages.
    let mut devices = Vec::new();
    for f in ["dnac/network-device-1.json", "dnac/network-device-2.json"] {
        devices.extend(fixture_json(f)["response"].as_array().unwrap().clone());
    }
    assert_eq!(points(b, "cisco.device.reachable").len(), devices.len());
    for d in &devices {
        let id = d["id"].as_str().unwrap();
        let who = [("device.id", id), ("site", "sjc"), ("cisco.api", "dnac")];
        let reachable = (d["reachabilityStatus"] == "Reachable") as u8 as f64;
        assert_eq!(point(b, "cisco.device.reachable", &who), reachable, "{id}");
        let managed = (d["collectionStatus"] == "Managed") as u8 as f64;
        assert_eq!(point(b, "cisco.device.managed", &who), managed, "{id}");
        assert_eq!(
            point(b, "cisco.device.uptime", &who),
            d["uptimeSeconds"].as_f64().unwrap()
        );
        let p = points(b, "cisco.device.reachable")
            .into_iter()
            .find(|p| attr(p, "device.id") == Some(id))
            .unwrap();
        assert_eq!(attr(p, "device.name"), d["hostname"].as_str());
        assert_eq!(attr(p, "device.ip"), d["managementIpAddress"].as_str());
        assert_eq!(attr(p, "device.serial"), d["serialNumber"].as_str());
        assert_eq!(attr(p, "device.platform"), d["platformId"].as_str());
        assert_eq!(attr(p, "device.role"), d["role"].as_str());
    }
    // Device health.
    for d in fixture_json("dnac/device-health.json")["response"]
        .as_array()
        .unwrap()
    {
        let who = [("device.name", d["name"].as_str().unwrap())];
        assert_eq!(
            point(b, "cisco.device.health_score", &who),
            d["overallHealth"].as_f64().unwrap()
        );
        assert_eq!(
            point(b, "cisco.device.cpu.utilization", &who),
            d["cpuUlitilization"].as_f64().unwrap()
        );
        assert_eq!(
            point(b, "cisco.device.memory.utilization", &who),
            d["memoryUtilization"].as_f64().unwrap()
        );
        assert_eq!(
            point(b, "cisco.device.issues", &who),
            d["issueCount"].as_f64().unwrap()
        );
    }
    // Network health.
    let n = fixture_json("dnac/network-health.json");
    assert_eq!(
        point(b, "cisco.network.health_score", &[]),
        n["latestHealthScore"].as_f64().unwrap()
    );
    for (state, field) in [
        ("healthy", "monitoredHealthyDevices"),
        ("unhealthy", "monitoredUnHealthyDevices"),
        ("unmonitored", "unMonitoredDevices"),
    ] {
        assert_eq!(
            point(b, "cisco.network.devices", &[("state", state)]),
            n[field].as_f64().unwrap()
        );
    }
    for c in n["healthDistirubution"].as_array().unwrap() {
        let cat = c["category"].as_str().unwrap();
        assert_eq!(
            point(
                b,
                "cisco.network.category.health_score",
                &[("category", cat)]
            ),
            c["healthScore"].as_f64().unwrap()
        );
        assert_eq!(
            point(
                b,
                "cisco.network.category.devices",
                &[("category", cat), ("health", "bad")]
            ),
            c["badCount"].as_f64().unwrap()
        );
    }
    // Client health.
    let ch = fixture_json("dnac/client-health.json");
    for d in ch["response"][0]["scoreDetail"].as_array().unwrap() {
        let t = d["scoreCategory"]["value"].as_str().unwrap().to_lowercase();
        let who = [("client.type", t.as_str()), ("site.id", "global")];
        assert_eq!(
            point(b, "cisco.client.health_score", &who),
            d["scoreValue"].as_f64().unwrap()
        );
        assert_eq!(
            point(b, "cisco.client.count", &who),
            d["clientCount"].as_f64().unwrap()
        );
        for s in d["scoreList"].as_array().into_iter().flatten() {
            let h = s["scoreCategory"]["value"].as_str().unwrap().to_lowercase();
            assert_eq!(
                point(
                    b,
                    "cisco.client.health.count",
                    &[("client.type", t.as_str()), ("health", h.as_str())]
                ),
                s["clientCount"].as_f64().unwrap()
            );
        }
    }
}

#[test]
fn full_collection_pages_authenticates_and_reuses_the_token() {
    let server = TestServer::https();
    let h = TestHost::default();
    let mut inst = instance(&h, &config(&server, json!({})));
    server.push_response(ok_json(fixture("dnac/token.json")));
    script_collection(&server);
    let b = collect(&mut inst);

    let reqs = server.wait_for_requests(6, WAIT);
    assert_eq!(reqs.len(), 6, "{:?}", paths(&reqs));
    check_token_call(&reqs[0]);
    let tok = token("dnac/token.json");
    for (r, want) in reqs[1..].iter().zip(COLLECTION_PATHS) {
        assert_eq!(format!("{} {}", r.method, r.path), want);
        check_api_call(r, &tok);
    }
    check_values(&b);
    for ep in [
        "network-device",
        "device-health",
        "network-health",
        "client-health",
    ] {
        assert_eq!(point(&b, "cisco.api.up", &[("cisco.endpoint", ep)]), 1.0);
    }
    assert_eq!(health(&inst).state, HealthState::Healthy);

    // The next collection reuses the token: no second login.
    script_collection(&server);
    let b2 = collect(&mut inst);
    let reqs = server.wait_for_requests(11, WAIT);
    assert_eq!(reqs.len(), 11, "{:?}", paths(&reqs));
    for (r, want) in reqs[6..].iter().zip(COLLECTION_PATHS) {
        assert_eq!(format!("{} {}", r.method, r.path), want);
        check_api_call(r, &tok);
    }
    check_values(&b2);
    assert_no_secrets(
        &h,
        &inst,
        &b2,
        &[PASSWORD, &tok, "ZGV2bmV0dXNlcjpDaXNjbzEyMyE="],
    );
}

#[test]
fn an_expired_token_is_renewed_once_and_the_call_repeated() {
    let server = TestServer::https();
    let h = TestHost::default();
    let mut inst = instance(&h, &config(&server, json!({})));
    server.push_response(ok_json(fixture("dnac/token.json")));
    // The token expired: the controller answers 401 to the first call.
    server.push_response(
        ScriptedResponse::status(401)
            .header("Content-Type", "application/json")
            .body(r#"{"error":"Token has expired"}"#),
    );
    server.push_response(ok_json(fixture("dnac/token2.json")));
    script_collection(&server);
    let b = collect(&mut inst);
    let reqs = server.wait_for_requests(8, WAIT);
    assert_eq!(reqs.len(), 8, "{:?}", paths(&reqs));
    let (t1, t2) = (token("dnac/token.json"), token("dnac/token2.json"));
    check_token_call(&reqs[0]);
    check_api_call(&reqs[1], &t1);
    assert_eq!(reqs[1].path, reqs[3].path);
    check_token_call(&reqs[2]);
    for (r, want) in reqs[3..].iter().zip(COLLECTION_PATHS) {
        assert_eq!(format!("{} {}", r.method, r.path), want);
        check_api_call(r, &t2);
    }
    check_values(&b);
    assert_eq!(health(&inst).state, HealthState::Healthy);
    assert_no_secrets(&h, &inst, &b, &[PASSWORD, &t1, &t2]);
}

#[test]
fn a_token_refused_again_after_renewal_fails_only_that_call() {
    let server = TestServer::https();
    let h = TestHost::default();
    let cfg = config(
        &server,
        json!({"dnac": {"collect_device_health": false, "collect_client_health": false}}),
    );
    let mut inst = instance(&h, &cfg);
    server.push_response(ok_json(fixture("dnac/token.json")));
    server.push_response(ScriptedResponse::status(401));
    server.push_response(ok_json(fixture("dnac/token2.json")));
    server.push_response(ScriptedResponse::status(401).body("still no"));
    server.push_response(ok_json(fixture("dnac/network-health.json")));
    let b = collect(&mut inst);
    let reqs = server.wait_for_requests(5, WAIT);
    assert_eq!(
        paths(&reqs),
        vec![
            "POST /dna/system/api/v1/auth/token",
            "GET /dna/intent/api/v1/network-device?offset=1&limit=2",
            "POST /dna/system/api/v1/auth/token",
            "GET /dna/intent/api/v1/network-device?offset=1&limit=2",
            "GET /dna/intent/api/v1/network-health",
        ],
        "one renewal only, then the next endpoint"
    );
    assert_eq!(
        point(&b, "cisco.api.up", &[("cisco.endpoint", "network-device")]),
        0.0
    );
    assert_eq!(
        point(&b, "cisco.api.up", &[("cisco.endpoint", "network-health")]),
        1.0
    );
    assert_eq!(point(&b, "cisco.network.health_score", &[]), 67.0);
    let hr = health(&inst);
    assert_eq!(hr.state, HealthState::Unhealthy);
    assert!(
        hr.reason.contains("network-device: HTTP 401"),
        "{}",
        hr.reason
    );
    assert!(hr.reason.contains("1 of 2"), "{}", hr.reason);
}

#[test]
fn one_endpoint_down_still_yields_the_rest() {
    let server = TestServer::https();
    let h = TestHost::default();
    let mut inst = instance(&h, &config(&server, json!({})));
    server.push_response(ok_json(fixture("dnac/token.json")));
    server.push_response(ok_json(fixture("dnac/network-device-1.json")));
    server.push_response(ok_json(fixture("dnac/network-device-2.json")));
    server.push_response(ok_json(fixture("dnac/device-health.json")));
    server.push_response(ok_json(fixture("dnac/network-health.json")));
    server.push_response(
        ScriptedResponse::status(500)
            .header("Content-Type", "application/json")
            .body(r#"{"response":{"errorCode":"NCND00050","message":"Internal error"}}"#),
    );
    let b = collect(&mut inst);
    assert_eq!(server.wait_for_requests(6, WAIT).len(), 6);
    assert_eq!(points(&b, "cisco.device.reachable").len(), 3);
    assert_eq!(points(&b, "cisco.device.health_score").len(), 2);
    assert_eq!(point(&b, "cisco.network.health_score", &[]), 67.0);
    assert!(points(&b, "cisco.client.count").is_empty());
    assert_eq!(
        point(&b, "cisco.api.up", &[("cisco.endpoint", "client-health")]),
        0.0
    );
    assert_eq!(
        point(&b, "cisco.api.up", &[("cisco.endpoint", "network-health")]),
        1.0
    );
    let hr = health(&inst);
    assert_eq!(hr.state, HealthState::Unhealthy);
    assert!(
        hr.reason.contains("1 of 4 Cisco API calls failed")
            && hr
                .reason
                .contains("client-health: HTTP 500 Internal Server Error"),
        "{}",
        hr.reason
    );
    h.wait_for_log("client-health", WAIT);
    assert_no_secrets(&h, &inst, &b, &[PASSWORD, &token("dnac/token.json")]);

    // The next collection succeeds: health recovers.
    script_collection(&server);
    let b = collect(&mut inst);
    check_values(&b);
    assert_eq!(health(&inst).state, HealthState::Healthy);
}

#[test]
fn refused_credentials_fail_every_call_with_one_login_attempt() {
    let server = TestServer::https();
    let h = TestHost::default();
    let mut inst = instance(&h, &config(&server, json!({})));
    server.push_response(
        ScriptedResponse::status(401)
            .body(r#"{"error":"Authentication has failed. Please provide valid credentials."}"#),
    );
    let b = collect(&mut inst);
    let reqs = server.requests();
    assert_eq!(paths(&reqs), vec!["POST /dna/system/api/v1/auth/token"]);
    check_token_call(&reqs[0]);
    assert_eq!(points(&b, "cisco.api.up").len(), 4);
    assert!(points(&b, "cisco.api.up").iter().all(|p| value(p) == 0.0));
    let hr = health(&inst);
    assert_eq!(hr.state, HealthState::Unhealthy);
    assert!(
        hr.reason.contains("4 of 4") && hr.reason.contains("authentication failed: HTTP 401"),
        "{}",
        hr.reason
    );
    assert_no_secrets(&h, &inst, &b, &[PASSWORD]);
}

#[test]
fn tls_verification_is_on() {
    let server = TestServer::https();
    let h = TestHost::default();
    let mut cfg = config(&server, json!({}));
    cfg.as_object_mut().unwrap().remove("ca_file");
    let mut inst = instance(&h, &cfg);
    let b = collect(&mut inst);
    assert!(points(&b, "cisco.api.up").iter().all(|p| value(p) == 0.0));
    assert!(
        server.requests().is_empty(),
        "no request may pass an untrusted TLS handshake"
    );
    let hr = health(&inst);
    assert!(hr.reason.contains("authentication failed"), "{}", hr.reason);
}

#[test]
fn bad_config_is_refused_with_field_paths() {
    let h = TestHost::default();
    let e = create(
        &h,
        &json!({"api_type": "dnac", "dnac": {"endpoint": "not a url", "username": "", "password": "x", "page_size": 900}}),
    )
    .err()
    .expect("refused");
    let paths: Vec<String> = e.config_errors.iter().map(|c| c.path.to_string()).collect();
    assert_eq!(
        paths,
        vec!["dnac.endpoint", "dnac.username", "dnac.page_size"]
    );
    let e = create(&h, &json!({"api_type": "dnac", "dnac": {"endpoint": "https://x", "username": "u", "password": "p", "pasword": "typo"}}))
        .err()
        .expect("refused");
    assert!(e.config_errors[0].message.contains("pasword"), "{e:?}");
    let e = create(&h, &json!({"api_type": "ise"}))
        .err()
        .expect("refused");
    assert_eq!(e.config_errors[0].path.as_str(), "api_type");
}

#[test]
fn a_rate_limited_call_is_retried_after_retry_after() {
    let server = TestServer::https();
    let h = TestHost::default();
    let cfg = config(
        &server,
        json!({"dnac": {"collect_devices": false, "collect_device_health": false, "collect_client_health": false}}),
    );
    let mut inst = instance(&h, &cfg);
    server.push_response(ok_json(fixture("dnac/token.json")));
    server.push_response(ScriptedResponse::status(429).header("Retry-After", "1"));
    server.push_response(ok_json(fixture("dnac/network-health.json")));
    let started = std::time::Instant::now();
    let b = collect(&mut inst);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let reqs = server.wait_for_requests(3, WAIT);
    assert_eq!(
        paths(&reqs),
        vec![
            "POST /dna/system/api/v1/auth/token",
            "GET /dna/intent/api/v1/network-health",
            "GET /dna/intent/api/v1/network-health",
        ]
    );
    assert_eq!(point(&b, "cisco.network.health_score", &[]), 67.0);
    assert_eq!(health(&inst).state, HealthState::Healthy);
}
