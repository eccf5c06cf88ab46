//! The plugin manager: discovers plugin files, verifies and loads them, runs the
//! configured instances, and hot-swaps them when a file changes (DESIGN.md §5).
//!
//! An upgrade is make-before-break: load and check the new library, create and start
//! a new instance for every configured instance of that plugin, then switch each
//! runner to it between two exports; the old generation is flushed, shut down with a
//! deadline, its thread joined and its library closed. If anything fails before the
//! switch the old generation keeps serving and the failure shows in the instance's
//! status. Reloads are serialised; file events are debounced hints, and the
//! directory is also rescanned periodically.

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex as StdMutex},
    time::Duration,
};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch, Mutex};

use super::{
    files,
    graveyard::{Graveyard, GraveyardStats},
    host_services::{EmitTarget, InstanceServices},
    instance::InstanceWorker,
    library::{self, LoadedLibrary},
};
use crate::{
    pipeline::{
        queue::SinkQueue,
        runner::{
            Control, Respawn, RetryPolicy, RunnerCommon, RunnerHandle, SinkRunner, SourceRunner,
            Timeouts,
        },
        Pipeline,
    },
    status::{GenerationInfo, InstanceStatus, State, StatusView},
};

/// How the manager behaves; the agent config fills it in.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// Directory holding `libtfo_<name>.so` files.
    pub plugin_dir: PathBuf,
    /// Where the private shadow directory is created (a fresh 0700 subdirectory).
    pub shadow_base: PathBuf,
    /// Only load files whose sha256 is listed.
    pub allow_sha256: Option<HashSet<String>>,
    /// Quiet time after the last file event before rescanning.
    pub debounce: Duration,
    /// Periodic rescan, in case an event was missed (zero = off).
    pub rescan_interval: Duration,
    /// Watch the directory for changes.
    pub watch: bool,
    /// Timeouts for plugin calls.
    pub timeouts: Timeouts,
    /// Drain limit when a plugin file is deleted.
    pub drain_timeout: Duration,
    /// Retry policy for sinks.
    pub retry: RetryPolicy,
    /// Per-sink queue limit in items.
    pub queue_max_items: u64,
    /// Per-sink queue limit in bytes.
    pub queue_max_bytes: u64,
}

impl ManagerOptions {
    /// Defaults for a plugin directory.
    pub fn new(plugin_dir: impl Into<PathBuf>) -> Self {
        ManagerOptions {
            plugin_dir: plugin_dir.into(),
            shadow_base: std::env::temp_dir(),
            allow_sha256: None,
            debounce: Duration::from_millis(500),
            rescan_interval: Duration::from_secs(30),
            watch: true,
            timeouts: Timeouts {
                call: Duration::from_secs(30),
                shutdown: Duration::from_secs(5),
            },
            drain_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            queue_max_items: 100_000,
            queue_max_bytes: 64 << 20,
        }
    }
}

/// One configured instance of a plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSpec {
    /// Instance name (the key under `integrations:`).
    pub name: String,
    /// Plugin name.
    pub plugin: String,
    /// The plugin's own config block, handed to `create` as JSON.
    pub config: serde_json::Value,
    /// Collection interval for polling sources.
    pub interval: Duration,
}

/// A file the manager would not load, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Refusal {
    /// The file.
    pub file: PathBuf,
    /// Its sha256, when it could be read.
    pub sha256: Option<String>,
    /// One-line reason.
    pub reason: String,
}

/// A loaded library as listed by `/plugins`.
#[derive(Debug, Clone, Serialize)]
pub struct LibraryView {
    /// Descriptor.
    #[serde(flatten)]
    pub descriptor: library::Descriptor,
    /// File.
    pub file: PathBuf,
    /// sha256.
    pub sha256: String,
    /// ABI identity.
    pub abi: String,
}

struct Running {
    handle: RunnerHandle,
    spec: InstanceSpec,
}

#[derive(Default)]
struct State_ {
    libraries: BTreeMap<String, Arc<LoadedLibrary>>,
    running: BTreeMap<String, Running>,
    specs: BTreeMap<String, InstanceSpec>,
    generations: BTreeMap<String, u64>,
}

struct Inner {
    opts: ManagerOptions,
    shadow: tempfile::TempDir,
    state: Mutex<State_>,
    graveyard: Arc<Graveyard>,
    statuses: StdMutex<BTreeMap<String, Arc<InstanceStatus>>>,
    refused: StdMutex<BTreeMap<PathBuf, Refusal>>,
    scans: watch::Sender<u64>,
    pipeline: Pipeline,
}

