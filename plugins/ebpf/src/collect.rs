//! The only code touching the kernel: loads each probe's BPF object with aya,
//! attaches its programs, reads and sums the per-CPU maps on every collection, and
//! detaches everything on shutdown.
//!
//! Each probe is its own BPF object (ebpf/<probe>.bpf.c, compiled by build.rs and
//! embedded in the library), loaded and attached on its own: a probe the kernel
//! refuses (no permission, a tracepoint missing from this kernel, a verifier
//! rejection) is reported with its reason and the others keep working. A probe is
//! all or nothing: if one of its programs fails, the programs of that probe that
//! did attach are detached again, so no metric reports a half-counted value.
//!
//! aya: <https://docs.rs/aya/0.13.1/aya/>; the kernel's BPF documentation:
//! <https://docs.kernel.org/bpf/index.html> (map types, program types, CO-RE).

use std::{
    collections::BTreeMap,
    error::Error as StdError,
    fmt,
    time::{SystemTime, UNIX_EPOCH},
};

use aya::{
    maps::{MapData, PerCpuArray, PerCpuHashMap},
    programs::{tp_btf::BtfTracePointLinkId, BtfTracePoint, ProgramError},
    Btf, Ebpf, EbpfLoader, VerifierLogLevel,
};

use crate::{
    config::Probe,
    metrics::{Log2Histogram, ProcessCounts, Reading, Readings, TcpCounts, HIST_SLOTS},
};

/// What health says when the kernel refused for lack of privileges.
pub const PERMISSION_HINT: &str =
    "permission denied loading BPF program: run as root or grant CAP_BPF,CAP_PERFMON";

/// The compiled object of a probe, embedded at build time (8-byte aligned, as the
/// ELF parser needs).
fn object(probe: Probe) -> &'static [u8] {
    match probe {
        Probe::Syscalls => {
            aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/syscalls.bpf.o"))
        }
        Probe::Process => aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/process.bpf.o")),
        Probe::Tcp => aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tcp.bpf.o")),
        Probe::Block => aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/block.bpf.o")),
        Probe::Runqueue => {
            aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/runqueue.bpf.o"))
        }
    }
}

/// The programs of a probe (function names in the C source) and the tracepoint
/// each attaches to. All are BTF-enabled raw tracepoints (`tp_btf`), attached
/// with a BPF link: they need neither tracefs, perf events, kprobes nor BPF
/// trampolines, only a kernel with BTF (Linux 5.5+), which CO-RE needs anyway.
fn programs(probe: Probe) -> &'static [(&'static str, &'static str)] {
    match probe {
        Probe::Syscalls => &[("tfo_sys_enter", "sys_enter")],
        Probe::Process => &[
            ("tfo_proc_exec", "sched_process_exec"),
            ("tfo_proc_exit", "sched_process_exit"),
        ],
        Probe::Tcp => &[
            ("tfo_tcp_state", "inet_sock_set_state"),
            ("tfo_tcp_retransmit", "tcp_retransmit_skb"),
        ],
        Probe::Block => &[
            ("tfo_blk_issue", "block_rq_issue"),
            ("tfo_blk_complete", "block_rq_complete"),
        ],
        Probe::Runqueue => &[
            ("tfo_rq_wakeup", "sched_wakeup"),
            ("tfo_rq_wakeup_new", "sched_wakeup_new"),
            ("tfo_rq_switch", "sched_switch"),
        ],
    }
}

/// Map names (in the C source) read by [`Probes::read`].
const SYSCALL_COUNTS: &str = "syscall_counts";
const PROC_COUNTS: &str = "proc_counts";
const TCP_COUNTS: &str = "tcp_counts";
const BLK_HIST: &str = "blk_hist";
const RQ_HIST: &str = "rq_hist";

/// The kernel's `struct hist` of ebpf/tfo_common.h, one per CPU.
#[repr(C)]
#[derive(Clone, Copy)]
struct RawHist {
    slots: [u64; HIST_SLOTS],
    sum_ns: u64,
}

// SAFETY: plain old data: integers only, `repr(C)`, no padding, valid for any bits.
unsafe impl aya::Pod for RawHist {}

