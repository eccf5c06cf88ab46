//! Fault injection with the real agent binary on loopback (issue "Reliability and
//! security"): a backend outage longer than the memory window loses nothing with
//! `pipeline.buffer: disk` (with the memory buffer the same outage drops, and every
//! drop is counted); batches accepted before a SIGKILL are delivered after the
//! restart; a rate-limited backend's Retry-After paces the retries. Each test prints
//! sent / received / dropped / duplicated. Other faults (panic loop, an export that
//! never returns, 1,000 file events, reload storms) are in plugin_host.rs and
//! agent_e2e.rs.

mod common;

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::*;

struct Run {
    child: Child,
    port: u16,
    log: PathBuf,
}

/// Writes the config: ticker (3 points every 10 ms) -> counting sink that fails
/// while `down` exists. A small memory window (60 items) so an outage overflows it.
fn config(dir: &Path, port: u16, buffer: &str, ticker: bool) -> PathBuf {
    config_with(dir, port, buffer, ticker, "")
}

/// `config` with extra keys for the sink block.
fn config_with(dir: &Path, port: u16, buffer: &str, ticker: bool, sink_extra: &str) -> PathBuf {
    let text = format!(
        "plugins:\n  dir: {plugins}\n  shadow_dir: {dir}\nhttp:\n  listen: 127.0.0.1:{port}\npipeline:\n  flush_interval: 20ms\n  batch_max_items: 30\n  queue_max_items: 60\n  shutdown_timeout: 10s\n  retry: {{initial: 10ms, max: 50ms}}\n  buffer: {buffer}\n  disk_buffer:\n    path: {dir}/buffer\n    fsync: true\nintegrations:\n  ticker:\n    enabled: {ticker}\n    plugin: ticker-source\n    interval: 10ms\n    per_collect: 3\n  sink:\n    enabled: true\n    plugin: counting-sink\n    output: {dir}/out.txt\n    down_while_exists: {dir}/down\n{sink_extra}",
        plugins = dir.join("plugins").display(),
        dir = dir.display(),
    );
    let cfg = dir.join("agent.yaml");
    fs::write(&cfg, text).unwrap();
    cfg
}

