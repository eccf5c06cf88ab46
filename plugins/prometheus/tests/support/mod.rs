//! Shared by the integration tests: a small fake host driving the plugin through
//! its exported root module (as the agent does), a real `prometheus` process on
//! free loopback ports, and decoders for the remote-write body written from the
//! specifications (Snappy block format, protobuf wire format) without the
//! plugin's code.
#![allow(dead_code)] // each test binary uses a different part

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use http::Method;
use tfo_plugin_api::{
    __private::abi_stable::std_types::{ROption, RResult, RVec},
    Batch, CreateError, DataPoint, HistogramValue, KeyValue, Metric, MetricKind, PluginInstanceBox,
    PluginModRef, PointValue, Resource, Temporality,
};
use tfo_plugin_common::http::{ClientOptions, HttpClient, Request, Response};

pub use tfo_plugin_api::testing::TestHost;

/// The plugin's root module, as the host would load it.
pub fn module() -> PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_prometheus)
}

/// The scrape endpoint address the plugin logged when it started.
pub fn scrape_url(h: &TestHost) -> String {
    let logs = h.logs();
    let line = logs
        .iter()
        .map(|(_, l)| l)
        .find(|l| l.contains("scrape endpoint listening on "))
        .unwrap_or_else(|| panic!("no listening line in {logs:?}"));
    line.split("listening on ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Calls the plugin's `create` as the agent does.
pub fn create(h: &TestHost, config: &str) -> RResult<PluginInstanceBox, CreateError> {
    tfo_plugin_api::testing::create(module(), h, "prom", config).into()
}

/// `create` + `start`, panicking on failure.
pub fn started(h: &TestHost, config: &str) -> PluginInstanceBox {
    let mut inst = match create(h, config) {
        RResult::ROk(i) => i,
        RResult::RErr(e) => panic!("create failed: {e:?}"),
    };
    if let RResult::RErr(e) = inst.start() {
        panic!("start failed: {e}");
    }
    inst
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A runtime for the test's own HTTP requests.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `GET url` with extra headers.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Response {
    let client = HttpClient::new(&ClientOptions {
        timeout: Duration::from_secs(10),
        ..Default::default()
    })
    .unwrap();
    let mut req = Request::new(Method::GET, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    runtime()
        .block_on(client.send(req))
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Where an external program is, or `None` after printing why the test is skipped.
/// With `TFO_REQUIRE_SERVICES=1` a missing program fails the test instead.
pub fn require_program(name: &str, why: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let msg =
            format!("`{name}` not found in PATH (Debian package `prometheus`); skipping {why}");
        if std::env::var("TFO_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("TFO_REQUIRE_SERVICES=1: {msg}");
        }
        // Straight to the process's stderr: libtest captures `eprintln!` of
        // passing tests, and a skip must be visible.
        let _ =
            std::io::Write::write_all(&mut std::io::stderr(), format!("SKIP: {msg}\n").as_bytes());
    }
    found
}

/// A free loopback port (bound and released; another process could take it in
/// between, which is unlikely on a test machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `prometheus` server of its own (temp data dir, generated config, free port);
/// killed and reaped on drop. Never the system service.
pub struct Prometheus {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
    stderr_tail: Arc<Mutex<Vec<String>>>,
}

impl Prometheus {
    /// Starts prometheus with `config` (YAML) and extra flags, and waits until it
    /// logs that it is ready (its own signal, read from stderr).
    pub fn start(binary: &Path, config: &str, extra: &[&str]) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("tfo-prometheus-")
            .tempdir()
            .unwrap();
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = free_port();
        let mut child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning prometheus");
        let stderr = child.stderr.take().unwrap();
        let (ready_tx, ready_rx) = mpsc::channel();
        let tail = Arc::new(Mutex::new(Vec::new()));
        {
            let tail = tail.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("Server is ready to receive web requests") {
                        let _ = ready_tx.send(());
                    }
                    let mut t = tail.lock().unwrap();
                    t.push(line);
                    if t.len() > 200 {
                        t.remove(0);
                    }
                }
            });
        }
        let mut p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
            stderr_tail: tail,
        };
        if ready_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let status = p.child.try_wait().ok().flatten();
            panic!(
                "prometheus did not become ready (exit: {status:?}); its log:\n{}",
                p.log()
            );
        }
        p
    }

    /// The last lines prometheus logged.
    pub fn log(&self) -> String {
        self.stderr_tail.lock().unwrap().join("\n")
    }

    /// Runs an instant query; `(labels, value)` per result series.
    pub fn query(&self, expr: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let url = format!("{}/api/v1/query?query={}", self.url, encode_query(expr));
        let resp = get(&url, &[]);
        assert_eq!(resp.status, 200, "query {expr}: {}", resp.text());
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(v["status"], "success", "{v}");
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                let value: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
                (labels, value)
            })
            .collect()
    }

    /// The single value of `expr`, polling until it equals `want` or `timeout`
    /// passes (prometheus has no push notification for "scraped"; the poll is
    /// bounded and each round is a real query).
    pub fn wait_for_value(&self, expr: &str, want: f64, timeout: Duration) -> f64 {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.query(expr);
            if let [(_, v)] = got.as_slice() {
                if *v == want {
                    return *v;
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "{expr}: wanted {want} within {timeout:?}, last answer {got:?}; prometheus log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a PromQL expression for a query string.
pub fn encode_query(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---- independent decoders for the remote-write body ----

/// Decodes a Snappy block (format_description.txt of google/snappy): a varint
/// with the uncompressed length, then literal and copy elements.
pub fn snappy_block_decode(input: &[u8]) -> Result<Vec<u8>, String> {
    let (len, mut pos) = varint(input, 0)?;
    let mut out: Vec<u8> = Vec::with_capacity(len as usize);
    while pos < input.len() {
        let tag = input[pos];
        pos += 1;
        match tag & 0b11 {
            0 => {
                // Literal: length-1 in the upper 6 bits, or in 1-4 following bytes.
                let mut n = (tag >> 2) as usize;
                if n >= 60 {
                    let bytes = n - 59;
                    let mut v = 0usize;
                    for i in 0..bytes {
                        v |= (*input.get(pos + i).ok_or("truncated literal length")? as usize)
                            << (8 * i);
                    }
                    pos += bytes;
                    n = v;
                }
                let n = n + 1;
                let lit = input.get(pos..pos + n).ok_or("truncated literal")?;
                out.extend_from_slice(lit);
                pos += n;
            }
            kind => {
                let (length, offset) = match kind {
                    1 => {
                        let b = *input.get(pos).ok_or("truncated copy")? as usize;
                        pos += 1;
                        (
                            ((tag >> 2) & 0b111) as usize + 4,
                            ((tag as usize >> 5) << 8) | b,
                        )
                    }
                    2 => {
                        let b = input.get(pos..pos + 2).ok_or("truncated copy")?;
                        pos += 2;
                        (
                            (tag >> 2) as usize + 1,
                            u16::from_le_bytes([b[0], b[1]]) as usize,
                        )
                    }
                    _ => {
                        let b = input.get(pos..pos + 4).ok_or("truncated copy")?;
                        pos += 4;
                        (
                            (tag >> 2) as usize + 1,
                            u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
                        )
                    }
                };
                if offset == 0 || offset > out.len() {
                    return Err(format!("bad copy offset {offset}"));
                }
                let start = out.len() - offset;
                for i in 0..length {
                    let b = out[start + i];
                    out.push(b);
                }
            }
        }
    }
    if out.len() as u64 != len {
        return Err(format!("decoded {} bytes, header said {len}", out.len()));
    }
    Ok(out)
}

fn varint(buf: &[u8], mut pos: usize) -> Result<(u64, usize), String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(pos).ok_or("truncated varint")?;
        pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((v, pos));
        }
    }
    Err("varint too long".into())
}

/// One protobuf field: number and value.
#[derive(Debug, Clone)]
pub enum Field {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(Vec<u8>),
}

/// Splits a protobuf message into its fields (protobuf "Encoding" guide: tag =
/// field_number << 3 | wire_type).
pub fn proto_fields(buf: &[u8]) -> Result<Vec<(u64, Field)>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let (tag, p) = varint(buf, pos)?;
        pos = p;
        let (num, wire) = (tag >> 3, tag & 7);
        let field = match wire {
            0 => {
                let (v, p) = varint(buf, pos)?;
                pos = p;
                Field::Varint(v)
            }
            1 => {
                let b = buf.get(pos..pos + 8).ok_or("truncated fixed64")?;
                pos += 8;
                Field::Fixed64(b.try_into().unwrap())
            }
            2 => {
                let (n, p) = varint(buf, pos)?;
                pos = p;
                let b = buf.get(pos..pos + n as usize).ok_or("truncated bytes")?;
                pos += n as usize;
                Field::Bytes(b.to_vec())
            }
            w => return Err(format!("unexpected wire type {w} for field {num}")),
        };
        out.push((num, field));
    }
    Ok(out)
}

