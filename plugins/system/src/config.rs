//! The plugin's configuration: the integration's block of the agent config, handed
//! over as JSON. Every key is optional; the defaults collect everything from the
//! machine the agent runs on.
//!
//! ```yaml
//! integrations:
//!   system:
//!     enabled: true
//!     interval: 10s
//!     collectors: [cpu, memory, paging, load, disk, filesystem, network, processes, uptime]
//!     hostname: web-1                 # default: the system hostname
//!     root_path: /                    # /host when the host's / is mounted there
//!     filesystem:
//!       exclude_types: [proc, sysfs, ...]      # default: node_exporter's list
//!       exclude_mountpoints: [/dev, /proc, ...] # path prefixes
//!     network:
//!       exclude_devices: [lo]         # names; `*` matches any run of characters
//!     disk:
//!       exclude_devices: ["loop*", "ram*"]
//! ```
//!
//! Unknown keys are rejected (`deny_unknown_fields`) so a typo fails at load time;
//! [`Config::resolve`] adds the checks serde cannot express and reports every
//! problem at once, each with its field path (`collectors[2]`,
//! `filesystem.exclude_mountpoints[0]`).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use tfo_plugin_api::ConfigError;

/// One group of metrics that can be switched on or off. The declaration order is
/// the order metrics appear in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Collector {
    /// `system.cpu.time`, `system.cpu.utilization` (from `/proc/stat`).
    Cpu,
    /// `system.cpu.load_average.{1m,5m,15m}` (from `/proc/loadavg`).
    Load,
    /// `system.memory.usage`, `system.memory.utilization` (from `/proc/meminfo`).
    Memory,
    /// `system.paging.usage` (from `/proc/swaps`).
    Paging,
    /// `system.disk.*` (from `/proc/diskstats`).
    Disk,
    /// `system.filesystem.*` (mount table plus `statvfs`).
    Filesystem,
    /// `system.network.*` (from `/proc/net/dev`).
    Network,
    /// `system.processes.count`, `system.processes.created`.
    Processes,
    /// `system.uptime` (from `/proc/uptime`).
    Uptime,
}

impl Collector {
    /// Every collector, in batch order.
    pub const ALL: [Collector; 9] = [
        Collector::Cpu,
        Collector::Load,
        Collector::Memory,
        Collector::Paging,
        Collector::Disk,
        Collector::Filesystem,
        Collector::Network,
        Collector::Processes,
        Collector::Uptime,
    ];

    /// The name used in the config's `collectors` list.
    pub fn name(self) -> &'static str {
        match self {
            Collector::Cpu => "cpu",
            Collector::Load => "load",
            Collector::Memory => "memory",
            Collector::Paging => "paging",
            Collector::Disk => "disk",
            Collector::Filesystem => "filesystem",
            Collector::Network => "network",
            Collector::Processes => "processes",
            Collector::Uptime => "uptime",
        }
    }

    /// The collector a config name stands for.
    pub fn from_name(name: &str) -> Option<Collector> {
        Collector::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Filesystem types skipped by default: exactly the default of the Prometheus
/// node_exporter's `--collector.filesystem.fs-types-exclude` on Linux (pseudo and
/// read-only image filesystems). `tmpfs` is *not* in it: tmpfs holds real data in RAM
/// (`/run`, `/tmp` on many systems) and can fill up.
pub const DEFAULT_EXCLUDE_FS_TYPES: [&str; 24] = [
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tracefs",
];

/// Mount point prefixes skipped by default, node_exporter's
/// `--collector.filesystem.mount-points-exclude` default
/// (`^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`)
/// written as prefixes: an entry matches itself and everything below it, and an
/// entry ending in `/` only what is below it.
pub const DEFAULT_EXCLUDE_MOUNTPOINTS: [&str; 6] = [
    "/dev",
    "/proc",
    "/sys",
    "/run/credentials/",
    "/var/lib/docker/",
    "/var/lib/containers/storage/",
];

/// Network interfaces skipped by default: loopback traffic is not host traffic.
pub const DEFAULT_EXCLUDE_NET_DEVICES: [&str; 1] = ["lo"];

/// Block devices skipped by default: loop devices (snap and image mounts) and RAM
/// disks.
pub const DEFAULT_EXCLUDE_DISK_DEVICES: [&str; 2] = ["loop*", "ram*"];

/// Configuration of one system-metrics instance, as written by the user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which groups of metrics to collect; default all of them.
    #[serde(default = "default_collectors")]
    pub collectors: Vec<String>,
    /// The `host.name` resource attribute; default the system hostname.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Where the host's root filesystem is visible: `<root_path>/proc/...` is read and
    /// filesystems are measured at `<root_path>/<mount point>`. Set it to `/host`
    /// when running in a container with the host's `/` mounted there.
    #[serde(default = "default_root_path")]
    pub root_path: PathBuf,
    /// Filesystem filters.
    #[serde(default)]
    pub filesystem: FilesystemConfig,
    /// Network interface filters.
    #[serde(default)]
    pub network: DevicesConfig<NetDefaults>,
    /// Block device filters.
    #[serde(default)]
    pub disk: DevicesConfig<DiskDefaults>,
}

