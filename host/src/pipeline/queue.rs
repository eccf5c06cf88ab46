//! The bounded per-sink queue. It belongs to the host, not to a plugin generation,
//! so a hot swap changes who drains it and loses nothing.

use std::{
    collections::VecDeque,
    sync::{atomic::Ordering, Arc, Mutex},
};

use tfo_plugin_api::Batch;
use tokio::sync::Notify;

use crate::status::InstanceStatus;

/// A batch waiting for one sink. The batch itself is shared by every sink (`Arc`).
#[derive(Debug, Clone)]
pub struct QueuedBatch {
    /// The shared, read-only batch.
    pub batch: Arc<Batch>,
    /// Items in it.
    pub items: u64,
    /// Approximate bytes.
    pub bytes: u64,
    /// Failed export attempts so far.
    pub attempts: u32,
}

impl QueuedBatch {
    /// Wraps a shared batch.
    pub fn new(batch: Arc<Batch>) -> Self {
        let items = batch.item_count();
        let bytes = batch.approx_bytes();
        QueuedBatch {
            batch,
            items,
            bytes,
            attempts: 0,
        }
    }
}

#[derive(Default)]
struct Inner {
    q: VecDeque<QueuedBatch>,
    items: u64,
    bytes: u64,
}

/// Bounded FIFO in items and bytes; when full, the oldest batches are dropped and
/// counted (newest data is worth more to an operator than old data).
pub struct SinkQueue {
    inner: Mutex<Inner>,
    notify: Notify,
    max_items: u64,
    max_bytes: u64,
    status: Arc<InstanceStatus>,
}

impl SinkQueue {
    /// A queue with limits, counting drops on `status`.
    pub fn new(max_items: u64, max_bytes: u64, status: Arc<InstanceStatus>) -> Arc<Self> {
        Arc::new(SinkQueue {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            max_items,
            max_bytes,
            status,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish_len(&self, g: &Inner) {
        self.status.queued_items.store(g.items, Ordering::Relaxed);
    }

    /// Appends, evicting the oldest batches if the limits would be exceeded. Returns
    /// the number of items dropped.
    pub fn push(&self, qb: QueuedBatch) -> u64 {
        let mut dropped = 0;
        {
            let mut g = self.lock();
            while !g.q.is_empty()
                && (g.items + qb.items > self.max_items || g.bytes + qb.bytes > self.max_bytes)
            {
                let old = g.q.pop_front().expect("non-empty");
                g.items -= old.items;
                g.bytes -= old.bytes;
                dropped += old.items;
            }
            g.items += qb.items;
            g.bytes += qb.bytes;
            g.q.push_back(qb);
            self.publish_len(&g);
        }
        if dropped > 0 {
            self.status.drops.fetch_add(dropped, Ordering::Relaxed);
            tracing::warn!(instance = %self.status.instance, dropped, "sink queue full: dropped oldest items");
        }
        self.notify.notify_one();
        dropped
    }

    /// Puts a batch back at the head (a failed or unconfirmed export), ignoring the
    /// limits: it was already accepted once.
    pub fn push_front(&self, qb: QueuedBatch) {
        {
            let mut g = self.lock();
            g.items += qb.items;
            g.bytes += qb.bytes;
            g.q.push_front(qb);
            self.publish_len(&g);
        }
        self.notify.notify_one();
    }

    /// Takes the head without waiting.
    pub fn try_pop(&self) -> Option<QueuedBatch> {
        let mut g = self.lock();
        let qb = g.q.pop_front()?;
        g.items -= qb.items;
        g.bytes -= qb.bytes;
        self.publish_len(&g);
        Some(qb)
    }

    /// Waits for and takes the head.
    pub async fn pop(&self) -> QueuedBatch {
        loop {
            let notified = self.notify.notified();
            if let Some(qb) = self.try_pop() {
                return qb;
            }
            notified.await;
        }
    }

    /// Items waiting.
    pub fn items(&self) -> u64 {
        self.lock().items
    }

    /// A copy of every waiting batch (for accounting in tests and shutdown reports).
    pub fn snapshot(&self) -> Vec<Arc<Batch>> {
        self.lock().q.iter().map(|qb| qb.batch.clone()).collect()
    }
}
