//! # tfo-plugin-influxdb
//!
//! A tfo-agent sink writing metrics (and logs and spans) as InfluxDB line protocol
//! over HTTP, to InfluxDB 1.x (`/write`), InfluxDB 2.x (`/api/v2/write`) or any
//! receiver of either API (VictoriaMetrics, Telegraf's listeners, InfluxDB 3's
//! compatibility endpoints); and a source: a line-protocol **receiver**
//! ([`receiver`], parser in [`lineproto`]) taking the same two write APIs from
//! Telegraf, the `influx` CLI and client libraries, what Telegraf's
//! `influxdb_listener` and vmagent's `/write` offer. An instance has the sink keys
//! (`url`...), a `receiver` block, or both.
//!
//! Vendor documentation followed:
//! - line protocol: <https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/>
//!   and <https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/>;
//! - 1.x write endpoint: <https://docs.influxdata.com/influxdb/v1/tools/api/#write-http-endpoint>;
//! - 2.x write endpoint: <https://docs.influxdata.com/influxdb/v2/api/#operation/PostWrite>;
//! - answers and partial writes: <https://docs.influxdata.com/influxdb/v2/write-data/troubleshoot/>.
//!
//! Layout (DESIGN.md §8): [`config`] (keys, defaults, validation with field paths),
//! [`encode`] (data model -> line protocol, request bodies; pure, golden-tested),
//! [`client`] (requests and what answers mean), and this file (the plugin).
//!
//! Delivery: a batch becomes lines (one per point, log record or span), split into
//! requests of at most `batch_size` lines and `max_body_bytes` bytes. Each request is
//! sent in turn; `export` returns:
//! - `Ok(accepted)` once every request was answered, `accepted` counting the lines
//!   the server took (items skipped by the encoder, e.g. NaN values, and lines the
//!   server refused with 400 are not accepted, so the host counts them as dropped);
//! - a retryable error on 408/429/5xx or a transport failure (the host re-sends the
//!   whole batch later: InfluxDB overwrites a point with the same series and time,
//!   so the requests that did go through are written again harmlessly);
//! - a permanent error on 401/403/404 (credentials, missing database or bucket), or
//!   when the server refused every line.
//!
//! A 413 (body too large) splits the request in two and tries again, down to one
//! line.
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod encode;
pub mod lineproto;
pub mod receiver;