/// `filesystem:` block.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemConfig {
    /// Filesystem types to skip (exact names); default [`DEFAULT_EXCLUDE_FS_TYPES`].
    #[serde(default = "default_fs_types")]
    pub exclude_types: Vec<String>,
    /// Mount point prefixes to skip; default [`DEFAULT_EXCLUDE_MOUNTPOINTS`].
    #[serde(default = "default_mountpoints")]
    pub exclude_mountpoints: Vec<String>,
}

impl Default for FilesystemConfig {
    fn default() -> Self {
        FilesystemConfig {
            exclude_types: default_fs_types(),
            exclude_mountpoints: default_mountpoints(),
        }
    }
}

/// Supplies the default exclusion list of a [`DevicesConfig`].
pub trait DeviceDefaults {
    /// The patterns used when `exclude_devices` is not given.
    fn exclude_devices() -> Vec<String>;
}

/// Defaults of the `network:` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetDefaults;
impl DeviceDefaults for NetDefaults {
    fn exclude_devices() -> Vec<String> {
        DEFAULT_EXCLUDE_NET_DEVICES.map(String::from).to_vec()
    }
}

/// Defaults of the `disk:` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskDefaults;
impl DeviceDefaults for DiskDefaults {
    fn exclude_devices() -> Vec<String> {
        DEFAULT_EXCLUDE_DISK_DEVICES.map(String::from).to_vec()
    }
}

/// `network:` and `disk:` blocks: device names to skip, where `*` matches any run
/// of characters (`loop*`), otherwise the whole name must match.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesConfig<D: DeviceDefaults> {
    /// Patterns of device names to skip.
    #[serde(default = "D::exclude_devices")]
    pub exclude_devices: Vec<String>,
    #[serde(skip)]
    _defaults: std::marker::PhantomData<D>,
}

impl<D: DeviceDefaults> Default for DevicesConfig<D> {
    fn default() -> Self {
        DevicesConfig {
            exclude_devices: D::exclude_devices(),
            _defaults: std::marker::PhantomData,
        }
    }
}

impl<D: DeviceDefaults> DevicesConfig<D> {
    /// A block with these patterns.
    pub fn new(exclude_devices: Vec<String>) -> Self {
        DevicesConfig {
            exclude_devices,
            _defaults: std::marker::PhantomData,
        }
    }
}

fn default_collectors() -> Vec<String> {
    // The order of the brief and the docs; batch order is fixed by `Collector::ALL`.
    [
        "cpu",
        "memory",
        "paging",
        "load",
        "disk",
        "filesystem",
        "network",
        "processes",
        "uptime",
    ]
    .map(String::from)
    .to_vec()
}

