//! Contract tests against the strict local HTTPS TestServer standing in for Prism
//! Central (v3) and Prism Element (v2.0 / v1), with fixtures in tests/data written
//! from the documented response shapes: every request's method, path, basic-auth
//! header and JSON body is checked from what the server recorded, paging is
//! followed across three pages, and every value the plugin returns is compared
//! with the fixture.

mod common;

use std::time::Duration;

use common::*;
use tfo_plugin_api::{ErrorKind, HealthState};
use tfo_plugin_common::testing::{ScriptedResponse, TestServer};

const WEB02: &str = "a1b2c3d4-0002-4000-8000-000000000002";
const DB01: &str = "a1b2c3d4-0003-4000-8000-000000000003";
const BUILD01: &str = "a1b2c3d4-0004-4000-8000-000000000004";
const DNS01: &str = "a1b2c3d4-0005-4000-8000-000000000005";
const HOST_A: &str = "6f7e5a1c-1b2d-4e3f-8a9b-0c1d2e3f4a51";
const CLUSTER: &str = "00061663-9fa0-28ca-185b-ac1f6b6f97e2";

#[test]
fn prism_central_pages_through_everything_with_fixture_values() {
    let server = TestServer::https();
    script_v3(&server);
    let host = TestHost::default();
    let mut inst = instance(&host, &v3_config(&server));
    assert_eq!(health(&inst).state, HealthState::Initializing);
    let batch = collect(&mut inst).expect("collect");
    let reqs = server.requests();
    let plan = v3_plan();
    assert_eq!(
        reqs.len(),
        plan.len(),
        "{:?}",
        reqs.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    for (r, (path, _, fields)) in reqs.iter().zip(&plan) {
        assert_v3_request(r, path, fields);
    }
    // Five VMs over three pages, each with its own stats from three groups pages.
    assert_eq!(count(&batch, "nutanix.vm.up"), 5);
    assert_eq!(
        count(&batch, "nutanix.vm.cpu.utilization"),
        4,
        "the powered-off VM has none"
    );
    let vm = |u| [("nutanix.vm.uuid", u)];
    assert_eq!(
        value(&batch, "nutanix.vm.cpu.utilization", &vm(WEB02)),
        Some(0.987654)
    );
    assert_eq!(
        value(&batch, "nutanix.vm.disk.iops", &vm(DB01)),
        Some(2400.0)
    );
    assert_eq!(
        value(&batch, "nutanix.vm.memory.utilization", &vm(DNS01)),
        Some(0.25)
    );
    assert_eq!(
        value(&batch, "nutanix.vm.disk.latency", &vm(DNS01)),
        Some(650.0)
    );
    assert_eq!(value(&batch, "nutanix.vm.up", &vm(BUILD01)), Some(0.0));
    assert_eq!(
        value(&batch, "nutanix.vm.disk.iops", &vm(BUILD01)),
        None,
        "-1 is no value"
    );
    assert_eq!(value(&batch, "nutanix.vm.cpu.count", &vm(DB01)), Some(8.0));
    assert_eq!(
        value(&batch, "nutanix.vm.memory.limit", &vm(DB01)),
        Some(68719476736.0)
    );
    let h = [
        ("nutanix.host.uuid", HOST_A),
        ("nutanix.host.name", "NTNX-A"),
    ];
    assert_eq!(
        value(&batch, "nutanix.host.cpu.utilization", &h),
        Some(0.301)
    );
    assert_eq!(
        value(&batch, "nutanix.host.memory.limit", &h),
        Some(1099511627776.0)
    );
    assert_eq!(value(&batch, "nutanix.host.vms", &h), Some(3.0));
    let c = [
        ("nutanix.cluster.uuid", CLUSTER),
        ("nutanix.cluster.name", "ntnx-prod"),
        ("site", "dc1"),
    ];
    assert_eq!(
        value(&batch, "nutanix.cluster.storage.usage", &c),
        Some(21990232555520.0)
    );
    assert_eq!(
        value(&batch, "nutanix.cluster.disk.bandwidth", &c),
        Some(98765.0)
    );
    assert_eq!(value(&batch, "nutanix.cluster.nodes", &c), Some(2.0));
    assert_eq!(
        count(&batch, "nutanix.cluster.nodes"),
        1,
        "Prism Central is not a cluster"
    );
    assert_eq!(health(&inst).state, HealthState::Healthy);
    let text = visible_text(&host, &inst, &[]);
    assert!(host.log_count() > 0, "the plugin logs something");
    assert!(
        !text.contains(PASSWORD) && !text.contains(&BASIC[6..]),
        "{text}"
    );
}

#[test]
fn prism_element_v2_reads_embedded_stats_over_pages() {
    let server = TestServer::https();
    for f in [
        "v2_clusters.json",
        "v2_hosts.json",
        "v1_vms_page1.json",
        "v1_vms_page2.json",
    ] {
        server.push_response(ok(f));
    }
    let host = TestHost::default();
    let mut inst = instance(&host, &v2_config(&server));
    let batch = collect(&mut inst).expect("collect");
    let got: Vec<String> = server
        .requests()
        .iter()
        .map(|r| {
            assert_eq!(r.header("authorization"), Some(BASIC));
            assert!(r.body.is_empty());
            format!("{} {}", r.method, r.path)
        })
        .collect();
    assert_eq!(
        got,
        [
            "GET /PrismGateway/services/rest/v2.0/clusters/?count=2&page=1",
            "GET /PrismGateway/services/rest/v2.0/hosts/?count=2&page=1",
            "GET /PrismGateway/services/rest/v1/vms/?count=2&page=1",
            "GET /PrismGateway/services/rest/v1/vms/?count=2&page=2",
        ]
    );
    let vm = |u| {
        [
            ("nutanix.vm.uuid", u),
            ("nutanix.cluster.name", "ntnx-prod"),
        ]
    };
    assert_eq!(
        value(&batch, "nutanix.vm.cpu.utilization", &vm(WEB02)),
        Some(0.987654)
    );
    assert_eq!(value(&batch, "nutanix.vm.up", &vm(BUILD01)), Some(0.0));
    assert_eq!(count(&batch, "nutanix.vm.up"), 3);
    let b = [("nutanix.host.name", "NTNX-B")];
    assert_eq!(
        value(&batch, "nutanix.host.up", &b),
        Some(0.0),
        "maintenance mode"
    );
    assert_eq!(value(&batch, "nutanix.host.memory.utilization", &b), None);
    assert_eq!(value(&batch, "nutanix.host.disk.latency", &b), Some(1530.0));
    assert_eq!(
        value(&batch, "nutanix.cluster.storage.limit", &[]),
        Some(76965813944320.0)
    );
    assert_eq!(health(&inst).state, HealthState::Healthy);
}

#[test]
fn wrong_password_is_refused_and_never_shown() {
    let server = TestServer::https();
    server.push_response(
        ScriptedResponse::status(401)
            .header("WWW-Authenticate", "Basic realm=\"Intent Gateway Login Required\"")
            .body("{\"state\":\"UNAUTHORIZED\",\"code\":401,\"message_list\":[{\"message\":\"Authentication required.\"}],\"api_version\":\"3.1\"}"),
    );
    let host = TestHost::default();
    let mut inst = instance(&host, &v3_config(&server));
    let err = collect(&mut inst).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
    assert!(err.message.contains("authentication refused"), "{err}");
    assert_eq!(server.requests().len(), 1, "nothing after a refusal");
    assert_eq!(server.requests()[0].header("authorization"), Some(BASIC));
    assert_eq!(health(&inst).state, HealthState::Unhealthy);
    let text = visible_text(&host, &inst, &[err]);
    assert!(
        !text.contains(PASSWORD) && !text.contains(&BASIC[6..]),
        "{text}"
    );
}

#[test]
fn stats_page_down_keeps_inventory_and_other_stats() {
    let server = TestServer::https();
    for (i, (_, f, _)) in v3_plan().into_iter().enumerate() {
        if i == 8 {
            // groups mh_vm offset 2
            server.push_response(
                ScriptedResponse::status(500).body("{\"state\":\"ERROR\",\"code\":500}"),
            );
        } else if i == 9 {
            // Never asked: a failed page ends that listing.
        } else {
            server.push_response(ok(f));
        }
    }
    let host = TestHost::default();
    let mut inst = instance(&host, &v3_config(&server));
    let batch = collect(&mut inst).expect("partial collect is not an error");
    // The failed page ends that listing; nothing else is skipped.
    assert_eq!(server.requests().len(), v3_plan().len() - 1);
    assert_eq!(count(&batch, "nutanix.vm.up"), 5);
    assert_eq!(
        value(
            &batch,
            "nutanix.vm.cpu.utilization",
            &[("nutanix.vm.uuid", WEB02)]
        ),
        Some(0.987654)
    );
    assert_eq!(
        value(
            &batch,
            "nutanix.vm.cpu.utilization",
            &[("nutanix.vm.uuid", DB01)]
        ),
        None
    );
    assert_eq!(
        value(
            &batch,
            "nutanix.host.cpu.utilization",
            &[("nutanix.host.uuid", HOST_A)]
        ),
        Some(0.301)
    );
    let h = health(&inst);
    assert_eq!(h.state, HealthState::Unhealthy);
    assert!(
        h.reason
            .contains("POST /api/nutanix/v3/groups mh_vm offset 2: HTTP 500"),
        "{}",
        h.reason
    );
    script_v3(&server);
    collect(&mut inst).unwrap();
    assert_eq!(health(&inst).state, HealthState::Healthy);
}

#[test]
fn hosts_list_down_keeps_clusters_and_vms() {
    let server = TestServer::https();
    server.push_response(ok("v3_clusters.json"));
    server.push_response(ScriptedResponse::status(503).body("upstream connect error"));
    for f in [
        "v3_vms_page1.json",
        "v3_vms_page2.json",
        "v3_vms_page3.json",
        "v3_groups_cluster.json",
        "v3_groups_vm_page1.json",
        "v3_groups_vm_page2.json",
        "v3_groups_vm_page3.json",
    ] {
        server.push_response(ok(f));
    }
    let host = TestHost::default();
    let mut inst = instance(&host, &v3_config(&server));
    let batch = collect(&mut inst).unwrap();
    // No host groups query for hosts that could not be listed.
    let types: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/groups"))
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["entity_type"].to_string()
        })
        .collect();
    assert_eq!(
        types,
        ["\"cluster\"", "\"mh_vm\"", "\"mh_vm\"", "\"mh_vm\""]
    );
    assert_eq!(count(&batch, "nutanix.host.cpu.count"), 0);
    assert_eq!(
        value(&batch, "nutanix.vm.disk.iops", &[("nutanix.vm.uuid", DB01)]),
        Some(2400.0)
    );
    assert!(health(&inst)
        .reason
        .contains("POST /api/nutanix/v3/hosts/list offset 0: HTTP 503"));
}

