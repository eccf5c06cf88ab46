//! Test harness shared by the mqtt tests: drives the plugin through its exported
//! root module, the way the agent does, with a fake host whose `emit` records
//! batches (and can answer `Full`); runs Debian's real `mosquitto` broker on a free
//! loopback port with a generated configuration (password file, TLS listeners,
//! persistence); and runs `mosquitto_pub` / `mosquitto_sub` as independent peers.
//!
//! Programs are looked up on `PATH` and in `/usr/sbin`. When one is missing, a test
//! prints what it skips and returns, unless `TFO_REQUIRE_SERVICES=1`, in which case
//! it fails (`apt-get install mosquitto mosquitto-clients`).

#![allow(dead_code)] // each test binary uses a different part

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    sync::{mpsc, Arc, Condvar, Mutex},
    time::{Duration, Instant},
};

use tfo_plugin_api::{AnyValue, Batch, CreateError, PluginInstanceBox, PluginModRef, PointValue};

pub use tfo_plugin_api::testing::TestHost;

/// The plugin's root module.
pub fn module() -> PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_mqtt)
}

/// One emitted point, flattened for assertions: (name, value as f64, attributes
/// without `mqtt.topic`, topic).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: String,
    pub value: f64,
    pub time: u64,
    pub attrs: Vec<(String, String)>,
    pub topic: String,
}

/// What the MQTT tests read from the recording host: emitted points, flattened.
pub trait PointsExt {
    /// Every point emitted so far, in order.
    fn points(&self) -> Vec<Point>;
    /// Waits (condition variable, no sleeping) until at least `n` points were
    /// emitted; returns all of them.
    fn wait_for_points(&self, n: usize, timeout: Duration) -> Vec<Point>;
}

impl PointsExt for TestHost {
    fn points(&self) -> Vec<Point> {
        flatten(&self.batches())
    }

    fn wait_for_points(&self, n: usize, timeout: Duration) -> Vec<Point> {
        let ok = self.wait_until(timeout, |batches, _| flatten(batches).len() >= n);
        let points = self.points();
        assert!(
            ok,
            "expected {n} emitted point(s) within {timeout:?}, got {points:?}; logs: {:?}",
            self.logs()
        );
        points
    }
}

fn flatten(batches: &[Batch]) -> Vec<Point> {
    let mut out = Vec::new();
    for b in batches {
        for m in b.metrics.iter() {
            for p in m.points.iter() {
                let value = match &p.value {
                    PointValue::Double(v) => *v,
                    PointValue::Int(i) => *i as f64,
                    _ => f64::NAN,
                };
                let text = |v: &AnyValue| match v {
                    AnyValue::Str(s) => s.to_string(),
                    AnyValue::Int(i) => i.to_string(),
                    AnyValue::Double(d) => d.to_string(),
                    AnyValue::Bool(b) => b.to_string(),
                    AnyValue::Bytes(b) => format!("{b:?}"),
                };
                let mut topic = String::new();
                let mut attrs = Vec::new();
                for kv in p.attributes.iter() {
                    if kv.key.as_str() == "mqtt.topic" {
                        topic = text(&kv.value);
                    } else {
                        attrs.push((kv.key.to_string(), text(&kv.value)));
                    }
                }
                out.push(Point {
                    name: m.name.to_string(),
                    value,
                    time: p.time_unix_nano,
                    attrs,
                    topic,
                });
            }
        }
    }
    out
}

/// Calls the plugin's `create` as the agent does.
pub fn create(host: &TestHost, config: &str) -> Result<PluginInstanceBox, CreateError> {
    tfo_plugin_api::testing::create(module(), host, "mqtt", config)
}

/// Creates and starts an instance; panics with the error otherwise.
pub fn start(host: &TestHost, config: &str) -> PluginInstanceBox {
    tfo_plugin_api::testing::create_started(module(), host, "mqtt", config)
}