/// A probe whose programs are all attached.
struct LoadedProbe {
    probe: Probe,
    /// Owns the maps and programs; dropping it closes every descriptor.
    ebpf: Ebpf,
    /// Attached programs by name, in attach order.
    links: Vec<(&'static str, BtfTracePointLinkId)>,
    /// When the maps were created: start of the cumulative series.
    start_unix_nano: u64,
}

/// The probes of one instance: those attached and the reasons of those that are
/// not.
pub struct Probes {
    loaded: Vec<LoadedProbe>,
    failed: BTreeMap<Probe, String>,
    read_errors: BTreeMap<Probe, String>,
}

impl fmt::Debug for Probes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probes")
            .field("attached", &self.attached())
            .field("failed", &self.failed)
            .field("read_errors", &self.read_errors)
            .finish()
    }
}

/// Nanoseconds since the Unix epoch.
pub fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Probes {
    /// Loads and attaches every probe in `probes`. Never fails: a probe that cannot
    /// be loaded or attached is listed in [`Probes::failures`].
    pub fn load(probes: impl IntoIterator<Item = Probe>) -> Probes {
        let mut out = Probes {
            loaded: Vec::new(),
            failed: BTreeMap::new(),
            read_errors: BTreeMap::new(),
        };
        // Parsed once (several MB) and shared by every object's CO-RE relocation
        // and by the BTF tracepoints.
        let btf = Btf::from_sys_fs().map_err(|e| {
            format!("kernel BTF is not available (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF=y is required): {e}")
        });
        for probe in probes {
            match load_probe(probe, btf.as_ref()) {
                Ok(p) => out.loaded.push(p),
                Err(reason) => {
                    out.failed.insert(probe, reason);
                }
            }
        }
        out
    }

    /// Probes attached, in batch order.
    pub fn attached(&self) -> Vec<Probe> {
        self.loaded.iter().map(|p| p.probe).collect()
    }

    /// Probes that could not be loaded or attached, with the reason.
    pub fn failures(&self) -> &BTreeMap<Probe, String> {
        &self.failed
    }

    /// Probes whose maps could not be read at the last collection, with the
    /// reason.
    pub fn read_errors(&self) -> &BTreeMap<Probe, String> {
        &self.read_errors
    }

    /// Reads every attached probe's maps, summing the per-CPU values. A probe whose
    /// map cannot be read is left out of this reading and listed in
    /// [`Probes::read_errors`] until a later read succeeds.
    pub fn read(&mut self) -> Readings {
        let mut r = Readings::default();
        let mut errors = BTreeMap::new();
        for p in &self.loaded {
            let start = p.start_unix_nano;
            let res: Result<(), String> = (|| {
                match p.probe {
                    Probe::Syscalls => {
                        r.syscalls = Some(Reading {
                            start_unix_nano: start,
                            value: read_syscalls(&p.ebpf)?,
                        })
                    }
                    Probe::Process => {
                        let c = read_counters::<2>(&p.ebpf, PROC_COUNTS)?;
                        r.process = Some(Reading {
                            start_unix_nano: start,
                            value: ProcessCounts {
                                execs: c[0],
                                exits: c[1],
                            },
                        })
                    }
                    Probe::Tcp => {
                        let c = read_counters::<3>(&p.ebpf, TCP_COUNTS)?;
                        r.tcp = Some(Reading {
                            start_unix_nano: start,
                            value: TcpCounts {
                                connects: c[0],
                                accepts: c[1],
                                retransmits: c[2],
                            },
                        })
                    }
                    Probe::Block => {
                        r.block = Some(Reading {
                            start_unix_nano: start,
                            value: read_hist(&p.ebpf, BLK_HIST)?,
                        })
                    }
                    Probe::Runqueue => {
                        r.runqueue = Some(Reading {
                            start_unix_nano: start,
                            value: read_hist(&p.ebpf, RQ_HIST)?,
                        })
                    }
                }
                Ok(())
            })();
            if let Err(e) = res {
                errors.insert(p.probe, e);
            }
        }
        self.read_errors = errors;
        r
    }

    /// Detaches every program and drops every aya object (maps and programs are
    /// closed, so the kernel frees them). Returns the detach errors, if any; the
    /// objects are dropped regardless.
    pub fn detach_all(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        for mut p in self.loaded.drain(..) {
            for (name, link) in p.links.drain(..).rev() {
                if let Err(e) = detach(&mut p.ebpf, name, link) {
                    errors.push(format!("{}: detaching {name}: {e}", p.probe.name()));
                }
            }
            drop(p);
        }
        errors
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        // Shutdown already did this; a host that skipped it still gets the kernel
        // objects released while the library is loaded.
        let _ = self.detach_all();
    }
}

