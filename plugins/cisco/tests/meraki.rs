//! Meraki Dashboard API contract tests: the plugin, driven through its exported root
//! module, talks to the strict local HTTPS server of `tfo-plugin-common` (its own
//! CA). The server answers from fixtures written from the API v1 reference
//! (tests/data/meraki) and records each request; the tests check the Bearer key on
//! every call, the paths and `perPage`, that paging follows the `Link: rel=next`
//! URLs across three pages, that a 429 is retried after its `Retry-After` a bounded
//! number of times within `collect_timeout`, and read every value back from the
//! batch against the fixtures.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tfo_plugin_api::HealthState;

const KEY: &str = "75dd5334bef4d2bc96f26138c163c0a3fa0b5ca6";
const WAIT: Duration = Duration::from_secs(10);
const ORG: &str = "2930418";

fn config(server: &TestServer, extra: Value) -> Value {
    let mut c = json!({
        "api_type": "meraki",
        "ca_file": server.ca_file(),
        "meraki": {"api_key": KEY, "base_url": server.url("/api/v1"), "per_page": 3,
                   "requests_per_second": 1000}
    });
    for (k, v) in extra.as_object().unwrap() {
        c["meraki"][k] = v.clone();
    }
    c
}

fn check_auth(reqs: &[RecordedRequest]) {
    for r in reqs {
        assert_eq!(r.method, "GET", "{}", r.path);
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {KEY}").as_str()),
            "{}",
            r.path
        );
    }
}

fn devices_page(server: &TestServer, n: usize, next_after: Option<&str>) -> ScriptedResponse {
    let mut r = ok_json(fixture(&format!("meraki/devices-statuses-{n}.json")));
    let first = server.url(&format!(
        "/api/v1/organizations/{ORG}/devices/statuses?perPage=3&startingAfter=0000-0000-0000"
    ));
    let last = server.url(&format!(
        "/api/v1/organizations/{ORG}/devices/statuses?endingBefore=ZZZZ-ZZZZ-ZZZZ&perPage=3"
    ));
    let mut link = format!("<{first}>; rel=first");
    if let Some(after) = next_after {
        let next = server.url(&format!(
            "/api/v1/organizations/{ORG}/devices/statuses?perPage=3&startingAfter={after}"
        ));
        link.push_str(&format!(", <{next}>; rel=next"));
    }
    link.push_str(&format!(", <{last}>; rel=last"));
    r = r.header("Link", &link);
    r
}

fn all_devices() -> Vec<Value> {
    (1..=3)
        .flat_map(|n| {
            fixture_json(&format!("meraki/devices-statuses-{n}.json"))
                .as_array()
                .unwrap()
                .clone()
        })
        .collect()
}

#[test]
fn organizations_devices_over_three_pages_and_uplinks() {
    let server = TestServer::https();
    let h = TestHost::default();
    let mut inst = instance(&h, &config(&server, json!({})));
    server.push_response(ok_json(fixture("meraki/organizations.json")));
    server.push_response(devices_page(&server, 1, Some("Q234-ABCD-0002")));
    server.push_response(devices_page(&server, 2, Some("Q234-ABCD-0004")));
    server.push_response(devices_page(&server, 3, None));
    server.push_response(ok_json(fixture("meraki/appliance-uplink-statuses.json")));
    let b = collect(&mut inst);
    let reqs = server.wait_for_requests(5, WAIT);
    assert_eq!(
        paths(&reqs),
        vec![
            "GET /api/v1/organizations".to_string(),
            format!("GET /api/v1/organizations/{ORG}/devices/statuses?perPage=3"),
            format!("GET /api/v1/organizations/{ORG}/devices/statuses?perPage=3&startingAfter=Q234-ABCD-0002"),
            format!("GET /api/v1/organizations/{ORG}/devices/statuses?perPage=3&startingAfter=Q234-ABCD-0004"),
            format!("GET /api/v1/organizations/{ORG}/appliance/uplink/statuses?perPage=3"),
        ],
        "the organization with API access disabled is skipped"
    );
    check_auth(&reqs);

    // Every device of the three pages, its status as a state set.
    let devices = all_devices();
    assert_eq!(devices.len(), 5);
    assert_eq!(points(&b, "cisco.device.status").len(), 5 * 4);
    for d in &devices {
        let serial = d["serial"].as_str().unwrap();
        for st in ["online", "alerting", "offline", "dormant"] {
            let want = (d["status"] == st) as u8 as f64;
            let who = [
                ("device.serial", serial),
                ("status", st),
                ("organization.id", ORG),
                ("organization.name", "My organization"),
                ("network.id", d["networkId"].as_str().unwrap()),
                ("device.model", d["model"].as_str().unwrap()),
                ("device.product_type", d["productType"].as_str().unwrap()),
                ("device.name", d["name"].as_str().unwrap()),
            ];
            assert_eq!(
                point(&b, "cisco.device.status", &who),
                want,
                "{serial} {st}"
            );
        }
    }
    // Counts per status equal the fixture's.
    for st in ["online", "alerting", "offline", "dormant"] {
        let n = devices.iter().filter(|d| d["status"] == st).count() as f64;
        assert_eq!(
            point(
                &b,
                "cisco.organization.devices",
                &[("organization.id", ORG), ("status", st)]
            ),
            n,
            "{st}"
        );
    }
    // Uplinks.
    let up = fixture_json("meraki/appliance-uplink-statuses.json");
    let appliance = &up[0];
    for u in appliance["uplinks"].as_array().unwrap() {
        let iface = u["interface"].as_str().unwrap();
        for st in ["active", "ready", "connecting", "not connected", "failed"] {
            let who = [
                ("uplink.interface", iface),
                ("status", st),
                ("device.serial", appliance["serial"].as_str().unwrap()),
                ("device.model", appliance["model"].as_str().unwrap()),
            ];
            assert_eq!(
                point(&b, "cisco.uplink.status", &who),
                (u["status"] == st) as u8 as f64,
                "{iface} {st}"
            );
        }
    }
    for ep in [
        "organizations",
        "devices/statuses",
        "appliance/uplink/statuses",
    ] {
        assert_eq!(
            point(&b, "cisco.api.up", &[("cisco.endpoint", ep)]),
            1.0,
            "{ep}"
        );
    }
    assert_eq!(health(&inst).state, HealthState::Healthy);
    assert_no_secrets(&h, &inst, &b, &[KEY]);
}

