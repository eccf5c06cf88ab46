//! The tasks that drive instances: a sink runner drains its queue through the
//! current generation with retries and swaps generations between exports; a source
//! runner collects on an interval and publishes. Both take `Upgrade` and `Stop`
//! commands, so the plugin manager can hot-swap without losing queued data.

use std::{
    future::Future,
    pin::Pin,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, oneshot};

use super::{
    queue::{QueuedBatch, SinkQueue},
    Pipeline,
};
use crate::{
    plugin::{
        graveyard::Graveyard,
        instance::{CallErrorKind, InstanceWorker},
        library::LoadedLibrary,
    },
    status::{GenerationInfo, InstanceStatus},
};

/// Exponential backoff with jitter; `Retry-After` from the backend wins when longer.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// First delay.
    pub initial: Duration,
    /// Cap.
    pub max: Duration,
    /// Growth factor.
    pub multiplier: f64,
    /// Attempts before a retryable batch is dropped (0 = never drop).
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            max_attempts: 0,
        }
    }
}

impl RetryPolicy {
    /// Delay before the next attempt after `attempt` failures, with ±20 % jitter.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = attempt.saturating_sub(1).min(30) as i32;
        let base =
            (self.initial.as_secs_f64() * self.multiplier.powi(exp)).min(self.max.as_secs_f64());
        let d = Duration::from_secs_f64(base * (0.8 + 0.4 * jitter_unit()));
        match retry_after {
            Some(ra) if ra > d => ra,
            _ => d,
        }
    }
}

/// A number in [0, 1) that differs between calls (std's randomly keyed hasher).
fn jitter_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Timeouts a runner applies to plugin calls.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// One export / collect call.
    pub call: Duration,
    /// Shutdown of a retired instance.
    pub shutdown: Duration,
}

/// A boxed future, for the respawn callback.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Builds and starts a fresh instance of a library (after a panic or hang).
pub type Respawn =
    Arc<dyn Fn(Arc<LoadedLibrary>) -> BoxFuture<Result<InstanceWorker, String>> + Send + Sync>;

/// Commands to a runner.
pub enum Control {
    /// Switch to this created-and-started instance; the old one is flushed and
    /// retired in the background.
    Upgrade(InstanceWorker, GenerationInfo, oneshot::Sender<()>),
    /// Stop. With `drain`, export what is queued first, until `deadline`. Replies
    /// with the number of items left undelivered.
    Stop {
        /// Export the queue first.
        drain: bool,
        /// Limit for the drain.
        deadline: Duration,
        /// Items left.
        reply: oneshot::Sender<u64>,
    },
}

/// What the manager keeps for a running instance.
pub struct RunnerHandle {
    /// Commands.
    pub control: mpsc::Sender<Control>,
    /// Status.
    pub status: Arc<InstanceStatus>,
    /// The sink queue (sinks only).
    pub queue: Option<Arc<SinkQueue>>,
    /// The task.
    pub task: tokio::task::JoinHandle<()>,
}

/// Everything shared by both runner kinds.
pub struct RunnerCommon {
    /// Status.
    pub status: Arc<InstanceStatus>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Where retired generations go.
    pub graveyard: Arc<Graveyard>,
    /// Restarts after a panic or hang.
    pub respawn: Respawn,
}

impl RunnerCommon {
    fn upgrade(&self, worker: &mut InstanceWorker, new: InstanceWorker, gen: GenerationInfo) {
        let old = std::mem::replace(worker, new);
        self.status.set_generation(gen);
        self.status.healthy();
        let g = self.graveyard.clone();
        let t = self.timeouts.shutdown;
        tokio::spawn(async move { g.retire_instance(old, true, t).await });
    }

    /// After a successful call: Healthy unless the plugin itself reports otherwise.
    async fn adopt_plugin_health(&self, worker: &InstanceWorker) {
        match worker.health(self.timeouts.call).await {
            Ok(h) if h.state == tfo_plugin_api::HealthState::Healthy => {
                if self.status.state() != crate::status::State::Healthy {
                    self.status.healthy();
                }
            }
            Ok(h) => {
                let reason = if h.reason.is_empty() {
                    format!("plugin reports {:?}", h.state)
                } else {
                    h.reason
                };
                if self.status.view().reason.as_deref() != Some(reason.as_str()) {
                    self.status.unhealthy(reason);
                }
            }
            Err(e) => self.status.unhealthy(format!("health check failed: {e}")),
        }
    }

