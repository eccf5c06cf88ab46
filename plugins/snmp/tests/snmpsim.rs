//! The plugin against a recording of a real Cisco Catalyst 3560 switch (57
//! interfaces, Counter64 octet counters, CRLF in sysDescr) served by `snmpsim`
//! (PyPI `snmpsim`, the SNMP agent simulator), over SNMPv2c and over SNMPv3 with
//! HMAC-SHA-512 (RFC 7860) as implemented by pysnmp, a second USM implementation
//! next to net-snmp's. Recorded values do not move, so every value must equal the
//! recording exactly; the recording file is parsed here independently of the
//! plugin.
//!
//! Needs snmpsim in a Python whose files the user `nobody` can read (snmpsim
//! refuses to run as root and drops privileges), e.g.
//! `/usr/bin/python3 -m venv /opt/snmpsim && /opt/snmpsim/bin/pip install snmpsim pysmi`.
//! The responder is looked up in `$TFO_SNMPSIM_RESPONDER`, then
//! `/opt/snmpsim/bin/snmpsim-command-responder`, then `$PATH`. Without it the
//! tests print a SKIP line and return, unless TFO_REQUIRE_SERVICES=1.

mod common;

use std::{
    io::{BufRead, BufReader, Read},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use common::*;
use serde_json::json;
use tfo_plugin_api::HealthState;

extern crate tfo_snmp;

const RECORDING: &str = "cisco-c3560";

fn responder() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("TFO_SNMPSIM_RESPONDER") {
        return Some(PathBuf::from(p));
    }
    let opt = Path::new("/opt/snmpsim/bin/snmpsim-command-responder");
    if opt.exists() {
        return Some(opt.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("snmpsim-command-responder"))
            .find(|p| p.exists())
    })
}

fn have_snmpsim() -> Option<PathBuf> {
    let r = responder();
    if r.is_none() {
        if std::env::var("TFO_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("snmpsim-command-responder not found (pip install snmpsim pysmi) and TFO_REQUIRE_SERVICES=1");
        }
        eprintln!("SKIP: snmpsim-command-responder not found (pip install snmpsim pysmi into /opt/snmpsim)");
    }
    r
}

/// A private snmpsim responder serving the Catalyst recording, killed on drop.
struct Snmpsim {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Snmpsim {
    fn start(program: &Path) -> Snmpsim {
        for _ in 0..3 {
            // snmpsim drops to nobody: its data and cache must be readable and
            // writable by that user.
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            let cache = dir.path().join("cache");
            std::fs::create_dir(&data).unwrap();
            std::fs::create_dir(&cache).unwrap();
            std::fs::copy(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cisco-c3560.snmprec"),
                data.join("cisco-c3560.snmprec"),
            )
            .unwrap();
            for (p, mode) in [(dir.path(), 0o755), (&data, 0o755), (&cache, 0o777)] {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            std::fs::set_permissions(
                data.join("cisco-c3560.snmprec"),
                std::fs::Permissions::from_mode(0o644),
            )
            .unwrap();
            let port = free_udp_port();
            let mut child = Command::new(program)
                .arg("--process-user=nobody")
                .arg("--process-group=nogroup")
                .arg(format!("--data-dir={}", data.display()))
                .arg(format!("--cache-dir={}", cache.display()))
                .arg(format!("--agent-udpv4-endpoint=127.0.0.1:{port}"))
                .args([
                    "--v3-user=sha512user",
                    "--v3-auth-key=authpass512",
                    "--v3-auth-proto=SHA512",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawning snmpsim-command-responder");
            let (tx, rx) = mpsc::channel();
            for pipe in [
                Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
                Box::new(child.stderr.take().unwrap()),
            ] {
                let tx = tx.clone();
                thread::spawn(move || {
                    for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                        if line.contains("Listening at UDP/IPv4 endpoint") {
                            let _ = tx.send(Ok(()));
                        } else if line.contains("Error")
                            || line.contains("ERROR") && !line.contains("Variation module")
                        {
                            let _ = tx.send(Err(line));
                        }
                    }
                });
            }
            // snmpsim logs "Listening" before its asyncio loop binds the socket:
            // after that line, wait until it answers a GET.
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(Ok(())) if answers(port, Duration::from_secs(30)) => {
                    return Snmpsim {
                        child,
                        port,
                        _dir: dir,
                    }
                }
                other => {
                    eprintln!("snmpsim did not start: {other:?}");
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        panic!("snmpsim did not start");
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// True once the agent answers a v2c GET of sysName.0 within `within`.
fn answers(port: u16, within: Duration) -> bool {
    use tfo_snmp::encode::{community_message, CommunityVersion, Pdu};
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let req = community_message(
        CommunityVersion::V2c,
        RECORDING.as_bytes(),
        &Pdu::get(1, &["1.3.6.1.2.1.1.5.0".parse().unwrap()]),
    );
    let end = Instant::now() + within;
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        let _ = sock.send(&req);
        match sock.recv(&mut buf) {
            Ok(_) => return true,
            // Refused (nothing bound yet) returns at once: pace the probes.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                thread::sleep(Duration::from_millis(100))
            }
            Err(_) => {}
        }
    }
    false
}

impl Drop for Snmpsim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The recording as snmpwalk would print it (`OID -> value`): `TYPE` codes of the
/// snmprec format are the BER tags (2 INTEGER, 4 OCTET STRING, 6 OID, 64
/// IpAddress, 65 Counter32, 66 Gauge32, 67 TimeTicks, 70 Counter64), an `x` suffix
/// means the value is hex.
fn recording_as_walk() -> Walk {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cisco-c3560.snmprec"),
    )
    .unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.splitn(3, '|');
            let (oid, ty, value) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap_or(""),
            );
            let value = if let Some(_base) = ty.strip_suffix('x') {
                let bytes: Vec<u8> = (0..value.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&value[i..i + 2], 16).unwrap())
                    .collect();
                if oid.starts_with("1.3.6.1.2.1.2.2.1.6.") {
                    bytes.iter().map(|b| format!("{b:02X} ")).collect()
                } else {
                    String::from_utf8_lossy(&bytes).into_owned()
                }
            } else {
                value.to_string()
            };
            (oid.to_string(), value)
        })
        .collect()
}

