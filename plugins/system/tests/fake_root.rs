//! The collector run against a fake `root_path`: a temporary directory holding a
//! hand-written `proc/` tree, as a container sees the host's `/` mounted at
//! `/host`. Every metric value is known in advance, so they are checked exactly,
//! across two collections (CPU utilization needs the previous one), with files
//! disappearing and coming back.

mod common;

use std::{fs, path::Path};

use common::{attr, find, points, resource_attr, value};
use tfo_plugin_api::{AnyValue, ErrorKind, Metric, MetricKind};
use tfo_system::{
    collect::{statvfs, SystemCollector},
    config::{Collector, Config, DevicesConfig, FilesystemConfig},
};

const BTIME: u64 = 1_700_000_000;
const T1: u64 = 1_700_000_100_000_000_000;
const T2: u64 = 1_700_000_110_000_000_000;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn proc_stat(cpu0: [u64; 8], cpu1: [u64; 8], btime: u64) -> String {
    let line = |name: &str, v: [u64; 8]| {
        let cols: Vec<String> = v.iter().map(u64::to_string).collect();
        format!("{name} {} 0 0\n", cols.join(" "))
    };
    let mut total = [0u64; 8];
    for i in 0..8 {
        total[i] = cpu0[i] + cpu1[i];
    }
    format!(
        "{}{}{}intr 1 2 3\nctxt 99\nbtime {btime}\nprocesses 4242\nprocs_running 5\nprocs_blocked 2\nsoftirq 1 2\n",
        line("cpu ", total),
        line("cpu0", cpu0),
        line("cpu1", cpu1)
    )
}

/// Builds the fake root: every procfs file the plugin reads, plus the mount point
/// directories `statvfs` is called on.
fn fake_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(
        r,
        "proc/stat",
        &proc_stat(
            [1000, 10, 300, 5000, 50, 5, 20, 15],
            [2000, 0, 400, 4000, 100, 0, 30, 0],
            BTIME,
        ),
    );
    write(
        r,
        "proc/meminfo",
        "MemTotal:        1000000 kB\nMemFree:          400000 kB\nMemAvailable:     700000 kB\n\
         Buffers:           50000 kB\nCached:           200000 kB\nSwapCached:            0 kB\n\
         SwapTotal:        524288 kB\nSwapFree:         262144 kB\nSReclaimable:      30000 kB\n\
         SUnreclaim:        20000 kB\nHugePages_Total:       0\n",
    );
    write(r, "proc/loadavg", "1.50 0.75 0.25 3/250 12345\n");
    write(r, "proc/uptime", "100.50 180.00\n");
    write(
        r,
        "proc/swaps",
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sda2 partition\t524288\t\t262144\t\t-2\n",
    );
    write(
        r,
        "proc/diskstats",
        "   7       0 loop0 9 9 9 9 9 9 9 9 9 9 9 0 0 0 0\n\
            8       0 sda 100 5 2000 300 50 6 4000 700 1 800 1000 0 0 0 0 0 0\n\
            8       1 sda1 10 1 200 30 5 1 400 70 0 80 100\n",
    );
    // PID 1's view of the network namespace is missing (not readable in some
    // containers): the collector falls back to proc/net/dev.
    write(
        r,
        "proc/net/dev",
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n\
             lo:     500       5    0    0    0     0          0         0      500       5    0    0    0     0       0          0\n\
           eth0:   10000     100    1    2    0     0          0         0    20000     200    3    4    0     0       0          0\n\
         veth12:     700       7    0    0    0     0          0         0      800       8    0    0    0     0       0          0\n",
    );
    // PID 1's mount table is readable and preferred over proc/self/mountinfo.
    write(
        r,
        "proc/1/mountinfo",
        "20 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n\
         21 20 8:16 / /data ro,relatime - xfs /dev/sdb ro\n\
         22 20 0:21 / /proc rw - proc proc rw\n\
         23 20 0:22 / /sys rw - sysfs sysfs rw\n\
         24 20 0:23 / /dev/shm rw - tmpfs tmpfs rw\n\
         25 20 0:24 / /run rw shared:5 - tmpfs tmpfs rw,mode=755\n\
         26 20 0:25 / /var/lib/docker/overlay2/abc/merged rw - overlay overlay rw\n\
         27 20 8:2 / /boot/efi rw - vfat /dev/sda2 rw\n\
         28 20 8:3 / /missing rw - ext4 /dev/sda3 rw\n\
         29 20 8:4 / /media/my\\040disk rw - ext4 /dev/sdc1 rw\n",
    );
    write(
        r,
        "proc/self/mountinfo",
        "1 1 1:1 / /wrong rw - ext4 /dev/wrong rw\n",
    );
    for d in ["data", "run", "media/my disk", "boot/efi"] {
        fs::create_dir_all(r.join(d)).unwrap();
    }
    // Processes: PID 1 sleeping, a kernel thread idle, one running (overridden by
    // procs_running), a zombie, one in disk sleep (overridden by procs_blocked), a
    // stopped one, one with an unreadable stat, one directory without stat.
    for (pid, stat) in [
        ("1", "1 (init) S 0 1 1"),
        ("2", "2 (kthreadd) I 0 0 0"),
        ("10", "10 (busy (loop)) R 1 10 10"),
        ("11", "11 (dead) Z 1 11 11"),
        ("12", "12 (dd) D 1 12 12"),
        ("13", "13 (vim) T 1 13 13"),
        ("14", "garbage"),
    ] {
        write(r, &format!("proc/{pid}/stat"), stat);
    }
    fs::create_dir_all(r.join("proc/15")).unwrap();
    dir
}

