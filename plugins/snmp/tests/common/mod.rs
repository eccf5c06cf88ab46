//! Test support: a private `snmpd` per test (Debian's net-snmp agent, never the
//! system service), `snmpwalk` runs parsed from `-On -Oq -Ot` output, a UDP relay
//! that counts, drops or corrupts datagrams, and a small fake host driving the
//! plugin through its exported root module.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    net::UdpSocket,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc, Arc, Mutex,
    },
    thread,
    time::Duration,
};

use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, AnyValue, Batch, DataPoint, HealthReport, Metric,
    PluginInstanceBox, PluginModRef, PointValue,
};
use tfo_snmp::mibs::{self, ObjKind, Render};

pub use tfo_plugin_api::testing::TestHost;

/// The plugin's root module, linked into this test binary.
pub fn module() -> PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_snmp)
}

/// Calls the plugin's `create` as the agent does.
pub fn create(
    h: &TestHost,
    config: &str,
) -> RResult<PluginInstanceBox, tfo_plugin_api::CreateError> {
    tfo_plugin_api::testing::create(module(), h, "snmp", config).into()
}

/// A started instance.
pub fn instance(h: &TestHost, config: &serde_json::Value) -> PluginInstanceBox {
    match create(h, &config.to_string()) {
        RResult::ROk(mut i) => {
            assert!(i.start().is_ok());
            i
        }
        RResult::RErr(e) => panic!("create failed: {e:?}"),
    }
}

/// One collection, which must succeed.
pub fn collect(inst: &mut PluginInstanceBox) -> Batch {
    match inst.collect() {
        RResult::ROk(b) => b,
        RResult::RErr(e) => panic!("collect failed: {e}"),
    }
}

/// The instance's health.
pub fn health(inst: &PluginInstanceBox) -> HealthReport {
    inst.health()
}

/// Skips (returns false) when net-snmp's programs are missing, unless
/// TFO_REQUIRE_SERVICES=1, in which case the test fails.
pub fn have_net_snmp() -> bool {
    let found = ["snmpd", "snmpwalk"].iter().all(|p| {
        let dirs = [
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
            "/usr/local/sbin",
            "/usr/local/bin",
        ];
        dirs.iter()
            .any(|d| std::path::Path::new(d).join(p).exists())
    });
    if !found {
        if std::env::var("TFO_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("snmpd/snmpwalk not installed (apt-get install snmpd snmp) and TFO_REQUIRE_SERVICES=1");
        }
        eprintln!("SKIP: snmpd or snmpwalk not installed (apt-get install snmpd snmp)");
    }
    found
}

fn program(name: &str) -> PathBuf {
    for d in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ] {
        let p = std::path::Path::new(d).join(name);
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(name)
}

/// The v3 users every test agent has.
pub const AUTH_USER: &str = "authsha";
pub const AUTH_PASS: &str = "authpass123";
pub const PRIV_USER: &str = "privsha256";
pub const PRIV_AUTH_PASS: &str = "authpass456";
pub const PRIV_PASS: &str = "privpass789";
pub const COMMUNITY: &str = "tfo-public";

/// A private snmpd on 127.0.0.1, killed on drop.
pub struct Snmpd {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Snmpd {
    /// Starts snmpd with a generated config: read-only community `tfo-public`, v3
    /// users `authsha` (authNoPriv, SHA) and `privsha256` (authPriv, SHA-256/AES),
    /// fixed sysName / sysLocation / sysContact / sysServices. Waits for its
    /// start-up line, which it prints once its transport is open.
    pub fn start() -> Snmpd {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let conf = dir.path().join("snmpd.conf");
            std::fs::write(
                &conf,
                format!(
                    "rocommunity {COMMUNITY} 127.0.0.1\n\
                     createUser {AUTH_USER} SHA \"{AUTH_PASS}\"\n\
                     createUser {PRIV_USER} SHA-256 \"{PRIV_AUTH_PASS}\" AES \"{PRIV_PASS}\"\n\
                     rouser {AUTH_USER} auth\n\
                     rouser {PRIV_USER} priv\n\
                     sysName tfo-test-agent\n\
                     sysLocation test-lab\n\
                     sysContact ops@example.com\n\
                     sysServices 72\n\
                     dontLogTCPWrappersConnects yes\n"
                ),
            )
            .unwrap();
            let port = free_udp_port();
            let mut child = Command::new(program("snmpd"))
                .args(["-f", "-Lo", "-C", "-I", "-smux", "-c"])
                .arg(&conf)
                .arg(format!("udp:127.0.0.1:{port}"))
                .env("MIBS", "")
                .env("SNMP_PERSISTENT_DIR", dir.path().join("persist"))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawning snmpd");
            let out = child.stdout.take().unwrap();
            let (tx, rx) = mpsc::channel();
            thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if line.starts_with("NET-SNMP version") {
                        let _ = tx.send(());
                    }
                }
            });
            if rx.recv_timeout(Duration::from_secs(10)).is_ok() {
                return Snmpd {
                    child,
                    port,
                    _dir: dir,
                };
            }
            // Port taken between the probe and snmpd's bind, or a slow start: retry.
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("snmpd did not start");
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Snmpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP port free right now on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What `snmpwalk -On -Oq -Ot` printed: numeric OID (no leading dot) -> value text
/// (strings unquoted).
pub type Walk = BTreeMap<String, String>;

