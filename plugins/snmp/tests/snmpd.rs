//! End-to-end tests against Debian's real net-snmp agent (`snmpd`, one private
//! instance per test on a free loopback port, never the system service), driving
//! the plugin through its exported root module the way the agent does. Values are
//! checked against what net-snmp's own `snmpwalk` reports for the same agent
//! (`-On -Oq -Ot`), read just before and just after the plugin's collection so
//! that counters (which move with the loopback traffic of the test itself) must
//! lie between the two walks, and everything static must be equal.
//!
//! Needs `snmpd` and `snmpwalk` (Debian packages `snmpd` and `snmp`); without them
//! each test prints a SKIP line and returns, unless TFO_REQUIRE_SERVICES=1.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use snmp_parser::{asn1_rs::FromBer, SnmpGenericMessage, SnmpPdu};
use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, Batch, DataTypes, HealthState, MetricKind,
    PluginKind,
};

// Links the library under test (its root-module symbol is used by `common`).
extern crate tfo_snmp;

fn walk_all(auth: Auth, addr: &str) -> Walk {
    let mut w = snmpwalk(auth, addr, "1.3.6.1.2.1.1");
    w.extend(snmpwalk(auth, addr, "1.3.6.1.2.1.2.2"));
    w.extend(snmpwalk(auth, addr, "1.3.6.1.2.1.31.1.1"));
    w
}

fn values_match_snmpwalk(auth: Auth) {
    if !have_net_snmp() {
        return;
    }
    let agent = Snmpd::start();
    let addr = agent.address();
    let h = TestHost::default();
    let mut inst = instance(
        &h,
        &json!({"targets": [auth.target(&addr)], "scalars": ["system"], "tables": ["ifTable", "ifXTable"]}),
    );
    let before = walk_all(auth, &addr);
    let started = Instant::now();
    let b = collect(&mut inst);
    let took = started.elapsed();
    let after = walk_all(auth, &addr);
    assert_eq!(up(&b, &addr), Some(1), "{:?}", health(&inst));
    assert_eq!(health(&inst).state, HealthState::Healthy);
    assert!(took < Duration::from_secs(5), "collect took {took:?}");
    // The loopback interface is there, with its well-known values.
    let lo_index = before
        .iter()
        .find(|(o, v)| o.starts_with("1.3.6.1.2.1.2.2.1.2.") && v.as_str() == "lo")
        .map(|(o, _)| o["1.3.6.1.2.1.2.2.1.2.".len()..].to_string())
        .expect("snmpd reports the loopback interface");
    let ift = find(&b, "ifType").unwrap();
    let lo_type = points_of(ift, &addr)
        .into_iter()
        .find(|p| attr(p, "ifIndex") == Some(lo_index.as_str()))
        .unwrap();
    assert_eq!(int(lo_type), 24, "softwareLoopback");
    let checked = compare_with_walks(&b, &addr, &before, &after);
    assert!(checked > 20, "only {checked} values compared");
    // Counters are cumulative monotonic sums, the rest gauges.
    assert_eq!(find(&b, "ifInOctets").unwrap().kind, MetricKind::Sum);
    assert!(find(&b, "ifInOctets").unwrap().is_monotonic);
    assert_eq!(find(&b, "sysUpTime").unwrap().kind, MetricKind::Gauge);
    assert_eq!(
        attr(points_of(find(&b, "sysName").unwrap(), &addr)[0], "sysName"),
        Some("tfo-test-agent")
    );
    assert!(inst.shutdown(2000).is_ok());
}

#[test]
fn v1_values_match_snmpwalk() {
    values_match_snmpwalk(Auth::V1);
}

#[test]
fn v2c_values_match_snmpwalk() {
    values_match_snmpwalk(Auth::V2c);
}

#[test]
fn v3_auth_no_priv_sha_values_match_snmpwalk() {
    values_match_snmpwalk(Auth::V3AuthNoPriv);
}

