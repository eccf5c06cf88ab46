//! The azure-arc source driven through its exported entry points (as the agent
//! does) against strict local HTTPS servers standing in for Microsoft Entra ID
//! (token endpoint, IMDS) and Azure Resource Manager, answering with the
//! documented example responses (`tests/data`). Each test checks what the servers
//! received (method, path and query, bearer token, the token request form decoded
//! independently) and that the values read back equal the fixture values; the
//! documented failure answers are played: `nextLink` paging over 3 pages, 429 +
//! `Retry-After` (short: waited once; long: no request until it has passed),
//! 401 -> one token refresh, a 500 from the connected clusters listing (the
//! machines are still reported and health says what failed), a `nextLink` to
//! another host (not followed), malformed answers. Every test ends by checking
//! that neither the client secret nor any token appears in a log line or error.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use tfo_plugin_api::{ErrorKind, HealthState, Metric};
use tfo_plugin_common::testing::ScriptedResponse;

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn metrics(b: &tfo_plugin_api::Batch) -> Vec<Metric> {
    b.metrics.iter().cloned().collect()
}

#[test]
fn lists_machines_over_three_pages_clusters_and_extensions() {
    let env = Env::new();
    let host = TestHost::default();
    env.login.push_response(token("tok-arm-1", 3599));
    env.arm_ok("machines_page1.json", 11999);
    env.arm_ok("machines_page2.json", 11998);
    env.arm_ok("machines_page3.json", 11997);
    env.arm_ok("clusters.json", 11996);
    env.arm_ok("extensions_myMachine.json", 11995);
    env.arm_empty(); // myMachine2
    env.arm_ok("extensions_web-01.json", 11993);
    env.arm_empty(); // db-01
    env.arm_empty(); // old-01

    let mut inst = create(&host, &env.config("")).unwrap();
    assert!(
        env.login.requests().is_empty(),
        "create must not fetch a token"
    );
    let before = now_s();
    let batch = collect(&mut inst).unwrap();
    let after = now_s();

    // The token request, decoded independently.
    let logins = env.login.requests();
    assert_eq!(logins.len(), 1);
    check_token_request(&logins[0]);

    // The ARM requests, in order, each with the bearer token.
    let reqs = env.arm.wait_for_requests(9, WAIT);
    assert_eq!(
        reqs.len(),
        9,
        "{:?}",
        reqs.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    let m = machines_path();
    let want = [
        m.clone(),
        format!("{m}&$skiptoken=page2"),
        format!("{m}&$skiptoken=page3"),
        clusters_path(),
        extensions_path("myResourceGroup", "myMachine"),
        extensions_path("myResourceGroup2", "myMachine2"),
        extensions_path("rg-web", "web-01"),
        extensions_path("rg-db", "db-01"),
        extensions_path("rg-old", "old-01"),
    ];
    for (r, p) in reqs.iter().zip(&want) {
        check_arm_request(r, p, "tok-arm-1");
    }

    // Values read back equal the fixtures.
    let res: Vec<(String, String)> = batch
        .resource
        .attributes
        .iter()
        .map(|kv| (kv.key.to_string(), attr_text(&kv.value)))
        .collect();
    assert!(res.contains(&("cloud.provider".into(), "azure".into())));
    assert!(res.contains(&("cloud.account.id".into(), SUB.into())));
    let ms = metrics(&batch);
    for (status, n) in [
        ("Connected", 2.0),
        ("Disconnected", 1.0),
        ("Error", 1.0),
        ("Expired", 1.0),
    ] {
        assert_eq!(
            value(
                &ms,
                "azure_arc.machines.count",
                &[("azure_arc.status", status)]
            ),
            n
        );
    }
    assert_eq!(
        value(
            &ms,
            "azure_arc.machine.connected",
            &[
                ("azure_arc.machine.name", "myMachine2"),
                ("azure.resource_group", "myResourceGroup2"),
                ("cloud.region", "westus2"),
                ("azure_arc.status", "Disconnected"),
                ("os.type", "linux"),
                ("azure_arc.agent.version", "1.43.02663.1621"),
            ]
        ),
        0.0
    );
    // lastStatusChange of myMachine is 2024-10-01T08:00:00Z = 1727769600.
    let age = value(
        &ms,
        "azure_arc.machine.status_change.age",
        &[("azure_arc.machine.name", "myMachine")],
    );
    assert!(
        age >= before - 1_727_769_600.0 - 1.0 && age <= after - 1_727_769_600.0 + 1.0,
        "{age}"
    );
    assert_eq!(
        value(
            &ms,
            "azure_arc.cluster.nodes",
            &[("k8s.cluster.name", "connectedCluster2")]
        ),
        4.0
    );
    assert_eq!(
        value(
            &ms,
            "azure_arc.cluster.connected",
            &[
                ("k8s.cluster.name", "connectedCluster1"),
                ("azure_arc.connectivity_status", "Connected"),
                ("azure_arc.kubernetes.version", "1.17.0"),
                ("azure_arc.agent.version", "1.21.10"),
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &ms,
            "azure_arc.extensions.count",
            &[("azure_arc.provisioning_state", "Succeeded")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &ms,
            "azure_arc.extension.succeeded",
            &[
                ("azure_arc.extension.name", "winosupdateextension"),
                ("azure_arc.provisioning_state", "Creating")
            ]
        ),
        0.0
    );
    assert_eq!(
        value(&ms, "azure_arc.arm.ratelimit.remaining_reads", &[]),
        11993.0
    );
    for l in ["machines", "connected_clusters", "extensions"] {
        assert_eq!(
            value(&ms, "azure_arc.listing.up", &[("azure_arc.listing", l)]),
            1.0
        );
    }
    assert_eq!(inst.health().state, HealthState::Healthy);

    // The next collection reuses the cached token; extensions_interval 0s lists
    // them again.
    env.arm_ok("machines_page3.json", 100);
    env.arm_empty();
    env.arm_empty();
    let b2 = collect(&mut inst).unwrap();
    assert_eq!(env.login.requests().len(), 1, "token cached");
    let reqs = env.arm.wait_for_requests(12, WAIT);
    check_arm_request(&reqs[9], &m, "tok-arm-1");
    check_arm_request(&reqs[11], &extensions_path("rg-old", "old-01"), "tok-arm-1");
    let ms2 = metrics(&b2);
    assert_eq!(
        value(
            &ms2,
            "azure_arc.machines.count",
            &[("azure_arc.status", "Expired")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &ms2,
            "azure_arc.machines.count",
            &[("azure_arc.status", "Connected")]
        ),
        0.0
    );

    assert_no_secrets(&host, &[], &["tok-arm-1"]);
}

#[test]
fn resource_groups_are_listed_one_by_one() {
    let env = Env::new();
    let host = TestHost::default();
    env.login.push_response(token("tok-rg", 3599));
    env.arm_ok("machines_page3.json", 50);
    env.arm_empty();
    let mut inst = create(
        &host,
        &env.config(r#""resource_groups": ["rg-old", "rg-2"], "connected_clusters": false, "extensions": false"#),
    )
    .unwrap();
    let b = collect(&mut inst).unwrap();
    let reqs = env.arm.wait_for_requests(2, WAIT);
    for (r, rg) in reqs.iter().zip(["rg-old", "rg-2"]) {
        check_arm_request(
            r,
            &format!("/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.HybridCompute/machines?api-version=2024-07-10"),
            "tok-rg",
        );
    }
    assert_eq!(
        value(
            &metrics(&b),
            "azure_arc.machines.count",
            &[("azure_arc.status", "Expired")]
        ),
        1.0
    );
    assert!(!has(&metrics(&b), "azure_arc.clusters.count"));
}

#[test]
fn short_retry_after_is_waited_for_once() {
    let env = Env::new();
    let host = TestHost::default();
    env.login.push_response(token("tok-429", 3599));
    env.arm.push_response(
        arm_error(
            429,
            "TooManyRequests",
            "Number of read requests exceeded the limit",
        )
        .header("Retry-After", "1")
        .header("x-ms-ratelimit-remaining-subscription-reads", "0"),
    );
    env.arm_ok("machines_page3.json", 11000);
    let mut inst = create(
        &host,
        &env.config(r#""connected_clusters": false, "extensions": false"#),
    )
    .unwrap();
    let t0 = Instant::now();
    let b = collect(&mut inst).unwrap();
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(950),
        "Retry-After not honoured: {took:?}"
    );
    let reqs = env.arm.requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        check_arm_request(r, &machines_path(), "tok-429");
    }
    let ms = metrics(&b);
    assert_eq!(
        value(
            &ms,
            "azure_arc.machines.count",
            &[("azure_arc.status", "Expired")]
        ),
        1.0
    );
    assert_eq!(
        value(&ms, "azure_arc.arm.ratelimit.remaining_reads", &[]),
        0.0
    );
    assert_eq!(inst.health().state, HealthState::Healthy);
    assert_no_secrets(&host, &[], &["tok-429"]);
}

#[test]
fn long_retry_after_stops_requests_until_it_has_passed() {
    let env = Env::new();
    let host = TestHost::default();
    env.login.push_response(token("tok-long", 3599));
    env.arm.push_response(
        arm_error(
            429,
            "TooManyRequests",
            "Number of read requests exceeded the limit",
        )
        .header("Retry-After", "120")
        .header("x-ms-ratelimit-remaining-subscription-reads", "0"),
    );
    let mut inst = create(&host, &env.config("")).unwrap();
    let t0 = Instant::now();
    let e = collect(&mut inst).unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "must not wait 120 s inside collect"
    );
    assert_eq!(e.kind, ErrorKind::Retryable);
    let after = e.retry_after_ms.into_option().expect("retry_after_ms");
    assert!((110_000..=120_000).contains(&after), "{after}");
    // Only the machines request went out: clusters were not asked either.
    assert_eq!(env.arm.requests().len(), 1);
    let h = inst.health();
    assert_eq!(h.state, HealthState::Unhealthy);
    assert!(h.reason.contains("throttled"), "{}", h.reason);

    // A collection inside the window sends nothing (no tight loop).
    let e2 = collect(&mut inst).unwrap_err();
    assert!(e2.message.contains("throttled"), "{}", e2.message);
    assert!(e2.retry_after_ms.into_option().is_some());
    assert_eq!(
        env.arm.requests().len(),
        1,
        "no request inside the Retry-After window"
    );
    assert_eq!(env.login.requests().len(), 1);
    assert_no_secrets(&host, &[&e, &e2], &["tok-long"]);
}

#[test]
fn unauthorized_refreshes_the_token_once() {
    let env = Env::new();
    let host = TestHost::default();
    env.login.push_response(token("tok-a", 3599));
    env.login.push_response(token("tok-b", 3599));
    env.login.push_response(token("tok-c", 3599));
    env.arm.push_response(arm_error(
        401,
        "ExpiredAuthenticationToken",
        "The access token expiry UTC time is earlier than current UTC time.",
    ));
    env.arm_ok("machines_page3.json", 100);
    let mut inst = create(
        &host,
        &env.config(r#""connected_clusters": false, "extensions": false"#),
    )
    .unwrap();
    let b = collect(&mut inst).unwrap();
    let reqs = env.arm.requests();
    assert_eq!(reqs.len(), 2);
    check_arm_request(&reqs[0], &machines_path(), "tok-a");
    check_arm_request(&reqs[1], &machines_path(), "tok-b");
    let logins = env.login.requests();
    assert_eq!(logins.len(), 2);
    for l in &logins {
        check_token_request(l);
    }
    assert_eq!(
        value(
            &metrics(&b),
            "azure_arc.machines.count",
            &[("azure_arc.status", "Expired")]
        ),
        1.0
    );

    // 401 again after the refresh: one refresh only, then a permanent failure.
    env.arm.push_response(arm_error(
        401,
        "InvalidAuthenticationToken",
        "The access token is invalid.",
    ));
    env.arm.push_response(arm_error(
        401,
        "InvalidAuthenticationToken",
        "The access token is invalid.",
    ));
    let e = collect(&mut inst).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(e.message.contains("401"), "{}", e.message);
    let reqs = env.arm.requests();
    assert_eq!(reqs.len(), 4);
    check_arm_request(&reqs[2], &machines_path(), "tok-b");
    check_arm_request(&reqs[3], &machines_path(), "tok-c");
    assert_eq!(env.login.requests().len(), 3);
    assert_no_secrets(&host, &[&e], &["tok-a", "tok-b", "tok-c"]);
}

#[test]
fn clusters_failing_still_reports_machines_and_says_what_failed() {
    let env = Env::new();
    let host = TestHost::default();
    env.login.push_response(token("tok-partial", 3599));
    env.arm_ok("machines_page3.json", 500);
    env.arm.push_response(arm_error(
        500,
        "InternalServerError",
        "Encountered internal server error.",
    ));
    let mut inst = create(&host, &env.config(r#""extensions": false"#)).unwrap();
    let b = collect(&mut inst).unwrap();
    let reqs = env.arm.requests();
    assert_eq!(reqs.len(), 2, "a 500 is not retried inside the collection");
    check_arm_request(&reqs[1], &clusters_path(), "tok-partial");
    let ms = metrics(&b);
    assert_eq!(
        value(
            &ms,
            "azure_arc.machine.connected",
            &[
                ("azure_arc.machine.name", "old-01"),
                ("azure_arc.status", "Expired"),
                ("azure_arc.agent.version", "1.30.02228.1061")
            ]
        ),
        0.0
    );
    assert!(!has(&ms, "azure_arc.clusters.count"));
    assert_eq!(
        value(
            &ms,
            "azure_arc.listing.up",
            &[("azure_arc.listing", "machines")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &ms,
            "azure_arc.listing.up",
            &[("azure_arc.listing", "connected_clusters")]
        ),
        0.0
    );
    let h = inst.health();
    assert_eq!(h.state, HealthState::Unhealthy);
    assert!(
        h.reason.contains("connected clusters") && h.reason.contains("500"),
        "{}",
        h.reason
    );

    // Next collection all well: healthy again.
    env.arm_ok("machines_page3.json", 499);
    env.arm_ok("clusters.json", 498);
    collect(&mut inst).unwrap();
    assert_eq!(inst.health().state, HealthState::Healthy);
    assert_no_secrets(&host, &[], &["tok-partial"]);
}

#[test]
fn managed_identity_token_from_imds() {
    let env = Env::new();
    let host = TestHost::default();
    env.login.push_response(
        ScriptedResponse::status(200)
            .header("Content-Type", "application/json")
            .body(r#"{"access_token":"tok-mi","expires_in":"86399","token_type":"Bearer","resource":"https://management.azure.com/"}"#),
    );
    env.arm_ok("machines_page3.json", 100);
    let config = format!(
        r#"{{"subscription_id": "{SUB}", "use_managed_identity": true, "client_id": "uami-1",
            "imds_endpoint": "{}", "resource_manager_endpoint": "{}", "ca_file": {},
            "connected_clusters": false, "extensions": false}}"#,
        env.login.url(""),
        env.arm_base(),
        serde_json::to_string(&env.ca_file).unwrap()
    );
    let mut inst = create(&host, &config).unwrap();
    collect(&mut inst).unwrap();
    let r = &env.login.requests()[0];
    assert_eq!(r.method, "GET");
    assert_eq!(
        r.path,
        "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F&client_id=uami-1"
    );
    assert_eq!(r.header("metadata"), Some("true"));
    check_arm_request(&env.arm.requests()[0], &machines_path(), "tok-mi");
    assert_no_secrets(&host, &[], &["tok-mi"]);
}

#[test]
fn next_link_to_another_host_is_not_followed() {
    let env = Env::new();
    let host = TestHost::default();
    env.login.push_response(token("tok-nl", 3599));
    env.arm.push_response(
        ScriptedResponse::status(200)
            .header("Content-Type", "application/json")
            .body(r#"{"value":[],"nextLink":"https://attacker.example/subscriptions/sub-1/providers/Microsoft.HybridCompute/machines?api-version=2024-07-10&$skiptoken=x"}"#),
    );
    let mut inst = create(
        &host,
        &env.config(r#""connected_clusters": false, "extensions": false"#),
    )
    .unwrap();
    let e = collect(&mut inst).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(e.message.contains("nextLink"), "{}", e.message);
    assert_eq!(env.arm.requests().len(), 1);
    assert_no_secrets(&host, &[&e], &["tok-nl"]);
}

#[test]
fn malformed_answers_are_errors_not_panics() {
    let env = Env::new();
    let host = TestHost::default();
    env.login.push_response(token("tok-bad", 3599));
    let mut inst = create(
        &host,
        &env.config(r#""connected_clusters": false, "extensions": false"#),
    )
    .unwrap();
    for body in [
        "<html>oops</html>",
        r#"{"value": 5}"#,
        "",
        r#"{"value":[{"id":1}],"nextLink":7}"#,
    ] {
        env.arm
            .push_response(ScriptedResponse::status(200).body(body));
        let e = collect(&mut inst).unwrap_err();
        assert!(
            e.message.contains("not an ARM list answer"),
            "{body}: {}",
            e.message
        );
        assert!(host.panics().is_empty());
    }
    // Items of the wrong shape are skipped and reported, the others kept.
    env.arm.push_response(ScriptedResponse::status(200).body(
        r#"{"value":[{"id":"/subscriptions/sub-1/resourceGroups/r/providers/Microsoft.HybridCompute/machines/ok","properties":{"status":"Connected"}}, {"id": 5}, "x"]}"#,
    ));
    let b = collect(&mut inst).unwrap();
    assert_eq!(
        value(
            &metrics(&b),
            "azure_arc.machines.count",
            &[("azure_arc.status", "Connected")]
        ),
        1.0
    );
    assert!(
        inst.health()
            .reason
            .contains("2 Arc-enabled server item(s)"),
        "{}",
        inst.health().reason
    );
    // A token endpoint answering garbage.
    let env2 = Env::new();
    env2.login
        .push_response(ScriptedResponse::status(200).body("not json"));
    let mut inst2 = create(&host, &env2.config("")).unwrap();
    let e = collect(&mut inst2).unwrap_err();
    assert!(e.message.contains("token"), "{}", e.message);
    assert!(env2.arm.requests().is_empty());
    assert_no_secrets(&host, &[&e], &["tok-bad"]);
}

#[test]
fn tls_is_verified() {
    let env = Env::new();
    let host = TestHost::default();
    let config = env
        .config("")
        .replace(&serde_json::to_string(&env.ca_file).unwrap(), "null");
    let mut inst = create(&host, &config).unwrap();
    let e = collect(&mut inst).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert!(env.arm.requests().is_empty() && env.login.requests().is_empty());
}

#[test]
fn config_errors_carry_paths() {
    let host = TestHost::default();
    let e = create(
        &host,
        r#"{"subscription_id":"", "client_id":"c", "resource_groups":["a b"], "extensions_concurrency": 99}"#,
    )
    .err()
    .unwrap();
    let paths: Vec<String> = e.config_errors.iter().map(|c| c.path.to_string()).collect();
    assert_eq!(
        paths,
        [
            "subscription_id",
            "resource_groups[0]",
            "tenant_id",
            "client_secret",
            "extensions_concurrency"
        ]
    );
    let e = create(&host, r#"{"subscription_id":"s","tenant":"t"}"#)
        .err()
        .unwrap();
    assert!(
        e.config_errors[0].message.contains("unknown field"),
        "{:?}",
        e.config_errors
    );
    let e = create(
        &host,
        &format!(r#"{{"subscription_id":"s","tenant_id":"t","client_id":"c","client_secret":"{SECRET}","timeout":"soon"}}"#),
    )
    .err()
    .unwrap();
    assert_eq!(e.config_errors[0].path.as_str(), "timeout");
    assert!(!format!("{e:?}").contains(SECRET));
}

#[test]
fn extensions_follow_their_interval_and_the_read_budget() {
    let env = Env::new();
    let host = TestHost::default();
    env.login.push_response(token("tok-ext", 3599));
    // 1st collection: extensions listed (1 machine, 10 reads left).
    env.arm_ok("machines_page3.json", 10);
    env.arm_empty();
    let mut inst = create(
        &host,
        &env.config(r#""connected_clusters": false"#).replace(
            r#""extensions_interval": "0s""#,
            r#""extensions_interval": "1h""#,
        ),
    )
    .unwrap();
    let b1 = collect(&mut inst).unwrap();
    assert_eq!(env.arm.requests().len(), 2);
    check_arm_request(
        &env.arm.requests()[1],
        &extensions_path("rg-old", "old-01"),
        "tok-ext",
    );
    assert_eq!(
        value(
            &metrics(&b1),
            "azure_arc.listing.up",
            &[("azure_arc.listing", "extensions")]
        ),
        1.0
    );
    // 2nd collection within the hour: no extension request, no extension metrics.
    env.arm_ok("machines_page3.json", 9);
    let b2 = collect(&mut inst).unwrap();
    assert_eq!(env.arm.requests().len(), 3);
    assert!(!has(&metrics(&b2), "azure_arc.extensions.count"));
    assert_eq!(inst.health().state, HealthState::Healthy);

    // Another instance every collection, but ARM reports no reads left: the
    // extensions are skipped (not sent into a 429) and health says why.
    let env = Env::new();
    env.login.push_response(token("tok-ext2", 3599));
    env.arm_ok("machines_page3.json", 0);
    let mut inst = create(&host, &env.config(r#""connected_clusters": false"#)).unwrap();
    let b = collect(&mut inst).unwrap();
    assert_eq!(env.arm.requests().len(), 1);
    let ms = metrics(&b);
    assert_eq!(
        value(
            &ms,
            "azure_arc.listing.up",
            &[("azure_arc.listing", "extensions")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &ms,
            "azure_arc.machines.count",
            &[("azure_arc.status", "Expired")]
        ),
        1.0
    );
    let h = inst.health();
    assert_eq!(h.state, HealthState::Unhealthy);
    assert!(h.reason.contains("0 reads left"), "{}", h.reason);
    assert_no_secrets(&host, &[], &["tok-ext", "tok-ext2"]);
}

#[test]
fn the_example_config_block_is_valid() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml"))
        .unwrap()
        .replace(
            "${AZURE_SUBSCRIPTION_ID:-}",
            "00000000-0000-0000-0000-000000000000",
        )
        .replace("${AZURE_TENANT_ID:-}", "contoso.onmicrosoft.com")
        .replace(
            "${AZURE_CLIENT_ID:-}",
            "11111111-1111-1111-1111-111111111111",
        )
        .replace("${AZURE_CLIENT_SECRET:-}", "example-secret");
    assert!(!text.contains("${"), "unsubstituted variable left");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut block = doc["azure-arc"].clone();
    let map = block.as_mapping_mut().unwrap();
    assert_eq!(map.get("enabled"), Some(&serde_yaml::Value::Bool(false)));
    for k in ["enabled", "interval", "plugin", "routes"] {
        map.remove(k);
    }
    let json = serde_json::to_string(&block).unwrap();
    let host = TestHost::default();
    let inst = create(&host, &json);
    assert!(inst.is_ok(), "{:?}", inst.err());
}
