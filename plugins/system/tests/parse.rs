//! Golden tests of the procfs parsers, over files copied from a real machine
//! (Debian 12 guest, kernel 6.18, 2 vCPUs: `tests/data/*.txt`) plus small
//! hand-written samples for shapes that machine does not show (swap areas, escaped
//! mount points, older kernels' shorter lines), and a robustness test feeding every
//! parser truncated and corrupted input.

use tfo_system::collect::parse::*;

const PROC_STAT: &str = include_str!("data/proc_stat.txt");
const MEMINFO: &str = include_str!("data/meminfo.txt");
const DISKSTATS: &str = include_str!("data/diskstats.txt");
const NET_DEV: &str = include_str!("data/net_dev.txt");
const LOADAVG: &str = include_str!("data/loadavg.txt");
const UPTIME: &str = include_str!("data/uptime.txt");
const MOUNTINFO: &str = include_str!("data/mountinfo.txt");
const SWAPS: &str = include_str!("data/swaps.txt");
const PID_STAT: &str = include_str!("data/pid_stat.txt");

fn cpu(name: &str, v: [u64; 8]) -> CpuTicks {
    CpuTicks {
        cpu: name.into(),
        user: v[0],
        nice: v[1],
        system: v[2],
        idle: v[3],
        iowait: v[4],
        irq: v[5],
        softirq: v[6],
        steal: v[7],
    }
}

#[test]
fn proc_stat_sample() {
    let s = parse_proc_stat(PROC_STAT);
    assert_eq!(
        s,
        ProcStat {
            total: Some(cpu("cpu", [59870, 0, 13897, 272697, 2633, 0, 154, 75])),
            cpus: vec![
                cpu("cpu0", [28450, 0, 6046, 139343, 763, 0, 17, 33]),
                cpu("cpu1", [31419, 0, 7851, 133353, 1869, 0, 136, 42]),
            ],
            btime: Some(1795613689),
            processes: Some(28965),
            procs_running: Some(3),
            procs_blocked: Some(0),
        }
    );
    assert_eq!(s.cpus[0].total(), 28450 + 6046 + 139343 + 763 + 17 + 33);
    assert_eq!(
        s.cpus[0].states().map(|(n, _)| n),
        [
            "user",
            "nice",
            "system",
            "idle",
            "wait",
            "interrupt",
            "softirq",
            "steal"
        ]
    );
}

#[test]
fn proc_stat_old_kernel_and_malformed_lines() {
    // 2.6.0-era lines have only four columns; garbage lines are skipped.
    let text = "cpu  10 20 30 40\ncpu0 1 2 3 4\ncpuX 1 2 3 4\ncpu1 1 2 x 4\ncpu2 1 2\n\
                btime\nbtime abc\nprocesses 7\nprocs_running 1 2\n";
    let s = parse_proc_stat(text);
    assert_eq!(s.total, Some(cpu("cpu", [10, 20, 30, 40, 0, 0, 0, 0])));
    assert_eq!(s.cpus, vec![cpu("cpu0", [1, 2, 3, 4, 0, 0, 0, 0])]);
    assert_eq!(s.btime, None);
    assert_eq!(s.processes, Some(7));
    assert_eq!(s.procs_running, Some(1));
}

#[test]
fn meminfo_sample() {
    let m = parse_meminfo(MEMINFO);
    assert_eq!(m.0.len(), 54, "every line of the sample parses");
    assert_eq!(m.get("MemTotal"), Some(24684092 * 1024));
    assert_eq!(m.get("MemFree"), Some(22989516 * 1024));
    assert_eq!(m.get("Buffers"), Some(10784 * 1024));
    assert_eq!(m.get("Cached"), Some(1098352 * 1024));
    assert_eq!(m.get("SReclaimable"), Some(128824 * 1024));
    assert_eq!(m.get("SUnreclaim"), Some(28032 * 1024));
    assert_eq!(m.get("Active(file)"), Some(499052 * 1024));
    assert_eq!(m.get("SwapTotal"), Some(0));
    // Unit-less counts stay counts.
    assert_eq!(m.get("HugePages_Total"), Some(0));
    assert_eq!(m.get("Hugepagesize"), Some(2048 * 1024));
    assert_eq!(m.get("VmallocTotal"), Some(34359738367 * 1024));
    assert_eq!(m.get("Nope"), None);
}

#[test]
fn meminfo_malformed_lines_are_skipped() {
    let m =
        parse_meminfo("MemTotal: 100 kB\nBad line\nX: 1 MB\nY: z kB\nZ: 1 kB extra\nHuge: 5\n\n");
    assert_eq!(m.0.len(), 2);
    assert_eq!(m.get("MemTotal"), Some(102400));
    assert_eq!(m.get("Huge"), Some(5));
    // kB values that overflow u64 once in bytes are dropped, not wrapped.
    assert_eq!(
        parse_meminfo("Big: 18446744073709551615 kB").get("Big"),
        None
    );
}

