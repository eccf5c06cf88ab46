//! # tfo-plugin-vmware
//!
//! A polling source plugin for tfo-agent that reads VMware vSphere (vCenter Server or
//! a standalone ESXi) over the vSphere Web Services API, vim25 SOAP
//! (<https://developer.broadcom.com/xapis/vsphere-web-services-api/latest/>):
//! the inventory (virtual machines, hosts, clusters, datastores: names, placement,
//! power and connection state, capacity, quick stats) through a container view and
//! the property collector, and the real performance counters of VMs and hosts
//! (CPU, memory, disk, network) through the PerformanceManager's `QueryPerf` at the
//! 20-second real-time interval. The Go agent this replaces reported VM performance
//! as constant zeros; these values are the server's own samples.
//! docs/integrations/vmware.md lists every metric.
//!
//! Why it is split the way it is:
//! - [`config`]: the configuration, its defaults and validation (every problem at
//!   once, each with its field path; the password never printed);
//! - [`soap`]: the vim25 requests (text templates with escaping) and the parsing of
//!   the answers (quick-xml), pure and golden-tested with answers recorded from
//!   vcsim;
//! - [`collect`]: the session (login, cookie, re-login on `NotAuthenticated`), the
//!   inventory and performance queries, and the mapping to metrics;
//! - this file: the plugin declaration gluing them to the SDK.
#![warn(missing_docs)]

pub mod collect;
pub mod config;
pub mod soap;

use std::time::Duration;

use tfo_plugin_api::prelude::*;

pub use collect::Collector;
pub use config::Config;

/// One running instance: a [`Collector`] behind the SDK's [`Plugin`] trait.
pub struct VmwareSource {
    collector: Collector,
}

impl Plugin for VmwareSource {
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

    fn shutdown(&mut self, ctx: &Context, deadline: Duration) -> Result<(), PluginError> {
        // Log out (and drop the pooled connections) while the runtime still runs;
        // never wait past the host's deadline for a server that does not answer.
        let collector = &mut self.collector;
        ctx.block_on(async {
            let _ = tokio::time::timeout(deadline.mul_f32(0.8), collector.close()).await;
        });
        Ok(())
    }
}

/// Builds an instance: validates the config (every problem with its field path)
/// and prepares the HTTPS client. Connects nothing: `tfo-agent validate` calls this
/// too.
pub fn create(ctx: &Context, config: Config) -> Result<VmwareSource, CreateError> {
    let settings = config.resolve().map_err(CreateError::configs)?;
    tracing::info!(
        instance = ctx.instance_name(),
        url = %settings.url,
        username = %settings.username,
        performance = settings.performance,
        "vmware source ready"
    );
    let collector = Collector::new(settings).map_err(|e| CreateError::config("ca_file", e))?;
    Ok(VmwareSource { collector })
}

tfo_plugin_api::export_plugin! {
    name: "vmware",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Source,
    data_types: DataTypes::METRICS,
    description: "collects vSphere inventory and real VM/host performance counters over the vim25 SOAP API (vCenter, ESXi)",
    create: create,
}