/// snmpwalk credentials.
#[derive(Clone, Copy)]
pub enum Auth {
    V1,
    V2c,
    V3AuthNoPriv,
    V3AuthPriv,
}

impl Auth {
    pub fn snmpwalk_args(self) -> Vec<String> {
        let v: Vec<&str> = match self {
            Auth::V1 => vec!["-v1", "-c", COMMUNITY],
            Auth::V2c => vec!["-v2c", "-c", COMMUNITY],
            Auth::V3AuthNoPriv => vec![
                "-v3",
                "-l",
                "authNoPriv",
                "-u",
                AUTH_USER,
                "-a",
                "SHA",
                "-A",
                AUTH_PASS,
            ],
            Auth::V3AuthPriv => vec![
                "-v3",
                "-l",
                "authPriv",
                "-u",
                PRIV_USER,
                "-a",
                "SHA-256",
                "-A",
                PRIV_AUTH_PASS,
                "-x",
                "AES",
                "-X",
                PRIV_PASS,
            ],
        };
        v.into_iter().map(String::from).collect()
    }

    /// The plugin's target config for this agent.
    pub fn target(self, address: &str) -> serde_json::Value {
        match self {
            Auth::V1 => {
                serde_json::json!({"address": address, "version": "v1", "community": COMMUNITY})
            }
            Auth::V2c => {
                serde_json::json!({"address": address, "version": "v2c", "community": COMMUNITY})
            }
            Auth::V3AuthNoPriv => serde_json::json!({"address": address, "version": "v3", "user": {
                "username": AUTH_USER, "security_level": "authNoPriv", "auth_protocol": "SHA",
                "auth_password": AUTH_PASS}}),
            Auth::V3AuthPriv => serde_json::json!({"address": address, "version": "v3", "user": {
                "username": PRIV_USER, "security_level": "authPriv", "auth_protocol": "SHA256",
                "auth_password": PRIV_AUTH_PASS, "priv_protocol": "AES", "priv_password": PRIV_PASS}}),
        }
    }
}

/// Runs snmpwalk and parses its `-On -Oq -Ot` output.
pub fn snmpwalk(auth: Auth, address: &str, oid: &str) -> Walk {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(program("snmpwalk"))
        .args(auth.snmpwalk_args())
        .args(["-On", "-Oq", "-Ot", "-t", "2", "-r", "1"])
        .arg(address)
        .arg(oid)
        .env("MIBS", "")
        .env("HOME", home.path())
        .env("SNMP_PERSISTENT_DIR", home.path())
        .output()
        .expect("running snmpwalk");
    assert!(
        out.status.success(),
        "snmpwalk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_walk(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `-On -Oq` lines: `.OID VALUE`, where a value may continue on the next
/// lines (long hex strings), and strings are double-quoted with `\"` escapes.
pub fn parse_walk(text: &str) -> Walk {
    let mut entries: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with('.') && line.as_bytes().get(1).is_some_and(u8::is_ascii_digit) {
            let (oid, value) = line.split_once(' ').unwrap_or((line, ""));
            entries.push((oid[1..].to_string(), value.to_string()));
        } else if let Some(last) = entries.last_mut() {
            last.1.push('\n');
            last.1.push_str(line);
        }
    }
    entries
        .into_iter()
        // snmpwalk GETs the root of an empty subtree and prints the exception.
        .filter(|(_, v)| !v.starts_with("No Such ") && !v.starts_with("No more variables"))
        .map(|(o, v)| {
            let v = match v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
                None => v,
            };
            (o, v)
        })
        .collect()
}

/// `"A6 C5 16 59 9D 67 "` (snmpwalk's hex) as `a6:c5:16:59:9d:67`.
pub fn hex_to_colons(s: &str) -> String {
    s.split_whitespace()
        .map(|b| b.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(":")
}

/// A metric of a batch.
pub fn find<'a>(b: &'a Batch, name: &str) -> Option<&'a Metric> {
    b.metrics.iter().find(|m| m.name.as_str() == name)
}

