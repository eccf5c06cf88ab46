//! The bounded per-sink queue. It belongs to the host, not to a plugin generation,
//! so a hot swap changes who drains it and loses nothing.
//!
//! With `pipeline.buffer: disk` the queue is backed by the sink's write-ahead log
//! ([`super::disk`]): every accepted batch is appended to it first, the memory part
//! is only a window onto the log (refilled from disk as the sink drains it), and a
//! batch is acknowledged in the log once the runner reports it delivered or refused
//! ([`SinkQueue::ack`]). Whatever is not acknowledged is replayed on the next start.

use std::{
    collections::VecDeque,
    sync::{atomic::Ordering, Arc, Mutex},
};

use tokio::sync::Notify;

use super::HeldBatch;

use super::disk::{AppendError, DiskLog, DiskOptions};
use crate::status::InstanceStatus;

/// A batch waiting for one sink. The batch itself is shared by every sink (`Arc`).
#[derive(Debug, Clone)]
pub struct QueuedBatch {
    /// The shared, read-only batch.
    pub batch: Arc<HeldBatch>,
    /// Items in it.
    pub items: u64,
    /// Approximate bytes.
    pub bytes: u64,
    /// Failed export attempts so far.
    pub attempts: u32,
    /// Position in the sink's disk buffer, when it has one.
    pub seq: Option<u64>,
}

impl QueuedBatch {
    /// Wraps a shared batch.
    pub fn new(batch: Arc<HeldBatch>) -> Self {
        let items = batch.item_count();
        let bytes = batch.approx_bytes();
        QueuedBatch {
            batch,
            items,
            bytes,
            attempts: 0,
            seq: None,
        }
    }
}

#[derive(Default)]
struct Inner {
    q: VecDeque<QueuedBatch>,
    items: u64,
    bytes: u64,
    disk: Option<Disk>,
}

/// The disk side of a queue: the log, and the next record to load into memory.
struct Disk {
    log: DiskLog,
    next_load: u64,
}