fn detach(ebpf: &mut Ebpf, name: &str, link: BtfTracePointLinkId) -> Result<(), ProgramError> {
    let prog = ebpf.program_mut(name).ok_or(ProgramError::NotLoaded)?;
    <&mut BtfTracePoint>::try_from(prog)?.detach(link)
}

fn load_probe(probe: Probe, btf: Result<&Btf, &String>) -> Result<LoadedProbe, String> {
    let btf = btf.map_err(|e| e.clone())?;
    let start_unix_nano = now_unix_nano();
    let mut ebpf = EbpfLoader::new()
        .btf(Some(btf))
        // The kernel's log is asked for only when a load fails (aya retries with
        // a log buffer then).
        .verifier_log_level(VerifierLogLevel::DEBUG)
        .load(object(probe))
        .map_err(|e| describe(&format!("loading the {} object", probe.name()), &e))?;
    let mut links = Vec::new();
    for &(name, tracepoint) in programs(probe) {
        // On error `ebpf` is dropped, which detaches what this probe attached.
        let link = attach(&mut ebpf, name, tracepoint, btf)
            .map_err(|e| describe(&format!("BTF tracepoint {tracepoint} ({name})"), &e))?;
        links.push((name, link));
    }
    tracing::debug!(
        probe = probe.name(),
        programs = links.len(),
        "probe attached"
    );
    Ok(LoadedProbe {
        probe,
        ebpf,
        links,
        start_unix_nano,
    })
}

fn attach(
    ebpf: &mut Ebpf,
    name: &str,
    tracepoint: &str,
    btf: &Btf,
) -> Result<BtfTracePointLinkId, ProgramError> {
    let prog = ebpf.program_mut(name).ok_or(ProgramError::NotLoaded)?;
    let p: &mut BtfTracePoint = prog.try_into()?;
    p.load(tracepoint, btf)?;
    p.attach()
}

/// Turns an aya error into one line for health and logs. A missing privilege
/// becomes [`PERMISSION_HINT`]; a verifier rejection keeps the last lines of the
/// verifier's log (where it says why), not the whole log.
pub fn describe(what: &str, err: &(dyn StdError + 'static)) -> String {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(ProgramError::LoadError {
            io_error,
            verifier_log,
        }) = e.downcast_ref::<ProgramError>()
        {
            let log = verifier_log.to_string();
            let tail: Vec<&str> = log
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            if tail.is_empty() && io_error.raw_os_error() == Some(libc::EPERM) {
                return format!("{PERMISSION_HINT} ({what}: {io_error})");
            }
            let tail = tail[tail.len().saturating_sub(3)..].join(" | ");
            return format!(
                "{what}: the kernel refused the program ({io_error}); verifier: {tail}"
            );
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(io.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
                return format!("{PERMISSION_HINT} ({what}: {})", chain(err));
            }
        }
        cur = e.source();
    }
    format!("{what}: {}", chain(err))
}

/// An error and its sources, joined with ": ", skipping a source whose text the
/// outer message already contains.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cur = e.source();
    }
    text
}

fn map<'a>(ebpf: &'a Ebpf, name: &str) -> Result<&'a aya::maps::Map, String> {
    ebpf.map(name)
        .ok_or_else(|| format!("map `{name}` missing from the BPF object"))
}

