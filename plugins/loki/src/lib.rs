//! # The `loki` plugin: log records into Grafana Loki
//!
//! A sink for **logs only** (its descriptor declares `DataTypes::LOGS`; metrics and
//! spans in a mixed batch are ignored, not counted as drops). Every batch is sent
//! with Loki's push API
//! (<https://grafana.com/docs/loki/latest/reference/loki-http-api/#ingest-logs>),
//! by default as a Snappy-compressed protobuf `PushRequest`, optionally as JSON.
//!
//! Why it is built this way: Loki indexes only the stream labels, so only a few
//! configured attributes become labels (sanitized, length-capped) and the rest
//! go to structured metadata or the line; entries are sorted per stream so Loki
//! does not refuse them as out of order; entries Loki refuses for good (out of
//! order, too far behind) are counted and dropped, never retried in a loop,
//! while 429 and 5xx are retried without resending what was already ingested.
//!
//! Layout (DESIGN.md §8): [`config`], [`encode`] (pure mapping, the push.proto
//! messages, golden-tested), [`client`] (transport and answers). User docs:
//! `docs/integrations/loki.md`.

#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod encode;

use std::time::{SystemTime, UNIX_EPOCH};

use tfo_plugin_api::prelude::*;

use crate::{client::Pusher, config::Config};

/// One loki instance.
pub struct Loki {
    pusher: Pusher,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Validates the config and prepares the HTTP client; connects nothing (`tfo-agent
/// validate` calls `create` and shuts the instance down right away).
pub fn create(_ctx: &Context, config: Config) -> Result<Loki, CreateError> {
    let errors = config.validate();
    if !errors.is_empty() {
        return Err(CreateError::configs(errors));
    }
    let pusher = Pusher::new(&config).map_err(|e| {
        let path = if config.ca_file.is_some() {
            "ca_file"
        } else {
            ""
        };
        CreateError::config(path, e)
    })?;
    Ok(Loki { pusher })
}

impl Plugin for Loki {
    fn export(&mut self, ctx: &Context, batch: &Batch) -> Result<ExportOk, PluginError> {
        if batch.is_empty() {
            return Ok(ExportOk { accepted: 0 });
        }
        ctx.block_on(self.pusher.export(batch, now_ns()))
    }

    fn preview(&mut self, _ctx: &Context, batch: &Batch) -> Result<String, PluginError> {
        Ok(self.pusher.preview(batch, now_ns()))
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        if let Some(e) = self.pusher.last_error() {
            return HealthReport::unhealthy(e);
        }
        let mut h = HealthReport::healthy();
        if let Some(d) = self.pusher.last_drop() {
            h.reason = d.into();
        }
        h
    }
}

tfo_plugin_api::export_plugin! {
    name: "loki",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Sink,
    data_types: DataTypes::LOGS,
    description: "Grafana Loki push API sink for logs (protobuf+snappy or JSON)",
    create: create,
}