#[test]
fn rate_limit_stops_and_waits_for_retry_after() {
    let server = TestServer::https();
    server.push_response(ok("v3_clusters.json"));
    server.push_response(ok("v3_hosts.json"));
    server.push_response(ok("v3_vms_page1.json"));
    server.push_response(
        ScriptedResponse::status(429)
            .header("Retry-After", "2")
            .body("{\"message\":\"Too many requests\"}"),
    );
    let host = TestHost::default();
    let mut inst = instance(&host, &v3_config(&server));
    let batch = collect(&mut inst).expect("what was read before the 429 is kept");
    assert_eq!(server.requests().len(), 4, "no request after the 429");
    assert_eq!(count(&batch, "nutanix.vm.up"), 2);
    assert_eq!(count(&batch, "nutanix.vm.cpu.utilization"), 0);
    let reason = health(&inst).reason.to_string();
    assert!(
        reason.contains("POST /api/nutanix/v3/vms/list offset 2: HTTP 429"),
        "{reason}"
    );
    // The next interval comes too early: nothing is sent.
    let err = collect(&mut inst).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable);
    assert!(err.retry_after_ms.into_option().unwrap() <= 2000, "{err:?}");
    assert_eq!(server.requests().len(), 4);
    // After the delay the server asked for (the wait is the behaviour under test),
    // a full collection runs again.
    std::thread::sleep(Duration::from_millis(2100));
    script_v3(&server);
    let batch = collect(&mut inst).unwrap();
    assert_eq!(count(&batch, "nutanix.vm.cpu.utilization"), 4);
    assert_eq!(health(&inst).state, HealthState::Healthy);
}

