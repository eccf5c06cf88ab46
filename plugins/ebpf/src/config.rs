//! The plugin's configuration: the integration's block of the agent config, handed
//! over as JSON. Every key is optional; the defaults load every probe.
//!
//! ```yaml
//! integrations:
//!   ebpf:
//!     enabled: true
//!     interval: 10s
//!     probes: [syscalls, process, tcp, block, runqueue]   # default: all of them
//!     syscall_names: true    # label syscalls by name (x86_64 table); false: by number
//! ```
//!
//! Unknown keys are rejected (`deny_unknown_fields`) so a typo fails at load time;
//! [`Config::resolve`] adds the checks serde cannot express and reports every
//! problem at once, each with its field path (`probes[2]`).

use std::collections::BTreeSet;

use serde::Deserialize;
use tfo_plugin_api::ConfigError;

/// One group of eBPF programs and the metrics they feed. Every hook is a kernel
/// tracepoint, attached in its BTF-enabled form (`tp_btf`). Each probe is a separate
/// BPF object, loaded and attached on its own, so one that the kernel refuses does
/// not take the others down. The declaration order is the order of the metrics in
/// a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Probe {
    /// `ebpf.syscalls` (tracepoint `raw_syscalls:sys_enter`).
    Syscalls,
    /// `ebpf.process.execs`, `ebpf.process.exits` (tracepoints
    /// `sched:sched_process_exec`, `sched:sched_process_exit`).
    Process,
    /// `ebpf.tcp.connects`, `ebpf.tcp.accepts`, `ebpf.tcp.retransmits`
    /// (tracepoints `sock:inet_sock_set_state`, `tcp:tcp_retransmit_skb`).
    Tcp,
    /// `ebpf.block.io.latency` (tracepoints `block:block_rq_issue`,
    /// `block:block_rq_complete`).
    Block,
    /// `ebpf.sched.runqueue.latency` (tracepoints `sched:sched_wakeup`,
    /// `sched:sched_wakeup_new`, `sched:sched_switch`).
    Runqueue,
}

impl Probe {
    /// Every probe, in batch order.
    pub const ALL: [Probe; 5] = [
        Probe::Syscalls,
        Probe::Process,
        Probe::Tcp,
        Probe::Block,
        Probe::Runqueue,
    ];

    /// The name used in the config's `probes` list, in health reasons and logs.
    pub fn name(self) -> &'static str {
        match self {
            Probe::Syscalls => "syscalls",
            Probe::Process => "process",
            Probe::Tcp => "tcp",
            Probe::Block => "block",
            Probe::Runqueue => "runqueue",
        }
    }

    /// The probe a config name stands for.
    pub fn from_name(name: &str) -> Option<Probe> {
        Probe::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// Configuration of one eBPF instance, as written by the user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which probes to load; default all of them.
    #[serde(default = "default_probes")]
    pub probes: Vec<String>,
    /// Label `ebpf.syscalls` points with the syscall's name (`openat`) rather than
    /// its number (`257`). Names come from the x86_64 table built into the plugin;
    /// on other architectures numbers are always used.
    #[serde(default = "default_true")]
    pub syscall_names: bool,
}

fn default_probes() -> Vec<String> {
    Probe::ALL.map(|p| p.name().to_string()).to_vec()
}

fn default_true() -> bool {
    true
}

impl Default for Config {
    fn default() -> Self {
        Config {
            probes: default_probes(),
            syscall_names: true,
        }
    }
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Probes to load.
    pub probes: BTreeSet<Probe>,
    /// Whether syscalls are labelled by name.
    pub syscall_names: bool,
}

impl Config {
    /// Checks everything serde cannot and builds the [`Settings`]; on failure returns
    /// every problem, each with its field path.
    pub fn resolve(self) -> Result<Settings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut probes = BTreeSet::new();
        if self.probes.is_empty() {
            errors.push(ConfigError::new(
                "probes",
                "must name at least one probe (or leave it out to load every probe)",
            ));
        }
        for (i, name) in self.probes.iter().enumerate() {
            match Probe::from_name(name) {
                Some(p) if !probes.insert(p) => errors.push(ConfigError::new(
                    format!("probes[{i}]"),
                    format!("`{name}` is listed twice"),
                )),
                Some(_) => {}
                None => errors.push(ConfigError::new(
                    format!("probes[{i}]"),
                    format!(
                        "unknown probe `{name}`, expected one of: {}",
                        Probe::ALL.map(Probe::name).join(", ")
                    ),
                )),
            }
        }
        if errors.is_empty() {
            Ok(Settings {
                probes,
                syscall_names: self.syscall_names,
            })
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Config {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_load_every_probe_with_names() {
        let s = parse("{}").resolve().unwrap();
        assert_eq!(s.probes, Probe::ALL.into_iter().collect());
        assert!(s.syscall_names);
        assert_eq!(Config::default(), parse("{}"));
    }

    #[test]
    fn a_subset_is_kept() {
        let s = parse(r#"{"probes": ["tcp", "syscalls"], "syscall_names": false}"#)
            .resolve()
            .unwrap();
        assert_eq!(
            s.probes,
            [Probe::Syscalls, Probe::Tcp].into_iter().collect()
        );
        assert!(!s.syscall_names);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let errs = parse(r#"{"probes": ["tcp", "tpc", "tcp"]}"#)
            .resolve()
            .unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["probes[1]", "probes[2]"]);
        assert!(errs[0].message.contains("unknown probe `tpc`"), "{errs:?}");
        assert!(errs[0]
            .message
            .contains("syscalls, process, tcp, block, runqueue"));
        assert!(errs[1].message.contains("listed twice"));

        let errs = parse(r#"{"probes": []}"#).resolve().unwrap_err();
        assert_eq!(errs[0].path.as_str(), "probes");
    }

    #[test]
    fn names_round_trip() {
        for p in Probe::ALL {
            assert_eq!(Probe::from_name(p.name()), Some(p));
        }
        assert_eq!(Probe::from_name("Syscalls"), None);
    }
}
