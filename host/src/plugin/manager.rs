//! The plugin manager: discovers plugin files, verifies and loads them, runs the
//! configured instances, and hot-swaps them when a file changes (DESIGN.md §5).
//!
//! An upgrade is make-before-break: load and check the new library, create and start
//! a new instance for every configured instance of that plugin, then switch each
//! runner to it between two exports; the old generation is flushed, shut down with a
//! deadline, its thread joined and its library closed. If anything fails before the
//! switch the old generation keeps serving and the failure shows in the instance's
//! status. Reloads are serialised; file events are debounced hints, and the
//! directory is also read again periodically.

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex as StdMutex, Weak},
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
    shadow_cache::ShadowCache,
};
use crate::{
    pipeline::{
        queue::SinkQueue,
        runner::{
            Control, Respawn, RetryPolicy, RunnerCommon, RunnerHandle, SinkRunner, SourceRunner,
            Timeouts,
        },
        HeldBatch, Pipeline, Reclaim,
    },
    status::{GenerationInfo, InstanceStatus, State, StatusView},
};

/// How often retired libraries still held by queued batches are checked again.
const GRAVEYARD_SWEEP: std::time::Duration = std::time::Duration::from_millis(250);

/// How the manager behaves; the agent config fills it in.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// Directory holding `libtfo_<name>.so` files (`tfo_<name>.dll` on Windows).
    pub plugin_dir: PathBuf,
    /// Where the private shadow directory is created (a fresh 0700 subdirectory).
    pub shadow_base: PathBuf,
    /// The shadow cache directory, kept across restarts so unchanged plugin files
    /// are not read, hashed and copied again ([`super::shadow_cache`]); `None` = off.
    pub shadow_cache: Option<PathBuf>,
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
    /// Batching: flush at this many items...
    pub batch_max_items: u64,
    /// ...or at this age (zero = no batching: sources publish directly).
    pub flush_interval: Duration,
    /// Resource attributes added to every collected batch (host.name, agent id, tags).
    pub resource: Vec<tfo_plugin_api::KeyValue>,
    /// Back every sink queue with a write-ahead log (`pipeline.buffer: disk`).
    pub disk_buffer: Option<DiskBufferOptions>,
}

/// `pipeline.disk_buffer` as the manager uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskBufferOptions {
    /// Parent directory; each sink instance gets `<base>/<instance>`.
    pub base: PathBuf,
    /// Size cap per sink.
    pub max_bytes: u64,
    /// Sync every appended batch.
    pub fsync: bool,
}

