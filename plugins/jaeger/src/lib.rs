//! # tfo-plugin-jaeger
//!
//! A tfo-agent sink that sends traces to a Jaeger collector over OTLP/HTTP:
//! `POST <endpoint>/v1/traces` with a binary protobuf `ExportTraceServiceRequest`,
//! which Jaeger accepts natively on port 4318
//! (<https://www.jaegertracing.io/docs/latest/apis/#opentelemetry-protocol-stable>).
//! The message is built by the agent's shared OTLP encoder
//! (`tfo_plugin_common::otlp::traces`); [`encode`] adds Jaeger's `service.name`
//! default, drops spans with invalid ids and cuts requests to size; [`client`]
//! sends them and classifies the answers as the OTLP specification says.
//!
//! Traces only: the descriptor declares `DataTypes::TRACES`, so the host routes
//! only batches with spans here; metrics or logs in a mixed batch are ignored and
//! reported as accepted.
//!
//! Not implemented, on purpose: Jaeger's legacy protocols (Thrift over HTTP on
//! `:14268/api/traces`, Thrift compact over UDP, the `jaeger.api_v2` gRPC service).
//! They are legacy intakes (the UDP agent is gone from Jaeger v2; Jaeger documents
//! OTLP as the stable way in), and every Jaeger since 1.35 takes
//! OTLP. The older Go agent posted JSON to the Thrift endpoint, which never worked;
//! the config refuses that endpoint with an explanation.
//!
//! Layout (DESIGN.md §8): [`config`], [`encode`], [`client`], and this file.
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod encode;

use std::{sync::atomic::Ordering, time::Duration};

use tfo_plugin_api::prelude::*;
use tfo_plugin_common::otlp::prost::Message as _;

use client::JaegerClient;
pub use config::Config;

/// One running Jaeger sink.
#[derive(Debug)]
pub struct JaegerSink {
    client: JaegerClient,
    last_error: Option<String>,
}

impl Plugin for JaegerSink {
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
        use tfo_plugin_common::otlp::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        let enc = self.client.encode(batch);
        let mut out = String::new();
        for (i, r) in enc.requests.iter().enumerate() {
            out.push_str(&format!(
                "POST {} (request {} of {}, {} spans, {} bytes of protobuf)\n",
                self.client.url(),
                i + 1,
                enc.requests.len(),
                r.spans,
                r.body.len()
            ));
            if let Ok(msg) = ExportTraceServiceRequest::decode(&r.body[..]) {
                out.push_str(&format!("{msg:#?}\n"));
            }
        }
        Ok(out)
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        if let Some(e) = &self.last_error {
            return HealthReport::unhealthy(e.as_str());
        }
        match self.client.last_rejection() {
            Some(r) => HealthReport {
                state: HealthState::Healthy,
                reason: r.into(),
            },
            None => HealthReport::healthy(),
        }
    }

    fn shutdown(&mut self, _ctx: &Context, _deadline: Duration) -> Result<(), PluginError> {
        let s = self.client.stats();
        tracing::info!(
            requests_ok = s.requests_ok.load(Ordering::Relaxed),
            dropped_spans = s.dropped_spans.load(Ordering::Relaxed),
            rejected_spans = s.rejected_spans.load(Ordering::Relaxed),
            "jaeger sink stopped"
        );
        Ok(())
    }
}

/// Builds an instance: validates the config (every problem with its field path)
/// and reads the CA file. Nothing connects here.
pub fn create(ctx: &Context, config: Config) -> Result<JaegerSink, CreateError> {
    let errors = config.validate();
    if !errors.is_empty() {
        return Err(CreateError::configs(errors));
    }
    let client = JaegerClient::new(&config).map_err(|e| CreateError::config("tls", e))?;
    tracing::info!(
        instance = ctx.instance_name(),
        url = client.url(),
        "jaeger sink ready"
    );
    Ok(JaegerSink {
        client,
        last_error: None,
    })
}

tfo_plugin_api::export_plugin! {
    name: "jaeger",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Sink,
    data_types: DataTypes::TRACES,
    description: "Jaeger collector: traces over OTLP/HTTP (protobuf)",
    create: create,
}
