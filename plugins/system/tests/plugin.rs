//! End-to-end test on the real machine, through the exported root module the way
//! the agent drives the plugin: descriptor, `create` with a JSON config, `collect`
//! (several times), `health`, `shutdown`. The values are checked against what the
//! test reads from /proc itself and against activity it causes (UDP traffic on the
//! loopback interface, elapsed CPU ticks). The library's root-module symbol is
//! linked into this test binary directly instead of being loaded with `dlopen`.

mod common;

use std::{
    net::UdpSocket,
    time::{Duration, Instant},
};

use common::{attr, find, points, resource_attr, value};
use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, testing::TestHost, AnyValue, Batch, DataTypes,
    HealthState, Metric, PluginInstanceBox, PluginKind, PluginModRef,
};

fn module() -> PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_system)
}

/// Calls the plugin's `create` as the agent does.
fn create(h: &TestHost, config: &str) -> RResult<PluginInstanceBox, tfo_plugin_api::CreateError> {
    tfo_plugin_api::testing::create(module(), h, "system", config).into()
}

fn instance(h: &TestHost, config: &str) -> PluginInstanceBox {
    match create(h, config) {
        RResult::ROk(i) => i,
        RResult::RErr(e) => panic!("create failed: {e:?}"),
    }
}

fn collect(inst: &mut PluginInstanceBox) -> Batch {
    let started = Instant::now();
    let b = match inst.collect() {
        RResult::ROk(b) => b,
        RResult::RErr(e) => panic!("collect failed: {e}"),
    };
    // No sleeping inside collect: one pass over /proc takes milliseconds.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "collect took {:?}",
        started.elapsed()
    );
    b
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn meminfo_total() -> f64 {
    read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse::<f64>().unwrap() * 1024.0)
        .expect("MemTotal")
}

fn btime() -> u64 {
    read("/proc/stat")
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .map(|v| v.trim().parse().unwrap())
        .expect("btime")
}

fn cpu_seconds(m: &[Metric]) -> f64 {
    find(m, "system.cpu.time")
        .unwrap()
        .points
        .iter()
        .map(|p| match p.value {
            tfo_plugin_api::PointValue::Double(d) => d,
            _ => panic!("cpu time must be a double"),
        })
        .sum()
}

#[test]
fn descriptor_describes_a_metrics_source() {
    let d = (module().descriptor())();
    assert_eq!(d.name.as_str(), "system");
    assert_eq!(d.version.as_str(), env!("CARGO_PKG_VERSION"));
    assert_eq!(d.kind, PluginKind::Source);
    assert_eq!(d.data_types, DataTypes::METRICS);
    assert_eq!(
        d.plugin_api_version.as_str(),
        tfo_plugin_api::PLUGIN_API_VERSION
    );
}

