//! Pure parsers for the Linux procfs files the plugin reads. Each takes the file's
//! text and returns plain structs, so every format is pinned by golden tests over
//! sample files (`tests/data/`) without touching the machine.
//!
//! Formats follow the kernel's documentation of procfs
//! (<https://www.kernel.org/doc/html/latest/filesystems/proc.html>: `/proc/stat`,
//! `/proc/meminfo`, `/proc/loadavg`, `/proc/uptime`, `/proc/<pid>/stat`,
//! `/proc/<pid>/mountinfo`, `/proc/net/dev`, `/proc/swaps`) and of block I/O
//! statistics (<https://www.kernel.org/doc/html/latest/admin-guide/iostats.html>:
//! `/proc/diskstats`).
//!
//! Robustness rule: the content comes from the kernel, or from whatever is mounted
//! under `root_path`, and is not trusted. A line that does not have the expected
//! shape is skipped and logged at debug level; nothing here panics, indexes without
//! a check, or does unchecked arithmetic on parsed numbers.

use std::collections::BTreeMap;

/// Longest part of a malformed line quoted in a debug log.
const QUOTE_MAX: usize = 120;

fn skip(file: &str, line: &str, why: &str) {
    let quoted: String = line.chars().take(QUOTE_MAX).collect();
    tracing::debug!(file, line = %quoted, "skipping malformed line: {why}");
}

fn num(s: &str) -> Option<u64> {
    s.parse().ok()
}

/// Jiffies one logical CPU spent in each mode, from a `cpu` / `cpuN` line of
/// `/proc/stat`. `guest` and `guest_nice` are not kept: the kernel already counts
/// them inside `user` and `nice`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuTicks {
    /// `cpu0`, `cpu1`... (`cpu` for the all-CPU line).
    pub cpu: String,
    /// Normal processes in user mode (includes guest time).
    pub user: u64,
    /// Niced processes in user mode (includes guest_nice time).
    pub nice: u64,
    /// Kernel mode.
    pub system: u64,
    /// Idle.
    pub idle: u64,
    /// Waiting for I/O to complete.
    pub iowait: u64,
    /// Servicing hardware interrupts.
    pub irq: u64,
    /// Servicing softirqs.
    pub softirq: u64,
    /// Stolen by the hypervisor.
    pub steal: u64,
}

impl CpuTicks {
    /// The eight modes, named as the OpenTelemetry `state` attribute values
    /// (`iowait` is `wait`, `irq` is `interrupt`), in a fixed order.
    pub fn states(&self) -> [(&'static str, u64); 8] {
        [
            ("user", self.user),
            ("nice", self.nice),
            ("system", self.system),
            ("idle", self.idle),
            ("wait", self.iowait),
            ("interrupt", self.irq),
            ("softirq", self.softirq),
            ("steal", self.steal),
        ]
    }

    /// Sum of the eight modes: the CPU's whole accounted time.
    pub fn total(&self) -> u64 {
        self.states()
            .iter()
            .fold(0u64, |acc, (_, v)| acc.saturating_add(*v))
    }
}

/// What the plugin uses from `/proc/stat`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcStat {
    /// The all-CPU `cpu` line.
    pub total: Option<CpuTicks>,
    /// One entry per `cpuN` line, in file order.
    pub cpus: Vec<CpuTicks>,
    /// Boot time, seconds since the Unix epoch (`btime`).
    pub btime: Option<u64>,
    /// Processes and threads created since boot (`processes`).
    pub processes: Option<u64>,
    /// Runnable tasks now (`procs_running`).
    pub procs_running: Option<u64>,
    /// Tasks blocked on I/O now (`procs_blocked`).
    pub procs_blocked: Option<u64>,
}

/// Parses `/proc/stat`. CPU lines need at least user, nice, system and idle (older
/// kernels stop there); missing later columns count as zero.
pub fn parse_proc_stat(text: &str) -> ProcStat {
    const FILE: &str = "/proc/stat";
    let mut out = ProcStat::default();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(key) = fields.next() else { continue };
        if let Some(suffix) = key.strip_prefix("cpu") {
            if !suffix.bytes().all(|b| b.is_ascii_digit()) {
                skip(FILE, line, "cpu line with a bad name");
                continue;
            }
            let values: Option<Vec<u64>> = fields.map(num).collect();
            let Some(values) = values.filter(|v| v.len() >= 4) else {
                skip(FILE, line, "cpu line needs at least four numeric columns");
                continue;
            };
            let at = |i: usize| values.get(i).copied().unwrap_or(0);
            let ticks = CpuTicks {
                cpu: key.to_string(),
                user: at(0),
                nice: at(1),
                system: at(2),
                idle: at(3),
                iowait: at(4),
                irq: at(5),
                softirq: at(6),
                steal: at(7),
            };
            if suffix.is_empty() {
                out.total = Some(ticks);
            } else {
                out.cpus.push(ticks);
            }
            continue;
        }
        let slot = match key {
            "btime" => &mut out.btime,
            "processes" => &mut out.processes,
            "procs_running" => &mut out.procs_running,
            "procs_blocked" => &mut out.procs_blocked,
            _ => continue,
        };
        match fields.next().and_then(num) {
            Some(v) => *slot = Some(v),
            None => skip(FILE, line, "expected one number"),
        }
    }
    out
}

