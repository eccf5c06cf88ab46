//! One plugin instance on a thread the host owns.
//!
//! Every call into the instance (create, start, collect, export, health, flush,
//! shutdown, and the final drop) runs on this thread, never on a tokio worker: a
//! plugin that touches a thread-local on a long-lived host thread can never be
//! unmapped (DESIGN.md §4). The thread is joined before the library is closed. Every
//! value coming back is converted into host-owned types on this thread, while the
//! library is certainly loaded.
//!
//! The hand-over costs two cross-thread wake-ups per call when both sides sleep
//! (the job to the instance thread, the answer back). A sleeping thread takes
//! 7-20 µs (median; 40 µs and more at the 90th percentile) to wake on the 2-vCPU
//! bench VM, more than a whole call to a fast plugin, so when calls come back to
//! back neither side sleeps: after each call the instance
//! thread keeps polling for the next one for [`JOB_SPIN`] before it parks, and a
//! caller whose call is expected to be short (from the last durations of that kind
//! of call) polls for the answer for up to [`REPLY_SPIN`] before it yields to
//! tokio. Both polls are bounded, so an idle instance costs nothing, and neither
//! runs when the process may use a single CPU (where polling would only delay the
//! thread it waits for).

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        mpsc::{self, TryRecvError},
        Arc, OnceLock, Weak,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use abi_stable::std_types::{RResult, RStr};
use tfo_plugin_api::{ErrorKind, HealthState, HostHandle, PluginInstanceBox};
use tokio::sync::oneshot;

use super::library::LoadedLibrary;
use crate::pipeline::{HeldBatch, KeepAlive, Reclaim};

/// An error from a plugin call, in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct CallError {
    /// Retry classification.
    pub kind: CallErrorKind,
    /// Message.
    pub message: String,
    /// Server-requested delay.
    pub retry_after: Option<Duration>,
    /// Items accepted before the failure.
    pub accepted: u64,
}

/// Kinds of call failure the host distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallErrorKind {
    /// Retry later.
    Retryable,
    /// Drop the data.
    Permanent,
    /// The plugin panicked (caught); restart the instance.
    Panic,
    /// Not supported by the plugin.
    Unsupported,
    /// The call did not return within its deadline; the instance is abandoned.
    Timeout,
    /// The instance thread is gone.
    Dead,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

fn from_plugin(e: &tfo_plugin_api::PluginError) -> CallError {
    CallError {
        kind: match e.kind {
            ErrorKind::Retryable => CallErrorKind::Retryable,
            ErrorKind::Permanent => CallErrorKind::Permanent,
            ErrorKind::Panic => CallErrorKind::Panic,
            ErrorKind::Unsupported => CallErrorKind::Unsupported,
        },
        message: e.message.to_string(),
        retry_after: e.retry_after_ms.into_option().map(Duration::from_millis),
        accepted: e.accepted,
    }
}

/// Health as reported by the plugin, in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginHealth {
    /// Healthy / Unhealthy / Initializing.
    pub state: HealthState,
    /// Reason.
    pub reason: String,
}

/// Why `create` failed, in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateFailure {
    /// Summary.
    pub message: String,
    /// (path, message) per invalid field.
    pub config_errors: Vec<(String, String)>,
}

impl std::fmt::Display for CreateFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        for (p, m) in &self.config_errors {
            write!(f, "; {p}: {m}")?;
        }
        Ok(())
    }
}

type Job = Box<dyn FnOnce(&mut PluginInstanceBox) + Send>;

/// How long the instance thread keeps polling for the next call after finishing
/// one, before it parks: long enough to cover a caller being woken by the answer
/// and sending its next call (a sink runner's export, then health, then the next
/// queued batch), short enough that polling costs at most this much CPU per call.
pub const JOB_SPIN: Duration = Duration::from_micros(50);

/// Longest a caller polls for the answer before it awaits it; only calls expected
/// to finish within this (recent calls of the same kind did) are polled, so a
/// tokio worker is never held longer than this, and never by a slow export.
pub const REPLY_SPIN: Duration = Duration::from_micros(20);