#[test]
fn v3_auth_priv_sha256_aes_values_match_snmpwalk() {
    values_match_snmpwalk(Auth::V3AuthPriv);
}

/// v1 has no Counter64: the HC counters are absent, the 32-bit ones present; v2c
/// has both. A missing object in a v1 GET does not lose the others.
#[test]
fn counter64_only_over_v2c_and_v3() {
    if !have_net_snmp() {
        return;
    }
    let agent = Snmpd::start();
    let addr = agent.address();
    let h = TestHost::default();
    // Also a GET of an object the agent lacks: SNMPv1 answers noSuchName for the
    // whole request, the plugin drops that variable and asks again.
    let mut inst = instance(
        &h,
        &json!({"targets": [Auth::V1.target(&addr)], "scalars": ["system"], "tables": ["ifXTable"],
                "oids": [{"oid": "1.3.6.1.4.1.99999.1.0", "name": "missing"}]}),
    );
    let b = collect(&mut inst);
    assert_eq!(up(&b, &addr), Some(1));
    assert!(find(&b, "missing").is_none());
    assert!(find(&b, "sysName").is_some() && find(&b, "sysUpTime").is_some());
    assert!(find(&b, "ifHCInOctets").is_none());
    assert!(find(&b, "ifInMulticastPkts").is_some());
    let mut inst = instance(
        &h,
        &json!({"targets": [Auth::V2c.target(&addr)], "scalars": [], "tables": ["ifXTable"]}),
    );
    let b = collect(&mut inst);
    assert!(find(&b, "ifHCInOctets").is_some());
}

/// All four versions against one agent in one instance, polled concurrently;
/// a second collection keeps each counter's start time and never goes backwards.
#[test]
fn four_targets_concurrently_and_counters_across_collections() {
    if !have_net_snmp() {
        return;
    }
    let agent = Snmpd::start();
    let addr = agent.address();
    let mut targets = Vec::new();
    for (i, auth) in [Auth::V1, Auth::V2c, Auth::V3AuthNoPriv, Auth::V3AuthPriv]
        .into_iter()
        .enumerate()
    {
        let mut t = auth.target(&addr);
        t["labels"] = json!({"auth": format!("a{i}")});
        targets.push(t);
    }
    let h = TestHost::default();
    let mut inst = instance(&h, &json!({"targets": targets}));
    let first = collect(&mut inst);
    let second = collect(&mut inst);
    for b in [&first, &second] {
        let ups: Vec<&tfo_plugin_api::DataPoint> =
            find(b, "snmp.up").unwrap().points.iter().collect();
        assert_eq!(ups.len(), 4);
        assert!(ups.iter().all(|p| int(p) == 1), "{:?}", health(&inst));
        for i in 0..4 {
            let label = format!("a{i}");
            let n = find(b, "sysName")
                .unwrap()
                .points
                .iter()
                .filter(|p| attr(p, "auth") == Some(label.as_str()))
                .count();
            assert_eq!(n, 1, "target {i}");
        }
        assert_eq!(find(b, "snmp.collect.duration").unwrap().points.len(), 4);
    }
    let m1 = find(&first, "ifInOctets").unwrap();
    let m2 = find(&second, "ifInOctets").unwrap();
    assert_eq!(m1.points.len(), m2.points.len());
    for p1 in m1.points.iter() {
        let p2 = m2
            .points
            .iter()
            .find(|p| p.attributes == p1.attributes)
            .expect("same series");
        assert_eq!(p2.start_time_unix_nano, p1.start_time_unix_nano);
        assert_eq!(
            p1.start_time_unix_nano, p1.time_unix_nano,
            "first point starts at its own time"
        );
        assert!(p2.time_unix_nano > p1.time_unix_nano);
        assert!(int(p2) >= int(p1));
    }
    // A collection written into an exported batch handed back (as the agent
    // does once the sinks are done with it) has the same metrics and series,
    // its counters going on from the second collection's.
    h.give_back(first.clone());
    let third = collect(&mut inst);
    assert!(
        h.reclaim_asks() >= 3,
        "the plugin did not ask for its batch"
    );
    let shape = |b: &Batch| {
        b.metrics
            .iter()
            .map(|m| (m.name.to_string(), m.kind, m.points.len()))
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&third), shape(&second));
    let m3 = find(&third, "ifInOctets").unwrap();
    for p2 in m2.points.iter() {
        let p3 = m3
            .points
            .iter()
            .find(|p| p.attributes == p2.attributes)
            .expect("same series");
        assert_eq!(p3.start_time_unix_nano, p2.start_time_unix_nano);
        assert!(p3.time_unix_nano > p2.time_unix_nano);
        assert!(int(p3) >= int(p2));
    }
    assert_eq!(health(&inst).state, HealthState::Healthy);
}