/// Finds a program on `PATH` or in `/usr/sbin`. Missing: `None` after printing
/// what is skipped, or a panic when `TFO_REQUIRE_SERVICES=1`.
pub fn require(program: &str, test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(program))
        .find(|p| p.is_file());
    if found.is_none() {
        let why = format!(
            "{test}: skipped: `{program}` is not installed (apt-get install mosquitto mosquitto-clients)"
        );
        if std::env::var("TFO_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{why}, and TFO_REQUIRE_SERVICES=1");
        }
        eprintln!("{why}");
    }
    found
}

/// All three programs the broker tests use.
pub fn tools(test: &str) -> Option<Tools> {
    Some(Tools {
        mosquitto: require("mosquitto", test)?,
        publisher: require("mosquitto_pub", test)?,
        subscriber: require("mosquitto_sub", test)?,
        passwd: require("mosquitto_passwd", test)?,
    })
}

/// Paths of the mosquitto programs.
#[derive(Clone, Debug)]
pub struct Tools {
    pub mosquitto: PathBuf,
    pub publisher: PathBuf,
    pub subscriber: PathBuf,
    pub passwd: PathBuf,
}

/// A free loopback TCP port (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// PEM files of a generated CA, a broker certificate for `localhost` and
/// `127.0.0.1`, and a client certificate, all signed by the CA.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Another CA, which signed nothing here.
    pub other_ca: PathBuf,
}

impl Pki {
    /// Generates the files in `dir`.
    pub fn generate(dir: &Path) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "tfo mqtt test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();

        let server_key = KeyPair::generate().unwrap();
        let mut sp = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        sp.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        sp.distinguished_name.push(DnType::CommonName, "localhost");
        let server_cert = sp.signed_by(&server_key, &ca_cert, &ca_key).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut cp = CertificateParams::new(Vec::<String>::new()).unwrap();
        cp.distinguished_name.push(DnType::CommonName, "tfo-agent");
        let client_cert = cp.signed_by(&client_key, &ca_cert, &ca_key).unwrap();

        let other_key = KeyPair::generate().unwrap();
        let mut op = CertificateParams::new(Vec::<String>::new()).unwrap();
        op.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        op.distinguished_name
            .push(DnType::CommonName, "unrelated CA");
        let other = op.self_signed(&other_key).unwrap();

        let write = |name: &str, text: String| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        Pki {
            ca: write("ca.pem", ca_cert.pem()),
            server_cert: write("server.pem", server_cert.pem()),
            server_key: write("server.key", server_key.serialize_pem()),
            client_cert: write("client.pem", client_cert.pem()),
            client_key: write("client.key", client_key.serialize_pem()),
            other_ca: write("other-ca.pem", other.pem()),
        }
    }
}

/// How to configure the broker.
#[derive(Default)]
pub struct BrokerOptions {
    /// Keep sessions and queued messages across restarts (on disk in the scratch
    /// directory).
    pub persistence: bool,
    /// Require this user and password (a password file made with
    /// `mosquitto_passwd`); anonymous clients are refused.
    pub user: Option<(String, String)>,
    /// Add a TLS listener and a mutual-TLS listener with these files.
    pub tls: bool,
}

