//! # The `datadog` plugin: a sink sending metrics, logs and traces to Datadog
//!
//! - **metrics** go to the series API, `POST https://api.<site>/api/v2/series`
//!   ("Submit metrics", <https://docs.datadoghq.com/api/latest/metrics/#submit-metrics>),
//!   in the v2 shape (integer `type`, `{"timestamp","value"}` points, the host as a
//!   `resources` entry); `api_version: v1` posts the v1 shape to
//!   `/api/v1/series` instead, for receivers that only know v1;
//! - **logs** go to the logs intake, `POST https://http-intake.logs.<site>/api/v2/logs`
//!   ("Send logs", <https://docs.datadoghq.com/api/latest/logs/#send-logs>);
//! - **traces** go as OTLP/HTTP to a Datadog Agent's OTLP receiver ("OTLP Ingest in
//!   the Agent",
//!   <https://docs.datadoghq.com/opentelemetry/setup/otlp_ingest_in_the_agent/>),
//!   because Datadog has no public trace intake for third-party senders (see
//!   [`client`]).
//!
//! Authentication is the `DD-API-KEY` header; the `site` setting picks the hosts
//! (every endpoint can be overridden, which the tests use). Bodies are gzip
//! compressed and split to the documented limits; answers are classified as the
//! API reference and the "Rate Limits" page
//! (<https://docs.datadoghq.com/api/latest/rate-limits/>) describe.
//!
//! The older Go agent posted v1-shaped series (string types, `[ts, value]` points)
//! to the v2 endpoint, which Datadog refuses; this plugin sends each API its own
//! shape, checked by golden tests written from the API reference's examples.
//!
//! Layout (DESIGN.md §8): [`config`] (keys, defaults, validation), [`encode`] (pure
//! mapping, golden-tested), `tfo_plugin_common::chunk` (splitting to the limits, shared), [`client`]
//! (transport, auth, answers), this file (the plugin declaration).

#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod encode;

use tfo_plugin_api::prelude::*;

use crate::{client::Exporter, config::Config};

/// One datadog instance.
pub struct Datadog {
    exporter: Exporter,
}

/// Validates the config and prepares the HTTP client; sends nothing.
pub fn create(_ctx: &Context, config: Config) -> Result<Datadog, CreateError> {
    let errors = config.validate();
    if !errors.is_empty() {
        return Err(CreateError::configs(errors));
    }
    let exporter = Exporter::new(config).map_err(|e| CreateError::config("ca_file", e))?;
    Ok(Datadog { exporter })
}

impl Plugin for Datadog {
    fn export(&mut self, ctx: &Context, batch: &Batch) -> Result<ExportOk, PluginError> {
        if batch.is_empty() {
            return Ok(ExportOk { accepted: 0 });
        }
        ctx.block_on(self.exporter.export(batch))
    }

    fn preview(&mut self, _ctx: &Context, batch: &Batch) -> Result<String, PluginError> {
        self.exporter.preview(batch)
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        match self.exporter.last_problem() {
            Some(p) if self.exporter.auth_refused() => HealthReport::unhealthy(p),
            Some(p) => HealthReport {
                state: HealthState::Healthy,
                reason: format!("last problem reported by Datadog: {p}").into(),
            },
            None => HealthReport::healthy(),
        }
    }
}

tfo_plugin_api::export_plugin! {
    name: "datadog",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Sink,
    data_types: DataTypes::ALL,
    description: "Datadog: metrics (series API v2/v1), logs (HTTP intake v2), traces (OTLP to a Datadog Agent)",
    create: create,
}