use std::{
    collections::VecDeque,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tfo_plugin_api::prelude::*;

use client::{Outcome, Writer};
pub use config::Config;
use encode::{Chunk, Options, Skipped};

/// How often at most the plugin warns about skipped data (it counts always).
const WARN_EVERY: Duration = Duration::from_secs(60);

/// One running InfluxDB sink.
#[derive(Debug)]
pub struct InfluxSink {
    config: Config,
    options: Options,
    /// `None` when the instance only receives (no `url`).
    writer: Option<Writer>,
    receiver: Option<receiver::Receiver>,
    /// Since start: what the encoder skipped or altered.
    skipped_total: Skipped,
    /// Since start: lines the server refused (400).
    rejected_total: u64,
    last_error: Option<String>,
    last_skip_warning: Option<Instant>,
    last_reject_warning: Option<Instant>,
}

impl InfluxSink {
    /// Prepares an instance from a config that passed [`Config::validate`]; connects
    /// nowhere yet.
    pub fn new(config: Config) -> Result<Self, CreateError> {
        let writer = if config.sink_enabled() {
            Some(Writer::new(&config).map_err(CreateError::init)?)
        } else {
            None
        };
        Ok(InfluxSink {
            options: Options {
                precision: config.precision,
                max_line_bytes: config.line_limit(),
                max_string_bytes: config.max_string_bytes,
                logs_measurement: config.logs_measurement.clone(),
                spans_measurement: config.spans_measurement.clone(),
            },
            writer,
            receiver: None,
            skipped_total: Skipped::default(),
            rejected_total: 0,
            last_error: None,
            last_skip_warning: None,
            last_reject_warning: None,
            config,
        })
    }

    /// Since start: what the encoder skipped or altered (NaN values, over-long
    /// lines...).
    pub fn skipped(&self) -> &Skipped {
        &self.skipped_total
    }

    fn due(last: &mut Option<Instant>) -> bool {
        match last {
            Some(t) if t.elapsed() < WARN_EVERY => false,
            _ => {
                *last = Some(Instant::now());
                true
            }
        }
    }

    /// Sends every chunk; `Ok((written, rejections))` unless an answer stops the
    /// batch (retryable or fatal).
    async fn send_all(
        writer: &Writer,
        chunks: Vec<Chunk>,
    ) -> Result<(u64, Vec<(u64, String)>), PluginError> {
        let mut queue: VecDeque<Chunk> = chunks.into();
        let mut written = 0u64;
        let mut rejected = Vec::new();
        while let Some(chunk) = queue.pop_front() {
            let lines = chunk.lines as u64;
            match writer.write(chunk.body.clone(), lines).await {
                Outcome::Written => written += lines,
                Outcome::Rejected {
                    message,
                    written: w,
                } => {
                    written += w;
                    rejected.push((lines - w.min(lines), message));
                }
                Outcome::TooLarge(message) => match split(&chunk) {
                    Some((a, b)) => {
                        tracing::debug!(lines, "{message}: splitting the request in two");
                        queue.push_front(b);
                        queue.push_front(a);
                    }
                    None => rejected.push((lines, message)),
                },
                Outcome::Fatal(mut e) => {
                    e.accepted = written;
                    return Err(e);
                }
                Outcome::Retry(e) => return Err(e),
            }
        }
        Ok((written, rejected))
    }
}

/// Splits a chunk of two or more lines into two halves at a line boundary.
fn split(chunk: &Chunk) -> Option<(Chunk, Chunk)> {
    if chunk.lines < 2 {
        return None;
    }
    let half = chunk.lines / 2;
    let mut seen = 0;
    let cut = chunk.body.iter().position(|&b| {
        if b == b'\n' {
            seen += 1;
        }
        seen == half
    })? + 1;
    Some((
        Chunk {
            body: chunk.body[..cut].to_vec(),
            lines: half,
        },
        Chunk {
            body: chunk.body[cut..].to_vec(),
            lines: chunk.lines - half,
        },
    ))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(u128::from(u64::MAX)) as u64)
        .unwrap_or(0)
}

impl Plugin for InfluxSink {
    fn start(&mut self, ctx: &Context) -> Result<(), PluginError> {
        let Some(rc) = &self.config.receiver else {
            return Ok(());
        };
        if self.receiver.is_some() {
            return Ok(());
        }
        let addr = rc.listen_addr().map_err(PluginError::permanent)?;
        let host = ctx.host().clone();
        let emit: receiver::EmitFn = Arc::new(move |batch| host.emit(batch));
        let host = ctx.host().clone();
        // Exported batches come back to be parsed into (ABI 1.2).
        let reclaimed: receiver::ReclaimFn = Arc::new(move || host.reclaimed().into_option());
        let limits = receiver::Limits {
            max_body: rc.max_body_bytes,
            max_requests_per_second: rc.max_requests_per_second,
            max_connections: rc.max_connections,
            queue_wait: rc.queue_wait,
        };
        let r = ctx
            .block_on(async move {
                receiver::Receiver::start_reclaiming(addr, limits, emit, Some(reclaimed))
            })
            .map_err(|e| PluginError::retryable(format!("influxdb receiver: {e}")))?;
        tracing::info!(
            "influxdb line-protocol receiver listening on http://{} (/write, /api/v2/write)",
            r.local_addr()
        );
        self.receiver = Some(r);
        Ok(())
    }

    fn shutdown(&mut self, ctx: &Context, deadline: Duration) -> Result<(), PluginError> {
        if let Some(mut r) = self.receiver.take() {
            ctx.block_on(r.stop(deadline.mul_f32(0.8)));
            let s = r.stats();
            tracing::info!(
                "influxdb receiver stopped: {} request(s) accepted, {} refused, {} throttled; \
                 {} point(s) emitted, {} line(s) rejected, {} string field(s) skipped",
                s.requests_ok.load(Ordering::Relaxed),
                s.requests_refused.load(Ordering::Relaxed),
                s.requests_throttled.load(Ordering::Relaxed),
                s.points_accepted.load(Ordering::Relaxed),
                s.lines_rejected.load(Ordering::Relaxed),
                s.string_fields_skipped.load(Ordering::Relaxed),
            );
        }
        Ok(())
    }

