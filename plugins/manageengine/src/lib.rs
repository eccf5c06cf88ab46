//! # The `manageengine` plugin: metrics and logs to ManageEngine Site24x7 / OpManager Nexus
//!
//! The documented way for an external agent to push both metrics and logs into
//! ManageEngine's cloud monitoring is its OpenTelemetry intake: in the web client,
//! APM > OpenTelemetry > "+" next to Metrics or Logs shows an "OTLP Endpoint" and an
//! "API Key"; an OTLP exporter sends to that endpoint with the `api-key` header set
//! to the key ("Export OpenTelemetry data to Site24x7",
//! <https://www.site24x7.com/help/apm/opentelemetry/export-opentelemetry-data.html>;
//! the same page for OpManager Nexus,
//! <https://www.manageengine.com/it-operations-management/cloud-help/apm/opentelemetry/export-opentelemetry-data.html>).
//! This plugin is that exporter for the agent's metrics and logs: OTLP/HTTP,
//! binary protobuf, `<endpoint>/v1/metrics` and `<endpoint>/v1/logs`, encoded by the
//! shared `tfo_plugin_common::otlp`. Spans are not sent (the integration is metrics
//! and logs only).
//!
//! Considered and not used:
//! - the Applications Manager / OpManager on-premises REST APIs (`apikey`
//!   parameter): the documented APIs read data and manage monitors, alarms and
//!   maintenance (<https://www.manageengine.com/products/applications_manager/help/rest-apis.html>);
//!   we found none documented for time series or log records pushed by an agent;
//! - the AppLogs "HTTPS Endpoint API" (per-log-type upload URL with a `token`
//!   parameter, JSON lines with `_zl_timestamp`,
//!   <https://www.site24x7.com/help/log-management/sending-logs-https.html>): logs
//!   only, with an upload URL generated per log type in the UI; the OTLP intake
//!   covers logs and metrics with one key;
//! - Site24x7 plugins and StatsD: they need the Site24x7 server agent on the host.
//!
//! The older Go agent posted made-up JSON to `<base_url>/api/v1/{metrics,logs,alerts}`
//! with `Authorization: Apikey`; none of that is kept.
//!
//! Layout (DESIGN.md §8): [`config`], [`encode`], [`client`]; this file only
//! declares the plugin.

#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod encode;

use tfo_plugin_api::prelude::*;

use crate::{client::Exporter, config::Config};

/// One manageengine instance.
pub struct ManageEngine {
    exporter: Exporter,
}

/// Validates the config and builds the HTTP client; connects nothing.
pub fn create(_ctx: &Context, config: Config) -> Result<ManageEngine, CreateError> {
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
    Ok(ManageEngine { exporter })
}

impl Plugin for ManageEngine {
    fn export(&mut self, ctx: &Context, batch: &Batch) -> Result<ExportOk, PluginError> {
        if batch.metrics.is_empty() && batch.logs.is_empty() {
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
                "endpoint rejected {} item(s) so far; last: {last}",
                self.exporter.stats().rejected_by_backend
            )
            .into();
        }
        report
    }
}

tfo_plugin_api::export_plugin! {
    name: "manageengine",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Sink,
    data_types: DataTypes(DataTypes::METRICS.0 | DataTypes::LOGS.0),
    description: "ManageEngine Site24x7 / OpManager Nexus: metrics and logs over OTLP/HTTP (api-key)",
    create: create,
}
