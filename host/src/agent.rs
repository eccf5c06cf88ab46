//! The daemon: `tfo-agent run` (until SIGTERM/SIGINT, reloading the config on
//! SIGHUP and when the file changes; on Windows until Ctrl-C/Ctrl-Break/close,
//! reloading when the file changes), `run --once`, and `validate`.

use std::{
    path::{Path, PathBuf},
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use tfo_plugin_api::KeyValue;
use tokio::sync::mpsc;

use crate::{
    api::{self, ApiState, ReloadStats},
    config::Config,
    plugin::manager::{ManagerOptions, PluginManager},
    redact::redact,
};

fn system_hostname() -> String {
    crate::plugin::platform::hostname()
}

/// Resource attributes the agent adds to everything it collects.
pub fn agent_resource(c: &Config) -> Vec<KeyValue> {
    let host = c.agent.hostname.clone().unwrap_or_else(system_hostname);
    let mut v = vec![
        KeyValue::new("host.name", host.clone()),
        KeyValue::new("service.name", "tfo-agent"),
        KeyValue::new("service.instance.id", c.agent.id.clone().unwrap_or(host)),
    ];
    for (k, val) in &c.agent.tags {
        v.push(KeyValue::new(k.as_str(), val.as_str()));
    }
    v
}

fn options(c: &Config) -> ManagerOptions {
    let mut o = c.manager_options();
    o.resource = agent_resource(c);
    o
}

fn runtime() -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tfo-agent")
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the runtime: {e}");
            1
        })
}

fn load(path: &Path) -> Result<Config, i32> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        2
    })
}

/// Loads the config and runs `job` with a manager that has loaded the plugin
/// directory but started nothing (no watcher, no rescans, no batching): what
/// `validate` and `run --once` need.
fn offline<F, Fut>(path: &Path, job: F) -> i32
where
    F: FnOnce(PluginManager, Vec<crate::plugin::manager::InstanceSpec>) -> Fut,
    Fut: std::future::Future<Output = i32>,
{
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let specs = match config.instance_specs() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return 2;
        }
    };
    let rt = match runtime() {
        Ok(r) => r,
        Err(c) => return c,
    };
    rt.block_on(async {
        let mut opts = options(&config);
        opts.watch = false;
        opts.rescan_interval = Duration::ZERO;
        opts.flush_interval = Duration::ZERO;
        match PluginManager::start(opts, vec![]).await {
            Ok(mgr) => job(mgr, specs).await,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                2
            }
        }
    })
}

/// `tfo-agent validate --config FILE`: the file, then every enabled integration's
/// config through its plugin's `create`. Prints each problem with its path.
pub fn validate(path: &Path) -> i32 {
    offline(path, |mgr, specs| async move {
        let problems = mgr.validate_specs(&specs).await;
        mgr.shutdown().await;
        if problems.is_empty() {
            let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            println!(
                "{}: OK ({} enabled integration(s): {})",
                path.display(),
                specs.len(),
                names.join(", ")
            );
            0
        } else {
            for (p, m) in &problems {
                let line = format!("{}: {p}: {m}", path.display());
                eprintln!("{}", redact(&line));
            }
            2
        }
    })
}

/// `tfo-agent run --once`: collect once, print what each sink would send, exit.
pub fn run_once(path: &Path) -> i32 {
    offline(path, |mgr, specs| async move {
        for r in mgr.refusals() {
            eprintln!(
                "warning: plugin file {} refused: {}",
                r.file.display(),
                r.reason
            );
        }
        let out = mgr.run_once(&specs).await;
        mgr.shutdown().await;
        let mut failed = false;
        for (sink, source, text) in &out {
            failed |= text.starts_with("error:");
            let name = |s: &String| {
                if s.is_empty() {
                    "-".to_string()
                } else {
                    s.clone()
                }
            };
            println!("==> sink {} <- source {}", name(sink), name(source));
            println!("{}", redact(text.trim_end()));
        }
        if out.is_empty() {
            eprintln!("nothing to show: no enabled source produced data for an enabled sink");
        }
        i32::from(failed)
    })
}

