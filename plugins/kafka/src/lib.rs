//! # The `kafka` plugin: produce metrics, logs and traces to Apache Kafka
//!
//! A sink for all three data types. Each instance owns one librdkafka producer
//! (rust-rdkafka over the system's librdkafka, linked dynamically), idempotent with
//! `acks=all` by default, and produces each signal to its own topic (by default
//! the OpenTelemetry Collector kafka exporter's `otlp_metrics`, `otlp_logs`,
//! `otlp_spans`):
//! - [`config`]: the config keys, their validation (with field paths, including
//!   librdkafka's own check of every property) and the librdkafka properties;
//! - [`encode`]: batch -> records (OTLP protobuf by default, OTLP/JSON or plain
//!   JSON), keyed by metric name / trace id, split so no record exceeds
//!   `max_message_bytes`; `tfo_plugin_common::otlp_json`: the OTLP/JSON mapping (shared with the otlp plugin);
//! - [`client`]: the producer, delivery reports -> export result (retryable or
//!   permanent).
//!
//! `create` validates only; the producer is created in `start` (librdkafka connects
//! in the background, so an unreachable cluster does not fail `start`: exports fail
//! retryably until it is reachable) and destroyed in `shutdown`, after a flush
//! bounded by the deadline.
//!
//! References: librdkafka 2.0.2 `CONFIGURATION.md` and `INTRODUCTION.md`
//! (<https://github.com/confluentinc/librdkafka/tree/v2.0.2>); the OpenTelemetry
//! Collector kafka exporter (topics, encodings,
//! <https://github.com/open-telemetry/opentelemetry-collector-contrib/tree/main/exporter/kafkaexporter>);
//! OTLP (<https://opentelemetry.io/docs/specs/otlp/>). What is sent and every
//! config key: `docs/integrations/kafka.md`.
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod encode;

use std::{fmt::Write as _, time::Duration};

use tfo_plugin_api::prelude::*;

use crate::{
    client::Producer,
    config::{Config, Settings},
    encode::{Encoder, Signal},
};

/// Extra time `export` waits beyond `message.timeout.ms` for the last delivery
/// reports (librdkafka times messages out on a 1 s scan).
const REPORT_GRACE: Duration = Duration::from_secs(3);

/// One kafka instance: its settings, encoder and, once started, its producer.
pub struct Kafka {
    settings: Settings,
    encoder: Encoder,
    producer: Option<Producer>,
    /// Last export failure, for health.
    last_failure: Option<String>,
    /// Set once items too big to send were reported (then logged at debug).
    told_too_big: bool,
}

/// Validates the config and prepares the instance; connects to nothing
/// (`tfo-agent validate` calls `create` and shuts the instance down right away).
pub fn create(_ctx: &Context, config: Config) -> Result<Kafka, CreateError> {
    let settings = config.resolve().map_err(CreateError::configs)?;
    let encoder =
        Encoder::new(settings.encoding, settings.max_message_bytes).map_err(CreateError::init)?;
    if settings.timeout + REPORT_GRACE >= Duration::from_secs(30) {
        tracing::warn!(
            "kafka: timeout {:?} + {REPORT_GRACE:?} reaches the host's default pipeline.call_timeout (30s): \
             a call the host abandons restarts the instance; lower `timeout` or raise pipeline.call_timeout",
            settings.timeout
        );
    }
    tracing::debug!(
        brokers = %settings.brokers,
        encoding = settings.encoding.as_str(),
        "kafka instance configured"
    );
    Ok(Kafka {
        settings,
        encoder,
        producer: None,
        last_failure: None,
        told_too_big: false,
    })
}

impl Kafka {
    fn topic(&self, s: Signal) -> &str {
        match s {
            Signal::Metrics => &self.settings.metrics_topic,
            Signal::Traces => &self.settings.traces_topic,
            Signal::Logs => &self.settings.logs_topic,
        }
    }

    fn ensure_producer(&mut self, ctx: &Context) -> Result<&Producer, PluginError> {
        if self.producer.is_none() {
            let p = Producer::new(&self.settings, ctx.host().clone())
                .map_err(PluginError::permanent)?;
            self.producer = Some(p);
        }
        Ok(self.producer.as_ref().expect("set above"))
    }
}

impl Plugin for Kafka {
    fn start(&mut self, ctx: &Context) -> Result<(), PluginError> {
        self.ensure_producer(ctx).map(|_| ())
    }

