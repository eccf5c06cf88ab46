//! # tfo-file-exporter
//!
//! A tfo-agent sink plugin that writes every item it receives (metric data point,
//! span, log record) as one JSON object per line (NDJSON) to a local file, rotated
//! by size. It is useful on its own (an audit trail, a hand-off to a log shipper,
//! debugging a pipeline) and is written the way a third-party vendor writes a
//! plugin: its own package and lock file, outside the agent's workspace, depending
//! only on `tfo-plugin-api` and ordinary crates.
//!
//! Why it is split the way it is:
//! - [`config`]: the configuration and its validation, so every config problem is
//!   reported at load time with its field path instead of at the first export;
//! - [`encode`]: pure functions from a batch to lines, pinned by golden tests
//!   without touching the file system;
//! - [`writer`]: the only code doing I/O (append, `fdatasync`, size rotation);
//! - this file: only the plugin declaration gluing them to the SDK.
//!
//! Delivery is at least once: `export` returns `Ok` only after every line of the
//! batch has been handed to the kernel, and an I/O error is retryable, so the host
//! keeps the batch and sends it again (lines written before the failure may then
//! appear twice).
#![warn(missing_docs)]

pub mod config;
pub mod encode;
pub mod writer;

use std::time::Duration;

use tfo_plugin_api::prelude::*;

pub use config::Config;
use writer::RotatingFile;

/// One running file-exporter instance: the rotating output file and the last write
/// error, reported by `health` until a write succeeds again.
#[derive(Debug)]
pub struct FileExporter {
    writer: RotatingFile,
    last_error: Option<String>,
}

impl FileExporter {
    /// Opens the output file of a config that passed [`Config::validate`].
    pub fn open(config: &Config) -> std::io::Result<Self> {
        Ok(FileExporter {
            writer: RotatingFile::open(&config.path, config.max_bytes, config.max_files)?,
            last_error: None,
        })
    }

    /// Encodes and appends a batch; the number of items written, or a retryable
    /// error carrying how many items made it before the failure.
    pub fn write_batch(&mut self, batch: &Batch) -> Result<u64, PluginError> {
        let lines = encode::encode_batch(batch);
        match self.writer.write_lines(&lines) {
            Ok(()) => {
                self.last_error = None;
                tracing::trace!(items = lines.len(), "batch written");
                Ok(lines.len() as u64)
            }
            Err(e) => {
                let msg = format!("writing {}: {e}", self.writer.path().display());
                self.last_error = Some(msg.clone());
                let mut err = PluginError::retryable(msg);
                err.accepted = e.written;
                Err(err)
            }
        }
    }

    /// Flushes the output file to disk.
    pub fn sync(&mut self) -> Result<(), PluginError> {
        self.writer.flush().map_err(|e| {
            PluginError::retryable(format!("syncing {}: {e}", self.writer.path().display()))
        })
    }
}

impl Plugin for FileExporter {
    fn export(&mut self, _ctx: &Context, batch: &Batch) -> Result<ExportOk, PluginError> {
        self.write_batch(batch)?;
        Ok(ExportOk {
            accepted: batch.item_count(),
        })
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        match &self.last_error {
            None => HealthReport::healthy(),
            Some(e) => HealthReport::unhealthy(e.as_str()),
        }
    }

    fn flush(&mut self, _ctx: &Context) -> Result<(), PluginError> {
        self.sync()
    }

    fn shutdown(&mut self, _ctx: &Context, _deadline: Duration) -> Result<(), PluginError> {
        self.sync()
    }
}

/// Builds an instance: validates the config (every problem reported with its field
/// path) and opens the output file.
pub fn create(ctx: &Context, config: Config) -> Result<FileExporter, CreateError> {
    let errors = config.validate();
    if !errors.is_empty() {
        return Err(CreateError::configs(errors));
    }
    let exporter = FileExporter::open(&config).map_err(|e| {
        CreateError::config(
            "path",
            format!("cannot open {}: {e}", config.path.display()),
        )
    })?;
    tracing::info!(
        instance = ctx.instance_name(),
        path = %config.path.display(),
        max_bytes = config.max_bytes,
        max_files = config.max_files,
        "file exporter ready"
    );
    Ok(exporter)
}

tfo_plugin_api::export_plugin! {
    name: "file-exporter",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Sink,
    data_types: DataTypes::ALL,
    description: "writes every metric point, span and log record as an NDJSON line to a size-rotated file",
    create: create,
}
