//! # tfo-plugin-system
//!
//! A polling source plugin for tfo-agent that reports the host's own metrics, read
//! from Linux procfs and `statvfs(3)`, under the names, units, instrument types and
//! attributes of the OpenTelemetry Collector's `hostmetrics` receiver
//! (<https://github.com/open-telemetry/opentelemetry-collector-contrib/tree/main/receiver/hostmetricsreceiver>,
//! semantic conventions for system metrics:
//! <https://opentelemetry.io/docs/specs/semconv/system/system-metrics/>):
//! `system.cpu.time`, `system.cpu.utilization`, `system.cpu.load_average.*`,
//! `system.memory.*`, `system.paging.usage`, `system.disk.*`,
//! `system.filesystem.*`, `system.network.*`, `system.processes.*`,
//! `system.uptime`. docs/integrations/system.md lists every metric.
//!
//! Why it is split the way it is:
//! - [`config`]: the configuration, its defaults and validation, so a bad config is
//!   refused at load time with the path of each problem;
//! - [`collect::parse`]: pure parsers of each procfs file, golden-tested on sample
//!   files from a real machine;
//! - [`collect::build`]: pure construction of the metrics from parsed data;
//! - [`collect`]: the only code doing I/O;
//! - this file: the plugin declaration gluing them to the SDK.
#![warn(missing_docs)]

pub mod collect;
pub mod config;

use tfo_plugin_api::prelude::*;

pub use collect::SystemCollector;
pub use config::Config;

/// One running instance: a [`SystemCollector`] behind the SDK's [`Plugin`] trait.
#[derive(Debug)]
pub struct SystemSource {
    collector: SystemCollector,
}

impl Plugin for SystemSource {
    fn collect(&mut self, _ctx: &Context) -> Result<Batch, PluginError> {
        self.collector.collect()
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        let problems = self.collector.problems();
        if problems.is_empty() {
            return HealthReport::healthy();
        }
        let reason: Vec<String> = problems
            .iter()
            .map(|(c, e)| format!("{}: {e}", c.name()))
            .collect();
        HealthReport::unhealthy(reason.join("; "))
    }
}

/// Builds an instance: validates the config (every problem with its field path) and
/// resolves the hostname. Reads no metric yet: `tfo-agent validate` calls this too.
pub fn create(ctx: &Context, config: Config) -> Result<SystemSource, CreateError> {
    let settings = config.resolve().map_err(CreateError::configs)?;
    let collectors: Vec<&str> = settings.collectors.iter().map(|c| c.name()).collect();
    let root = settings.root_path.display().to_string();
    let collector = SystemCollector::new(settings).map_err(|e| {
        CreateError::init(format!(
            "cannot read the system hostname ({e}); set `hostname` in the config"
        ))
    })?;
    tracing::info!(
        instance = ctx.instance_name(),
        root_path = %root,
        collectors = %collectors.join(","),
        "system metrics source ready"
    );
    Ok(SystemSource { collector })
}

tfo_plugin_api::export_plugin! {
    name: "system",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Source,
    data_types: DataTypes::METRICS,
    description: "host metrics (CPU, memory, swap, load, disks, filesystems, network, processes, uptime) from Linux /proc, named as the OpenTelemetry hostmetrics receiver",
    create: create,
}