/// Each target keeps one UDP socket across collections (every request of three
/// collections leaves from the same address), and a collection is one batch with
/// one metric per name, the targets' points in target order.
#[test]
fn one_socket_per_target_and_one_batch_per_collection() {
    if !have_net_snmp() {
        return;
    }
    let agent = Snmpd::start();
    let relays = [
        Relay::start(agent.port, RelayMode::Forward),
        Relay::start(agent.port, RelayMode::Forward),
    ];
    let targets: Vec<serde_json::Value> = relays
        .iter()
        .map(|r| json!({"address": r.address(), "version": "v2c", "community": COMMUNITY}))
        .collect();
    let h = TestHost::default();
    let mut inst = instance(&h, &json!({"targets": targets}));
    for _ in 0..3 {
        let b = collect(&mut inst);
        let names: Vec<&str> = b.metrics.iter().map(|m| m.name.as_str()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "a name twice in {names:?}");
        for m in b.metrics.iter() {
            let order: Vec<usize> = m
                .points
                .iter()
                .map(|p| {
                    let t = attr(p, "snmp.target").unwrap();
                    relays.iter().position(|r| r.address() == t).unwrap()
                })
                .collect();
            assert!(
                order.windows(2).all(|w| w[0] <= w[1]),
                "{}: {order:?}",
                m.name
            );
        }
        for r in &relays {
            assert_eq!(up(&b, &r.address()), Some(1));
        }
        // Both targets' interfaces are in the one batch.
        assert_eq!(
            points_of(find(&b, "ifInOctets").unwrap(), &relays[0].address()).len(),
            points_of(find(&b, "ifInOctets").unwrap(), &relays[1].address()).len()
        );
    }
    assert!(
        h.take_batches().is_empty(),
        "a polling source returns, never emits"
    );
    for r in &relays {
        let senders = r.senders.lock().unwrap();
        assert!(senders.len() >= 3 * 4, "{} requests", senders.len());
        assert!(
            senders.iter().all(|a| *a == senders[0]),
            "requests from several sockets: {senders:?}"
        );
    }
    assert_ne!(
        relays[0].senders.lock().unwrap()[0],
        relays[1].senders.lock().unwrap()[0],
        "one socket per target"
    );
    assert!(inst.shutdown(2000).is_ok());
}

