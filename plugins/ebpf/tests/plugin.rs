//! End-to-end tests on the real kernel, through the exported root module the way the
//! agent drives the plugin: descriptor, `create` with a JSON config, `start`
//! (loads and attaches the BPF programs), `collect`, `health`, `shutdown`.
//!
//! The counting tests cause known activity between two collections (openat calls,
//! loopback TCP connects and accepts, execs of /bin/true, fsync'd writes, a dropped
//! SYN) and check that each counter grew by at least that much: other processes on
//! the machine only add to the counts, so "at least" is exact enough to fail when
//! a probe counts nothing or the wrong event.
//!
//! Loading BPF programs needs root (or CAP_BPF + CAP_PERFMON): without it these
//! tests print a SKIP line and return, unless TFO_REQUIRE_SERVICES=1, where they
//! fail. The library is linked into this test binary as an rlib and reached through
//! its root-module symbol (plugin-api's `testing` feature) instead of `dlopen`.

use std::{
    collections::BTreeMap,
    fs,
    io::Write,
    net::{Ipv4Addr, TcpListener, TcpStream},
    os::unix::fs::MetadataExt,
    path::Path,
    process::Command,
    sync::Mutex,
    time::{Duration, Instant},
};

use tfo_plugin_api::{
    __private::abi_stable::std_types::{ROption, RResult},
    testing::TestHost,
    AnyValue, Batch, DataTypes, HealthState, HistogramValue, MetricKind, PluginInstanceBox,
    PluginKind, PluginModRef, PointValue, Temporality,
};

fn module() -> PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_ebpf)
}

/// Calls the plugin's `create` as the agent does.
fn create(h: &TestHost, config: &str) -> RResult<PluginInstanceBox, tfo_plugin_api::CreateError> {
    tfo_plugin_api::testing::create(module(), h, "ebpf", config).into()
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
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "collect took {:?}",
        started.elapsed()
    );
    b
}

/// A started instance whose every requested probe attached.
fn started(h: &TestHost, config: &str) -> PluginInstanceBox {
    let mut inst = instance(h, config);
    assert!(inst.start().is_ok());
    let health = inst.health();
    assert_eq!(
        health.state,
        HealthState::Healthy,
        "probes did not all attach: {}",
        health.reason
    );
    inst
}

/// Held by every test that loads BPF programs, so the one counting the kernel's
/// loaded programs sees only its own.
static KERNEL: Mutex<()> = Mutex::new(());

/// When this process may load BPF programs, the lock serializing such tests;
/// otherwise prints why the test is skipped (or fails under
/// TFO_REQUIRE_SERVICES=1).
fn privileged(test: &str) -> Option<std::sync::MutexGuard<'static, ()>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Some(KERNEL.lock().unwrap_or_else(|e| e.into_inner()));
    }
    let why = "loading eBPF programs needs root (or CAP_BPF + CAP_PERFMON); run the tests as root";
    if std::env::var("TFO_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{test}: {why} (TFO_REQUIRE_SERVICES=1)");
    }
    println!("SKIP {test}: {why}");
    None
}

fn int(v: &PointValue) -> i64 {
    match v {
        PointValue::Int(i) => *i,
        other => panic!("expected an integer point, got {other:?}"),
    }
}

/// The single point of counter `name`.
fn counter(b: &Batch, name: &str) -> i64 {
    let m = b
        .metrics
        .iter()
        .find(|m| m.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} missing"));
    assert_eq!(m.kind, MetricKind::Sum, "{name}");
    assert!(m.is_monotonic, "{name}");
    assert_eq!(m.temporality, Temporality::Cumulative, "{name}");
    assert_eq!(m.points.len(), 1, "{name}");
    int(&m.points[0].value)
}

fn histogram(b: &Batch, name: &str) -> HistogramValue {
    let m = b
        .metrics
        .iter()
        .find(|m| m.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} missing"));
    assert_eq!(m.kind, MetricKind::Histogram, "{name}");
    assert_eq!(m.temporality, Temporality::Cumulative, "{name}");
    assert_eq!(m.unit.as_str(), "s", "{name}");
    match &m.points[0].value {
        PointValue::Histogram(h) => {
            assert_eq!(h.bucket_counts.len(), h.bounds.len() + 1, "{name}");
            assert_eq!(h.bucket_counts.iter().sum::<u64>(), h.count, "{name}");
            h.clone()
        }
        other => panic!("{name}: {other:?}"),
    }
}

