//! # The `mqtt` plugin: publish telemetry to an MQTT broker, ingest metrics from it
//!
//! One library, kind source+sink, all data types, one MQTT 3.1.1 connection per
//! instance (rumqttc, TLS by rustls with the `ring` provider):
//! - the **sink** publishes every metric data point, span and log record the
//!   pipeline hands it as one message, JSON or InfluxDB line protocol, or each
//!   signal of a batch as one OTLP protobuf export request ([`encode`]), on a topic
//!   rendered from a template; `export` returns `Ok` only once the broker
//!   acknowledged every QoS 1/2 message ([`client`]);
//! - the **source** subscribes to topic filters and turns each message (JSON, with
//!   an optional field mapping, or line protocol, [`decode`]) into metrics pushed to
//!   the pipeline with `emit`. The session is persistent by default, so the broker
//!   keeps what is published while the agent is away and delivers it on reconnect.
//!
//! The event loop runs on the instance runtime from `start` to `shutdown` and
//! reconnects with exponential back-off. Refused credentials or an untrusted broker
//! certificate on the first connection make `start` fail with the broker's reason;
//! an unreachable broker does not (the loop keeps trying, and `export` returns a
//! retryable error meanwhile, so the host keeps the batch).
//!
//! Specifications followed: MQTT Version 3.1.1, OASIS Standard
//! (<https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html>); InfluxDB
//! line protocol reference
//! (<https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/>);
//! OTLP messages from opentelemetry-proto
//! (<https://github.com/open-telemetry/opentelemetry-proto>).
//! What is sent and accepted, and every config key: `docs/integrations/mqtt.md`.
//!
//! Layout (DESIGN.md §8): [`config`] (config and validation), [`encode`] and
//! [`decode`] (pure mappings), [`client`] (connection, publishing, ingest), [`tls`]
//! (the rustls configuration).
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod decode;
pub mod encode;
pub mod tls;

use std::{sync::atomic::Ordering, sync::Arc, time::Duration};

use tfo_plugin_api::prelude::*;

use crate::{
    client::{Connection, Ingest, Link},
    config::{Config, Settings},
};

/// One mqtt instance: its validated settings and, once started, its connection.
pub struct Mqtt {
    settings: Settings,
    conn: Option<Connection>,
    /// Set once a batch arrived although the instance does not publish.
    told_no_topic: bool,
    /// Set once oversized messages were reported.
    told_too_big: bool,
}

/// Validates the config and prepares the instance; connects to nothing
/// (`tfo-agent validate` calls `create` and shuts the instance down right away).
pub fn create(ctx: &Context, config: Config) -> Result<Mqtt, CreateError> {
    let settings = config
        .resolve(ctx.instance_name(), &config::hostname())
        .map_err(CreateError::configs)?;
    if let Some(p) = &settings.publish {
        for (i, sub) in settings.subscribe.iter().enumerate() {
            if config::template_may_match(&p.topic, &sub.topic) {
                tracing::warn!(
                    "mqtt: published topics can match subscribe[{i}].topic {:?}: this instance would \
                     ingest its own messages and, if the agent routes them back to it, publish them \
                     again in a loop; set `routes` on this integration to leave itself out",
                    sub.topic
                );
            }
        }
    }
    tracing::debug!(
        broker = %settings.broker,
        client_id = %settings.client_id,
        publishes = settings.publish.is_some(),
        subscriptions = settings.subscribe.len(),
        "mqtt instance configured"
    );
    Ok(Mqtt {
        settings,
        conn: None,
        told_no_topic: false,
        told_too_big: false,
    })
}