fn start(dir: &Path, cfg: &Path, port: u16, n: u32) -> Run {
    let log = dir.join(format!("agent{n}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
        .args(["run", "--config"])
        .arg(cfg)
        .env("TFO_LOG", "info")
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let r = Run { child, port, log };
    r.wait_for(|r| r.metrics().is_some(), "the API");
    r
}

impl Run {
    fn metrics(&self) -> Option<String> {
        http_get(self.port, "/metrics", None)
            .filter(|(s, _)| *s == 200)
            .map(|(_, b)| b)
    }

    /// A counter of one instance from /metrics (0 when absent).
    fn counter(&self, name: &str, instance: &str) -> u64 {
        let m = self.metrics().unwrap_or_default();
        m.lines()
            .find(|l| l.starts_with(name) && l.contains(&format!("instance=\"{instance}\"")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    }

    /// Whether /health shows the ticker as Disabled.
    fn ticker_disabled(&self) -> bool {
        self.disabled("ticker")
    }

    /// Whether /health shows `instance` as Disabled.
    fn disabled(&self, instance: &str) -> bool {
        let Some((_, body)) = http_get(self.port, "/health", None) else {
            return false;
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["integrations"].as_array().is_some_and(|a| {
            a.iter()
                .any(|i| i["instance"] == instance && i["state"] == "Disabled")
        })
    }

    /// Polls (no push signal across processes) until `cond` or 30 s.
    fn wait_for(&self, cond: impl Fn(&Run) -> bool, what: &str) {
        let end = Instant::now() + Duration::from_secs(30);
        while !cond(self) {
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}; log:\n{}",
                fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(mut self, sig: i32) -> String {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
        self.child.wait().unwrap();
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Values the sink wrote: value -> times received.
fn received(dir: &Path) -> BTreeMap<u64, u64> {
    let mut m = BTreeMap::new();
    for (_, v) in recorded(&dir.join("out.txt")) {
        *m.entry(v).or_insert(0) += 1;
    }
    m
}

/// Waits until the sink's queue is empty, stops the agent, and returns what the
/// sink dropped, the agent's log and the values the sink received.
fn drain_and_stop(run: Run, dir: &Path) -> (u64, String, BTreeMap<u64, u64>) {
    run.wait_for(
        |r| r.counter("tfo_agent_queue_items", "sink") == 0,
        "the sink queue drained",
    );
    let dropped = run.counter("tfo_agent_items_dropped_total", "sink");
    let log = run.kill(libc::SIGTERM);
    (dropped, log, received(dir))
}

fn setup() -> (tempfile::TempDir, u16) {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    fs::create_dir(&plugins).unwrap();
    install(&plugins, &fixture("ticker_source"), "ticker_source");
    install(&plugins, &fixture("counting_sink"), "counting_sink");
    (tmp, free_port())
}

/// Backend down while ~10x the memory window flows in, then up again; the ticker is
/// then switched off (config reload) and the sink drains. Returns (sent, received
/// distinct, dropped, duplicated).
fn outage(buffer: &str) -> (u64, u64, u64, u64) {
    let (tmp, port) = setup();
    let dir = tmp.path();
    fs::write(dir.join("down"), "").unwrap();
    let cfg = config(dir, port, buffer, true);
    let run = start(dir, &cfg, port, 1);
    run.wait_for(
        |r| r.counter("tfo_agent_items_collected_total", "ticker") >= 600,
        "600 items collected during the outage",
    );
    // Stop the source (SIGHUP reload with the ticker disabled), then end the outage.
    config(dir, port, buffer, false);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(run.child.id() as i32, libc::SIGHUP) };
    run.wait_for(|r| r.ticker_disabled(), "the ticker disabled");

    fs::remove_file(dir.join("down")).unwrap();
    let (dropped, log, got) = drain_and_stop(run, dir);
    let distinct = got.len() as u64;
    let dup: u64 = got.values().map(|n| n - 1).sum();
    // The ticker numbers its points 0, 1, 2...; neither buffer drops the newest, so
    // the highest value received is the last one sent.
    let sent = got.keys().next_back().map_or(0, |m| m + 1);
    eprintln!(
        "{buffer} buffer, outage: sent {sent}, received {distinct}, dropped {dropped}, duplicated {dup}"
    );
    assert!(sent >= 600, "{log}");
    (sent, distinct, dropped, dup)
}

#[test]
fn an_outage_longer_than_memory_loses_nothing_with_the_disk_buffer() {
    let (sent, received, dropped, dup) = outage("disk");
    assert_eq!(dropped, 0);
    assert_eq!(received, sent, "every item sent arrived");
    assert_eq!(dup, 0, "no retry after success, no replay within a run");
}

#[test]
fn the_same_outage_with_the_memory_buffer_drops_and_counts_exactly() {
    let (sent, received, dropped, dup) = outage("memory");
    assert!(dropped > 0, "a 60-item window cannot hold the outage");
    assert_eq!(
        received + dropped,
        sent,
        "every item is received or counted"
    );
    assert_eq!(dup, 0);
}

/// Data accepted into the disk buffer before a SIGKILL reaches the sink after the
/// restart: the values received form one gap-free run from 0 that covers at least
/// what the killed agent had queued; duplicates are at most the last acknowledged
/// window.
#[test]
fn batches_buffered_before_sigkill_are_delivered_after_restart() {
    let (tmp, port) = setup();
    let dir = tmp.path();
    fs::write(dir.join("down"), "").unwrap();
    let cfg = config(dir, port, "disk", true);
    let run = start(dir, &cfg, port, 1);
    run.wait_for(
        |r| r.counter("tfo_agent_queue_items", "sink") >= 300,
        "300 items in the disk buffer",
    );
    let queued = run.counter("tfo_agent_queue_items", "sink");
    run.kill(libc::SIGKILL);

    // Restart without the source and with the backend up.
    fs::remove_file(dir.join("down")).unwrap();
    config(dir, port, "disk", false);
    let run = start(dir, &cfg, port, 2);
    run.wait_for(
        |r| {
            r.counter("tfo_agent_queue_items", "sink") == 0
                && r.counter("tfo_agent_items_exported_total", "sink") > 0
        },
        "the replayed backlog delivered",
    );
    let log = run.kill(libc::SIGTERM);
    assert!(
        log.contains("disk buffer: replaying what was not delivered before"),
        "{log}"
    );
    let got = received(dir);
    let values: Vec<u64> = got.keys().copied().collect();
    let max = *values.last().expect("something was delivered");
    let dup: u64 = got.values().map(|n| n - 1).sum();
    eprintln!(
        "SIGKILL with {queued} queued: received {} distinct (0..={max}), duplicated {dup}, lost 0",
        values.len()
    );
    assert_eq!(
        values,
        (0..=max).collect::<Vec<_>>(),
        "no gap: nothing in the middle was lost"
    );
    assert!(
        values.len() as u64 >= queued,
        "at least what was queued at the kill ({queued}) arrived"
    );
    assert_eq!(dup, 0, "the backend was down: nothing was delivered twice");
}

/// A backend answering 429 with `Retry-After: 300 ms` is retried no faster than
/// that, although `pipeline.retry` alone would retry every 10-50 ms; once it
/// recovers, everything arrives (disk buffer).
#[test]
fn retry_after_from_a_rate_limited_backend_paces_the_retries() {
    let (tmp, port) = setup();
    let dir = tmp.path();
    fs::write(dir.join("down"), "").unwrap();
    let cfg = config_with(dir, port, "disk", true, "    retry_after_ms: 300\n");
    let began = Instant::now();
    let run = start(dir, &cfg, port, 1);
    run.wait_for(
        |r| r.counter("tfo_agent_export_retries_total", "sink") >= 3,
        "three retries",
    );
    std::thread::sleep(Duration::from_millis(1200)); // the window being measured
    let retries = run.counter("tfo_agent_export_retries_total", "sink");
    let elapsed = began.elapsed();
    // Upper bound: one retry per Retry-After over the whole time since start, plus
    // the first attempt. Without Retry-After it would be elapsed / 50 ms or more.
    let bound = (elapsed.as_millis() / 300) as u64 + 2;
    fs::remove_file(dir.join("down")).unwrap();
    run.wait_for(
        |r| r.counter("tfo_agent_items_exported_total", "sink") > 0,
        "delivery after the backend recovered",
    );
    let log = run.kill(libc::SIGTERM);
    let got = received(dir);
    let values: Vec<u64> = got.keys().copied().collect();
    let max = values.last().copied().unwrap_or(0);
    eprintln!(
        "429 storm for {elapsed:?}: {retries} retries (bound {bound}); received {} distinct of {}, dropped 0",
        values.len(),
        max + 1
    );
    assert!(
        retries <= bound,
        "{retries} retries in {elapsed:?}: Retry-After ignored\n{log}"
    );
    assert_eq!(values, (0..=max).collect::<Vec<_>>(), "no gap");
}

/// A plain HTTP/1.1 POST on loopback: the status code.
fn http_post(port: u16, path: &str, body: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

/// A polled source's collected batches go back to it once the sink is done with
/// them (`HostServices::reclaimed`), like a receiver's emitted ones: the ticker
/// (`reuse: true`) writes each collection into such a batch. Every value still
/// arrives exactly once and in order, which fails if a batch came back while a
/// queue still held it (its points would be overwritten before the export), and
/// the instance's `tfo_agent_batches_reclaimed_total` counts the reuse, which
/// stays 0 when the host does not hand collected batches back.
#[test]
fn a_polled_source_gets_its_exported_batches_back() {
    let (tmp, port) = setup();
    let dir = tmp.path();
    let extra = "  reuser:\n    enabled: true\n    plugin: ticker-source\n    interval: 10ms\n    per_collect: 3\n    reuse: true\n";
    let cfg = config_with(dir, port, "memory", false, extra);
    let run = start(dir, &cfg, port, 1);
    run.wait_for(
        |r| r.counter("tfo_agent_batches_reclaimed_total", "reuser") >= 20,
        "20 collections written into handed-back batches",
    );
    let reclaimed = run.counter("tfo_agent_batches_reclaimed_total", "reuser");
    // Stop the source (SIGHUP reload with it disabled), then let the sink drain.
    config_with(
        dir,
        port,
        "memory",
        false,
        &extra.replace("true\n    plugin", "false\n    plugin"),
    );
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(run.child.id() as i32, libc::SIGHUP) };
    run.wait_for(|r| r.disabled("reuser"), "the source disabled");
    let (dropped, log, got) = drain_and_stop(run, dir);
    let sent = got.keys().next_back().map_or(0, |m| m + 1);
    let dup: Vec<_> = got.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dup.is_empty(), "values received twice: {dup:?}\n{log}");
    assert_eq!(dropped, 0);
    assert_eq!(
        got.len() as u64,
        sent,
        "values missing from 0..{sent}\n{log}"
    );
    assert!(sent >= 60, "{log}");
    eprintln!("polled source reusing its batches: {sent} values, each once; {reclaimed} batches handed back");
}

/// Push sources get backpressure: with the sink's backend down, the InfluxDB
/// receiver accepts until the sink's memory queue (60 items) is full, then answers
/// 503/429 instead of the host evicting what it already accepted. When the backend
/// comes back, every accepted point arrives, none is dropped, and the refusals are
/// counted on the receiver's instance.
#[test]
fn a_push_source_is_refused_while_its_sink_queue_is_full() {
    let (tmp, port) = setup();
    let dir = tmp.path();
    install(&dir.join("plugins"), &fixture("influxdb"), "influxdb");
    fs::write(dir.join("down"), "").unwrap();
    let rport = free_port();
    let extra = format!(
        "  influx:\n    enabled: true\n    plugin: influxdb\n    receiver:\n      listen: 127.0.0.1:{rport}\n"
    );
    let cfg = config_with(dir, port, "memory", false, &extra);
    let run = start(dir, &cfg, port, 1);
    run.wait_for(
        |_| http_post(rport, "/write", "probe v=1000000").is_some(),
        "the receiver",
    );
    // The probe was accepted (204) or refused: count it only when accepted.
    let mut accepted: Vec<u64> = Vec::new();
    let mut refused = 0;
    let mut next = 0u64;
    // 10 points per request; the window is 60 items, so refusals must start
    // within a few requests once the batcher has handed the first ones over.
    for _ in 0..400 {
        let body: String = (next..next + 10).map(|v| format!("m v={v}\n")).collect();
        match http_post(rport, "/write", &body) {
            Some(204) => accepted.extend(next..next + 10),
            Some(503) | Some(429) => refused += 1,
            other => panic!("unexpected answer {other:?}"),
        }
        next += 10;
        if refused >= 20 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        refused >= 20,
        "the receiver was never refused: accepted {}",
        accepted.len()
    );
    assert!(
        !accepted.is_empty(),
        "nothing was accepted before the queue filled"
    );
    let refused_emits = run.counter("tfo_agent_emits_refused_total", "influx");
    assert!(refused_emits >= 20, "refusals not counted: {refused_emits}");
    // Backend up: everything accepted arrives, nothing was dropped.
    fs::remove_file(dir.join("down")).unwrap();
    let want = accepted.len();
    run.wait_for(
        |_| received(dir).keys().filter(|v| **v < 1_000_000).count() >= want,
        "every accepted point at the sink",
    );
    let got = received(dir);
    let missing: Vec<u64> = accepted
        .iter()
        .copied()
        .filter(|v| !got.contains_key(v))
        .collect();
    assert!(
        missing.is_empty(),
        "accepted but lost: {:?}",
        &missing[..missing.len().min(10)]
    );
    let dropped = run.counter("tfo_agent_items_dropped_total", "sink");
    assert_eq!(dropped, 0, "the sink queue evicted accepted data");
    // The exported batches went back to the receiver (ABI 1.2): the next
    // request is parsed into one of them, and its values arrive, not the old.
    let body: String = (2_000_000..2_000_010)
        .map(|v| format!("m v={v}\n"))
        .collect();
    assert_eq!(http_post(rport, "/write", &body), Some(204));
    run.wait_for(
        |_| (2_000_000..2_000_010).all(|v| received(dir).contains_key(&v)),
        "the request parsed into a reclaimed batch at the sink",
    );
    let reclaimed = run.counter("tfo_agent_batches_reclaimed_total", "influx");
    assert!(reclaimed >= 1, "no exported batch was handed back");
    let log = run.kill(libc::SIGTERM);
    eprintln!(
        "push backpressure: {} points accepted, {refused} requests refused ({refused_emits} emits refused), 0 dropped, all delivered; {reclaimed} batch(es) reused",
        want
    );
    let _ = log;
}
