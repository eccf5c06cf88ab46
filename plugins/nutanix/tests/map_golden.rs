//! Golden test of the pure mapping: the fixtures in tests/data (written from the
//! documented Prism Central v3 and Prism Element v2.0 / v1 response shapes) mapped
//! with a fixed clock must render exactly as tests/data/golden_v3.txt and
//! golden_v2.txt, whose every value was checked by hand against the fixtures.
//! `UPDATE_GOLDEN=1` rewrites them (review the diff!).

use std::collections::BTreeMap;

use serde_json::Value;
use tfo_nutanix::map::{self, Entity, Kind, MetricSet};

const NOW: u64 = 1_795_709_500_000_000_000;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn check(got: &str, file: &str) {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap();
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "{file} line {}", i + 1);
    }
    assert_eq!(got.lines().count(), want.lines().count(), "{file}");
}

fn render(found: &[(Kind, Vec<Entity>)]) -> String {
    let labels = BTreeMap::from([("site".to_string(), "dc1".to_string())]);
    let mut set = MetricSet::new(&labels, NOW);
    let clusters: BTreeMap<String, String> = found
        .iter()
        .filter(|(k, _)| *k == Kind::Cluster)
        .flat_map(|(_, l)| l.iter())
        .filter_map(|c| c.name.clone().map(|n| (c.uuid.clone(), n)))
        .collect();
    for (kind, list) in found {
        for e in list {
            map::entity(&mut set, *kind, e, &clusters);
        }
    }
    map::render(&set.into_metrics())
}

fn v3(kind: Kind, lists: &[&str], groups: &[&str]) -> Vec<Entity> {
    let mut out: Vec<Entity> = Vec::new();
    for f in lists {
        let body = fixture(f);
        out.extend(
            map::entities(&body)
                .unwrap()
                .iter()
                .filter_map(|e| map::v3_entity(kind, e)),
        );
    }
    let mut stats = BTreeMap::new();
    for f in groups {
        stats.extend(map::v3_groups(&fixture(f)).unwrap().0);
    }
    for e in &mut out {
        if let Some(s) = stats.get(&e.uuid) {
            e.stats.clone_from(s);
        }
    }
    out
}

#[test]
fn prism_central_v3_matches_golden() {
    let clusters = v3(
        Kind::Cluster,
        &["v3_clusters.json"],
        &["v3_groups_cluster.json"],
    );
    assert_eq!(clusters.len(), 1, "Prism Central itself is not a cluster");
    let hosts = v3(Kind::Host, &["v3_hosts.json"], &["v3_groups_host.json"]);
    let vms = v3(
        Kind::Vm,
        &[
            "v3_vms_page1.json",
            "v3_vms_page2.json",
            "v3_vms_page3.json",
        ],
        &[
            "v3_groups_vm_page1.json",
            "v3_groups_vm_page2.json",
            "v3_groups_vm_page3.json",
        ],
    );
    assert_eq!(vms.len(), 5);
    let got = render(&[
        (Kind::Cluster, clusters),
        (Kind::Host, hosts),
        (Kind::Vm, vms),
    ]);
    check(&got, "golden_v3.txt");
}

#[test]
fn prism_element_v2_matches_golden() {
    let list = |kind, files: &[&str]| -> Vec<Entity> {
        files
            .iter()
            .flat_map(|f| {
                let body = fixture(f);
                map::entities(&body)
                    .unwrap()
                    .iter()
                    .filter_map(|e| map::v2_entity(kind, e))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let got = render(&[
        (Kind::Cluster, list(Kind::Cluster, &["v2_clusters.json"])),
        (Kind::Host, list(Kind::Host, &["v2_hosts.json"])),
        (
            Kind::Vm,
            list(Kind::Vm, &["v1_vms_page1.json", "v1_vms_page2.json"]),
        ),
    ]);
    check(&got, "golden_v2.txt");
}

#[test]
fn malformed_answers_are_errors_or_skipped_not_panics() {
    for bad in [serde_json::json!({}), serde_json::json!({"entities": 3})] {
        assert!(map::entities(&bad).is_err());
        assert!(map::v3_groups(&bad).is_err());
    }
    assert_eq!(
        map::v3_entity(Kind::Vm, &serde_json::json!({"status": {}})),
        None
    );
    assert_eq!(map::v3_entity(Kind::Vm, &serde_json::json!(5)), None);
    assert_eq!(
        map::v2_entity(Kind::Host, &serde_json::json!({"name": "x"})),
        None
    );
    // -1 ("no value"), text and nested junk are dropped, never reported as 0.
    let e = map::v2_entity(
        Kind::Vm,
        &serde_json::json!({"uuid": "u", "stats": {"hypervisor_cpu_usage_ppm": "-1",
            "controller_num_iops": "n/a", "controller_avg_io_latency_usecs": {"x": 1}}}),
    )
    .unwrap();
    assert!(e.stats.is_empty(), "{e:?}");
    let (stats, _) = map::v3_groups(&serde_json::json!({"group_results": [
        {"entity_results": [{"entity_id": "u", "data": [{"name": "controller_num_iops", "values": []}]}]},
        {"entity_results": "x"}
    ]}))
    .unwrap();
    assert!(stats["u"].is_empty());
}
