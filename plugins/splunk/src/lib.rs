//! # tfo-plugin-splunk
//!
//! A tfo-agent sink that sends logs, spans and metrics to a Splunk HTTP Event
//! Collector (HEC):
//! - logs and spans as JSON events, metrics as metric events in the
//!   multiple-metric JSON format, several events per request
//!   (`POST /services/collector/event`), see [`encode`];
//! - `Authorization: Splunk <token>`, one `X-Splunk-Request-Channel` (a random UUID)
//!   per instance, optional gzip, requests split by event count and size;
//! - optional indexer acknowledgement (`ack: true`): a batch is reported delivered
//!   only once `POST /services/collector/ack` confirms every request, otherwise it
//!   is retried (at-least-once), see [`client`];
//! - HEC status codes mapped to retryable or permanent errors; an event the server
//!   refuses as bad data is dropped and counted without losing the rest of the
//!   batch.
//!
//! Vendor documentation followed (cited in each module): "Format events for HTTP
//! Event Collector", "Get metrics in from other sources" (multiple-metric JSON
//! format), "HTTP Event Collector REST API endpoints", "About HTTP Event Collector
//! Indexer Acknowledgment", "Troubleshoot HTTP Event Collector" (status codes).
//!
//! Layout (DESIGN.md §8): [`config`] (keys, defaults, validation with field paths),
//! [`encode`] (pure mapping to HEC events, golden-tested), [`client`] (requests,
//! answers, acknowledgement), and this file (the plugin declaration).
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod encode;

use std::{sync::atomic::Ordering, time::Duration};

use tfo_plugin_api::prelude::*;

use client::HecClient;
pub use config::Config;

/// One running Splunk HEC sink.
#[derive(Debug)]
pub struct SplunkSink {
    client: HecClient,
    last_error: Option<String>,
}

impl SplunkSink {
    /// The HEC client (for its counters and channel).
    pub fn client(&self) -> &HecClient {
        &self.client
    }
}

impl Plugin for SplunkSink {
    fn export(&mut self, ctx: &Context, batch: &Batch) -> Result<ExportOk, PluginError> {
        match ctx.block_on(self.client.export(batch)) {
            Ok(ok) => {
                self.last_error = None;
                Ok(ok)
            }
            Err(e) => {
                self.last_error = Some(e.message.to_string());
                Err(e)
            }
        }
    }

    fn preview(&mut self, _ctx: &Context, batch: &Batch) -> Result<String, PluginError> {
        let bodies = self.client.preview(batch);
        let mut out = String::new();
        for (i, b) in bodies.iter().enumerate() {
            out.push_str(&format!(
                "POST {} (request {} of {})\n",
                self.client.event_url(),
                i + 1,
                bodies.len()
            ));
            out.push_str(&String::from_utf8_lossy(b));
            out.push('\n');
        }
        Ok(out)
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        match &self.last_error {
            Some(e) => HealthReport::unhealthy(e.as_str()),
            None => HealthReport::healthy(),
        }
    }

    fn shutdown(&mut self, _ctx: &Context, _deadline: Duration) -> Result<(), PluginError> {
        let s = self.client.stats();
        tracing::info!(
            requests_ok = s.requests_ok.load(Ordering::Relaxed),
            acked_requests = s.acked_requests.load(Ordering::Relaxed),
            dropped_items = s.dropped_items.load(Ordering::Relaxed),
            rejected_items = s.rejected_items.load(Ordering::Relaxed),
            renamed_keys = s.renamed_keys.load(Ordering::Relaxed),
            "splunk sink stopped"
        );
        Ok(())
    }
}

/// Builds an instance: validates the config (every problem with its field path),
/// reads the CA file and draws the request channel. Nothing connects here.
pub fn create(ctx: &Context, config: Config) -> Result<SplunkSink, CreateError> {
    let errors = config.validate();
    if !errors.is_empty() {
        return Err(CreateError::configs(errors));
    }
    let channel = uuid::Uuid::new_v4().to_string();
    let client = HecClient::new(&config, channel).map_err(|e| CreateError::config("tls", e))?;
    tracing::info!(
        instance = ctx.instance_name(),
        endpoint = client.event_url(),
        channel = client.channel(),
        ack = config.ack,
        "splunk sink ready"
    );
    Ok(SplunkSink {
        client,
        last_error: None,
    })
}

tfo_plugin_api::export_plugin! {
    name: "splunk",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Sink,
    data_types: DataTypes::ALL,
    description: "Splunk HTTP Event Collector: logs and spans as events, metrics as metric events, optional indexer acknowledgement",
    create: create,
}
