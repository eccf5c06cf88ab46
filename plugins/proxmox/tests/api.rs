//! Contract tests against the strict local HTTPS TestServer standing in for a PVE
//! cluster (fixtures in tests/data written from the API viewer's response shapes):
//! every request's method, path and credentials are checked from what the server
//! recorded, and every value the plugin returns is compared with the fixture.

mod common;

use std::time::Duration;

use common::*;
use tfo_plugin_api::{ErrorKind, HealthState};
use tfo_plugin_common::testing::{ScriptedResponse, TestServer};

fn token_header() -> String {
    format!("PVEAPIToken=monitoring@pve!tfo={TOKEN_SECRET}")
}

#[test]
fn token_auth_reads_the_whole_cluster_with_fixture_values() {
    let server = TestServer::https();
    script_all(&server);
    let host = TestHost::default();
    let mut inst = instance(&host, &token_config(&server));
    assert_eq!(health(&inst).state, HealthState::Initializing);
    let batch = collect(&mut inst).expect("collect");
    let reqs = server.requests();
    assert_gets(&reqs, &PATHS);
    for r in &reqs {
        assert_eq!(
            r.header("authorization"),
            Some(token_header().as_str()),
            "{}",
            r.path
        );
        assert_eq!(r.header("cookie"), None);
    }
    // Values read back equal the fixtures, for every kind of object and node.
    let c = ("proxmox.cluster", "prod-east");
    assert_eq!(value(&batch, "proxmox.cluster.quorate", &[c]), Some(1.0));
    assert_eq!(
        value(&batch, "proxmox.cluster.nodes.online", &[c]),
        Some(2.0)
    );
    let web = [
        ("proxmox.vmid", "100"),
        ("proxmox.node", "pve1"),
        c,
        ("env", "prod"),
    ];
    assert_eq!(
        value(&batch, "proxmox.vm.cpu.utilization", &web),
        Some(0.25)
    );
    assert_eq!(
        value(&batch, "proxmox.vm.memory.usage", &web),
        Some(3221225472.0)
    );
    assert_eq!(
        value(&batch, "proxmox.vm.memory.limit", &web),
        Some(8589934592.0)
    );
    let rx = [("proxmox.vmid", "100"), ("network.io.direction", "receive")];
    assert_eq!(
        value(&batch, "proxmox.vm.network.io", &rx),
        Some(987654321.0)
    );
    let wr = [("proxmox.vmid", "100"), ("disk.io.direction", "write")];
    assert_eq!(value(&batch, "proxmox.vm.disk.io", &wr), Some(4444444444.0));
    assert_eq!(
        value(&batch, "proxmox.vm.up", &[("proxmox.vmid", "101")]),
        Some(0.0)
    );
    assert_eq!(
        value(&batch, "proxmox.vm.up", &[("proxmox.vmid", "9000")]),
        None
    );
    let ct = [("proxmox.vmid", "200"), ("proxmox.node", "pve2")];
    assert_eq!(
        value(&batch, "proxmox.container.cpu.utilization", &ct),
        Some(0.0125)
    );
    assert_eq!(
        value(&batch, "proxmox.container.memory.usage", &ct),
        Some(134217728.0)
    );
    let pve2 = [("proxmox.node", "pve2")];
    assert_eq!(
        value(&batch, "proxmox.node.cpu.utilization", &pve2),
        Some(0.4115)
    );
    assert_eq!(value(&batch, "proxmox.node.load.1m", &pve2), Some(4.1));
    assert_eq!(
        value(&batch, "proxmox.node.cpu.iowait", &pve2),
        Some(0.0427)
    );
    assert_eq!(
        value(&batch, "proxmox.node.memory.usage", &pve2),
        Some(98765432100.0)
    );
    assert_eq!(
        value(&batch, "proxmox.node.up", &[("proxmox.node", "pve3")]),
        Some(0.0)
    );
    let pve1 = [("proxmox.node", "pve1")];
    assert_eq!(
        value(&batch, "proxmox.node.swap.usage", &pve1),
        Some(104857600.0)
    );
    assert_eq!(value(&batch, "proxmox.node.uptime", &pve1), Some(1209600.0));
    let ceph = [("proxmox.node", "pve2"), ("proxmox.storage", "ceph-vm")];
    assert_eq!(
        value(&batch, "proxmox.storage.limit", &ceph),
        Some(4398046511104.0)
    );
    let svc = [("proxmox.ha.sid", "ct:200"), ("proxmox.ha.state", "error")];
    assert_eq!(value(&batch, "proxmox.ha.service.ok", &svc), Some(0.0));
    let job = [("proxmox.replication.job", "200-0")];
    assert_eq!(
        value(&batch, "proxmox.replication.fail_count", &job),
        Some(2.0)
    );
    assert_eq!(
        value(&batch, "proxmox.replication.last_sync", &job),
        Some(1795700000.0)
    );
    let job = [("proxmox.replication.job", "100-0")];
    assert_eq!(
        value(&batch, "proxmox.replication.duration", &job),
        Some(12.345)
    );
    assert_eq!(health(&inst).state, HealthState::Healthy);
}