fn config(root: &Path) -> Config {
    Config {
        hostname: Some("fake-host".into()),
        root_path: root.to_path_buf(),
        filesystem: FilesystemConfig {
            exclude_types: vec![
                "proc".into(),
                "sysfs".into(),
                "overlay".into(),
                "vfat".into(),
            ],
            ..FilesystemConfig::default()
        },
        network: DevicesConfig::new(vec!["lo".into(), "veth*".into()]),
        ..Config::default()
    }
}

fn collector(root: &Path) -> SystemCollector {
    SystemCollector::new(config(root).resolve().unwrap()).unwrap()
}

fn names(m: &[Metric]) -> Vec<&str> {
    m.iter().map(|x| x.name.as_str()).collect()
}

#[test]
fn every_metric_has_the_expected_value() {
    let root = fake_root();
    let mut c = collector(root.path());
    let b = c.collect_at(T1).unwrap();
    let m: Vec<Metric> = b.metrics.to_vec();
    assert!(c.problems().is_empty(), "{:?}", c.problems());

    assert_eq!(
        resource_attr(&b, "host.name"),
        Some(&AnyValue::Str("fake-host".into()))
    );
    assert_eq!(
        resource_attr(&b, "os.type"),
        Some(&AnyValue::Str("linux".into()))
    );
    assert_eq!(
        names(&m),
        [
            "system.cpu.time",
            "system.cpu.load_average.1m",
            "system.cpu.load_average.5m",
            "system.cpu.load_average.15m",
            "system.memory.usage",
            "system.memory.utilization",
            "system.paging.usage",
            "system.disk.io",
            "system.disk.operations",
            "system.disk.io_time",
            "system.disk.operation_time",
            "system.disk.weighted_io_time",
            "system.disk.pending_operations",
            "system.disk.merged",
            "system.filesystem.usage",
            "system.filesystem.inodes.usage",
            "system.filesystem.utilization",
            "system.network.io",
            "system.network.packets",
            "system.network.errors",
            "system.network.dropped",
            "system.processes.count",
            "system.processes.created",
            "system.uptime",
        ],
        "no cpu.utilization on the first collection"
    );
    for x in &m {
        for p in x.points.iter() {
            assert_eq!(p.time_unix_nano, T1);
            let start = if x.kind == MetricKind::Sum {
                BTIME * 1_000_000_000
            } else {
                0
            };
            assert_eq!(p.start_time_unix_nano, start, "{}", x.name);
        }
    }

    let hz = c.clock_ticks() as f64;
    let cpu =
        |cpu: &str, state: &str| value(&m, "system.cpu.time", &[("cpu", cpu), ("state", state)]);
    assert_eq!(cpu("cpu0", "user"), 1000.0 / hz);
    assert_eq!(cpu("cpu0", "nice"), 10.0 / hz);
    assert_eq!(cpu("cpu0", "interrupt"), 5.0 / hz);
    assert_eq!(cpu("cpu0", "steal"), 15.0 / hz);
    assert_eq!(cpu("cpu1", "wait"), 100.0 / hz);
    assert_eq!(find(&m, "system.cpu.time").unwrap().points.len(), 16);

    assert_eq!(value(&m, "system.cpu.load_average.1m", &[]), 1.5);
    assert_eq!(value(&m, "system.cpu.load_average.5m", &[]), 0.75);
    assert_eq!(value(&m, "system.cpu.load_average.15m", &[]), 0.25);

    let kib = 1024.0;
    for (state, v) in [
        ("used", 300000.0),
        ("free", 400000.0),
        ("buffered", 50000.0),
        ("cached", 200000.0),
        ("slab_reclaimable", 30000.0),
        ("slab_unreclaimable", 20000.0),
    ] {
        assert_eq!(
            value(&m, "system.memory.usage", &[("state", state)]),
            v * kib,
            "{state}"
        );
        assert_eq!(
            value(&m, "system.memory.utilization", &[("state", state)]),
            v / 1000000.0,
            "{state}"
        );
    }

    assert_eq!(
        value(
            &m,
            "system.paging.usage",
            &[("device", "/dev/sda2"), ("state", "used")]
        ),
        262144.0 * kib
    );
    assert_eq!(
        value(
            &m,
            "system.paging.usage",
            &[("device", "/dev/sda2"), ("state", "free")]
        ),
        262144.0 * kib
    );

    // loop0 is excluded by default; partitions are reported like disks.
    let disk = |name: &str, dev: &str, dir: Option<&str>| {
        let mut a = vec![("device", dev)];
        if let Some(d) = dir {
            a.push(("direction", d));
        }
        value(&m, name, &a)
    };
    assert_eq!(disk("system.disk.io", "sda", Some("read")), 2000.0 * 512.0);
    assert_eq!(disk("system.disk.io", "sda", Some("write")), 4000.0 * 512.0);
    assert_eq!(disk("system.disk.io", "sda1", Some("read")), 200.0 * 512.0);
    assert_eq!(disk("system.disk.operations", "sda", Some("read")), 100.0);
    assert_eq!(disk("system.disk.operations", "sda", Some("write")), 50.0);
    assert_eq!(disk("system.disk.merged", "sda", Some("read")), 5.0);
    assert_eq!(disk("system.disk.merged", "sda", Some("write")), 6.0);
    assert_eq!(disk("system.disk.operation_time", "sda", Some("read")), 0.3);
    assert_eq!(
        disk("system.disk.operation_time", "sda", Some("write")),
        0.7
    );
    assert_eq!(disk("system.disk.pending_operations", "sda", None), 1.0);
    assert_eq!(disk("system.disk.io_time", "sda", None), 0.8);
    assert_eq!(disk("system.disk.weighted_io_time", "sda", None), 1.0);
    assert!(points(&m, "system.disk.io", &[("device", "loop0")]).is_empty());

    // Filesystems: the excluded types and prefixes are gone, /missing cannot be
    // measured, /wrong (proc/self) was not read, the escaped space is decoded.
    let fs_points = &find(&m, "system.filesystem.usage").unwrap().points;
    let mut mps: Vec<&str> = fs_points
        .iter()
        .filter_map(|p| attr(p, "mountpoint"))
        .collect();
    mps.dedup();
    assert_eq!(mps, ["/", "/data", "/media/my disk", "/run"]);
    let data = points(&m, "system.filesystem.usage", &[("mountpoint", "/data")]);
    assert_eq!(data.len(), 3);
    assert_eq!(attr(data[0], "device"), Some("/dev/sdb"));
    assert_eq!(attr(data[0], "type"), Some("xfs"));
    assert_eq!(attr(data[0], "mode"), Some("ro"));
    assert_eq!(
        attr(
            points(&m, "system.filesystem.usage", &[("mountpoint", "/")])[0],
            "mode"
        ),
        Some("rw")
    );
    // Each mount point is measured at <root>/<mount point>: the three states add up
    // to the size of the filesystem holding the temporary directory.
    let real = statvfs(root.path()).unwrap();
    for mp in ["/", "/data", "/run", "/media/my disk"] {
        let total: f64 = ["used", "free", "reserved"]
            .iter()
            .map(|s| {
                value(
                    &m,
                    "system.filesystem.usage",
                    &[("mountpoint", mp), ("state", s)],
                )
            })
            .sum();
        assert_eq!(total, (real.blocks * real.frsize) as f64, "{mp}");
        let u = value(&m, "system.filesystem.utilization", &[("mountpoint", mp)]);
        assert!((0.0..=1.0).contains(&u), "{mp}: {u}");
        let inodes: f64 = ["used", "free"]
            .iter()
            .map(|s| {
                value(
                    &m,
                    "system.filesystem.inodes.usage",
                    &[("mountpoint", mp), ("state", s)],
                )
            })
            .sum();
        assert_eq!(inodes, real.files as f64, "{mp}");
    }

    let net = |name: &str, dir: &str| value(&m, name, &[("device", "eth0"), ("direction", dir)]);
    assert_eq!(net("system.network.io", "receive"), 10000.0);
    assert_eq!(net("system.network.io", "transmit"), 20000.0);
    assert_eq!(net("system.network.packets", "receive"), 100.0);
    assert_eq!(net("system.network.packets", "transmit"), 200.0);
    assert_eq!(net("system.network.errors", "receive"), 1.0);
    assert_eq!(net("system.network.errors", "transmit"), 3.0);
    assert_eq!(net("system.network.dropped", "receive"), 2.0);
    assert_eq!(net("system.network.dropped", "transmit"), 4.0);
    assert_eq!(
        find(&m, "system.network.io").unwrap().points.len(),
        2,
        "lo and veth* excluded"
    );

    let procs: Vec<(String, f64)> = find(&m, "system.processes.count")
        .unwrap()
        .points
        .iter()
        .map(|p| {
            let v = match p.value {
                tfo_plugin_api::PointValue::Int(i) => i as f64,
                _ => f64::NAN,
            };
            (attr(p, "status").unwrap().to_string(), v)
        })
        .collect();
    assert_eq!(
        procs,
        [
            ("blocked".to_string(), 2.0),
            ("idle".to_string(), 1.0),
            ("running".to_string(), 5.0),
            ("sleeping".to_string(), 1.0),
            ("stopped".to_string(), 1.0),
            ("zombies".to_string(), 1.0),
        ]
    );
    assert_eq!(value(&m, "system.processes.created", &[]), 4242.0);
    assert_eq!(value(&m, "system.uptime", &[]), 100.5);
}