#[test]
fn rate_limited_call_waits_retry_after_and_succeeds() {
    let server = TestServer::https();
    let h = TestHost::default();
    let mut inst = instance(
        &h,
        &config(&server, json!({"org_ids": [ORG], "collect_uplinks": false})),
    );
    server.push_response(
        ScriptedResponse::status(429)
            .header("Retry-After", "1")
            .header("Content-Type", "application/json")
            .body(r#"{"errors":["API rate limit exceeded for organization"]}"#),
    );
    server.push_response(ok_json(fixture("meraki/devices-statuses-3.json")));
    let started = Instant::now();
    let b = collect(&mut inst);
    let took = started.elapsed();
    let reqs = server.wait_for_requests(2, WAIT);
    assert_eq!(reqs.len(), 2, "{:?}", paths(&reqs));
    assert_eq!(reqs[0].path, reqs[1].path);
    assert_eq!(
        reqs[0].path,
        format!("/api/v1/organizations/{ORG}/devices/statuses?perPage=3")
    );
    check_auth(&reqs);
    assert!(
        took >= Duration::from_secs(1),
        "Retry-After not honoured: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(
        point(
            &b,
            "cisco.device.status",
            &[("device.serial", "Q234-ABCD-0005"), ("status", "dormant")]
        ),
        1.0
    );
    assert_eq!(
        point(&b, "cisco.organization.devices", &[("status", "dormant")]),
        1.0
    );
    assert_eq!(
        count(&b, "cisco.device.status", &[("organization.name", "x")]),
        0,
        "no name without /organizations"
    );
    assert_eq!(health(&inst).state, HealthState::Healthy);
}

#[test]
fn persistent_rate_limiting_gives_up_after_max_retries_without_a_tight_loop() {
    let server = TestServer::https();
    let h = TestHost::default();
    let mut inst = instance(
        &h,
        &config(&server, json!({"org_ids": [ORG], "max_retries": 2})),
    );
    for _ in 0..3 {
        server.push_response(ScriptedResponse::status(429).header("Retry-After", "0"));
    }
    server.push_response(ok_json(fixture("meraki/appliance-uplink-statuses.json")));
    let started = Instant::now();
    let b = collect(&mut inst);
    let took = started.elapsed();
    let reqs = server.wait_for_requests(4, WAIT);
    assert_eq!(reqs.len(), 4, "{:?}", paths(&reqs));
    assert!(reqs[..3]
        .iter()
        .all(|r| r.path.contains("/devices/statuses")));
    assert!(reqs[3].path.contains("/appliance/uplink/statuses"));
    // Retry-After: 0 still waits a little before each retry (2 retries).
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert_eq!(
        point(
            &b,
            "cisco.api.up",
            &[("cisco.endpoint", "devices/statuses")]
        ),
        0.0
    );
    assert_eq!(
        point(
            &b,
            "cisco.api.up",
            &[("cisco.endpoint", "appliance/uplink/statuses")]
        ),
        1.0
    );
    assert_eq!(points(&b, "cisco.uplink.status").len(), 15);
    let hr = health(&inst);
    assert_eq!(hr.state, HealthState::Unhealthy);
    assert!(
        hr.reason
            .contains(&format!("organization {ORG} devices/statuses: HTTP 429"))
            && hr.reason.contains("after 2 retries"),
        "{}",
        hr.reason
    );
    assert_no_secrets(&h, &inst, &b, &[KEY]);
}

#[test]
fn a_retry_after_beyond_the_deadline_is_not_waited_for() {
    let server = TestServer::https();
    let h = TestHost::default();
    let mut cfg = config(&server, json!({"org_ids": [ORG], "collect_uplinks": false}));
    cfg["collect_timeout"] = json!("2s");
    let mut inst = instance(&h, &cfg);
    server.push_response(ScriptedResponse::status(429).header("Retry-After", "60"));
    let started = Instant::now();
    let b = collect(&mut inst);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.requests().len(), 1);
    assert_eq!(
        point(
            &b,
            "cisco.api.up",
            &[("cisco.endpoint", "devices/statuses")]
        ),
        0.0
    );
    let hr = health(&inst);
    assert!(
        hr.reason.contains("does not fit in collect_timeout"),
        "{}",
        hr.reason
    );
}