#[test]
fn collects_sane_host_metrics() {
    let h = TestHost::default();
    let mut inst = instance(&h, "{}");
    assert!(inst.start().is_ok());
    let first = collect(&mut inst);
    let m1: Vec<Metric> = first.metrics.to_vec();

    // Resource.
    let hostname = read("/proc/sys/kernel/hostname").trim().to_string();
    assert_eq!(
        resource_attr(&first, "host.name"),
        Some(&AnyValue::Str(hostname.as_str().into()))
    );
    assert_eq!(
        resource_attr(&first, "os.type"),
        Some(&AnyValue::Str("linux".into()))
    );

    for name in [
        "system.cpu.time",
        "system.cpu.load_average.1m",
        "system.cpu.load_average.5m",
        "system.cpu.load_average.15m",
        "system.memory.usage",
        "system.memory.utilization",
        "system.network.io",
        "system.network.packets",
        "system.network.errors",
        "system.network.dropped",
        "system.processes.count",
        "system.processes.created",
        "system.uptime",
    ] {
        assert!(find(&m1, name).is_some(), "{name} missing");
    }
    assert!(find(&m1, "system.cpu.utilization").is_none());

    // Cumulative sums start at boot.
    let boot = btime() * 1_000_000_000;
    for m in &m1 {
        if m.kind == tfo_plugin_api::MetricKind::Sum {
            assert!(
                m.points.iter().all(|p| p.start_time_unix_nano == boot),
                "{}",
                m.name
            );
        }
    }

    // One cpu.time point per logical CPU and state.
    let ncpu = read("/proc/stat")
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    assert!(ncpu >= 1);
    assert_eq!(find(&m1, "system.cpu.time").unwrap().points.len(), ncpu * 8);

    // Memory states partition MemTotal (exactly: kB * 1024 on both sides).
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
        .map(|s| value(&m1, "system.memory.usage", &[("state", s)]))
        .sum();
    assert_eq!(sum, meminfo_total());
    assert!(value(&m1, "system.memory.usage", &[("state", "used")]) > 0.0);
    let util: f64 = states
        .iter()
        .map(|s| value(&m1, "system.memory.utilization", &[("state", s)]))
        .sum();
    assert!((util - 1.0).abs() < 1e-9, "{util}");

    // Load averages are non-negative; uptime matches /proc/uptime.
    assert!(value(&m1, "system.cpu.load_average.1m", &[]) >= 0.0);
    let up: f64 = read("/proc/uptime")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let reported = value(&m1, "system.uptime", &[]);
    assert!(
        reported > 0.0 && (reported - up).abs() < 60.0,
        "{reported} vs {up}"
    );

    // The collecting thread itself is runnable.
    assert!(value(&m1, "system.processes.count", &[("status", "running")]) >= 1.0);
    assert!(value(&m1, "system.processes.created", &[]) > 0.0);
    let statuses: f64 = find(&m1, "system.processes.count")
        .unwrap()
        .points
        .iter()
        .filter(|p| !matches!(attr(p, "status"), Some("running") | Some("blocked")))
        .count() as f64;
    assert!(
        statuses >= 1.0,
        "the /proc scan found processes in other states"
    );

    // Network: every interface but lo, with its counters.
    let ifaces: Vec<String> = read("/proc/net/dev")
        .lines()
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_string()))
        .collect();
    for i in &ifaces {
        let p = points(&m1, "system.network.io", &[("device", i)]);
        if i == "lo" {
            assert!(p.is_empty(), "lo is excluded by default");
        } else {
            assert_eq!(p.len(), 2, "{i}: receive and transmit");
        }
    }

    // Disks: every device but loop and ram ones.
    let disks: Vec<String> = read("/proc/diskstats")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(String::from))
        .filter(|d| !d.starts_with("loop") && !d.starts_with("ram"))
        .collect();
    for d in &disks {
        assert_eq!(
            points(&m1, "system.disk.io", &[("device", d)]).len(),
            2,
            "{d}"
        );
    }
    assert!(points(&m1, "system.disk.io", &[("device", "loop0")]).is_empty());

    // Filesystems: no pseudo filesystem; `/` when it is a real one (not overlay, as
    // in a container) adds up to its size.
    if let Some(fs) = find(&m1, "system.filesystem.usage") {
        for p in fs.points.iter() {
            let t = attr(p, "type").unwrap();
            assert!(
                !["proc", "sysfs", "cgroup", "cgroup2", "devtmpfs", "overlay"].contains(&t),
                "{t} should be excluded"
            );
        }
    }
    let root_type = read("/proc/self/mountinfo")
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some("/"))
        .and_then(|l| l.split(" - ").nth(1))
        .and_then(|r| r.split(' ').next())
        .map(String::from)
        .unwrap();
    if !tfo_system::config::DEFAULT_EXCLUDE_FS_TYPES.contains(&root_type.as_str()) {
        let real = tfo_system::collect::statvfs(std::path::Path::new("/")).unwrap();
        let total: f64 = ["used", "free", "reserved"]
            .iter()
            .map(|s| {
                value(
                    &m1,
                    "system.filesystem.usage",
                    &[("mountpoint", "/"), ("state", s)],
                )
            })
            .sum();
        assert_eq!(total, (real.blocks * real.frsize) as f64);
        let u = value(&m1, "system.filesystem.utilization", &[("mountpoint", "/")]);
        assert!(u > 0.0 && u < 1.0, "{u}");
    } else {
        println!("`/` is {root_type}, excluded by default: not checking its usage");
    }

    // CPU time grows: collect again until at least one tick elapsed (10 ms at
    // USER_HZ 100; idle time counts too, so this only needs wall time).
    let before = cpu_seconds(&m1);
    let deadline = Instant::now() + Duration::from_secs(20);
    let m2 = loop {
        let m: Vec<Metric> = collect(&mut inst).metrics.to_vec();
        if cpu_seconds(&m) > before {
            break m;
        }
        assert!(Instant::now() < deadline, "cpu time did not move in 20 s");
    };
    for p in find(&m1, "system.cpu.time").unwrap().points.iter() {
        let key = [
            ("cpu", attr(p, "cpu").unwrap()),
            ("state", attr(p, "state").unwrap()),
        ];
        let a = value(&m1, "system.cpu.time", &key);
        let b = value(&m2, "system.cpu.time", &key);
        assert!(b >= a, "{key:?} went backwards: {a} -> {b}");
    }
    // Utilization of each CPU that moved sums to 1.
    let util = find(&m2, "system.cpu.utilization").expect("cpu utilization on a later collection");
    let mut per_cpu = std::collections::BTreeMap::<String, f64>::new();
    for p in util.points.iter() {
        let v = match p.value {
            tfo_plugin_api::PointValue::Double(d) => d,
            _ => panic!("utilization must be a double"),
        };
        assert!((0.0..=1.0).contains(&v), "{v}");
        *per_cpu
            .entry(attr(p, "cpu").unwrap().to_string())
            .or_default() += v;
    }
    assert!(!per_cpu.is_empty());
    for (cpu, s) in per_cpu {
        assert!((s - 1.0).abs() < 1e-9, "{cpu}: {s}");
    }

    assert_eq!(inst.health().state, HealthState::Healthy);
    assert!(inst.shutdown(1000).is_ok());
    assert!(h
        .logs()
        .iter()
        .any(|(_, l)| l.contains("system metrics source ready")));
    assert!(h.panics().is_empty(), "{:?}", h.panics());
}

