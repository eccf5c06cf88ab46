//! Shared by the integration tests: a fake host driving the plugin through its
//! exported root module (as the agent does), real `influxd` and `victoria-metrics`
//! processes on free loopback ports with temp data dirs, HTTP helpers and batches.
#![allow(dead_code)] // each test binary uses a different part

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tfo_plugin_api::{
    __private::abi_stable::std_types::{ROption, RResult, RVec},
    AnyValue, Batch, CreateError, DataPoint, HistogramValue, KeyValue, LogRecord, Metric,
    MetricKind, PluginInstanceBox, PluginModRef, PointValue, Resource,
};
use tfo_plugin_common::http::{ClientOptions, HttpClient, Method, Request, Response};

pub use tfo_plugin_api::testing::TestHost;

/// The plugin's root module, as the host would load it.
pub fn module() -> PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_influxdb)
}

/// Calls the plugin's `create` as the agent does.
pub fn create(h: &TestHost, config: &str) -> RResult<PluginInstanceBox, CreateError> {
    tfo_plugin_api::testing::create(module(), h, "influx", config).into()
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

/// Sends one request from the test (its own runtime, not the plugin's).
pub fn send(req: Request) -> Response {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = HttpClient::new(&ClientOptions::default()).unwrap();
    rt.block_on(client.send(req)).expect("test request")
}

/// GET `url`.
pub fn get(url: &str) -> Response {
    send(Request::new(Method::GET, url))
}

/// POST a form-encoded body to `url`.
pub fn post_form(url: &str, form: &str) -> Response {
    send(
        Request::new(Method::POST, url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.as_bytes().to_vec()),
    )
}

/// Percent-encodes a query or form value.
pub fn enc(s: &str) -> String {
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

/// The program's path, or `None` after printing why the test skips; with
/// `TFO_REQUIRE_SERVICES=1` a missing program fails the test instead.
pub fn require_program(name: &str, package: &str, why: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let msg =
            format!("`{name}` not found in PATH (Debian package `{package}`); skipping {why}");
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

/// A server process of the test's own (temp dir, free ports), killed and reaped on
/// drop; never the system service.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    _dir: tempfile::TempDir,
    log_tail: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Spawns `cmd`, reads its stderr (and stdout) and waits until a line contains
    /// `ready` (the server's own signal).
    fn spawn(mut cmd: Command, url: String, dir: tempfile::TempDir, ready: &'static str) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning the server");
        let (tx, rx) = mpsc::channel();
        let tail = Arc::new(Mutex::new(Vec::new()));
        let streams: Vec<Box<dyn std::io::Read + Send>> = vec![
            Box::new(child.stderr.take().unwrap()),
            Box::new(child.stdout.take().unwrap()),
        ];
        for stream in streams {
            let tail = tail.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if line.contains(ready) {
                        let _ = tx.send(());
                    }
                    let mut t = tail.lock().unwrap();
                    t.push(line);
                    if t.len() > 200 {
                        t.remove(0);
                    }
                }
            });
        }
        let mut s = Server {
            child,
            url,
            _dir: dir,
            log_tail: tail,
        };
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let status = s.child.try_wait().ok().flatten();
            panic!(
                "the server did not log {ready:?} (exit: {status:?}); its log:\n{}",
                s.log()
            );
        }
        s
    }

    /// The last lines the server logged.
    pub fn log(&self) -> String {
        self.log_tail.lock().unwrap().join("\n")
    }

    /// Debian's InfluxDB 1.x (`influxd`, package `influxdb`) with a generated
    /// config: RPC and HTTP on free loopback ports, data in a temp dir, no
    /// reporting, no internal monitor database; `max_body_size` as in the `[http]`
    /// section (0 = no limit).
    pub fn influxd(binary: &Path, auth_enabled: bool, max_body_size: usize) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("tfo-influxd-")
            .tempdir()
            .unwrap();
        let d = dir.path().display();
        let (rpc, http) = (free_port(), free_port());
        let conf = format!(
            r#"reporting-enabled = false
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[http]
  bind-address = "127.0.0.1:{http}"
  auth-enabled = {auth_enabled}
  log-enabled = false
  max-body-size = {max_body_size}
"#
        );
        let path = dir.path().join("influxdb.conf");
        std::fs::write(&path, conf).unwrap();
        let mut cmd = Command::new(binary);
        cmd.arg("run").arg("-config").arg(&path);
        // INFLUXDB_* variables would override the file; the test owns the config.
        for (k, _) in std::env::vars() {
            if k.starts_with("INFLUXDB_") {
                cmd.env_remove(k);
            }
        }
        Server::spawn(
            cmd,
            format!("http://127.0.0.1:{http}"),
            dir,
            "Listening on HTTP",
        )
    }

    /// Debian's VictoriaMetrics single-node binary on a free loopback port with a
    /// temp data dir.
    pub fn victoria_metrics(binary: &Path) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("tfo-vm-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let mut cmd = Command::new(binary);
        cmd.arg(format!(
            "-storageDataPath={}",
            dir.path().join("data").display()
        ))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg("-loggerLevel=INFO");
        // It logs this line just before it binds the port, so the test then
        // polls `/health` (bounded) until the listener answers.
        let s = Server::spawn(
            cmd,
            format!("http://127.0.0.1:{port}"),
            dir,
            "starting http server at http://",
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = HttpClient::new(&ClientOptions::default()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        loop {
            let r =
                rt.block_on(client.send(Request::new(Method::GET, format!("{}/health", s.url))));
            if matches!(&r, Ok(resp) if resp.status == 200) {
                return s;
            }
            if Instant::now() >= deadline {
                panic!("victoria-metrics /health: {r:?}\nlog:\n{}", s.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// InfluxQL through `POST /query` (statements that change things need POST);
    /// the JSON answer.
    pub fn influxql(&self, db: &str, q: &str, auth: Option<(&str, &str)>) -> serde_json::Value {
        let mut url = format!("{}/query?epoch=ns", self.url);
        if !db.is_empty() {
            url.push_str(&format!("&db={}", enc(db)));
        }
        let mut req = Request::new(Method::POST, url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("q={}", enc(q)).into_bytes());
        if let Some((u, p)) = auth {
            req = req.header(
                "Authorization",
                tfo_plugin_common::auth::basic_auth_value(u, p),
            );
        }
        let resp = send(req);
        assert_eq!(resp.status, 200, "{q}: {}", resp.text());
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert!(
            v["results"][0].get("error").is_none(),
            "{q}: {v}\nlog:\n{}",
            self.log()
        );
        v
    }

    /// VictoriaMetrics: every series matching `selector` as exported by
    /// `/api/v1/export` (one JSON object per line), after `/internal/force_flush`;
    /// polls (bounded) until `want` series are there, since freshly written rows
    /// become searchable asynchronously and there is no notification for it.
    pub fn vm_export(&self, selector: &str, want: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let _ = get(&format!("{}/internal/force_flush", self.url));
            let resp = get(&format!(
                "{}/api/v1/export?match[]={}",
                self.url,
                enc(selector)
            ));
            assert_eq!(resp.status, 200, "{}", resp.text());
            let series: Vec<serde_json::Value> = resp
                .text()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if series.len() >= want || Instant::now() >= deadline {
                return series;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- batches ----

/// A batch from service `tfo-test` on host `h 1`.
pub fn batch(metrics: Vec<Metric>) -> Batch {
    Batch {
        resource: Resource {
            attributes: vec![
                KeyValue::new("service.name", "tfo-test"),
                KeyValue::new("host.name", "h 1"),
            ]
            .into(),
        },
        metrics: metrics.into(),
        ..Batch::default()
    }
}

/// A gauge with one point.
pub fn gauge(name: &str, value: PointValue, time: u64, attrs: Vec<KeyValue>) -> Metric {
    let mut m = Metric::gauge(name, "", time, 0.0, attrs);
    m.points[0].value = value;
    m
}

/// A cumulative histogram with bounds [0.1, 0.5, 1].
pub fn histogram(name: &str, counts: [u64; 4], sum: f64, time: u64) -> Metric {
    let mut m = Metric::gauge(name, "s", time, 0.0, vec![]);
    m.kind = MetricKind::Histogram;
    m.points = vec![DataPoint {
        attributes: RVec::new(),
        start_time_unix_nano: 0,
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

/// A log record.
pub fn log(body: &str, severity: u8, time: u64, attrs: Vec<KeyValue>) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: time,
        severity_number: severity,
        severity_text: "".into(),
        body: AnyValue::Str(body.into()),
        attributes: attrs.into(),
        trace_id: [0; 16],
        span_id: [0; 8],
    }
}

/// Tag values and string fields with every character line protocol escapes.
pub const TRICKY: &str = r#"a b,c=d"e\f"#;
