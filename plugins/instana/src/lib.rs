//! # The `instana` plugin: a sink for IBM Instana through its OTLP acceptor
//!
//! How an agent-less source reports to Instana, as Instana documents it: send
//! OpenTelemetry data in OTLP to
//! - the Instana **backend**'s otlp-acceptor, SaaS
//!   `https://otlp-<region>-saas.instana.io:4318` (or port 443) or a self-hosted
//!   unit's acceptor domain, with the agent key in `x-instana-key` and, when the
//!   data carries no `host.id` / `faas.id` / `device.id` resource attribute, the host
//!   in `x-instana-host`
//!   ("Sending OpenTelemetry data to the Instana backend",
//!   <https://www.ibm.com/docs/en/instana-observability/current?topic=opentelemetry-sending-data-instana-backend>);
//! - or an Instana **host agent**'s OTLP receiver (`http://<agent>:4318`, on by
//!   default since agent 1.1.726), which forwards to the backend
//!   ("Sending OpenTelemetry data to the Instana agent",
//!   <https://www.ibm.com/docs/en/instana-observability?topic=instana-agent>).
//!
//! Both take traces, metrics and logs over OTLP/HTTP (`/v1/traces`, `/v1/metrics`,
//! `/v1/logs`, binary protobuf), encoded by the shared `tfo_plugin_common::otlp`.
//!
//! Not used: the serverless acceptor's bundle API (`serverless-<region>` hosts,
//! `X-Instana-Key`/`X-Instana-Host`/`X-Instana-Time`) is the private protocol of
//! Instana's in-process serverless tracers, with no public reference of its payload;
//! the host agent's legacy REST endpoints (`:42699/com.instana.plugin.generic.*`)
//! need an agent on the same machine and take only events and Instana-format spans.
//! The older Go agent posted made-up JSON to `/metrics`, `/traces` and `/events`;
//! none of that is kept.
//!
//! Layout (DESIGN.md §8): [`config`], [`encode`] (Instana's additions around the
//! shared OTLP encoder), [`client`] (transport and answers); this file only
//! declares the plugin.

#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod encode;

use tfo_plugin_api::prelude::*;

use crate::{client::Exporter, config::Config};

/// One instana instance.
pub struct Instana {
    exporter: Exporter,
}

/// Validates the config and builds the HTTP client; connects nothing.
pub fn create(_ctx: &Context, config: Config) -> Result<Instana, CreateError> {
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
    Ok(Instana { exporter })
}

impl Plugin for Instana {
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
                "acceptor rejected {} item(s) so far; last: {last}",
                self.exporter.stats().rejected_by_backend
            )
            .into();
        }
        report
    }
}

tfo_plugin_api::export_plugin! {
    name: "instana",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Sink,
    data_types: DataTypes::ALL,
    description: "IBM Instana: OTLP/HTTP to the backend otlp-acceptor or a host agent",
    create: create,
}
