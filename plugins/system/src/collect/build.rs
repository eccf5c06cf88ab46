//! Pure construction of the metrics from parsed procfs data: names, units,
//! instrument types and attributes of the OpenTelemetry Collector's `hostmetrics`
//! receiver (its scrapers' `metadata.yaml`, semantic conventions 1.9.0, the names
//! most backends and dashboards know), e.g. `system.cpu.time{cpu="cpu0",state="user"}`.
//!
//! Instrument mapping: a cumulative monotonic sum is a counter, a cumulative
//! non-monotonic sum an up-down counter (`system.memory.usage`), a gauge a sampled
//! value. Integer quantities (bytes, operations, packets) are `Int` points; seconds
//! and ratios are `Double`. Every sum carries the boot time as its start time.

use std::collections::BTreeMap;

use tfo_plugin_api::{DataPoint, KeyValue, Metric, MetricKind, PointValue, Temporality};

use super::parse::{CpuTicks, DiskStats, LoadAvg, MemInfo, Mount, NetDev, SwapDevice};

/// Timestamps shared by every point of one collection, in Unix nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Start of cumulative sums: the boot time.
    pub start: u64,
    /// Time of the collection.
    pub now: u64,
}

/// The OpenTelemetry instrument a metric is reported as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Cumulative monotonic sum.
    Counter,
    /// Cumulative non-monotonic sum.
    UpDown,
    /// Gauge.
    Gauge,
}

/// Builds a metric; `None` when there is no point (a metric without points says
/// nothing and some backends reject it).
fn metric(
    name: &str,
    description: &str,
    unit: &str,
    shape: Shape,
    ts: Stamp,
    points: Vec<(Vec<KeyValue>, PointValue)>,
) -> Option<Metric> {
    if points.is_empty() {
        return None;
    }
    let (kind, temporality, is_monotonic, start) = match shape {
        Shape::Counter => (MetricKind::Sum, Temporality::Cumulative, true, ts.start),
        Shape::UpDown => (MetricKind::Sum, Temporality::Cumulative, false, ts.start),
        Shape::Gauge => (MetricKind::Gauge, Temporality::Unspecified, false, 0),
    };
    let mut m = Metric::gauge(name, unit, ts.now, 0.0, vec![]);
    m.description = description.into();
    m.kind = kind;
    m.temporality = temporality;
    m.is_monotonic = is_monotonic;
    m.points = points
        .into_iter()
        .map(|(attributes, value)| DataPoint {
            attributes: attributes.into(),
            start_time_unix_nano: start,
            time_unix_nano: ts.now,
            value,
        })
        .collect::<Vec<_>>()
        .into();
    Some(m)
}

/// Saturating conversion for counters the kernel keeps as u64.
fn int(v: u64) -> PointValue {
    PointValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

fn double(v: f64) -> PointValue {
    PointValue::Double(v)
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue::new(key, value)
}

/// `system.cpu.time`: seconds each logical CPU spent in each state (ticks divided
/// by `USER_HZ`).
pub fn cpu_time(cpus: &[CpuTicks], clk_tck: u64, ts: Stamp) -> Option<Metric> {
    let hz = clk_tck.max(1) as f64;
    let points = cpus
        .iter()
        .flat_map(|c| {
            c.states().into_iter().map(move |(state, ticks)| {
                (
                    vec![kv("cpu", &c.cpu), kv("state", state)],
                    double(ticks as f64 / hz),
                )
            })
        })
        .collect();
    metric(
        "system.cpu.time",
        "Seconds each logical CPU spent in each mode.",
        "s",
        Shape::Counter,
        ts,
        points,
    )
}

/// `system.cpu.utilization`: per logical CPU and state, the state's share of the
/// CPU's time since the previous collection (each CPU's states sum to 1). A CPU is
/// left out when it is new, when no tick elapsed, or when a counter went backwards
/// (CPU hot-plug resets them).
pub fn cpu_utilization(prev: &[CpuTicks], cur: &[CpuTicks], ts: Stamp) -> Option<Metric> {
    let mut points = Vec::new();
    for c in cur {
        let Some(p) = prev.iter().find(|p| p.cpu == c.cpu) else {
            continue;
        };
        let (now, before) = (c.states(), p.states());
        let deltas: Option<Vec<u64>> = now
            .iter()
            .zip(before.iter())
            .map(|((_, n), (_, b))| n.checked_sub(*b))
            .collect();
        let Some(deltas) = deltas else { continue };
        let elapsed: u64 = deltas.iter().fold(0u64, |a, d| a.saturating_add(*d));
        if elapsed == 0 {
            continue;
        }
        for ((state, _), d) in now.iter().zip(deltas) {
            points.push((
                vec![kv("cpu", &c.cpu), kv("state", state)],
                double(d as f64 / elapsed as f64),
            ));
        }
    }
    metric(
        "system.cpu.utilization",
        "Share of each logical CPU's time spent in each mode since the previous collection (0 to 1).",
        "1",
        Shape::Gauge,
        ts,
        points,
    )
}

/// `system.cpu.load_average.1m`, `.5m`, `.15m`.
pub fn load_average(l: &LoadAvg, ts: Stamp) -> Vec<Metric> {
    [
        ("system.cpu.load_average.1m", "1 minute", l.one),
        ("system.cpu.load_average.5m", "5 minutes", l.five),
        ("system.cpu.load_average.15m", "15 minutes", l.fifteen),
    ]
    .into_iter()
    .filter_map(|(name, span, v)| {
        metric(
            name,
            &format!("Average number of runnable and uninterruptible tasks over {span}."),
            "{thread}",
            Shape::Gauge,
            ts,
            vec![(vec![], double(v))],
        )
    })
    .collect()
}

/// Physical memory split into disjoint states that add up to `MemTotal`.
///
/// `cached` is the page cache (`Cached`, which includes tmpfs/shmem), the slab
/// states are the kernel's slab allocator, and `used` is everything else (process
/// memory, kernel stacks, page tables...). This differs from the Collector's
/// gopsutil-based numbers, which fold `SReclaimable` into `cached` and so count it
/// twice; here the six states partition the total exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBreakdown {
    /// `MemTotal`.
    pub total: u64,
    /// Total minus all the other states (never negative).
    pub used: u64,
    /// `MemFree`.
    pub free: u64,
    /// `Buffers`.
    pub buffered: u64,
    /// `Cached`.
    pub cached: u64,
    /// `SReclaimable`.
    pub slab_reclaimable: u64,
    /// `SUnreclaim`.
    pub slab_unreclaimable: u64,
}

