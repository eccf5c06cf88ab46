//! hello-sink: the plugin built step by step in docs/plugin-authoring.md.
//!
//! A sink that logs one summary line per batch it receives and accepts at most
//! `max_items` items of each batch, like a backend with a per-request limit.
#![warn(missing_docs)]

pub mod errors;

use std::time::Duration;

use serde::Deserialize;
use tfo_plugin_api::prelude::*;

/// The integration's block of the agent config, without the host's own keys
/// (`enabled`, `plugin`, `interval`, `routes`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Put in front of every log line.
    pub label: String,
    /// Items accepted from one batch; the rest is refused.
    #[serde(default = "default_max_items")]
    pub max_items: u64,
}

fn default_max_items() -> u64 {
    1000
}

impl Config {
    /// Every problem serde cannot see, each with the path of its field.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if self.label.trim().is_empty() {
            errors.push(ConfigError::new("label", "must not be empty"));
        }
        if self.max_items == 0 {
            errors.push(ConfigError::new("max_items", "must be greater than 0"));
        }
        errors
    }
}

/// One instance: its config and what it has seen.
pub struct HelloSink {
    config: Config,
    exported: u64,
    refused: u64,
}

/// Called by the agent (and by `tfo-agent validate`) with the parsed config:
/// validate and prepare, but do not connect or start anything yet.
pub fn create(ctx: &Context, config: Config) -> Result<HelloSink, CreateError> {
    let errors = config.validate();
    if !errors.is_empty() {
        return Err(CreateError::configs(errors));
    }
    tracing::info!(instance = ctx.instance_name(), "{}: ready", config.label);
    Ok(HelloSink {
        config,
        exported: 0,
        refused: 0,
    })
}

impl Plugin for HelloSink {
    fn export(&mut self, _ctx: &Context, batch: &Batch) -> Result<ExportOk, PluginError> {
        let items = batch.item_count();
        let accepted = items.min(self.config.max_items);
        self.exported += accepted;
        self.refused += items - accepted;
        tracing::info!(
            items,
            accepted,
            metrics = batch.metrics.len(),
            spans = batch.spans.len(),
            logs = batch.logs.len(),
            "{}: batch received",
            self.config.label
        );
        // Fewer than `items` accepted: the host counts the rest as dropped.
        Ok(ExportOk { accepted })
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        if self.refused == 0 {
            HealthReport::healthy()
        } else {
            HealthReport::unhealthy(format!(
                "{} items refused: batches larger than max_items ({})",
                self.refused, self.config.max_items
            ))
        }
    }

    fn shutdown(&mut self, _ctx: &Context, _deadline: Duration) -> Result<(), PluginError> {
        tracing::info!(
            exported = self.exported,
            "{}: shutting down",
            self.config.label
        );
        Ok(())
    }
}

tfo_plugin_api::export_plugin! {
    name: "hello-sink",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Sink,
    data_types: DataTypes::ALL,
    description: "logs a summary of every batch",
    create: create,
}