impl Plugin for Mqtt {
    fn start(&mut self, ctx: &Context) -> Result<(), PluginError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let ingest = (!self.settings.subscribe.is_empty()).then(|| {
            let host = ctx.host().clone();
            Ingest {
                subscriptions: self.settings.subscribe.clone(),
                emit: Arc::new(move |batch| host.emit(batch)),
            }
        });
        let mut conn = Connection::spawn(ctx, &self.settings, ingest);
        let wait = self.settings.connect_timeout + Duration::from_secs(1);
        match ctx.block_on(conn.first_outcome(wait)) {
            Link::Up => {}
            Link::Down {
                error,
                permanent: true,
            } => {
                ctx.block_on(conn.shutdown(Duration::from_secs(1)));
                return Err(PluginError::permanent(error));
            }
            // The event loop has logged the failure and keeps trying.
            Link::Down { .. } => {}
            Link::Connecting => tracing::warn!(
                "no answer from MQTT broker {} within {wait:?}; still trying",
                self.settings.broker
            ),
        }
        self.conn = Some(conn);
        Ok(())
    }

    fn export(&mut self, ctx: &Context, batch: &Batch) -> Result<ExportOk, PluginError> {
        let Some(p) = &self.settings.publish else {
            // The host routes every batch to every sink of a source+sink plugin; an
            // instance with subscriptions and no `topic` only ingests.
            if !self.told_no_topic {
                self.told_no_topic = true;
                tracing::info!(
                    "mqtt: this instance has no `topic`, so it publishes nothing (other sinks still get the data)"
                );
            }
            return Ok(ExportOk { accepted: 0 });
        };
        let encoded = encode::encode_batch(batch, &p.topic, p.format);
        if let Some(why) = &encoded.skip_reason {
            tracing::debug!(items = encoded.skipped, "not published: {why}");
        }
        let limit = p.max_message_bytes;
        let (messages, too_big): (Vec<_>, Vec<_>) = encoded
            .messages
            .into_iter()
            .partition(|m| m.topic.len() + m.payload.len() <= limit);
        if !too_big.is_empty() && !self.told_too_big {
            self.told_too_big = true;
            tracing::warn!(
                count = too_big.len(),
                "messages larger than max_message_bytes ({limit}) are not published (first on topic {})",
                too_big[0].topic
            );
        }
        if messages.is_empty() {
            return Ok(ExportOk { accepted: 0 });
        }
        let Some(conn) = &self.conn else {
            return Err(PluginError::retryable("the mqtt instance is not started"));
        };
        let n = messages.iter().map(|m| m.items).sum();
        ctx.block_on(conn.publish(messages, p.qos, p.retain, self.settings.publish_timeout))?;
        Ok(ExportOk { accepted: n })
    }

    fn preview(&mut self, _ctx: &Context, batch: &Batch) -> Result<String, PluginError> {
        let Some(p) = &self.settings.publish else {
            return Ok("# this instance publishes nothing (no `topic`)\n".to_string());
        };
        Ok(encode::preview(
            &encode::encode_batch(batch, &p.topic, p.format),
            p.format,
        ))
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        let Some(conn) = &self.conn else {
            return HealthReport {
                state: HealthState::Initializing,
                reason: "not started".into(),
            };
        };
        let shared = conn.shared();
        match shared.link() {
            Link::Connecting => HealthReport {
                state: HealthState::Initializing,
                reason: format!("connecting to {}", self.settings.broker).into(),
            },
            Link::Down { error, .. } => HealthReport::unhealthy(error),
            Link::Up => {
                let s = &shared.stats;
                let mut report = HealthReport::healthy();
                if !self.settings.subscribe.is_empty() {
                    report.reason = format!(
                        "received {} message(s): {} point(s) emitted, {} dropped (queue full), {} malformed",
                        s.received.load(Ordering::Relaxed),
                        s.emitted_points.load(Ordering::Relaxed),
                        s.dropped_points.load(Ordering::Relaxed),
                        s.malformed.load(Ordering::Relaxed),
                    )
                    .into();
                }
                report
            }
        }
    }

    fn shutdown(&mut self, ctx: &Context, deadline: Duration) -> Result<(), PluginError> {
        if let Some(mut conn) = self.conn.take() {
            // Leave part of the deadline for the SDK to stop the runtime.
            ctx.block_on(conn.shutdown(deadline.mul_f32(0.8)));
            let s = &conn.shared().stats;
            tracing::info!(
                "mqtt stopped: {} message(s) published; {} received, {} point(s) emitted, {} dropped, {} malformed, {} unmatched",
                s.published.load(Ordering::Relaxed),
                s.received.load(Ordering::Relaxed),
                s.emitted_points.load(Ordering::Relaxed),
                s.dropped_points.load(Ordering::Relaxed),
                s.malformed.load(Ordering::Relaxed),
                s.unmatched.load(Ordering::Relaxed),
            );
        }
        Ok(())
    }
}

tfo_plugin_api::export_plugin! {
    name: "mqtt",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::SourceAndSink,
    data_types: DataTypes::ALL,
    description: "MQTT 3.1.1: publishes metrics, logs and traces (JSON, Influx line protocol or OTLP protobuf) and ingests metrics from subscriptions",
    create: create,
}
