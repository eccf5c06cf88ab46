//! # The `otlp` plugin: OTLP/HTTP receiver (source) and exporter (sink)
//!
//! One library, kind source+sink, all data types:
//! - the **receiver** ([`receiver`]) is an OTLP/HTTP server: applications and
//!   OpenTelemetry SDKs or collectors post `/v1/traces`, `/v1/metrics` and
//!   `/v1/logs` to it (protobuf or JSON, optionally gzip), and every resource of a
//!   request becomes one batch pushed to the agent's pipeline with `emit`;
//! - the **exporter** ([`client`]) posts each batch the pipeline hands it to an
//!   OTLP/HTTP backend (an OpenTelemetry Collector, or any vendor accepting OTLP).
//!
//! An instance has a `receiver` block, an `exporter` block, or both ([`config`]).
//!
//! Specification followed: OpenTelemetry Protocol, OTLP/HTTP
//! (<https://opentelemetry.io/docs/specs/otlp/>, the same text as
//! `docs/specification.md` of opentelemetry-proto), in particular "OTLP/HTTP
//! Request", "OTLP/HTTP Response" (full success, partial success, failures,
//! retryable response codes, bad data, throttling), "JSON Protobuf Encoding" and
//! "OTLP/HTTP Default Port"; message schemas from opentelemetry-proto
//! (<https://github.com/open-telemetry/opentelemetry-proto>), through the
//! `opentelemetry-proto` crate's prost types. The mapping to the agent's data model
//! is described in [`convert`] (OTLP -> agent) and, shared with other plugins,
//! [`tfo_plugin_common::otlp`] (agent -> OTLP).
//!
//! OTLP/gRPC is not implemented: it needs an HTTP/2 gRPC server and client (tonic)
//! for a transport every OpenTelemetry SDK and the Collector can replace with
//! OTLP/HTTP by configuration.
//!
//! Layout (DESIGN.md §8): `config.rs` (config and validation), `convert.rs` (pure
//! mapping; the encoder is `tfo_plugin_common::otlp`), `json.rs` (OTLP/JSON), `receiver.rs` (the server),
//! `client.rs` (the exporter's transport), `status.rs` (`google.rpc.Status`).

#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod convert;
pub mod hex;
pub mod json;
pub mod receiver;
pub mod status;

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use tfo_plugin_api::prelude::*;

use crate::{
    client::Exporter,
    config::{Config, ReceiverConfig},
    json::JsonCodec,
    receiver::Receiver,
};

/// One otlp instance: its receiver (started in `start`) and its exporter.
pub struct Otlp {
    receiver_config: Option<ReceiverConfig>,
    codec: JsonCodec,
    receiver: Option<Receiver>,
    exporter: Option<Exporter>,
    /// Set once a batch arrived although there is no exporter block (logged once).
    told_no_exporter: bool,
}

/// Validates the config and prepares the instance; binds nothing (`tfo-agent
/// validate` calls `create` and shuts the instance down right away).
pub fn create(_ctx: &Context, config: Config) -> Result<Otlp, CreateError> {
    let errors = config.validate();
    if !errors.is_empty() {
        return Err(CreateError::configs(errors));
    }
    let codec = JsonCodec::new().map_err(CreateError::init)?;
    let exporter = match config.exporter {
        Some(x) => {
            let path = if x.ca_file.is_some() {
                "exporter.ca_file"
            } else {
                "exporter"
            };
            Some(Exporter::new(x, codec.clone()).map_err(|e| CreateError::config(path, e))?)
        }
        None => None,
    };
    Ok(Otlp {
        receiver_config: config.receiver,
        codec,
        receiver: None,
        exporter,
        told_no_exporter: false,
    })
}

impl Plugin for Otlp {
    fn start(&mut self, ctx: &Context) -> Result<(), PluginError> {
        let Some(rc) = &self.receiver_config else {
            return Ok(());
        };
        if self.receiver.is_some() {
            return Ok(());
        }
        let addr = rc.listen_addr().map_err(PluginError::permanent)?;
        let host = ctx.host().clone();
        let emit: receiver::EmitFn = Arc::new(move |batch| host.emit(batch));
        let codec = self.codec.clone();
        let limits = receiver::Limits {
            max_body: rc.max_body_bytes,
            max_requests_per_second: rc.max_requests_per_second,
            max_connections: rc.max_connections,
            queue_wait: rc.queue_wait,
        };
        let receiver = ctx
            .block_on(async move { Receiver::start(addr, limits, codec, emit) })
            .map_err(|e| PluginError::retryable(format!("otlp receiver: {e}")))?;
        tracing::info!(
            "otlp receiver listening on http://{}",
            receiver.local_addr()
        );
        self.receiver = Some(receiver);
        Ok(())
    }

    fn export(&mut self, ctx: &Context, batch: &Batch) -> Result<ExportOk, PluginError> {
        let Some(exporter) = &self.exporter else {
            // The host routes every batch to every sink of a source+sink plugin; an
            // instance without an exporter is only a receiver and takes none of it.
            if !self.told_no_exporter {
                self.told_no_exporter = true;
                tracing::info!(
                    "otlp: this instance has no `exporter` block; batches routed to it are \
                     not sent anywhere (other sinks still get them)"
                );
            }
            return Ok(ExportOk { accepted: 0 });
        };
        if batch.is_empty() {
            return Ok(ExportOk { accepted: 0 });
        }
        ctx.block_on(exporter.export(batch))
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        if self.receiver_config.is_some() && self.receiver.is_none() {
            return HealthReport {
                state: HealthState::Initializing,
                reason: "receiver not started".into(),
            };
        }
        let mut report = HealthReport::healthy();
        if let Some(x) = &self.exporter {
            let rejected = x.stats().rejected_by_backend.load(Ordering::Relaxed);
            if let Some(last) = x.last_rejection() {
                report.reason =
                    format!("backend rejected {rejected} item(s) so far; last: {last}").into();
            }
        }
        report
    }

    fn shutdown(&mut self, ctx: &Context, deadline: Duration) -> Result<(), PluginError> {
        if let Some(mut r) = self.receiver.take() {
            // Leave part of the deadline for the SDK to stop the runtime.
            let grace = deadline.mul_f32(0.8);
            ctx.block_on(r.stop(grace));
            let s = r.stats();
            tracing::info!(
                "otlp receiver stopped: {} request(s) accepted, {} refused, {} throttled, \
                 {} rate-limited, {} connection(s) over the limit; {} item(s) emitted, {} rejected",
                s.requests_ok.load(Ordering::Relaxed),
                s.requests_refused.load(Ordering::Relaxed),
                s.requests_throttled.load(Ordering::Relaxed),
                s.requests_rate_limited.load(Ordering::Relaxed),
                s.connections_refused.load(Ordering::Relaxed),
                s.items_accepted.load(Ordering::Relaxed),
                s.items_rejected.load(Ordering::Relaxed),
            );
        }
        Ok(())
    }
}

tfo_plugin_api::export_plugin! {
    name: "otlp",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::SourceAndSink,
    data_types: DataTypes::ALL,
    description: "OTLP/HTTP receiver and exporter (metrics, traces, logs; protobuf and JSON)",
    create: create,
}
