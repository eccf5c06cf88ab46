//! Golden test of the pure mapping: the fixtures in tests/data (written from the
//! PVE API viewer's response shapes) mapped with a fixed clock must render exactly
//! as tests/data/golden.txt, whose every value was checked by hand against the
//! fixtures. `UPDATE_GOLDEN=1` rewrites the file (review the diff!).

use std::collections::BTreeMap;

use serde_json::Value;
use tfo_proxmox::{
    config::Collect,
    map::{self, MetricSet, Resources},
};

const NOW: u64 = 1_795_709_500_000_000_000;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn all() -> Collect {
    Collect {
        vms: true,
        containers: true,
        storage: true,
        network: true,
        cluster: true,
        node_status: true,
        replication: true,
    }
}

fn render_all(node: Option<&str>, collect: Collect) -> String {
    let labels = BTreeMap::from([("env".to_string(), "prod".to_string())]);
    let mut set = MetricSet::new(&labels, NOW);
    map::cluster_status(&mut set, &fixture("cluster_status.json")).unwrap();
    let r = Resources::parse(&fixture("cluster_resources.json"), node).unwrap();
    assert_eq!(
        r.online_nodes(),
        match node {
            Some(n) => vec![n.to_string()],
            None => vec!["pve1".to_string(), "pve2".to_string()],
        }
    );
    map::resources(&mut set, &r, &collect);
    for n in r.online_nodes() {
        map::node_status(&mut set, &n, &fixture(&format!("node_status_{n}.json"))).unwrap();
        map::replication(&mut set, &n, &fixture(&format!("replication_{n}.json"))).unwrap();
    }
    map::ha_status(&mut set, &fixture("ha_status.json")).unwrap();
    map::render(&set.into_metrics())
}

fn check(got: &str, file: &str) {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap();
    if got != want {
        for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            if g != w {
                panic!("{file} line {}:\n got: {g}\nwant: {w}", i + 1);
            }
        }
        panic!(
            "{file}: {} lines, expected {}",
            got.lines().count(),
            want.lines().count()
        );
    }
}

#[test]
fn whole_cluster_matches_golden() {
    check(&render_all(None, all()), "golden.txt");
}

#[test]
fn node_filter_and_switches_match_golden() {
    let collect = Collect {
        containers: false,
        network: false,
        ..all()
    };
    check(&render_all(Some("pve1"), collect), "golden_pve1.txt");
}

#[test]
fn malformed_answers_are_errors_not_panics() {
    let mut set = MetricSet::new(&BTreeMap::new(), NOW);
    for bad in [
        serde_json::json!({}),
        serde_json::json!({"data": 5}),
        serde_json::json!({"data": "x"}),
    ] {
        assert!(map::cluster_status(&mut set, &bad).is_err());
        assert!(Resources::parse(&bad, None).is_err());
        assert!(map::node_status(&mut set, "n", &bad).is_err());
        assert!(map::ha_status(&mut set, &bad).is_err());
        assert!(map::replication(&mut set, "n", &bad).is_err());
    }
    // Entries of the wrong shape are skipped, the good ones kept.
    let r = Resources::parse(
        &serde_json::json!({"data": [1, "x", null, {"type": "qemu"},
            {"type": "qemu", "vmid": "7", "node": "a", "status": "running", "cpu": "bad", "mem": 5}]}),
        None,
    )
    .unwrap();
    map::resources(&mut set, &r, &all());
    let text = map::render(&set.into_metrics());
    assert!(
        text.contains("proxmox.vm.memory.usage{proxmox.node=a,proxmox.vmid=7} gauge[By] 5"),
        "{text}"
    );
    assert!(!text.contains("proxmox.vm.cpu.utilization"), "{text}");
}
