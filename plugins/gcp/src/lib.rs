//! # The `gcp` plugin: Google Cloud Monitoring, Logging and Trace (sink)
//!
//! Sends what the pipeline hands it to Google Cloud, authenticated for real:
//! - metrics to Cloud Monitoring `projects.timeSeries.create`
//!   (`POST {monitoring}/projects/{project}/timeSeries`);
//! - logs to Cloud Logging `entries.write` (`POST {logging}/entries:write`);
//! - spans to Cloud Trace v2 `projects.traces.batchWrite`
//!   (`POST {trace}/projects/{project}/traces:batchWrite`).
//!
//! The TelemetryFlow Go agent built these request shapes but never obtained an OAuth
//! token, so every request it sent was unauthenticated. Here access tokens come from
//! a service-account key (a signed JWT exchanged at Google's token endpoint), the
//! GCE/GKE metadata server, or a configured token ([`auth`]); they are cached,
//! refreshed five minutes before expiry and once more after a 401.
//!
//! Layout (DESIGN.md §8): [`config`] (keys, defaults, validation with paths),
//! [`encode`] (pure mapping to the three APIs' JSON, golden-tested), [`auth`]
//! (tokens), [`client`] (transport, errors, partial failures, resumable batches).
//! The vendor documents each module follows are cited in its own docs.

#![warn(missing_docs)]

pub mod auth;
pub mod client;
pub mod config;
pub mod encode;

use std::time::Duration;

use tfo_plugin_api::prelude::*;

use crate::{client::Exporter, config::Config};

/// One gcp instance.
pub struct Gcp {
    exporter: Exporter,
}

/// Validates the config, reads the credentials and builds the HTTP client; sends
/// nothing (no token is fetched before the first export).
pub fn create(_ctx: &Context, config: Config) -> Result<Gcp, CreateError> {
    let settings = config.into_settings().map_err(CreateError::configs)?;
    let path = if settings.config.ca_file.is_some() {
        "ca_file"
    } else {
        ""
    };
    let exporter = Exporter::new(settings).map_err(|e| CreateError::config(path, e))?;
    Ok(Gcp { exporter })
}

impl Plugin for Gcp {
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
        match self.exporter.last_error() {
            Some(e) if self.exporter.auth_failed() => HealthReport::unhealthy(e),
            Some(e) => HealthReport {
                state: HealthState::Healthy,
                reason: format!("last rejection: {e}").into(),
            },
            None => HealthReport::healthy(),
        }
    }

    fn shutdown(&mut self, _ctx: &Context, _deadline: Duration) -> Result<(), PluginError> {
        Ok(())
    }
}

tfo_plugin_api::export_plugin! {
    name: "gcp",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Sink,
    data_types: DataTypes::ALL,
    description: "Google Cloud Monitoring, Logging and Trace v2 (OAuth 2.0: service account, metadata server or token)",
    create: create,
}
