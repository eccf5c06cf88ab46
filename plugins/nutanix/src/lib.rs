//! # tfo-plugin-nutanix
//!
//! A polling source plugin for tfo-agent that reports Nutanix clusters, hosts and
//! VMs with real performance values: from Prism Central with the v3 list APIs
//! (paged with `offset` / `length` until `total_matches`) plus the v3 `groups`
//! stats query for CPU, memory and storage-controller I/O of every entity, or from
//! Prism Element with the v2.0 cluster and host lists and the v1 VM list, which
//! embed the same stats. The older Go agent read v2.0 stats sub-resources that do
//! not exist; this plugin reads where the values are. docs/integrations/nutanix.md
//! lists every metric.
//!
//! Why it is split the way it is:
//! - [`config`]: the configuration, its defaults and validation (every problem at
//!   once, each with its field path);
//! - [`map`]: the pure mapping of API answers to metrics, golden-tested;
//! - [`collect`]: the paged calls of one collection, partial failures, rate limits
//!   and health;
//! - this file: the plugin declaration gluing them to the SDK.
#![warn(missing_docs)]

pub mod collect;
pub mod config;
pub mod map;

use tfo_plugin_api::prelude::*;

pub use collect::Collector;
pub use config::Config;

/// One running instance: a [`Collector`] behind the SDK's [`Plugin`] trait.
pub struct NutanixSource {
    collector: Collector,
}

impl Plugin for NutanixSource {
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
pub fn create(ctx: &Context, config: Config) -> Result<NutanixSource, CreateError> {
    let settings = config.resolve().map_err(CreateError::configs)?;
    let base = settings.base.clone();
    let api = settings.api;
    let collector = Collector::new(settings).map_err(|e| CreateError::config("ca_file", e))?;
    tracing::info!(
        instance = ctx.instance_name(),
        prism = %base,
        api = ?api,
        "nutanix source ready"
    );
    Ok(NutanixSource { collector })
}

tfo_plugin_api::export_plugin! {
    name: "nutanix",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Source,
    data_types: DataTypes::METRICS,
    description: "collects Nutanix clusters, hosts and VMs with performance stats from Prism Central v3 or Prism Element v2",
    create: create,
}
