//! The agent config file (`tfo-agent.yaml`): `agent`, `plugins`, `http`, `pipeline`,
//! `integrations`.
//!
//! - `${VAR}` and `${VAR:-default}` are substituted in the text before parsing (lines
//!   that are only a comment are left alone; `$${` writes a literal `${`). A missing
//!   variable without a default is an error naming it and its line.
//! - Unknown keys and bad values are errors with their YAML path
//!   (`pipeline.retry.initial: invalid duration ...`).
//! - Every `integrations.<instance>` block has host keys (`enabled`, `plugin`,
//!   `interval`, `routes`); everything else is the plugin's own config, handed to the
//!   plugin's `create`, whose errors come back with the path
//!   `integrations.<instance>.<field>`.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Deserializer};

use crate::{
    pipeline::runner::{RetryPolicy, Timeouts},
    plugin::manager::{DiskBufferOptions, InstanceSpec, ManagerOptions},
};

/// The whole file.
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Agent identity.
    #[serde(default)]
    pub agent: AgentSection,
    /// Plugin directory and trust settings.
    pub plugins: PluginsSection,
    /// The HTTP API.
    #[serde(default)]
    pub http: HttpSection,
    /// Batching, queues, retries, deadlines.
    #[serde(default)]
    pub pipeline: PipelineSection,
    /// Integration instances.
    #[serde(default)]
    pub integrations: BTreeMap<String, serde_yaml::Value>,
}

/// `agent:`.
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Agent id (resource attribute `service.instance.id`); default: the hostname.
    #[serde(default)]
    pub id: Option<String>,
    /// Hostname (resource attribute `host.name`); default: the system hostname.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Extra resource attributes added to everything the agent collects.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// `plugins:`.
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginsSection {
    /// Directory of `libtfo_<name>.so` files (`tfo_<name>.dll` on Windows; relative
    /// to the config file).
    pub dir: PathBuf,
    /// Only load files whose sha256 is listed.
    #[serde(default)]
    pub allow_sha256: Option<Vec<String>>,
    /// Where the private shadow directory is created (default: the temp dir).
    #[serde(default)]
    pub shadow_dir: Option<PathBuf>,
    /// Keep verified shadow copies across restarts (in `shadow_dir`), so unchanged
    /// plugin files are not read, hashed and copied again at start or rescan.
    #[serde(default = "d_true")]
    pub shadow_cache: bool,
    /// Quiet time after a file event before rescanning.
    #[serde(default = "d_500ms", deserialize_with = "duration")]
    pub debounce: Duration,
    /// Periodic rescan in case a file event was missed (0 = off).
    #[serde(default = "d_30s", deserialize_with = "duration")]
    pub rescan_interval: Duration,
}

/// `http:`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Listen address of the status API (loopback by default).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// When set, every request needs `Authorization: Bearer <token>`.
    #[serde(default)]
    pub token: Option<String>,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: default_listen(),
            token: None,
        }
    }
}

/// `pipeline:`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// A batch is sent to the sinks when it holds this many items...
    #[serde(default = "d_batch")]
    pub batch_max_items: u64,
    /// ...or when its oldest item is this old.
    #[serde(default = "d_1s", deserialize_with = "duration")]
    pub flush_interval: Duration,
    /// Per-sink queue limit in items (oldest dropped and counted beyond).
    #[serde(default = "d_queue_items")]
    pub queue_max_items: u64,
    /// Per-sink queue limit in bytes.
    #[serde(default = "d_queue_bytes")]
    pub queue_max_bytes: u64,
    /// Retry of retryable export errors.
    #[serde(default)]
    pub retry: RetrySection,
    /// Timeout of one plugin call (export, collect).
    #[serde(default = "d_30s", deserialize_with = "duration")]
    pub call_timeout: Duration,
    /// Deadline for sinks to drain at shutdown, and for a plugin's shutdown.
    #[serde(default = "d_10s", deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// Where sink queues live: `memory` (bounded, lost on restart) or `disk` (a
    /// write-ahead log per sink, replayed after a restart; docs/reliability.md).
    #[serde(default)]
    pub buffer: BufferKind,
    /// Settings of the disk buffer (`buffer: disk`).
    #[serde(default)]
    pub disk_buffer: DiskBufferSection,
}