/// What a call does, so that each kind gets its own duration estimate (a fast
/// `health` after a slow `export` still gets a polled answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallKind {
    Other = 0,
    Start,
    Export,
    Preview,
    Collect,
    Health,
    Flush,
    Shutdown,
}

const CALL_KINDS: usize = 8;

/// State shared by an [`InstanceWorker`] and its thread, for the hand-over only.
struct HandOver {
    /// The instance thread is running a call or polling for the next one (not
    /// parked): a call sent now starts without a wake-up.
    awake: AtomicBool,
    /// Per [`CallKind`], a running estimate (moving average) of how long the
    /// plugin took, in microseconds; `u32::MAX` until measured.
    run_us: [AtomicU32; CALL_KINDS],
}

impl HandOver {
    fn new() -> HandOver {
        HandOver {
            awake: AtomicBool::new(true),
            run_us: std::array::from_fn(|_| AtomicU32::new(u32::MAX)),
        }
    }

    /// Records one measured run of a call of `kind`.
    fn record(&self, kind: CallKind, took: Duration) {
        let us = u32::try_from(took.as_micros()).unwrap_or(u32::MAX - 1);
        let slot = &self.run_us[kind as usize];
        let old = slot.load(Ordering::Relaxed);
        slot.store(estimate(old, us), Ordering::Relaxed);
    }

    /// How long to poll for the answer to a call of `kind` just sent.
    fn reply_spin(&self, kind: CallKind) -> Duration {
        if !may_spin() || !self.awake.load(Ordering::Acquire) {
            return Duration::ZERO;
        }
        reply_spin_for(self.run_us[kind as usize].load(Ordering::Relaxed))
    }
}

/// The next estimate after a run of `us` microseconds: a quarter of the new
/// sample, three quarters of the old estimate; the first sample is taken as is.
fn estimate(old: u32, us: u32) -> u32 {
    if old == u32::MAX {
        us
    } else {
        ((u64::from(old) * 3 + u64::from(us)) / 4) as u32
    }
}

/// How long to poll for an answer expected within `estimate_us`: nothing if it is
/// unknown or not expected within [`REPLY_SPIN`], else twice the estimate plus a
/// few microseconds for the hand-over itself, capped at [`REPLY_SPIN`].
fn reply_spin_for(estimate_us: u32) -> Duration {
    let cap = REPLY_SPIN.as_micros() as u32;
    if estimate_us >= cap {
        return Duration::ZERO;
    }
    Duration::from_micros(u64::from((estimate_us * 2 + 5).min(cap)))
}