/// A string attribute of a point.
pub fn attr<'a>(p: &'a DataPoint, key: &str) -> Option<&'a str> {
    p.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .and_then(|kv| match &kv.value {
            AnyValue::Str(s) => Some(s.as_str()),
            _ => None,
        })
}

/// A point's value as f64.
pub fn num(p: &DataPoint) -> f64 {
    match &p.value {
        PointValue::Int(i) => *i as f64,
        PointValue::Double(d) => *d,
        other => panic!("not a number: {other:?}"),
    }
}

/// A point's integer value (counters and gauges of integers), exactly.
pub fn int(p: &DataPoint) -> i128 {
    match &p.value {
        PointValue::Int(i) => i128::from(*i),
        PointValue::Double(d) => *d as i128,
        other => panic!("not a number: {other:?}"),
    }
}

/// The points of one target.
pub fn points_of<'a>(m: &'a Metric, target: &str) -> Vec<&'a DataPoint> {
    m.points
        .iter()
        .filter(|p| attr(p, "snmp.target") == Some(target))
        .collect()
}

/// `snmp.up` of a target.
pub fn up(b: &Batch, target: &str) -> Option<i128> {
    find(b, "snmp.up").and_then(|m| points_of(m, target).first().map(|p| int(p)))
}

/// How a relay treats the datagrams it forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayMode {
    /// Forward both ways.
    Forward,
    /// Swallow every request (a dead agent).
    Drop,
    /// Forward requests; corrupt every response with a seeded mutation.
    Mutate,
}

/// A UDP relay between the plugin and an agent, recording what passes.
pub struct Relay {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Vec<u8>>>>,
    /// The source address of each request (one per plugin socket).
    pub senders: Arc<Mutex<Vec<std::net::SocketAddr>>>,
    pub responses: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
    pub mutated: Arc<AtomicU64>,
}

impl Relay {
    pub fn start(upstream: u16, mode: RelayMode) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        back.connect(("127.0.0.1", upstream)).unwrap();
        front
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        back.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let port = front.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let senders = Arc::new(Mutex::new(Vec::new()));
        let responses = Arc::new(Mutex::new(Vec::new()));
        let mutated = Arc::new(AtomicU64::new(0));
        let client = Arc::new(Mutex::new(None));
        let (f2, b2) = (front.try_clone().unwrap(), back.try_clone().unwrap());
        let t1 = {
            let (stop, requests, senders, client) = (
                stop.clone(),
                requests.clone(),
                senders.clone(),
                client.clone(),
            );
            thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = front.recv_from(&mut buf) else {
                        continue;
                    };
                    *client.lock().unwrap() = Some(from);
                    senders.lock().unwrap().push(from);
                    requests.lock().unwrap().push(buf[..n].to_vec());
                    if mode != RelayMode::Drop {
                        let _ = back.send(&buf[..n]);
                    }
                }
            })
        };
        let t2 = {
            let (stop, responses, client, mutated) = (
                stop.clone(),
                responses.clone(),
                client.clone(),
                mutated.clone(),
            );
            thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                let mut rng = Rng(0x5eed_1234_abcd_0001);
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = b2.recv(&mut buf) else { continue };
                    responses.lock().unwrap().push(buf[..n].to_vec());
                    let out = if mode == RelayMode::Mutate {
                        mutated.fetch_add(1, Ordering::Relaxed);
                        mutate(&buf[..n], &mut rng)
                    } else {
                        buf[..n].to_vec()
                    };
                    if let Some(c) = *client.lock().unwrap() {
                        let _ = f2.send_to(&out, c);
                    }
                }
            })
        };
        Relay {
            port,
            requests,
            senders,
            responses,
            stop,
            threads: vec![t1, t2],
            mutated,
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// xorshift64*: a small deterministic generator for mutations.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// One random corruption of a datagram: flipped bits, overwritten length or tag
/// octets, truncation, insertion, deletion, duplication, or several at once.
pub fn mutate(input: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        if v.is_empty() {
            v.push(rng.next() as u8);
            continue;
        }
        let i = rng.below(v.len());
        match rng.below(9) {
            0 => v[i] ^= 1 << rng.below(8),
            1 => v[i] = rng.next() as u8,
            2 => v[i] = [0x00, 0x7f, 0x80, 0x81, 0x82, 0x84, 0xff][rng.below(7)],
            3 => v.truncate(i),
            4 => v.insert(i, rng.next() as u8),
            5 => {
                v.remove(i);
            }
            6 => {
                let end = (i + 1 + rng.below(16)).min(v.len());
                let chunk = v[i..end].to_vec();
                let at = rng.below(v.len());
                v.splice(at..at, chunk);
            }
            7 => {
                // Tag octets of the SMI types and PDUs.
                v[i] = [
                    0x02, 0x04, 0x05, 0x06, 0x30, 0x40, 0x41, 0x42, 0x43, 0x44, 0x46, 0x80, 0x81,
                    0x82, 0xa2, 0xa8,
                ][rng.below(16)]
            }
            _ => {
                let n = rng.below(8);
                v.extend((0..n).map(|_| rng.next() as u8));
            }
        }
    }
    v
}

