//! `tfo-agent run`: loads the config, starts the plugin manager, and runs until
//! SIGTERM or SIGINT, then drains every sink within its deadline.

use std::path::Path;

use crate::{config::Config, plugin::manager::PluginManager};

/// Runs the agent; returns the process exit code.
pub fn run(config_path: &Path) -> i32 {
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let (opts, specs) = match (config.manager_options(), config.instance_specs()) {
        (Ok(o), Ok(s)) => (o, s),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {}: {e}", config_path.display());
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tfo-agent")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        let mgr = match PluginManager::start(opts, specs).await {
            Ok(m) => m,
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        };
        for s in mgr.statuses() {
            tracing::info!(instance = %s.instance, plugin = %s.plugin, state = ?s.state, reason = ?s.reason, "integration");
        }
        wait_for_signal().await;
        tracing::info!("shutting down: draining sinks");
        let left = mgr.shutdown().await;
        if left > 0 {
            tracing::warn!(items = left, "undelivered items at shutdown");
        }
        0
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
