//! The agent as a user runs it: the built binary with a temp config. Health, plugins
//! and metrics endpoints with a bearer token, a hot swap of a sink library while a
//! source runs, SIGHUP with a changed and an invalid config, `validate`, `run --once`,
//! and bad configs rejected with their path.

mod common;

use std::{
    fs,
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::*;

struct Agent {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
    dir: PathBuf,
}

const TOKEN: &str = "s3cret-token";

impl Agent {
    /// Plugins: ticker source + counting sink (build A). `extra` is appended to the
    /// integrations block.
    fn config_text(dir: &Path, port: u16, out: &Path, extra: &str) -> String {
        format!(
            "agent:\n  id: e2e\nplugins:\n  dir: {plugins}\n  debounce: 50ms\n  shadow_dir: {dir}\nhttp:\n  listen: 127.0.0.1:{port}\n  token: ${{E2E_TOKEN}}\npipeline:\n  flush_interval: 50ms\n  batch_max_items: 50\n  shutdown_timeout: 20s\n  retry: {{initial: 10ms, max: 100ms}}\nintegrations:\n  ticker:\n    enabled: true\n    plugin: ticker-source\n    interval: 20ms\n    per_collect: 3\n  counter:\n    enabled: true\n    plugin: counting-sink\n    output: {out}\n  unused:\n    enabled: false\n{extra}",
            plugins = dir.join("plugins").display(),
            dir = dir.display(),
            out = out.display(),
        )
    }

    fn start(extra: &str) -> Agent {
        Self::start_with(extra, &[], true)
    }

    /// Like `start`, with more plugins installed, and the ticker source on or off.
    fn start_with(extra: &str, plugins_to_add: &[&str], ticker: bool) -> Agent {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let plugins = dir.join("plugins");
        fs::create_dir(&plugins).unwrap();
        install(&plugins, &fixture("ticker_source"), "ticker_source");
        install(&plugins, &fixture("counting_sink"), "counting_sink");
        for p in plugins_to_add {
            install(&plugins, &fixture(p), p);
        }
        let port = free_port();
        let mut text = Self::config_text(&dir, port, &dir.join("out.txt"), extra);
        if !ticker {
            text = text.replace(
                "  ticker:\n    enabled: true",
                "  ticker:\n    enabled: false",
            );
        }
        fs::write(dir.join("agent.yaml"), text).unwrap();
        let log = dir.join("agent.log");
        let child = Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
            .args(["run", "--config"])
            .arg(dir.join("agent.yaml"))
            .env("E2E_TOKEN", TOKEN)
            .env("TFO_LOG", "info")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let a = Agent {
            child,
            port,
            log,
            _dir: tmp,
            dir,
        };
        a.wait_for(
            |a| a.get("/health").is_some_and(|(s, _)| s == 200),
            "agent healthy",
        );
        a
    }

    /// Swaps counting-sink `n` times (builds B, A, B...), each time waiting for the
    /// new generation to serve `counter`.
    fn swap_counting_sink(&self, n: u64) {
        let plugins = self.dir.join("plugins");
        for i in 0..n {
            let (src, version) = counting_build(i);
            install(&plugins, &src, "counting_sink");
            let want = i + 2;
            self.wait_for(
                |a| a.generation("counter") == (want, version.to_string()),
                &format!("generation {want}"),
            );
        }
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.port, path, Some(TOKEN))
    }

    fn json(&self, path: &str) -> serde_json::Value {
        serde_json::from_str(&self.get(path).unwrap().1).unwrap()
    }

    fn generation(&self, instance: &str) -> (u64, String) {
        let v = self.json("/plugins");
        let e = v
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["instance"] == instance)
            .unwrap()
            .clone();
        (
            e["generation"].as_u64().unwrap(),
            e["version"].as_str().unwrap().to_string(),
        )
    }

    /// Polls (there is no push signal across processes) until `cond` or 30 s.
    fn wait_for(&self, cond: impl Fn(&Agent) -> bool, what: &str) {
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

    fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// SIGTERM, wait; returns the exit code, the log, and the directory (kept alive so
    /// the caller can read what the sinks wrote).
    fn stop(mut self) -> (i32, String, tempfile::TempDir) {
        self.signal(libc::SIGTERM);
        let status = self.child.wait().unwrap();
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        (status.code().unwrap_or(-1), log, self._dir)
    }
}