/// Checks every system scalar and every ifTable / ifXTable cell the plugin
/// reported for `target` against two snmpwalk snapshots taken around the
/// collection, and that the plugin reported every cell snmpwalk saw.
pub fn compare_with_walks(b: &Batch, target: &str, before: &Walk, after: &Walk) -> usize {
    let mut checked = 0;
    let value_ok = |kind: ObjKind,
                    render: Render,
                    name: &str,
                    p: &tfo_plugin_api::DataPoint,
                    lo: &str,
                    hi: &str| {
        match kind {
            ObjKind::Counter | ObjKind::Gauge => {
                let (a, b): (i128, i128) = (lo.parse().unwrap(), hi.parse().unwrap());
                let v = int(p);
                assert!(
                    a.min(b) <= v && v <= a.max(b),
                    "{name}: plugin {v}, snmpwalk {lo} before and {hi} after"
                );
            }
            ObjKind::Seconds => {
                let (a, b): (f64, f64) = (lo.parse().unwrap(), hi.parse().unwrap());
                let v = (num(p) * 100.0).round();
                assert!(
                    a.min(b) <= v && v <= a.max(b),
                    "{name}: plugin {v} ticks, snmpwalk {lo} before and {hi} after"
                );
            }
            ObjKind::Info => {
                assert_eq!(num(p), 1.0);
                let want = match render {
                    Render::Hex => hex_to_colons(lo),
                    Render::Text => lo.strip_prefix('.').unwrap_or(lo).to_string(),
                };
                assert_eq!(attr(p, name), Some(want.as_str()), "{name}");
            }
            ObjKind::Label => unreachable!(),
        }
    };
    // SNMPv2-MIB system group.
    let sys = mibs::scalar_group("system").unwrap();
    for o in sys.objects {
        let oid = format!("1.3.6.1.2.1.1.{}.0", o.sub);
        let plugin = find(b, o.name).map(|m| points_of(m, target));
        match (before.get(&oid), plugin) {
            (None, None) => {}
            (Some(lo), Some(ps)) => {
                assert_eq!(ps.len(), 1, "{}", o.name);
                value_ok(o.kind, o.render, o.name, ps[0], lo, &after[&oid]);
                checked += 1;
            }
            (w, p) => panic!("{}: snmpwalk {w:?}, plugin {p:?}", o.name),
        }
    }
    // IF-MIB ifTable and ifXTable: every column the plugin maps, every row.
    for t in ["ifTable", "ifXTable"].map(|n| mibs::table(n).unwrap()) {
        let entry: String = t
            .entry
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(".");
        for c in t.columns.iter().filter(|c| c.kind != ObjKind::Label) {
            let prefix = format!("{entry}.{}.", c.sub);
            let rows: Vec<(&String, &String)> = before
                .iter()
                .filter(|(o, _)| o.starts_with(&prefix))
                .collect();
            let points = find(b, c.name)
                .map(|m| points_of(m, target))
                .unwrap_or_default();
            assert_eq!(
                points.len(),
                rows.len(),
                "{}: rows of the plugin vs snmpwalk",
                c.name
            );
            for (oid, lo) in rows {
                let index = &oid[prefix.len()..];
                let p = points
                    .iter()
                    .find(|p| attr(p, "ifIndex") == Some(index))
                    .unwrap_or_else(|| panic!("{} ifIndex {index} missing", c.name));
                value_ok(c.kind, c.render, c.name, p, lo, &after[oid]);
                // Row labels from ifDescr and ifName.
                assert_eq!(
                    attr(p, "ifDescr").map(str::to_string),
                    before.get(&format!("1.3.6.1.2.1.2.2.1.2.{index}")).cloned(),
                    "ifDescr of {index}"
                );
                assert_eq!(
                    attr(p, "ifName").map(str::to_string),
                    before
                        .get(&format!("1.3.6.1.2.1.31.1.1.1.1.{index}"))
                        .cloned(),
                    "ifName of {index}"
                );
                checked += 1;
            }
        }
    }
    checked
}