/// `ebpf.syscalls` by label.
fn syscalls(b: &Batch) -> BTreeMap<String, i64> {
    let m = b
        .metrics
        .iter()
        .find(|m| m.name.as_str() == "ebpf.syscalls")
        .expect("ebpf.syscalls missing");
    m.points
        .iter()
        .map(|p| {
            assert_eq!(p.attributes.len(), 1);
            assert_eq!(p.attributes[0].key.as_str(), "syscall");
            let label = match &p.attributes[0].value {
                AnyValue::Str(s) => s.to_string(),
                other => panic!("syscall label {other:?}"),
            };
            (label, int(&p.value))
        })
        .collect()
}

#[test]
fn descriptor_describes_a_metrics_source() {
    let d = (module().descriptor())();
    assert_eq!(d.name.as_str(), "ebpf");
    assert_eq!(d.version.as_str(), env!("CARGO_PKG_VERSION"));
    assert_eq!(d.kind, PluginKind::Source);
    assert_eq!(d.data_types, DataTypes::METRICS);
    assert_eq!(
        d.plugin_api_version.as_str(),
        tfo_plugin_api::PLUGIN_API_VERSION
    );
}

#[test]
fn an_invalid_probe_name_is_a_config_error_with_its_path() {
    match create(
        &TestHost::default(),
        r#"{"probes": ["syscalls", "tcpp", "syscalls"]}"#,
    ) {
        RResult::ROk(_) => panic!("create should fail"),
        RResult::RErr(e) => {
            assert_eq!(e.message.as_str(), "invalid configuration");
            let paths: Vec<&str> = e.config_errors.iter().map(|c| c.path.as_str()).collect();
            assert_eq!(paths, ["probes[1]", "probes[2]"], "{e:?}");
            assert!(
                e.config_errors[0].message.contains("unknown probe `tcpp`"),
                "{e:?}"
            );
        }
    }
}