#[test]
fn loadavg_and_uptime_samples() {
    assert_eq!(
        parse_loadavg(LOADAVG),
        Some(LoadAvg {
            one: 0.10,
            five: 0.43,
            fifteen: 0.44
        })
    );
    assert_eq!(parse_uptime(UPTIME), Some(1755.25));
    assert_eq!(parse_loadavg("0.1 0.2"), None);
    assert_eq!(parse_loadavg("0.1 nan 0.3 1/2 3"), None);
    assert_eq!(parse_loadavg("0.1 -1 0.3"), None);
    assert_eq!(parse_uptime(""), None);
    assert_eq!(parse_uptime("inf 1"), None);
}

#[test]
fn diskstats_sample() {
    let d = parse_diskstats(DISKSTATS);
    let names: Vec<&str> = d.iter().map(|x| x.device.as_str()).collect();
    assert_eq!(
        names,
        ["loop0", "loop1", "loop2", "loop3", "loop4", "loop5", "loop6", "loop7", "vda", "zram0"]
    );
    assert_eq!(
        d[8],
        DiskStats {
            major: 254,
            minor: 0,
            device: "vda".into(),
            reads_completed: 170111,
            reads_merged: 11304,
            sectors_read: 12165850,
            read_time_ms: 291544,
            writes_completed: 36876,
            writes_merged: 36093,
            sectors_written: 48919296,
            write_time_ms: 58999,
            ios_in_progress: 0,
            io_time_ms: 34468,
            weighted_io_time_ms: 363048,
        }
    );
    assert_eq!(d[9].major, 253);
}

#[test]
fn diskstats_short_and_malformed_lines() {
    // A 4.17 kernel's 14 columns parse; the 2.6.24 partition format (7) and
    // garbage do not.
    let text = "   8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n   8 1 sda1 1 2 3 4\n x 0 sdb 1 2 3 4 5 6 7 8 9 10 11\n 8 2 sdc 1 2 3 4 5 6 7 8 9 10 -1\n";
    let d = parse_diskstats(text);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].device, "sda");
    assert_eq!(d[0].weighted_io_time_ms, 11);
}

#[test]
fn net_dev_sample() {
    let n = parse_net_dev(NET_DEV);
    assert_eq!(
        n,
        vec![
            NetDev {
                device: "lo".into(),
                rx_bytes: 3193,
                rx_packets: 29,
                tx_bytes: 3193,
                tx_packets: 29,
                ..NetDev::default()
            },
            NetDev {
                device: "ifb0".into(),
                ..NetDev::default()
            },
            NetDev {
                device: "ifb1".into(),
                ..NetDev::default()
            },
            NetDev {
                device: "eth0".into(),
                rx_bytes: 142870787,
                rx_packets: 6137,
                tx_bytes: 432318,
                tx_packets: 4215,
                ..NetDev::default()
            },
        ]
    );
}

#[test]
fn net_dev_columns_and_old_kernel_spacing() {
    // Every column distinct, so a shifted index would show; old kernels glue a wide
    // byte count to the colon.
    let text = "Inter-| h\n face |h\n  eth1:1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
                eth2:99999999999 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0\n  bad: 1 2 3\n";
    let n = parse_net_dev(text);
    assert_eq!(
        n[0],
        NetDev {
            device: "eth1".into(),
            rx_bytes: 1,
            rx_packets: 2,
            rx_errors: 3,
            rx_dropped: 4,
            tx_bytes: 9,
            tx_packets: 10,
            tx_errors: 11,
            tx_dropped: 12,
        }
    );
    assert_eq!(n[1].device, "eth2");
    assert_eq!(n[1].rx_bytes, 99999999999);
    assert_eq!(n.len(), 2);
}

#[test]
fn swaps_sample_and_devices() {
    // This machine has no swap: header only.
    assert_eq!(parse_swaps(SWAPS), vec![]);
    let text = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                /dev/zram0                              partition\t4194300\t\t1024\t\t100\n\
                /swap\\040file                           file\t\t1048572\t\t0\t\t-2\n\
                /broken file x y\n";
    assert_eq!(
        parse_swaps(text),
        vec![
            SwapDevice {
                device: "/dev/zram0".into(),
                size_bytes: 4194300 * 1024,
                used_bytes: 1024 * 1024,
            },
            SwapDevice {
                device: "/swap file".into(),
                size_bytes: 1048572 * 1024,
                used_bytes: 0,
            },
        ]
    );
}

