//! The I/O side: reads `<root_path>/proc/...`, measures filesystems with
//! `statvfs(3)`, and assembles one [`Batch`] per collection from the pure
//! [`parse`] and [`build`] functions.
//!
//! A collection never sleeps: CPU utilization is computed against the previous
//! collection's counters (kept here), so the first collection has none.
//!
//! Failure policy: each collector is independent. When one cannot read its file,
//! the others still report; the failure is logged (warn the first time, debug while
//! it persists, info on recovery) and shown by [`SystemCollector::problems`]. Only
//! when every enabled collector failed is the collection an error.
//!
//! Reading the host from a container (`root_path: /host`): procfs shows the
//! *reader's* namespaces, so for the mount table and the network counters the
//! files of PID 1 (`<root>/proc/1/mountinfo`, `<root>/proc/1/net/dev`) are read
//! first, as node_exporter does, falling back to `self` when they are not
//! readable. With the default root `/`, the agent's own namespaces are used.

pub mod build;
pub mod parse;

use std::{
    collections::BTreeMap,
    ffi::CString,
    io,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use tfo_plugin_api::{Batch, KeyValue, Metric, PluginError, Resource};

use crate::config::{Collector, Settings};
use build::{FsStats, ProcessCounts, Stamp};
use parse::CpuTicks;

/// Collects host metrics for one plugin instance: the validated settings, the
/// resource attributes, and the state carried between collections.
#[derive(Debug)]
pub struct SystemCollector {
    settings: Settings,
    clk_tck: u64,
    resource: Resource,
    /// Boot time in Unix nanoseconds, read once (`btime` can jitter by a second
    /// between reads on some kernels, and a changing start time would look like a
    /// counter reset to backends).
    boot_time: Option<u64>,
    /// Per-CPU counters of the previous collection, for utilization.
    prev_cpu: Option<Vec<CpuTicks>>,
    /// Collectors whose last attempt failed, with the reason.
    failures: BTreeMap<Collector, String>,
}

impl SystemCollector {
    /// Prepares a collector; reads nothing but the hostname (when not configured)
    /// and `USER_HZ`.
    pub fn new(settings: Settings) -> io::Result<Self> {
        let host_name = match &settings.hostname {
            Some(h) => h.clone(),
            None => system_hostname()?,
        };
        Ok(SystemCollector {
            clk_tck: clock_ticks_per_second(),
            resource: Resource {
                attributes: vec![
                    KeyValue::new("host.name", host_name),
                    KeyValue::new("os.type", "linux"),
                ]
                .into(),
            },
            settings,
            boot_time: None,
            prev_cpu: None,
            failures: BTreeMap::new(),
        })
    }

    /// The resource every batch carries (`host.name`, `os.type`).
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// `USER_HZ`, the unit of `/proc/stat`'s CPU columns.
    pub fn clock_ticks(&self) -> u64 {
        self.clk_tck
    }

    /// Collectors whose last attempt failed, with the reason (empty when all is
    /// well).
    pub fn problems(&self) -> &BTreeMap<Collector, String> {
        &self.failures
    }

    /// One collection, stamped with the current time.
    pub fn collect(&mut self) -> Result<Batch, PluginError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.collect_at(now)
    }

    /// One collection stamped `now_unix_nano` (tests pin the time).
    pub fn collect_at(&mut self, now_unix_nano: u64) -> Result<Batch, PluginError> {
        // /proc/stat serves cpu, processes and the boot time: read it once.
        let needs_stat = self.boot_time.is_none()
            || self.enabled(Collector::Cpu)
            || self.enabled(Collector::Processes);
        let stat = if needs_stat {
            self.read_proc("stat").map(|t| parse::parse_proc_stat(&t))
        } else {
            Err(io::Error::other("not read"))
        };
        if self.boot_time.is_none() {
            // Without btime, the first collection's time is the best known start.
            self.boot_time = Some(
                stat.as_ref()
                    .ok()
                    .and_then(|s| s.btime)
                    .and_then(|b| b.checked_mul(1_000_000_000))
                    .unwrap_or(now_unix_nano),
            );
        }
        let ts = Stamp {
            start: self.boot_time.unwrap_or(now_unix_nano),
            now: now_unix_nano,
        };

        let mut metrics: Vec<Metric> = Vec::new();
        let mut failed = Vec::new();
        let enabled: Vec<Collector> = self.settings.collectors.iter().copied().collect();
        for c in enabled {
            let result = match c {
                Collector::Cpu => self.cpu(&stat, ts),
                Collector::Load => self.load(ts),
                Collector::Memory => self.memory(ts),
                Collector::Paging => self.paging(ts),
                Collector::Disk => self.disk(ts),
                Collector::Filesystem => self.filesystem(ts),
                Collector::Network => self.network(ts),
                Collector::Processes => self.processes(&stat, ts),
                Collector::Uptime => self.uptime(ts),
            };
            match result {
                Ok(m) => {
                    if let Some(old) = self.failures.remove(&c) {
                        tracing::info!(collector = c.name(), "collector recovered (was: {old})");
                    }
                    metrics.extend(m);
                }
                Err(e) => {
                    if self.failures.contains_key(&c) {
                        tracing::debug!(collector = c.name(), "collector still failing: {e}");
                    } else {
                        tracing::warn!(collector = c.name(), "collector failed: {e}");
                    }
                    failed.push(format!("{}: {e}", c.name()));
                    self.failures.insert(c, e);
                }
            }
        }
        if !failed.is_empty() && failed.len() == self.settings.collectors.len() {
            return Err(PluginError::retryable(format!(
                "every collector failed: {}",
                failed.join("; ")
            )));
        }
        Ok(Batch {
            resource: self.resource.clone(),
            metrics: metrics.into(),
            ..Batch::default()
        })
    }

    fn enabled(&self, c: Collector) -> bool {
        self.settings.collectors.contains(&c)
    }

    fn proc_path(&self, rel: &str) -> PathBuf {
        self.settings.root_path.join("proc").join(rel)
    }

    fn read_proc(&self, rel: &str) -> io::Result<String> {
        let p = self.proc_path(rel);
        std::fs::read_to_string(&p)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))
    }

    /// Reads the first readable of `candidates` (relative to `<root>/proc`).
    fn read_proc_first(&self, candidates: &[&str]) -> io::Result<String> {
        let mut last = io::Error::other("no candidate");
        for rel in candidates {
            match self.read_proc(rel) {
                Ok(t) => return Ok(t),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Files that depend on the reader's namespaces: PID 1's first when observing
    /// another root, the agent's own otherwise.
    fn namespaced(&self, own: &'static str, pid1: &'static str) -> Vec<&'static str> {
        if self.settings.root_path == Path::new("/") {
            vec![own]
        } else {
            vec![pid1, own]
        }
    }

    fn cpu(
        &mut self,
        stat: &io::Result<parse::ProcStat>,
        ts: Stamp,
    ) -> Result<Vec<Metric>, String> {
        let stat = stat.as_ref().map_err(|e| e.to_string())?;
        if stat.cpus.is_empty() {
            return Err("no cpuN line in /proc/stat".into());
        }
        let mut out: Vec<Metric> = build::cpu_time(&stat.cpus, self.clk_tck, ts)
            .into_iter()
            .collect();
        if let Some(prev) = &self.prev_cpu {
            out.extend(build::cpu_utilization(prev, &stat.cpus, ts));
        }
        // Keep the previous snapshot for a CPU whose ticks did not move, so the next
        // delta spans a longer interval instead of being skipped again.
        let mut next = stat.cpus.clone();
        if let Some(prev) = &self.prev_cpu {
            for n in &mut next {
                if let Some(p) = prev.iter().find(|p| p.cpu == n.cpu) {
                    if p.total() == n.total() {
                        *n = p.clone();
                    }
                }
            }
        }
        self.prev_cpu = Some(next);
        Ok(out)
    }

    fn load(&self, ts: Stamp) -> Result<Vec<Metric>, String> {
        let text = self.read_proc("loadavg").map_err(|e| e.to_string())?;
        let l = parse::parse_loadavg(&text).ok_or("malformed /proc/loadavg")?;
        Ok(build::load_average(&l, ts))
    }

    fn memory(&self, ts: Stamp) -> Result<Vec<Metric>, String> {
        let text = self.read_proc("meminfo").map_err(|e| e.to_string())?;
        let m = build::memory(&parse::parse_meminfo(&text), ts);
        if m.is_empty() {
            return Err("/proc/meminfo has no MemTotal".into());
        }
        Ok(m)
    }

    fn paging(&self, ts: Stamp) -> Result<Vec<Metric>, String> {
        // A kernel without swap support has no /proc/swaps: no swap, not an error.
        let text = match self.read_proc("swaps") {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.to_string()),
        };
        Ok(build::paging(&parse::parse_swaps(&text), ts)
            .into_iter()
            .collect())
    }

    fn disk(&self, ts: Stamp) -> Result<Vec<Metric>, String> {
        let text = self.read_proc("diskstats").map_err(|e| e.to_string())?;
        let disks: Vec<_> = parse::parse_diskstats(&text)
            .into_iter()
            .filter(|d| !self.settings.disk_excluded(&d.device))
            .collect();
        Ok(build::disk(&disks, ts))
    }

    fn network(&self, ts: Stamp) -> Result<Vec<Metric>, String> {
        let text = self
            .read_proc_first(&self.namespaced("net/dev", "1/net/dev"))
            .map_err(|e| e.to_string())?;
        let devs: Vec<_> = parse::parse_net_dev(&text)
            .into_iter()
            .filter(|d| !self.settings.net_excluded(&d.device))
            .collect();
        Ok(build::network(&devs, ts))
    }

    fn filesystem(&self, ts: Stamp) -> Result<Vec<Metric>, String> {
        let text = self
            .read_proc_first(&self.namespaced("self/mountinfo", "1/mountinfo"))
            .map_err(|e| e.to_string())?;
        // A later mount on the same mount point hides the earlier one: keep the last.
        let mut by_point: BTreeMap<String, parse::Mount> = BTreeMap::new();
        for m in parse::parse_mountinfo(&text) {
            if !self.settings.mount_excluded(&m.fs_type, &m.mount_point) {
                by_point.insert(m.mount_point.clone(), m);
            }
        }
        let mut measured = Vec::with_capacity(by_point.len());
        for (_, m) in by_point {
            let path = self.host_path(&m.mount_point);
            match statvfs(&path) {
                Ok(s) => measured.push((m, s)),
                // Unreachable mounts (permissions, a mount of another namespace) are
                // skipped, not fatal.
                Err(e) => tracing::debug!(
                    mountpoint = %m.mount_point,
                    path = %path.display(),
                    "statvfs failed, skipping: {e}"
                ),
            }
        }
        Ok(build::filesystem(&measured, ts))
    }

    /// Where a path of the observed system is visible to the agent.
    fn host_path(&self, p: &str) -> PathBuf {
        self.settings.root_path.join(p.trim_start_matches('/'))
    }

    fn processes(
        &self,
        stat: &io::Result<parse::ProcStat>,
        ts: Stamp,
    ) -> Result<Vec<Metric>, String> {
        let stat = stat.as_ref().map_err(|e| e.to_string())?;
        let proc_dir = self.settings.root_path.join("proc");
        let entries =
            std::fs::read_dir(&proc_dir).map_err(|e| format!("{}: {e}", proc_dir.display()))?;
        let mut by_status: BTreeMap<&'static str, u64> = BTreeMap::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.is_empty() || !name.as_bytes().iter().all(u8::is_ascii_digit) {
                continue;
            }
            // A process can exit between listing and reading: skip it.
            let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if let Some(state) = parse::parse_pid_state(&text) {
                *by_status.entry(build::process_status(state)).or_default() += 1;
            }
        }
        Ok(build::processes(
            &ProcessCounts {
                by_status,
                procs_running: stat.procs_running,
                procs_blocked: stat.procs_blocked,
                created: stat.processes,
            },
            ts,
        ))
    }

    fn uptime(&self, ts: Stamp) -> Result<Vec<Metric>, String> {
        let text = self.read_proc("uptime").map_err(|e| e.to_string())?;
        let up = parse::parse_uptime(&text).ok_or("malformed /proc/uptime")?;
        Ok(build::uptime(up, ts).into_iter().collect())
    }
}

/// `sysconf(_SC_CLK_TCK)`: the unit of `/proc/stat` CPU times (100 on every
/// mainstream Linux architecture, used when sysconf fails).
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(v).ok().filter(|v| *v > 0).unwrap_or(100)
}

/// The kernel's hostname (`gethostname(2)`).
pub fn system_hostname() -> io::Result<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the call.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let len = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..len]).trim().to_string();
    if name.is_empty() {
        return Err(io::Error::other("the system hostname is empty"));
    }
    Ok(name)
}

/// `statvfs(3)` of a path.
pub fn statvfs(path: &Path) -> io::Result<FsStats> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: all-zero is a valid `struct statvfs` (plain integers).
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `s` a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // The field widths differ between architectures; they are all unsigned.
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    Ok(FsStats {
        frsize: s.f_frsize as u64,
        blocks: s.f_blocks as u64,
        bfree: s.f_bfree as u64,
        bavail: s.f_bavail as u64,
        files: s.f_files as u64,
        ffree: s.f_ffree as u64,
    })
}
