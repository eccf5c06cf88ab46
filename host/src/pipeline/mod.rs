//! The host pipeline: sources submit batches; a batcher merges them by size and
//! time (per resource and route set), adds the agent's resource attributes, and fans
//! each merged batch out to the sink queues as one shared `Arc<HeldBatch>` (no copy
//! per sink, and no copy of what a plugin allocated: [`held`]); runners drive the
//! instances.

#[cfg(test)]
mod alloc_tests;
pub mod disk;
pub mod held;
pub mod queue;
pub mod render;
pub mod runner;

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use tfo_plugin_api::{DataTypes, EmitStatus, KeyValue};
use tokio::sync::mpsc;

pub use held::{HeldBatch, KeepAlive, Reclaim};
use queue::{QueuedBatch, SinkQueue};

struct Route {
    instance: String,
    accepts: DataTypes,
    queue: Arc<SinkQueue>,
}

/// Which sinks a source's batches go to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteSet {
    /// The config's `routes`: only these sinks (the source itself included if named).
    pub only: Option<Vec<String>>,
    /// Never this sink unless `only` names it: a source+sink instance (MQTT, OTLP)
    /// would otherwise feed its own output back to itself.
    pub except: Option<String>,
}

impl RouteSet {
    /// Whether `sink` receives the batches.
    pub fn allows(&self, sink: &str) -> bool {
        match &self.only {
            Some(only) => only.iter().any(|s| s == sink),
            None => self.except.as_deref() != Some(sink),
        }
    }
}

/// Which sinks a source feeds: `None` = every sink accepting the data.
pub type Routes = Option<Arc<RouteSet>>;

enum Msg {
    Batch {
        routes: Routes,
        batch: HeldBatch,
        pushed: bool,
    },
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Fan-out from sources to sink queues, with batching in front.
#[derive(Clone)]
pub struct Pipeline {
    routes: Arc<RwLock<Vec<Route>>>,
    batcher: Option<mpsc::Sender<Msg>>,
    resource: Arc<Vec<KeyValue>>,
}

impl Default for Pipeline {
    /// A pipeline without batching (each submission is published at once).
    fn default() -> Self {
        Pipeline {
            routes: Default::default(),
            batcher: None,
            resource: Default::default(),
        }
    }
}

/// Batching settings.
#[derive(Debug, Clone)]
pub struct BatchSettings {
    /// Flush a merged batch at this many items...
    pub max_items: u64,
    /// ...or when it is this old.
    pub flush_interval: Duration,
    /// Attributes added to every batch's resource when absent (host.name, agent id,
    /// tags).
    pub resource: Vec<KeyValue>,
}

impl Pipeline {
    /// A pipeline with a batcher task (needs a tokio runtime).
    pub fn with_batching(settings: BatchSettings) -> Pipeline {
        let (tx, rx) = mpsc::channel(1024);
        let p = Pipeline {
            routes: Default::default(),
            batcher: Some(tx),
            resource: Arc::new(settings.resource.clone()),
        };
        tokio::spawn(run_batcher(
            p.clone_without_batcher(),
            rx,
            settings.max_items,
            settings.flush_interval,
        ));
        p
    }

    fn clone_without_batcher(&self) -> Pipeline {
        Pipeline {
            routes: self.routes.clone(),
            batcher: None,
            resource: self.resource.clone(),
        }
    }

    /// Registers a sink's queue.
    pub fn add_sink(&self, instance: &str, accepts: DataTypes, queue: Arc<SinkQueue>) {
        let mut r = self.routes.write().unwrap_or_else(|e| e.into_inner());
        r.retain(|x| x.instance != instance);
        r.push(Route {
            instance: instance.into(),
            accepts,
            queue,
        });
    }

    /// Unregisters a sink.
    pub fn remove_sink(&self, instance: &str) {
        self.routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|x| x.instance != instance);
    }

    /// Queues a batch at once (no batching) for every sink that accepts one of its
    /// data types; returns how many sinks got it.
    pub fn publish(&self, batch: Arc<HeldBatch>) -> usize {
        self.publish_routed(batch, &None)
    }

    /// Like [`publish`](Self::publish), restricted to `routes`.
    pub fn publish_routed(&self, batch: Arc<HeldBatch>, routes: &Routes) -> usize {
        self.publish_as(batch, routes, false)
    }