fn values(path: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = recorded(path).into_iter().map(|(_, n)| n).collect();
    v.sort();
    v
}

#[test]
fn health_plugins_metrics_and_the_bearer_token() {
    let a = Agent::start("");
    // Without or with a wrong token: 401.
    assert_eq!(http_get(a.port, "/health", None).unwrap().0, 401);
    assert_eq!(http_get(a.port, "/health", Some("nope")).unwrap().0, 401);

    let h = a.json("/health");
    assert_eq!(h["status"], "healthy");
    let states: Vec<(String, String)> = h["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["instance"].as_str().unwrap().to_string(),
                i["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        states.contains(&("unused".into(), "Disabled".into())),
        "{states:?}"
    );
    assert!(states.contains(&("counter".into(), "Healthy".into())));

    let p = a.json("/plugins");
    let arr = p.as_array().unwrap();
    assert_eq!(arr.len(), 2, "{p}");
    for e in arr {
        for k in [
            "instance",
            "plugin",
            "version",
            "file",
            "sha256",
            "generation",
            "state",
        ] {
            assert!(!e[k].is_null(), "missing {k} in {e}");
        }
    }
    let counter = arr.iter().find(|e| e["instance"] == "counter").unwrap();
    assert_eq!(counter["plugin"], "counting-sink");
    assert_eq!(counter["generation"], 1);
    assert_eq!(
        counter["sha256"].as_str().unwrap(),
        tfo_agent::plugin::files::sha256_hex(&fs::read(fixture("counting_sink")).unwrap())
    );

    a.wait_for(
        |a| {
            a.get("/metrics").unwrap().1.lines().any(|l| {
                l.starts_with("tfo_agent_items_exported_total{instance=\"counter\"")
                    && !l.ends_with(" 0")
            })
        },
        "exported items in /metrics",
    );
    let m = a.get("/metrics").unwrap().1;
    for needle in [
        "# TYPE tfo_agent_items_exported_total counter",
        "tfo_agent_integration_state{instance=\"counter\",state=\"Healthy\"} 1",
        "tfo_agent_plugin_generation{instance=\"counter\"",
        "tfo_agent_config_reloads_total{result=\"ok\"} 0",
    ] {
        assert!(m.contains(needle), "{needle} not in /metrics:\n{m}");
    }
    assert_eq!(a.get("/nope").unwrap().0, 404);
    let (code, log, _dir) = a.stop();
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains(TOKEN), "the token must never be logged");
}

#[test]
fn hot_swap_of_the_sink_while_the_source_runs_loses_nothing() {
    let a = Agent::start("");
    a.swap_counting_sink(6);
    let out = a.dir.join("out.txt");
    let (code, log, _dir) = a.stop();
    assert_eq!(code, 0, "{log}");
    let v = values(&out);
    assert!(
        v.len() > 30,
        "the ticker ran: {} values; log:\n{log}",
        v.len()
    );
    let expected: Vec<u64> = (0..v.len() as u64).collect();
    assert_eq!(
        v, expected,
        "every value exactly once, none missing (drained at shutdown)"
    );
    let versions: std::collections::BTreeSet<String> =
        recorded(&out).into_iter().map(|(ver, _)| ver).collect();
    assert_eq!(versions.len(), 2, "{versions:?}");
}

#[test]
fn sighup_applies_a_changed_config_and_refuses_an_invalid_one() {
    let a = Agent::start("");
    let cfg = a.dir.join("agent.yaml");
    let out2 = a.dir.join("out2.txt");
    let text = fs::read_to_string(&cfg).unwrap();
    let changed = text.replace(
        &format!("output: {}", a.dir.join("out.txt").display()),
        &format!("output: {}", out2.display()),
    );
    assert_ne!(text, changed);
    fs::write(&cfg, &changed).unwrap();
    a.signal(libc::SIGHUP);
    a.wait_for(|a| a.generation("counter").0 == 2, "counter reconfigured");
    a.wait_for(|_| !values(&out2).is_empty(), "data in the new output");
    assert_eq!(
        a.generation("ticker").0,
        1,
        "unchanged integrations are not touched"
    );

    // An invalid config is refused and the running one kept.
    fs::write(&cfg, format!("{changed}\nbogus_section: 1\n")).unwrap();
    a.signal(libc::SIGHUP);
    a.wait_for(
        |a| {
            a.get("/metrics").unwrap().1.lines().any(|l| {
                l.starts_with("tfo_agent_config_reloads_total{result=\"failed\"}")
                    && !l.ends_with(" 0")
            })
        },
        "failed reload counted",
    );
    let before = values(&out2).len();
    a.wait_for(
        |_| values(&out2).len() > before,
        "still exporting after the refused reload",
    );
    assert_eq!(a.json("/health")["status"], "healthy");
    let (code, log, _dir) = a.stop();
    assert_eq!(code, 0);
    assert!(
        log.contains("config reload")
            && log.contains("refused")
            && log.contains("unknown field `bogus_section`"),
        "{log}"
    );
    // Nothing lost across the reconfiguration: out.txt and out2.txt together hold 0..n.
    let mut all = values(&a_dir_file(&out2, "out.txt"));
    all.extend(values(&out2));
    all.sort();
    assert!(all.len() > 10, "{} values", all.len());
    let expected: Vec<u64> = (0..all.len() as u64).collect();
    assert_eq!(all, expected);
}

