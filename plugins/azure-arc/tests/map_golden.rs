//! The pure mapping (`map`) from the documented ARM example answers
//! (`tests/data/*.json`, shaped after the azure-rest-api-specs examples of
//! Machines_ListBySubscription 2024-07-10, GetClustersBySubscriptionExample and
//! Extension_List 2024-07-10) to metrics, compared with a golden file
//! (`tests/data/golden.txt`; `UPDATE_GOLDEN=1` rewrites it, then read the diff),
//! plus explicit checks that the values equal the fixture values.

mod common;

use common::*;
use tfo_azure_arc::map::{
    cluster_metrics, extension_metrics, machine_metrics, parse_items, ConnectedCluster, Extension,
    Machine, MachineExtensions, Page,
};

/// 2024-10-01T08:00:30Z.
const NOW: u64 = 1_727_769_630_000_000_000;

fn page(name: &str) -> Page {
    serde_json::from_str(&fixture(name, "https://management.azure.com")).unwrap()
}

fn machines() -> Vec<Machine> {
    let mut all = Vec::new();
    for n in 1..=3 {
        let (ms, bad) = parse_items::<Machine>(page(&format!("machines_page{n}.json")).value);
        assert_eq!(bad, 0);
        all.extend(ms);
    }
    all
}

fn clusters() -> Vec<ConnectedCluster> {
    let (cs, bad) = parse_items(page("clusters.json").value);
    assert_eq!(bad, 0);
    cs
}

fn extensions() -> Vec<MachineExtensions> {
    let ms = machines();
    let mut out = Vec::new();
    for (m, file) in [
        (&ms[0], "extensions_myMachine.json"),
        (&ms[2], "extensions_web-01.json"),
    ] {
        let (extensions, bad) = parse_items::<Extension>(page(file).value);
        assert_eq!(bad, 0);
        out.push(MachineExtensions {
            machine_id: m.id.clone(),
            machine_name: m.name.clone().unwrap(),
            extensions,
        });
    }
    out
}

#[test]
fn golden() {
    let mut metrics = machine_metrics(&machines(), NOW);
    metrics.extend(cluster_metrics(&clusters(), NOW));
    metrics.extend(extension_metrics(&extensions(), NOW));
    assert!(metrics
        .iter()
        .flat_map(|m| m.points.iter())
        .all(|p| p.time_unix_nano == NOW));
    let got = render(&metrics);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(got, want, "golden mismatch; UPDATE_GOLDEN=1 rewrites it");
}

#[test]
fn machine_values_equal_the_fixture() {
    let m = machine_metrics(&machines(), NOW);
    for (status, n) in [
        ("Connected", 2.0),
        ("Disconnected", 1.0),
        ("Error", 1.0),
        ("Expired", 1.0),
    ] {
        assert_eq!(
            value(
                &m,
                "azure_arc.machines.count",
                &[("azure_arc.status", status)]
            ),
            n
        );
    }
    assert_eq!(
        value(
            &m,
            "azure_arc.machines.by_agent_version",
            &[("azure_arc.agent.version", "1.44.02690.1678")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &m,
            "azure_arc.machines.by_os",
            &[("os.type", "linux"), ("os.name", "Ubuntu 22.04.4 LTS")]
        ),
        2.0
    );
    let my = [
        ("cloud.resource_id", "/subscriptions/sub-1/resourceGroups/myResourceGroup/providers/Microsoft.HybridCompute/machines/myMachine"),
        ("azure_arc.machine.name", "myMachine"),
        ("azure.resource_group", "myResourceGroup"),
        ("cloud.region", "eastus2euap"),
    ];
    let mut connected = my.to_vec();
    connected.extend([
        ("azure_arc.status", "Connected"),
        ("os.type", "windows"),
        ("azure_arc.agent.version", "1.44.02690.1678"),
    ]);
    assert_eq!(value(&m, "azure_arc.machine.connected", &connected), 1.0);
    // lastStatusChange 2024-10-01T08:00:00Z, now 08:00:30Z.
    assert_eq!(value(&m, "azure_arc.machine.status_change.age", &my), 30.0);
    // 07:59:30.5Z -> 59.5 s; 06:00:00+02:00 = 04:00Z -> 4 h 30 s.
    assert_eq!(
        value(
            &m,
            "azure_arc.machine.status_change.age",
            &[("azure_arc.machine.name", "web-01")]
        ),
        59.5
    );
    assert_eq!(
        value(
            &m,
            "azure_arc.machine.status_change.age",
            &[("azure_arc.machine.name", "db-01")]
        ),
        14_430.0
    );
    assert_eq!(
        value(
            &m,
            "azure_arc.machine.connected",
            &[
                ("azure_arc.machine.name", "old-01"),
                ("azure_arc.status", "Expired")
            ]
        ),
        0.0
    );
}

#[test]
fn cluster_and_extension_values_equal_the_fixture() {
    let c = cluster_metrics(&clusters(), NOW);
    assert_eq!(
        value(
            &c,
            "azure_arc.clusters.count",
            &[("azure_arc.connectivity_status", "Connected")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &c,
            "azure_arc.clusters.count",
            &[("azure_arc.connectivity_status", "Offline")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &c,
            "azure_arc.clusters.count",
            &[("azure_arc.connectivity_status", "Expired")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &c,
            "azure_arc.cluster.connected",
            &[
                ("k8s.cluster.name", "connectedCluster1"),
                ("azure.resource_group", "akkeshar"),
                ("cloud.region", "East US"),
                ("azure_arc.kubernetes.version", "1.17.0"),
                ("azure_arc.agent.version", "1.21.10"),
                ("azure_arc.distribution", "AKS"),
                ("azure_arc.infrastructure", "azure_stack_hci"),
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &c,
            "azure_arc.cluster.nodes",
            &[("k8s.cluster.name", "connectedCluster1")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &c,
            "azure_arc.cluster.nodes",
            &[("k8s.cluster.name", "connectedCluster2")]
        ),
        4.0
    );
    assert_eq!(
        value(
            &c,
            "azure_arc.cluster.cores",
            &[("k8s.cluster.name", "connectedCluster2")]
        ),
        16.0
    );
    assert_eq!(
        value(
            &c,
            "azure_arc.cluster.last_connectivity.age",
            &[("k8s.cluster.name", "connectedCluster1")]
        ),
        330.0
    );

    let e = extension_metrics(&extensions(), NOW);
    assert_eq!(
        value(
            &e,
            "azure_arc.extensions.count",
            &[("azure_arc.provisioning_state", "Succeeded")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &e,
            "azure_arc.extensions.count",
            &[("azure_arc.provisioning_state", "Creating")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &e,
            "azure_arc.extensions.count",
            &[("azure_arc.provisioning_state", "Failed")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &e,
            "azure_arc.extension.succeeded",
            &[
                ("azure_arc.machine.name", "myMachine"),
                ("azure_arc.extension.name", "CustomScriptExtension"),
                ("azure_arc.extension.publisher", "Microsoft.Compute"),
                ("azure_arc.extension.type", "CustomScriptExtension"),
                ("azure_arc.extension.version", "1.10.3"),
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &e,
            "azure_arc.extension.succeeded",
            &[("azure_arc.extension.name", "winosupdateextension")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &e,
            "azure_arc.extension.succeeded",
            &[("azure_arc.machine.name", "web-01")]
        ),
        0.0
    );
}