/// `/proc/meminfo` as a map from field name to value; `kB` values are converted to
/// bytes, unit-less ones (`HugePages_Total`) are kept as they are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemInfo(pub BTreeMap<String, u64>);

impl MemInfo {
    /// A field's value, if the file had it.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.0.get(key).copied()
    }
}

/// Parses `/proc/meminfo` (`Name:   value kB` lines).
pub fn parse_meminfo(text: &str) -> MemInfo {
    const FILE: &str = "/proc/meminfo";
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, rest)) = line.split_once(':') else {
            skip(FILE, line, "no ':'");
            continue;
        };
        let mut parts = rest.split_ascii_whitespace();
        let value = parts.next().and_then(num);
        let unit = parts.next();
        let bytes = match (value, unit, parts.next()) {
            (Some(v), None, None) => Some(v),
            (Some(v), Some("kB"), None) => v.checked_mul(1024),
            _ => None,
        };
        match bytes {
            Some(b) => {
                out.insert(name.trim().to_string(), b);
            }
            None => skip(FILE, line, "expected `<number>` or `<number> kB`"),
        }
    }
    MemInfo(out)
}

/// The three load averages of `/proc/loadavg`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LoadAvg {
    /// Over one minute.
    pub one: f64,
    /// Over five minutes.
    pub five: f64,
    /// Over fifteen minutes.
    pub fifteen: f64,
}

/// Parses `/proc/loadavg` (`0.16 0.51 0.47 1/85 28404`); `None` when the first three
/// fields are not finite non-negative numbers.
pub fn parse_loadavg(text: &str) -> Option<LoadAvg> {
    let mut f = text
        .split_ascii_whitespace()
        .map(|s| s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0));
    let parsed = (|| {
        Some(LoadAvg {
            one: f.next()??,
            five: f.next()??,
            fifteen: f.next()??,
        })
    })();
    if parsed.is_none() {
        skip("/proc/loadavg", text, "expected three load averages");
    }
    parsed
}

/// Parses `/proc/uptime` (`1699.00 2622.92`): seconds since boot, the first field.
pub fn parse_uptime(text: &str) -> Option<f64> {
    let up = text
        .split_ascii_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0);
    if up.is_none() {
        skip("/proc/uptime", text, "expected seconds since boot");
    }
    up
}

/// One block device's line of `/proc/diskstats` (the first eleven statistics; the
/// discard and flush columns of newer kernels are not used).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiskStats {
    /// Major device number.
    pub major: u32,
    /// Minor device number.
    pub minor: u32,
    /// Kernel name of the device (`vda`, `nvme0n1p1`).
    pub device: String,
    /// Reads completed.
    pub reads_completed: u64,
    /// Adjacent reads merged before being issued.
    pub reads_merged: u64,
    /// 512-byte sectors read (always 512 bytes, whatever the device's sector size).
    pub sectors_read: u64,
    /// Milliseconds spent reading.
    pub read_time_ms: u64,
    /// Writes completed.
    pub writes_completed: u64,
    /// Adjacent writes merged.
    pub writes_merged: u64,
    /// 512-byte sectors written.
    pub sectors_written: u64,
    /// Milliseconds spent writing.
    pub write_time_ms: u64,
    /// I/Os currently in flight.
    pub ios_in_progress: u64,
    /// Milliseconds the device had I/O in flight.
    pub io_time_ms: u64,
    /// Milliseconds of I/O in flight, weighted by the number in flight.
    pub weighted_io_time_ms: u64,
}

/// Parses `/proc/diskstats`. Lines need the 3 identity columns and 11 statistics
/// (kernels since 2.6.25 print those for every device and partition; 4.18 adds
/// discards, 5.5 flushes).
pub fn parse_diskstats(text: &str) -> Vec<DiskStats> {
    const FILE: &str = "/proc/diskstats";
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        if fields.len() < 14 {
            skip(FILE, line, "fewer than 14 columns");
            continue;
        }
        let (Ok(major), Ok(minor)) = (fields[0].parse::<u32>(), fields[1].parse::<u32>()) else {
            skip(FILE, line, "bad device numbers");
            continue;
        };
        let stats: Option<Vec<u64>> = fields[3..14].iter().map(|s| num(s)).collect();
        let Some(s) = stats else {
            skip(FILE, line, "non-numeric statistic");
            continue;
        };
        out.push(DiskStats {
            major,
            minor,
            device: fields[2].to_string(),
            reads_completed: s[0],
            reads_merged: s[1],
            sectors_read: s[2],
            read_time_ms: s[3],
            writes_completed: s[4],
            writes_merged: s[5],
            sectors_written: s[6],
            write_time_ms: s[7],
            ios_in_progress: s[8],
            io_time_ms: s[9],
            weighted_io_time_ms: s[10],
        });
    }
    out
}