#[test]
fn rate_limited_at_once_is_a_retryable_error_with_the_delay() {
    let server = TestServer::https();
    server.push_response(ScriptedResponse::status(429).header("Retry-After", "120"));
    let host = TestHost::default();
    let mut inst = instance(&host, &v3_config(&server));
    let err = collect(&mut inst).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable);
    assert_eq!(err.retry_after_ms.into_option(), Some(120_000));
    let err = collect(&mut inst).unwrap_err();
    assert!(err.retry_after_ms.into_option().unwrap() > 100_000);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn switches_limit_the_calls() {
    let server = TestServer::https();
    server.push_response(ok("v3_hosts.json"));
    let host = TestHost::default();
    let mut cfg = v3_config(&server);
    cfg["collect_clusters"] = false.into();
    cfg["collect_vms"] = false.into();
    cfg["collect_stats"] = false.into();
    let mut inst = instance(&host, &cfg);
    let batch = collect(&mut inst).unwrap();
    assert_eq!(server.requests().len(), 1);
    assert_eq!(count(&batch, "nutanix.host.cpu.count"), 2);
    assert_eq!(count(&batch, "nutanix.host.cpu.utilization"), 0);
}

#[test]
fn tls_is_verified_unless_told_otherwise() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut cfg = v3_config(&server);
    cfg.as_object_mut().unwrap().remove("ca_file");
    let mut inst = instance(&host, &cfg);
    let err = collect(&mut inst).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable);
    assert!(
        server.requests().is_empty(),
        "the handshake must fail: {err}"
    );
    cfg["tls_skip_verify"] = true.into();
    script_v3(&server);
    let mut inst = instance(&host, &cfg);
    collect(&mut inst).expect("collect without verification");
}

