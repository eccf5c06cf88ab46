//! # tfo-plugin-ebpf
//!
//! A polling source plugin for tfo-agent that reports kernel activity measured by
//! eBPF programs: system calls by name, process execs and exits, TCP connects,
//! accepts and retransmits, and block I/O and run-queue latency histograms.
//! docs/integrations/ebpf.md lists every metric and the hook behind it.
//!
//! The programs are C, CO-RE (compile once, run everywhere: compiled against the
//! build machine's kernel types, relocated at load time against the running
//! kernel's BTF), in the repository's `ebpf/` folder; build.rs compiles them with
//! `clang -target bpf` and the library embeds the objects. They are loaded with
//! aya (<https://aya-rs.dev>), a pure-Rust loader, so the agent needs neither
//! libbpf nor a compiler at run time.
//!
//! Why it is split the way it is:
//! - [`config`]: the configuration and its validation, so a bad config is refused
//!   at load time with the path of each problem;
//! - [`metrics`]: pure construction of the metrics from map readings (names,
//!   units, the log2-to-explicit-bucket histogram conversion), unit-tested;
//! - [`syscalls`]: the x86_64 syscall table for the `syscall` label;
//! - [`collect`]: the only code touching the kernel (load, attach, read, detach);
//! - this file: the plugin declaration gluing them to the SDK.
//!
//! Loading happens in `start`, never in `create` (`tfo-agent validate` calls
//! `create`). A probe the kernel refuses, for lack of privileges or because a hook
//! is missing on this kernel, does not fail anything: health turns Unhealthy with
//! the reason, the other probes keep collecting, and with no probe attached
//! `collect` returns an empty batch.
#![warn(missing_docs)]

pub mod collect;
pub mod config;
pub mod metrics;
pub mod syscalls;

use std::time::Duration;

use tfo_plugin_api::prelude::*;

pub use config::{Config, Probe, Settings};

use collect::{Probes, PERMISSION_HINT};

/// Where an instance is in its life.
#[derive(Debug)]
enum State {
    /// Created, nothing loaded yet.
    Created,
    /// `start` ran: these probes are attached (or failed).
    Running(Probes),
    /// `shutdown` ran: everything detached and dropped.
    Stopped,
}

/// One running instance: its settings and its probes.
#[derive(Debug)]
pub struct EbpfSource {
    settings: Settings,
    state: State,
}

impl EbpfSource {
    /// An instance for validated settings; loads nothing until [`Plugin::start`].
    pub fn new(settings: Settings) -> Self {
        EbpfSource {
            settings,
            state: State::Created,
        }
    }
}

/// The health reason for a set of probe problems: one hint when they all are a
/// missing privilege, otherwise each probe's reason.
fn problems_reason(problems: &[(Probe, &String)]) -> String {
    if !problems.is_empty() && problems.iter().all(|(_, r)| r.starts_with(PERMISSION_HINT)) {
        let names: Vec<&str> = problems.iter().map(|(p, _)| p.name()).collect();
        let detail = problems[0].1[PERMISSION_HINT.len()..].trim();
        return format!(
            "{PERMISSION_HINT}; probes not loaded: {} {detail}",
            names.join(", ")
        );
    }
    problems
        .iter()
        .map(|(p, r)| format!("{}: {r}", p.name()))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Plugin for EbpfSource {
    fn start(&mut self, ctx: &Context) -> Result<(), PluginError> {
        if let State::Running(_) = self.state {
            return Ok(());
        }
        let probes = Probes::load(self.settings.probes.iter().copied());
        for (probe, reason) in probes.failures() {
            tracing::warn!(
                instance = ctx.instance_name(),
                probe = probe.name(),
                "eBPF probe not loaded: {reason}"
            );
        }
        let attached: Vec<&str> = probes.attached().iter().map(|p| p.name()).collect();
        tracing::info!(
            instance = ctx.instance_name(),
            attached = %attached.join(","),
            failed = probes.failures().len(),
            "eBPF probes started"
        );
        self.state = State::Running(probes);
        Ok(())
    }

    fn collect(&mut self, _ctx: &Context) -> Result<Batch, PluginError> {
        let State::Running(probes) = &mut self.state else {
            return Ok(Batch::default());
        };
        let readings = probes.read();
        let metrics = metrics::build(
            &readings,
            self.settings.syscall_names,
            collect::now_unix_nano(),
        );
        Ok(Batch {
            metrics: metrics.into(),
            ..Batch::default()
        })
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        match &self.state {
            State::Created => HealthReport {
                state: HealthState::Initializing,
                reason: "not started".into(),
            },
            State::Stopped => HealthReport::unhealthy("shut down"),
            State::Running(probes) => {
                let problems: Vec<(Probe, &String)> = probes
                    .failures()
                    .iter()
                    .chain(probes.read_errors())
                    .map(|(p, r)| (*p, r))
                    .collect();
                if problems.is_empty() {
                    HealthReport::healthy()
                } else {
                    HealthReport::unhealthy(problems_reason(&problems))
                }
            }
        }
    }

    fn shutdown(&mut self, ctx: &Context, _deadline: Duration) -> Result<(), PluginError> {
        if let State::Running(mut probes) = std::mem::replace(&mut self.state, State::Stopped) {
            for e in probes.detach_all() {
                tracing::warn!(instance = ctx.instance_name(), "{e}");
            }
            // Dropping closes the last program and map descriptors before the host
            // unloads the library.
            drop(probes);
        }
        Ok(())
    }
}

/// Builds an instance: validates the config (every problem with its field path).
/// Touches no kernel object: `tfo-agent validate` calls this too, and loading
/// happens in `start`.
pub fn create(ctx: &Context, config: Config) -> Result<EbpfSource, CreateError> {
    let settings = config.resolve().map_err(CreateError::configs)?;
    let probes: Vec<&str> = settings.probes.iter().map(|p| p.name()).collect();
    tracing::info!(
        instance = ctx.instance_name(),
        probes = %probes.join(","),
        syscall_names = settings.syscall_names,
        "eBPF source ready (probes load at start)"
    );
    Ok(EbpfSource::new(settings))
}

tfo_plugin_api::export_plugin! {
    name: "ebpf",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Source,
    data_types: DataTypes::METRICS,
    description: "kernel metrics from eBPF: syscalls by name, process execs/exits, TCP connects/accepts/retransmits, block I/O and run-queue latency histograms",
    create: create,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_problems_collapse_into_one_hint() {
        let a = format!("{PERMISSION_HINT} (loading the syscalls object: EPERM)");
        let b = format!("{PERMISSION_HINT} (loading the tcp object: EPERM)");
        let r = problems_reason(&[(Probe::Syscalls, &a), (Probe::Tcp, &b)]);
        assert!(r.starts_with(PERMISSION_HINT), "{r}");
        assert!(r.contains("probes not loaded: syscalls, tcp"), "{r}");
        assert_eq!(r.matches(PERMISSION_HINT).count(), 1, "{r}");
    }

    #[test]
    fn other_problems_are_listed_per_probe() {
        let a = format!("{PERMISSION_HINT} (x)");
        let b = "BTF tracepoint tcp_retransmit_skb (tfo_tcp_retransmit): No such file".to_string();
        let r = problems_reason(&[(Probe::Syscalls, &a), (Probe::Tcp, &b)]);
        assert!(r.starts_with("syscalls: permission denied"), "{r}");
        assert!(
            r.contains("; tcp: BTF tracepoint tcp_retransmit_skb"),
            "{r}"
        );
    }
}
