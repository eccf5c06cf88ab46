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
    sync::Arc,
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
}

impl HeldBatch {
    /// A batch whose memory is the host's own (built by the host, read from the
    /// disk buffer, or a copy).
    pub fn own(batch: Batch) -> Self {
        HeldBatch {
            batch,
            keep: Vec::new(),
        }
    }

    /// A batch a plugin built, kept as it is; `library` stays loaded until the batch
    /// is dropped.
    pub fn from_plugin(batch: Batch, library: KeepAlive) -> Self {
        HeldBatch {
            batch,
            keep: vec![library],
        }
    }

    /// Appends `other`'s items (moved, not copied) and keeps its libraries too.
    pub(crate) fn absorb(&mut self, other: HeldBatch) {
        let HeldBatch { batch, keep } = other;
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
}