    /// Replaces a panicked or hung instance by a fresh one of the same library.
    async fn restart(&self, worker: &mut InstanceWorker, why: &str) -> bool {
        self.status.restarts.fetch_add(1, Ordering::Relaxed);
        self.status.unhealthy(why.to_string());
        match (self.respawn)(worker.library().clone()).await {
            Ok(new) => {
                let old = std::mem::replace(worker, new);
                let g = self.graveyard.clone();
                let t = self.timeouts.shutdown;
                tokio::spawn(async move { g.retire_instance(old, false, t).await });
                tracing::warn!(instance = %self.status.instance, "instance restarted: {why}");
                true
            }
            Err(e) => {
                self.status.unhealthy(format!("{why}; restart failed: {e}"));
                false
            }
        }
    }
}

/// Drains a host-owned queue through the current generation.
pub struct SinkRunner {
    /// Shared parts.
    pub common: RunnerCommon,
    /// Current generation.
    pub worker: InstanceWorker,
    /// The host-owned queue.
    pub queue: Arc<SinkQueue>,
    /// Retry policy.
    pub retry: RetryPolicy,
}

enum Outcome {
    Done,
    RetryAfter(Duration),
}

impl SinkRunner {
    /// Runs until stopped.
    pub async fn run(self, mut control: mpsc::Receiver<Control>) {
        let SinkRunner {
            common,
            mut worker,
            queue,
            retry,
        } = self;
        let mut not_before: Option<tokio::time::Instant> = None;
        loop {
            let wait = not_before.map(tokio::time::sleep_until);
            tokio::select! {
                biased;
                cmd = control.recv() => match cmd {
                    Some(Control::Upgrade(new, gen, done)) => {
                        common.upgrade(&mut worker, new, gen);
                        not_before = None;
                        let _ = done.send(());
                    }
                    Some(Control::Stop { drain, deadline, reply }) => {
                        let left = if drain { drain_queue(&common, &mut worker, &queue, &retry, deadline).await } else { queue.items() };
                        common.graveyard.retire_instance(worker, true, common.timeouts.shutdown).await;
                        let _ = reply.send(left);
                        return;
                    }
                    None => {
                        common.graveyard.retire_instance(worker, true, common.timeouts.shutdown).await;
                        return;
                    }
                },
                _ = async { wait.expect("guarded").await }, if not_before.is_some() => {
                    not_before = None;
                }
                qb = queue.pop(), if not_before.is_none() => {
                    if let Outcome::RetryAfter(d) = export_one(&common, &mut worker, &queue, &retry, qb).await {
                        not_before = Some(tokio::time::Instant::now() + d);
                    }
                }
            }
        }
    }
}

/// Exports everything queued, honouring retries, until empty or `deadline`.
async fn drain_queue(
    common: &RunnerCommon,
    worker: &mut InstanceWorker,
    queue: &SinkQueue,
    retry: &RetryPolicy,
    deadline: Duration,
) -> u64 {
    let end = tokio::time::Instant::now() + deadline;
    while let Some(qb) = queue.try_pop() {
        if tokio::time::Instant::now() >= end {
            queue.push_front(qb);
            break;
        }
        if let Outcome::RetryAfter(d) = export_one(common, worker, queue, retry, qb).await {
            let until = (tokio::time::Instant::now() + d).min(end);
            tokio::time::sleep_until(until).await;
        }
    }
    queue.items()
}

