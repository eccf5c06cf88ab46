//! # tfo-plugin-snmp
//!
//! A polling source plugin for tfo-agent that reads network devices and hosts over
//! SNMP: SNMPv1 (RFC 1157), SNMPv2c (RFC 1901, RFC 3416) and SNMPv3 with the
//! User-based Security Model (RFC 3412, RFC 3414) in the noAuthNoPriv, authNoPriv and
//! authPriv levels, with HMAC-SHA-96 and the SHA-2 HMACs of RFC 7860 for
//! authentication and AES-128-CFB (RFC 3826) for privacy. Tables are walked with
//! GETBULK (configurable max-repetitions) or, for v1, GETNEXT; scalars are read with
//! GET. Every target is polled concurrently on the instance's runtime, each with its
//! own timeout and retries, and a target that fails (timeout, wrong community,
//! authentication or decryption failure) only turns its own `snmp.up` to 0 and the
//! instance's health to Unhealthy with the reason. docs/integrations/snmp.md lists
//! every metric.
//!
//! Why it is split the way it is:
//! - [`config`]: the configuration, its defaults and validation (every problem at
//!   once, each with its field path);
//! - [`encode`]: the BER encoder of the messages we send (pure, round-trip-tested
//!   against the `snmp-parser` crate that decodes everything received);
//! - [`message`]: decoding of received datagrams with `snmp-parser`;
//! - [`usm`]: SNMPv3 key localisation, authentication and privacy (pure, tested with
//!   RFC and net-snmp vectors);
//! - [`client`]: one target's UDP session (matching, retries, engine discovery, GET,
//!   walks);
//! - [`mibs`]: the built-in OID sets (SNMPv2-MIB system, IF-MIB, HOST-RESOURCES-MIB);
//! - [`collect`]: concurrency over targets and the mapping to metrics;
//! - this file: the plugin declaration gluing them to the SDK.
#![warn(missing_docs)]

pub mod client;
pub mod collect;
pub mod config;
pub mod encode;
pub mod message;
pub mod mibs;
pub mod usm;

use std::time::Duration;

use tfo_plugin_api::prelude::*;

pub use collect::Collector;
pub use config::Config;

/// One running instance: a [`Collector`] behind the SDK's [`Plugin`] trait.
pub struct SnmpSource {
    collector: Collector,
}

impl Plugin for SnmpSource {
    fn collect(&mut self, ctx: &Context) -> Result<Batch, PluginError> {
        // The previous collections' batches, once exported, to write this one
        // into (none the first time, nor from a host that hands back only the
        // batches push sources emit).
        self.collector.refill(|| ctx.reclaimed_batch());
        let metrics = ctx.block_on(self.collector.collect());
        Ok(Collector::batch(metrics))
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        let down: Vec<String> = self
            .collector
            .statuses()
            .iter()
            .flatten()
            .filter(|s| !s.up)
            .map(|s| format!("{}: {}", s.address, s.reason.as_deref().unwrap_or("down")))
            .collect();
        if down.is_empty() {
            return HealthReport::healthy();
        }
        let total = self.collector.statuses().len();
        HealthReport::unhealthy(format!(
            "{} of {total} SNMP target{} down: {}",
            down.len(),
            if total == 1 { "" } else { "s" },
            down.join("; ")
        ))
    }

    fn shutdown(&mut self, ctx: &Context, _deadline: Duration) -> Result<(), PluginError> {
        // Drop the sockets while the runtime that registered them still runs.
        let collector = &mut self.collector;
        ctx.block_on(async { collector.close() });
        Ok(())
    }
}

/// Builds an instance: validates the config (every problem with its field path)
/// and turns v3 passwords into keys. Sends nothing: `tfo-agent validate` calls this
/// too.
pub fn create(ctx: &Context, config: Config) -> Result<SnmpSource, CreateError> {
    let settings = config.resolve().map_err(CreateError::configs)?;
    // All I/O happens inside `collect`: the instance thread drives the targets'
    // sockets itself, without the two worker threads (and their wake-ups) of the
    // default runtime.
    ctx.use_current_thread_runtime();
    let collector = Collector::new(&settings);
    tracing::info!(
        instance = ctx.instance_name(),
        targets = settings.targets.len(),
        scalars = %settings.scalars.iter().map(|g| g.name).collect::<Vec<_>>().join(","),
        tables = %settings.tables.iter().map(|t| t.name).collect::<Vec<_>>().join(","),
        oids = settings.oids.len(),
        "snmp source ready"
    );
    Ok(SnmpSource { collector })
}

tfo_plugin_api::export_plugin! {
    name: "snmp",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Source,
    data_types: DataTypes::METRICS,
    description: "polls SNMP v1/v2c/v3 agents (system, IF-MIB, HOST-RESOURCES-MIB and user-defined OIDs) concurrently",
    create: create,
}