fn default_root_path() -> PathBuf {
    PathBuf::from("/")
}

fn default_fs_types() -> Vec<String> {
    DEFAULT_EXCLUDE_FS_TYPES.map(String::from).to_vec()
}

fn default_mountpoints() -> Vec<String> {
    DEFAULT_EXCLUDE_MOUNTPOINTS.map(String::from).to_vec()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            collectors: default_collectors(),
            hostname: None,
            root_path: default_root_path(),
            filesystem: FilesystemConfig::default(),
            network: DevicesConfig::default(),
            disk: DevicesConfig::default(),
        }
    }
}

/// A device-name pattern: `*` matches any run of characters, everything else
/// itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePattern(String);

impl DevicePattern {
    /// A pattern from its text.
    pub fn new(p: impl Into<String>) -> Self {
        DevicePattern(p.into())
    }

    /// True when `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        glob(self.0.as_bytes(), name.as_bytes())
    }
}

/// `*`-only glob match, iterative with one backtrack point (linear in practice, no
/// recursion whatever the pattern).
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// True when `mount_point` is excluded by the prefix `prefix` (see
/// [`DEFAULT_EXCLUDE_MOUNTPOINTS`] for the rule).
pub fn mountpoint_excluded(prefix: &str, mount_point: &str) -> bool {
    if let Some(dir) = prefix.strip_suffix('/') {
        // Only strictly below `dir`.
        return mount_point
            .strip_prefix(dir)
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/'));
    }
    if prefix.is_empty() {
        return false;
    }
    mount_point == prefix
        || mount_point
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A validated configuration, ready for the collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Enabled collectors.
    pub collectors: BTreeSet<Collector>,
    /// Configured hostname, if any.
    pub hostname: Option<String>,
    /// Root of the observed system's filesystem.
    pub root_path: PathBuf,
    /// Filesystem types to skip.
    pub fs_exclude_types: BTreeSet<String>,
    /// Mount point prefixes to skip.
    pub fs_exclude_mountpoints: Vec<String>,
    /// Network interfaces to skip.
    pub net_exclude: Vec<DevicePattern>,
    /// Block devices to skip.
    pub disk_exclude: Vec<DevicePattern>,
}

impl Settings {
    /// True when the mount should not be reported.
    pub fn mount_excluded(&self, fs_type: &str, mount_point: &str) -> bool {
        self.fs_exclude_types.contains(fs_type)
            || self
                .fs_exclude_mountpoints
                .iter()
                .any(|p| mountpoint_excluded(p, mount_point))
    }

    /// True when the network interface should not be reported.
    pub fn net_excluded(&self, device: &str) -> bool {
        self.net_exclude.iter().any(|p| p.matches(device))
    }

    /// True when the block device should not be reported.
    pub fn disk_excluded(&self, device: &str) -> bool {
        self.disk_exclude.iter().any(|p| p.matches(device))
    }
}