/// `pipeline.buffer`.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BufferKind {
    /// Bounded in-memory queues (oldest dropped when full).
    #[default]
    Memory,
    /// A write-ahead log per sink.
    Disk,
}

/// `pipeline.disk_buffer:`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DiskBufferSection {
    /// Directory of the logs, one subdirectory per sink instance (relative to the
    /// config file). The systemd unit's state directory by default.
    #[serde(default = "d_buffer_path")]
    pub path: PathBuf,
    /// Size cap per sink in bytes; beyond it the newest batches are dropped and counted.
    #[serde(default = "d_buffer_bytes")]
    pub max_bytes: u64,
    /// fdatasync every batch before accepting it (off: faster, a power loss can
    /// lose the last batches written).
    #[serde(default = "d_true")]
    pub fsync: bool,
}

impl Default for DiskBufferSection {
    fn default() -> Self {
        DiskBufferSection {
            path: d_buffer_path(),
            max_bytes: d_buffer_bytes(),
            fsync: true,
        }
    }
}

fn d_buffer_path() -> PathBuf {
    crate::plugin::platform::default_buffer_dir()
}
fn d_buffer_bytes() -> u64 {
    256 << 20
}
fn d_true() -> bool {
    true
}

impl Default for PipelineSection {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("defaults")
    }
}

/// `pipeline.retry:`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetrySection {
    /// First backoff.
    #[serde(default = "d_200ms", deserialize_with = "duration")]
    pub initial: Duration,
    /// Backoff cap.
    #[serde(default = "d_30s", deserialize_with = "duration")]
    pub max: Duration,
    /// Growth factor.
    #[serde(default = "d_2")]
    pub multiplier: f64,
    /// Attempts before a batch is dropped (0 = keep retrying; the queue bound applies).
    #[serde(default)]
    pub max_attempts: u32,
}

impl Default for RetrySection {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("defaults")
    }
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:8686".parse().expect("valid")
}
fn d_500ms() -> Duration {
    Duration::from_millis(500)
}
fn d_200ms() -> Duration {
    Duration::from_millis(200)
}
fn d_1s() -> Duration {
    Duration::from_secs(1)
}
fn d_10s() -> Duration {
    Duration::from_secs(10)
}
fn d_30s() -> Duration {
    Duration::from_secs(30)
}
fn d_2() -> f64 {
    2.0
}
fn d_batch() -> u64 {
    1000
}
fn d_queue_items() -> u64 {
    100_000
}
fn d_queue_bytes() -> u64 {
    64 << 20
}

/// Accepts `250ms`, `10s`, `5m`, `1h` or a bare number of seconds.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        N(f64),
    }
    match Raw::deserialize(d)? {
        Raw::S(s) => parse_duration(&s).map_err(serde::de::Error::custom),
        Raw::N(n) if n >= 0.0 => Ok(Duration::from_secs_f64(n)),
        Raw::N(n) => Err(serde::de::Error::custom(format!("negative duration {n}"))),
    }
}

/// Parses `250ms`, `10s`, `5m`, `1h` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (use e.g. 500ms, 10s, 5m)"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?} (ms, s, m or h)")),
    };
    // try_: a huge number is an error, not a panic (found by the `config` fuzz target).
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Replaces `${VAR}` and `${VAR:-default}` using `lookup`; `$${` is a literal `${`.
/// Lines that are only a comment are copied unchanged.
pub fn substitute_env(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for (lineno, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(t) = tail.strip_prefix("$${") {
                out.push_str("${");
                rest = t;
            } else if let Some(t) = tail.strip_prefix("${") {
                let end = t.find('}').ok_or_else(|| {
                    format!(
                        "line {}: unterminated ${{ in {:?}",
                        lineno + 1,
                        line.trim_end()
                    )
                })?;
                let expr = &t[..end];
                let (name, default) = match expr.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (expr, None),
                };
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!(
                        "line {}: invalid variable name {name:?}",
                        lineno + 1
                    ));
                }
                match (lookup(name), default) {
                    (Some(v), _) if !v.is_empty() || default.is_none() => out.push_str(&v),
                    (_, Some(d)) => out.push_str(d),
                    (None, None) => return Err(format!("line {}: environment variable {name} is not set (use ${{{name}:-default}} for a default)", lineno + 1)),
                    (Some(v), None) => out.push_str(&v),
                }
                rest = &t[end + 1..];
            } else {
                out.push('$');
                rest = &tail[1..];
            }
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// Host keys of an integration block; the rest belongs to the plugin.
const HOST_KEYS: [&str; 4] = ["enabled", "plugin", "interval", "routes"];

