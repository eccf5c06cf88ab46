//! The host callbacks handed to each plugin instance: logging under the plugin's
//! name, `emit` with backpressure, and panic reports.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RStr},
};
use tfo_plugin_api::{Batch, EmitStatus, HostHandle, HostServices, LogLevel};

use crate::pipeline::Reclaim;

/// Where emitted batches go; `None` answers `Closed`. It takes the plugin's batch
/// as it is (no copy: the pipeline holds the plugin's library loaded while the
/// batch lives, `pipeline::held`); a refused batch (`Full`) is dropped on return.
pub type EmitTarget = Arc<dyn Fn(Batch) -> EmitStatus + Send + Sync>;

/// Host side of [`HostServices`] for one instance.
#[derive(Clone)]
pub struct InstanceServices {
    plugin: Arc<str>,
    instance: Arc<str>,
    emit: Option<EmitTarget>,
    /// Where the instance's exported batches come back to (sources), and
    /// the instance's library (`pipeline::held::library_id`): only its memory is
    /// handed to it.
    reclaim: Option<(Arc<Reclaim>, usize)>,
    panics: Arc<AtomicU64>,
}

impl InstanceServices {
    /// Builds the FFI handle for an instance.
    pub fn handle(
        plugin: &str,
        instance: &str,
        emit: Option<EmitTarget>,
        panics: Arc<AtomicU64>,
    ) -> HostHandle {
        Self::handle_reclaiming(plugin, instance, emit, None, panics)
    }

    /// [`InstanceServices::handle`] for a source whose emitted (and collected) batches come
    /// back through `reclaim` (`HostServices::reclaimed`) once exported; the
    /// `usize` is the instance's library (`pipeline::held::library_id`).
    pub fn handle_reclaiming(
        plugin: &str,
        instance: &str,
        emit: Option<EmitTarget>,
        reclaim: Option<(Arc<Reclaim>, usize)>,
        panics: Arc<AtomicU64>,
    ) -> HostHandle {
        HostHandle::from_ptr(
            abi_stable::std_types::RArc::new(InstanceServices {
                plugin: plugin.into(),
                instance: instance.into(),
                emit,
                reclaim,
                panics,
            }),
            TD_Opaque,
        )
    }
}

impl HostServices for InstanceServices {
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        let (p, i, t, m) = (
            &*self.plugin,
            &*self.instance,
            target.as_str(),
            message.as_str(),
        );
        match level {
            LogLevel::Trace => tracing::trace!(plugin = p, instance = i, target = t, "{m}"),
            LogLevel::Debug => tracing::debug!(plugin = p, instance = i, target = t, "{m}"),
            LogLevel::Info => tracing::info!(plugin = p, instance = i, target = t, "{m}"),
            LogLevel::Warn => tracing::warn!(plugin = p, instance = i, target = t, "{m}"),
            LogLevel::Error => tracing::error!(plugin = p, instance = i, target = t, "{m}"),
        }
    }

    fn emit(&self, batch: Batch) -> EmitStatus {
        match &self.emit {
            Some(target) => target(batch),
            None => EmitStatus::Closed,
        }
    }

    fn reclaimed(&self) -> ROption<Batch> {
        self.reclaim
            .as_ref()
            .and_then(|(pool, library)| pool.take(*library))
            .into()
    }

    fn report_panic(&self, message: RStr<'_>) {
        self.panics.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            plugin = &*self.plugin,
            instance = &*self.instance,
            "{}",
            message.as_str()
        );
    }
}