#[test]
fn second_collection_reports_utilization_from_the_deltas() {
    let root = fake_root();
    let mut c = collector(root.path());
    c.collect_at(T1).unwrap();
    // cpu0: +100 ticks (+30 user, +10 system, +50 idle, +10 iowait);
    // cpu1: +400 ticks, all idle. btime moved by a second (kernels jitter): the start
    // time of cumulative sums must not.
    write(
        root.path(),
        "proc/stat",
        &proc_stat(
            [1030, 10, 310, 5050, 60, 5, 20, 15],
            [2000, 0, 400, 4400, 100, 0, 30, 0],
            BTIME + 1,
        ),
    );
    let b = c.collect_at(T2).unwrap();
    let m: Vec<Metric> = b.metrics.to_vec();
    let u = |cpu: &str, state: &str| {
        value(
            &m,
            "system.cpu.utilization",
            &[("cpu", cpu), ("state", state)],
        )
    };
    assert_eq!(u("cpu0", "user"), 0.3);
    assert_eq!(u("cpu0", "system"), 0.1);
    assert_eq!(u("cpu0", "idle"), 0.5);
    assert_eq!(u("cpu0", "wait"), 0.1);
    assert_eq!(u("cpu0", "steal"), 0.0);
    assert_eq!(u("cpu1", "idle"), 1.0);
    assert_eq!(u("cpu1", "user"), 0.0);
    let util = find(&m, "system.cpu.utilization").unwrap();
    assert_eq!(util.points.len(), 16);
    assert!(util
        .points
        .iter()
        .all(|p| p.time_unix_nano == T2 && p.start_time_unix_nano == 0));
    let hz = c.clock_ticks() as f64;
    assert_eq!(
        value(&m, "system.cpu.time", &[("cpu", "cpu0"), ("state", "user")]),
        1030.0 / hz
    );
    let t = find(&m, "system.cpu.time").unwrap();
    assert!(t
        .points
        .iter()
        .all(|p| p.start_time_unix_nano == BTIME * 1_000_000_000));

    // A third collection with no tick elapsed reports no utilization (instead of
    // zeros), and the next one measures from the last collection that moved.
    let b = c.collect_at(T2 + 1).unwrap();
    assert!(find(&b.metrics, "system.cpu.utilization").is_none());
    write(
        root.path(),
        "proc/stat",
        &proc_stat(
            [1030, 10, 310, 5150, 60, 5, 20, 15],
            [2100, 0, 400, 4400, 100, 0, 30, 0],
            BTIME + 1,
        ),
    );
    let b = c.collect_at(T2 + 2).unwrap();
    let m: Vec<Metric> = b.metrics.to_vec();
    assert_eq!(
        value(
            &m,
            "system.cpu.utilization",
            &[("cpu", "cpu0"), ("state", "idle")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "system.cpu.utilization",
            &[("cpu", "cpu1"), ("state", "user")]
        ),
        1.0
    );
}

#[test]
fn only_the_configured_collectors_run() {
    let root = fake_root();
    let mut cfg = config(root.path());
    cfg.collectors = vec!["uptime".into(), "load".into()];
    let mut c = SystemCollector::new(cfg.resolve().unwrap()).unwrap();
    let b = c.collect_at(T1).unwrap();
    assert_eq!(
        names(&b.metrics),
        [
            "system.cpu.load_average.1m",
            "system.cpu.load_average.5m",
            "system.cpu.load_average.15m",
            "system.uptime"
        ]
    );
}

#[test]
fn a_missing_file_fails_only_its_collector_and_recovers() {
    let root = fake_root();
    let mut c = collector(root.path());
    fs::remove_file(root.path().join("proc/diskstats")).unwrap();
    fs::write(root.path().join("proc/loadavg"), "garbage\n").unwrap();
    let b = c.collect_at(T1).unwrap();
    assert!(find(&b.metrics, "system.disk.io").is_none());
    assert!(find(&b.metrics, "system.cpu.load_average.1m").is_none());
    assert!(find(&b.metrics, "system.memory.usage").is_some());
    let problems: Vec<Collector> = c.problems().keys().copied().collect();
    assert_eq!(problems, [Collector::Load, Collector::Disk]);
    assert!(
        c.problems()[&Collector::Disk].contains("diskstats"),
        "{:?}",
        c.problems()
    );

    write(
        root.path(),
        "proc/diskstats",
        " 8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n",
    );
    write(root.path(), "proc/loadavg", "0.1 0.2 0.3 1/2 3\n");
    let b = c.collect_at(T2).unwrap();
    assert!(c.problems().is_empty());
    assert_eq!(
        value(
            &b.metrics,
            "system.disk.operations",
            &[("device", "sda"), ("direction", "read")]
        ),
        1.0
    );

    // No swap support in the kernel (no /proc/swaps): no paging metric, no problem.
    fs::remove_file(root.path().join("proc/swaps")).unwrap();
    let b = c.collect_at(T2).unwrap();
    assert!(find(&b.metrics, "system.paging.usage").is_none());
    assert!(c.problems().is_empty());
}

#[test]
fn nothing_readable_is_a_retryable_error() {
    let root = fake_root();
    // paging tolerates a missing /proc/swaps, so it is left out here.
    let mut cfg = config(root.path());
    cfg.collectors = [
        "cpu",
        "memory",
        "load",
        "disk",
        "filesystem",
        "network",
        "processes",
        "uptime",
    ]
    .map(String::from)
    .to_vec();
    // Validation needs proc/stat, so the files go away after it.
    let mut c = SystemCollector::new(cfg.resolve().unwrap()).unwrap();
    fs::remove_dir_all(root.path().join("proc")).unwrap();
    let e = c.collect_at(T1).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert!(e.message.contains("every collector failed"), "{e}");
    assert!(e.message.contains("meminfo"), "{e}");
    assert_eq!(c.problems().len(), 8);
}
