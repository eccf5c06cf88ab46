//! Test support: a vcsim (VMware's vCenter simulator) of our own on a free loopback
//! port, and helpers to drive the plugin through its exported root module.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{mpsc, OnceLock},
    time::Duration,
};

use tfo_plugin_api::{AnyValue, Batch, Metric, PointValue};

/// True when CI demands every external service (TFO_REQUIRE_SERVICES=1).
pub fn services_required() -> bool {
    std::env::var("TFO_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The vcsim binary: $TFO_VCSIM, or target/vcsim/vcsim built by scripts/vcsim.sh
/// (built here if missing and Go is installed). `None` (with the reason) when it
/// cannot be had.
pub fn vcsim_binary() -> Result<PathBuf, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("TFO_VCSIM") {
            return Ok(PathBuf::from(p));
        }
        let script = workspace().join("scripts/vcsim.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("build")
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "scripts/vcsim.sh build failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let path = Command::new("bash")
            .arg(&script)
            .arg("path")
            .output()
            .map_err(|e| e.to_string())?;
        Ok(PathBuf::from(String::from_utf8_lossy(&path.stdout).trim()))
    })
    .clone()
}

/// Returns the binary, or prints why the test is skipped (or panics when services
/// are required).
pub fn vcsim_or_skip(test: &str) -> Option<PathBuf> {
    match vcsim_binary() {
        Ok(p) if p.is_file() => Some(p),
        Ok(p) => skip(test, &format!("{} does not exist", p.display())),
        Err(e) => skip(test, &e),
    }
}

fn skip(test: &str, why: &str) -> Option<PathBuf> {
    if services_required() {
        panic!("{test}: vcsim is required (TFO_REQUIRE_SERVICES=1) but unavailable: {why}");
    }
    eprintln!("SKIP {test}: vcsim unavailable ({why}); install golang-go and golang-github-vmware-govmomi-dev, then scripts/vcsim.sh build");
    None
}

/// A running vcsim, killed on drop.
pub struct Vcsim {
    child: Child,
    /// `https://127.0.0.1:PORT/sdk` (or http).
    pub url: String,
    /// The CA that signed the server certificate (TLS only).
    pub ca_file: PathBuf,
    /// The simulator's performance sample tables.
    pub perf_data: serde_json::Value,
    _dir: tempfile::TempDir,
}

impl Vcsim {
    /// Starts one with TLS (a fresh CA) or plain HTTP, user `user`, password
    /// `password`; waits for its URL line (no sleeping).
    pub fn start(bin: &Path, tls: bool, password: &str) -> Vcsim {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = dir.path().join("ca.pem");
        let perf = dir.path().join("perf.json");
        let mut child = Command::new(bin)
            .args([
                "-l",
                "127.0.0.1:0",
                "-stdin-exit",
                "-username",
                "user",
                "-password",
                password,
            ])
            .arg(format!("-tls={tls}"))
            .arg("-ca-out")
            .arg(&ca)
            .arg("-perf-data-out")
            .arg(&perf)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting vcsim");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(u) = line.strip_prefix("VCSIM_URL=") {
                    let _ = tx.send(u.to_string());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                panic!("vcsim did not print its URL within 30s");
            }
        };
        let perf_data: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&perf).expect("perf data file"))
                .expect("perf data JSON");
        Vcsim {
            child,
            url,
            ca_file: ca,
            perf_data,
            _dir: dir,
        }
    }

    /// The simulator's sample table of one counter (`cpu.usage.average`) for one
    /// entity type (`VirtualMachine`).
    pub fn samples(&self, entity_type: &str, counter: &str) -> Vec<i64> {
        let id = self.perf_data["counters"][counter]
            .as_i64()
            .unwrap_or_else(|| panic!("vcsim has no counter {counter}"));
        self.perf_data["samples"][entity_type][id.to_string()]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
            .unwrap_or_default()
    }
}

impl Drop for Vcsim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The points of `name` as (attributes, value).
pub fn points(batch: &Batch, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
    batch
        .metrics
        .iter()
        .filter(|m| m.name.as_str() == name)
        .flat_map(|m: &Metric| m.points.iter())
        .map(|p| {
            let attrs = p
                .attributes
                .iter()
                .map(|kv| {
                    let v = match &kv.value {
                        AnyValue::Str(s) => s.to_string(),
                        other => format!("{other:?}"),
                    };
                    (kv.key.to_string(), v)
                })
                .collect();
            let v = match p.value {
                PointValue::Double(d) => d,
                PointValue::Int(i) => i as f64,
                _ => f64::NAN,
            };
            (attrs, v)
        })
        .collect()
}

/// An attribute of a point.
pub fn attr<'a>(attrs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}