    fn export(&mut self, ctx: &Context, batch: &Batch) -> Result<ExportOk, PluginError> {
        let encoded = self.encoder.encode(batch);
        if encoded.too_big + encoded.skipped > 0 {
            let why = encoded.first_problem.clone().unwrap_or_default();
            if !self.told_too_big {
                self.told_too_big = true;
                tracing::warn!(
                    too_big = encoded.too_big,
                    skipped = encoded.skipped,
                    "kafka: items left out of the batch (the rest is sent): {why}"
                );
            } else {
                tracing::debug!(
                    too_big = encoded.too_big,
                    skipped = encoded.skipped,
                    "kafka: items left out: {why}"
                );
            }
        }
        if encoded.records.is_empty() {
            return Ok(ExportOk { accepted: 0 });
        }
        let records: Vec<(&str, encode::Record)> = encoded
            .records
            .into_iter()
            .map(|r| (self.topic(r.signal), r))
            .collect();
        let total = records.len();
        let wait = self.settings.timeout + REPORT_GRACE;
        let producer = match &self.producer {
            Some(p) => p,
            None => {
                return Err(PluginError::retryable("the kafka instance is not started"));
            }
        };
        let delivery = ctx.block_on(producer.produce(&records, wait));
        let fatal = delivery.fatal;
        let result = delivery.into_result(total);
        if fatal {
            tracing::warn!(
                "kafka: fatal producer error; a new producer is created for the next export"
            );
            if let Some(p) = self.producer.take() {
                p.close(Duration::ZERO);
            }
            self.ensure_producer(ctx)?;
        }
        match result {
            Ok(accepted) => {
                self.last_failure = None;
                Ok(ExportOk { accepted })
            }
            Err(e) => {
                self.last_failure = Some(e.message.to_string());
                Err(e)
            }
        }
    }

    fn preview(&mut self, _ctx: &Context, batch: &Batch) -> Result<String, PluginError> {
        let encoded = self.encoder.encode(batch);
        let mut out = String::new();
        for r in &encoded.records {
            let key = r
                .key
                .as_ref()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_else(|| "(none)".into());
            let _ = writeln!(
                out,
                "# topic={} key={key} items={} bytes={} encoding={}",
                self.topic(r.signal),
                r.items,
                r.payload.len(),
                self.settings.encoding.as_str()
            );
            if self.settings.encoding == config::Encoding::OtlpProto {
                // Protobuf is not text: shown as the same request in OTLP/JSON.
                let _ = writeln!(out, "{}", protobuf_as_json(r));
            } else {
                let _ = writeln!(out, "{}", String::from_utf8_lossy(&r.payload));
            }
        }
        if encoded.too_big + encoded.skipped > 0 {
            let _ = writeln!(
                out,
                "# left out: {} too big, {} not representable: {}",
                encoded.too_big,
                encoded.skipped,
                encoded.first_problem.unwrap_or_default()
            );
        }
        Ok(out)
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        let Some(p) = &self.producer else {
            return HealthReport {
                state: HealthState::Initializing,
                reason: "not started".into(),
            };
        };
        if let Some(f) = &self.last_failure {
            return HealthReport::unhealthy(format!("last export failed: {f}"));
        }
        let client_error = p
            .shared()
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match client_error {
            Some(e) => HealthReport::unhealthy(e),
            None => HealthReport::healthy(),
        }
    }

    fn shutdown(&mut self, _ctx: &Context, deadline: Duration) -> Result<(), PluginError> {
        if let Some(p) = self.producer.take() {
            // Leave part of the deadline for destroying the client and the runtime.
            p.close(deadline.mul_f32(0.6));
        }
        Ok(())
    }
}

/// An `otlp_proto` record's value rendered as OTLP/JSON, for `preview`.
fn protobuf_as_json(r: &encode::Record) -> String {
    use opentelemetry_proto::tonic::collector::{
        logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
        trace::v1::ExportTraceServiceRequest,
    };
    use prost::Message as _;
    let json = match tfo_plugin_common::otlp_json::JsonCodec::new() {
        Ok(j) => j,
        Err(e) => return format!("(protobuf, {} bytes: {e})", r.payload.len()),
    };
    let value = match r.signal {
        Signal::Metrics => ExportMetricsServiceRequest::decode(&r.payload[..])
            .map_err(|e| e.to_string())
            .and_then(|m| json.to_value(&m)),
        Signal::Traces => ExportTraceServiceRequest::decode(&r.payload[..])
            .map_err(|e| e.to_string())
            .and_then(|m| json.to_value(&m)),
        Signal::Logs => ExportLogsServiceRequest::decode(&r.payload[..])
            .map_err(|e| e.to_string())
            .and_then(|m| json.to_value(&m)),
    };
    match value {
        Ok(v) => format!(
            "(protobuf, {} bytes, shown as OTLP/JSON) {v}",
            r.payload.len()
        ),
        Err(e) => format!("(protobuf, {} bytes: {e})", r.payload.len()),
    }
}

tfo_plugin_api::export_plugin! {
    name: "kafka",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Sink,
    data_types: DataTypes::ALL,
    description: "Apache Kafka: produces metrics, logs and traces (OTLP protobuf, OTLP/JSON or JSON) with librdkafka",
    create: create,
}