#[test]
fn unknown_keys_and_wrong_types_are_config_errors_with_their_path() {
    for (config, path, text) in [
        (r#"{"probe": ["tcp"]}"#, "probe", "unknown field `probe`"),
        (
            r#"{"syscall_names": "yes"}"#,
            "syscall_names",
            "invalid type",
        ),
        (r#"{"probes": ["tcp", 3]}"#, "probes[1]", "invalid type"),
    ] {
        match create(&TestHost::default(), config) {
            RResult::ROk(_) => panic!("create should fail for {config}"),
            RResult::RErr(e) => {
                assert_eq!(e.config_errors.len(), 1, "{e:?}");
                assert_eq!(e.config_errors[0].path.as_str(), path, "{e:?}");
                assert!(e.config_errors[0].message.contains(text), "{e:?}");
            }
        }
    }
}

#[test]
fn create_loads_nothing_and_collect_before_start_is_empty() {
    // Works without privileges: nothing touches the kernel before `start`.
    let h = TestHost::default();
    let mut inst = instance(&h, "{}");
    assert_eq!(inst.health().state, HealthState::Initializing);
    assert!(collect(&mut inst).is_empty());
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn counters_and_histograms_follow_known_activity() {
    let Some(_kernel) = privileged("counters_and_histograms_follow_known_activity") else {
        return;
    };
    const OPENS: i64 = 200;
    const CONNECTS: i64 = 20;
    const EXECS: i64 = 10;

    let h = TestHost::default();
    let mut inst = started(&h, "{}");
    let before = collect(&mut inst);
    let names: Vec<&str> = before.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ebpf.syscalls",
            "ebpf.process.execs",
            "ebpf.process.exits",
            "ebpf.tcp.connects",
            "ebpf.tcp.accepts",
            "ebpf.tcp.retransmits",
            "ebpf.block.io.latency",
            "ebpf.sched.runqueue.latency",
        ]
    );

    // openat: File::open is an openat(2) call on Linux.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, b"x").unwrap();
    for _ in 0..OPENS {
        drop(fs::File::open(&path).unwrap());
    }

    // TCP: connect to a loopback listener and accept each connection.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    for _ in 0..CONNECTS {
        let c = TcpStream::connect(addr).unwrap();
        let (s, _) = listener.accept().unwrap();
        drop((c, s));
    }

    // Process execs and exits.
    for _ in 0..EXECS {
        let status = Command::new("/bin/true").status().unwrap();
        assert!(status.success());
    }

    let after = collect(&mut inst);
    let (s0, s1) = (syscalls(&before), syscalls(&after));
    let opens = s1.get("openat").copied().unwrap_or(0) - s0.get("openat").copied().unwrap_or(0);
    assert!(
        opens >= OPENS,
        "openat grew by {opens}, expected >= {OPENS}"
    );
    let execve = s1.get("execve").copied().unwrap_or(0) - s0.get("execve").copied().unwrap_or(0);
    assert!(execve >= EXECS, "execve grew by {execve}");
    // Every point is a name or an `ia32:` number, not a raw number, on x86_64.
    if cfg!(target_arch = "x86_64") {
        assert!(
            s1.contains_key("read") && s1.contains_key("close"),
            "{s1:?}"
        );
    }

    let grew = |name: &str| counter(&after, name) - counter(&before, name);
    for (name, at_least) in [
        ("ebpf.tcp.connects", CONNECTS),
        ("ebpf.tcp.accepts", CONNECTS),
        ("ebpf.process.execs", EXECS),
        ("ebpf.process.exits", EXECS),
    ] {
        let d = grew(name);
        assert!(d >= at_least, "{name} grew by {d}, expected >= {at_least}");
    }

    // Spawning and reaping processes wakes tasks up: the run queue saw them.
    let (r0, r1) = (
        histogram(&before, "ebpf.sched.runqueue.latency"),
        histogram(&after, "ebpf.sched.runqueue.latency"),
    );
    assert!(
        r1.count > r0.count,
        "run-queue histogram did not grow ({} -> {})",
        r0.count,
        r1.count
    );
    // Cumulative: no bucket ever goes down.
    assert!(r0
        .bucket_counts
        .iter()
        .zip(r1.bucket_counts.iter())
        .all(|(a, b)| b >= a));

    // Start times stay put (cumulative series), timestamps move on.
    let start = |b: &Batch, i: usize| b.metrics[i].points[0].start_time_unix_nano;
    for i in 0..before.metrics.len() {
        assert_eq!(start(&before, i), start(&after, i));
        assert!(start(&after, i) > 0);
        assert!(
            after.metrics[i].points[0].time_unix_nano >= before.metrics[i].points[0].time_unix_nano
        );
    }

    assert!(inst.shutdown(2000).is_ok());
    assert_eq!(inst.health().state, HealthState::Unhealthy);
    assert!(collect(&mut inst).is_empty());
    assert!(h
        .logs()
        .iter()
        .any(|(_, l)| l.contains("eBPF probes started")));
    assert!(h.panics().is_empty(), "{:?}", h.panics());
}

#[test]
fn syscall_numbers_when_names_are_off() {
    let Some(_kernel) = privileged("syscall_numbers_when_names_are_off") else {
        return;
    };
    let h = TestHost::default();
    let mut inst = started(&h, r#"{"probes": ["syscalls"], "syscall_names": false}"#);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, b"x").unwrap();
    for _ in 0..10 {
        drop(fs::File::open(&path).unwrap());
    }
    let b = collect(&mut inst);
    assert_eq!(b.metrics.len(), 1);
    let s = syscalls(&b);
    assert!(
        s.keys()
            .all(|k| k.parse::<u32>().is_ok() || k.starts_with("ia32:")),
        "{s:?}"
    );
    if cfg!(target_arch = "x86_64") {
        assert!(
            s.get("257").copied().unwrap_or(0) >= 10,
            "openat is 257: {s:?}"
        );
    }
    assert!(inst.shutdown(2000).is_ok());
}

#[test]
fn a_dropped_syn_is_counted_as_a_retransmit() {
    let Some(_kernel) = privileged("a_dropped_syn_is_counted_as_a_retransmit") else {
        return;
    };
    let h = TestHost::default();
    let mut inst = started(&h, r#"{"probes": ["tcp"]}"#);
    let before = collect(&mut inst);

    // A listener with backlog 0 whose accept queue is full drops further SYNs
    // (tcp_conn_request: "listen overflow"), so the client retransmits its SYN after
    // the initial RTO of one second.
    let listener = listen_with_backlog_zero();
    let addr = listener.local_addr().unwrap();
    let _queued = TcpStream::connect(addr).unwrap();
    // Two more attempts, in case the first one's handshake was still completing
    // when the second SYN arrived: at least one of them is dropped.
    let attempts: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(2500))
            })
        })
        .collect();
    // Joining is the signal: a dropped attempt times out after 2.5 s, by which time
    // its SYN went out again at ~1 s.
    let outcomes: Vec<bool> = attempts
        .into_iter()
        .map(|t| t.join().unwrap().is_ok())
        .collect();
    assert!(
        outcomes.contains(&false),
        "no SYN was dropped: {outcomes:?}"
    );

    let after = collect(&mut inst);
    let d = counter(&after, "ebpf.tcp.retransmits") - counter(&before, "ebpf.tcp.retransmits");
    assert!(d >= 1, "retransmits grew by {d}");
    assert!(inst.shutdown(2000).is_ok());
}

