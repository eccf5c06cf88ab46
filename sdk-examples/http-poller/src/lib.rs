//! tfo-agent **source** plugin: polls an HTTP endpoint that answers JSON and turns
//! the values picked by RFC 6901 JSON pointers into gauges and counters.
//!
//! Two modes, both shown because a vendor's plugin needs one or the other:
//! - **polling** (default): the host calls `collect` on the integration's
//!   `interval`; `collect` runs one `GET` on the instance runtime with
//!   `ctx.block_on` and returns the batch;
//! - **push** (`push_interval` set): `start` spawns a task on the instance runtime
//!   (`ctx.spawn`) that polls on its own period and hands each batch to the host
//!   with `emit`, slowing down when the host answers `Full` and stopping on `Closed`;
//!   `shutdown` stops the task and waits for it, so no code of this library runs
//!   afterwards.
//!
//! Module layout (the house layout): [`config`] (serde + validation with field
//! paths), [`extract`] (pure JSON -> metrics), [`collect`] (HTTP and health), this
//! file (the `Plugin` impl and `export_plugin!`).
#![warn(missing_docs)]

pub mod collect;
pub mod config;
pub mod extract;

use std::time::Duration;

use tfo_plugin_api::{prelude::*, HostHandle};
use tokio::{sync::oneshot, task::JoinHandle};

use crate::{collect::Poller, config::Config};

/// The slowest the push task backs off to while the host keeps answering `Full`.
pub const MAX_PUSH_BACKOFF: Duration = Duration::from_secs(60);

/// One instance: the poller, plus the push task when in push mode.
pub struct HttpPoller {
    poller: Poller,
    push: Option<PushTask>,
}

/// The running push task and the way to stop it.
struct PushTask {
    stop: oneshot::Sender<()>,
    handle: JoinHandle<()>,
}

/// Builds an instance: validates, prepares the HTTP client, connects to nothing
/// (`tfo-agent validate` calls `create` and shuts the instance down at once).
pub fn create(ctx: &Context, config: Config) -> Result<HttpPoller, CreateError> {
    let errors = config.validate();
    if !errors.is_empty() {
        return Err(CreateError::configs(errors));
    }
    let mode = match config.push_interval {
        Some(p) => format!("push every {p:?}"),
        None => "polled by the host".to_string(),
    };
    let poller = Poller::new(config)?;
    tracing::info!(
        instance = ctx.instance_name(),
        metrics = poller.config().metrics.len(),
        "http poller ready for {} ({mode})",
        poller.config().url
    );
    Ok(HttpPoller { poller, push: None })
}

impl Plugin for HttpPoller {
    fn start(&mut self, ctx: &Context) -> Result<(), PluginError> {
        let Some(period) = self.poller.config().push_interval else {
            return Ok(());
        };
        let (stop, stopped) = oneshot::channel();
        // The task gets clones of what it needs: `ctx` is borrowed for this call
        // only, the host handle lives as long as the instance.
        let handle = ctx.spawn(push_loop(
            self.poller.clone(),
            ctx.host().clone(),
            period,
            stopped,
        ));
        self.push = Some(PushTask { stop, handle });
        Ok(())
    }

    fn collect(&mut self, ctx: &Context) -> Result<Batch, PluginError> {
        if self.push.is_some() {
            // Push mode: data goes out through `emit`; the host's interval calls
            // (the host always polls sources) get an empty batch.
            return Ok(Batch::default());
        }
        ctx.block_on(self.poller.poll())
    }

    fn health(&self, _ctx: &Context) -> HealthReport {
        self.poller.health()
    }

    fn shutdown(&mut self, ctx: &Context, deadline: Duration) -> Result<(), PluginError> {
        let Some(PushTask { stop, mut handle }) = self.push.take() else {
            return Ok(());
        };
        let _ = stop.send(());
        // Wait for the task to finish (it stops at its next await point), but never
        // past the deadline: the SDK then shuts the runtime down, which cancels it.
        let joined = ctx.block_on(async { tokio::time::timeout(deadline, &mut handle).await });
        match joined {
            Ok(_) => {
                tracing::debug!("push task stopped");
                Ok(())
            }
            Err(_) => {
                handle.abort();
                Err(PluginError::retryable(format!(
                    "push task did not stop within {deadline:?}; cancelled"
                )))
            }
        }
    }
}

/// The push task: poll, emit, wait `period` (longer while the host is full), until
/// `stopped` fires or the host answers `Closed`.
async fn push_loop(
    poller: Poller,
    host: HostHandle,
    period: Duration,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut wait = period;
    let mut dropped: u64 = 0;
    let mut last_error: Option<String> = None;
    loop {
        match poller.poll().await {
            Ok(batch) => {
                last_error = None;
                match host.emit(batch) {
                    EmitStatus::Accepted => {
                        if dropped > 0 {
                            tracing::info!(dropped, "host accepts batches again");
                        }
                        wait = period;
                    }
                    EmitStatus::Full => {
                        // The pipeline is full: this reading is dropped (a newer
                        // one replaces it soon) and counted, and the next poll
                        // waits twice as long, up to MAX_PUSH_BACKOFF.
                        dropped += 1;
                        wait = (wait * 2).min(MAX_PUSH_BACKOFF.max(period));
                        tracing::warn!(
                            dropped,
                            "host queue full: batch dropped, next poll in {wait:?}"
                        );
                        poller.set_health(HealthReport::unhealthy(format!(
                            "host queue full: {dropped} batches dropped"
                        )));
                    }
                    EmitStatus::Closed => {
                        tracing::debug!("host closed the instance: push task ends");
                        return;
                    }
                }
            }
            // `poll` has already set health to what failed; the log says it when
            // it changes (not on every period while a server is down).
            Err(e) => {
                if last_error.as_deref() != Some(e.message.as_str()) {
                    tracing::warn!("poll failed: {}", e.message);
                    last_error = Some(e.message.into());
                }
            }
        }
        tokio::select! {
            _ = &mut stopped => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

tfo_plugin_api::export_plugin! {
    name: "http-poller",
    version: env!("CARGO_PKG_VERSION"),
    kind: PluginKind::Source,
    data_types: DataTypes::METRICS,
    description: "polls an HTTP JSON endpoint; values picked by JSON pointers become metrics",
    create: create,
}
