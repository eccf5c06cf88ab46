//! # tfo-plugin-azure-arc
//!
//! A polling source plugin for tfo-agent that reports the health of an Azure Arc
//! estate from Azure Resource Manager, with real Microsoft Entra ID
//! authentication (a service principal's client secret, or the managed identity
//! of the Azure resource the agent runs on, through the shared
//! `tfo_plugin_common::azure_auth`):
//! - Arc-enabled servers (`Microsoft.HybridCompute/machines`, List By
//!   Subscription or By Resource Group,
//!   <https://learn.microsoft.com/en-us/rest/api/hybridcompute/machines/list-by-subscription>):
//!   counts by status, agent version and OS, and per machine its status and the
//!   time since it last changed;
//! - connected Kubernetes clusters (`Microsoft.Kubernetes/connectedClusters`,
//!   <https://learn.microsoft.com/en-us/rest/api/hybridkubernetes/connected-cluster/list-by-subscription>):
//!   counts by connectivity status, and per cluster its connectivity, versions,
//!   node and core counts;
//! - every machine's extensions
//!   (<https://learn.microsoft.com/en-us/rest/api/hybridcompute/machine-extensions/list>):
//!   provisioning state.
//!
//! docs/integrations/azure-arc.md lists every metric and attribute.
//!
//! Why it is split the way it is:
//! - [`config`]: the configuration, its defaults and validation (every problem at
//!   once, each with its field path);
//! - [`map`]: the pure mapping of ARM answers to metrics, golden-tested from the
//!   documented example responses;
//! - [`collect`]: tokens, paging, throttling, 401 refresh, partial failures and
//!   health;
//! - this file: the plugin declaration gluing them to the SDK.
#![warn(missing_docs)]

pub mod collect;
pub mod config;
pub mod map;

use tfo_plugin_api::prelude::*;

pub use collect::Collector;
pub use config::Config;

/// One running instance: a [`Collector`] behind the SDK's [`Plugin`] trait.
pub struct AzureArcSource {
    collector: Collector,
}

impl Plugin for AzureArcSource {
    fn collect(&mut self, ctx: &Context) -> Result<Batch, PluginError> {
        let metrics = ctx.block_on(self.collector.collect())?;
        Ok(Batch {
            resource: Resource {
                attributes: self.collector.resource().into(),
            },
            metrics: metrics.into(),
            ..Batch::default()
        })
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        self.collector.health()
    }
}

/// Builds an instance: validates the config (every problem with its field path)
/// and prepares the HTTP client. Sends nothing and fetches no token:
/// `tfo-agent validate` calls this too.
pub fn create(ctx: &Context, config: Config) -> Result<AzureArcSource, CreateError> {
    let settings = config.resolve().map_err(CreateError::configs)?;
    let what = [
        ("machines", settings.machines),
        ("connected_clusters", settings.connected_clusters),
        ("extensions", settings.extensions),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(n, _)| *n)
    .collect::<Vec<_>>()
    .join(",");
    let subscription = settings.subscription_id.clone();
    let groups = settings.resource_groups.len();
    let collector = Collector::new(settings).map_err(|e| CreateError::config("ca_file", e))?;
    tracing::info!(
        instance = ctx.instance_name(),
        arm = collector.arm().base(),
        subscription = %subscription,
        resource_groups = groups,
        listings = %what,
        "azure-arc source ready"
    );
    Ok(AzureArcSource { collector })
}

tfo_plugin_api::export_plugin! {
    name: "azure-arc",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Source,
    data_types: DataTypes::METRICS,
    description: "Azure Arc inventory health from Azure Resource Manager: Arc-enabled servers, connected Kubernetes clusters, machine extensions",
    create: create,
}