/// Handle to the plugin manager (cheap to clone).
#[derive(Clone)]
pub struct PluginManager {
    inner: Arc<Inner>,
}

impl PluginManager {
    /// Creates the manager, runs the first scan, starts the configured instances and
    /// (if enabled) the directory watcher and periodic rescan.
    pub async fn start(
        opts: ManagerOptions,
        specs: Vec<InstanceSpec>,
    ) -> Result<PluginManager, String> {
        if !opts.plugin_dir.is_dir() {
            return Err(format!(
                "plugins.dir {}: not a directory",
                opts.plugin_dir.display()
            ));
        }
        std::fs::create_dir_all(&opts.shadow_base)
            .map_err(|e| format!("shadow directory base {}: {e}", opts.shadow_base.display()))?;
        let shadow = tempfile::Builder::new()
            .prefix("tfo-agent-shadow-")
            .tempdir_in(&opts.shadow_base)
            .map_err(|e| {
                format!(
                    "cannot create shadow directory in {}: {e}",
                    opts.shadow_base.display()
                )
            })?;
        let (scans, _) = watch::channel(0);
        let mut state = State_::default();
        let statuses = StdMutex::new(BTreeMap::new());
        for s in specs {
            let mut s = s;
            s.plugin = files::normalize_name(&s.plugin);
            statuses
                .lock()
                .unwrap()
                .insert(s.name.clone(), InstanceStatus::new(&s.name, &s.plugin));
            state.specs.insert(s.name.clone(), s);
        }
        let mgr = PluginManager {
            inner: Arc::new(Inner {
                opts,
                shadow,
                state: Mutex::new(state),
                graveyard: Arc::new(Graveyard::default()),
                statuses,
                refused: StdMutex::new(BTreeMap::new()),
                scans,
                pipeline: Pipeline::default(),
            }),
        };
        mgr.rescan().await;
        if mgr.inner.opts.watch {
            mgr.spawn_watcher()?;
        }
        if !mgr.inner.opts.rescan_interval.is_zero() {
            let weak = Arc::downgrade(&mgr.inner);
            let every = mgr.inner.opts.rescan_interval;
            tokio::spawn(async move {
                let mut t = tokio::time::interval(every);
                t.tick().await;
                loop {
                    t.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    PluginManager { inner }.rescan().await;
                }
            });
        }
        Ok(mgr)
    }

    /// The pipeline sources publish into (tests and the agent's own producers).
    pub fn pipeline(&self) -> &Pipeline {
        &self.inner.pipeline
    }

    /// The private directory holding shadow copies.
    pub fn shadow_dir(&self) -> &Path {
        self.inner.shadow.path()
    }

    /// Subscribes to the number of completed scans (a signal for tests and the API).
    pub fn scans(&self) -> watch::Receiver<u64> {
        self.inner.scans.subscribe()
    }

    /// Status of one instance.
    pub fn status(&self, instance: &str) -> Option<StatusView> {
        self.inner
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(instance)
            .map(|s| s.view())
    }

