//! One plugin instance on a thread the host owns.
//!
//! Every call into the instance (create, start, collect, export, health, flush,
//! shutdown, and the final drop) runs on this thread, never on a tokio worker: a
//! plugin that touches a thread-local on a long-lived host thread can never be
//! unmapped (DESIGN.md §4). The thread is joined before the library is closed. Every
//! value coming back is converted into host-owned types on this thread, while the
//! library is certainly loaded.

use std::{
    sync::{mpsc, Arc},
    thread::JoinHandle,
    time::Duration,
};

use abi_stable::std_types::{RResult, RStr};
use tfo_plugin_api::{Batch, ErrorKind, HealthState, HostHandle, PluginInstanceBox};
use tokio::sync::oneshot;

use super::library::LoadedLibrary;

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

/// Handle to a running instance thread.
pub struct InstanceWorker {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    exited: Option<oneshot::Receiver<()>>,
    library: Arc<LoadedLibrary>,
    name: String,
    thread_name: String,
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
                while let Ok(job) = job_rx.recv() {
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
            thread: Some(thread),
            exited: Some(exit_rx),
            library,
            name: instance_name.to_string(),
            thread_name: tname,
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
        &self.name
    }

    /// Runs `f` on the instance thread; `Timeout` if it does not answer in time.
    pub async fn call<R: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&mut PluginInstanceBox) -> R + Send + 'static,
    ) -> Result<R, CallError> {
        let dead = || CallError {
            kind: CallErrorKind::Dead,
            message: "instance thread is gone".into(),
            retry_after: None,
            accepted: 0,
        };
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |inst| {
            let _ = tx.send(f(inst));
        });
        self.jobs
            .as_ref()
            .ok_or_else(dead)?
            .send(job)
            .map_err(|_| dead())?;
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
        self.call(timeout, |i| {
            i.start().into_result().map_err(|e| from_plugin(&e))
        })
        .await?
    }

    /// `export` of a host-owned batch; returns items accepted.
    pub async fn export(&self, batch: Arc<Batch>, timeout: Duration) -> Result<u64, CallError> {
        self.call(timeout, move |i| match i.export(&batch) {
            RResult::ROk(ok) => Ok(ok.accepted),
            RResult::RErr(e) => Err(from_plugin(&e)),
        })
        .await?
    }

    /// `preview`: the text `export` would send, without sending it.
    pub async fn preview(&self, batch: Arc<Batch>, timeout: Duration) -> Result<String, CallError> {
        self.call(timeout, move |i| match i.preview(&batch) {
            RResult::ROk(s) => Ok(s.to_string()),
            RResult::RErr(e) => Err(from_plugin(&e)),
        })
        .await?
    }

    /// `collect`; the batch is cloned into host memory on the instance thread.
    pub async fn collect(&self, timeout: Duration) -> Result<Batch, CallError> {
        self.call(timeout, |i| match i.collect() {
            RResult::ROk(b) => Ok(b.clone()),
            RResult::RErr(e) => Err(from_plugin(&e)),
        })
        .await?
    }

    /// `health`.
    pub async fn health(&self, timeout: Duration) -> Result<PluginHealth, CallError> {
        self.call(timeout, |i| {
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
        self.call(timeout, |i| {
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
            .call(deadline + grace, move |i| {
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
            let left = threads_named(&self.thread_name);
            if !left.is_empty() {
                tracing::error!(instance = %self.name, threads = ?left, "plugin threads outlived shutdown; its library stays loaded");
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
            tracing::error!(instance = %self.name, "instance thread did not end within {deadline:?}; its library stays loaded");
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