/// A loopback listener created with listen(2) backlog 0 (std always asks for 128).
fn listen_with_backlog_zero() -> TcpListener {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor this function owns; the address
    // structure is fully initialised.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let listener = TcpListener::from_raw_fd(fd);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(
                fd,
                &sa as *const libc::sockaddr_in as *const libc::sockaddr,
                len
            ),
            0,
            "bind: {}",
            std::io::Error::last_os_error()
        );
        assert_eq!(
            libc::listen(fd, 0),
            0,
            "listen: {}",
            std::io::Error::last_os_error()
        );
        listener
    }
}

/// The block device holding `dir`, when it is one (not tmpfs, overlay's upper
/// layer on tmpfs, NFS...).
fn block_device_of(dir: &Path) -> Option<String> {
    let dev = fs::metadata(dir).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let sys = format!("/sys/dev/block/{major}:{minor}");
    Path::new(&sys).exists().then_some(sys)
}

#[test]
fn synced_writes_show_in_the_block_io_histogram() {
    let Some(_kernel) = privileged("synced_writes_show_in_the_block_io_histogram") else {
        return;
    };
    // The target directory is on the build machine's disk, unlike /tmp on many
    // systems (tmpfs).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let Some(device) = block_device_of(dir.path()) else {
        println!(
            "SKIP synced_writes_show_in_the_block_io_histogram: {} is not on a block device, so writing there causes no block I/O",
            dir.path().display()
        );
        return;
    };
    let h = TestHost::default();
    let mut inst = started(&h, r#"{"probes": ["block"]}"#);
    let before = histogram(&collect(&mut inst), "ebpf.block.io.latency");

    const WRITES: u64 = 4;
    let mut f = fs::File::create(dir.path().join("data")).unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    for _ in 0..WRITES {
        f.write_all(&chunk).unwrap();
        // fsync writes the data back and flushes the device: block requests that
        // are issued and completed before it returns.
        f.sync_all().unwrap();
    }

    let after = histogram(&collect(&mut inst), "ebpf.block.io.latency");
    assert!(
        after.count >= before.count + WRITES,
        "block I/O histogram of {device} grew by {} requests, expected >= {WRITES}",
        after.count - before.count
    );
    let sum = |h: &HistogramValue| match h.sum {
        ROption::RSome(s) => s,
        _ => panic!("sum missing"),
    };
    assert!(sum(&after) > sum(&before), "latency sum did not grow");
    assert!(inst.shutdown(2000).is_ok());
}

/// Runs inside the unprivileged child of the next test; a no-op otherwise.
#[test]
fn unprivileged_child() {
    if std::env::var("TFO_EBPF_UNPRIVILEGED_CHILD").as_deref() != Ok("1") {
        return;
    }
    let h = TestHost::default();
    let mut inst = instance(&h, "{}");
    // Neither start nor collect fails: the agent keeps running.
    assert!(inst.start().is_ok());
    let health = inst.health();
    assert_eq!(health.state, HealthState::Unhealthy);
    assert!(
        health.reason.starts_with(
            "permission denied loading BPF program: run as root or grant CAP_BPF,CAP_PERFMON"
        ),
        "{}",
        health.reason
    );
    assert!(
        health
            .reason
            .contains("syscalls, process, tcp, block, runqueue"),
        "{}",
        health.reason
    );
    assert!(collect(&mut inst).is_empty());
    assert!(inst.shutdown(1000).is_ok());
    assert!(h
        .logs()
        .iter()
        .any(|(_, l)| l.contains("eBPF probe not loaded")));
    assert!(h.panics().is_empty(), "{:?}", h.panics());
    println!("health reason: {}", health.reason);
    println!("UNPRIVILEGED-CHILD-CHECKED");
}