#[test]
fn mountinfo_sample() {
    let m = parse_mountinfo(MOUNTINFO);
    assert_eq!(m.len(), 20);
    assert_eq!(
        m[0],
        Mount {
            mount_point: "/proc".into(),
            fs_type: "proc".into(),
            source: "proc".into(),
            read_only: false,
        }
    );
    let root = m.iter().find(|x| x.mount_point == "/").unwrap();
    assert_eq!(
        root,
        &Mount {
            mount_point: "/".into(),
            fs_type: "ext4".into(),
            source: "/dev/vda".into(),
            read_only: false,
        }
    );
    let ro = m
        .iter()
        .find(|x| x.mount_point == "/mnt/sandboxing/model_tools_env/v1/python")
        .unwrap();
    assert!(ro.read_only);
    assert_eq!(ro.fs_type, "tmpfs");
    assert_eq!(m.iter().filter(|x| x.fs_type == "cgroup").count(), 9);
    assert_eq!(m[19].fs_type, "cgroup2");
}

#[test]
fn mountinfo_optional_fields_escapes_and_garbage() {
    // The kernel documentation's example (two optional fields), an escaped space,
    // a read-only superblock under a rw mount, and broken lines.
    let text = "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n\
                40 35 8:1 / /media/my\\040disk rw,relatime - vfat /dev/sdb1 ro,fmask=0022\n\
                41 35 8:1 / /x rw - \n\
                42 35 8:1 / /y rw master:1 ext4 /dev/sdc rw\n\
                garbage\n";
    assert_eq!(
        parse_mountinfo(text),
        vec![
            Mount {
                mount_point: "/mnt/parent".into(),
                fs_type: "ext3".into(),
                source: "/dev/root".into(),
                read_only: false,
            },
            Mount {
                mount_point: "/media/my disk".into(),
                fs_type: "vfat".into(),
                source: "/dev/sdb1".into(),
                read_only: true,
            },
        ]
    );
}

#[test]
fn pid_state() {
    assert_eq!(parse_pid_state(PID_STAT), Some('S'));
    // The command name may hold spaces and parentheses.
    assert_eq!(parse_pid_state("42 (a) b) (c) R 1 2 3"), Some('R'));
    assert_eq!(parse_pid_state("42 (kworker/0:1) I 2"), Some('I'));
    assert_eq!(parse_pid_state("42 (x)"), None);
    assert_eq!(parse_pid_state("42 x R"), None);
    assert_eq!(parse_pid_state("42 (x) RR 1"), None);
}

#[test]
fn octal_unescape() {
    assert_eq!(
        unescape_octal("/a\\040b\\011c\\012d\\134e"),
        "/a b\tc\nd\\e"
    );
    assert_eq!(unescape_octal("/plain"), "/plain");
    // Incomplete or out-of-range escapes are kept verbatim.
    assert_eq!(unescape_octal("/a\\04"), "/a\\04");
    assert_eq!(unescape_octal("/a\\400"), "/a\\400");
    assert_eq!(unescape_octal("\\"), "\\");
    assert_eq!(unescape_octal("x\\"), "x\\");
}

/// Every prefix of every sample (a file read while the kernel rewrites it, or cut
/// short), and copies with bytes replaced by characters that break the formats,
/// must parse without panicking.
#[test]
fn corrupted_input_never_panics() {
    let samples = [
        PROC_STAT, MEMINFO, DISKSTATS, NET_DEV, LOADAVG, UPTIME, MOUNTINFO, SWAPS, PID_STAT,
    ];
    let run_all = |t: &str| {
        let _ = parse_proc_stat(t);
        let _ = parse_meminfo(t);
        let _ = parse_diskstats(t);
        let _ = parse_net_dev(t);
        let _ = parse_loadavg(t);
        let _ = parse_uptime(t);
        let _ = parse_mountinfo(t);
        let _ = parse_swaps(t);
        let _ = parse_pid_state(t);
        let _ = unescape_octal(t);
    };
    let mut runs = 0;
    for s in samples {
        // The intr line of /proc/stat is long: step through it.
        let step = (s.len() / 400).max(1);
        for cut in (0..=s.len()).step_by(step) {
            if let Some(prefix) = s.get(..cut) {
                run_all(prefix);
                runs += 1;
            }
        }
        let mut seed: u32 = 0x2545_f491;
        for _ in 0..200 {
            let mut b: Vec<char> = s.chars().collect();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let i = seed as usize % b.len().max(1);
                let c =
                    [':', ' ', '\n', '-', ')', '\\', '9', 'x', '\u{e9}', '/'][seed as usize % 10];
                if let Some(slot) = b.get_mut(i) {
                    *slot = c;
                }
            }
            run_all(&b.into_iter().collect::<String>());
            runs += 1;
        }
    }
    assert!(runs > 2000);
    // Values at and past the integer limits.
    run_all("cpu0 18446744073709551615 18446744073709551615 1 1\n");
    run_all("cpu0 18446744073709551616 1 1 1\n");
    let s = parse_proc_stat("cpu0 18446744073709551615 18446744073709551615 1 1\n");
    assert_eq!(s.cpus[0].total(), u64::MAX);
}
