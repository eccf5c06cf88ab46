//! A batch as the pipeline holds it, without copying what a plugin allocated.
//!
//! A plugin's `Batch` owns its strings and vectors through abi_stable types whose
//! destructors (and growth functions) are code in the plugin's library. The host
//! used to clone every collected or emitted batch into its own memory so that the
//! library could be closed at any time; for a receiver that clone and the drop of
//! the plugin's original were ~28 % of the agent's CPU (a malloc, a memcpy and two
//! frees per string: seven strings per Influx sample).
//!
//! Instead the pipeline keeps the plugin's batch as it is, together with a
//! [`KeepAlive`] of the library it came from: the library is closed (by the
//! graveyard, `plugin::graveyard`) only once no held batch refers to it, so
//! nothing a plugin allocated outlives its library (docs/architecture.md,
//! "Batches across the boundary"). Merging batches of several plugins keeps each
//! of their libraries. Batches the host builds itself carry none.

use std::{
    any::Any,
    fmt,
    ops::{Deref, DerefMut},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, Weak,
    },
};

use tfo_plugin_api::Batch;

/// Holds a plugin library loaded (an `Arc` of the host's library record) while data
/// its code allocated is alive; opaque to the pipeline.
pub type KeepAlive = Arc<dyn Any + Send + Sync>;

/// A batch and the libraries its memory belongs to.
///
/// Field order matters: Rust drops fields in declaration order, so the batch is
/// freed (through its libraries' code) before the libraries are released.
pub struct HeldBatch {
    batch: Batch,
    keep: Vec<KeepAlive>,
    /// The emitting instance's [`Reclaim`], which gets the batch instead of the
    /// allocator when it is dropped (see there).
    return_to: Option<Weak<Reclaim>>,
}

impl HeldBatch {
    /// A batch whose memory is the host's own (built by the host, read from the
    /// disk buffer, or a copy).
    pub fn own(batch: Batch) -> Self {
        HeldBatch {
            batch,
            keep: Vec::new(),
            return_to: None,
        }
    }

    /// A batch a plugin built, kept as it is; `library` stays loaded until the batch
    /// is dropped.
    pub fn from_plugin(batch: Batch, library: KeepAlive) -> Self {
        HeldBatch {
            batch,
            keep: vec![library],
            return_to: None,
        }
    }

    /// Hands the batch to `reclaim` instead of freeing it when it is dropped, if
    /// by then it still holds no other library's memory and the pool still
    /// exists (its instance's host handle owns it).
    pub fn returning_to(mut self, reclaim: Weak<Reclaim>) -> Self {
        self.return_to = Some(reclaim);
        self
    }

    /// Appends `other`'s items (moved, not copied) and keeps its libraries too.
    pub(crate) fn absorb(&mut self, mut other: HeldBatch) {
        let batch = std::mem::take(&mut other.batch);
        let keep = std::mem::take(&mut other.keep);
        self.batch.metrics.extend(batch.metrics);
        self.batch.spans.extend(batch.spans);
        self.batch.logs.extend(batch.logs);
        // `batch`'s remaining parts (its resource and emptied vectors) drop here,
        // while `keep` still holds their library.
        drop(batch.resource);
        for k in keep {
            if !self.keep.iter().any(|have| Arc::ptr_eq(have, &k)) {
                self.keep.push(k);
            }
        }
    }

    /// How many libraries this batch keeps loaded.
    pub fn libraries_kept(&self) -> usize {
        self.keep.len()
    }
}

impl Drop for HeldBatch {
    fn drop(&mut self) {
        // Only a batch of exactly one library goes back: the instance that gets
        // it refills it with that library's code, and nothing in it may belong to
        // a library that could be closed while the instance keeps it.
        if let (Some(to), 1) = (self.return_to.take(), self.keep.len()) {
            if let Some(reclaim) = to.upgrade() {
                reclaim.offer(HeldBatch {
                    batch: std::mem::take(&mut self.batch),
                    keep: std::mem::take(&mut self.keep),
                    return_to: None,
                });
            }
        }
        // Then the fields drop in order: the batch (through its libraries' code)
        // before the libraries are released.
    }
}