impl Config {
    /// Checks everything serde cannot and builds the [`Settings`]; on failure returns
    /// every problem, each with its field path.
    pub fn resolve(self) -> Result<Settings, Vec<ConfigError>> {
        let mut errors = Vec::new();

        let mut collectors = BTreeSet::new();
        if self.collectors.is_empty() {
            errors.push(ConfigError::new(
                "collectors",
                "must name at least one collector (or leave it out to collect everything)",
            ));
        }
        for (i, name) in self.collectors.iter().enumerate() {
            match Collector::from_name(name) {
                Some(c) if !collectors.insert(c) => errors.push(ConfigError::new(
                    format!("collectors[{i}]"),
                    format!("`{name}` is listed twice"),
                )),
                Some(_) => {}
                None => errors.push(ConfigError::new(
                    format!("collectors[{i}]"),
                    format!(
                        "unknown collector `{name}`, expected one of: {}",
                        Collector::ALL.map(Collector::name).join(", ")
                    ),
                )),
            }
        }

        let hostname = match self.hostname {
            Some(h) if h.trim().is_empty() => {
                errors.push(ConfigError::new(
                    "hostname",
                    "must not be empty (leave it out to use the system hostname)",
                ));
                None
            }
            h => h,
        };

        if let Some(msg) = check_root(&self.root_path) {
            errors.push(ConfigError::new("root_path", msg));
        }

        for (i, t) in self.filesystem.exclude_types.iter().enumerate() {
            if t.trim().is_empty() {
                errors.push(ConfigError::new(
                    format!("filesystem.exclude_types[{i}]"),
                    "must not be empty",
                ));
            }
        }
        for (i, m) in self.filesystem.exclude_mountpoints.iter().enumerate() {
            if !m.starts_with('/') || m == "/" {
                errors.push(ConfigError::new(
                    format!("filesystem.exclude_mountpoints[{i}]"),
                    format!(
                        "`{m}` must be an absolute path prefix such as /var/lib/docker/ (and not `/`, \
                         which would exclude everything; remove `filesystem` from `collectors` instead)"
                    ),
                ));
            }
        }
        for (block, list) in [
            ("network", &self.network.exclude_devices),
            ("disk", &self.disk.exclude_devices),
        ] {
            for (i, d) in list.iter().enumerate() {
                if d.is_empty() {
                    errors.push(ConfigError::new(
                        format!("{block}.exclude_devices[{i}]"),
                        "must not be empty",
                    ));
                }
            }
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Settings {
            collectors,
            hostname,
            root_path: self.root_path,
            fs_exclude_types: self.filesystem.exclude_types.into_iter().collect(),
            fs_exclude_mountpoints: self.filesystem.exclude_mountpoints,
            net_exclude: self
                .network
                .exclude_devices
                .into_iter()
                .map(DevicePattern)
                .collect(),
            disk_exclude: self
                .disk
                .exclude_devices
                .into_iter()
                .map(DevicePattern)
                .collect(),
        })
    }
}

