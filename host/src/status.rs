//! Per-integration health and counters, shared by the runners (writers) and the CLI /
//! HTTP API (readers).

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, Mutex,
};

use serde::Serialize;

/// The product description's health state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum State {
    /// `enabled: false`.
    Disabled,
    /// Loading or creating.
    Initializing,
    /// Serving.
    Healthy,
    /// Not serving, see `reason`.
    Unhealthy,
}

/// Identity of the generation an instance currently runs.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct GenerationInfo {
    /// Plugin version.
    pub version: String,
    /// Plugin file in the plugin directory.
    pub file: String,
    /// sha256 of that file.
    pub sha256: String,
    /// Increments on every successful upgrade (first load = 1).
    pub generation: u64,
    /// plugin-api the plugin was built against.
    pub plugin_api_version: String,
}

#[derive(Debug, Clone, Serialize)]
struct Mutable {
    state: State,
    reason: Option<String>,
    last_error: Option<String>,
    gen: GenerationInfo,
}

/// Health and counters of one integration instance.
#[derive(Debug)]
pub struct InstanceStatus {
    /// Instance name.
    pub instance: String,
    /// Plugin name.
    pub plugin: String,
    inner: Mutex<Mutable>,
    /// Items delivered.
    pub items_exported: AtomicU64,
    /// Bytes delivered (approximate, the host's measure of the batch).
    pub bytes_exported: AtomicU64,
    /// Failed calls.
    pub errors: AtomicU64,
    /// Export retries.
    pub retries: AtomicU64,
    /// Items dropped (queue full, permanent errors).
    pub drops: AtomicU64,
    /// Instance restarts after a panic or hang.
    pub restarts: AtomicU64,
    /// Panics caught in the plugin.
    pub panics: Arc<AtomicU64>,
    /// Items collected or received (sources).
    pub items_collected: AtomicU64,
    /// Push-source `emit` calls answered `Full` because a destination queue was
    /// full (batches, and a receiver's probe before it reads a request): the source
    /// tells its sender to retry, or drops and counts.
    pub emits_refused: AtomicU64,
    /// Exported batches handed back to the push source that emitted them, to be
    /// refilled instead of allocated (`HostServices::reclaimed`, ABI 1.2).
    pub batches_reclaimed: Arc<AtomicU64>,
    /// Last export latency, microseconds.
    pub last_export_latency_us: AtomicU64,
    /// Items waiting in the sink queue (kept by the queue).
    pub queued_items: AtomicU64,
    /// Disk-buffer records skipped as damaged (checksum, torn tail, undecodable).
    pub buffer_corrupt: AtomicU64,
}

/// A point-in-time copy for the API.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// Instance name.
    pub instance: String,
    /// Plugin name.
    pub plugin: String,
    /// State.
    pub state: State,
    /// Why not healthy.
    pub reason: Option<String>,
    /// Last error seen (kept after recovery).
    pub last_error: Option<String>,
    /// Current generation.
    #[serde(flatten)]
    pub generation: GenerationInfo,
    /// Items delivered.
    pub items_exported: u64,
    /// Bytes delivered.
    pub bytes_exported: u64,
    /// Errors.
    pub errors: u64,
    /// Retries.
    pub retries: u64,
    /// Drops.
    pub drops: u64,
    /// Restarts.
    pub restarts: u64,
    /// Panics.
    pub panics: u64,
    /// Items collected (sources).
    pub items_collected: u64,
    /// Push-source emits refused because a destination queue was full.
    pub emits_refused: u64,
    /// Exported batches handed back to their push source for reuse.
    pub batches_reclaimed: u64,
    /// Last export latency in seconds.
    pub last_export_latency_seconds: f64,
    /// Items waiting in the sink queue.
    pub queued_items: u64,
    /// Disk-buffer records skipped as damaged.
    pub buffer_corrupt_records: u64,
}

impl InstanceStatus {
    /// A new status in `Initializing`.
    pub fn new(instance: &str, plugin: &str) -> Arc<Self> {
        Arc::new(InstanceStatus {
            instance: instance.into(),
            plugin: plugin.into(),
            inner: Mutex::new(Mutable {
                state: State::Initializing,
                reason: None,
                last_error: None,
                gen: GenerationInfo::default(),
            }),
            items_exported: AtomicU64::new(0),
            bytes_exported: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            panics: Arc::new(AtomicU64::new(0)),
            items_collected: AtomicU64::new(0),
            emits_refused: AtomicU64::new(0),
            batches_reclaimed: Default::default(),
            last_export_latency_us: AtomicU64::new(0),
            queued_items: AtomicU64::new(0),
            buffer_corrupt: AtomicU64::new(0),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut Mutable) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Sets state and reason.
    pub fn set_state(&self, state: State, reason: Option<String>) {
        self.with(|m| {
            m.state = state;
            m.reason = reason;
        });
    }

    /// Healthy, clearing the reason (the last error is kept for operators).
    pub fn healthy(&self) {
        self.set_state(State::Healthy, None);
    }

    /// Unhealthy with a reason, also recorded as last error.
    pub fn unhealthy(&self, reason: String) {
        self.with(|m| {
            m.state = State::Unhealthy;
            m.last_error = Some(reason.clone());
            m.reason = Some(reason);
        });
    }

    /// Records an error without changing the state.
    pub fn record_error(&self, error: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.with(|m| m.last_error = Some(error));
    }

    /// Records a new generation.
    pub fn set_generation(&self, gen: GenerationInfo) {
        self.with(|m| m.gen = gen);
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.with(|m| m.state)
    }

    /// Current generation number.
    pub fn generation(&self) -> u64 {
        self.with(|m| m.gen.generation)
    }

    /// A copy for the API.
    pub fn view(&self) -> StatusView {
        let m = self.with(|m| m.clone());
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatusView {
            instance: self.instance.clone(),
            plugin: self.plugin.clone(),
            state: m.state,
            reason: m.reason,
            last_error: m.last_error,
            generation: m.gen,
            items_exported: get(&self.items_exported),
            bytes_exported: get(&self.bytes_exported),
            errors: get(&self.errors),
            retries: get(&self.retries),
            drops: get(&self.drops),
            restarts: get(&self.restarts),
            panics: get(&self.panics),
            items_collected: get(&self.items_collected),
            emits_refused: get(&self.emits_refused),
            batches_reclaimed: get(&self.batches_reclaimed),
            last_export_latency_seconds: get(&self.last_export_latency_us) as f64 / 1e6,
            queued_items: get(&self.queued_items),
            buffer_corrupt_records: get(&self.buffer_corrupt),
        }
    }
}
