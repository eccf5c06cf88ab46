//! # The `alibaba` plugin: Alibaba Cloud sink
//!
//! Sends the agent's telemetry to Alibaba Cloud with the services' real request
//! formats and signatures (the Go agent this replaces sent JSON to PutLogs and
//! signed with a simplified, invalid scheme):
//! - **logs** to Simple Log Service `PutLogs`: protobuf LogGroup, LZ4 or deflate,
//!   SLS `LOG` signature
//!   (<https://www.alibabacloud.com/help/en/sls/developer-reference/request-signatures>);
//! - **metrics** to CloudMonitor `PutCustomMetric` with the RPC signature
//!   (<https://www.alibabacloud.com/help/en/cms/developer-reference/api-cms-2019-01-01-putcustommetric>,
//!   <https://www.alibabacloud.com/help/en/sdk/product-overview/rpc-mechanism>);
//! - **traces** to Managed Service for OpenTelemetry (ARMS tracing) over OTLP/HTTP
//!   (<https://www.alibabacloud.com/help/en/opentelemetry/user-guide/before-you-begin-before-you-begin>),
//!   encoded by `tfo_plugin_common::otlp`.
//!
//! Layout (DESIGN.md §8): [`config`], [`sign`] (signatures, checked against the
//! vendor's published examples), [`encode`] (pure mapping), [`client`] (transport).

#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod encode;
pub mod sign;

use std::time::{Duration, SystemTime};

use tfo_plugin_api::prelude::*;
use tfo_plugin_common::http::{ClientOptions, HttpClient};

use crate::{client::AlibabaClient, config::Config};

/// One alibaba instance.
pub struct Alibaba {
    client: AlibabaClient,
}

/// Validates the config and prepares the client; connects nothing.
pub fn create(_ctx: &Context, config: Config) -> Result<Alibaba, CreateError> {
    let config = config.normalize();
    let errors = config.validate();
    if !errors.is_empty() {
        return Err(CreateError::configs(errors));
    }
    let http = HttpClient::new(&ClientOptions {
        timeout: config.timeout,
        ca_file: config.ca_file.clone(),
        insecure_skip_verify: config.insecure_skip_verify,
        ..ClientOptions::default()
    })
    .map_err(|e| CreateError::config("ca_file", e))?;
    Ok(Alibaba {
        client: AlibabaClient::new(&config, http),
    })
}

impl Plugin for Alibaba {
    fn export(&mut self, ctx: &Context, batch: &Batch) -> Result<ExportOk, PluginError> {
        if batch.is_empty() {
            return Ok(ExportOk { accepted: 0 });
        }
        ctx.block_on(self.client.export(batch, SystemTime::now()))
    }

    fn preview(&mut self, _ctx: &Context, batch: &Batch) -> Result<String, PluginError> {
        Ok(self.client.preview(batch, SystemTime::now()))
    }

    fn shutdown(&mut self, _ctx: &Context, _deadline: Duration) -> Result<(), PluginError> {
        Ok(())
    }
}

tfo_plugin_api::export_plugin! {
    name: "alibaba",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Sink,
    data_types: DataTypes::ALL,
    description: "Alibaba Cloud: SLS logs (PutLogs), CloudMonitor custom metrics, OpenTelemetry traces",
    create: create,
}