#[test]
fn without_privileges_start_reports_unhealthy_and_collect_is_empty() {
    let Some(_kernel) =
        privileged("without_privileges_start_reports_unhealthy_and_collect_is_empty")
    else {
        return;
    };
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(setpriv) = setpriv else {
        let why = "setpriv (util-linux) is not installed";
        if std::env::var("TFO_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{why} (TFO_REQUIRE_SERVICES=1)");
        }
        println!("SKIP without_privileges_start_reports_unhealthy_and_collect_is_empty: {why}");
        return;
    };
    // This test binary again, as root without any capability: bpf(2) and
    // perf_event_open(2) then fail with EPERM/EACCES as for an ordinary user.
    let out = Command::new(setpriv)
        .args([
            "--bounding-set=-all",
            "--inh-caps=-all",
            "--no-new-privs",
            "--",
        ])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "unprivileged_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TFO_EBPF_UNPRIVILEGED_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("UNPRIVILEGED-CHILD-CHECKED"),
        "child did not run its checks:\n{stdout}\n{stderr}"
    );
}

#[test]
fn many_collections_are_cheap_and_stable() {
    let Some(_kernel) = privileged("many_collections_are_cheap_and_stable") else {
        return;
    };
    let h = TestHost::default();
    let mut inst = started(&h, "{}");
    let mut last = collect(&mut inst);
    for _ in 0..20 {
        let b = collect(&mut inst);
        assert_eq!(b.metrics.len(), last.metrics.len());
        for name in ["ebpf.process.execs", "ebpf.tcp.connects"] {
            assert!(
                counter(&b, name) >= counter(&last, name),
                "{name} went down"
            );
        }
        last = b;
    }
    assert!(inst.shutdown(2000).is_ok());
    // A second instance after the first one's shutdown attaches again.
    let mut again = started(&h, r#"{"probes": ["process"]}"#);
    assert_eq!(collect(&mut again).metrics.len(), 2);
    assert!(again.shutdown(2000).is_ok());
}

/// Ids and names of the BPF programs loaded in the kernel that come from this
/// plugin (the kernel keeps the first 15 characters of a name).
fn our_programs() -> BTreeMap<u32, String> {
    aya::programs::loaded_programs()
        .filter_map(|p| p.ok())
        .filter_map(|p| Some((p.id(), p.name_as_str()?.to_string())))
        .filter(|(_, n)| n.starts_with("tfo_"))
        .collect()
}

#[test]
fn shutdown_detaches_and_unloads_every_program() {
    let Some(_kernel) = privileged("shutdown_detaches_and_unloads_every_program") else {
        return;
    };
    // Programs of earlier tests may still be on their way out (see below).
    let before = our_programs();
    let h = TestHost::default();
    let mut inst = started(&h, "{}");
    let ours: BTreeMap<u32, String> = our_programs()
        .into_iter()
        .filter(|(id, _)| !before.contains_key(id))
        .collect();
    // 1 syscalls + 2 process + 2 tcp + 2 block + 3 runqueue.
    assert_eq!(ours.len(), 10, "{ours:?}");
    assert!(ours.values().any(|n| n == "tfo_sys_enter"), "{ours:?}");
    // Shutdown alone releases them: the instance is still alive below.
    assert!(inst.shutdown(2000).is_ok());
    // The kernel frees a program once its last reference is gone, after an RCU
    // grace period, on a work queue: there is nothing to wait on from userspace,
    // so poll the program list with a deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<String> = our_programs()
            .into_iter()
            .filter(|(id, _)| ours.contains_key(id))
            .map(|(_, n)| n)
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still loaded after shutdown: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(inst);
}