/// Batches a source emitted or collected, handed back to it once every
/// destination is done with them (`HostServices::reclaimed`, ABI 1.2), so that it
/// writes the next request or collection into their strings and vectors (the
/// snmp source: 13 allocations per value otherwise): the influx receiver otherwise
/// allocates seven strings per sample and the host frees them again after the
/// export, each a `malloc` on the receiver's thread and a `free` from another
/// thread (~60 % of the agent's CPU in the influx row, docs/benchmarks.md).
///
/// Kept only once the instance has asked ([`Reclaim::take`]), so a source that
/// never asks holds no memory here; at most [`Reclaim::MAX_KEPT`] batches, the
/// rest freed as before. Owned by the instance's host handle only (batches
/// point at it weakly), so it is dropped with the instance, each batch it kept
/// with its library's keep-alive: a retired library is not held by it.
#[derive(Default)]
pub struct Reclaim {
    wanted: AtomicBool,
    kept: Mutex<Vec<HeldBatch>>,
    /// Batches handed back (the instance's `tfo_agent_batches_reclaimed_total`).
    handed_back: Arc<AtomicU64>,
}

impl Reclaim {
    /// Batches kept for the instance at most: enough for the requests a receiver
    /// parses at once while earlier batches are in the queue, few enough that the
    /// memory kept after a burst stays a few batches'.
    pub const MAX_KEPT: usize = 4;

    /// A pool counting the batches it hands back in `handed_back`.
    pub fn counting(handed_back: Arc<AtomicU64>) -> Self {
        Reclaim {
            handed_back,
            ..Default::default()
        }
    }

    /// A batch handed back earlier whose memory is `library`'s (the asking
    /// instance's, [`library_id`]), if any; from the first call on, batches are
    /// kept for this instance. Kept batches of another library (a runner that
    /// respawned an upgraded instance shares the pool) are freed instead: the
    /// caller could keep them past that library's unload.
    pub fn take(&self, library: usize) -> Option<Batch> {
        self.wanted.store(true, Ordering::Relaxed);
        loop {
            let mut held = self.lock().pop()?;
            if held.keep.first().map(library_id) != Some(library) {
                continue;
            }
            self.handed_back.fetch_add(1, Ordering::Relaxed);
            // `held`'s library is the caller's own, which the caller's instance
            // thread holds loaded: releasing this keep-alive never closes it.
            return Some(std::mem::take(&mut held.batch));
        }
    }

    /// Keeps `held` for the instance if it asked and there is room; otherwise
    /// it is freed here, outside the lock.
    fn offer(&self, held: HeldBatch) {
        if !self.wanted.load(Ordering::Relaxed) {
            return;
        }
        let mut kept = self.lock();
        if kept.len() < Self::MAX_KEPT {
            kept.push(held);
        } else {
            drop(kept);
            drop(held);
        }
    }