    fn export(&mut self, ctx: &Context, batch: &Batch) -> Result<ExportOk, PluginError> {
        let Some(writer) = &self.writer else {
            // A receiver-only instance: the host routes batches to every sink of a
            // source+sink plugin; this one writes nowhere.
            return Ok(ExportOk { accepted: 0 });
        };
        let encoded = encode::encode(batch, &self.options, now_ns());
        if !encoded.skipped.is_empty() {
            self.skipped_total.add(&encoded.skipped);
            let msg = format!(
                "influxdb: skipped or altered data in this batch ({}); totals since start: {}",
                encoded.skipped.summary(),
                self.skipped_total.summary()
            );
            if Self::due(&mut self.last_skip_warning) {
                tracing::warn!("{msg}");
            } else {
                tracing::debug!("{msg}");
            }
        }
        let total_lines = encoded.lines.len() as u64;
        if total_lines == 0 {
            return Ok(ExportOk { accepted: 0 });
        }
        let chunks = encode::chunks(
            &encoded.lines,
            self.config.batch_size,
            self.config.max_body_bytes,
        );
        drop(encoded);
        let result = ctx.block_on(Self::send_all(writer, chunks));
        let (written, rejected) = match result {
            Ok(r) => r,
            Err(e) => {
                self.last_error = Some(e.message.to_string());
                return Err(e);
            }
        };
        self.last_error = None;
        if !rejected.is_empty() {
            let refused: u64 = rejected.iter().map(|(n, _)| n).sum();
            self.rejected_total += refused;
            let first = &rejected[0].1;
            let msg = format!(
                "influxdb refused {refused} of {total_lines} lines in {} request(s), not retried (first answer: {first}); {} refused since start",
                rejected.len(),
                self.rejected_total
            );
            if written == 0 {
                // Nothing went through: a permanent error, so the host logs and
                // counts the whole batch.
                self.last_error = Some(msg.clone());
                return Err(PluginError::permanent(msg));
            }
            if Self::due(&mut self.last_reject_warning) {
                tracing::warn!("{msg}");
            } else {
                tracing::debug!("{msg}");
            }
        }
        Ok(ExportOk { accepted: written })
    }

    fn preview(&mut self, _ctx: &Context, batch: &Batch) -> Result<String, PluginError> {
        let encoded = encode::encode(batch, &self.options, now_ns());
        let Some(writer) = &self.writer else {
            return Ok("# receiver-only instance: nothing is written\n".into());
        };
        let mut out = format!("POST {}\n", writer.url());
        for line in &encoded.lines {
            out.push_str(line);
            out.push('\n');
        }
        if !encoded.skipped.is_empty() {
            out.push_str(&format!("# skipped: {}\n", encoded.skipped.summary()));
        }
        Ok(out)
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        match &self.last_error {
            Some(e) => HealthReport::unhealthy(e.as_str()),
            None => HealthReport::healthy(),
        }
    }
}

/// Builds an instance: validates the config (every problem with its field path)
/// and prepares the HTTP client. Nothing connects here.
pub fn create(ctx: &Context, config: Config) -> Result<InfluxSink, CreateError> {
    let errors = config.validate();
    if !errors.is_empty() {
        return Err(CreateError::configs(errors));
    }
    let sink = InfluxSink::new(config)?;
    tracing::info!(
        instance = ctx.instance_name(),
        url = sink.writer.as_ref().map(Writer::url).unwrap_or("off"),
        receiver = sink
            .config
            .receiver
            .as_ref()
            .map(|r| r.listen.as_str())
            .unwrap_or("off"),
        "influxdb instance ready"
    );
    Ok(sink)
}

tfo_plugin_api::export_plugin! {
    name: "influxdb",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::SourceAndSink,
    data_types: DataTypes::ALL,
    description: "InfluxDB line protocol over HTTP: writer to InfluxDB 1.x /write, 2.x /api/v2/write, VictoriaMetrics; receiver of the same APIs",
    create: create,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_halves_at_line_boundaries() {
        let c = encode::chunks(&["a 1".to_string(), "b 2".into(), "c 3".into()], 10, 1000);
        let (a, b) = split(&c[0]).unwrap();
        assert_eq!((a.lines, a.body.as_slice()), (1, &b"a 1\n"[..]));
        assert_eq!((b.lines, b.body.as_slice()), (2, &b"b 2\nc 3\n"[..]));
        assert!(split(&a).is_none());
    }
}