/// A wrong community, a wrong auth password, a wrong priv password and an unknown
/// user each take only their own target down, with a reason that says what to
/// fix; the good target keeps reporting, and the next collection works too.
#[test]
fn wrong_credentials_only_take_their_target_down() {
    if !have_net_snmp() {
        return;
    }
    let agent = Snmpd::start();
    let addr = agent.address();
    // Every target is the same agent; the `n` label tells them apart.
    let bad_community = json!({"address": addr, "version": "v2c", "community": "not-it",
        "timeout": "300ms", "retries": 1});
    let mut wrong_auth = Auth::V3AuthPriv.target(&addr);
    wrong_auth["user"]["auth_password"] = json!("wrong-password");
    let mut wrong_priv = Auth::V3AuthPriv.target(&addr);
    wrong_priv["user"]["priv_password"] = json!("wrong-password");
    wrong_priv["timeout"] = json!("300ms");
    wrong_priv["retries"] = json!(0);
    let mut unknown = Auth::V3AuthNoPriv.target(&addr);
    unknown["user"]["username"] = json!("nobody");
    let mut wrong_proto = Auth::V3AuthNoPriv.target(&addr);
    wrong_proto["user"]["auth_protocol"] = json!("SHA512");
    let mut targets = vec![
        Auth::V2c.target(&addr),
        bad_community,
        wrong_auth,
        wrong_priv,
        unknown,
        wrong_proto,
    ];
    for (i, t) in targets.iter_mut().enumerate() {
        t["labels"] = json!({"n": i.to_string()});
    }
    let h = TestHost::default();
    let mut inst = instance(&h, &json!({"targets": targets, "tables": ["ifTable"]}));
    for round in 0..2 {
        let started = Instant::now();
        let b = collect(&mut inst);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "round {round}: {:?}",
            started.elapsed()
        );
        let up_of = |n: &str| {
            find(&b, "snmp.up")
                .unwrap()
                .points
                .iter()
                .find(|p| attr(p, "n") == Some(n))
                .map(int)
        };
        assert_eq!(up_of("0"), Some(1));
        for n in ["1", "2", "3", "4", "5"] {
            assert_eq!(up_of(n), Some(0), "target {n}");
        }
        // Only the good target has data.
        let names = find(&b, "sysName").unwrap();
        assert_eq!(names.points.len(), 1);
        assert_eq!(attr(&names.points[0], "n"), Some("0"));
        assert!(!find(&b, "ifInOctets").unwrap().points.is_empty());
        let hr = health(&inst);
        assert_eq!(hr.state, HealthState::Unhealthy);
        let reason = hr.reason.as_str();
        assert!(reason.starts_with("5 of 6 SNMP targets down"), "{reason}");
        for want in [
            "wrong community",
            "usmStatsWrongDigests",
            "priv_password",
            "usmStatsUnknownUserNames",
            "\"nobody\"",
        ] {
            assert!(reason.contains(want), "{want:?} missing from {reason}");
        }
        assert!(
            !reason.contains("not-it") && !reason.contains("wrong-password"),
            "secrets leak: {reason}"
        );
    }
    assert!(h.logs().iter().any(|(_, l)| l.contains("SNMP target down")));
    assert!(h.panics().is_empty(), "{:?}", h.panics());
    assert!(inst.shutdown(2000).is_ok());
}

/// A target that never answers costs exactly timeout x (retries + 1) and the
/// configured number of datagrams, and does not hold the others back.
#[test]
fn dead_target_times_out_with_its_retries() {
    if !have_net_snmp() {
        return;
    }
    let agent = Snmpd::start();
    let relay = Relay::start(agent.port, RelayMode::Drop);
    let dead = json!({"address": relay.address(), "version": "v2c", "community": COMMUNITY,
        "timeout": "200ms", "retries": 2});
    let h = TestHost::default();
    let mut inst = instance(
        &h,
        &json!({"targets": [dead, Auth::V2c.target(&agent.address())]}),
    );
    let started = Instant::now();
    let b = collect(&mut inst);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(up(&b, &relay.address()), Some(0));
    assert_eq!(up(&b, &agent.address()), Some(1));
    assert_eq!(
        relay.requests.lock().unwrap().len(),
        3,
        "one request and two retries"
    );
    let reason = health(&inst).reason.to_string();
    assert!(
        reason.contains("no response from") && reason.contains("after 3 attempts of 200ms"),
        "{reason}"
    );
}

