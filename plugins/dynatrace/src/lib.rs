//! # The `dynatrace` plugin: a sink for Dynatrace (SaaS, Managed or an ActiveGate)
//!
//! Sends each batch the pipeline hands it to the Dynatrace environment's public
//! ingest APIs, all authenticated with `Authorization: Api-Token <token>`:
//! - metrics: Metrics API v2 `POST {env}/api/v2/metrics/ingest`, `text/plain` in
//!   the metric ingestion (line) protocol
//!   (<https://docs.dynatrace.com/docs/extend-dynatrace/extend-metrics/reference/metric-ingestion-protocol>,
//!   <https://docs.dynatrace.com/docs/shortlink/api-metrics-v2-post-datapoints>);
//! - logs: Log Monitoring API v2 `POST {env}/api/v2/logs/ingest`, a JSON array
//!   (<https://docs.dynatrace.com/docs/dynatrace-api/environment-api/log-monitoring-v2/post-ingest-logs>,
//!   limits from <https://docs.dynatrace.com/docs/analyze-explore-automate/logs/lma-limits>);
//! - traces: OpenTelemetry trace ingest API `POST {env}/api/v2/otlp/v1/traces`,
//!   OTLP protobuf
//!   (<https://docs.dynatrace.com/docs/dynatrace-api/environment-api/opentelemetry/post-traces>),
//!   encoded by the shared `tfo_plugin_common::otlp`. (The older Go agent posted JSON
//!   there, which the endpoint does not accept.)
//!
//! Request size limits and throttling: "Dynatrace API - Access limit"
//! (<https://docs.dynatrace.com/docs/dynatrace-api/basics/access-limit>).
//!
//! Layout (DESIGN.md §8): [`config`] (keys, defaults, validation with paths),
//! [`encode`] (pure mapping, golden-tested), [`client`] (transport, answers, retry
//! classification, partial success); this file only declares the plugin.

#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod encode;

use tfo_plugin_api::prelude::*;

use crate::{client::Exporter, config::Config};

/// One dynatrace instance.
pub struct Dynatrace {
    exporter: Exporter,
}

/// Validates the config and builds the HTTP client; connects nothing (`tfo-agent
/// validate` calls `create` and shuts the instance down right away).
pub fn create(_ctx: &Context, config: Config) -> Result<Dynatrace, CreateError> {
    let errors = config.validate();
    if !errors.is_empty() {
        return Err(CreateError::configs(errors));
    }
    let exporter = Exporter::new(&config).map_err(|e| {
        let path = if config.ca_file.is_some() {
            "ca_file"
        } else {
            "timeout"
        };
        CreateError::config(path, e)
    })?;
    Ok(Dynatrace { exporter })
}

impl Plugin for Dynatrace {
    fn export(&mut self, ctx: &Context, batch: &Batch) -> Result<ExportOk, PluginError> {
        if batch.is_empty() {
            return Ok(ExportOk { accepted: 0 });
        }
        ctx.block_on(self.exporter.export(batch))
    }

    fn preview(&mut self, _ctx: &Context, batch: &Batch) -> Result<String, PluginError> {
        Ok(self.exporter.preview(batch))
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        let mut report = HealthReport::healthy();
        if let Some(last) = self.exporter.last_rejection() {
            report.reason = format!(
                "backend rejected {} item(s) so far; last: {last}",
                self.exporter.stats().rejected_by_backend
            )
            .into();
        }
        report
    }
}

tfo_plugin_api::export_plugin! {
    name: "dynatrace",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Sink,
    data_types: DataTypes::ALL,
    description: "Dynatrace: metrics ingest (line protocol), log ingest (JSON), OTLP traces",
    create: create,
}
