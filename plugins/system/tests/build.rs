//! Golden test of the metrics built from the sample procfs files: every name,
//! instrument, unit, attribute set and value is pinned in
//! `tests/data/golden_metrics.txt` (regenerate with `TFO_UPDATE_GOLDEN=1` and review
//! the diff by hand), plus exact checks of the arithmetic (ticks to seconds, the
//! memory partition, sectors to bytes, utilization deltas, filesystem states).

mod common;

use std::collections::BTreeMap;

use common::{render, value};
use tfo_plugin_api::{Metric, MetricKind, PointValue, Temporality};
use tfo_system::{
    collect::{
        build::{self, FsStats, MemoryBreakdown, ProcessCounts, Stamp},
        parse::{self, CpuTicks, Mount, SwapDevice},
    },
    config::Config,
};

const TS: Stamp = Stamp {
    start: 1_795_613_689_000_000_000,
    now: 1_795_615_444_000_000_000,
};

fn sample_metrics() -> Vec<Metric> {
    let settings = Config::default().resolve().unwrap();
    let stat = parse::parse_proc_stat(include_str!("data/proc_stat.txt"));
    let mut m: Vec<Metric> = Vec::new();
    m.extend(build::cpu_time(&stat.cpus, 100, TS));
    m.extend(build::load_average(
        &parse::parse_loadavg(include_str!("data/loadavg.txt")).unwrap(),
        TS,
    ));
    m.extend(build::memory(
        &parse::parse_meminfo(include_str!("data/meminfo.txt")),
        TS,
    ));
    m.extend(build::paging(
        &[SwapDevice {
            device: "/dev/zram0".into(),
            size_bytes: 4096 * 1024,
            used_bytes: 1024 * 1024,
        }],
        TS,
    ));
    let disks: Vec<_> = parse::parse_diskstats(include_str!("data/diskstats.txt"))
        .into_iter()
        .filter(|d| !settings.disk_excluded(&d.device))
        .collect();
    m.extend(build::disk(&disks, TS));
    m.extend(build::filesystem(
        &[(
            Mount {
                mount_point: "/".into(),
                fs_type: "ext4".into(),
                source: "/dev/vda".into(),
                read_only: false,
            },
            FsStats {
                frsize: 4096,
                blocks: 1000,
                bfree: 300,
                bavail: 250,
                files: 64,
                ffree: 40,
            },
        )],
        TS,
    ));
    let nets: Vec<_> = parse::parse_net_dev(include_str!("data/net_dev.txt"))
        .into_iter()
        .filter(|d| !settings.net_excluded(&d.device))
        .collect();
    m.extend(build::network(&nets, TS));
    m.extend(build::processes(
        &ProcessCounts {
            by_status: BTreeMap::from([("sleeping", 80), ("idle", 20), ("running", 1)]),
            procs_running: stat.procs_running,
            procs_blocked: stat.procs_blocked,
            created: stat.processes,
        },
        TS,
    ));
    m.extend(build::uptime(
        parse::parse_uptime(include_str!("data/uptime.txt")).unwrap(),
        TS,
    ));
    m
}

