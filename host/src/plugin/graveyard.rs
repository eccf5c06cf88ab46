//! Retired generations: instances are shut down and their threads joined, then each
//! library whose last user is gone is closed and checked against `/proc/self/maps`
//! (on Windows against the loader's module list, see `platform::is_mapped`).
//! What cannot be unloaded safely (a thread that would not end, a mapping that
//! survived dlclose) is kept, counted and reported, never crashed on.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use serde::Serialize;

use super::{
    instance::{InstanceWorker, Retired, StuckInstance},
    library::LoadedLibrary,
};

/// Counters shown on `/plugins` and `/metrics`.
#[derive(Debug, Default, Serialize, Clone)]
pub struct GraveyardStats {
    /// Libraries closed and confirmed gone from the address space.
    pub unloaded: u64,
    /// Libraries still mapped after dlclose (kept; counted).
    pub still_mapped: u64,
    /// Instances whose thread did not end (library kept loaded).
    pub stuck_instances: u64,
    /// Libraries retired but still in use by some instance.
    pub pending: u64,
    /// Instances shut down with their thread joined.
    pub retired_instances: u64,
    /// Shadow files of libraries that stayed mapped.
    pub still_mapped_files: Vec<PathBuf>,
}

/// Keeps retired libraries until they can be closed, and what can never be closed.
#[derive(Default)]
pub struct Graveyard {
    pending: Mutex<Vec<Arc<LoadedLibrary>>>,
    stuck: Mutex<Vec<StuckInstance>>,
    still_mapped_files: Mutex<Vec<PathBuf>>,
    unloaded: AtomicU64,
    retired: AtomicU64,
    /// Woken when a library is left pending (see [`Graveyard::wait_pending`]).
    pending_left: tokio::sync::Notify,
}

impl Graveyard {
    /// Shuts an instance down (flush first when asked) and joins its thread; then
    /// closes its library if nothing else uses it.
    pub async fn retire_instance(&self, worker: InstanceWorker, flush: bool, deadline: Duration) {
        let lib = worker.library().clone();
        if flush {
            if let Err(e) = worker.flush(deadline).await {
                tracing::warn!(instance = worker.name(), "flush before retire failed: {e}");
            }
        }
        let (retired, err) = worker.retire(deadline).await;
        if let Some(e) = err {
            tracing::warn!(plugin = %lib.descriptor.name, "shutdown reported: {e}");
        }
        match retired {
            Retired::Stuck(s) => self.stuck.lock().unwrap_or_else(|e| e.into_inner()).push(s),
            Retired::Joined => {
                self.retired.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.bury(lib);
    }

    /// Hands over a library reference; the library is closed once no instance,
    /// manager table or stuck thread holds it.
    pub fn bury(&self, lib: Arc<LoadedLibrary>) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(lib);
        self.collect();
    }

    /// Whether a retired library waits for its last user (an instance, or a batch
    /// its code allocated that is still queued).
    pub fn has_pending(&self) -> bool {
        !self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Returns once a library is pending (at once if one is): the sweeper that
    /// closes libraries held by queued batches sleeps here, so an agent without
    /// retirements has no timer for it.
    pub async fn wait_pending(&self) {
        loop {
            let woken = self.pending_left.notified();
            if self.has_pending() {
                return;
            }
            woken.await;
        }
    }

    /// Closes every pending library that is no longer used.
    pub fn collect(&self) {
        let ready: Vec<LoadedLibrary> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            // One library may have been buried by several owners: keep one reference
            // each, or none of them could ever be the last.
            pending.sort_by_key(|l| Arc::as_ptr(l) as usize);
            pending.dedup_by_key(|l| Arc::as_ptr(l) as usize);
            let mut keep = Vec::new();
            let mut ready = Vec::new();
            for lib in pending.drain(..) {
                match Arc::try_unwrap(lib) {
                    Ok(l) => ready.push(l),
                    Err(shared) => keep.push(shared),
                }
            }
            let left = !keep.is_empty();
            *pending = keep;
            if left {
                self.pending_left.notify_one();
            }
            ready
        };
        for lib in ready {
            let name = lib.descriptor.name.clone();
            let outcome = lib.unload();
            if outcome.still_mapped {
                tracing::warn!(plugin = %name, file = %outcome.shadow_path.display(), "library still mapped after dlclose; kept and counted");
                self.still_mapped_files
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(outcome.shadow_path);
            } else {
                self.unloaded.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(plugin = %name, "library unloaded");
            }
        }
    }

    /// Counters.
    pub fn stats(&self) -> GraveyardStats {
        let files = self
            .still_mapped_files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        GraveyardStats {
            unloaded: self.unloaded.load(Ordering::Relaxed),
            still_mapped: files.len() as u64,
            stuck_instances: self.stuck.lock().unwrap_or_else(|e| e.into_inner()).len() as u64,
            pending: self.pending.lock().unwrap_or_else(|e| e.into_inner()).len() as u64,
            still_mapped_files: files,
            retired_instances: self.retired.load(Ordering::Relaxed),
        }
    }
}
