//! # The `azure` plugin: Azure Monitor sink
//!
//! Sends the agent's telemetry to Azure Monitor with real authentication (the Go
//! agent this replaces never obtained a token):
//! - **metrics** to the custom metrics API of a resource
//!   (<https://learn.microsoft.com/en-us/azure/azure-monitor/essentials/metrics-store-custom-rest-api>);
//! - **logs** to the Logs Ingestion API through a data collection rule
//!   (<https://learn.microsoft.com/en-us/azure/azure-monitor/logs/logs-ingestion-api-overview>);
//! - **traces** to Application Insights (Breeze `v2.1/track` envelopes, connection
//!   string as documented in
//!   <https://learn.microsoft.com/en-us/azure/azure-monitor/app/connection-strings>).
//!
//! Tokens come from Microsoft Entra ID (client credentials) or the managed identity
//! of the Azure resource the agent runs on (`tfo_plugin_common::azure_auth`, cargo
//! feature `azure-auth`, shared with the azure-arc source).
//!
//! Layout (DESIGN.md §8): [`config`] (keys, validation), [`encode`] (pure
//! mapping, golden tests), [`client`] (transport, retries,
//! partial acceptance).

#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod encode;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tfo_plugin_api::prelude::*;
use tfo_plugin_common::{
    azure_auth::{self as auth, Credential, Endpoints, TokenSource},
    http::{ClientOptions, HttpClient},
};

use crate::{client::AzureClient, config::Config};

/// One azure instance.
pub struct Azure {
    client: AzureClient,
}

fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Validates the config and prepares the client; connects nothing and fetches no
/// token (`tfo-agent validate` calls this).
pub fn create(_ctx: &Context, config: Config) -> Result<Azure, CreateError> {
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
    let tokens = config.needs_token().then(|| {
        let credential = if config.use_managed_identity {
            Credential::ManagedIdentity {
                client_id: config.client_id.clone().filter(|s| !s.trim().is_empty()),
            }
        } else {
            Credential::ClientSecret {
                tenant_id: config.tenant_id.clone().unwrap_or_default(),
                client_id: config.client_id.clone().unwrap_or_default(),
                client_secret: config
                    .client_secret
                    .clone()
                    .unwrap_or(auth::Secret::new("")),
            }
        };
        TokenSource::new(
            credential,
            Endpoints {
                authority_host: config.authority_host.clone(),
                imds_endpoint: config.imds_endpoint.clone(),
            },
            http.clone(),
        )
    });
    let client = AzureClient::new(&config, http, tokens).map_err(CreateError::init)?;
    Ok(Azure { client })
}

impl Plugin for Azure {
    fn export(&mut self, ctx: &Context, batch: &Batch) -> Result<ExportOk, PluginError> {
        if batch.is_empty() {
            return Ok(ExportOk { accepted: 0 });
        }
        ctx.block_on(self.client.export(batch, now_unix_nanos()))
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        let mut report = HealthReport::healthy();
        if let Some(last) = self.client.last_rejection() {
            report.reason = format!(
                "{} item(s) rejected so far; last: {last}",
                self.client
                    .stats()
                    .rejected
                    .load(std::sync::atomic::Ordering::Relaxed)
            )
            .into();
        }
        report
    }

    fn preview(&mut self, _ctx: &Context, batch: &Batch) -> Result<String, PluginError> {
        Ok(self.client.preview(batch, now_unix_nanos()))
    }

    fn shutdown(&mut self, _ctx: &Context, _deadline: Duration) -> Result<(), PluginError> {
        Ok(())
    }
}

tfo_plugin_api::export_plugin! {
    name: "azure",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Sink,
    data_types: DataTypes::ALL,
    description: "Azure Monitor: custom metrics, Logs Ingestion API, Application Insights traces (Entra ID / managed identity)",
    create: create,
}