/// A mosquitto broker of one test: its scratch directory, ports and process.
pub struct Broker {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub tls_port: u16,
    pub mtls_port: u16,
    pub pki: Option<Pki>,
    pub tools: Tools,
    conf: PathBuf,
    child: Option<Child>,
    log: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Broker {
    /// Writes the configuration and starts the broker; `None` (after printing why)
    /// when mosquitto is not installed.
    pub fn start(test: &str, opts: BrokerOptions) -> Option<Broker> {
        let tools = tools(test)?;
        let dir = tempfile::Builder::new()
            .prefix("tfo-mqtt-test-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let mut conf = String::new();
        // mosquitto started as root drops to the `mosquitto` user, which could not
        // read the scratch directory; `user root` keeps it as it is.
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } == 0 {
            conf.push_str("user root\n");
        }
        conf.push_str("log_dest stderr\nlog_type all\nper_listener_settings false\n");
        conf.push_str(&format!("listener {port} 127.0.0.1\n"));
        match &opts.user {
            Some((user, password)) => {
                let file = dir.path().join("passwd");
                let status = Command::new(&tools.passwd)
                    .arg("-c")
                    .arg("-b")
                    .arg(&file)
                    .arg(user)
                    .arg(password)
                    .status()
                    .unwrap();
                assert!(status.success(), "mosquitto_passwd failed");
                conf.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    file.display()
                ));
            }
            None => conf.push_str("allow_anonymous true\n"),
        }
        let (mut tls_port, mut mtls_port, mut pki) = (0, 0, None);
        if opts.tls {
            let p = Pki::generate(dir.path());
            tls_port = free_port();
            mtls_port = free_port();
            for (port, require) in [(tls_port, false), (mtls_port, true)] {
                conf.push_str(&format!(
                    "listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {require}\n",
                    p.ca.display(),
                    p.server_cert.display(),
                    p.server_key.display()
                ));
            }
            pki = Some(p);
        }
        if opts.persistence {
            conf.push_str(&format!(
                "persistence true\npersistence_location {}/\nautosave_interval 1\n",
                dir.path().display()
            ));
        }
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut b = Broker {
            dir,
            port,
            tls_port,
            mtls_port,
            pki,
            tools,
            conf: conf_path,
            child: None,
            log: Default::default(),
        };
        b.spawn();
        Some(b)
    }

    /// Starts the process and waits for its "running" log line.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let mark = self.log.0.lock().unwrap().len();
        let mut child = Command::new(&self.tools.mosquitto)
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning mosquitto");
        let stderr = child.stderr.take().unwrap();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let (m, c) = &*log;
                m.lock().unwrap().push(line);
                c.notify_all();
            }
        });
        self.child = Some(child);
        self.wait_log_after(mark, " running", Duration::from_secs(10));
    }

    /// Waits for a broker log line containing `needle` after line `mark`.
    pub fn wait_log_after(&self, mark: usize, needle: &str, timeout: Duration) -> String {
        let (m, c) = &*self.log;
        let deadline = Instant::now() + timeout;
        let mut lines = m.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().skip(mark).find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "mosquitto did not log {needle:?} within {timeout:?}: {lines:#?}"
            );
            lines = c.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Number of broker log lines so far.
    pub fn log_mark(&self) -> usize {
        self.log.0.lock().unwrap().len()
    }

    /// Sends SIGTERM (mosquitto saves its persistence file on the way out) and
    /// waits for the process to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            child.wait().unwrap();
        }
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        let pid = self.child.as_ref().expect("broker not running").id();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    }

    /// Lets a paused broker go on (SIGCONT).
    pub fn resume(&self) {
        let pid = self.child.as_ref().expect("broker not running").id();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    }

    /// `tcp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Runs `mosquitto_pub` (QoS `qos`, fresh client id) and checks it succeeded.
    pub fn publish(&self, topic: &str, payload: &str, qos: u8) {
        let out = Command::new(&self.tools.publisher)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-t", topic, "-m", payload, "-q", &qos.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mosquitto_pub failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `mosquitto_sub` on `filter` for `count` messages and waits until it
    /// is subscribed.
    pub fn subscribe(&self, filter: &str, count: usize) -> Subscriber {
        self.subscribe_with(filter, count, &[])
    }

    /// [`Self::subscribe`] with extra `mosquitto_sub` arguments (credentials...).
    /// Subscribed means the broker logged its SUBACK to that client.
    pub fn subscribe_with(&self, filter: &str, count: usize, extra: &[&str]) -> Subscriber {
        self.subscribe_as(filter, count, "%t\\t%p", extra)
    }

    /// [`Self::subscribe`] for binary payloads: `mosquitto_sub` prints each payload
    /// as lowercase hex (`%x`); [`Subscriber::binary_messages`] turns it back into
    /// bytes.
    pub fn subscribe_binary(&self, filter: &str, count: usize) -> Subscriber {
        self.subscribe_as(filter, count, "%t\\t%x", &[])
    }

    fn subscribe_as(&self, filter: &str, count: usize, format: &str, extra: &[&str]) -> Subscriber {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let id = format!(
            "test-sub-{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mark = self.log_mark();
        let sub = Subscriber::start(
            &self.tools.subscriber,
            self.port,
            &id,
            filter,
            count,
            format,
            extra,
        );
        self.wait_log_after(
            mark,
            &format!("Sending SUBACK to {id}"),
            Duration::from_secs(10),
        );
        sub
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid (a paused broker must go on to die).
            unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `mosquitto_sub` process printing `topic<TAB>payload` (or hex payload) per
/// message.
pub struct Subscriber {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Subscriber {
    /// Spawns `mosquitto_sub -C count -q 1 -F format` with client id `id`.
    fn start(
        program: &Path,
        port: u16,
        id: &str,
        filter: &str,
        count: usize,
        format: &str,
        extra: &[&str],
    ) -> Subscriber {
        let mut child = Command::new(program)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-i", id])
            .args(["-t", filter, "-q", "1", "-W", "20"])
            .args(["-C", &count.to_string(), "-F", format])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Subscriber { child, lines: rx }
    }

    /// The next `n` messages as (topic, payload).
    pub fn messages(&mut self, n: usize, timeout: Duration) -> Vec<(String, String)> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.is_empty() => {}
                Ok(l) => {
                    let (t, p) = l.split_once('\t').unwrap_or((&l, ""));
                    out.push((t.to_string(), p.to_string()));
                }
                Err(e) => panic!("got {} of {n} message(s) ({e}): {out:?}", out.len()),
            }
        }
        out
    }
}

impl Subscriber {
    /// The next `n` messages of a [`Broker::subscribe_binary`] subscriber as (topic,
    /// payload bytes).
    pub fn binary_messages(&mut self, n: usize, timeout: Duration) -> Vec<(String, Vec<u8>)> {
        self.messages(n, timeout)
            .into_iter()
            .map(|(topic, hex)| {
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .unwrap_or_else(|e| panic!("mosquitto_sub printed bad hex {hex:?}: {e}"));
                (topic, bytes)
            })
            .collect()
    }
}

/// True when `python3` can import `modules`. When it cannot, prints what is skipped
/// and why and returns false, unless `TFO_REQUIRE_SERVICES=1`, which makes it a
/// failure (CI installs the packages).
pub fn python_has(modules: &str, what: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        let msg = format!(
            "{what}: skipped: python3 cannot import {modules} (pip install opentelemetry-proto)"
        );
        if std::env::var("TFO_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{msg}, and TFO_REQUIRE_SERVICES=1");
        }
        eprintln!("{msg}");
    }
    ok
}

/// Runs a Python script from this crate's `tests/` directory with `args`; panics
/// with its stderr when it fails; returns its stdout.
pub fn run_python(script: &str, args: &[&std::ffi::OsStr]) -> String {
    let path = format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{script} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON config of an instance for `broker` with short timeouts and back-off,
/// plus `extra` keys (JSON object members without braces; they win over the
/// defaults here).
pub fn config(broker: &str, client_id: &str, extra: &str) -> String {
    let mut base = serde_json::json!({
        "broker": broker,
        "client_id": client_id,
        "connect_timeout": "2s",
        "publish_timeout": "5s",
        "reconnect_min_backoff": "100ms",
        "reconnect_max_backoff": "500ms",
    });
    let extra: serde_json::Value = serde_json::from_str(&format!("{{{extra}}}"))
        .unwrap_or_else(|e| panic!("bad extra config {extra:?}: {e}"));
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base.to_string()
}