#[test]
fn ticket_auth_logs_in_once_and_sends_cookie_and_csrf() {
    let server = TestServer::https();
    server.push_response(ok("ticket.json"));
    script_all(&server);
    script_all(&server);
    let host = TestHost::default();
    let mut inst = instance(&host, &ticket_config(&server));
    let first = collect(&mut inst).expect("first collect");
    let second = collect(&mut inst).expect("second collect");
    assert_eq!(first.item_count(), second.item_count());
    let reqs = server.requests();
    // One login, then two full collections with the same ticket.
    let login = &reqs[0];
    assert_eq!(login.method.as_str(), "POST");
    assert_eq!(login.path, "/api2/json/access/ticket");
    assert_eq!(
        login.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        form(&login.body),
        [
            ("username".to_string(), "monitoring@pve".to_string()),
            ("password".to_string(), PASSWORD.to_string())
        ]
    );
    let paths: Vec<&str> = PATHS.iter().chain(PATHS.iter()).copied().collect();
    assert_gets(&reqs[1..], &paths);
    let ticket: serde_json::Value = serde_json::from_str(&fixture("ticket.json")).unwrap();
    let cookie = format!(
        "PVEAuthCookie={}",
        ticket["data"]["ticket"].as_str().unwrap()
    );
    let csrf = ticket["data"]["CSRFPreventionToken"].as_str().unwrap();
    for r in &reqs[1..] {
        assert_eq!(r.header("cookie"), Some(cookie.as_str()), "{}", r.path);
        assert_eq!(r.header("csrfpreventiontoken"), Some(csrf), "{}", r.path);
        assert_eq!(r.header("authorization"), None);
    }
    assert_eq!(
        value(
            &second,
            "proxmox.vm.memory.usage",
            &[("proxmox.vmid", "100")]
        ),
        Some(3221225472.0)
    );
    // Neither the password nor the ticket nor the CSRF token is ever logged.
    let text = visible_text(&host, &inst, &[]);
    assert!(host.log_count() > 0, "the plugin logs something");
    for secret in [PASSWORD, ticket["data"]["ticket"].as_str().unwrap(), csrf] {
        assert!(!text.contains(secret), "{text}");
    }
}

#[test]
fn expired_ticket_is_renewed_after_a_401() {
    let server = TestServer::https();
    server.push_response(ok("ticket.json"));
    script_all(&server);
    // Later, PVE refuses the (now expired) ticket: log in again, retry the call.
    server.push_response(ScriptedResponse::status(401).body("authentication failure"));
    server.push_response(ok("ticket.json"));
    script_all(&server);
    let host = TestHost::default();
    let mut inst = instance(&host, &ticket_config(&server));
    collect(&mut inst).expect("first collect");
    let batch = collect(&mut inst).expect("second collect");
    let reqs = server.requests();
    let seq: Vec<String> = reqs[1 + PATHS.len()..]
        .iter()
        .take(3)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        seq,
        [
            "GET /api2/json/cluster/status",
            "POST /api2/json/access/ticket",
            "GET /api2/json/cluster/status",
        ]
    );
    assert_eq!(reqs.len(), 2 + 2 * PATHS.len() + 1);
    assert_eq!(value(&batch, "proxmox.cluster.quorate", &[]), Some(1.0));
    assert_eq!(health(&inst).state, HealthState::Healthy);
}

#[test]
fn ticket_is_renewed_before_it_expires() {
    let server = TestServer::https();
    server.push_response(ok("ticket.json"));
    script_all(&server);
    server.push_response(ok("ticket.json"));
    script_all(&server);
    let host = TestHost::default();
    let mut cfg = ticket_config(&server);
    cfg["ticket_refresh"] = "50ms".into();
    let mut inst = instance(&host, &cfg);
    collect(&mut inst).expect("first collect");
    // Ticket age is the behaviour under test: let it pass the refresh age.
    std::thread::sleep(Duration::from_millis(60));
    collect(&mut inst).expect("second collect");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2 * (1 + PATHS.len()));
    assert_eq!(reqs[1 + PATHS.len()].path, "/api2/json/access/ticket");
}