fn a_dir_file(sibling: &Path, name: &str) -> PathBuf {
    sibling.parent().unwrap().join(name)
}

#[test]
fn validate_and_run_reject_bad_configs_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plugins = d.join("plugins");
    fs::create_dir(&plugins).unwrap();
    install(&plugins, &fixture("counting_sink"), "counting_sink");
    let base = format!("plugins:\n  dir: {}\n", plugins.display());
    let cases = [
        (format!("{base}agent: {{name: x}}\n"), "agent.name: unknown field `name`"),
        (format!("{base}pipeline:\n  retry:\n    initial: soon\n"), "pipeline.retry.initial: invalid duration"),
        (format!("{base}http:\n  listen: ${{NOT_SET_ANYWHERE}}\n"), "environment variable NOT_SET_ANYWHERE is not set"),
        (format!("{base}integrations:\n  c:\n    enabled: true\n    plugin: counting-sink\n    output: /tmp/x\n    typo: 1\n"), "integrations.c.typo: unknown field `typo`"),
        (format!("{base}integrations:\n  c:\n    enabled: true\n    plugin: counting-sink\n    output: \"\"\n"), "integrations.c.output: must not be empty"),
        (format!("{base}integrations:\n  c:\n    enabled: true\n    plugin: missing-plugin\n"), "integrations.c.plugin: plugin \"missing-plugin\" not loadable"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let f = d.join(format!("bad{i}.yaml"));
        fs::write(&f, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
            .args(["validate", "--config"])
            .arg(&f)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(want), "{text}: {err:?} lacks {want:?}");
    }
    // `run` refuses a config that does not parse, before doing anything.
    let out = Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
        .args(["run", "--config"])
        .arg(d.join("bad0.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("agent.name: unknown field `name`"));
    // A good config validates.
    let good = d.join("good.yaml");
    fs::write(&good, format!("{base}integrations:\n  c:\n    enabled: true\n    plugin: counting-sink\n    output: {}\n", d.join("o").display())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
        .args(["validate", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !d.join("o").exists() || fs::read(d.join("o")).unwrap().is_empty(),
        "validate exports nothing"
    );
}

#[test]
fn run_once_prints_what_each_sink_would_send() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plugins = d.join("plugins");
    fs::create_dir(&plugins).unwrap();
    install(&plugins, &fixture("ticker_source"), "ticker_source");
    install(&plugins, &fixture("counting_sink"), "counting_sink");
    let out_file = d.join("never.txt");
    let cfg = d.join("a.yaml");
    fs::write(&cfg, format!("plugins:\n  dir: {}\nagent:\n  hostname: once-host\nintegrations:\n  t:\n    enabled: true\n    plugin: ticker-source\n    per_collect: 2\n  c:\n    enabled: true\n    plugin: counting-sink\n    output: {}\n", plugins.display(), out_file.display())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("==> sink c <- source t"), "{stdout}");
    assert!(stdout.contains("host.name=\"once-host\""), "{stdout}");
    assert_eq!(stdout.matches("metric fixture.seq").count(), 2, "{stdout}");
    assert!(
        fs::read_to_string(&out_file).unwrap_or_default().is_empty(),
        "--once sends nothing"
    );
}

fn metric_value(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn system_metrics_are_scraped_and_a_sink_swap_under_the_system_source_loses_nothing() {
    let scrape_port = free_port();
    let extra = format!(
        "  system:\n    enabled: true\n    interval: 100ms\n  prom:\n    enabled: true\n    plugin: prometheus\n    listen: 127.0.0.1:{scrape_port}\n"
    );
    let a = Agent::start_with(&extra, &["system", "prometheus"], false);
    // The system source's metrics reach the Prometheus scrape endpoint.
    a.wait_for(
        |_| {
            http_get(scrape_port, "/metrics", None).is_some_and(|(s, b)| {
                s == 200
                    && b.contains("system_memory_usage_bytes{")
                    && b.contains("system_cpu_time_seconds_total{")
            })
        },
        "system metrics on the scrape endpoint",
    );
    let (_, body) = http_get(scrape_port, "/metrics", None).unwrap();
    assert!(
        body.contains("# TYPE system_cpu_time_seconds counter")
            || body.contains("# TYPE system_cpu_time_seconds_total counter"),
        "{}",
        &body[..body.len().min(2000)]
    );
    assert_eq!(a.json("/health")["status"], "healthy");

    // Swap the counting sink three times while the system source runs.
    a.swap_counting_sink(3);
    // Stop the source by reloading a config without it, let the queues empty, then
    // compare: the swapped sink got exactly what the never-swapped prometheus sink got.
    let cfg = a.dir.join("agent.yaml");
    let text = fs::read_to_string(&cfg).unwrap().replace(
        "  system:\n    enabled: true",
        "  system:\n    enabled: false",
    );
    fs::write(&cfg, text).unwrap();
    a.signal(libc::SIGHUP);
    a.wait_for(
        |a| {
            a.json("/plugins")
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["instance"] != "system")
        },
        "system stopped",
    );
    let settled = |a: &Agent| {
        let m = a.get("/metrics").unwrap().1;
        let c = metric_value(&m, "tfo_agent_items_exported_total{instance=\"counter\"");
        let p = metric_value(&m, "tfo_agent_items_exported_total{instance=\"prom\"");
        let q = metric_value(&m, "tfo_agent_queue_items{instance=\"counter\"");
        c.is_some() && c == p && q == Some(0.0) && c.unwrap() > 0.0
    };
    a.wait_for(settled, "both sinks exported the same number of items");
    let m = a.get("/metrics").unwrap().1;
    let exported =
        metric_value(&m, "tfo_agent_items_exported_total{instance=\"counter\"").unwrap() as usize;
    let out = a.dir.join("out.txt");
    let (code, log, _dir) = a.stop();
    assert_eq!(code, 0, "{log}");
    let lines = recorded(&out).len();
    assert_eq!(
        lines, exported,
        "every item the sink confirmed is in its output"
    );
    eprintln!("system source: {exported} items through 3 sink swaps, none lost");
}

#[test]
fn the_shipped_config_validates_with_every_available_plugin_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plugins = d.join("plugins");
    fs::create_dir(&plugins).unwrap();
    let available = [
        "system",
        "prometheus",
        "otlp",
        "file_exporter",
        "snmp",
        "mqtt",
        "ebpf",
        "influxdb",
        "elasticsearch",
        "loki",
        "splunk",
        "jaeger",
        "kafka",
        "datadog",
        "newrelic",
        "dynatrace",
        "instana",
        "manageengine",
        "gcp",
        "azure",
        "alibaba",
        "cisco",
        "proxmox",
        "vmware",
        "nutanix",
        "azure_arc",
    ];
    // The credentials the shipped blocks take from the environment (`${VAR:-}`):
    // with them unset, validate must name each missing one; with them set, pass.
    let credentials = [
        ("DD_API_KEY", "x-dd-key"),
        ("NEW_RELIC_LICENSE_KEY", "nr-license-key"),
        ("SPLUNK_HEC_TOKEN", "splunk-token"),
        ("DYNATRACE_API_TOKEN", "dt0c01.token"),
        ("DYNATRACE_ENVIRONMENT_ID", "abc12345"),
        ("GCP_PROJECT_ID", "my-project"),
        ("INSTANA_AGENT_KEY", "instana-key"),
        ("SITE24X7_OTLP_ENDPOINT", "https://otel.site24x7.example/"),
        ("SITE24X7_LICENSE_KEY", "site-key"),
        ("AZURE_TENANT_ID", "tenant"),
        ("AZURE_CLIENT_ID", "client"),
        ("AZURE_CLIENT_SECRET", "client-secret"),
        ("ALIBABA_ACCESS_KEY_ID", "akid"),
        ("ALIBABA_ACCESS_KEY_SECRET", "aksecret"),
        (
            "AZURE_SUBSCRIPTION_ID",
            "00000000-0000-0000-0000-000000000000",
        ),
        ("DNAC_PASSWORD", "dnac-password"),
        ("NUTANIX_PASSWORD", "nutanix-password"),
        ("PVE_TOKEN_SECRET", "pve-token-secret"),
        ("VSPHERE_PASSWORD", "vsphere-password"),
    ];
    for p in available {
        install(&plugins, &fixture(p), p);
    }
    let shipped =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/tfo-agent.yaml"))
            .unwrap();
    // Enable every block whose plugin exists; the keys shipped must be the ones the
    // plugins accept (validate runs each plugin's create).
    let mut text = String::new();
    let mut current = String::new();
    for line in shipped.lines() {
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) {
            if !name.starts_with(' ') && !name.starts_with('#') {
                current = name.to_string();
            }
        }
        let enable = available.iter().any(|p| p.replace('_', "-") == current);
        // Only the block's own switch (sub-blocks have their own `enabled`).
        if enable && line == "    enabled: false" {
            text.push_str(&line.replace("false", "true"));
        } else {
            text.push_str(line);
        }
        text.push('\n');
    }
    assert_eq!(
        text.lines().filter(|l| *l == "    enabled: true").count(),
        available.len(),
        "{text}"
    );
    let cfg = d.join("tfo-agent.yaml");
    fs::write(&cfg, text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tfo-agent"));
    cmd.args(["validate", "--config"])
        .arg(&cfg)
        .env("TFO_PLUGIN_DIR", &plugins);
    for (k, _) in credentials {
        cmd.env_remove(k);
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for block in [
        "datadog",
        "newrelic",
        "splunk",
        "dynatrace",
        "gcp",
        "instana",
        "manageengine",
        "azure",
        "alibaba",
        "cisco",
        "proxmox",
        "vmware",
        "nutanix",
        "azure-arc",
    ] {
        assert!(
            err.contains(&format!("integrations.{block}.")),
            "no error for the {block} credentials: {err}"
        );
    }
    let out = cmd.envs(credentials).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn saving_the_config_file_reloads_it_without_a_signal() {
    let a = Agent::start("");
    let cfg = a.dir.join("agent.yaml");
    let out3 = a.dir.join("out3.txt");
    let text = fs::read_to_string(&cfg).unwrap();
    let changed = text.replace(
        &format!("output: {}", a.dir.join("out.txt").display()),
        &format!("output: {}", out3.display()),
    );
    // Written the way editors do: a temporary file renamed over the config.
    let tmp = a.dir.join("agent.yaml.swp");
    fs::write(&tmp, &changed).unwrap();
    fs::rename(&tmp, &cfg).unwrap();
    a.wait_for(
        |a| a.generation("counter").0 == 2,
        "counter reconfigured by the file watch",
    );
    a.wait_for(|_| !values(&out3).is_empty(), "data in the new output");
    let (code, log, _dir) = a.stop();
    assert_eq!(code, 0);
    assert!(log.contains("config file changed"), "{log}");
}

#[test]
fn a_reload_storm_leaves_the_agent_consistent_and_loses_nothing() {
    let a = Agent::start("");
    let cfg = a.dir.join("agent.yaml");
    let original = fs::read_to_string(&cfg).unwrap();
    let out = a.dir.join("out.txt");
    let with_output = |name: &str| {
        original.replace(
            &format!("output: {}", out.display()),
            &format!("output: {}", a.dir.join(name).display()),
        )
    };
    // 30 changes as fast as we can write them, each followed by SIGHUP, some invalid.
    for i in 0..30 {
        let text = if i % 7 == 3 {
            format!("{original}\nnot valid: [\n")
        } else {
            with_output(&format!("storm{}.txt", i % 3))
        };
        fs::write(&cfg, text).unwrap();
        a.signal(libc::SIGHUP);
    }
    fs::write(&cfg, with_output("final.txt")).unwrap();
    a.signal(libc::SIGHUP);
    let fin = a.dir.join("final.txt");
    a.wait_for(|_| !values(&fin).is_empty(), "data in the final output");
    assert_eq!(a.json("/health")["status"], "healthy");
    let gen = a.generation("counter").0;
    let (code, log, _dir) = a.stop();
    assert_eq!(code, 0, "{log}");
    let mut all = Vec::new();
    for name in [
        "out.txt",
        "storm0.txt",
        "storm1.txt",
        "storm2.txt",
        "final.txt",
    ] {
        all.extend(values(&a_dir_file(&fin, name)));
    }
    all.sort();
    let expected: Vec<u64> = (0..all.len() as u64).collect();
    assert_eq!(
        all, expected,
        "every value exactly once across {gen} generations"
    );
    eprintln!("reload storm: 31 reload triggers, {gen} sink generations, {} values, none lost or duplicated", all.len());
}

/// A secret (under a secret-named key, reused through a YAML alias in a field whose
/// error message quotes the value) never appears in `validate` output, in the log of
/// a running agent, or on `/plugins` and `/health`; the masked error is there instead.
#[test]
fn secrets_are_masked_in_validate_output_the_log_and_the_api() {
    const SECRET: &str = "tfo-test-secret-5f1e9a";
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let plugins = dir.join("plugins");
    fs::create_dir(&plugins).unwrap();
    install(&plugins, &fixture("ticker_source"), "ticker_source");
    install(&plugins, &fixture("counting_sink"), "counting_sink");
    let port = free_port();
    let extra = format!(
        "  aaa_vault:\n    enabled: false\n    api_key: &secret \"{SECRET}\"\n  leaky:\n    enabled: true\n    plugin: counting-sink\n    output: {}\n    delay_ms: *secret\n",
        dir.join("leaky.txt").display()
    );
    // `aaa_vault` sorts before `leaky`; YAML needs the anchor first in the text,
    // which `extra` (appended last) keeps.
    let text = Agent::config_text(dir, port, &dir.join("out.txt"), &extra);
    let cfg = dir.join("agent.yaml");
    fs::write(&cfg, text).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
        .args(["validate", "--config"])
        .arg(&cfg)
        .env("E2E_TOKEN", TOKEN)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("integrations.leaky.delay_ms"), "{all}");
    assert!(all.contains("***"), "the masked value is shown: {all}");
    assert!(!all.contains(SECRET), "validate leaked the secret: {all}");

    let log = dir.join("agent.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
        .args(["run", "--config"])
        .arg(&cfg)
        .env("E2E_TOKEN", TOKEN)
        .env("TFO_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    let plugins_json = loop {
        let got = http_get(port, "/plugins", Some(TOKEN)).map(|(_, b)| b);
        if let Some(b) = got.filter(|b| b.contains("delay_ms")) {
            break b;
        }
        assert!(
            Instant::now() < end,
            "no error for `leaky` on /plugins; log:\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let health = http_get(port, "/health", Some(TOKEN)).unwrap().1;
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    let log_text = fs::read_to_string(&log).unwrap();
    assert!(plugins_json.contains("***"), "{plugins_json}");
    for (what, text) in [
        ("/plugins", &plugins_json),
        ("/health", &health),
        ("the log", &log_text),
    ] {
        assert!(!text.contains(SECRET), "{what} leaked the secret:\n{text}");
        assert!(
            !text.contains(TOKEN),
            "{what} leaked the API token:\n{text}"
        );
    }
    assert!(
        log_text.contains("delay_ms"),
        "the error is logged:\n{log_text}"
    );
}

/// The status API bounds what a client can hold: an oversized request head gets 431,
/// connections beyond the limit are closed at once, and the API answers again as
/// soon as the idle connections go away.
#[test]
fn the_api_limits_head_size_and_open_connections() {
    let a = Agent::start("");
    // A 64 KiB header (limit 16 KiB).
    let mut s = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let big = "x".repeat(64 * 1024);
    let _ = write!(
        s,
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    );
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let head = String::from_utf8_lossy(&buf);
    assert!(head.starts_with("HTTP/1.1 431"), "{head:?}");

    // Fill every slot with a connection that sends nothing...
    let idle: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(("127.0.0.1", a.port)).unwrap())
        .collect();
    // ...the next one is closed without an answer (the server may take a moment to
    // accept all of them: retry until a connection is refused that way).
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = TcpStream::connect(("127.0.0.1", a.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = write!(s, "GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        if buf.is_empty() {
            break;
        }
        assert!(Instant::now() < end, "the 65th connection was served");
    }
    drop(idle);
    a.wait_for(
        |a| a.get("/health").is_some_and(|(s, _)| s == 200),
        "the API answers again",
    );
    let (code, log, _dir) = a.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("connections open, closing"), "{log}");
}
