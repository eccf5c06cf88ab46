//! # The `newrelic` plugin: a sink sending metrics, logs and traces to New Relic
//!
//! - **metrics** go to the Metric API, `POST https://metric-api.newrelic.com/metric/v1`
//!   ("Report metrics via the Metric API",
//!   <https://docs.newrelic.com/docs/data-apis/ingest-apis/metric-api/report-metrics-metric-api/>;
//!   limits: <https://docs.newrelic.com/docs/data-apis/ingest-apis/metric-api/metric-api-limits-restricted-attributes/>);
//! - **logs** go to the Log API, `POST https://log-api.newrelic.com/log/v1`
//!   ("Introduction to the Log API",
//!   <https://docs.newrelic.com/docs/logs/log-api/introduction-log-api/>);
//! - **traces** go to the Trace API in the New Relic format,
//!   `POST https://trace-api.newrelic.com/trace/v1` with `Data-Format: newrelic`,
//!   `Data-Format-Version: 1` ("Report traces via the Trace API (New Relic
//!   format)",
//!   <https://docs.newrelic.com/docs/distributed-tracing/trace-api/report-new-relic-format-traces-trace-api/>).
//!
//! `region: eu` switches to the documented EU hosts (`*.eu.newrelic.com`); every
//! endpoint can be overridden. Authentication is a license key in `Api-Key`, or a
//! legacy Insights insert key in `X-Insert-Key`. Bodies are gzip-compressed and
//! split to the 1 MB per-request limit.
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

/// One newrelic instance.
pub struct NewRelic {
    exporter: Exporter,
}

/// Validates the config and prepares the HTTP client; sends nothing.
pub fn create(_ctx: &Context, config: Config) -> Result<NewRelic, CreateError> {
    let errors = config.validate();
    if !errors.is_empty() {
        return Err(CreateError::configs(errors));
    }
    let exporter = Exporter::new(config).map_err(|e| CreateError::config("ca_file", e))?;
    Ok(NewRelic { exporter })
}

impl Plugin for NewRelic {
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
                reason: format!("last problem reported by New Relic: {p}").into(),
            },
            None => HealthReport::healthy(),
        }
    }
}

tfo_plugin_api::export_plugin! {
    name: "newrelic",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Sink,
    data_types: DataTypes::ALL,
    description: "New Relic: Metric API, Log API and Trace API (New Relic format), US or EU",
    create: create,
}
