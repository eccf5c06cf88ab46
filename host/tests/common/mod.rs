//! Helpers shared by the host's integration tests: fixture paths, installing a
//! plugin the documented way (write tmp, rename), batches with numbered points, and
//! waiting on conditions with a deadline.
#![allow(dead_code)]

use std::{
    fs,
    io::{Read, Write},
    net::TcpStream,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tfo_agent::{
    pipeline::{
        runner::{RetryPolicy, Timeouts},
        HeldBatch,
    },
    plugin::manager::{InstanceSpec, ManagerOptions, PluginManager},
};
use tfo_plugin_api::{Batch, Metric};

/// Path of a built fixture or plugin library (`libtfo_<stem>.so`).
pub fn fixture(stem: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let p = target.join("debug").join(format!("libtfo_{stem}.so"));
    assert!(
        p.exists(),
        "{} is not built: run scripts/build-fixtures.sh (scripts/test.sh does)",
        p.display()
    );
    p
}

/// Installs `src` as `dir/libtfo_<name>.so` by writing a temporary file and renaming
/// it, as the docs tell operators to.
pub fn install(dir: &Path, src: &Path, name: &str) -> PathBuf {
    let dest = dir.join(format!("libtfo_{name}.so"));
    let tmp = dir.join(format!("libtfo_{name}.so.tmp"));
    fs::copy(src, &tmp).unwrap();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
    fs::rename(&tmp, &dest).unwrap();
    dest
}

/// Options for tests: short debounce, no periodic rescan, short timeouts.
pub fn options(dir: &Path, shadow_base: &Path) -> ManagerOptions {
    let mut o = ManagerOptions::new(dir);
    o.shadow_base = shadow_base.to_path_buf();
    o.debounce = Duration::from_millis(50);
    o.rescan_interval = Duration::ZERO;
    o.timeouts = Timeouts {
        call: Duration::from_secs(20),
        shutdown: Duration::from_secs(2),
    };
    o.drain_timeout = Duration::from_secs(20);
    o.retry = RetryPolicy {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(200),
        multiplier: 2.0,
        max_attempts: 0,
    };
    o
}

/// An instance spec.
pub fn spec(name: &str, plugin: &str, config: serde_json::Value) -> InstanceSpec {
    InstanceSpec {
        name: name.into(),
        plugin: plugin.into(),
        config,
        interval: Duration::from_secs(10),
        routes: None,
    }
}

/// A batch of `n` gauge points valued `first..first+n`.
pub fn numbered_batch(first: u64, n: u64) -> Arc<HeldBatch> {
    let mut b = Batch::default();
    for v in first..first + n {
        b.metrics
            .push(Metric::gauge("fixture.seq", "1", 1, v as f64, vec![]));
    }
    Arc::new(HeldBatch::own(b))
}

/// Values recorded by counting-sink / panicking-sink: (version, value) per line.
pub fn recorded(path: &Path) -> Vec<(String, u64)> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let (v, n) = l.split_once(' ').expect("line format");
            (v.to_string(), n.parse::<f64>().expect("number") as u64)
        })
        .collect()
}

/// Polls `cond` every 10 ms until it holds or `secs` pass (for state that has no
/// signal of its own); panics with `what` on timeout.
pub async fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A fresh directory for plugins and one for shadow copies.
pub fn dirs() -> (tempfile::TempDir, tempfile::TempDir) {
    let plugins = tempfile::tempdir().unwrap();
    fs::set_permissions(plugins.path(), fs::Permissions::from_mode(0o755)).unwrap();
    (plugins, tempfile::tempdir().unwrap())
}

/// The build installed by the `i`-th swap of counting-sink (0-based): build B first,
/// then A, alternating; with the version the swapped-in generation reports.
pub fn counting_build(i: u64) -> (PathBuf, &'static str) {
    if i.is_multiple_of(2) {
        (fixture("counting_sink_b"), "1.0.0-b")
    } else {
        (fixture("counting_sink"), "1.0.0-a")
    }
}

/// A manager serving counting-sink build A as instance `counter`, writing to
/// `<dir>/counted.txt` (returned).
pub async fn counting_manager(dir: &Path, shadow: &Path, watch: bool) -> (PluginManager, PathBuf) {
    install(dir, &fixture("counting_sink"), "counting_sink");
    let out = dir.join("counted.txt");
    let mut opts = options(dir, shadow);
    opts.watch = watch;
    let mgr = PluginManager::start(
        opts,
        vec![spec(
            "counter",
            "counting-sink",
            serde_json::json!({"output": out}),
        )],
    )
    .await
    .unwrap();
    (mgr, out)
}

/// A TCP port free right now on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.1 GET on loopback (optional bearer token): status and body.
pub fn http_get(port: u16, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}