/// Whether polling can help: only if this process may run on more than one CPU
/// (else the poller would hold the very CPU the other side needs).
fn may_spin() -> bool {
    static MANY: OnceLock<bool> = OnceLock::new();
    *MANY.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

/// Polls `ready` for up to `limit`; `Some` as soon as it yields a value. Between
/// polls the thread yields its CPU (`sched_yield`): on an idle machine that returns
/// at once, on a busy one it lets the thread being waited for, or any other, run
/// (pure spinning measured 3x slower than parking at a load average of 7 on the
/// bench VM; yielding, 1.7x faster).
fn poll_for<T>(limit: Duration, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    if limit.is_zero() {
        return None;
    }
    let start = Instant::now();
    loop {
        if let Some(v) = ready() {
            return Some(v);
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::yield_now();
    }
}

/// The instance thread's wait for its next call: polls for `spin` (see
/// [`JOB_SPIN`]), then parks on the channel. `None` once every sender is gone.
fn next_job<T>(rx: &mpsc::Receiver<T>, spin: Duration, awake: &AtomicBool) -> Option<T> {
    let mut gone = false;
    let polled = poll_for(spin, || match rx.try_recv() {
        Ok(job) => Some(Some(job)),
        Err(TryRecvError::Disconnected) => {
            gone = true;
            Some(None)
        }
        Err(TryRecvError::Empty) => None,
    });
    if let Some(job) = polled {
        return job;
    }
    if gone {
        return None;
    }
    awake.store(false, Ordering::Release);
    let job = rx.recv().ok();
    awake.store(true, Ordering::Release);
    job
}

/// Handle to a running instance thread.
pub struct InstanceWorker {
    jobs: Option<mpsc::Sender<Job>>,
    hand: Arc<HandOver>,
    thread: Option<JoinHandle<()>>,
    exited: Option<oneshot::Receiver<()>>,
    library: Arc<LoadedLibrary>,
    /// The instance and thread names, boxed: the worker is
    /// moved inside pipeline messages, so it is kept small.
    names: Box<(String, String)>,
    /// The pool the instance's collected batches go back to once exported
    /// (`HostServices::reclaimed`; owned by the instance's host handle).
    return_to: Option<Weak<Reclaim>>,
}

/// What retiring an instance thread achieved.
#[derive(Debug)]
pub enum Retired {
    /// Thread joined; every object of the library it held is gone.
    Joined,
    /// The thread did not end in time; it and its library must stay loaded.
    Stuck(StuckInstance),
}

/// An instance whose thread would not end: kept, never dropped, so the library
/// it runs stays mapped.
#[derive(Debug)]
pub struct StuckInstance {
    /// The thread (never joined).
    pub thread: Option<JoinHandle<()>>,
    /// Keeps the library loaded.
    pub library: Arc<LoadedLibrary>,
}

impl InstanceWorker {
    /// Starts the thread and creates the instance on it.
    pub async fn spawn(
        library: Arc<LoadedLibrary>,
        instance_name: &str,
        config_json: String,
        host: HostHandle,
    ) -> Result<InstanceWorker, CreateFailure> {
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let (created_tx, created_rx) = oneshot::channel::<Result<(), CreateFailure>>();
        let (exit_tx, exit_rx) = oneshot::channel::<()>();
        let lib = library.clone();
        let name = instance_name.to_string();
        let tname = thread_name(&name);
        let hand = Arc::new(HandOver::new());
        let thread_hand = hand.clone();
        let thread = std::thread::Builder::new()
            .name(tname.clone())
            .spawn(move || {
                let create = lib.module().create();
                let created = create(host, RStr::from_str(&name), RStr::from_str(&config_json));
                let mut instance = match created {
                    RResult::ROk(i) => {
                        let _ = created_tx.send(Ok(()));
                        i
                    }
                    RResult::RErr(e) => {
                        let failure = CreateFailure {
                            message: e.message.to_string(),
                            config_errors: e
                                .config_errors
                                .iter()
                                .map(|c| (c.path.to_string(), c.message.to_string()))
                                .collect(),
                        };
                        drop(e);
                        let _ = created_tx.send(Err(failure));
                        let _ = exit_tx.send(());
                        return;
                    }
                };
                let spin = if may_spin() { JOB_SPIN } else { Duration::ZERO };
                while let Some(job) = next_job(&job_rx, spin, &thread_hand.awake) {
                    job(&mut instance);
                }
                drop(instance);
                drop(lib);
                let _ = exit_tx.send(());
            })
            .map_err(|e| CreateFailure {
                message: format!("cannot start instance thread: {e}"),
                config_errors: vec![],
            })?;
        let mut worker = InstanceWorker {
            jobs: Some(job_tx),
            hand,
            thread: Some(thread),
            exited: Some(exit_rx),
            library,
            names: Box::new((instance_name.to_string(), tname)),
            return_to: None,
        };
        match created_rx.await {
            Ok(Ok(())) => Ok(worker),
            Ok(Err(f)) => {
                worker.join_now();
                Err(f)
            }
            Err(_) => {
                worker.join_now();
                Err(CreateFailure {
                    message: "instance thread ended during create".into(),
                    config_errors: vec![],
                })
            }
        }
    }

    fn join_now(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// The library this instance runs.
    pub fn library(&self) -> &Arc<LoadedLibrary> {
        &self.library
    }

    /// Instance name.
    pub fn name(&self) -> &str {
        &self.names.0
    }

    /// Runs `f` on the instance thread; `Timeout` if it does not answer in time.
    pub async fn call<R: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&mut PluginInstanceBox) -> R + Send + 'static,
    ) -> Result<R, CallError> {
        self.call_as(CallKind::Other, timeout, f).await
    }

    /// [`Self::call`], with the duration of the run recorded under `kind`; polls
    /// for the answer first when calls of that kind have been short.
    async fn call_as<R: Send + 'static>(
        &self,
        kind: CallKind,
        timeout: Duration,
        f: impl FnOnce(&mut PluginInstanceBox) -> R + Send + 'static,
    ) -> Result<R, CallError> {
        let dead = || CallError {
            kind: CallErrorKind::Dead,
            message: "instance thread is gone".into(),
            retry_after: None,
            accepted: 0,
        };
        let (tx, mut rx) = oneshot::channel();
        let hand = self.hand.clone();
        let job: Job = Box::new(move |inst| {
            let started = Instant::now();
            let r = f(inst);
            hand.record(kind, started.elapsed());
            let _ = tx.send(r);
        });
        self.jobs
            .as_ref()
            .ok_or_else(dead)?
            .send(job)
            .map_err(|_| dead())?;
        let polled = poll_for(self.hand.reply_spin(kind), || match rx.try_recv() {
            Ok(r) => Some(Ok(r)),
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(())),
            Err(oneshot::error::TryRecvError::Empty) => None,
        });
        match polled {
            Some(Ok(r)) => return Ok(r),
            Some(Err(())) => return Err(dead()),
            None => {}
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(dead()),
            Err(_) => Err(CallError {
                kind: CallErrorKind::Timeout,
                message: format!("no answer within {timeout:?}"),
                retry_after: None,
                accepted: 0,
            }),
        }
    }

    /// `start`.
    pub async fn start(&self, timeout: Duration) -> Result<(), CallError> {
        self.call_as(CallKind::Start, timeout, |i| {
            i.start().into_result().map_err(|e| from_plugin(&e))
        })
        .await?
    }

    /// `export` of a batch the pipeline holds; returns items accepted.
    pub async fn export(&self, batch: Arc<HeldBatch>, timeout: Duration) -> Result<u64, CallError> {
        self.call_as(CallKind::Export, timeout, move |i| match i.export(&batch) {
            RResult::ROk(ok) => Ok(ok.accepted),
            RResult::RErr(e) => Err(from_plugin(&e)),
        })
        .await?
    }

    /// `preview`: the text `export` would send, without sending it.
    pub async fn preview(
        &self,
        batch: Arc<HeldBatch>,
        timeout: Duration,
    ) -> Result<String, CallError> {
        self.call_as(CallKind::Preview, timeout, move |i| {
            match i.preview(&batch) {
                RResult::ROk(s) => Ok(s.to_string()),
                RResult::RErr(e) => Err(from_plugin(&e)),
            }
        })
        .await?
    }

    /// `collect`; the plugin's batch is kept as it is, holding this library
    /// loaded until the batch is dropped (`pipeline::held`).
    pub async fn collect(&self, timeout: Duration) -> Result<HeldBatch, CallError> {
        let keep: KeepAlive = self.library.clone();
        let held = self
            .call_as(CallKind::Collect, timeout, move |i| match i.collect() {
                RResult::ROk(b) => Ok(HeldBatch::from_plugin(b, keep)),
                RResult::RErr(e) => Err(from_plugin(&e)),
            })
            .await??;
        Ok(match &self.return_to {
            Some(pool) => held.returning_to(pool.clone()),
            None => held,
        })
    }

    /// Hands the batches `collect` returns back to `pool` once every
    /// destination is done with them, as emitted batches are (the instance
    /// takes them with `HostServices::reclaimed` and writes its next
    /// collection into their memory; kept only once it has asked).
    pub fn returning_collected_to(mut self, pool: Weak<Reclaim>) -> Self {
        self.return_to = Some(pool);
        self
    }

    /// `health`.
    pub async fn health(&self, timeout: Duration) -> Result<PluginHealth, CallError> {
        self.call_as(CallKind::Health, timeout, |i| {
            let h = i.health();
            PluginHealth {
                state: h.state,
                reason: h.reason.to_string(),
            }
        })
        .await
    }

    /// `flush`.
    pub async fn flush(&self, timeout: Duration) -> Result<(), CallError> {
        self.call_as(CallKind::Flush, timeout, |i| {
            i.flush().into_result().map_err(|e| from_plugin(&e))
        })
        .await?
    }

    /// Calls `shutdown(deadline)`, drops the instance, and joins the thread, all
    /// within `deadline` plus a short grace. A thread that does not end is returned
    /// as [`Retired::Stuck`] and must be kept.
    pub async fn retire(mut self, deadline: Duration) -> (Retired, Option<CallError>) {
        let started = tokio::time::Instant::now();
        let grace = Duration::from_millis(500);
        let ms = deadline.as_millis() as u64;
        let shutdown_err = match self
            .call_as(CallKind::Shutdown, deadline + grace, move |i| {
                i.shutdown(ms).into_result().map_err(|e| from_plugin(&e))
            })
            .await
        {
            Ok(Ok(())) => None,
            Ok(Err(e)) | Err(e) => Some(e),
        };
        self.jobs.take(); // the thread leaves its loop, drops the instance and ends
        let left = (deadline + grace)
            .saturating_sub(started.elapsed())
            .max(grace);
        let exited = self.exited.take();
        let ended = match exited {
            Some(rx) => tokio::time::timeout(left, rx).await.is_ok(),
            None => true,
        };
        if ended {
            if let Some(t) = self.thread.take() {
                let _ = tokio::task::spawn_blocking(move || t.join()).await;
            }
            // Threads the plugin started inherit the instance thread's name (or the
            // SDK runtime's "tfo-<instance>-rt"). One still alive would run unmapped
            // code after dlclose, so the library must stay.
            let left = threads_named(&self.names.1);
            if !left.is_empty() {
                tracing::error!(instance = %self.names.0, threads = ?left, "plugin threads outlived shutdown; its library stays loaded");
                return (
                    Retired::Stuck(StuckInstance {
                        thread: None,
                        library: self.library.clone(),
                    }),
                    shutdown_err,
                );
            }
            (Retired::Joined, shutdown_err)
        } else {
            tracing::error!(instance = %self.names.0, "instance thread did not end within {deadline:?}; its library stays loaded");
            (
                Retired::Stuck(StuckInstance {
                    thread: self.thread.take(),
                    library: self.library.clone(),
                }),
                shutdown_err,
            )
        }
    }
}