impl ManagerOptions {
    /// Defaults for a plugin directory.
    pub fn new(plugin_dir: impl Into<PathBuf>) -> Self {
        ManagerOptions {
            plugin_dir: plugin_dir.into(),
            shadow_base: std::env::temp_dir(),
            shadow_cache: None,
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
            batch_max_items: 1000,
            flush_interval: Duration::ZERO,
            resource: Vec::new(),
            disk_buffer: None,
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
    /// For sources: the sinks it feeds (`None` = all).
    pub routes: Option<Vec<String>>,
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
    /// The copy that is mapped: a private one, or the shadow cache's.
    pub shadow: PathBuf,
    /// True when the file was not read for this load: the shadow cache knew it
    /// unchanged since its copy was kept (`plugins.shadow_cache`).
    pub cached: bool,
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
    cache: Option<Arc<ShadowCache>>,
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
        let mgr = Self::prepare(opts, specs)?;
        mgr.load().await?;
        Ok(mgr)
    }

    /// The first half of [`start`](Self::start): checks the directories and sets
    /// up the pipeline and every instance's status (`Initializing`), without
    /// loading anything. The agent starts its status API between `prepare` and
    /// [`load`](Self::load), so the API answers while plugins load. Needs a tokio
    /// runtime (the batcher task).
    pub fn prepare(
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
        let cache = opts.shadow_cache.as_deref().and_then(|dir| {
            match ShadowCache::open(dir) {
                Ok(Some(c)) => Some(c),
                Ok(None) => {
                    tracing::info!(dir = %dir.display(), "plugin cache in use by another agent (or unsupported here): loading private copies");
                    None
                }
                Err(e) => {
                    tracing::warn!("plugin cache not used: {e}");
                    None
                }
            }
        });
        let (scans, _) = watch::channel(0);
        let pipeline = if opts.flush_interval.is_zero() {
            Pipeline::default()
        } else {
            Pipeline::with_batching(crate::pipeline::BatchSettings {
                max_items: opts.batch_max_items,
                flush_interval: opts.flush_interval,
                resource: opts.resource.clone(),
            })
        };
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
                cache,
                state: Mutex::new(state),
                graveyard: Arc::new(Graveyard::default()),
                statuses,
                refused: StdMutex::new(BTreeMap::new()),
                scans,
                pipeline,
            }),
        };
        Ok(mgr)
    }

    /// The second half of [`start`](Self::start): watches the plugin directory,
    /// loads every plugin file and starts the configured instances, then rescans
    /// periodically. The watch starts first so a file replaced during the first
    /// scan is not missed.
    pub async fn load(&self) -> Result<(), String> {
        let mgr = self;
        if mgr.inner.opts.watch {
            mgr.spawn_watcher()?;
        }
        mgr.rescan().await;
        mgr.spawn_graveyard_sweeper();
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
        Ok(())
    }

    /// Closes retired libraries once the last batch holding one is dropped
    /// (`pipeline::held`): a retired plugin's queued data is delivered first, then
    /// its library is closed, within a sweep (`GRAVEYARD_SWEEP`) of that.
    fn spawn_graveyard_sweeper(&self) {
        let weak = Arc::downgrade(&self.inner);
        let graveyard = self.inner.graveyard.clone();
        tokio::spawn(async move {
            loop {
                graveyard.wait_pending().await;
                tokio::time::sleep(GRAVEYARD_SWEEP).await;
                // The manager is gone: the agent is stopping.
                if weak.strong_count() == 0 {
                    return;
                }
                graveyard.collect();
            }
        });
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
                shadow: l.shadow_path.clone(),
                cached: l.cached,
            })
            .collect()
    }

    /// Items queued for a sink instance.
    pub async fn queued_batches(&self, instance: &str) -> Vec<Arc<HeldBatch>> {
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
        // Reading and hashing every file, then copying and loading the new ones, run
        // in parallel (bounded by the cores): at start-up with 25 plugins that is most
        // of the time to ready. Results are handled in directory order as before.
        let limit = Arc::new(tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8)),
        ));
        let checks: Vec<_> = candidates
            .iter()
            .map(|(_, path)| {
                let (path, allow, limit) = (path.clone(), opts.allow_sha256.clone(), limit.clone());
                let cache = self.inner.cache.clone();
                tokio::spawn(async move {
                    let _permit = limit.acquire_owned().await;
                    tokio::task::spawn_blocking(move || {
                        files::trust_with_cache(&path, allow.as_ref(), cache.as_deref())
                    })
                    .await
                    .unwrap_or_else(|e| Err(format!("trust check failed: {e}")))
                })
            })
            .collect();
        let mut to_load = Vec::new();
        for ((_, path), check) in candidates.iter().zip(checks) {
            let trusted = match check
                .await
                .unwrap_or_else(|e| Err(format!("trust check failed: {e}")))
            {
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
            let (limit, cache) = (limit.clone(), self.inner.cache.clone());
            let load = tokio::spawn(async move {
                let _permit = limit.acquire_owned().await;
                tokio::task::spawn_blocking(move || {
                    library::load_on_fresh_thread(trusted, shadow, cache)
                })
                .await
                .unwrap_or_else(|e| Err(library::LoadError(format!("loader task failed: {e}"))))
            });
            to_load.push((path.clone(), sha256, load));
        }
        for (path, sha256, load) in to_load {
            let loaded = load
                .await
                .unwrap_or_else(|e| Err(library::LoadError(format!("loader task failed: {e}"))));
            match loaded {
                Ok(lib) => {
                    let name = files::normalize_name(&lib.descriptor.name);
                    self.inner
                        .refused
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&path);
                    claims.entry(name.clone()).or_default().push(path.clone());
                    fresh.entry(name).or_default().push(lib);
                }
                Err(e) => self.refuse(&path, Some(sha256), e.0),
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

        // Every instance of every new library is created and started at the same
        // time (each on its own thread); then they are installed one by one.
        let mut creating = Vec::new();
        for (name, mut libs) in fresh {
            let lib = Arc::new(libs.pop().expect("one library per name"));
            let specs: Vec<InstanceSpec> = st
                .specs
                .values()
                .filter(|s| s.plugin == name)
                .cloned()
                .collect();
            let starts: Vec<_> = specs
                .iter()
                .map(|spec| {
                    let (mgr, lib, spec) = (self.clone(), lib.clone(), spec.clone());
                    tokio::spawn(async move { mgr.create_started(&lib, &spec).await })
                })
                .collect();
            creating.push((name, lib, specs, starts));
        }
        for (name, lib, specs, starts) in creating {
            let mut created = Vec::with_capacity(starts.len());
            for start in starts {
                created.push(
                    start
                        .await
                        .unwrap_or_else(|e| Err(format!("start task failed: {e}"))),
                );
            }
            self.install_library(&mut st, &name, lib, specs, created)
                .await;
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
        // Under the state lock: a copy is never deleted while another scan is
        // between finding it and loading it.
        if let Some(cache) = &self.inner.cache {
            cache.retain(&present);
        }
        drop(st);
        self.inner.scans.send_modify(|n| *n += 1);
    }

    fn note_plugin_problem(&self, st: &State_, plugin: &str, reason: &str) {
        for spec in st.specs.values().filter(|s| s.plugin == plugin) {
            self.status_of(&spec.name).record_error(reason.to_string());
        }
    }

    /// Installs `lib` for every instance of `name` (`specs`), given the outcome of
    /// creating and starting each one on it (`started`, same order), done
    /// concurrently by the caller: running instances are upgraded, new ones get a
    /// runner. Each instance moves on its own: one whose new instance fails to start keeps its previous generation
    /// (or stays unhealthy when it had none). A library no instance can use is
    /// refused until its file changes.
    async fn install_library(
        &self,
        st: &mut State_,
        name: &str,
        lib: Arc<LoadedLibrary>,
        specs: Vec<InstanceSpec>,
        started: Vec<Result<InstanceWorker, String>>,
    ) {
        let mut created = Vec::new();
        let mut last_failure = None;
        for (spec, result) in specs.iter().zip(started) {
            match result {
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
            tracing::info!(plugin = name, version = %lib.descriptor.version, sha256 = %lib.sha256, cached = lib.cached, "loaded");
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
            self.emit_target(lib, spec),
            self.status_of(&spec.name),
            self.inner.opts.timeouts.call,
        )
        .await
    }

    fn emit_target(&self, lib: &Arc<LoadedLibrary>, spec: &InstanceSpec) -> Option<Emitter> {
        if !lib.descriptor.kind_enum.is_source() {
            return None;
        }
        let p = self.inner.pipeline.clone();
        let routes = routes_of(spec);
        let status = self.status_of(&spec.name);
        // Weak: the instance's host handle must not keep its own library loaded.
        let library = Arc::downgrade(lib);
        // The pool of the instance now using this target (set by `spawn_instance`;
        // a respawned instance gets a pool of its own).
        let pool: Arc<StdMutex<Weak<Reclaim>>> = Arc::default();
        let back = pool.clone();
        let handed_back = status.batches_reclaimed.clone();
        let target: EmitTarget = Arc::new(move |b: tfo_plugin_api::Batch| {
            let n = b.item_count();
            let r = if b.is_empty() {
                // A probe (a receiver asking before it reads a request, repeated
                // while it waits for room): nothing to hold, no library to keep.
                p.submit_pushed(HeldBatch::own(b), &routes)
            } else {
                p.submit_pushed_with(&routes, || match library.upgrade() {
                    // The batch stays the plugin's memory; the library stays
                    // loaded until the batch is dropped, and then the batch goes
                    // back to the instance if it asks for such.
                    Some(lib) => HeldBatch::from_plugin(b, lib)
                        .returning_to(back.lock().unwrap_or_else(|e| e.into_inner()).clone()),
                    // Only a plugin emitting after its instance was dropped gets
                    // here: a copy into host memory.
                    None => HeldBatch::own(b.clone()),
                })
            };
            match r {
                tfo_plugin_api::EmitStatus::Accepted => status
                    .items_collected
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed),
                tfo_plugin_api::EmitStatus::Full => status
                    .emits_refused
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                tfo_plugin_api::EmitStatus::Closed => 0,
            };
            r
        });
        Some(Emitter {
            target,
            pool,
            handed_back,
        })
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
            let emit = self.emit_target(lib, spec);
            let spec = spec.clone();
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
            let queue = sink_queue(opts, &spec.name, &status);
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
                routes: routes_of(spec),
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

    /// `stop_running` for several instances concurrently; the items left.
    async fn stop_all(&self, list: Vec<Running>, drain: bool) -> u64 {
        let stops: Vec<_> = list
            .into_iter()
            .map(|r| {
                let mgr = self.clone();
                tokio::spawn(async move { mgr.stop_running(r, drain).await })
            })
            .collect();
        let mut left = 0;
        for s in stops {
            left += s.await.unwrap_or(0);
        }
        left
    }

    /// Stops every instance and closes every library: sources first, then the
    /// batcher is flushed, then each sink drains its queue within the drain timeout.
    /// Returns the items left undelivered.
    pub async fn shutdown(&self) -> u64 {
        let mut st = self.inner.state.lock().await;
        let running = std::mem::take(&mut st.running);
        let (sources, sinks): (Vec<_>, Vec<_>) = running
            .into_values()
            .partition(|r| r.handle.queue.is_none());
        // All sources stop at once, then all sinks drain at once: the drain
        // deadline applies to each sink in parallel, so stopping takes at most about
        // one `shutdown_timeout`, not one per sink (a service manager would kill an
        // agent whose 20 unreachable sinks drained one after the other).
        self.stop_all(sources, false).await;
        self.inner.pipeline.flush().await;
        let left = self.stop_all(sinks, true).await;
        for (_, lib) in std::mem::take(&mut st.libraries) {
            self.inner.graveyard.bury(lib);
        }
        self.inner.graveyard.collect();
        left
    }

    /// Shows these integrations as `Disabled` in health and the API.
    pub fn mark_disabled(&self, names: &[String]) {
        let mut statuses = self
            .inner
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        statuses.retain(|_, s| s.state() != State::Disabled);
        for n in names {
            if !statuses.contains_key(n) {
                let s = InstanceStatus::new(n, "");
                s.set_state(State::Disabled, None);
                statuses.insert(n.clone(), s);
            }
        }
    }

    /// Applies a new set of instance specs (config reload). Unchanged instances are
    /// not touched. A sink whose plugin config changed gets a new instance through
    /// the upgrade path (its queue is kept); a changed source is restarted (it holds
    /// no data); removed ones drain and stop; new ones start. A new config a plugin
    /// refuses leaves the previous instance running and is reported. Returns one
    /// line per change.
    pub async fn apply_specs(&self, specs: Vec<InstanceSpec>) -> Vec<String> {
        let mut st = self.inner.state.lock().await;
        let mut report = Vec::new();
        let mut new: BTreeMap<String, InstanceSpec> = BTreeMap::new();
        for mut s in specs {
            s.plugin = files::normalize_name(&s.plugin);
            new.insert(s.name.clone(), s);
        }
        let removed: Vec<String> = st
            .specs
            .keys()
            .filter(|k| !new.contains_key(*k))
            .cloned()
            .collect();
        for name in removed {
            st.specs.remove(&name);
            if let Some(r) = st.running.remove(&name) {
                self.stop_running(r, true).await;
            }
            self.inner
                .statuses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name);
            report.push(format!("{name}: removed"));
        }
        for (name, spec) in new {
            let old = st.specs.get(&name).cloned();
            if old.as_ref() == Some(&spec) {
                continue;
            }
            {
                let mut statuses = self
                    .inner
                    .statuses
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let fresh = statuses
                    .get(&name)
                    .is_none_or(|s| s.state() == State::Disabled || s.plugin != spec.plugin);
                if fresh {
                    statuses.insert(name.clone(), InstanceStatus::new(&name, &spec.plugin));
                }
            }
            let Some(lib) = st.libraries.get(&spec.plugin).cloned() else {
                if let Some(r) = st.running.remove(&name) {
                    self.stop_running(r, true).await;
                }
                st.specs.insert(name.clone(), spec.clone());
                let file = self
                    .inner
                    .opts
                    .plugin_dir
                    .join(files::file_name_for(&spec.plugin));
                self.status_of(&name).unhealthy(format!(
                    "plugin {:?} not loaded: no usable {}",
                    spec.plugin,
                    file.display()
                ));
                report.push(format!("{name}: plugin {} not loaded", spec.plugin));
                continue;
            };
            let running_same_plugin = st
                .running
                .get(&name)
                .is_some_and(|r| r.spec.plugin == spec.plugin);
            let is_sink = lib.descriptor.kind_enum.is_sink();
            match self.create_started(&lib, &spec).await {
                Ok(worker) if running_same_plugin && is_sink => {
                    let gen = self.next_generation(&mut st, &name, &lib);
                    let r = st.running.get_mut(&name).expect("running");
                    let (tx, rx) = oneshot::channel();
                    if r.handle
                        .control
                        .send(Control::Upgrade(worker, gen, tx))
                        .await
                        .is_ok()
                    {
                        let _ = rx.await;
                    }
                    r.spec = spec.clone();
                    st.specs.insert(name.clone(), spec);
                    report.push(format!("{name}: reconfigured (queue kept)"));
                }
                Ok(worker) => {
                    if let Some(r) = st.running.remove(&name) {
                        self.stop_running(r, true).await;
                    }
                    let gen = self.next_generation(&mut st, &name, &lib);
                    let handle = self.spawn_runner(&spec, &lib, worker, gen);
                    st.running.insert(
                        name.clone(),
                        Running {
                            handle,
                            spec: spec.clone(),
                        },
                    );
                    st.specs.insert(name.clone(), spec);
                    report.push(format!(
                        "{name}: {}",
                        if old.is_some() {
                            "restarted with the new config"
                        } else {
                            "started"
                        }
                    ));
                }
                Err(e) => {
                    let status = self.status_of(&name);
                    if st.running.contains_key(&name) {
                        status.record_error(format!(
                            "new config refused, previous config keeps serving: {e}"
                        ));
                        report.push(format!(
                            "{name}: new config refused, previous config keeps serving: {e}"
                        ));
                    } else {
                        st.specs.insert(name.clone(), spec);
                        status.unhealthy(format!("cannot start: {e}"));
                        report.push(format!("{name}: cannot start: {e}"));
                    }
                }
            }
        }
        report
    }

    fn next_generation(&self, st: &mut State_, name: &str, lib: &LoadedLibrary) -> GenerationInfo {
        let g = st.generations.entry(name.to_string()).or_insert(0);
        *g += 1;
        GenerationInfo {
            version: lib.descriptor.version.clone(),
            file: lib.source_path.display().to_string(),
            sha256: lib.sha256.clone(),
            generation: *g,
            plugin_api_version: lib.descriptor.plugin_api_version.clone(),
        }
    }

    /// Runs each spec's plugin `create` (config validation) without starting it, and
    /// returns `(instance, problem)` for every failure; `tfo-agent validate` prints them.
    pub async fn validate_specs(&self, specs: &[InstanceSpec]) -> Vec<(String, String)> {
        let st = self.inner.state.lock().await;
        let mut problems = Vec::new();
        for spec in specs {
            let plugin = files::normalize_name(&spec.plugin);
            let Some(lib) = st.libraries.get(&plugin).cloned() else {
                let file = self
                    .inner
                    .opts
                    .plugin_dir
                    .join(files::file_name_for(&plugin));
                let why = self
                    .refusals()
                    .into_iter()
                    .find(|r| r.file == file)
                    .map(|r| r.reason)
                    .unwrap_or_else(|| "file not found".into());
                problems.push((
                    format!("integrations.{}.plugin", spec.name),
                    format!(
                        "plugin {plugin:?} not loadable from {}: {why}",
                        file.display()
                    ),
                ));
                continue;
            };
            match spawn_instance(&lib, spec, None, Default::default()).await {
                Ok(w) => {
                    self.inner
                        .graveyard
                        .retire_instance(w, false, self.inner.opts.timeouts.shutdown)
                        .await
                }
                Err(f) => {
                    if f.config_errors.is_empty() {
                        problems.push((format!("integrations.{}", spec.name), f.message));
                    }
                    for (path, msg) in f.config_errors {
                        let full = if path.is_empty() {
                            format!("integrations.{}", spec.name)
                        } else {
                            format!("integrations.{}.{path}", spec.name)
                        };
                        problems.push((full, msg));
                    }
                }
            }
        }
        problems
    }

    /// `run --once` (like Telegraf's `--test`): creates every instance without
    /// starting it, collects once from each polling source, and renders for each
    /// sink what it would send (the plugin's own preview, or the host's text form
    /// when the plugin has none). Nothing is sent. Returns (sink, source, text).
    pub async fn run_once(&self, specs: &[InstanceSpec]) -> Vec<(String, String, String)> {
        let st = self.inner.state.lock().await;
        let timeout = self.inner.opts.timeouts.call;
        let mut sources = Vec::new();
        let mut sinks = Vec::new();
        let mut out = Vec::new();
        for spec in specs {
            let plugin = files::normalize_name(&spec.plugin);
            let Some(lib) = st.libraries.get(&plugin).cloned() else {
                out.push((
                    spec.name.clone(),
                    String::new(),
                    format!("error: plugin {plugin:?} is not loaded"),
                ));
                continue;
            };
            match spawn_instance(&lib, spec, None, Default::default()).await {
                Ok(w) if lib.descriptor.kind_enum.is_sink() => {
                    sinks.push((spec, lib.descriptor.data_types_flags, w))
                }
                Ok(w) => sources.push((spec, w)),
                Err(e) => out.push((
                    spec.name.clone(),
                    String::new(),
                    format!("error: create failed: {e}"),
                )),
            }
        }
        let mut batches = Vec::new();
        for (spec, w) in &sources {
            // Sources that set up in `start` (eBPF probes, subscriptions) need it.
            if let Err(e) = w.start(timeout).await {
                out.push((
                    String::new(),
                    spec.name.clone(),
                    format!("error: start failed: {e}"),
                ));
                continue;
            }
            match w.collect(timeout).await {
                Ok(mut b) => {
                    for kv in &self.inner.opts.resource {
                        if !b.resource.attributes.iter().any(|a| a.key == kv.key) {
                            b.resource.attributes.push(kv.clone());
                        }
                    }
                    batches.push((spec.name.clone(), spec.routes.clone(), Arc::new(b)));
                }
                Err(e) => out.push((
                    String::new(),
                    spec.name.clone(),
                    format!("error: collect failed: {e}"),
                )),
            }
        }
        for (spec, accepts, w) in &sinks {
            for (source, routes, b) in &batches {
                let set = crate::pipeline::RouteSet {
                    only: routes.clone(),
                    except: Some(source.clone()),
                };
                if !set.allows(&spec.name) || !accepts.intersects(b.data_types()) {
                    continue;
                }
                let text = match w.preview(b.clone(), timeout).await {
                    Ok(t) => t,
                    Err(e) if e.kind == super::instance::CallErrorKind::Unsupported => {
                        crate::pipeline::render::render_batch(b)
                    }
                    Err(e) => format!("error: preview failed: {e}"),
                };
                out.push((spec.name.clone(), source.clone(), text));
            }
        }
        for (_, w) in sources {
            self.inner
                .graveyard
                .retire_instance(w, false, self.inner.opts.timeouts.shutdown)
                .await;
        }
        for (_, _, w) in sinks {
            self.inner
                .graveyard
                .retire_instance(w, false, self.inner.opts.timeouts.shutdown)
                .await;
        }
        out
    }

    fn spawn_watcher(&self) -> Result<(), String> {
        use super::platform::notify::{self, RecursiveMode, Watcher};
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

/// A source's routes: its configured `routes`, and never itself unless named there.
fn routes_of(spec: &InstanceSpec) -> crate::pipeline::Routes {
    Some(Arc::new(crate::pipeline::RouteSet {
        only: spec.routes.clone(),
        except: Some(spec.name.clone()),
    }))
}

/// Creates (not starts) an instance of `lib` for `spec` on its own thread.
async fn spawn_instance(
    lib: &Arc<LoadedLibrary>,
    spec: &InstanceSpec,
    emit: Option<Emitter>,
    panics: Arc<std::sync::atomic::AtomicU64>,
) -> Result<InstanceWorker, super::instance::CreateFailure> {
    let library = crate::pipeline::held::library_id(lib);
    let (emit, reclaim) = match emit {
        Some(e) => {
            let pool = Arc::new(Reclaim::counting(e.handed_back));
            *e.pool.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(&pool);
            (Some(e.target), Some((pool, library)))
        }
        None => (None, None),
    };
    // Collected batches go back to the same pool as emitted ones.
    let collected_to = reclaim.as_ref().map(|(pool, _)| Arc::downgrade(pool));
    let host = InstanceServices::handle_reclaiming(
        &lib.descriptor.name,
        &spec.name,
        emit,
        reclaim,
        panics,
    );
    let config = serde_json::to_string(&spec.config).unwrap_or_default();
    let worker = InstanceWorker::spawn(lib.clone(), &spec.name, config, host).await?;
    Ok(match collected_to {
        Some(pool) => worker.returning_collected_to(pool),
        None => worker,
    })
}

/// A source's way into the pipeline: where its batches go, and where the pool
/// its exported batches come back to is named. Shared by the instances a runner
/// respawns; each gets a pool of its own, owned by its host handle, so a pool
/// never outlives its instance (nor keeps its library loaded).
#[derive(Clone)]
struct Emitter {
    target: EmitTarget,
    /// The current instance's pool, which the target's batches return to.
    pool: Arc<StdMutex<Weak<Reclaim>>>,
    /// The instance's `tfo_agent_batches_reclaimed_total`.
    handed_back: Arc<std::sync::atomic::AtomicU64>,
}

async fn create_and_start(
    lib: Arc<LoadedLibrary>,
    spec: &InstanceSpec,
    emit: Option<Emitter>,
    status: Arc<InstanceStatus>,
    timeout: Duration,
) -> Result<InstanceWorker, String> {
    let worker = spawn_instance(&lib, spec, emit, status.panics.clone())
        .await
        .map_err(|f| format!("create: {f}"))?;
    match worker.start(timeout).await {
        Ok(()) => Ok(worker),
        Err(e) => Err(format!("start: {e}")),
    }
}

/// A sink's queue: on disk when configured (falling back to memory, loudly, when the
/// directory cannot be used: the sink keeps working, without the disk guarantee).
fn sink_queue(
    opts: &ManagerOptions,
    instance: &str,
    status: &Arc<InstanceStatus>,
) -> Arc<SinkQueue> {
    if let Some(d) = &opts.disk_buffer {
        let disk = crate::pipeline::disk::DiskOptions {
            dir: d.base.join(instance),
            max_bytes: d.max_bytes,
            fsync: d.fsync,
        };
        let dir = disk.dir.clone();
        match SinkQueue::with_disk(
            opts.queue_max_items,
            opts.queue_max_bytes,
            status.clone(),
            disk,
        ) {
            Ok(q) => return q,
            Err(e) => {
                let msg = format!(
                    "disk buffer {} unusable ({e}): this sink queues in memory only",
                    dir.display()
                );
                tracing::error!(instance, "{msg}");
                status.record_error(msg);
            }
        }
    }
    SinkQueue::new(opts.queue_max_items, opts.queue_max_bytes, status.clone())
}