/// One integration block, split into host settings and the plugin's config.
#[derive(Debug, Clone, PartialEq)]
pub struct Integration {
    /// Instance name.
    pub name: String,
    /// `enabled`.
    pub enabled: bool,
    /// Which plugin serves it (default: the instance name).
    pub plugin: String,
    /// Collection interval for polling sources (default 10s).
    pub interval: Duration,
    /// For sources: the sink instances it feeds (default: every sink).
    pub routes: Option<Vec<String>>,
    /// The plugin's own keys.
    pub config: serde_json::Value,
}

impl Config {
    /// Reads, substitutes, parses and checks a config file. Errors name the file and
    /// the YAML path of the offending key.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut c = Self::parse(&text, |k| std::env::var(k).ok())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if c.plugins.dir.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            c.plugins.dir = base.join(&c.plugins.dir);
        }
        if c.pipeline.disk_buffer.path.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            c.pipeline.disk_buffer.path = base.join(&c.pipeline.disk_buffer.path);
        }
        // From here on, these values are masked wherever the agent prints them.
        crate::redact::register(&c);
        Ok(c)
    }

    /// Parses config text (after substitution) and checks it.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let text = substitute_env(text, env)?;
        let de = serde_yaml::Deserializer::from_str(&text);
        let c: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            // serde_yaml prefixes its own (shorter) path; keep ours, the full one.
            let msg = match inner.split_once(": ") {
                Some((p, rest)) if !p.contains(' ') && path.starts_with(p) => rest.to_string(),
                _ => inner,
            };
            if path == "." {
                msg
            } else {
                format!("{path}: {msg}")
            }
        })?;
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<(), String> {
        let p = &self.pipeline;
        if p.batch_max_items == 0 {
            return Err("pipeline.batch_max_items: must be at least 1".into());
        }
        if p.queue_max_items < p.batch_max_items {
            return Err(
                "pipeline.queue_max_items: must be at least pipeline.batch_max_items".into(),
            );
        }
        if p.buffer == BufferKind::Disk && p.disk_buffer.max_bytes < 1 << 20 {
            return Err("pipeline.disk_buffer.max_bytes: must be at least 1048576 (1 MiB)".into());
        }
        if p.retry.multiplier < 1.0 {
            return Err("pipeline.retry.multiplier: must be at least 1".into());
        }
        if let Some(t) = &self.http.token {
            if t.is_empty() {
                return Err(
                    "http.token: must not be empty (remove the key to disable auth)".into(),
                );
            }
        }
        if let Some(list) = &self.plugins.allow_sha256 {
            for (i, s) in list.iter().enumerate() {
                if s.len() != 64 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(format!(
                        "plugins.allow_sha256[{i}]: not a sha256 hex digest: {s:?}"
                    ));
                }
            }
        }
        let all = self.integrations()?;
        let names: BTreeSet<&str> = all.iter().map(|i| i.name.as_str()).collect();
        for i in &all {
            for r in i.routes.iter().flatten() {
                if !names.contains(r.as_str()) {
                    return Err(format!(
                        "integrations.{}.routes: no integration named {r:?}",
                        i.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every integration block (enabled or not), validated for its host keys.
    pub fn integrations(&self) -> Result<Vec<Integration>, String> {
        let mut out = Vec::new();
        for (name, block) in &self.integrations {
            let path = format!("integrations.{name}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "{path}: instance names may only use letters, digits, - and _"
                ));
            }
            let map = match block {
                serde_yaml::Value::Mapping(m) => m.clone(),
                serde_yaml::Value::Null => Default::default(),
                _ => return Err(format!("{path}: must be a mapping")),
            };
            let mut it = Integration {
                name: name.clone(),
                enabled: false,
                plugin: name.clone(),
                interval: Duration::from_secs(10),
                routes: None,
                config: serde_json::Value::Object(Default::default()),
            };
            let mut config = serde_json::Map::new();
            for (k, v) in map {
                let key = k
                    .as_str()
                    .ok_or_else(|| format!("{path}: keys must be strings"))?
                    .to_string();
                let kpath = format!("{path}.{key}");
                match key.as_str() {
                    "enabled" => {
                        it.enabled = v
                            .as_bool()
                            .ok_or_else(|| format!("{kpath}: must be true or false"))?
                    }
                    "plugin" => {
                        it.plugin = v
                            .as_str()
                            .ok_or_else(|| format!("{kpath}: must be a plugin name"))?
                            .to_string()
                    }
                    "interval" => {
                        it.interval =
                            duration(v).map_err(|e: serde_yaml::Error| format!("{kpath}: {e}"))?;
                        if it.interval.is_zero() {
                            return Err(format!("{kpath}: must be greater than 0"));
                        }
                    }
                    "routes" => {
                        let r: Vec<String> = serde_yaml::from_value(v).map_err(|e| {
                            format!("{kpath}: must be a list of integration names ({e})")
                        })?;
                        it.routes = Some(r);
                    }
                    _ => {
                        let j = serde_json::to_value(&v).map_err(|e| format!("{kpath}: {e}"))?;
                        config.insert(key, j);
                    }
                }
            }
            debug_assert!(HOST_KEYS.contains(&"routes"));
            it.config = serde_json::Value::Object(config);
            out.push(it);
        }
        Ok(out)
    }

    /// Manager options from `plugins` and `pipeline`.
    pub fn manager_options(&self) -> ManagerOptions {
        let mut o = ManagerOptions::new(&self.plugins.dir);
        if let Some(list) = &self.plugins.allow_sha256 {
            o.allow_sha256 = Some(list.iter().map(|s| s.to_ascii_lowercase()).collect());
        }
        if let Some(d) = &self.plugins.shadow_dir {
            o.shadow_base = d.clone();
        }
        if self.plugins.shadow_cache {
            o.shadow_cache = Some(crate::plugin::shadow_cache::default_dir(&o.shadow_base));
        }
        o.debounce = self.plugins.debounce;
        o.rescan_interval = self.plugins.rescan_interval;
        let p = &self.pipeline;
        o.timeouts = Timeouts {
            call: p.call_timeout,
            shutdown: p.shutdown_timeout,
        };
        o.drain_timeout = p.shutdown_timeout;
        o.retry = RetryPolicy {
            initial: p.retry.initial,
            max: p.retry.max,
            multiplier: p.retry.multiplier,
            max_attempts: p.retry.max_attempts,
        };
        o.queue_max_items = p.queue_max_items;
        o.queue_max_bytes = p.queue_max_bytes;
        o.batch_max_items = p.batch_max_items;
        o.flush_interval = p.flush_interval;
        if p.buffer == BufferKind::Disk {
            o.disk_buffer = Some(DiskBufferOptions {
                base: p.disk_buffer.path.clone(),
                max_bytes: p.disk_buffer.max_bytes,
                fsync: p.disk_buffer.fsync,
            });
        }
        o
    }

    /// The enabled integration instances.
    pub fn instance_specs(&self) -> Result<Vec<InstanceSpec>, String> {
        Ok(self
            .integrations()?
            .into_iter()
            .filter(|i| i.enabled)
            .map(|i| InstanceSpec {
                name: i.name,
                plugin: i.plugin,
                config: i.config,
                interval: i.interval,
                routes: i.routes,
            })
            .collect())
    }

    /// Names of the integrations that are present but disabled.
    pub fn disabled(&self) -> Vec<String> {
        self.integrations()
            .map(|v| {
                v.into_iter()
                    .filter(|i| !i.enabled)
                    .map(|i| i.name)
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "HOST" => Some("db1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("3 parsecs").is_err());
        // Regression (fuzz/artifacts: flush_interval: 888888888888888888881s panicked).
        assert!(parse_duration("888888888888888888881s").is_err());
        assert!(parse_duration("1e400").is_err());
    }

    #[test]
    fn substitution() {
        assert_eq!(substitute_env("a: ${HOST}\n", env).unwrap(), "a: db1\n");
        assert_eq!(substitute_env("a: ${NOPE:-x}\n", env).unwrap(), "a: x\n");
        assert_eq!(substitute_env("a: ${EMPTY:-d}\n", env).unwrap(), "a: d\n");
        assert_eq!(
            substitute_env("a: $${HOST} $5\n", env).unwrap(),
            "a: ${HOST} $5\n"
        );
        assert_eq!(
            substitute_env("# ${NOPE}\na: 1\n", env).unwrap(),
            "# ${NOPE}\na: 1\n"
        );
        let e = substitute_env("x: 1\na: ${NOPE}\n", env).unwrap_err();
        assert!(e.contains("line 2") && e.contains("NOPE is not set"), "{e}");
        assert!(substitute_env("a: ${HOST\n", env).is_err());
    }

    #[test]
    fn specs_split_host_keys_from_plugin_keys() {
        let c = Config::parse(
            "plugins: {dir: /x}\nintegrations:\n  out:\n    enabled: true\n    plugin: file-exporter\n    interval: 5s\n    path: /tmp/o\n  src:\n    enabled: true\n    routes: [out]\n  off:\n    enabled: false\n",
            env,
        )
        .unwrap();
        let s = c.instance_specs().unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].plugin, "file-exporter");
        assert_eq!(s[0].interval, Duration::from_secs(5));
        assert_eq!(s[0].config, serde_json::json!({"path": "/tmp/o"}));
        assert_eq!(s[1].routes, Some(vec!["out".to_string()]));
        assert_eq!(c.disabled(), vec!["off".to_string()]);
    }

    #[test]
    fn errors_carry_the_yaml_path() {
        let cases = [
            ("plugins: {dir: /x}\nplugin: {}\n", "unknown field `plugin`"),
            (
                "plugins: {dir: /x, debounce: soon}\n",
                "plugins.debounce: invalid duration",
            ),
            (
                "plugins: {dir: /x}\npipeline: {retry: {initial: 5 parsecs}}\n",
                "pipeline.retry.initial: invalid duration",
            ),
            (
                "plugins: {dir: /x}\npipeline: {retry: {jitter: 1}}\n",
                "pipeline.retry.jitter: unknown field `jitter`",
            ),
            (
                "plugins: {dir: /x}\nhttp: {listen: nowhere}\n",
                "http.listen: invalid socket address",
            ),
            (
                "plugins: {dir: /x}\npipeline: {batch_max_items: 0}\n",
                "pipeline.batch_max_items: must be at least 1",
            ),
            (
                "plugins: {dir: /x}\nintegrations: {a: {enabled: yes please}}\n",
                "integrations.a.enabled: must be true or false",
            ),
            (
                "plugins: {dir: /x}\nintegrations: {a: {interval: 0s}}\n",
                "integrations.a.interval: must be greater than 0",
            ),
            (
                "plugins: {dir: /x}\nintegrations: {a: {routes: [b]}}\n",
                "integrations.a.routes: no integration named \"b\"",
            ),
            (
                "plugins: {dir: /x}\nintegrations: {a: [1]}\n",
                "integrations.a: must be a mapping",
            ),
            (
                "plugins: {dir: /x, allow_sha256: [abc]}\n",
                "plugins.allow_sha256[0]: not a sha256",
            ),
            ("agent: {}\n", "missing field `plugins`"),
        ];
        for (text, want) in cases {
            let e = Config::parse(text, env).unwrap_err();
            assert!(
                e.contains(want),
                "{text:?}: {e:?} does not contain {want:?}"
            );
        }
    }

    #[test]
    fn the_shipped_config_parses_and_enables_system_and_prometheus() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/tfo-agent.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let c = Config::parse(&text, |_| None).unwrap();
        let enabled: Vec<String> = c
            .instance_specs()
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(
            enabled,
            vec!["prometheus".to_string(), "system".to_string()]
        );
        // Every integration of the seed has a block.
        for name in [
            "gcp",
            "azure",
            "alibaba",
            "proxmox",
            "vmware",
            "nutanix",
            "azure-arc",
            "cisco",
            "snmp",
            "mqtt",
            "ebpf",
            "datadog",
            "newrelic",
            "dynatrace",
            "instana",
            "manageengine",
            "prometheus",
            "splunk",
            "elasticsearch",
            "influxdb",
            "kafka",
            "loki",
            "jaeger",
            "system",
            "otlp",
        ] {
            assert!(c.integrations.contains_key(name), "no block for {name}");
        }
        assert_eq!(c.http.listen, default_listen());
    }
}