/// GETBULK carries the configured max-repetitions, the agent's answers hold at
/// most that many variables, and a walk of n variables takes floor(n / m) + 1
/// requests (the last one ends past the subtree).
#[test]
fn getbulk_respects_max_repetitions() {
    if !have_net_snmp() {
        return;
    }
    let agent = Snmpd::start();
    for m in [3u32, 7] {
        let relay = Relay::start(agent.port, RelayMode::Forward);
        let target = json!({"address": relay.address(), "version": "v2c", "community": COMMUNITY});
        let h = TestHost::default();
        let mut inst = instance(
            &h,
            &json!({"targets": [target], "scalars": [], "tables": ["ifTable"], "max_repetitions": m}),
        );
        let b = collect(&mut inst);
        assert_eq!(up(&b, &relay.address()), Some(1));
        let walk = snmpwalk(Auth::V2c, &agent.address(), "1.3.6.1.2.1.2.2.1");
        let names = snmpwalk(Auth::V2c, &agent.address(), "1.3.6.1.2.1.31.1.1.1.1");
        let (mut entry_reqs, mut name_reqs) = (0usize, 0usize);
        for r in relay.requests.lock().unwrap().iter() {
            let (_, msg) = SnmpGenericMessage::from_ber(r).expect("our request decodes");
            let SnmpGenericMessage::V2(msg) = msg else {
                panic!("not v2c")
            };
            let SnmpPdu::Bulk(bulk) = &msg.pdu else {
                panic!("not GETBULK: {:?}", msg.pdu)
            };
            assert_eq!(bulk.max_repetitions, m);
            assert_eq!(bulk.non_repeaters, 0);
            assert_eq!(bulk.var.len(), 1);
            let oid = bulk.var[0].oid.to_id_string();
            if oid.starts_with("1.3.6.1.2.1.2.2.1") {
                entry_reqs += 1;
            } else if oid.starts_with("1.3.6.1.2.1.31.1.1.1.1") {
                name_reqs += 1;
            } else {
                panic!("unexpected walk of {oid}");
            }
        }
        for r in relay.responses.lock().unwrap().iter() {
            let (_, msg) = SnmpGenericMessage::from_ber(r).unwrap();
            let SnmpGenericMessage::V2(msg) = msg else {
                panic!()
            };
            assert!(msg.vars_iter().count() as u32 <= m);
        }
        assert_eq!(
            entry_reqs,
            walk.len() / m as usize + 1,
            "m={m}, {} variables",
            walk.len()
        );
        assert_eq!(
            name_reqs,
            names.len() / m as usize + 1,
            "m={m}, {} names",
            names.len()
        );
        // The data is complete all the same.
        assert_eq!(
            find(&b, "ifInOctets").unwrap().points.len(),
            walk.keys()
                .filter(|o| o.starts_with("1.3.6.1.2.1.2.2.1.10."))
                .count()
        );
    }
}