    /// Batches kept now (tests, status).
    pub fn kept(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<HeldBatch>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The identity of a library as [`Reclaim::take`] compares it: the address of its
/// record, which cannot be reused while a kept batch holds the record.
pub fn library_id<T: ?Sized>(library: &Arc<T>) -> usize {
    Arc::as_ptr(library) as *const () as usize
}

impl Deref for HeldBatch {
    type Target = Batch;
    fn deref(&self) -> &Batch {
        &self.batch
    }
}

/// Mutable access (resource attributes): growing a vector of a plugin's batch runs
/// that plugin's code, which `keep` holds loaded.
impl DerefMut for HeldBatch {
    fn deref_mut(&mut self) -> &mut Batch {
        &mut self.batch
    }
}

impl From<Batch> for HeldBatch {
    fn from(batch: Batch) -> Self {
        HeldBatch::own(batch)
    }
}

impl fmt::Debug for HeldBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldBatch")
            .field("batch", &self.batch)
            .field("libraries_kept", &self.keep.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfo_plugin_api::Metric;

    fn gauge(name: &str) -> Batch {
        let mut b = Batch::default();
        b.metrics.push(Metric::gauge(name, "1", 1, 1.0, vec![]));
        b
    }

    #[test]
    fn a_held_batch_keeps_each_library_once_until_it_is_dropped() {
        let lib_a: KeepAlive = Arc::new("a");
        let lib_b: KeepAlive = Arc::new("b");
        let mut held = HeldBatch::from_plugin(gauge("x"), lib_a.clone());
        held.absorb(HeldBatch::from_plugin(gauge("y"), lib_b.clone()));
        held.absorb(HeldBatch::from_plugin(gauge("z"), lib_a.clone()));
        held.absorb(HeldBatch::own(gauge("w")));
        assert_eq!(held.item_count(), 4);
        assert_eq!(held.libraries_kept(), 2);
        assert_eq!(
            (Arc::strong_count(&lib_a), Arc::strong_count(&lib_b)),
            (2, 2)
        );
        drop(held);
        assert_eq!(
            (Arc::strong_count(&lib_a), Arc::strong_count(&lib_b)),
            (1, 1)
        );
    }

    #[test]
    fn a_dropped_batch_goes_back_to_its_source_once_the_source_asked() {
        let lib: KeepAlive = Arc::new("a");
        let counter = Arc::new(AtomicU64::new(0));
        let reclaim = Arc::new(Reclaim::counting(counter.clone()));
        let a = library_id(&lib);
        // Not asked yet: freed as before, nothing kept.
        drop(
            HeldBatch::from_plugin(gauge("x"), lib.clone()).returning_to(Arc::downgrade(&reclaim)),
        );
        assert_eq!((reclaim.kept(), Arc::strong_count(&lib)), (0, 1));
        assert!(reclaim.take(a).is_none());
        // Asked: kept, with its library, until taken.
        drop(
            HeldBatch::from_plugin(gauge("y"), lib.clone()).returning_to(Arc::downgrade(&reclaim)),
        );
        assert_eq!((reclaim.kept(), Arc::strong_count(&lib)), (1, 2));
        let back = reclaim.take(a).expect("a batch handed back");
        assert_eq!(back, gauge("y"));
        assert_eq!((reclaim.kept(), Arc::strong_count(&lib)), (0, 1));
        assert_eq!(counter.load(Ordering::Relaxed), 1);
        // Merged with host memory: still only this library's and the host's.
        let mut held =
            HeldBatch::from_plugin(gauge("z"), lib.clone()).returning_to(Arc::downgrade(&reclaim));
        held.absorb(HeldBatch::own(gauge("w")));
        drop(held);
        assert_eq!(reclaim.kept(), 1);
        assert_eq!(reclaim.take(a).unwrap().metrics.len(), 2);
        // Kept for another library (an upgraded instance respawned on the same
        // runner): freed, not handed to this one.
        let other: KeepAlive = Arc::new("b");
        drop(
            HeldBatch::from_plugin(gauge("v"), other.clone())
                .returning_to(Arc::downgrade(&reclaim)),
        );
        assert_eq!((reclaim.kept(), Arc::strong_count(&other)), (1, 2));
        assert!(reclaim.take(a).is_none());
        assert_eq!((reclaim.kept(), Arc::strong_count(&other)), (0, 1));
    }

    #[test]
    fn a_batch_with_another_librarys_memory_is_never_handed_back() {
        let (lib_a, lib_b): (KeepAlive, KeepAlive) = (Arc::new("a"), Arc::new("b"));
        let reclaim = Arc::new(Reclaim::default());
        assert!(reclaim.take(library_id(&lib_a)).is_none());
        let mut held = HeldBatch::from_plugin(gauge("x"), lib_a.clone())
            .returning_to(Arc::downgrade(&reclaim));
        held.absorb(HeldBatch::from_plugin(gauge("y"), lib_b.clone()));
        drop(held);
        assert_eq!(reclaim.kept(), 0);
        assert_eq!(
            (Arc::strong_count(&lib_a), Arc::strong_count(&lib_b)),
            (1, 1)
        );
        // A host-built batch has no library to refill it with.
        drop(HeldBatch::own(gauge("h")).returning_to(Arc::downgrade(&reclaim)));
        assert_eq!(reclaim.kept(), 0);
    }

    #[test]
    fn at_most_a_few_batches_are_kept_and_none_once_the_source_is_gone() {
        let lib: KeepAlive = Arc::new("a");
        let reclaim = Arc::new(Reclaim::default());
        assert!(reclaim.take(library_id(&lib)).is_none());
        for i in 0..Reclaim::MAX_KEPT + 3 {
            drop(
                HeldBatch::from_plugin(gauge(&i.to_string()), lib.clone())
                    .returning_to(Arc::downgrade(&reclaim)),
            );
        }
        assert_eq!(reclaim.kept(), Reclaim::MAX_KEPT);
        assert_eq!(Arc::strong_count(&lib), 1 + Reclaim::MAX_KEPT);
        // The instance's handle (the only owner of its pool) goes: what the pool
        // kept is freed, and a batch still queued is freed when it drops.
        let queued =
            HeldBatch::from_plugin(gauge("q"), lib.clone()).returning_to(Arc::downgrade(&reclaim));
        drop(reclaim);
        assert_eq!(Arc::strong_count(&lib), 2);
        drop(queued);
        assert_eq!(Arc::strong_count(&lib), 1);
    }
}