async fn export_one(
    common: &RunnerCommon,
    worker: &mut InstanceWorker,
    queue: &SinkQueue,
    retry: &RetryPolicy,
    mut qb: QueuedBatch,
) -> Outcome {
    let status = &common.status;
    let started = Instant::now();
    match worker.export(qb.batch.clone(), common.timeouts.call).await {
        Ok(accepted) => {
            // A backend may accept part of a batch (OTLP partial success): what it
            // rejected is counted as dropped, never silently.
            let accepted = accepted.min(qb.items);
            status.items_exported.fetch_add(accepted, Ordering::Relaxed);
            if accepted < qb.items {
                status
                    .drops
                    .fetch_add(qb.items - accepted, Ordering::Relaxed);
            }
            status.bytes_exported.fetch_add(qb.bytes, Ordering::Relaxed);
            status
                .last_export_latency_us
                .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            queue.ack(&qb);
            common.adopt_plugin_health(worker).await;
            Outcome::Done
        }
        Err(e) => {
            status.record_error(e.to_string());
            qb.attempts += 1;
            match e.kind {
                CallErrorKind::Retryable => {
                    if retry.max_attempts > 0 && qb.attempts >= retry.max_attempts {
                        status.drops.fetch_add(qb.items, Ordering::Relaxed);
                        tracing::warn!(instance = %status.instance, items = qb.items, "dropping batch after {} attempts: {e}", qb.attempts);
                        queue.ack(&qb);
                        return Outcome::Done;
                    }
                    status.retries.fetch_add(1, Ordering::Relaxed);
                    status.unhealthy(format!("export failing, retrying: {}", e.message));
                    let d = retry.delay(qb.attempts, e.retry_after);
                    queue.push_front(qb);
                    Outcome::RetryAfter(d)
                }
                CallErrorKind::Permanent | CallErrorKind::Unsupported => {
                    status.drops.fetch_add(qb.items, Ordering::Relaxed);
                    tracing::warn!(instance = %status.instance, items = qb.items, "batch refused permanently, dropped: {}", e.message);
                    queue.ack(&qb);
                    Outcome::Done
                }
                CallErrorKind::Panic | CallErrorKind::Timeout | CallErrorKind::Dead => {
                    // The plugin did not confirm the batch: it goes back to the head, and
                    // the next try waits with the same backoff as any retry, so a plugin
                    // that panics on every call restarts with growing pauses instead of
                    // spinning.
                    status.retries.fetch_add(1, Ordering::Relaxed);
                    let attempts = qb.attempts;
                    queue.push_front(qb);
                    common
                        .restart(worker, &format!("instance failed in export ({e})"))
                        .await;
                    Outcome::RetryAfter(retry.delay(attempts, None))
                }
            }
        }
    }
}

/// Collects on an interval (or only runs `start`ed push work when the interval is
/// zero) and publishes to the pipeline.
pub struct SourceRunner {
    /// Shared parts.
    pub common: RunnerCommon,
    /// Current generation.
    pub worker: InstanceWorker,
    /// Collection interval; zero = push only.
    pub interval: Duration,
    /// Where batches go.
    pub pipeline: Pipeline,
    /// Which sinks it feeds.
    pub routes: super::Routes,
}

impl SourceRunner {
    /// Runs until stopped.
    pub async fn run(self, mut control: mpsc::Receiver<Control>) {
        let SourceRunner {
            common,
            mut worker,
            interval,
            pipeline,
            routes,
        } = self;
        let mut ticker = tokio::time::interval(if interval.is_zero() {
            Duration::from_secs(3600)
        } else {
            interval
        });
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                cmd = control.recv() => match cmd {
                    Some(Control::Upgrade(new, gen, done)) => {
                        common.upgrade(&mut worker, new, gen);
                        let _ = done.send(());
                    }
                    Some(Control::Stop { reply, .. }) => {
                        common.graveyard.retire_instance(worker, false, common.timeouts.shutdown).await;
                        let _ = reply.send(0);
                        return;
                    }
                    None => {
                        common.graveyard.retire_instance(worker, false, common.timeouts.shutdown).await;
                        return;
                    }
                },
                _ = ticker.tick(), if !interval.is_zero() => {
                    match worker.collect(common.timeouts.call).await {
                        Ok(batch) => {
                            let n = batch.item_count();
                            common.status.items_collected.fetch_add(n, Ordering::Relaxed);
                            if n > 0 && pipeline.submit(batch, &routes) == tfo_plugin_api::EmitStatus::Full {
                                common.status.drops.fetch_add(n, Ordering::Relaxed);
                                tracing::warn!(instance = %common.status.instance, items = n, "pipeline full: collected batch dropped");
                            }
                            // The call worked; the plugin's own view decides the state
                            // (e.g. eBPF probes that failed to attach).
                            common.adopt_plugin_health(&worker).await;
                        }
                        Err(e) if matches!(e.kind, CallErrorKind::Panic | CallErrorKind::Timeout | CallErrorKind::Dead) => {
                            common.status.record_error(e.to_string());
                            common.restart(&mut worker, &format!("instance failed in collect ({e})")).await;
                        }
                        Err(e) => {
                            common.status.record_error(e.to_string());
                            common.status.unhealthy(format!("collect failed: {}", e.message));
                        }
                    }
                }
            }
        }
    }
}