#[test]
fn golden_metrics_from_sample_files() {
    let text = render(&sample_metrics());
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/golden_metrics.txt");
    if std::env::var_os("TFO_UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &text).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(path).unwrap();
    // Line by line, so a failure names the first differing point.
    for (i, (got, want)) in text.lines().zip(golden.lines()).enumerate() {
        assert_eq!(got, want, "line {}", i + 1);
    }
    assert_eq!(text.lines().count(), golden.lines().count());
}

#[test]
fn timestamps_and_instruments() {
    for m in sample_metrics() {
        for p in m.points.iter() {
            assert_eq!(p.time_unix_nano, TS.now, "{}", m.name);
            let start = if m.kind == MetricKind::Sum {
                TS.start
            } else {
                0
            };
            assert_eq!(p.start_time_unix_nano, start, "{}", m.name);
        }
        assert!(!m.description.is_empty(), "{}", m.name);
        if m.kind == MetricKind::Gauge {
            assert_eq!(m.temporality, Temporality::Unspecified);
        } else {
            assert_eq!(m.temporality, Temporality::Cumulative);
        }
    }
}

#[test]
fn exact_values() {
    let m = sample_metrics();
    // 28450 ticks at USER_HZ 100.
    assert_eq!(
        value(&m, "system.cpu.time", &[("cpu", "cpu0"), ("state", "user")]),
        284.5
    );
    assert_eq!(
        value(&m, "system.cpu.time", &[("cpu", "cpu1"), ("state", "wait")]),
        18.69
    );
    // MemTotal - (MemFree + Buffers + Cached + SReclaimable + SUnreclaim), in bytes.
    let used = (24684092u64 - (22989516 + 10784 + 1098352 + 128824 + 28032)) * 1024;
    assert_eq!(
        value(&m, "system.memory.usage", &[("state", "used")]),
        used as f64
    );
    let states = [
        "used",
        "free",
        "buffered",
        "cached",
        "slab_reclaimable",
        "slab_unreclaimable",
    ];
    let sum: f64 = states
        .iter()
        .map(|s| value(&m, "system.memory.usage", &[("state", s)]))
        .sum();
    assert_eq!(sum, 24684092.0 * 1024.0, "the states partition MemTotal");
    let util: f64 = states
        .iter()
        .map(|s| value(&m, "system.memory.utilization", &[("state", s)]))
        .sum();
    assert!((util - 1.0).abs() < 1e-12, "{util}");
    // Sectors are 512 bytes whatever the device.
    assert_eq!(
        value(
            &m,
            "system.disk.io",
            &[("device", "vda"), ("direction", "write")]
        ),
        48919296.0 * 512.0
    );
    assert_eq!(
        value(&m, "system.disk.io_time", &[("device", "vda")]),
        34.468
    );
    // Filesystem: used = blocks - bfree, free = bavail, reserved = bfree - bavail.
    let fs = [
        ("mountpoint", "/"),
        ("device", "/dev/vda"),
        ("type", "ext4"),
        ("mode", "rw"),
    ];
    let st = |s| {
        let mut a = fs.to_vec();
        a.push(("state", s));
        value(&m, "system.filesystem.usage", &a)
    };
    assert_eq!(st("used"), 700.0 * 4096.0);
    assert_eq!(st("free"), 250.0 * 4096.0);
    assert_eq!(st("reserved"), 50.0 * 4096.0);
    assert_eq!(
        value(&m, "system.filesystem.utilization", &fs),
        700.0 / 950.0
    );
    // running/blocked come from /proc/stat, not from the per-process scan.
    assert_eq!(
        value(&m, "system.processes.count", &[("status", "running")]),
        3.0
    );
    assert_eq!(
        value(&m, "system.processes.count", &[("status", "blocked")]),
        0.0
    );
    assert_eq!(value(&m, "system.processes.created", &[]), 28965.0);
    assert_eq!(value(&m, "system.uptime", &[]), 1755.25);
    // Excluded devices are absent.
    let devices: Vec<String> = m
        .iter()
        .filter(|x| x.name.starts_with("system.disk.") || x.name.starts_with("system.network."))
        .flat_map(|x| {
            x.points
                .iter()
                .filter_map(|p| common::attr(p, "device").map(String::from))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        !devices.iter().any(|d| d == "lo" || d.starts_with("loop")),
        "{devices:?}"
    );
    assert!(devices.iter().any(|d| d == "zram0") && devices.iter().any(|d| d == "eth0"));
}

fn ticks(name: &str, v: [u64; 8]) -> CpuTicks {
    CpuTicks {
        cpu: name.into(),
        user: v[0],
        nice: v[1],
        system: v[2],
        idle: v[3],
        iowait: v[4],
        irq: v[5],
        softirq: v[6],
        steal: v[7],
    }
}

#[test]
fn cpu_utilization_is_the_share_of_each_cpus_elapsed_ticks() {
    let prev = vec![
        ticks("cpu0", [100, 0, 50, 800, 10, 0, 5, 0]),
        ticks("cpu1", [10, 0, 10, 10, 0, 0, 0, 0]),
        ticks("cpu2", [10, 0, 10, 10, 0, 0, 0, 0]),
        ticks("cpu3", [10, 0, 10, 10, 0, 0, 0, 0]),
    ];
    let cur = vec![
        // +60 user, +20 system, +100 idle, +20 iowait: 200 ticks.
        ticks("cpu0", [160, 0, 70, 900, 30, 0, 5, 0]),
        // No tick elapsed: left out rather than reported as 0 everywhere.
        ticks("cpu1", [10, 0, 10, 10, 0, 0, 0, 0]),
        // Went backwards (hot-plugged): left out.
        ticks("cpu2", [5, 0, 10, 10, 0, 0, 0, 0]),
        // cpu3 is gone; cpu4 is new: left out.
        ticks("cpu4", [1, 1, 1, 1, 1, 1, 1, 1]),
    ];
    let m = vec![build::cpu_utilization(&prev, &cur, TS).unwrap()];
    let pts = &m[0].points;
    assert_eq!(pts.len(), 8, "only cpu0 has a usable delta");
    let get = |s| {
        value(
            &m,
            "system.cpu.utilization",
            &[("cpu", "cpu0"), ("state", s)],
        )
    };
    assert_eq!(get("user"), 0.3);
    assert_eq!(get("system"), 0.1);
    assert_eq!(get("idle"), 0.5);
    assert_eq!(get("wait"), 0.1);
    assert_eq!(get("softirq"), 0.0);
    assert_eq!(m[0].unit.as_str(), "1");
    assert_eq!(m[0].kind, MetricKind::Gauge);
    // Nothing usable at all: no metric.
    assert!(build::cpu_utilization(&prev, &prev, TS).is_none());
}

#[test]
fn memory_breakdown_edge_cases() {
    let mi = |t: &str| parse::parse_meminfo(t);
    assert_eq!(MemoryBreakdown::from_meminfo(&mi("MemFree: 1 kB")), None);
    assert_eq!(MemoryBreakdown::from_meminfo(&mi("MemTotal: 0 kB")), None);
    // Counters that do not fit in the total: used saturates at 0, no underflow.
    let b =
        MemoryBreakdown::from_meminfo(&mi("MemTotal: 10 kB\nMemFree: 8 kB\nCached: 8 kB")).unwrap();
    assert_eq!(b.used, 0);
    // An old kernel without the slab split: slab states are 0.
    let b = MemoryBreakdown::from_meminfo(&mi("MemTotal: 10 kB\nMemFree: 4 kB")).unwrap();
    assert_eq!((b.used, b.slab_reclaimable), (6 * 1024, 0));
    assert!(build::memory(&mi(""), TS).is_empty());
}

#[test]
fn empty_inputs_give_no_empty_metrics() {
    assert!(build::cpu_time(&[], 100, TS).is_none());
    assert!(build::paging(&[], TS).is_none());
    assert!(build::disk(&[], TS).is_empty());
    assert!(build::network(&[], TS).is_empty());
    assert!(build::filesystem(&[], TS).is_empty());
    // A filesystem with no blocks (some pseudo filesystems) has usage but no
    // utilization (0 / 0).
    let m = build::filesystem(
        &[(
            Mount {
                mount_point: "/x".into(),
                fs_type: "fuse".into(),
                source: "x".into(),
                read_only: true,
            },
            FsStats::default(),
        )],
        TS,
    );
    let names: Vec<&str> = m.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(
        names,
        ["system.filesystem.usage", "system.filesystem.inodes.usage"]
    );
    assert!(m[0]
        .points
        .iter()
        .all(|p| common::attr(p, "mode") == Some("ro")));
    // Counters beyond i64 saturate instead of wrapping negative.
    let m = build::processes(
        &ProcessCounts {
            created: Some(u64::MAX),
            ..ProcessCounts::default()
        },
        TS,
    );
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].points[0].value, PointValue::Int(i64::MAX));
}

#[test]
fn process_status_letters() {
    let got: Vec<&str> = ['R', 'S', 'D', 'Z', 'T', 't', 'I', 'W', 'X', 'P', '?']
        .into_iter()
        .map(build::process_status)
        .collect();
    assert_eq!(
        got,
        [
            "running", "sleeping", "blocked", "zombies", "stopped", "stopped", "idle", "paging",
            "unknown", "unknown", "unknown"
        ]
    );
}