/// One interface's counters from `/proc/net/dev`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetDev {
    /// Interface name.
    pub device: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Packets dropped on transmit.
    pub tx_dropped: u64,
}

/// Parses `/proc/net/dev`: two header lines, then `name: 8 receive columns 8
/// transmit columns`. Interface names cannot contain `:`, so the first one ends the
/// name (old kernels print no space after it when the byte count is wide).
pub fn parse_net_dev(text: &str) -> Vec<NetDev> {
    const FILE: &str = "/proc/net/dev";
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            // The two header lines have no ':'.
            if !line.contains('|') && !line.trim().is_empty() {
                skip(FILE, line, "no ':'");
            }
            continue;
        };
        let name = name.trim();
        let values: Option<Vec<u64>> = rest.split_ascii_whitespace().map(num).collect();
        match values {
            Some(v) if v.len() >= 16 && !name.is_empty() => out.push(NetDev {
                device: name.to_string(),
                rx_bytes: v[0],
                rx_packets: v[1],
                rx_errors: v[2],
                rx_dropped: v[3],
                tx_bytes: v[8],
                tx_packets: v[9],
                tx_errors: v[10],
                tx_dropped: v[11],
            }),
            _ => skip(FILE, line, "expected a name and 16 numbers"),
        }
    }
    out
}

/// One active swap area from `/proc/swaps`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SwapDevice {
    /// The swap file or partition path.
    pub device: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Bytes in use.
    pub used_bytes: u64,
}

/// Parses `/proc/swaps` (`Filename Type Size Used Priority`, sizes in KiB). The
/// header is recognised by its first word; paths are octal-unescaped.
pub fn parse_swaps(text: &str) -> Vec<SwapDevice> {
    const FILE: &str = "/proc/swaps";
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.is_empty() || f[0] == "Filename" {
            continue;
        }
        let sizes = match (f.get(2).and_then(|s| num(s)), f.get(3).and_then(|s| num(s))) {
            (Some(size), Some(used)) => size.checked_mul(1024).zip(used.checked_mul(1024)),
            _ => None,
        };
        match sizes {
            Some((size_bytes, used_bytes)) => out.push(SwapDevice {
                device: unescape_octal(f[0]),
                size_bytes,
                used_bytes,
            }),
            None => skip(FILE, line, "expected name, type, size and used"),
        }
    }
    out
}

/// One mount from `/proc/<pid>/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    /// Where it is mounted, in the mount namespace of the process read.
    pub mount_point: String,
    /// Filesystem type (`ext4`, `tmpfs`, `fuse.sshfs`).
    pub fs_type: String,
    /// Mount source (`/dev/vda`, `tmpfs`, `server:/export`).
    pub source: String,
    /// True when the mount or its superblock is read-only.
    pub read_only: bool,
}

/// Parses `/proc/<pid>/mountinfo`:
/// `36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
/// (mount id, parent id, major:minor, root, mount point, mount options, optional
/// fields ended by `-`, type, source, superblock options). Octal escapes (`\040` for a
/// space) in paths are decoded.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    const FILE: &str = "mountinfo";
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').filter(|s| !s.is_empty()).collect();
        if f.is_empty() {
            continue;
        }
        let Some(sep) = f.iter().skip(6).position(|s| *s == "-").map(|p| p + 6) else {
            skip(FILE, line, "no '-' separator after six fields");
            continue;
        };
        let (Some(fs_type), Some(source)) = (f.get(sep + 1), f.get(sep + 2)) else {
            skip(FILE, line, "no type and source after '-'");
            continue;
        };
        let has_ro = |opts: Option<&&str>| opts.is_some_and(|o| o.split(',').any(|x| x == "ro"));
        out.push(Mount {
            mount_point: unescape_octal(f[4]),
            fs_type: unescape_octal(fs_type),
            source: unescape_octal(source),
            read_only: has_ro(f.get(5)) || has_ro(f.get(sep + 3)),
        });
    }
    out
}

/// The one-letter state of a task from `/proc/<pid>/stat` (`1 (bash) S 0 ...`). The
/// command name may contain spaces and parentheses, so the state is the first field
/// after the *last* `)`.
pub fn parse_pid_state(text: &str) -> Option<char> {
    let state = text
        .rfind(')')
        .and_then(|i| text.get(i + 1..))
        .and_then(|rest| rest.split_ascii_whitespace().next())
        .and_then(|s| {
            let mut c = s.chars();
            c.next()
                .filter(|ch| ch.is_ascii_alphabetic() && c.next().is_none())
        });
    if state.is_none() {
        skip(
            "/proc/<pid>/stat",
            text,
            "no state letter after the command name",
        );
    }
    state
}

/// Decodes the `\ooo` octal escapes the kernel uses for space, tab, newline and
/// backslash in paths; anything else is kept as it is.
pub fn unescape_octal(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let digits = &b[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(v) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