/// How long after the plugins are loaded the agent pages out the code start-up
/// touched ([`crate::plugin::platform::page_out_code`]): every source has collected
/// once by then (pollers collect at start), so what faults back in afterwards is
/// the code that keeps running.
const PAGE_OUT_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// `tfo-agent run`: runs until SIGTERM/SIGINT; SIGHUP or a change of the config file
/// reloads the integrations (an invalid new config is refused, the running one kept).
pub fn run(path: &Path) -> i32 {
    crate::plugin::platform::tune_allocator();
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let specs = match config.instance_specs() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return 2;
        }
    };
    let rt = match runtime() {
        Ok(r) => r,
        Err(c) => return c,
    };
    let path = path.to_path_buf();
    rt.block_on(async move {
        use crate::plugin::platform::{SignalAction, Signals};
        // Signal handlers first, so an early SIGHUP or SIGTERM is never fatal.
        let mut signals = match Signals::install() {
            Ok(s) => s,
            Err(_) => {
                eprintln!("error: cannot install signal handlers");
                return 1;
            }
        };
        // The config watch, like the signal handlers, exists before the API answers,
        // so a change made as soon as the agent looks ready is not missed.
        let (reload_tx, mut reload_rx) = mpsc::unbounded_channel::<&'static str>();
        let _watcher = watch_config(&path, reload_tx.clone());
        let listener = match tokio::net::TcpListener::bind(config.http.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: http.listen {}: cannot bind: {e}", config.http.listen);
                return 1;
            }
        };
        let mgr = match PluginManager::prepare(options(&config), specs) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return 2;
            }
        };
        mgr.mark_disabled(&config.disabled());
        // The API answers while plugins load (every instance shows `Initializing`
        // until its plugin is loaded and started).
        let reloads = Arc::new(ReloadStats::default());
        let state = Arc::new(ApiState { manager: mgr.clone(), token: config.http.token.clone(), reloads: reloads.clone() });
        let api_task = tokio::spawn(api::serve(listener, state));
        tracing::info!(listen = %config.http.listen, "status API on http://{}/health", config.http.listen);
        if let Err(e) = mgr.load().await {
            eprintln!("error: {}: {e}", path.display());
            api_task.abort();
            return 2;
        }
        crate::plugin::platform::release_free_memory();
        // Once the first collections have run, start-up's code leaves memory.
        tokio::spawn(async {
            tokio::time::sleep(PAGE_OUT_AFTER).await;
            let before = crate::plugin::platform::resident_file_kib();
            let advised = crate::plugin::platform::page_out_code();
            let after = crate::plugin::platform::resident_file_kib();
            tracing::debug!(?advised, ?before, ?after, "start-up code paged out (KiB resident, file-backed)");
        });
        let all = mgr.statuses();
        for s in all.iter().filter(|s| s.state != crate::status::State::Disabled) {
            match &s.reason {
                None => tracing::info!(instance = %s.instance, plugin = %s.plugin, version = %s.generation.version, "integration {:?}", s.state),
                Some(r) => tracing::warn!(instance = %s.instance, plugin = %s.plugin, "integration {:?}: {r}", s.state),
            }
        }
        let disabled = all.iter().filter(|s| s.state == crate::status::State::Disabled).count();
        tracing::info!("{disabled} integration(s) disabled in the config");
        let mut current = config;
        loop {
            tokio::select! {
                action = signals.recv() => match action {
                    SignalAction::Stop => break,
                    SignalAction::Reload => { let _ = reload_tx.send("SIGHUP"); }
                },
                Some(why) = reload_rx.recv() => {
                    // Merge a burst of triggers (editors write files in several steps).
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    while reload_rx.try_recv().is_ok() {}
                    reload(&path, why, &mut current, &mgr, &reloads).await;
                }
            }
        }
        tracing::info!("shutting down: stopping sources, draining sinks (deadline {:?})", current.pipeline.shutdown_timeout);
        let left = mgr.shutdown().await;
        api_task.abort();
        if left > 0 {
            tracing::warn!(items = left, "undelivered items at shutdown");
        }
        tracing::info!("stopped");
        0
    })
}

async fn reload(
    path: &Path,
    why: &str,
    current: &mut Config,
    mgr: &PluginManager,
    stats: &ReloadStats,
) {
    let new = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!("config reload ({why}) refused, the running config stays: {e}");
            return;
        }
    };
    let specs = match new.instance_specs() {
        Ok(s) => s,
        Err(e) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!("config reload ({why}) refused, the running config stays: {e}");
            return;
        }
    };
    if new.plugins != current.plugins
        || new.http != current.http
        || new.pipeline != current.pipeline
        || new.agent != current.agent
    {
        tracing::warn!("config reload ({why}): changes to agent, plugins, http or pipeline take effect at the next restart; applying integrations");
    }
    let report = mgr.apply_specs(specs).await;
    mgr.mark_disabled(&new.disabled());
    stats.ok.fetch_add(1, Ordering::Relaxed);
    if report.is_empty() {
        tracing::info!("config reloaded ({why}): no integration changed");
    }
    for line in report {
        tracing::info!("config reloaded ({why}): {line}");
    }
    *current = new;
}

/// Watches the config file's directory; events for the file become reload triggers.
fn watch_config(
    path: &Path,
    tx: mpsc::UnboundedSender<&'static str>,
) -> Option<crate::plugin::platform::notify::RecommendedWatcher> {
    use crate::plugin::platform::notify::{self, RecursiveMode, Watcher};
    let file: PathBuf = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = file.parent()?.to_path_buf();
    let name = file.file_name()?.to_owned();
    let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            let ours = ev
                .paths
                .iter()
                .any(|p| p.file_name() == Some(name.as_os_str()));
            if ours && !matches!(ev.kind, notify::EventKind::Access(_)) {
                let _ = tx.send("config file changed");
            }
        }
    })
    .map_err(|e| tracing::warn!("cannot watch the config file: {e}; SIGHUP still reloads"))
    .ok()?;
    if let Err(e) = w.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::warn!("cannot watch {}: {e}; SIGHUP still reloads", dir.display());
        return None;
    }
    Some(w)
}