impl Drop for InstanceWorker {
    fn drop(&mut self) {
        // Dropped without `retire` (error paths): end the thread if it is idle, but
        // never block the runtime on it.
        self.jobs.take();
    }
}

/// A name unique to this instance thread, within the 15 bytes Linux keeps: "tfo",
/// a process-wide counter in hex, "-", then as much of the instance name as fits.
/// Threads the plugin starts from this thread inherit the name, and the SDK names
/// its runtime threads after it, so leftovers can be told apart from the threads of
/// another generation of the same instance.
fn thread_name(instance: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut s = format!("tfo{id:x}-{instance}");
    while s.len() > 15 {
        s.pop();
    }
    s
}

/// Threads of this process named `name` ([`super::platform::threads_named`]).
fn threads_named(name: &str) -> Vec<String> {
    super::platform::threads_named(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits (up to a generous bound, so a broken build fails instead of hanging)
    /// until `cond` holds.
    fn eventually(what: &str, cond: impl Fn() -> bool) {
        let end = Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(Instant::now() < end, "never happened: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn estimate_is_a_moving_average_seeded_by_the_first_run() {
        assert_eq!(estimate(u32::MAX, 10), 10);
        assert_eq!(estimate(100, 0), 75);
        assert_eq!(estimate(0, 100), 25);
        assert_eq!(estimate(u32::MAX - 1, u32::MAX - 1), u32::MAX - 1);
    }

    #[test]
    fn answers_are_polled_for_only_when_calls_of_that_kind_are_short() {
        let cap = REPLY_SPIN.as_micros() as u32;
        assert_eq!(reply_spin_for(u32::MAX), Duration::ZERO, "never measured");
        assert_eq!(reply_spin_for(1_400), Duration::ZERO, "a real export");
        assert_eq!(reply_spin_for(cap), Duration::ZERO);
        assert_eq!(reply_spin_for(0), Duration::from_micros(5));
        assert_eq!(reply_spin_for(3), Duration::from_micros(11));
        assert_eq!(reply_spin_for(cap - 1), REPLY_SPIN);

        let hand = HandOver::new();
        hand.record(CallKind::Export, Duration::from_micros(1_400));
        hand.record(CallKind::Health, Duration::from_micros(2));
        assert_eq!(hand.reply_spin(CallKind::Export), Duration::ZERO);
        assert_eq!(hand.reply_spin(CallKind::Start), Duration::ZERO);
        if may_spin() {
            assert_eq!(hand.reply_spin(CallKind::Health), Duration::from_micros(9));
            // Not while the instance thread sleeps: waking it costs more than
            // the poll would last.
            hand.awake.store(false, Ordering::Release);
            assert_eq!(hand.reply_spin(CallKind::Health), Duration::ZERO);
        } else {
            assert_eq!(hand.reply_spin(CallKind::Health), Duration::ZERO);
        }
    }

    #[test]
    fn poll_for_stops_at_the_first_value_and_never_polls_without_a_limit() {
        let mut n = 0;
        assert_eq!(
            poll_for(Duration::ZERO, || {
                n += 1;
                Some(())
            }),
            None
        );
        assert_eq!(n, 0);
        assert_eq!(
            poll_for(Duration::from_secs(60), || {
                n += 1;
                (n == 3).then_some(n)
            }),
            Some(3)
        );
        assert_eq!(poll_for(Duration::from_micros(50), || None::<()>), None);
    }

    #[test]
    fn next_job_takes_a_queued_job_and_ends_when_the_senders_are_gone() {
        let awake = AtomicBool::new(true);
        let (tx, rx) = mpsc::channel();
        tx.send(7).unwrap();
        assert_eq!(next_job(&rx, JOB_SPIN, &awake), Some(7));
        // Without polling, a queued job is still taken at once.
        tx.send(8).unwrap();
        assert_eq!(next_job(&rx, Duration::ZERO, &awake), Some(8));
        drop(tx);
        // Gone while polling: returns at once, without parking.
        assert_eq!(next_job(&rx, Duration::from_secs(60), &awake), None);
        assert!(awake.load(Ordering::Acquire));
        // Gone while parked.
        let (tx, rx) = mpsc::channel::<i32>();
        let awake = Arc::new(AtomicBool::new(true));
        let a = awake.clone();
        let t = std::thread::spawn(move || next_job(&rx, Duration::ZERO, &a));
        eventually("the thread parks", || !awake.load(Ordering::Acquire));
        drop(tx);
        assert_eq!(t.join().unwrap(), None);
    }

    /// The instance thread's loop: after a call it polls for at most `JOB_SPIN`,
    /// then parks (so an idle instance costs no CPU), and a call sent to a parked
    /// thread still runs. Prints the CPU the thread used over 2 s of idleness
    /// (`--nocapture`): expected 0 ticks.
    #[test]
    fn an_idle_instance_thread_parks_and_wakes_for_the_next_call() {
        type TestJob = Box<dyn FnOnce() -> u64 + Send>;
        let awake = Arc::new(AtomicBool::new(true));
        let (tx, rx) = mpsc::channel::<(TestJob, mpsc::Sender<u64>)>();
        let a = awake.clone();
        let t = std::thread::spawn(move || {
            let mut runs = 0;
            while let Some((job, back)) = next_job(&rx, JOB_SPIN, &a) {
                runs += 1;
                back.send(job()).unwrap();
            }
            runs
        });
        let (back_tx, back_rx) = mpsc::channel();
        // Ticks (utime + stime) of the instance thread, read on it.
        let cpu_ticks = || -> u64 {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
            let after = stat.rsplit(')').next().unwrap_or("");
            let f: Vec<u64> = after
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
        };
        tx.send((Box::new(cpu_ticks), back_tx.clone())).unwrap();
        let before = back_rx.recv().unwrap();
        eventually("the thread parks after polling", || {
            !awake.load(Ordering::Acquire)
        });
        std::thread::sleep(Duration::from_secs(2));
        assert!(!awake.load(Ordering::Acquire), "still parked");
        tx.send((Box::new(cpu_ticks), back_tx)).unwrap();
        let after = back_rx.recv().unwrap();
        println!(
            "instance thread CPU over 2 s idle: {} ticks of 10 ms",
            after.saturating_sub(before)
        );
        drop(tx);
        assert_eq!(t.join().unwrap(), 2);
    }
}