#[test]
fn a_fresh_ticket_refused_is_not_retried_in_a_loop() {
    let server = TestServer::https();
    server.push_response(ok("ticket.json"));
    server.push_response(ScriptedResponse::status(401));
    let host = TestHost::default();
    let mut inst = instance(&host, &ticket_config(&server));
    let err = collect(&mut inst).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent);
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn wrong_token_is_refused_and_reported_without_the_secret() {
    let server = TestServer::https();
    // PVE answers a bad token with 401 and stops there.
    server.push_response(ScriptedResponse::status(401).body("invalid token value!"));
    let host = TestHost::default();
    let mut inst = instance(&host, &token_config(&server));
    let err = collect(&mut inst).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
    assert!(err.message.contains("authentication refused"), "{err}");
    assert_eq!(server.requests().len(), 1, "no request after a refusal");
    let h = health(&inst);
    assert_eq!(h.state, HealthState::Unhealthy);
    assert!(h.reason.contains("GET /cluster/status"), "{}", h.reason);
    let text = visible_text(&host, &inst, &[err]);
    assert!(!text.contains(TOKEN_SECRET), "{text}");
}

#[test]
fn wrong_password_is_refused_and_reported_without_the_password() {
    let server = TestServer::https();
    server.push_response(ScriptedResponse::status(401));
    let host = TestHost::default();
    let mut inst = instance(&host, &ticket_config(&server));
    let err = collect(&mut inst).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
    assert!(
        err.message.contains("login as monitoring@pve refused"),
        "{err}"
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/api2/json/access/ticket");
    let text = visible_text(&host, &inst, &[err]);
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(!text.contains("pa ss"), "{text}");
}

#[test]
fn one_node_down_still_yields_the_rest_and_health_names_it() {
    let server = TestServer::https();
    for (i, f) in FIXTURES.iter().enumerate() {
        if PATHS[i] == "/api2/json/nodes/pve2/status" {
            server.push_response(
                ScriptedResponse::status(500)
                    .body("{\"data\":null,\"message\":\"hostname lookup 'pve2' failed\"}"),
            );
        } else {
            server.push_response(ok(f));
        }
    }
    let host = TestHost::default();
    let mut inst = instance(&host, &token_config(&server));
    let batch = collect(&mut inst).expect("partial collect is not an error");
    assert_gets(&server.requests(), &PATHS);
    assert_eq!(
        value(&batch, "proxmox.node.load.1m", &[("proxmox.node", "pve1")]),
        Some(0.52)
    );
    assert_eq!(
        value(&batch, "proxmox.node.load.1m", &[("proxmox.node", "pve2")]),
        None
    );
    // pve2's guests and resource-level numbers come from /cluster/resources.
    assert_eq!(
        value(
            &batch,
            "proxmox.node.cpu.utilization",
            &[("proxmox.node", "pve2")]
        ),
        Some(0.4115)
    );
    assert_eq!(
        value(&batch, "proxmox.container.up", &[("proxmox.vmid", "200")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &batch,
            "proxmox.replication.ok",
            &[("proxmox.replication.job", "200-0")]
        ),
        Some(0.0)
    );
    let h = health(&inst);
    assert_eq!(h.state, HealthState::Unhealthy);
    assert!(
        h.reason.starts_with("1 of 7 Proxmox API calls failed"),
        "{}",
        h.reason
    );
    assert!(
        h.reason.contains("GET /nodes/pve2/status: HTTP 500"),
        "{}",
        h.reason
    );
    // The next collection that works makes it healthy again.
    script_all(&server);
    collect(&mut inst).unwrap();
    assert_eq!(health(&inst).state, HealthState::Healthy);
}

#[test]
fn malformed_answer_costs_only_that_call() {
    let server = TestServer::https();
    server.push_response(ok("cluster_status.json"));
    server.push_response(ScriptedResponse::status(200).body("<html>proxy error</html>"));
    server.push_response(ok("ha_status.json"));
    let host = TestHost::default();
    let mut inst = instance(&host, &token_config(&server));
    let batch = collect(&mut inst).expect("cluster status still reported");
    // Without resources there are no nodes to ask; the cluster-wide calls go on.
    assert_gets(
        &server.requests(),
        &[
            "/api2/json/cluster/status",
            "/api2/json/cluster/resources",
            "/api2/json/cluster/ha/status/current",
        ],
    );
    assert_eq!(value(&batch, "proxmox.cluster.nodes", &[]), Some(3.0));
    assert_eq!(value(&batch, "proxmox.ha.quorate", &[]), Some(1.0));
    assert!(health(&inst)
        .reason
        .contains("GET /cluster/resources: answer is not JSON"));
}

#[test]
fn rate_limit_stops_the_collection_and_waits_for_retry_after() {
    let server = TestServer::https();
    server.push_response(
        ScriptedResponse::status(429)
            .header("Retry-After", "2")
            .body("too many requests"),
    );
    let host = TestHost::default();
    let mut inst = instance(&host, &token_config(&server));
    let err = collect(&mut inst).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable);
    assert_eq!(err.retry_after_ms.into_option(), Some(2000));
    assert_eq!(server.requests().len(), 1, "stops at the first 429");
    assert!(
        health(&inst).reason.contains("HTTP 429"),
        "{}",
        health(&inst).reason
    );
    // Called again at once (a short interval): no request goes out.
    let err = collect(&mut inst).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable);
    assert!(err.retry_after_ms.into_option().unwrap() <= 2000);
    assert!(err.message.contains("rate limited"), "{err}");
    assert_eq!(server.requests().len(), 1, "no request before Retry-After");
    // Once the delay asked for has passed, the next interval collects again. The
    // wait is the behaviour under test, not a synchronisation.
    std::thread::sleep(Duration::from_millis(2100));
    script_all(&server);
    let batch = collect(&mut inst).expect("collects after Retry-After");
    assert_eq!(value(&batch, "proxmox.cluster.quorate", &[]), Some(1.0));
    assert_eq!(server.requests().len(), 1 + PATHS.len());
    assert_eq!(health(&inst).state, HealthState::Healthy);
}