    /// Status of every configured instance.
    pub fn statuses(&self) -> Vec<StatusView> {
        self.inner
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|s| s.view())
            .collect()
    }

    /// Files refused at the last scans.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.inner
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Retired-library counters.
    pub fn graveyard(&self) -> GraveyardStats {
        self.inner.graveyard.stats()
    }

    /// Libraries currently serving.
    pub async fn libraries(&self) -> Vec<LibraryView> {
        let st = self.inner.state.lock().await;
        st.libraries
            .values()
            .map(|l| LibraryView {
                descriptor: l.descriptor.clone(),
                file: l.source_path.clone(),
                sha256: l.sha256.clone(),
                abi: l.abi_info.clone(),
            })
            .collect()
    }

    /// Items queued for a sink instance.
    pub async fn queued_batches(&self, instance: &str) -> Vec<Arc<tfo_plugin_api::Batch>> {
        let st = self.inner.state.lock().await;
        st.running
            .get(instance)
            .and_then(|r| r.handle.queue.as_ref())
            .map(|q| q.snapshot())
            .unwrap_or_default()
    }

    fn status_of(&self, instance: &str) -> Arc<InstanceStatus> {
        self.inner
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(instance)
            .cloned()
            .expect("status exists for every spec")
    }

    fn refuse(&self, file: &Path, sha256: Option<String>, reason: String) {
        let mut refused = self.inner.refused.lock().unwrap_or_else(|e| e.into_inner());
        let r = Refusal {
            file: file.to_path_buf(),
            sha256,
            reason,
        };
        if refused.get(file) != Some(&r) {
            tracing::warn!(file = %file.display(), "plugin refused: {}", r.reason);
            refused.insert(file.to_path_buf(), r);
        }
    }

    /// Compares the directory with what is loaded and applies the difference: new
    /// plugins start, changed ones are upgraded, deleted ones drain and stop. One scan
    /// at a time; concurrent callers wait and then scan again (cheap when unchanged).
    pub async fn rescan(&self) {
        let mut st = self.inner.state.lock().await;
        let opts = &self.inner.opts;
        let candidates = match files::candidates(&opts.plugin_dir) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(dir = %opts.plugin_dir.display(), "cannot read plugin directory: {e}");
                self.inner.scans.send_modify(|n| *n += 1);
                return;
            }
        };
        let present: HashSet<PathBuf> = candidates.iter().map(|(_, p)| p.clone()).collect();
        self.inner
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p, _| present.contains(p));

        // name -> files claiming it, and newly loaded libraries
        let mut claims: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        let mut fresh: BTreeMap<String, Vec<LoadedLibrary>> = BTreeMap::new();
        for (_, path) in &candidates {
            let trusted = match files::trust(path, opts.allow_sha256.as_ref()) {
                Ok(t) => t,
                Err(reason) => {
                    self.refuse(path, None, reason);
                    continue;
                }
            };
            if let Some(lib) = st
                .libraries
                .values()
                .find(|l| l.source_path == *path && l.sha256 == trusted.sha256)
            {
                claims
                    .entry(files::normalize_name(&lib.descriptor.name))
                    .or_default()
                    .push(path.clone());
                continue;
            }
            let known_bad = self
                .inner
                .refused
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(path)
                .is_some_and(|r| r.sha256.as_deref() == Some(&trusted.sha256));
            if known_bad {
                continue;
            }
            let sha256 = trusted.sha256.clone();
            let shadow = self.inner.shadow.path().to_path_buf();
            let loaded =
                tokio::task::spawn_blocking(move || library::load_on_fresh_thread(trusted, shadow))
                    .await
                    .unwrap_or_else(|e| {
                        Err(library::LoadError(format!("loader task failed: {e}")))
                    });
            match loaded {
                Ok(lib) => {
                    let name = files::normalize_name(&lib.descriptor.name);
                    self.inner
                        .refused
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(path);
                    claims.entry(name.clone()).or_default().push(path.clone());
                    fresh.entry(name).or_default().push(lib);
                }
                Err(e) => self.refuse(path, Some(sha256), e.0),
            }
        }

        // Two files claiming one name: neither new one wins.
        for (name, paths) in &claims {
            if paths.len() > 1 {
                let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                let reason = format!(
                    "duplicate plugin name {name:?}: claimed by {}",
                    list.join(" and ")
                );
                for p in paths {
                    self.refuse(p, None, reason.clone());
                }
                if let Some(libs) = fresh.remove(name) {
                    for l in libs {
                        l.unload();
                    }
                }
                self.note_plugin_problem(&st, name, &reason);
            }
        }

        for (name, mut libs) in fresh {
            let lib = Arc::new(libs.pop().expect("one library per name"));
            self.install_library(&mut st, &name, lib).await;
        }

        // Files that disappeared: drain and stop their instances.
        let gone: Vec<String> = st
            .libraries
            .iter()
            .filter(|(_, l)| !present.contains(&l.source_path))
            .map(|(n, _)| n.clone())
            .collect();
        for name in gone {
            let lib = st.libraries.remove(&name).expect("listed");
            tracing::info!(plugin = %name, file = %lib.source_path.display(), "plugin file removed: draining and stopping its instances");
            let instances: Vec<String> = st
                .running
                .iter()
                .filter(|(_, r)| r.spec.plugin == name)
                .map(|(n, _)| n.clone())
                .collect();
            for inst in instances {
                let r = st.running.remove(&inst).expect("listed");
                self.stop_running(r, true).await;
                self.status_of(&inst).set_state(
                    State::Unhealthy,
                    Some(format!(
                        "plugin file {} was removed",
                        lib.source_path.display()
                    )),
                );
            }
            self.inner.graveyard.bury(lib);
        }

        // Instances whose plugin is missing.
        for spec in st.specs.values() {
            if !st.libraries.contains_key(&spec.plugin) && !st.running.contains_key(&spec.name) {
                let status = self.status_of(&spec.name);
                if status.state() != State::Unhealthy {
                    let file = opts.plugin_dir.join(files::file_name_for(&spec.plugin));
                    status.unhealthy(format!(
                        "plugin {:?} not loaded: no usable {}",
                        spec.plugin,
                        file.display()
                    ));
                }
            }
        }
        self.inner.graveyard.collect();
        drop(st);
        self.inner.scans.send_modify(|n| *n += 1);
    }

    fn note_plugin_problem(&self, st: &State_, plugin: &str, reason: &str) {
        for spec in st.specs.values().filter(|s| s.plugin == plugin) {
            self.status_of(&spec.name).record_error(reason.to_string());
        }
    }

    /// Starts or upgrades every instance of `name` on `lib`. Each instance moves on
    /// its own: one whose new instance fails to start keeps its previous generation
    /// (or stays unhealthy when it had none). A library no instance can use is
    /// refused until its file changes.
    async fn install_library(&self, st: &mut State_, name: &str, lib: Arc<LoadedLibrary>) {
        let specs: Vec<InstanceSpec> = st
            .specs
            .values()
            .filter(|s| s.plugin == name)
            .cloned()
            .collect();
        let mut created = Vec::new();
        let mut last_failure = None;
        for spec in &specs {
            match self.create_started(&lib, spec).await {
                Ok(w) => created.push((spec.clone(), w)),
                Err(e) => {
                    let why = format!(
                        "{} {} (sha256 {}) failed to start: {e}",
                        lib.descriptor.name,
                        lib.descriptor.version,
                        &lib.sha256[..16]
                    );
                    tracing::error!(instance = %spec.name, "{why}");
                    let status = self.status_of(&spec.name);
                    if st.running.contains_key(&spec.name) {
                        status.record_error(format!(
                            "upgrade refused, previous generation keeps serving: {why}"
                        ));
                    } else {
                        status.unhealthy(why);
                    }
                    last_failure = Some(e);
                }
            }
        }
        if created.is_empty() && !specs.is_empty() {
            // Remember the file so it is not retried until it changes.
            let e = last_failure.unwrap_or_default();
            self.refuse(
                &lib.source_path,
                Some(lib.sha256.clone()),
                format!("no instance could start: {e}"),
            );
            self.inner.graveyard.bury(lib);
            return;
        }
        let old = st.libraries.insert(name.to_string(), lib.clone());
        if let Some(old) = &old {
            tracing::info!(plugin = name, from = %old.descriptor.version, to = %lib.descriptor.version, sha256 = %lib.sha256, "upgrading");
        } else {
            tracing::info!(plugin = name, version = %lib.descriptor.version, sha256 = %lib.sha256, "loaded");
        }
        for (spec, worker) in created {
            let g = st.generations.entry(spec.name.clone()).or_insert(0);
            *g += 1;
            let gen = GenerationInfo {
                version: lib.descriptor.version.clone(),
                file: lib.source_path.display().to_string(),
                sha256: lib.sha256.clone(),
                generation: *g,
                plugin_api_version: lib.descriptor.plugin_api_version.clone(),
            };
            match st.running.get(&spec.name) {
                Some(r) => {
                    let (tx, rx) = oneshot::channel();
                    if r.handle
                        .control
                        .send(Control::Upgrade(worker, gen, tx))
                        .await
                        .is_ok()
                    {
                        let _ = rx.await;
                    }
                }
                None => {
                    let handle = self.spawn_runner(&spec, &lib, worker, gen);
                    st.running
                        .insert(spec.name.clone(), Running { handle, spec });
                }
            }
        }
        if let Some(old) = old {
            self.inner.graveyard.bury(old);
        }
    }

    async fn create_started(
        &self,
        lib: &Arc<LoadedLibrary>,
        spec: &InstanceSpec,
    ) -> Result<InstanceWorker, String> {
        create_and_start(
            lib.clone(),
            spec,
            self.emit_target(lib),
            self.status_of(&spec.name),
            self.inner.opts.timeouts.call,
        )
        .await
    }

    fn emit_target(&self, lib: &LoadedLibrary) -> Option<EmitTarget> {
        if !lib.descriptor.kind_enum.is_source() {
            return None;
        }
        let p = self.inner.pipeline.clone();
        Some(Arc::new(move |b| p.emit(b)))
    }

    fn spawn_runner(
        &self,
        spec: &InstanceSpec,
        lib: &Arc<LoadedLibrary>,
        worker: InstanceWorker,
        gen: GenerationInfo,
    ) -> RunnerHandle {
        let status = self.status_of(&spec.name);
        status.set_generation(gen);
        status.healthy();
        let opts = &self.inner.opts;
        let respawn: Respawn = {
            let spec = spec.clone();
            let emit = self.emit_target(lib);
            let status = status.clone();
            let timeout = opts.timeouts.call;
            Arc::new(move |lib| {
                let spec = spec.clone();
                let emit = emit.clone();
                let status = status.clone();
                Box::pin(async move { create_and_start(lib, &spec, emit, status, timeout).await })
            })
        };
        let common = RunnerCommon {
            status: status.clone(),
            timeouts: opts.timeouts.clone(),
            graveyard: self.inner.graveyard.clone(),
            respawn,
        };
        let (tx, rx) = mpsc::channel(8);
        if lib.descriptor.kind_enum.is_sink() {
            let queue = SinkQueue::new(opts.queue_max_items, opts.queue_max_bytes, status.clone());
            self.inner.pipeline.add_sink(
                &spec.name,
                lib.descriptor.data_types_flags,
                queue.clone(),
            );
            let runner = SinkRunner {
                common,
                worker,
                queue: queue.clone(),
                retry: opts.retry.clone(),
            };
            RunnerHandle {
                control: tx,
                status,
                queue: Some(queue),
                task: tokio::spawn(runner.run(rx)),
            }
        } else {
            let runner = SourceRunner {
                common,
                worker,
                interval: spec.interval,
                pipeline: self.inner.pipeline.clone(),
            };
            RunnerHandle {
                control: tx,
                status,
                queue: None,
                task: tokio::spawn(runner.run(rx)),
            }
        }
    }

    async fn stop_running(&self, r: Running, drain: bool) -> u64 {
        self.inner.pipeline.remove_sink(&r.spec.name);
        let (tx, rx) = oneshot::channel();
        let left = if r
            .handle
            .control
            .send(Control::Stop {
                drain,
                deadline: self.inner.opts.drain_timeout,
                reply: tx,
            })
            .await
            .is_ok()
        {
            rx.await.unwrap_or(0)
        } else {
            0
        };
        let _ = r.handle.task.await;
        if left > 0 {
            r.handle
                .status
                .drops
                .fetch_add(left, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(instance = %r.spec.name, items = left, "stopped with undelivered items (dropped)");
        }
        left
    }

    /// Stops every instance (draining sinks within the drain timeout) and closes every
    /// library. Returns the items left undelivered.
    pub async fn shutdown(&self) -> u64 {
        let mut st = self.inner.state.lock().await;
        let running = std::mem::take(&mut st.running);
        let mut left = 0;
        for (_, r) in running {
            left += self.stop_running(r, true).await;
        }
        for (_, lib) in std::mem::take(&mut st.libraries) {
            self.inner.graveyard.bury(lib);
        }
        self.inner.graveyard.collect();
        left
    }

    fn spawn_watcher(&self) -> Result<(), String> {
        use notify::{RecursiveMode, Watcher};
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev {
                let relevant = ev.paths.iter().any(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| files::plugin_name_of(n).is_some())
                });
                if relevant {
                    let _ = tx.send(());
                }
            }
        })
        .map_err(|e| format!("cannot watch plugin directory: {e}"))?;
        watcher
            .watch(&self.inner.opts.plugin_dir, RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch {}: {e}", self.inner.opts.plugin_dir.display()))?;
        let weak = Arc::downgrade(&self.inner);
        let debounce = self.inner.opts.debounce;
        tokio::spawn(async move {
            let _watcher = watcher; // lives as long as this task
            while rx.recv().await.is_some() {
                // Debounce: wait for a quiet period, merging every event in it.
                loop {
                    match tokio::time::timeout(debounce, rx.recv()).await {
                        Ok(Some(())) => continue,
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                let Some(inner) = weak.upgrade() else { return };
                PluginManager { inner }.rescan().await;
            }
        });
        Ok(())
    }
}

async fn create_and_start(
    lib: Arc<LoadedLibrary>,
    spec: &InstanceSpec,
    emit: Option<EmitTarget>,
    status: Arc<InstanceStatus>,
    timeout: Duration,
) -> Result<InstanceWorker, String> {
    let host = InstanceServices::handle(
        &lib.descriptor.name,
        &spec.name,
        emit,
        status.panics.clone(),
    );
    let config = serde_json::to_string(&spec.config).map_err(|e| e.to_string())?;
    let worker = InstanceWorker::spawn(lib, &spec.name, config, host)
        .await
        .map_err(|f| format!("create: {f}"))?;
    match worker.start(timeout).await {
        Ok(()) => Ok(worker),
        Err(e) => Err(format!("start: {e}")),
    }
}