    /// `publish_routed`; `pushed`: the data came from a push source that was
    /// admitted by [`has_room`](Self::has_room), so it is queued without evicting.
    fn publish_as(&self, batch: Arc<HeldBatch>, routes: &Routes, pushed: bool) -> usize {
        let types = batch.data_types();
        let list = self.routes.read().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        for r in list.iter().filter(|r| r.accepts.intersects(types)) {
            if routes.as_ref().is_some_and(|rs| !rs.allows(&r.instance)) {
                continue;
            }
            let qb = QueuedBatch::new(batch.clone());
            if pushed {
                r.queue.push_admitted(qb);
            } else {
                r.queue.push(qb);
            }
            n += 1;
        }
        n
    }

    /// Whether every sink `routes` leads to can take more. Push sources ask before
    /// submitting: when a destination is full they get `Full` (backpressure to
    /// their senders) rather than evicting data the agent already accepted.
    /// Polled sources keep submitting: their collections cannot be slowed down, so
    /// the oldest queued data gives way (counted as dropped).
    pub fn has_room(&self, routes: &Routes) -> bool {
        let list = self.routes.read().unwrap_or_else(|e| e.into_inner());
        !list
            .iter()
            .any(|r| routes.as_ref().is_none_or(|rs| rs.allows(&r.instance)) && r.queue.is_full())
    }

    /// What sources call (collected batches and `emit`): batching, agent resource
    /// attributes, then fan-out. `Full` when the batcher cannot keep up.
    pub fn submit(&self, batch: impl Into<HeldBatch>, routes: &Routes) -> EmitStatus {
        self.submit_as(batch.into(), routes, false)
    }

    /// What push sources call (`emit`): `Full`, without taking the batch, while a
    /// destination queue is full ([`has_room`](Self::has_room)); once admitted, the
    /// batch never evicts data the agent accepted earlier.
    pub fn submit_pushed(&self, batch: impl Into<HeldBatch>, routes: &Routes) -> EmitStatus {
        self.submit_pushed_with(routes, || batch)
    }

    /// `submit_pushed` that makes the batch (holding the plugin's library) only
    /// once it is admitted. Answers for an empty batch too, so a push source can ask
    /// before it reads and decodes a request (`emit` of an empty batch).
    pub fn submit_pushed_with<B: Into<HeldBatch>>(
        &self,
        routes: &Routes,
        batch: impl FnOnce() -> B,
    ) -> EmitStatus {
        if !self.has_room(routes) {
            return EmitStatus::Full;
        }
        self.submit_as(batch().into(), routes, true)
    }

    fn submit_as(&self, mut batch: HeldBatch, routes: &Routes, pushed: bool) -> EmitStatus {
        if batch.is_empty() {
            return EmitStatus::Accepted;
        }
        for kv in self.resource.iter() {
            if !batch.resource.attributes.iter().any(|a| a.key == kv.key) {
                batch.resource.attributes.push(kv.clone());
            }
        }
        match &self.batcher {
            Some(tx) => match tx.try_send(Msg::Batch {
                routes: routes.clone(),
                batch,
                pushed,
            }) {
                Ok(()) => EmitStatus::Accepted,
                Err(mpsc::error::TrySendError::Full(_)) => EmitStatus::Full,
                Err(mpsc::error::TrySendError::Closed(_)) => EmitStatus::Closed,
            },
            None => {
                self.publish_as(Arc::new(batch), routes, pushed);
                EmitStatus::Accepted
            }
        }
    }

    /// Publishes everything the batcher holds (before sinks drain at shutdown).
    pub async fn flush(&self) {
        if let Some(tx) = &self.batcher {
            let (ack, done) = tokio::sync::oneshot::channel();
            if tx.send(Msg::Flush(ack)).await.is_ok() {
                let _ = done.await;
            }
        }
    }

    /// `emit` for push sources with all routes.
    pub fn emit(&self, batch: impl Into<HeldBatch>) -> EmitStatus {
        self.submit_pushed(batch, &None)
    }
}

struct Pending {
    routes: Routes,
    batch: HeldBatch,
    /// Part of it came from a push source (queued without evicting).
    pushed: bool,
    since: tokio::time::Instant,
}