impl Inner {
    fn has_room(&self, qb: &QueuedBatch, max_items: u64, max_bytes: u64) -> bool {
        self.q.is_empty()
            || (self.items + qb.items <= max_items && self.bytes + qb.bytes <= max_bytes)
    }
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
        let n = match &g.disk {
            Some(d) => d.log.pending_items(),
            None => g.items,
        };
        self.status.queued_items.store(n, Ordering::Relaxed);
    }

    /// A queue backed by a disk buffer in `opts.dir`; what an earlier run left
    /// unacknowledged there is replayed first. Fails when the directory cannot be
    /// used (the caller reports it).
    pub fn with_disk(
        max_items: u64,
        max_bytes: u64,
        status: Arc<InstanceStatus>,
        opts: DiskOptions,
    ) -> std::io::Result<Arc<Self>> {
        let dir = opts.dir.clone();
        let (log, report) = DiskLog::open(opts)?;
        if report.corrupt_records > 0 || report.truncated_bytes > 0 {
            status.buffer_corrupt.fetch_add(
                report.corrupt_records + u64::from(report.truncated_bytes > 0),
                Ordering::Relaxed,
            );
            tracing::warn!(
                instance = %status.instance,
                dir = %dir.display(),
                corrupt_records = report.corrupt_records,
                truncated_bytes = report.truncated_bytes,
                "disk buffer: damaged records skipped (a crash while writing, or a damaged disk)"
            );
        }
        if report.pending_records > 0 {
            tracing::info!(
                instance = %status.instance,
                dir = %dir.display(),
                batches = report.pending_records,
                items = report.pending_items,
                "disk buffer: replaying what was not delivered before"
            );
        }
        let next_load = log.acked();
        let q = Arc::new(SinkQueue {
            inner: Mutex::new(Inner {
                disk: Some(Disk { log, next_load }),
                ..Inner::default()
            }),
            notify: Notify::new(),
            max_items,
            max_bytes,
            status,
        });
        {
            let g = q.lock();
            q.publish_len(&g);
        }
        Ok(q)
    }

    /// Whether the queue is backed by a disk buffer.
    pub fn is_disk(&self) -> bool {
        self.lock().disk.is_some()
    }

    /// Appends to the disk buffer; the batch stays on disk only when the memory
    /// window is full or behind. Returns the items dropped (the log is full or
    /// cannot be written).
    fn push_disk(&self, g: &mut Inner, mut qb: QueuedBatch) -> u64 {
        let payload = match super::disk::encode_batch(&qb.batch) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(instance = %self.status.instance, "disk buffer: cannot encode a batch: {e}");
                return qb.items;
            }
        };
        let has_room = g.has_room(&qb, self.max_items, self.max_bytes);
        let disk = g.disk.as_mut().expect("disk queue");
        match disk.log.append(&payload, qb.items) {
            Ok(seq) => {
                if disk.next_load == seq && has_room {
                    disk.next_load = seq + 1;
                    qb.seq = Some(seq);
                    g.items += qb.items;
                    g.bytes += qb.bytes;
                    g.q.push_back(qb);
                }
                0
            }
            Err(AppendError::Full) => {
                tracing::warn!(
                    instance = %self.status.instance,
                    max_bytes = disk.log.options().max_bytes,
                    "disk buffer full: newest batch dropped"
                );
                qb.items
            }
            Err(AppendError::Io(e)) => {
                tracing::error!(
                    instance = %self.status.instance,
                    dir = %disk.log.options().dir.display(),
                    "disk buffer: cannot write, batch dropped: {e}"
                );
                qb.items
            }
        }
    }

    /// Loads batches from the disk buffer into the (empty) memory window.
    fn refill(&self, g: &mut Inner) {
        loop {
            let Some(disk) = g.disk.as_mut() else { return };
            let Some(read) = disk.log.read_from(disk.next_load) else {
                return;
            };
            let decoded = read.and_then(|(seq, items, bytes)| {
                super::disk::decode_batch(&bytes)
                    .map(|b| (seq, items, b))
                    .map_err(|e| (seq, e))
            });
            match decoded {
                Ok((seq, _, batch)) => {
                    disk.next_load = seq + 1;
                    let mut qb = QueuedBatch::new(Arc::new(HeldBatch::own(batch)));
                    qb.seq = Some(seq);
                    let room = g.has_room(&qb, self.max_items, self.max_bytes);
                    if !room {
                        // Put it back for the next refill.
                        g.disk.as_mut().expect("disk").next_load = seq;
                        return;
                    }
                    g.items += qb.items;
                    g.bytes += qb.bytes;
                    g.q.push_back(qb);
                }
                Err((seq, why)) => {
                    disk.next_load = seq + 1;
                    self.status.buffer_corrupt.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(instance = %self.status.instance, "disk buffer: record {seq} skipped: {why}");
                }
            }
        }
    }

    /// The sink delivered `qb` or refused it for good: with a disk buffer, it (and
    /// everything before it) is not replayed again.
    pub fn ack(&self, qb: &QueuedBatch) {
        if let Some(seq) = qb.seq {
            let mut g = self.lock();
            if let Some(d) = g.disk.as_mut() {
                d.log.ack(seq);
            }
            self.publish_len(&g);
        }
    }

    /// Appends, evicting the oldest batches if the limits would be exceeded (with a
    /// disk buffer: refusing the newest when the log is full). Returns the number of
    /// items dropped.
    pub fn push(&self, qb: QueuedBatch) -> u64 {
        self.push_inner(qb, true)
    }

    /// Appends a batch whose source was admitted by [`is_full`](Self::is_full)
    /// (a push source answered `Accepted`): it never evicts older batches, so the
    /// memory queue may exceed its bound by what was in flight (the batcher's
    /// pending data) when it filled. With a disk buffer it is the same as `push`.
    pub fn push_admitted(&self, qb: QueuedBatch) -> u64 {
        self.push_inner(qb, false)
    }

    fn push_inner(&self, qb: QueuedBatch, evict: bool) -> u64 {
        let mut dropped = 0;
        {
            let mut g = self.lock();
            if g.disk.is_some() {
                dropped = self.push_disk(&mut g, qb);
                self.publish_len(&g);
                drop(g);
                if dropped > 0 {
                    self.status.drops.fetch_add(dropped, Ordering::Relaxed);
                }
                self.notify.notify_one();
                return dropped;
            }
            while evict
                && !g.q.is_empty()
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
        if g.q.is_empty() && g.disk.is_some() {
            self.refill(&mut g);
        }
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

    /// Whether a new batch would push something out: the memory queue is at its
    /// item or byte limit, or the disk buffer is within 1/16 of its cap. Push sources
    /// are told `Full` then (they can answer 429/503 and let the sender retry),
    /// instead of having older accepted data evicted for theirs.
    pub fn is_full(&self) -> bool {
        let g = self.lock();
        match &g.disk {
            Some(d) => {
                let cap = d.log.options().max_bytes;
                d.log.bytes() >= cap - cap / 16
            }
            None => g.items >= self.max_items || g.bytes >= self.max_bytes,
        }
    }

    /// Items waiting (with a disk buffer: every unacknowledged item, on disk or
    /// being exported).
    pub fn items(&self) -> u64 {
        let g = self.lock();
        match &g.disk {
            Some(d) => d.log.pending_items(),
            None => g.items,
        }
    }

    /// A copy of every waiting batch (for accounting in tests and shutdown reports).
    pub fn snapshot(&self) -> Vec<Arc<HeldBatch>> {
        self.lock().q.iter().map(|qb| qb.batch.clone()).collect()
    }
}