/// HOST-RESOURCES-MIB sets and user-defined objects (a scalar instance and a
/// table column with a named index) against snmpwalk.
#[test]
fn host_resources_and_user_defined_oids() {
    if !have_net_snmp() {
        return;
    }
    let agent = Snmpd::start();
    let addr = agent.address();
    let h = TestHost::default();
    let mut inst = instance(
        &h,
        &json!({
            "targets": [Auth::V3AuthPriv.target(&addr)],
            "scalars": ["hrSystem"],
            "tables": ["hrStorageTable", "hrProcessorTable"],
            "oids": [
                {"oid": "1.3.6.1.2.1.1.3.0", "name": "agent_uptime", "unit": "s"},
                {"oid": "1.3.6.1.2.1.2.2.1.4", "name": "if_mtu", "index_labels": ["if"], "type": "gauge"},
                {"oid": "1.3.6.1.2.1.2.2.1.10", "name": "if_in_octets", "index_labels": ["if"]},
                {"oid": "1.3.6.1.2.1.1.5.0", "name": "agent_name"}
            ]
        }),
    );
    let storage = snmpwalk(Auth::V3AuthPriv, &addr, "1.3.6.1.2.1.25.2.3.1");
    let procs = snmpwalk(Auth::V3AuthPriv, &addr, "1.3.6.1.2.1.25.3.3.1.2");
    let before = walk_all(Auth::V3AuthPriv, &addr);
    let b = collect(&mut inst);
    let after = walk_all(Auth::V3AuthPriv, &addr);
    assert_eq!(up(&b, &addr), Some(1), "{:?}", health(&inst));

    let units = find(&b, "hrStorageAllocationUnits").unwrap();
    let rows: Vec<_> = storage
        .iter()
        .filter(|(o, _)| o.starts_with("1.3.6.1.2.1.25.2.3.1.4."))
        .collect();
    assert!(!rows.is_empty());
    assert_eq!(units.points.len(), rows.len());
    for (oid, v) in rows {
        let idx = &oid["1.3.6.1.2.1.25.2.3.1.4.".len()..];
        let p = units
            .points
            .iter()
            .find(|p| attr(p, "hrStorageIndex") == Some(idx))
            .unwrap();
        assert_eq!(int(p).to_string(), *v);
        assert_eq!(
            attr(p, "hrStorageDescr"),
            storage
                .get(&format!("1.3.6.1.2.1.25.2.3.1.3.{idx}"))
                .map(String::as_str)
        );
        let ty = storage[&format!("1.3.6.1.2.1.25.2.3.1.2.{idx}")].trim_start_matches('.');
        assert_eq!(attr(p, "hrStorageType"), Some(ty));
    }
    assert!(find(&b, "hrStorageSize").is_some() && find(&b, "hrStorageUsed").is_some());
    // net-snmp reports hrProcessorLoad only after its first minute of sampling.
    assert_eq!(
        find(&b, "hrProcessorLoad")
            .map(|m| m.points.len())
            .unwrap_or(0),
        procs.len()
    );
    let max = find(&b, "hrSystemMaxProcesses").unwrap();
    assert!(num(&max.points[0]) >= 0.0);
    assert!(find(&b, "hrSystemUptime").is_some());

    let up_s = num(&find(&b, "agent_uptime").unwrap().points[0]) * 100.0;
    let (lo, hi): (f64, f64) = (
        before["1.3.6.1.2.1.1.3.0"].parse().unwrap(),
        after["1.3.6.1.2.1.1.3.0"].parse().unwrap(),
    );
    assert!(lo <= up_s.round() && up_s.round() <= hi);
    let mtu = find(&b, "if_mtu").unwrap();
    assert_eq!(mtu.kind, MetricKind::Gauge);
    for p in mtu.points.iter() {
        let idx = attr(p, "if").unwrap();
        assert_eq!(
            int(p).to_string(),
            before[&format!("1.3.6.1.2.1.2.2.1.4.{idx}")]
        );
    }
    assert_eq!(
        mtu.points.len(),
        before
            .keys()
            .filter(|o| o.starts_with("1.3.6.1.2.1.2.2.1.4."))
            .count()
    );
    let inoct = find(&b, "if_in_octets").unwrap();
    assert_eq!(
        inoct.kind,
        MetricKind::Sum,
        "Counter32 makes a counter by default"
    );
    let name = find(&b, "agent_name").unwrap();
    assert_eq!(attr(&name.points[0], "agent_name"), Some("tfo-test-agent"));
}