async fn run_batcher(out: Pipeline, mut rx: mpsc::Receiver<Msg>, max_items: u64, flush: Duration) {
    let mut pending: Vec<Pending> = Vec::new();
    let mut tick = tokio::time::interval(flush.max(Duration::from_millis(10)) / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            sub = rx.recv() => match sub {
                Some(Msg::Flush(ack)) => {
                    for p in pending.drain(..) {
                        out.publish_as(Arc::new(p.batch), &p.routes, p.pushed);
                    }
                    let _ = ack.send(());
                }
                Some(Msg::Batch { routes, batch, pushed }) => {
                    let slot = pending.iter_mut().position(|p| p.routes == routes && p.batch.resource == batch.resource);
                    let i = match slot {
                        Some(i) => {
                            let p = &mut pending[i];
                            p.batch.absorb(batch);
                            p.pushed |= pushed;
                            i
                        }
                        None => {
                            pending.push(Pending { routes, batch, pushed, since: tokio::time::Instant::now() });
                            pending.len() - 1
                        }
                    };
                    if pending[i].batch.item_count() >= max_items {
                        let p = pending.swap_remove(i);
                        out.publish_as(Arc::new(p.batch), &p.routes, p.pushed);
                    }
                }
                None => {
                    for p in pending.drain(..) {
                        out.publish_as(Arc::new(p.batch), &p.routes, p.pushed);
                    }
                    return;
                }
            },
            _ = tick.tick() => {
                let now = tokio::time::Instant::now();
                let mut i = 0;
                while i < pending.len() {
                    if now.duration_since(pending[i].since) >= flush {
                        let p = pending.swap_remove(i);
                        out.publish_as(Arc::new(p.batch), &p.routes, p.pushed);
                    } else {
                        i += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::InstanceStatus;
    use tfo_plugin_api::Batch;

    fn sink(p: &Pipeline, name: &str) -> Arc<SinkQueue> {
        let q = SinkQueue::new(100, 1 << 20, InstanceStatus::new(name, "x"));
        p.add_sink(name, DataTypes::ALL, q.clone());
        q
    }

    fn batch() -> Arc<HeldBatch> {
        let mut b = Batch::default();
        b.metrics
            .push(tfo_plugin_api::Metric::gauge("m", "1", 1, 1.0, vec![]));
        Arc::new(b.into())
    }

    #[test]
    fn a_source_never_feeds_itself_unless_its_routes_name_it() {
        let p = Pipeline::default();
        let (mqtt, prom) = (sink(&p, "mqtt"), sink(&p, "prom"));
        let from_mqtt: Routes = Some(Arc::new(RouteSet {
            only: None,
            except: Some("mqtt".into()),
        }));
        assert_eq!(p.publish_routed(batch(), &from_mqtt), 1);
        assert_eq!((mqtt.items(), prom.items()), (0, 1));
        let to_itself: Routes = Some(Arc::new(RouteSet {
            only: Some(vec!["mqtt".into()]),
            except: Some("mqtt".into()),
        }));
        assert_eq!(p.publish_routed(batch(), &to_itself), 1);
        assert_eq!((mqtt.items(), prom.items()), (1, 1));
        assert_eq!(p.publish(batch()), 2, "no routes: every sink");
    }

    fn items(n: u64) -> Batch {
        let mut b = Batch::default();
        for i in 0..n {
            b.metrics
                .push(tfo_plugin_api::Metric::gauge("m", "1", 1, i as f64, vec![]));
        }
        b
    }

    #[test]
    fn a_push_source_is_refused_while_a_destination_is_full_and_never_evicts() {
        let p = Pipeline::default();
        let full = sink(&p, "full");
        let other = SinkQueue::new(150, 1 << 20, InstanceStatus::new("other", "x"));
        p.add_sink("other", DataTypes::ALL, other.clone());
        // Polled data fills "full" to its bound (100 items).
        assert_eq!(p.submit(items(100), &None), EmitStatus::Accepted);
        assert!(full.is_full());
        // A push source routed to it is refused; the batch is not taken. An empty
        // batch asks without sending and gets the same answer.
        assert_eq!(p.submit_pushed(items(10), &None), EmitStatus::Full);
        assert_eq!(p.submit_pushed(Batch::default(), &None), EmitStatus::Full);
        assert_eq!((full.items(), other.items()), (100, 100));
        // Routed only to the sink with room, it is accepted.
        let only_other: Routes = Some(Arc::new(RouteSet {
            only: Some(vec!["other".into()]),
            except: None,
        }));
        assert_eq!(
            p.submit_pushed(items(10), &only_other),
            EmitStatus::Accepted
        );
        assert_eq!(other.items(), 110);
        // Admitted push data that overshoots the bound does not evict accepted data.
        assert_eq!(
            p.submit_pushed(items(50), &only_other),
            EmitStatus::Accepted
        );
        assert_eq!(other.items(), 160, "nothing evicted");
        assert_eq!(p.submit_pushed(items(1), &only_other), EmitStatus::Full);
        // Polled data still makes room by evicting the oldest (counted).
        assert_eq!(p.submit(items(10), &None), EmitStatus::Accepted);
        assert_eq!(full.items(), 10, "the oldest batch (100 items) gave way");
        let drained = std::iter::from_fn(|| full.try_pop()).count();
        assert!(drained > 0);
        assert!(!full.is_full());
    }
}