#[test]
fn requests_are_paced_to_the_configured_rate() {
    let server = TestServer::https();
    let h = TestHost::default();
    let mut inst = instance(
        &h,
        &config(&server, json!({"org_ids": [ORG], "requests_per_second": 5})),
    );
    server.push_response(devices_page(&server, 1, Some("Q234-ABCD-0002")));
    server.push_response(devices_page(&server, 3, None));
    server.push_response(ok_json(fixture("meraki/appliance-uplink-statuses.json")));
    let started = Instant::now();
    let b = collect(&mut inst);
    // Three requests at 5/s: at least two gaps of 200 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.requests().len(), 3);
    assert_eq!(points(&b, "cisco.device.status").len(), 3 * 4);
}

#[test]
fn a_next_link_to_another_host_is_not_followed() {
    let server = TestServer::https();
    let h = TestHost::default();
    let mut inst = instance(
        &h,
        &config(&server, json!({"org_ids": [ORG], "collect_uplinks": false})),
    );
    server.push_response(
        ok_json(fixture("meraki/devices-statuses-1.json")).header(
            "Link",
            "<https://attacker.example/api/v1/organizations/2930418/devices/statuses?startingAfter=x>; rel=next",
        ),
    );
    let b = collect(&mut inst);
    assert_eq!(server.requests().len(), 1);
    assert_eq!(
        point(
            &b,
            "cisco.api.up",
            &[("cisco.endpoint", "devices/statuses")]
        ),
        0.0
    );
    let hr = health(&inst);
    assert!(hr.reason.contains("another host"), "{}", hr.reason);
}

#[test]
fn an_uplink_failure_keeps_the_device_statuses() {
    let server = TestServer::https();
    let h = TestHost::default();
    let mut inst = instance(
        &h,
        &config(&server, json!({"org_ids": [ORG], "uplinks": "all"})),
    );
    server.push_response(ok_json(fixture("meraki/devices-statuses-2.json")));
    server.push_response(
        ScriptedResponse::status(500).body(r#"{"errors":["Internal server error"]}"#),
    );
    let b = collect(&mut inst);
    let reqs = server.wait_for_requests(2, WAIT);
    assert_eq!(
        reqs[1].path,
        format!("/api/v1/organizations/{ORG}/uplinks/statuses?perPage=3")
    );
    check_auth(&reqs);
    assert_eq!(points(&b, "cisco.device.status").len(), 2 * 4);
    assert_eq!(
        point(&b, "cisco.organization.devices", &[("status", "offline")]),
        1.0
    );
    let hr = health(&inst);
    assert_eq!(hr.state, HealthState::Unhealthy);
    assert!(
        hr.reason
            .contains(&format!("organization {ORG} uplinks/statuses: HTTP 500")),
        "{}",
        hr.reason
    );
}

#[test]
fn a_refused_key_is_reported() {
    let server = TestServer::https();
    let h = TestHost::default();
    let mut inst = instance(&h, &config(&server, json!({})));
    server.push_response(ScriptedResponse::status(401).body(r#"{"errors":["Invalid API key"]}"#));
    let b = collect(&mut inst);
    assert_eq!(server.requests().len(), 1);
    assert_eq!(
        point(&b, "cisco.api.up", &[("cisco.endpoint", "organizations")]),
        0.0
    );
    let hr = health(&inst);
    assert!(
        hr.reason.contains("organizations: HTTP 401"),
        "{}",
        hr.reason
    );
    assert_no_secrets(&h, &inst, &b, &[KEY]);
}

#[test]
fn malformed_answers_fail_their_calls_and_the_reason_stays_short() {
    let server = TestServer::https();
    let h = TestHost::default();
    let mut inst = instance(&h, &config(&server, json!({"org_ids": ["1", "2", "3"]})));
    // No scripted answers: the server answers 200 with an empty body, not JSON.
    let b = collect(&mut inst);
    assert_eq!(server.requests().len(), 6);
    assert_eq!(points(&b, "cisco.api.up").len(), 6);
    assert!(points(&b, "cisco.api.up").iter().all(|p| value(p) == 0.0));
    assert_eq!(count(&b, "cisco.api.up", &[("organization.id", "3")]), 2);
    let hr = health(&inst);
    assert!(
        hr.reason.starts_with("6 of 6 Cisco API calls failed"),
        "{}",
        hr.reason
    );
    assert!(hr.reason.contains("not JSON"), "{}", hr.reason);
    assert!(hr.reason.ends_with("and 1 more"), "{}", hr.reason);
}