/// Real responses, corrupted at random, never crash the plugin: first straight into
/// the decoders (thousands of mutations of v1, v2c and v3 authPriv answers), then
/// end to end through a relay that corrupts every answer while a clean target in
/// the same instance keeps working.
#[test]
fn mutated_real_responses_never_panic() {
    if !have_net_snmp() {
        return;
    }
    let agent = Snmpd::start();
    // 1. Record real answers of each version.
    let mut samples: Vec<Vec<u8>> = Vec::new();
    for auth in [Auth::V1, Auth::V2c, Auth::V3AuthPriv] {
        let relay = Relay::start(agent.port, RelayMode::Forward);
        let h = TestHost::default();
        let mut inst = instance(
            &h,
            &json!({"targets": [auth.target(&relay.address())], "tables": ["ifTable"]}),
        );
        let b = collect(&mut inst);
        assert_eq!(up(&b, &relay.address()), Some(1));
        samples.extend(relay.responses.lock().unwrap().iter().cloned());
    }
    assert!(samples.len() >= 6);
    // 2. Decoders on mutated answers.
    let mut rng = Rng(42);
    let mut decoded_ok = 0u32;
    for s in &samples {
        for _ in 0..2000 {
            let m = mutate(s, &mut rng);
            let a = tfo_snmp::message::decode_community(&m).is_ok();
            let b = tfo_snmp::message::decode_v3(&m).is_ok();
            let _ = tfo_snmp::message::peek_version(&m);
            decoded_ok += u32::from(a || b);
        }
    }
    // Some mutations keep the message valid (a changed counter value), most do not.
    assert!(decoded_ok > 0);
    // 3. End to end: every answer corrupted.
    let r2 = Relay::start(agent.port, RelayMode::Mutate);
    let r3 = Relay::start(agent.port, RelayMode::Mutate);
    let mut t2 = Auth::V2c.target(&r2.address());
    t2["timeout"] = json!("100ms");
    t2["retries"] = json!(1);
    let mut t3 = Auth::V3AuthPriv.target(&r3.address());
    t3["timeout"] = json!("100ms");
    t3["retries"] = json!(1);
    let h = TestHost::default();
    let mut inst = instance(
        &h,
        &json!({"targets": [Auth::V2c.target(&agent.address()), t2, t3], "collect_timeout": "8s"}),
    );
    for _ in 0..3 {
        let b = collect(&mut inst);
        assert_eq!(up(&b, &agent.address()), Some(1));
        for r in [&r2, &r3] {
            let u = up(&b, &r.address()).expect("snmp.up for the corrupted target");
            assert!(u == 0 || u == 1);
        }
    }
    assert!(r2.mutated.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert!(r3.mutated.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert!(inst.shutdown(2000).is_ok());
}

#[test]
fn descriptor_describes_a_metrics_source() {
    let d = (module().descriptor())();
    assert_eq!(d.name.as_str(), "snmp");
    assert_eq!(d.kind, PluginKind::Source);
    assert_eq!(d.data_types, DataTypes::METRICS);
    assert_eq!(
        d.plugin_api_version.as_str(),
        tfo_plugin_api::PLUGIN_API_VERSION
    );
}

#[test]
fn invalid_config_is_refused_with_paths() {
    let h = TestHost::default();
    let bad = json!({"targets": [{"address": "h:99999", "version": "v3",
        "user": {"username": "u", "auth_protocol": "SHA", "auth_password": "short"}}],
        "max_repetitions": 0});
    match create(&h, &bad.to_string()) {
        RResult::ROk(_) => panic!("create should fail"),
        RResult::RErr(e) => {
            let paths: Vec<&str> = e.config_errors.iter().map(|c| c.path.as_str()).collect();
            assert_eq!(
                paths,
                [
                    "targets[0].address",
                    "targets[0].user.auth_password",
                    "max_repetitions"
                ]
            );
        }
    }
    match create(&h, r#"{"targets": [{"address": "h", "retry": 1}]}"#) {
        RResult::ROk(_) => panic!("create should fail"),
        RResult::RErr(e) => {
            assert_eq!(e.config_errors[0].path.as_str(), "targets[0].retry");
            assert!(
                e.config_errors[0].message.contains("unknown field `retry`"),
                "{e:?}"
            );
        }
    }
}
