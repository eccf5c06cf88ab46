//! # tfo-plugin-proxmox
//!
//! A polling source plugin for tfo-agent that reports a whole Proxmox VE estate
//! through the PVE REST API (<https://pve.proxmox.com/pve-docs/api-viewer/>): cluster
//! quorum and membership, every node (CPU, memory, root fs, uptime, load, swap,
//! iowait), every QEMU VM and LXC container (CPU, memory, disk, network and disk I/O
//! counters, uptime), every storage, HA service state and storage replication jobs.
//! `/cluster/resources` answers for the whole cluster in one call, so the cost of a
//! collection is a handful of requests plus one or two per online node, whichever
//! node `api_url` points at. The older Go agent read one configured node only and
//! never refreshed its ticket; this plugin does both. docs/integrations/proxmox.md
//! lists every metric.
//!
//! Why it is split the way it is:
//! - [`config`]: the configuration, its defaults and validation (every problem at
//!   once, each with its field path);
//! - [`map`]: the pure mapping of API answers to metrics, golden-tested;
//! - [`collect`]: auth (API token, or a ticket refreshed before it expires), the
//!   calls of one collection, partial failures, rate limits and health;
//! - this file: the plugin declaration gluing them to the SDK.
#![warn(missing_docs)]

pub mod collect;
pub mod config;
pub mod map;

use tfo_plugin_api::prelude::*;

pub use collect::Collector;
pub use config::Config;

/// One running instance: a [`Collector`] behind the SDK's [`Plugin`] trait.
pub struct ProxmoxSource {
    collector: Collector,
}

impl Plugin for ProxmoxSource {
    fn collect(&mut self, ctx: &Context) -> Result<Batch, PluginError> {
        let metrics = ctx.block_on(self.collector.collect())?;
        Ok(Batch {
            metrics: metrics.into(),
            ..Batch::default()
        })
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        self.collector.health()
    }
}

/// Builds an instance: validates the config (every problem with its field path)
/// and prepares the HTTP client. Sends nothing: `tfo-agent validate` calls this too.
pub fn create(ctx: &Context, config: Config) -> Result<ProxmoxSource, CreateError> {
    let settings = config.resolve().map_err(CreateError::configs)?;
    let base = settings.base.clone();
    let auth = format!("{:?}", settings.auth);
    let collector = Collector::new(settings).map_err(|e| CreateError::config("ca_file", e))?;
    tracing::info!(
        instance = ctx.instance_name(),
        api = %base,
        auth = %auth,
        "proxmox source ready"
    );
    Ok(ProxmoxSource { collector })
}

tfo_plugin_api::export_plugin! {
    name: "proxmox",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Source,
    data_types: DataTypes::METRICS,
    description: "collects a whole Proxmox VE cluster (nodes, VMs, containers, storage, quorum, HA, replication) through the PVE API",
    create: create,
}