#[test]
fn rate_limit_midway_keeps_what_was_collected() {
    let server = TestServer::https();
    server.push_response(ok("cluster_status.json"));
    server.push_response(ok("cluster_resources.json"));
    server.push_response(ok("ha_status.json"));
    server.push_response(ok("node_status_pve1.json"));
    server.push_response(ScriptedResponse::status(429).header("Retry-After", "30"));
    let host = TestHost::default();
    let mut inst = instance(&host, &token_config(&server));
    let batch = collect(&mut inst).expect("partial batch");
    assert_eq!(server.requests().len(), 5);
    assert_eq!(
        value(&batch, "proxmox.node.load.5m", &[("proxmox.node", "pve1")]),
        Some(0.61)
    );
    let reason = health(&inst).reason.to_string();
    assert!(
        reason.contains("GET /nodes/pve2/status: HTTP 429"),
        "{reason}"
    );
    assert!(reason.contains("2 call(s) skipped"), "{reason}");
    let err = collect(&mut inst).unwrap_err();
    assert!(
        err.retry_after_ms.into_option().unwrap() > 25_000,
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 5);
}

#[test]
fn tls_is_verified_unless_told_otherwise() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut cfg = token_config(&server);
    cfg.as_object_mut().unwrap().remove("ca_file");
    let mut inst = instance(&host, &cfg);
    let err = collect(&mut inst).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable);
    assert!(
        server.requests().is_empty(),
        "the handshake must fail: {err}"
    );
    // insecure_skip_verify (the Go agent's tls_skip_verify) accepts it.
    cfg["tls_skip_verify"] = true.into();
    script_all(&server);
    let mut inst = instance(&host, &cfg);
    collect(&mut inst).expect("collect without verification");
}

#[test]
fn node_filter_and_switches_limit_the_calls() {
    let server = TestServer::https();
    server.push_response(ok("cluster_resources.json"));
    server.push_response(ok("node_status_pve1.json"));
    let host = TestHost::default();
    let mut cfg = token_config(&server);
    cfg["node"] = "pve1".into();
    cfg["collect_cluster"] = false.into();
    cfg["collect_replication"] = false.into();
    cfg["collect_containers"] = false.into();
    let mut inst = instance(&host, &cfg);
    let batch = collect(&mut inst).unwrap();
    assert_gets(
        &server.requests(),
        &[
            "/api2/json/cluster/resources",
            "/api2/json/nodes/pve1/status",
        ],
    );
    assert_eq!(
        value(&batch, "proxmox.vm.up", &[("proxmox.vmid", "101")]),
        None
    );
    assert_eq!(
        value(&batch, "proxmox.vm.up", &[("proxmox.vmid", "100")]),
        Some(1.0)
    );
    assert!(batch
        .metrics
        .iter()
        .all(|m| !m.name.starts_with("proxmox.container")));
}

#[test]
fn config_errors_carry_field_paths() {
    let host = TestHost::default();
    let e = create(
        &host,
        &serde_json::json!({"api_url": "pve:8006", "token_id": "x"}),
    )
    .err()
    .expect("refused");
    let paths: Vec<&str> = e.config_errors.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["api_url", "token_secret"]);
    let e = create(
        &host,
        &serde_json::json!({"api_url": "https://p", "colect_vms": true}),
    )
    .err()
    .expect("refused");
    assert!(
        e.config_errors[0].message.contains("unknown field"),
        "{e:?}"
    );
    let e = create(
        &host,
        &serde_json::json!({"api_url": "https://p", "token_id": "a@b!c", "token_secret": "s", "ca_file": "/nonexistent/ca.pem"}),
    )
    .err()
    .expect("refused");
    assert_eq!(e.config_errors[0].path.as_str(), "ca_file");
}
