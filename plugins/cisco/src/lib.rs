//! # tfo-plugin-cisco
//!
//! A polling source plugin for tfo-agent reading Cisco's management APIs:
//!
//! - **Catalyst Center** (formerly DNA Center) Intent API
//!   (<https://developer.cisco.com/docs/dna-center/>): token authentication,
//!   the device inventory (`/dna/intent/api/v1/network-device`, offset/limit paging),
//!   device health (`/device-health`), overall network health (`/network-health`) and
//!   client health (`/client-health`);
//! - **Meraki Dashboard API v1** (<https://developer.cisco.com/meraki/api-v1/>):
//!   organizations, device statuses (`/organizations/{id}/devices/statuses`) and
//!   uplink statuses, with `Link` header paging and 429/`Retry-After` handling
//!   within Meraki's documented rate limit.
//!
//! Each `collect` reads every enabled call in turn and returns one batch; a call that
//! fails (HTTP error, timeout, bad JSON) only loses its own data: its `cisco.api.up`
//! point is 0 and the instance's health says which call failed and why.
//! docs/integrations/cisco.md lists every metric.
//!
//! Layout (DESIGN.md §8): [`config`] (keys, defaults, validation with field paths),
//! [`map`] (response bodies -> metrics; pure, golden-tested), [`collect`] (the HTTP
//! conversations: auth, paging, retries, partial failures), this file (the plugin
//! declaration).
#![warn(missing_docs)]

pub mod collect;
pub mod config;
pub mod map;

use tfo_plugin_api::prelude::*;

pub use collect::Collector;
pub use config::Config;

/// How many failed calls the health reason spells out.
pub const MAX_REASONS: usize = 5;

/// One running instance: a [`Collector`] behind the SDK's [`Plugin`] trait.
pub struct CiscoSource {
    collector: Collector,
}

impl Plugin for CiscoSource {
    fn collect(&mut self, ctx: &Context) -> Result<Batch, PluginError> {
        let metrics = ctx.block_on(self.collector.collect());
        Ok(Batch {
            metrics: metrics.into(),
            ..Batch::default()
        })
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        let Some(status) = self.collector.status() else {
            return HealthReport::healthy();
        };
        if status.failures.is_empty() {
            return HealthReport::healthy();
        }
        // The first few failures in full; a key with hundreds of organizations
        // must not produce a reason of megabytes.
        let mut list: Vec<String> = status
            .failures
            .iter()
            .take(MAX_REASONS)
            .map(|f| format!("{}: {}", f.endpoint, f.message))
            .collect();
        if status.failures.len() > MAX_REASONS {
            list.push(format!("and {} more", status.failures.len() - MAX_REASONS));
        }
        HealthReport::unhealthy(format!(
            "{} of {} Cisco API call{} failed: {}",
            status.failures.len(),
            status.endpoints,
            if status.endpoints == 1 { "" } else { "s" },
            list.join("; ")
        ))
    }
}

/// Builds an instance: validates the config (every problem with its field path) and
/// prepares the HTTP client. Sends nothing: `tfo-agent validate` calls this too.
pub fn create(ctx: &Context, config: Config) -> Result<CiscoSource, CreateError> {
    let errors = config.validate();
    if !errors.is_empty() {
        return Err(CreateError::configs(errors));
    }
    let api = config.api_type;
    let collector = Collector::new(config).map_err(|e| CreateError::config("ca_file", e))?;
    tracing::info!(
        instance = ctx.instance_name(),
        api = api.as_str(),
        "cisco source ready"
    );
    Ok(CiscoSource { collector })
}

tfo_plugin_api::export_plugin! {
    name: "cisco",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Source,
    data_types: DataTypes::METRICS,
    description: "polls Cisco Catalyst Center (DNA Center) inventory and health, or Meraki Dashboard device and uplink statuses",
    create: create,
}