#[test]
fn malformed_answer_costs_only_that_listing() {
    let server = TestServer::https();
    server.push_response(ScriptedResponse::status(200).body("<html>login</html>"));
    server.push_response(ok("v3_hosts.json"));
    server.push_response(ScriptedResponse::status(200).body("{\"entities\": \"nope\"}"));
    server.push_response(ok("v3_groups_host.json"));
    let host = TestHost::default();
    let mut inst = instance(&host, &v3_config(&server));
    let batch = collect(&mut inst).unwrap();
    assert_eq!(server.requests().len(), 4);
    assert_eq!(
        value(
            &batch,
            "nutanix.host.disk.iops",
            &[("nutanix.host.uuid", HOST_A)]
        ),
        Some(3000.0)
    );
    let reason = health(&inst).reason.to_string();
    assert!(
        reason.contains("clusters/list offset 0: answer is not JSON"),
        "{reason}"
    );
    assert!(
        reason.contains("vms/list offset 0: answer has no `entities` array"),
        "{reason}"
    );
}

#[test]
fn config_errors_carry_field_paths() {
    let host = TestHost::default();
    let e = create(&host, &serde_json::json!({"username": "u", "password": ""}))
        .err()
        .expect("refused");
    let paths: Vec<&str> = e.config_errors.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["prism_central_url", "password"]);
    let e = create(&host, &serde_json::json!({"prism_central_url": "https://pc", "username": "u", "password": "p", "colect_vms": true}))
        .err()
        .expect("refused");
    assert!(
        e.config_errors[0].message.contains("unknown field"),
        "{e:?}"
    );
}
