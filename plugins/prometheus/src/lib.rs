//! # tfo-plugin-prometheus
//!
//! A tfo-agent sink that makes the agent's metrics available to Prometheus, in the
//! two ways Prometheus ingests data:
//!
//! - **scrape endpoint** (pull): `export` updates an in-memory store holding the
//!   latest value of every series, and an HTTP endpoint (default
//!   `http://127.0.0.1:9464/metrics`) serves it in the Prometheus text exposition
//!   format 0.0.4 (<https://prometheus.io/docs/instrumenting/exposition_formats/>)
//!   or, when the scraper's `Accept` header asks for `application/openmetrics-text`,
//!   in OpenMetrics 1.0.0
//!   (<https://github.com/OpenObservability/OpenMetrics/blob/main/specification/OpenMetrics.md>);
//!   series not updated for `expire_after` disappear;
//! - **remote write** (push, optional): each batch is sent at once as a Prometheus
//!   Remote-Write 1.0 request (<https://prometheus.io/docs/specs/remote_write_spec/>):
//!   a Snappy-compressed protobuf `WriteRequest`, retried by the host on 5xx, 429
//!   and transport errors, honouring `Retry-After`.
//!
//! The mapping from the OpenTelemetry data model (names, units, counters, delta
//! temporality, histograms, summaries, attributes, resource -> `job`/`instance`)
//! follows OpenTelemetry's "Prometheus and OpenMetrics Compatibility" specification
//! (<https://github.com/open-telemetry/opentelemetry-specification/blob/main/specification/compatibility/prometheus_and_openmetrics.md>),
//! see [`encode`].
//!
//! Layout (DESIGN.md §8): [`config`] (keys, defaults, validation with field paths),
//! [`encode`] (pure mapping and wire formats, golden-tested), [`store`] (delta
//! accumulation and the latest values), [`server`] (the scrape endpoint),
//! [`client`] (remote-write transport), and this file (the plugin declaration).
//!
//! Delivery: with remote write, `export` returns `Ok` only once the receiver
//! accepted the batch; delta totals computed for a batch are committed only then,
//! so a retried batch is not counted twice. Without it, `export` succeeds once the
//! store is updated (the scrape is the delivery).
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod encode;
pub mod server;
pub mod store;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tfo_plugin_api::prelude::*;

use client::RemoteWriter;
pub use config::Config;
use encode::{remote_write, Options};
use server::ScrapeServer;
use store::{Accumulator, Store};

/// One running Prometheus sink.
#[derive(Debug)]
pub struct PrometheusSink {
    config: Config,
    options: Options,
    accumulator: Accumulator,
    store: Arc<Mutex<Store>>,
    server: Option<ScrapeServer>,
    writer: Option<RemoteWriter>,
    last_error: Option<String>,
    /// Families already warned about (a conflict repeats with every batch).
    warned: HashSet<String>,
    /// Remote write: the encoder's work buffers (reused between batches).
    encoder: remote_write::Encoder,
    /// Remote write: the protobuf of the last batch (reused, not reallocated).
    proto: Vec<u8>,
    /// Remote write: Snappy state and output buffer (reused between batches).
    compressor: remote_write::Compressor,
    /// Label strings and vectors of the previous batch's families, reused by the
    /// next conversion instead of a malloc/free per label.
    scratch: encode::Scratch,
}

impl PrometheusSink {
    /// Prepares an instance from a config that passed [`Config::validate`]; binds
    /// nothing and connects nowhere yet.
    pub fn new(config: Config) -> Result<Self, CreateError> {
        let writer = match &config.remote_write {
            Some(rw) => {
                Some(RemoteWriter::new(rw).map_err(|e| CreateError::config("remote_write", e))?)
            }
            None => None,
        };
        Ok(PrometheusSink {
            options: Options {
                namespace: config.namespace().map(str::to_string),
            },
            store: Arc::new(Mutex::new(Store::new(config.expire_after))),
            accumulator: Accumulator::default(),
            server: None,
            writer,
            last_error: None,
            warned: HashSet::new(),
            encoder: remote_write::Encoder::default(),
            proto: Vec::new(),
            compressor: remote_write::Compressor::default(),
            scratch: encode::Scratch::default(),
            config,
        })
    }

    /// The scrape endpoint's bound address, once started.
    pub fn scrape_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.as_ref().map(ScrapeServer::local_addr)
    }

    fn warn_once(&mut self, key: &str, message: &str) {
        if self.warned.insert(key.to_string()) {
            tracing::warn!("{message}");
        } else {
            tracing::debug!("{message}");
        }
    }
}