fn read_syscalls(ebpf: &Ebpf) -> Result<Vec<(u32, u64)>, String> {
    let m: PerCpuHashMap<&MapData, u32, u64> = PerCpuHashMap::try_from(map(ebpf, SYSCALL_COUNTS)?)
        .map_err(|e| describe(SYSCALL_COUNTS, &e))?;
    let mut out = Vec::new();
    for item in m.iter() {
        let (key, values) = item.map_err(|e| describe(SYSCALL_COUNTS, &e))?;
        out.push((key, values.iter().fold(0u64, |a, &v| a.wrapping_add(v))));
    }
    out.sort_unstable();
    Ok(out)
}

fn read_counters<const N: usize>(ebpf: &Ebpf, name: &str) -> Result<[u64; N], String> {
    let m: PerCpuArray<&MapData, u64> =
        PerCpuArray::try_from(map(ebpf, name)?).map_err(|e| describe(name, &e))?;
    let mut out = [0u64; N];
    for (i, slot) in out.iter_mut().enumerate() {
        let values = m.get(&(i as u32), 0).map_err(|e| describe(name, &e))?;
        *slot = values.iter().fold(0u64, |a, &v| a.wrapping_add(v));
    }
    Ok(out)
}

fn read_hist(ebpf: &Ebpf, name: &str) -> Result<Log2Histogram, String> {
    let m: PerCpuArray<&MapData, RawHist> =
        PerCpuArray::try_from(map(ebpf, name)?).map_err(|e| describe(name, &e))?;
    let values = m.get(&0, 0).map_err(|e| describe(name, &e))?;
    let mut h = Log2Histogram::default();
    for cpu in values.iter() {
        for (sum, &c) in h.slots.iter_mut().zip(cpu.slots.iter()) {
            *sum = sum.wrapping_add(c);
        }
        h.sum_ns = h.sum_ns.wrapping_add(cpu.sum_ns);
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_get_the_hint() {
        let io = std::io::Error::from_raw_os_error(libc::EPERM);
        let msg = describe("creating map", &io);
        assert!(msg.starts_with(PERMISSION_HINT), "{msg}");
        assert!(msg.contains("creating map"), "{msg}");

        let load = ProgramError::LoadError {
            io_error: std::io::Error::from_raw_os_error(libc::EPERM),
            verifier_log: aya_obj_log(""),
        };
        assert!(describe("x", &load).starts_with(PERMISSION_HINT));
    }

    #[test]
    fn verifier_rejections_keep_the_log_tail_not_the_hint() {
        let load = ProgramError::LoadError {
            // The verifier answers EACCES for an invalid program.
            io_error: std::io::Error::from_raw_os_error(libc::EACCES),
            verifier_log: aya_obj_log(
                "0: r1 = 0\n1: (85) call\nR1 invalid mem access 'scalar'\nprocessed 2 insns\n",
            ),
        };
        let msg = describe("BTF tracepoint a (p)", &load);
        assert!(!msg.contains(PERMISSION_HINT), "{msg}");
        assert!(msg.contains("R1 invalid mem access"), "{msg}");
        assert!(!msg.contains("0: r1 = 0"), "{msg}");
    }

    #[test]
    fn other_errors_keep_their_chain() {
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        let msg = describe("BTF tracepoint f (p)", &io);
        assert!(msg.starts_with("BTF tracepoint f (p): "), "{msg}");
        assert!(msg.contains("No such file"), "{msg}");
    }

    /// aya does not re-export the log type of its load error; aya-obj (a
    /// dev-dependency pinned to the version aya uses) does.
    fn aya_obj_log(s: &str) -> aya_obj::VerifierLog {
        aya_obj::VerifierLog::new(s.to_string())
    }

    #[test]
    fn every_probe_object_is_embedded_and_names_its_programs() {
        for probe in Probe::ALL {
            let obj = object(probe);
            assert_eq!(&obj[..4], b"\x7fELF", "{}", probe.name());
            assert_eq!(obj.as_ptr() as usize % 8, 0, "{} not aligned", probe.name());
            for (name, _) in programs(probe) {
                assert!(
                    obj.windows(name.len()).any(|w| w == name.as_bytes()),
                    "{} lacks {name}",
                    probe.name()
                );
            }
        }
    }
}