/// What is wrong with `root_path`, if anything.
fn check_root(root: &Path) -> Option<String> {
    if !root.is_absolute() {
        return Some(format!("{} must be an absolute path", root.display()));
    }
    let proc = root.join("proc");
    if !proc.join("stat").is_file() {
        return Some(format!(
            "{} has no procfs ({} not found): mount the host's /proc there, or use /",
            root.display(),
            proc.join("stat").display()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, serde_json::Error> {
        serde_json::from_str(json)
    }

    fn paths(errors: &[ConfigError]) -> Vec<&str> {
        errors.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn empty_config_collects_everything_with_node_exporter_filters() {
        let s = parse("{}").unwrap().resolve().unwrap();
        assert_eq!(s.collectors.len(), 9);
        assert_eq!(s.root_path, PathBuf::from("/"));
        assert_eq!(s.hostname, None);
        assert!(s.mount_excluded("proc", "/proc"));
        assert!(s.mount_excluded("overlay", "/"));
        assert!(!s.mount_excluded("tmpfs", "/run"));
        assert!(s.mount_excluded("tmpfs", "/dev/shm"));
        assert!(!s.mount_excluded("ext4", "/var/lib/docker"));
        assert!(s.mount_excluded("ext4", "/var/lib/docker/volumes/x"));
        assert!(!s.mount_excluded("ext4", "/device"));
        assert!(s.net_excluded("lo"));
        assert!(!s.net_excluded("lowpan0"));
        assert!(s.disk_excluded("loop7"));
        assert!(s.disk_excluded("ram0"));
        assert!(!s.disk_excluded("vda"));
        assert!(!s.disk_excluded("zram0"));
    }

    #[test]
    fn default_impl_matches_empty_json() {
        assert_eq!(parse("{}").unwrap(), Config::default());
    }

    #[test]
    fn explicit_empty_lists_disable_filters() {
        let s = parse(
            r#"{"filesystem": {"exclude_types": [], "exclude_mountpoints": []},
                "network": {"exclude_devices": []}, "disk": {"exclude_devices": []}}"#,
        )
        .unwrap()
        .resolve()
        .unwrap();
        assert!(!s.mount_excluded("proc", "/proc"));
        assert!(!s.net_excluded("lo"));
        assert!(!s.disk_excluded("loop0"));
    }

    #[test]
    fn a_partial_block_keeps_the_other_default() {
        let c = parse(r#"{"filesystem": {"exclude_types": ["nfs"]}}"#).unwrap();
        assert_eq!(c.filesystem.exclude_types, ["nfs"]);
        assert_eq!(c.filesystem.exclude_mountpoints, default_mountpoints());
    }

    #[test]
    fn unknown_keys_are_rejected_at_every_level() {
        for json in [
            r#"{"colectors": []}"#,
            r#"{"filesystem": {"exclude_type": []}}"#,
            r#"{"network": {"include_devices": []}}"#,
            r#"{"disk": {"exclude": []}}"#,
        ] {
            let e = parse(json).unwrap_err();
            assert!(e.to_string().contains("unknown field"), "{json}: {e}");
        }
    }

    #[test]
    fn unknown_and_duplicate_collectors_are_reported_by_index() {
        let errors = parse(r#"{"collectors": ["cpu", "gpu", "memory", "cpu"]}"#)
            .unwrap()
            .resolve()
            .unwrap_err();
        assert_eq!(paths(&errors), ["collectors[1]", "collectors[3]"]);
        assert!(errors[0].message.contains("unknown collector `gpu`"));
        assert!(errors[0].message.contains("cpu, load, memory"));
        assert!(errors[1].message.contains("twice"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errors = parse(
            r#"{"collectors": [], "hostname": " ", "root_path": "relative",
                "filesystem": {"exclude_types": [""], "exclude_mountpoints": ["var", "/"]},
                "network": {"exclude_devices": [""]}, "disk": {"exclude_devices": ["", "sd*"]}}"#,
        )
        .unwrap()
        .resolve()
        .unwrap_err();
        assert_eq!(
            paths(&errors),
            [
                "collectors",
                "hostname",
                "root_path",
                "filesystem.exclude_types[0]",
                "filesystem.exclude_mountpoints[0]",
                "filesystem.exclude_mountpoints[1]",
                "network.exclude_devices[0]",
                "disk.exclude_devices[0]",
            ]
        );
    }

    #[test]
    fn root_without_procfs_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config {
            root_path: dir.path().to_path_buf(),
            ..Config::default()
        };
        let errors = c.resolve().unwrap_err();
        assert_eq!(paths(&errors), ["root_path"]);
        assert!(errors[0].message.contains("has no procfs"), "{errors:?}");
    }

    #[test]
    fn glob_patterns() {
        let m = |p: &str, s: &str| DevicePattern::new(p).matches(s);
        assert!(m("lo", "lo"));
        assert!(!m("lo", "lo0"));
        assert!(m("loop*", "loop"));
        assert!(m("loop*", "loop12"));
        assert!(m("*", ""));
        assert!(m("veth*", "veth1a2b"));
        assert!(m("*p1", "nvme0n1p1"));
        assert!(m("sd*1", "sda11"));
        assert!(!m("sd*1", "sda12"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(!m("", "x"));
    }

    #[test]
    fn mountpoint_prefix_rules() {
        assert!(mountpoint_excluded("/sys", "/sys"));
        assert!(mountpoint_excluded("/sys", "/sys/fs/cgroup"));
        assert!(!mountpoint_excluded("/sys", "/sysroot"));
        assert!(!mountpoint_excluded(
            "/run/credentials/",
            "/run/credentials"
        ));
        assert!(!mountpoint_excluded(
            "/run/credentials/",
            "/run/credentials/"
        ));
        assert!(mountpoint_excluded(
            "/run/credentials/",
            "/run/credentials/a.service"
        ));
        assert!(!mountpoint_excluded("", "/"));
    }
}