impl MemoryBreakdown {
    /// From `/proc/meminfo`; `None` without a positive `MemTotal`. Missing fields
    /// (old kernels lack the slab split) count as zero.
    pub fn from_meminfo(m: &MemInfo) -> Option<MemoryBreakdown> {
        let total = m.get("MemTotal").filter(|t| *t > 0)?;
        let g = |k| m.get(k).unwrap_or(0);
        let (free, buffered, cached) = (g("MemFree"), g("Buffers"), g("Cached"));
        let (slab_reclaimable, slab_unreclaimable) = (g("SReclaimable"), g("SUnreclaim"));
        let others = [free, buffered, cached, slab_reclaimable, slab_unreclaimable]
            .iter()
            .fold(0u64, |a, v| a.saturating_add(*v));
        Some(MemoryBreakdown {
            total,
            used: total.saturating_sub(others),
            free,
            buffered,
            cached,
            slab_reclaimable,
            slab_unreclaimable,
        })
    }

    /// The states with their OpenTelemetry names, in a fixed order.
    pub fn states(&self) -> [(&'static str, u64); 6] {
        [
            ("used", self.used),
            ("free", self.free),
            ("buffered", self.buffered),
            ("cached", self.cached),
            ("slab_reclaimable", self.slab_reclaimable),
            ("slab_unreclaimable", self.slab_unreclaimable),
        ]
    }
}

/// `system.memory.usage` (bytes by state) and `system.memory.utilization` (share of
/// `MemTotal` by state); nothing without `MemTotal`.
pub fn memory(m: &MemInfo, ts: Stamp) -> Vec<Metric> {
    let Some(b) = MemoryBreakdown::from_meminfo(m) else {
        tracing::debug!("/proc/meminfo has no MemTotal: no memory metrics");
        return Vec::new();
    };
    let usage = b
        .states()
        .into_iter()
        .map(|(state, v)| (vec![kv("state", state)], int(v)))
        .collect();
    let utilization = b
        .states()
        .into_iter()
        .map(|(state, v)| (vec![kv("state", state)], double(v as f64 / b.total as f64)))
        .collect();
    [
        metric(
            "system.memory.usage",
            "Bytes of physical memory in each state; the states add up to the total.",
            "By",
            Shape::UpDown,
            ts,
            usage,
        ),
        metric(
            "system.memory.utilization",
            "Share of physical memory in each state (0 to 1).",
            "1",
            Shape::Gauge,
            ts,
            utilization,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// `system.paging.usage`: bytes used and free of each swap area.
pub fn paging(swaps: &[SwapDevice], ts: Stamp) -> Option<Metric> {
    let points = swaps
        .iter()
        .flat_map(|s| {
            [
                ("used", s.used_bytes),
                ("free", s.size_bytes.saturating_sub(s.used_bytes)),
            ]
            .map(|(state, v)| (vec![kv("device", &s.device), kv("state", state)], int(v)))
        })
        .collect();
    metric(
        "system.paging.usage",
        "Bytes of each swap area in use and free.",
        "By",
        Shape::UpDown,
        ts,
        points,
    )
}

/// The `system.disk.*` metrics of the given devices (already filtered).
pub fn disk(disks: &[DiskStats], ts: Stamp) -> Vec<Metric> {
    let dir = |d: &DiskStats, f: fn(&DiskStats) -> (u64, u64), conv: fn(u64) -> PointValue| {
        let (r, w) = f(d);
        [("read", r), ("write", w)].map(|(direction, v)| {
            (
                vec![kv("device", &d.device), kv("direction", direction)],
                conv(v),
            )
        })
    };
    let per_dir = |f: fn(&DiskStats) -> (u64, u64), conv: fn(u64) -> PointValue| {
        disks.iter().flat_map(|d| dir(d, f, conv)).collect()
    };
    let per_dev = |f: fn(&DiskStats) -> PointValue| {
        disks
            .iter()
            .map(|d| (vec![kv("device", &d.device)], f(d)))
            .collect()
    };
    fn bytes(sectors: u64) -> PointValue {
        int(sectors.saturating_mul(512))
    }
    fn secs(ms: u64) -> PointValue {
        double(ms as f64 / 1000.0)
    }
    [
        metric(
            "system.disk.io",
            "Bytes read from and written to the device.",
            "By",
            Shape::Counter,
            ts,
            per_dir(|d| (d.sectors_read, d.sectors_written), bytes),
        ),
        metric(
            "system.disk.operations",
            "Read and write operations completed.",
            "{operations}",
            Shape::Counter,
            ts,
            per_dir(|d| (d.reads_completed, d.writes_completed), int),
        ),
        metric(
            "system.disk.io_time",
            "Seconds the device had I/O in flight.",
            "s",
            Shape::Counter,
            ts,
            per_dev(|d| secs(d.io_time_ms)),
        ),
        metric(
            "system.disk.operation_time",
            "Seconds spent in read and in write operations (summed over concurrent operations).",
            "s",
            Shape::Counter,
            ts,
            per_dir(|d| (d.read_time_ms, d.write_time_ms), secs),
        ),
        metric(
            "system.disk.weighted_io_time",
            "Seconds of I/O in flight multiplied by the number of operations in flight.",
            "s",
            Shape::Counter,
            ts,
            per_dev(|d| secs(d.weighted_io_time_ms)),
        ),
        metric(
            "system.disk.pending_operations",
            "I/O operations in flight now.",
            "{operations}",
            Shape::UpDown,
            ts,
            per_dev(|d| int(d.ios_in_progress)),
        ),
        metric(
            "system.disk.merged",
            "Adjacent reads and writes merged into one device operation.",
            "{operations}",
            Shape::Counter,
            ts,
            per_dir(|d| (d.reads_merged, d.writes_merged), int),
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// What `statvfs(3)` says about one filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStats {
    /// Fragment size: the unit of the block counts.
    pub frsize: u64,
    /// Size in fragments.
    pub blocks: u64,
    /// Free fragments.
    pub bfree: u64,
    /// Free fragments available to unprivileged users.
    pub bavail: u64,
    /// Inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
}

impl FsStats {
    /// (used, free, reserved) bytes: free is what unprivileged users can still
    /// write, reserved what only root can (ext4's reserved blocks).
    pub fn bytes(&self) -> (u64, u64, u64) {
        let f = |blocks: u64| blocks.saturating_mul(self.frsize);
        (
            f(self.blocks.saturating_sub(self.bfree)),
            f(self.bavail),
            f(self.bfree.saturating_sub(self.bavail)),
        )
    }
}

/// `system.filesystem.usage`, `system.filesystem.inodes.usage` and
/// `system.filesystem.utilization` (used / (used + free), as `df`'s Use%) of the
/// given mounts (already filtered and measured).
pub fn filesystem(mounts: &[(Mount, FsStats)], ts: Stamp) -> Vec<Metric> {
    let attrs = |m: &Mount| {
        vec![
            kv("device", &m.source),
            kv("mode", if m.read_only { "ro" } else { "rw" }),
            kv("mountpoint", &m.mount_point),
            kv("type", &m.fs_type),
        ]
    };
    let with_state = |m: &Mount, state: &str| {
        let mut a = attrs(m);
        a.push(kv("state", state));
        a
    };
    let mut usage = Vec::new();
    let mut inodes = Vec::new();
    let mut utilization = Vec::new();
    for (m, s) in mounts {
        let (used, free, reserved) = s.bytes();
        for (state, v) in [("used", used), ("free", free), ("reserved", reserved)] {
            usage.push((with_state(m, state), int(v)));
        }
        let inodes_used = s.files.saturating_sub(s.ffree);
        for (state, v) in [("used", inodes_used), ("free", s.ffree)] {
            inodes.push((with_state(m, state), int(v)));
        }
        let usable = used.saturating_add(free);
        if usable > 0 {
            utilization.push((attrs(m), double(used as f64 / usable as f64)));
        }
    }
    [
        metric(
            "system.filesystem.usage",
            "Filesystem bytes used, free (available to unprivileged users) and reserved (for root).",
            "By",
            Shape::UpDown,
            ts,
            usage,
        ),
        metric(
            "system.filesystem.inodes.usage",
            "Filesystem inodes used and free.",
            "{inodes}",
            Shape::UpDown,
            ts,
            inodes,
        ),
        metric(
            "system.filesystem.utilization",
            "Share of the filesystem's usable bytes in use, used / (used + free), as df's Use%.",
            "1",
            Shape::Gauge,
            ts,
            utilization,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The `system.network.*` metrics of the given interfaces (already filtered).
pub fn network(devs: &[NetDev], ts: Stamp) -> Vec<Metric> {
    let per_dir = |f: fn(&NetDev) -> (u64, u64)| -> Vec<(Vec<KeyValue>, PointValue)> {
        devs.iter()
            .flat_map(|d| {
                let (rx, tx) = f(d);
                [("receive", rx), ("transmit", tx)].map(|(direction, v)| {
                    (
                        vec![kv("device", &d.device), kv("direction", direction)],
                        int(v),
                    )
                })
            })
            .collect()
    };
    [
        metric(
            "system.network.io",
            "Bytes received and transmitted.",
            "By",
            Shape::Counter,
            ts,
            per_dir(|d| (d.rx_bytes, d.tx_bytes)),
        ),
        metric(
            "system.network.packets",
            "Packets received and transmitted.",
            "{packets}",
            Shape::Counter,
            ts,
            per_dir(|d| (d.rx_packets, d.tx_packets)),
        ),
        metric(
            "system.network.errors",
            "Receive and transmit errors.",
            "{errors}",
            Shape::Counter,
            ts,
            per_dir(|d| (d.rx_errors, d.tx_errors)),
        ),
        metric(
            "system.network.dropped",
            "Packets dropped on receive and on transmit.",
            "{packets}",
            Shape::Counter,
            ts,
            per_dir(|d| (d.rx_dropped, d.tx_dropped)),
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The `status` attribute value of a `/proc/<pid>/stat` state letter (the
/// Collector's mapping through gopsutil: `D` is blocked, `W` paging, `T`/`t`
/// stopped); letters without an OpenTelemetry status (`X` dead, `P` parked...) are
/// `unknown`.
pub fn process_status(state: char) -> &'static str {
    match state {
        'R' => "running",
        'S' => "sleeping",
        'D' => "blocked",
        'Z' => "zombies",
        'T' | 't' => "stopped",
        'I' => "idle",
        'W' => "paging",
        _ => "unknown",
    }
}

/// What the processes collector measured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessCounts {
    /// Processes by `status` value, from the per-process state letters.
    pub by_status: BTreeMap<&'static str, u64>,
    /// `procs_running` of `/proc/stat`.
    pub procs_running: Option<u64>,
    /// `procs_blocked` of `/proc/stat`.
    pub procs_blocked: Option<u64>,
    /// `processes` of `/proc/stat`: tasks created since boot.
    pub created: Option<u64>,
}

/// `system.processes.count` by status and `system.processes.created`. As in the
/// Collector, `running` and `blocked` come from `/proc/stat` (one consistent kernel
/// snapshot, counting runnable and I/O-blocked tasks) rather than from the
/// per-process scan, which races with processes changing state while it reads.
pub fn processes(p: &ProcessCounts, ts: Stamp) -> Vec<Metric> {
    let mut by_status = p.by_status.clone();
    if let Some(r) = p.procs_running {
        by_status.insert("running", r);
    }
    if let Some(b) = p.procs_blocked {
        by_status.insert("blocked", b);
    }
    let count = by_status
        .into_iter()
        .map(|(status, n)| (vec![kv("status", status)], int(n)))
        .collect();
    let created = p
        .created
        .map(|c| vec![(vec![], int(c))])
        .unwrap_or_default();
    [
        metric(
            "system.processes.count",
            "Processes in each status.",
            "{processes}",
            Shape::UpDown,
            ts,
            count,
        ),
        metric(
            "system.processes.created",
            "Processes and threads created since boot.",
            "{processes}",
            Shape::Counter,
            ts,
            created,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// `system.uptime`: seconds since boot.
pub fn uptime(seconds: f64, ts: Stamp) -> Option<Metric> {
    metric(
        "system.uptime",
        "Seconds since the system booted.",
        "s",
        Shape::Gauge,
        ts,
        vec![(vec![], double(seconds))],
    )
}
