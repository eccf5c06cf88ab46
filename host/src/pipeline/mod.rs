//! The host pipeline: per-sink bounded queues fed by sources (fan-out shares one
//! `Arc<Batch>`, nothing is copied), and the runners that drive instances.

pub mod queue;
pub mod runner;

use std::sync::{Arc, RwLock};

use tfo_plugin_api::{Batch, DataTypes, EmitStatus};

use queue::{QueuedBatch, SinkQueue};

struct Route {
    instance: String,
    accepts: DataTypes,
    queue: Arc<SinkQueue>,
}

/// Fan-out from sources to sink queues.
#[derive(Clone, Default)]
pub struct Pipeline {
    routes: Arc<RwLock<Vec<Route>>>,
}

impl Pipeline {
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

    /// Queues the batch for every sink that accepts one of its data types; returns
    /// how many sinks got it.
    pub fn publish(&self, batch: Arc<Batch>) -> usize {
        let types = batch.data_types();
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        for r in routes.iter().filter(|r| r.accepts.intersects(types)) {
            r.queue.push(QueuedBatch::new(batch.clone()));
            n += 1;
        }
        n
    }

    /// `emit` for push sources.
    pub fn emit(&self, batch: Batch) -> EmitStatus {
        self.publish(Arc::new(batch));
        EmitStatus::Accepted
    }
}