/// A decoded `prometheus.TimeSeries`: labels in wire order and `(value, ts)`.
#[derive(Debug, Clone, PartialEq)]
pub struct WireSeries {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(f64, i64)>,
}

impl WireSeries {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes a `prometheus.WriteRequest` with the field numbers of prompb's
/// remote.proto / types.proto, rejecting anything the 1.0 spec does not define.
pub fn decode_write_request(buf: &[u8]) -> Result<Vec<WireSeries>, String> {
    let mut series = Vec::new();
    for (num, f) in proto_fields(buf)? {
        let Field::Bytes(ts) = f else {
            return Err(format!("WriteRequest field {num} is not length-delimited"));
        };
        if num != 1 {
            return Err(format!("WriteRequest has field {num}"));
        }
        let mut s = WireSeries {
            labels: vec![],
            samples: vec![],
        };
        for (num, f) in proto_fields(&ts)? {
            let Field::Bytes(b) = f else {
                return Err(format!("TimeSeries field {num} is not length-delimited"));
            };
            match num {
                1 => {
                    let (mut name, mut value) = (String::new(), String::new());
                    for (n, f) in proto_fields(&b)? {
                        match (n, f) {
                            (1, Field::Bytes(v)) => name = String::from_utf8(v).unwrap(),
                            (2, Field::Bytes(v)) => value = String::from_utf8(v).unwrap(),
                            other => return Err(format!("Label field {other:?}")),
                        }
                    }
                    s.labels.push((name, value));
                }
                2 => {
                    let (mut value, mut ts) = (0.0, 0i64);
                    for (n, f) in proto_fields(&b)? {
                        match (n, f) {
                            (1, Field::Fixed64(v)) => value = f64::from_le_bytes(v),
                            (2, Field::Varint(v)) => ts = v as i64,
                            other => return Err(format!("Sample field {other:?}")),
                        }
                    }
                    s.samples.push((value, ts));
                }
                n => return Err(format!("TimeSeries has field {n}")),
            }
        }
        series.push(s);
    }
    Ok(series)
}

// ---- batches ----

/// A batch from service `tfo-test` on instance `i-1`.
pub fn batch(metrics: Vec<Metric>) -> Batch {
    Batch {
        resource: Resource {
            attributes: vec![
                KeyValue::new("service.name", "tfo-test"),
                KeyValue::new("service.instance.id", "i-1"),
            ]
            .into(),
        },
        metrics: metrics.into(),
        ..Batch::default()
    }
}

/// A gauge with a description.
pub fn gauge(
    name: &str,
    desc: &str,
    unit: &str,
    value: f64,
    time: u64,
    attrs: Vec<KeyValue>,
) -> Metric {
    let mut m = Metric::gauge(name, unit, time, value, attrs);
    m.description = desc.into();
    m
}

/// A monotonic sum (cumulative or delta) with a description.
pub fn counter(
    name: &str,
    desc: &str,
    temporality: Temporality,
    start: u64,
    time: u64,
    value: PointValue,
) -> Metric {
    let mut m = Metric::counter(name, "", start, time, 0.0, vec![]);
    m.description = desc.into();
    m.temporality = temporality;
    m.points[0].value = value;
    m
}

/// A cumulative histogram with bounds [0.1, 0.5, 1] seconds.
pub fn histogram(
    name: &str,
    desc: &str,
    counts: [u64; 4],
    sum: f64,
    start: u64,
    time: u64,
) -> Metric {
    let mut m = Metric::gauge(name, "s", time, 0.0, vec![]);
    m.description = desc.into();
    m.kind = MetricKind::Histogram;
    m.temporality = Temporality::Cumulative;
    m.points = vec![DataPoint {
        attributes: RVec::new(),
        start_time_unix_nano: start,
        time_unix_nano: time,
        value: PointValue::Histogram(HistogramValue {
            count: counts.iter().sum(),
            sum: ROption::RSome(sum),
            bounds: vec![0.1, 0.5, 1.0].into(),
            bucket_counts: counts.to_vec().into(),
            min: ROption::RNone,
            max: ROption::RNone,
        }),
    }]
    .into();
    m
}