/// Traffic the test sends over the loopback interface shows up in lo's counters
/// when lo is not excluded.
#[test]
fn loopback_traffic_is_counted() {
    let mut inst = instance(
        &TestHost::default(),
        r#"{"collectors": ["network"], "network": {"exclude_devices": []}}"#,
    );
    let lo =
        |m: &[Metric], name: &str| value(m, name, &[("device", "lo"), ("direction", "receive")]);
    let m1: Vec<Metric> = collect(&mut inst).metrics.to_vec();
    assert_eq!(
        m1.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        [
            "system.network.io",
            "system.network.packets",
            "system.network.errors",
            "system.network.dropped"
        ]
    );

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = sock.local_addr().unwrap();
    const N: usize = 50;
    const LEN: usize = 1000;
    for _ in 0..N {
        sock.send_to(&[7u8; LEN], to).unwrap();
    }
    // Receiving them proves they went through lo before the next collection.
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 2048];
    for _ in 0..N {
        assert_eq!(sock.recv(&mut buf).unwrap(), LEN);
    }

    let m2: Vec<Metric> = collect(&mut inst).metrics.to_vec();
    let packets = lo(&m2, "system.network.packets") - lo(&m1, "system.network.packets");
    let bytes = lo(&m2, "system.network.io") - lo(&m1, "system.network.io");
    assert!(
        packets >= N as f64,
        "lo received {packets} packets, sent {N}"
    );
    // Each datagram is LEN bytes of payload plus UDP/IP headers.
    assert!(bytes >= (N * LEN) as f64, "lo received {bytes} bytes");
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn invalid_config_reports_every_field() {
    let config = r#"{"collectors": ["cpu", "gpu"], "hostname": "", "root_path": "relative",
                    "filesystem": {"exclude_mountpoints": ["var"]}}"#;
    match create(&TestHost::default(), config) {
        RResult::ROk(_) => panic!("create should fail"),
        RResult::RErr(e) => {
            let paths: Vec<&str> = e.config_errors.iter().map(|c| c.path.as_str()).collect();
            assert_eq!(
                paths,
                [
                    "collectors[1]",
                    "hostname",
                    "root_path",
                    "filesystem.exclude_mountpoints[0]"
                ]
            );
            assert_eq!(e.message.as_str(), "invalid configuration");
        }
    }
}

#[test]
fn unknown_keys_are_config_errors_with_their_path() {
    for (config, path, field) in [
        (r#"{"interval_s": 5}"#, "interval_s", "interval_s"),
        (
            r#"{"network": {"exclude": ["lo"]}}"#,
            "network.exclude",
            "exclude",
        ),
    ] {
        match create(&TestHost::default(), config) {
            RResult::ROk(_) => panic!("create should fail for {config}"),
            RResult::RErr(e) => {
                assert_eq!(e.config_errors.len(), 1, "{e:?}");
                assert_eq!(e.config_errors[0].path.as_str(), path, "{e:?}");
                assert!(
                    e.config_errors[0]
                        .message
                        .contains(&format!("unknown field `{field}`")),
                    "{e:?}"
                );
            }
        }
    }
}

#[test]
fn configured_hostname_is_the_resource() {
    let mut inst = instance(
        &TestHost::default(),
        r#"{"hostname": "web-1", "collectors": ["uptime"]}"#,
    );
    let b = collect(&mut inst);
    assert_eq!(
        resource_attr(&b, "host.name"),
        Some(&AnyValue::Str("web-1".into()))
    );
    assert_eq!(b.metrics.len(), 1);
    assert!(inst.shutdown(1000).is_ok());
}