#[test]
fn cisco_catalyst_recording_over_v2c_matches_exactly() {
    let Some(program) = have_snmpsim() else {
        return;
    };
    let sim = Snmpsim::start(&program);
    let addr = sim.address();
    let h = TestHost::default();
    let mut inst = instance(
        &h,
        &json!({"targets": [{"address": addr, "version": "v2c", "community": RECORDING}],
                "scalars": ["system"], "tables": ["ifTable", "ifXTable"], "max_repetitions": 25}),
    );
    let b = collect(&mut inst);
    assert_eq!(up(&b, &addr), Some(1), "{:?}", health(&inst));
    let rec = recording_as_walk();
    // Exact: the same snapshot on both sides of the bracket.
    let checked = compare_with_walks(&b, &addr, &rec, &rec);
    assert!(checked > 1000, "only {checked} values compared");
    let name = find(&b, "sysName").unwrap();
    assert_eq!(attr(&name.points[0], "sysName"), Some("DUMSYS-04"));
    let descr = attr(&find(&b, "sysDescr").unwrap().points[0], "sysDescr")
        .unwrap()
        .to_string();
    assert!(
        descr.starts_with("Cisco IOS Software, C3560 Software") && descr.contains("\r\n"),
        "{descr}"
    );
    assert_eq!(
        attr(&find(&b, "sysObjectID").unwrap().points[0], "sysObjectID"),
        Some("1.3.6.1.4.1.9.1.617")
    );
    let hc = find(&b, "ifHCInOctets").unwrap();
    let gi01 = hc
        .points
        .iter()
        .find(|p| attr(p, "ifName") == Some("Gi0/1"))
        .expect("GigabitEthernet0/1");
    assert_eq!(attr(gi01, "ifDescr"), Some("GigabitEthernet0/1"));
    assert_eq!(health(&inst).state, HealthState::Healthy);
}

#[test]
fn cisco_catalyst_recording_over_v3_hmac_sha512() {
    let Some(program) = have_snmpsim() else {
        return;
    };
    let sim = Snmpsim::start(&program);
    let addr = sim.address();
    let h = TestHost::default();
    let mut inst = instance(
        &h,
        &json!({"targets": [{"address": addr, "version": "v3", "user": {
                    "username": "sha512user", "security_level": "authNoPriv",
                    "auth_protocol": "SHA512", "auth_password": "authpass512",
                    "context": RECORDING}}],
                "scalars": ["system"], "tables": ["ifTable", "ifXTable"]}),
    );
    let b = collect(&mut inst);
    assert_eq!(up(&b, &addr), Some(1), "{:?}", health(&inst));
    let rec = recording_as_walk();
    let checked = compare_with_walks(&b, &addr, &rec, &rec);
    assert!(checked > 1000, "only {checked} values compared");
    // And a wrong password is refused by pysnmp's USM as by net-snmp's.
    let mut bad = instance(
        &h,
        &json!({"targets": [{"address": addr, "version": "v3", "timeout": "500ms", "retries": 0, "user": {
                    "username": "sha512user", "auth_protocol": "SHA512", "auth_password": "not-the-password",
                    "context": RECORDING}}]}),
    );
    let b = collect(&mut bad);
    assert_eq!(up(&b, &addr), Some(0));
    assert_eq!(health(&bad).state, HealthState::Unhealthy);
}
