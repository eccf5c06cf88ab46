//! # The `elasticsearch` plugin: logs, metrics and spans into Elasticsearch
//!
//! A sink that writes every batch with the Bulk API
//! (<https://www.elastic.co/guide/en/elasticsearch/reference/current/docs-bulk.html>)
//! as NDJSON, into data streams (`create` action, `logs-<dataset>-<namespace>`,
//! `metrics-...`, `traces-...`; the default) or dated indices (`index` action,
//! `tfo-logs-2023.11.14`), with Elastic Common Schema field names.
//!
//! Why it is built this way: the Bulk API answers 200 even when some documents
//! failed, so the plugin reads every item's status; it retries only the
//! documents refused for a retryable reason (429, 5xx) and drops (and counts)
//! those refused for good (mapping errors), so one bad document never blocks or
//! duplicates a batch.
//!
//! Layout (DESIGN.md §8): [`config`] (keys, defaults, validation with field
//! paths), [`encode`] (pure data model -> NDJSON, bulk response parsing),
//! [`client`] (transport, auth, retry bookkeeping). User docs:
//! `docs/integrations/elasticsearch.md`.

#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod encode;

use std::time::{SystemTime, UNIX_EPOCH};

use tfo_plugin_api::prelude::*;

use crate::{client::BulkClient, config::Config};

/// One elasticsearch instance.
pub struct Elasticsearch {
    client: BulkClient,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Validates the config and prepares the HTTP client; connects nothing (`tfo-agent
/// validate` calls `create` and shuts the instance down right away).
pub fn create(_ctx: &Context, config: Config) -> Result<Elasticsearch, CreateError> {
    let errors = config.validate();
    if !errors.is_empty() {
        return Err(CreateError::configs(errors));
    }
    let client = BulkClient::new(&config).map_err(|e| {
        let path = if config.ca_file.is_some() {
            "ca_file"
        } else {
            ""
        };
        CreateError::config(path, e)
    })?;
    Ok(Elasticsearch { client })
}

impl Plugin for Elasticsearch {
    fn export(&mut self, ctx: &Context, batch: &Batch) -> Result<ExportOk, PluginError> {
        if batch.is_empty() {
            return Ok(ExportOk { accepted: 0 });
        }
        ctx.block_on(self.client.export(batch, now_ns()))
    }

    fn preview(&mut self, _ctx: &Context, batch: &Batch) -> Result<String, PluginError> {
        Ok(self.client.preview(batch, now_ns()))
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        if let Some(e) = self.client.last_error() {
            return HealthReport::unhealthy(e);
        }
        let mut h = HealthReport::healthy();
        if let Some(d) = self.client.last_drop() {
            h.reason = d.into();
        }
        h
    }
}

tfo_plugin_api::export_plugin! {
    name: "elasticsearch",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Sink,
    data_types: DataTypes::ALL,
    description: "Elasticsearch Bulk API sink (data streams or dated indices, ECS fields)",
    create: create,
}