impl PrometheusSink {
    /// The families path: the batch converted to families, deltas accumulated
    /// (pending), the scrape store updated when there is an endpoint, and the
    /// remote-write protobuf written into `self.proto` when remote write is on.
    /// Returns the number of series written, the pending totals and the
    /// families (their label memory goes back to the scratch afterwards).
    fn convert_and_encode(
        &mut self,
        batch: &Batch,
        now: Instant,
    ) -> (usize, store::Pending, Vec<encode::Family>) {
        let converted = encode::convert_with(batch, &self.options, &mut self.scratch);
        for why in &converted.dropped {
            tracing::debug!("{why}");
        }
        let mut families = converted.families;
        let pending = self.accumulator.apply(&mut families, now);
        if self.config.listen_addr().is_some() {
            let conflicts = self
                .store
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .update(&families, now);
            for (family, message) in conflicts {
                self.warn_once(&family, &message);
            }
        }
        let mut series = 0;
        if self.writer.is_some() {
            self.proto.clear();
            series = self.encoder.encode(&families, now_ms(), &mut self.proto);
        }
        (series, pending, families)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Plugin for PrometheusSink {
    fn start(&mut self, ctx: &Context) -> Result<(), PluginError> {
        let Some(addr) = self.config.listen_addr() else {
            return Ok(());
        };
        let listener = ctx
            .block_on(async { server::bind(addr) })
            .map_err(|e| PluginError::retryable(format!("scrape endpoint {addr}: {e}")))?;
        let server =
            ScrapeServer::start(ctx, listener, self.config.path.clone(), self.store.clone())
                .map_err(|e| PluginError::retryable(format!("scrape endpoint {addr}: {e}")))?;
        tracing::info!(
            "prometheus scrape endpoint listening on http://{}{}",
            server.local_addr(),
            self.config.path
        );
        self.server = Some(server);
        Ok(())
    }

    fn export(&mut self, ctx: &Context, batch: &Batch) -> Result<ExportOk, PluginError> {
        let now = Instant::now();
        self.proto.clear();
        // Without a scrape endpoint nothing keeps the families: remote write is
        // encoded straight from the batch (`Encoder::encode_batch`: the same
        // series, labels and samples, series in order of first appearance),
        // which builds families only for what needs accumulating.
        let direct = match &self.writer {
            Some(_) if self.config.listen_addr().is_none() => {
                let accumulator = &self.accumulator;
                self.encoder.encode_batch(
                    batch,
                    &self.options,
                    &mut self.scratch,
                    now_ms(),
                    |families| accumulator.apply(families, now),
                    &mut self.proto,
                )
            }
            _ => None,
        };
        let (series, pending, families) = match direct {
            Some(d) => {
                for why in &d.dropped {
                    tracing::debug!("{why}");
                }
                (d.series, d.pending, Vec::new())
            }
            None => self.convert_and_encode(batch, now),
        };
        if let Some(writer) = &self.writer {
            if series > 0 {
                // The body moves into the request, so it is a new buffer per batch,
                // of exactly the compressed size.
                let body = self
                    .compressor
                    .compress(&self.proto)
                    .map_err(PluginError::permanent)?
                    .to_vec();
                if let Err(e) = ctx.block_on(writer.send(body)) {
                    self.last_error = Some(e.message.to_string());
                    self.scratch.recycle(families);
                    return Err(e);
                }
                tracing::trace!(series, "remote write delivered");
            }
        }
        self.scratch.recycle(families);
        self.accumulator.commit(pending);
        self.accumulator.expire(now, self.config.expire_after);
        self.last_error = None;
        Ok(ExportOk {
            accepted: batch.item_count(),
        })
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        if let Some(s) = &self.server {
            if !s.is_running() {
                return HealthReport::unhealthy("the scrape endpoint stopped");
            }
        }
        match &self.last_error {
            Some(e) => HealthReport::unhealthy(e.as_str()),
            None => HealthReport::healthy(),
        }
    }

    fn shutdown(&mut self, ctx: &Context, deadline: Duration) -> Result<(), PluginError> {
        if let Some(mut server) = self.server.take() {
            ctx.block_on(server.stop(deadline));
        }
        Ok(())
    }
}

/// Builds an instance: validates the config (every problem with its field path)
/// and prepares the remote-write client. Nothing is bound or connected here.
pub fn create(ctx: &Context, config: Config) -> Result<PrometheusSink, CreateError> {
    let errors = config.validate();
    if !errors.is_empty() {
        return Err(CreateError::configs(errors));
    }
    let sink = PrometheusSink::new(config)?;
    // The runtime only answers scrapes and carries remote-write requests (encoding
    // runs in `export`, on the instance thread): one worker thread is enough, and
    // a second is a stack and a malloc arena resident for nothing.
    ctx.use_worker_threads(1);
    tracing::info!(
        instance = ctx.instance_name(),
        listen = %sink.config.listen,
        remote_write = sink.writer.as_ref().map(RemoteWriter::url).unwrap_or("off"),
        "prometheus sink ready"
    );
    Ok(sink)
}

tfo_plugin_api::export_plugin! {
    name: "prometheus",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Sink,
    data_types: DataTypes::METRICS,
    description: "Prometheus scrape endpoint (text 0.0.4 / OpenMetrics 1.0.0) and remote write 1.0",
    create: create,
}
